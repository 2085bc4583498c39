"""Family-agnostic training: config -> data -> model.fit -> saved model -> test metrics."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import time
from pathlib import Path

import keras

from zoo.config import config_to_dict, resolve_config, save_config
from zoo.errors import ConfigError
from zoo.evaluate import evaluate_model
from zoo.plots import plot_training_curves
from zoo.quantize import quantize_saved_model
from zoo.registry import get_entry
from zoo.runtime import ROOT, run_facts


def scheduled_learning_rate(config, epoch: int) -> float:
    """The learning rate of epoch `epoch` (from 0) under the config's schedule; "cosine" is
    `keras.optimizers.schedules.CosineDecay` counted in epochs, toward 0 at `epochs`."""
    if config.learning_rate_schedule == "cosine":
        schedule = keras.optimizers.schedules.CosineDecay(
            config.learning_rate, decay_steps=config.epochs
        )
        return float(keras.ops.convert_to_numpy(schedule(epoch)))
    return config.learning_rate


class SwapEMAWeights(keras.callbacks.SwapEMAWeights):
    """`keras.callbacks.SwapEMAWeights` whose swaps copy values.

    On JAX, Keras's version assigns one variable's array to the other, so a weight and its
    average share a buffer that the next training step donates, and the average is lost
    ("Array has been deleted"). Copying through NumPy keeps them apart on every backend.
    The optimizer's weight and average lists are private, with no public accessor; Keras's own
    callback reads the same two (tests/test_private_keras_apis.py fails if they move).
    """

    def _backend_swap_variables(self, optimizer):
        for variable, average in zip(
            optimizer._trainable_variables, optimizer._model_variables_moving_average
        ):
            value, averaged = (
                keras.ops.convert_to_numpy(variable),
                keras.ops.convert_to_numpy(average),
            )
            variable.assign(averaged)
            average.assign(value)

    def _backend_finalize_ema_values(self, optimizer):
        for variable, average in zip(
            optimizer._trainable_variables, optimizer._model_variables_moving_average
        ):
            average.assign(keras.ops.convert_to_numpy(variable))


def data_distribution(config, family) -> keras.distribution.Distribution | None:
    """The Keras distribution `config.distribute` asks for, or None for one device."""
    if config.distribute == "none":
        return None
    if not family.data_parallel:
        raise ConfigError(
            f"distribute=data_parallel is not supported by the {type(family).__name__} family "
            "yet: its per-epoch scoring predicts batches of any size, which DataParallel cannot "
            "split over the devices."
        )
    if keras.backend.backend() != "jax":
        raise ConfigError(
            "distribute=data_parallel trains through keras.distribution, which runs on the JAX "
            f"backend (BACKEND=jax); the backend is {keras.backend.backend()}."
        )
    devices = keras.distribution.list_devices()
    print(f"Data-parallel training on {len(devices)} devices: {', '.join(devices)}", flush=True)
    return keras.distribution.DataParallel(devices=devices)


def divisible_batches(dataset, devices: int):
    """Cuts each batch to a multiple of `devices` examples (DataParallel splits every batch
    evenly over the devices); the few examples cut vary from epoch to epoch with shuffling."""
    import tensorflow as tf

    def cut(*batch):
        size = tf.shape(tf.nest.flatten(batch)[0])[0]
        keep = size - size % devices
        return tf.nest.map_structure(lambda tensor: tensor[:keep], batch)

    def not_empty(*batch):
        return tf.shape(tf.nest.flatten(batch)[0])[0] > 0

    return dataset.map(cut).filter(not_empty)


def save_model_atomically(model: keras.Model, path: Path) -> None:
    """Saves `model` without optimizer state, via a temporary file renamed into place."""
    # A fresh copy holds the weights only: the optimizer's slots would triple the file size.
    clean = model.__class__.from_config(model.get_config())
    clean.set_weights(model.get_weights())
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial.keras")
    clean.save(partial)
    os.replace(partial, path)


def train(
    name: str,
    overrides: dict | None = None,
    output_dir: str | Path | None = None,
    runs_dir: str | Path | None = None,
    evaluate: bool = True,
) -> dict:
    """Trains entry `name` and saves it (by default to `saved_models/<name>/`).

    Writes the resolved config, TensorBoard logs, a CSV log and a PNG of training curves to
    `runs/<name>/<timestamp>/`; resumes a killed run from `runs/<name>/backup/`; keeps the
    weights of the epoch with the best validation metric (the last epoch's when the family
    trains on the validation data too: `Family.selects_epoch`); then, unless `evaluate=False`,
    measures the full test split into `metrics.json`, and with `quantize` set, quantizes the
    model and keeps it if the metric holds (`zoo.quantize`). Returns the metrics (or the
    training record).
    """
    entry = get_entry(name)
    config = resolve_config(entry.config_class, overrides)
    output_dir = Path(output_dir) if output_dir else entry.directory
    runs_dir = Path(runs_dir) if runs_dir else ROOT / "runs"
    timestamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = runs_dir / name / timestamp
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / "config.json")
    keras.utils.set_random_seed(config.seed)
    distribution = data_distribution(config, entry.family)
    keras.distribution.set_distribution(distribution)

    started = time.time()
    facts_at_start = run_facts()  # The commit the run started from, not the one it ends on.
    family = entry.family
    model = family.prepare_model(config, run_dir)
    train_data, validation_data = family.training_data(model, config)
    if distribution is not None:
        devices = distribution.device_mesh.devices.size
        train_data = divisible_batches(train_data, devices)
        validation_data = divisible_batches(validation_data, devices)
    family.compile(model, config)
    monitor = f"val_{family.metric}"
    # Without held-out validation data, the checkpoint keeps the last epoch and nothing stops early.
    selects_epoch = family.selects_epoch(config)
    best_weights = run_dir / "best.weights.h5"
    # With a weight EMA, the averaged weights are swapped in at each epoch's end, before the
    # family's callbacks score them and the checkpoint saves them.
    averaging = [SwapEMAWeights(swap_on_epoch=True)] if config.ema_momentum else []
    callbacks = [
        *averaging,
        # Next: a family's callbacks may add the metric the checkpoint and early stopping watch.
        *family.callbacks(model, config),
        keras.callbacks.BackupAndRestore(str(runs_dir / name / "backup")),
        keras.callbacks.ModelCheckpoint(
            str(best_weights),
            monitor=monitor,
            mode="max",
            save_best_only=selects_epoch,
            save_weights_only=True,
        ),
        keras.callbacks.TensorBoard(str(run_dir / "tensorboard")),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv")),
    ]
    if config.learning_rate_schedule != "constant":
        callbacks.append(
            keras.callbacks.LearningRateScheduler(
                lambda epoch: scheduled_learning_rate(config, epoch)
            )
        )
    if config.early_stopping_patience and selects_epoch:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=monitor, mode="max", patience=config.early_stopping_patience
            )
        )
    history = model.fit(
        train_data,
        validation_data=validation_data,
        epochs=config.epochs,
        steps_per_epoch=config.steps_per_epoch or None,
        callbacks=callbacks,
        verbose=int(os.environ.get("ZOO_VERBOSE", "1")),
    )
    if best_weights.exists():
        model.load_weights(best_weights)
    keras.distribution.set_distribution(None)  # Saving and evaluation run on one device.
    training_seconds = time.time() - started

    history_dict = {key: [float(v) for v in values] for key, values in history.history.items()}
    plot_training_curves(history_dict, run_dir / "curves.png", title=f"{name}: {config.cell}")
    scores = history_dict[monitor]
    best_epoch = (
        max(range(len(scores)), key=scores.__getitem__) if selects_epoch else len(scores) - 1
    )
    training = {
        "entry": name,
        "config": config_to_dict(config),
        "epochs_run": len(history_dict[monitor]),
        "best_epoch": best_epoch + 1,
        "epoch_selection": "best validation score" if selects_epoch else "last epoch",
        f"best_{monitor}": history_dict[monitor][best_epoch],
        "history": history_dict,
        "training_wall_seconds": round(training_seconds, 1),
        "run_dir": os.path.relpath(run_dir, ROOT),
        **facts_at_start,
    }
    save_model_atomically(model, run_dir / "model.keras")
    output_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run_dir / "model.keras", output_dir / ".model.keras.partial")
    os.replace(output_dir / ".model.keras.partial", output_dir / "model.keras")
    (output_dir / "training.json").write_text(json.dumps(training, indent=2) + "\n")
    shutil.copyfile(run_dir / "curves.png", output_dir / "curves.png")
    if not evaluate:
        return training
    metrics = evaluate_model(name, output_dir=output_dir, config=config)
    if config.quantize == "none":
        return metrics
    # Quantize, measure the quantized model too, and ship it if the metric holds.
    return quantize_saved_model(
        name,
        output_dir,
        config.quantize,
        config=config,
        float_metrics=metrics,
        command=f'make train-{name} SET="quantize={config.quantize}" (config in metrics.json)',
    )
