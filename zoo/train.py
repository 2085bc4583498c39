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
from zoo.evaluate import evaluate_model
from zoo.plots import plot_training_curves
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
    measures the full test split into `metrics.json`. Returns the metrics (or the history).
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

    started = time.time()
    facts_at_start = run_facts()  # The commit the run started from, not the one it ends on.
    family = entry.family
    model = family.prepare_model(config, run_dir)
    train_data, validation_data = family.training_data(model, config)
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
    return evaluate_model(name, output_dir=output_dir, config=config)
