"""Family-agnostic training: config -> data -> model.fit -> saved model -> test metrics."""

from __future__ import annotations

import csv
import datetime
import fcntl
import hashlib
import json
import math
import os
import shutil
import time
from pathlib import Path

import keras
import numpy as np

from zoo.config import config_to_dict, resolve_config, save_config
from zoo.errors import ConfigError, TrainingError
from zoo.evaluate import evaluate_model
from zoo.plots import plot_training_curves
from zoo.progress import verbosity
from zoo.quantize import quantize_saved_model
from zoo.registry import get_entry
from zoo.runtime import ROOT, accelerator_names, device_line, run_facts
from zoo.shipping import ship as ship_run


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


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Raises `TrainingError` at the first batch whose loss is NaN or infinite.

    Unlike `keras.callbacks.TerminateOnNaN`, which stops quietly (and the run then saves and
    ships the broken weights), the error ends `train` before anything is saved.
    """

    def __init__(self, advice: str = ""):
        super().__init__()
        self.advice = advice
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise TrainingError(
                f"The training loss became {float(loss)} at epoch {self.epoch + 1}, batch "
                f"{batch + 1}; stopped, nothing saved. {self.advice}".strip()
            )


def config_hash(config) -> str:
    """A short hash of the whole resolved config: runs with equal hashes are the same run."""
    text = json.dumps(config_to_dict(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


class RunState:
    """A run's resume state, keyed by its config: `runs/<entry>/backup-<config hash>/`.

    Holds Keras's `BackupAndRestore` files and `run.json` (the run folder and the wall time of
    the epochs done). Only a run with the same config resumes it; a lock file, held while the
    run lives, makes a second run of the same config fail at once instead of sharing the backup.
    """

    def __init__(self, runs_dir: Path, name: str, config):
        self.key = config_hash(config)
        self.backup_dir = runs_dir / name / f"backup-{self.key}"
        self.record_path = self.backup_dir / "run.json"
        lock_path = runs_dir / name / f"backup-{self.key}.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = open(lock_path, "w")  # noqa: SIM115 (held for the run, closed by release)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise TrainingError(
                f"Another run of '{name}' with this config (hash {self.key}) is training now "
                f"(lock {lock_path}); wait for it to end, or change the config or --runs-dir."
            ) from None
        record = json.loads(self.record_path.read_text()) if self.record_path.exists() else {}
        self.resumed = bool(record) and Path(record.get("run_dir", "")).is_dir()
        self.run_dir = Path(record["run_dir"]) if self.resumed else None
        self.earlier_seconds = float(record.get("wall_seconds", 0.0)) if self.resumed else 0.0

    def save(self, run_dir: Path, wall_seconds: float) -> None:
        self.backup_dir.mkdir(parents=True, exist_ok=True)
        partial = self.record_path.with_suffix(".partial")
        partial.write_text(json.dumps({"run_dir": str(run_dir), "wall_seconds": wall_seconds}))
        os.replace(partial, self.record_path)

    def discard(self) -> None:
        shutil.rmtree(self.backup_dir, ignore_errors=True)

    def release(self) -> None:
        self._lock.close()


def new_run_dir(runs_dir: Path, name: str, key: str) -> Path:
    """`runs/<entry>/<timestamp>-<config hash>/`, never one that exists already."""
    stem = f"{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}-{key[:8]}"
    for attempt in range(1, 1000):
        run_dir = runs_dir / name / (stem if attempt == 1 else f"{stem}-{attempt}")
        try:
            run_dir.mkdir(parents=True)
            return run_dir
        except FileExistsError:
            continue
    raise TrainingError(f"Cannot create a run folder under {runs_dir / name}.")


def read_history(csv_path: Path) -> dict[str, list[float]]:
    """Every epoch's logs from the run's CSV log (all epochs, also those before a resume)."""
    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    keys = [key for key in (rows[0] if rows else {}) if key != "epoch"]
    return {key: [float(row[key]) for row in rows] for key in keys}


def data_distribution(config, family) -> keras.distribution.Distribution | None:
    """The Keras distribution `config.distribute` asks for, or None for one device."""
    if config.distribute == "none":
        return None
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


def with_known_length(dataset, kind: str = "training"):
    """`dataset` with its number of batches known, so that Keras's epoch progress bar has a
    total and an ETA from the first epoch on.

    Bucketing by length (and filtering) loses a dataset's cardinality; one pass counts its
    batches then (bucket sizes depend on the lengths only, so every epoch has as many), and
    fills any in-memory cache the epochs then read.
    """
    import tensorflow as tf

    if dataset.cardinality() != tf.data.UNKNOWN_CARDINALITY:
        return dataset
    print(f"Counting the {kind} batches (one pass over the data)...", flush=True)
    started = time.time()
    batches = int(dataset.reduce(np.int64(0), lambda count, *_: count + 1))
    print(f"{batches:,} {kind} batches (counted in {time.time() - started:.0f} s).", flush=True)
    return dataset.apply(tf.data.experimental.assert_cardinality(batches))


# A CPU training shorter than this needs no warning of its length.
LONG_TRAINING_SECONDS = 15 * 60


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def recorded_time(name: str, directory: Path, config) -> str | None:
    """What the shipped model's training took (its `metrics.json`), said before a run without
    a GPU when that was long or on a GPU, with an estimate and the settings of a short run.

    The estimate scales the recorded time per epoch to this run's epochs, on a machine like
    the recorded one; a time recorded on a GPU gives none for a CPU (the epoch bars' ETA does).
    """
    path = directory / "metrics.json"
    if not path.exists():
        return None
    training = json.loads(path.read_text()).get("training") or {}
    seconds, epochs = training.get("training_wall_seconds"), training.get("epochs_run")
    device = training.get("device") or "an unrecorded device"
    on_cpu = device.startswith("CPU")
    if not seconds or not epochs or (on_cpu and seconds < LONG_TRAINING_SECONDS):
        return None
    note = f"Recorded for saved_models/{name}: {_minutes(seconds)} on {device} for {epochs} epochs"
    if not on_cpu:
        note += "; without a GPU expect many times that (each epoch's bar shows its ETA)"
    elif not config.steps_per_epoch:
        per_epoch = seconds / epochs
        note += (
            f" ({_minutes(per_epoch)} an epoch); this run's {config.epochs} epochs (at most): "
            f"about {_minutes(per_epoch * config.epochs)} on a machine like that"
        )
    return f'{note}. A short run: make train-{name} SET="epochs=1".'


class StepTimeEstimate(keras.callbacks.Callback):
    """Says once, a few steps into the first epoch, what an epoch and the whole run will take
    at the measured speed: the epoch bar's ETA covers one epoch only, and a first run should
    know at once whether it takes minutes or hours.

    The first `skip` steps are left out (they compile the step function); the next ones are
    timed until `steps` are, or `seconds` have passed and at least `min_steps` are. The
    estimate is their median: with length buckets, JAX compiles again at each new batch shape,
    and those slow steps must not count as the speed of the epoch. Says nothing when the
    number of steps of an epoch is unknown, or with `ZOO_VERBOSE=0`.
    """

    def __init__(
        self,
        early_stopping: bool = False,
        skip=3,
        steps=15,
        seconds=60.0,
        min_steps=5,
        clock=time.monotonic,
    ):
        super().__init__()
        self.early_stopping = early_stopping
        self.skip, self.steps, self.seconds, self.min_steps = skip, steps, seconds, min_steps
        self.clock = clock
        self.first_epoch = self.started = self.last = None
        self.durations: list[float] = []
        self.said = False

    def on_epoch_begin(self, epoch, logs=None):
        if self.first_epoch is None:
            self.first_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.said or self.params.get("steps") is None or not verbosity():
            return
        if batch + 1 == self.skip:
            self.started = self.last = self.clock()
        elif self.started is not None:
            now = self.clock()
            self.durations.append(now - self.last)
            self.last = now
            timed = len(self.durations)
            if timed >= self.steps or (
                timed >= self.min_steps and now - self.started >= self.seconds
            ):
                # On a line of its own: the epoch bar's line is open.
                newline = "\n" if verbosity() == 1 else ""
                print(newline + self.estimate(float(np.median(self.durations)), timed), flush=True)
                self.said = True

    def estimate(self, per_step: float, timed: int) -> str:
        """The line said, from `per_step` seconds measured over `timed` steps."""
        steps, epochs = self.params["steps"], self.params["epochs"] - (self.first_epoch or 0)
        left = f"{epochs} epoch{'s' if epochs != 1 else ''}"
        left = f"the {left} left" if self.first_epoch else left  # Resumed: those to run.
        note = " (early stopping may end it sooner)" if self.early_stopping else ""
        return (
            f"Measured {per_step:.3g} s/step (median of {timed} steps): about "
            f"{_minutes(per_step * steps)} an epoch of {steps:,} steps (its validation not "
            f"counted), about {_minutes(per_step * steps * epochs)} for {left}{note}."
        )


def save_model_atomically(model: keras.Model, path: Path) -> None:
    """Saves `model` without optimizer state, via a temporary file renamed into place."""
    # A fresh copy holds the weights only: the optimizer's slots would triple the file size.
    clean = model.__class__.from_config(model.get_config())
    clean.set_weights(model.get_weights())
    if getattr(model, "preprocessor", None) is not None:
        # The same preprocessor: some keep state outside their config (SentencePiece models,
        # saved as assets), which a copy from the config would lack.
        clean.preprocessor = model.preprocessor
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
    ship: bool = False,
    force: bool = False,
) -> dict:
    """Trains entry `name` in a run folder; ships it only when asked.

    Writes the resolved config, TensorBoard logs, a CSV log, a PNG of training curves, the model
    and (unless `evaluate=False`) its full-test-split `metrics.json` to
    `runs/<name>/<timestamp>-<config hash>/`. Keeps the weights of the epoch with the best
    validation metric (the last epoch's when the family trains on the validation data too:
    `Family.selects_epoch`). With `quantize` set, quantizes the model and keeps it if the
    metric holds (`zoo.quantize`).

    A killed run resumes when the same config is trained again (`RunState`), in the same run
    folder, and its record counts every epoch and the whole wall time. A non-finite loss stops
    the run with `TrainingError` and saves no model.

    The shipped model (`saved_models/<name>/`) is replaced only with `ship=True` or an explicit
    `output_dir`, as one set, and not by a worse test metric unless `force`
    (`zoo.shipping.ship`). Returns the metrics (or, with `evaluate=False`, the training record);
    either holds `run_dir`.
    """
    entry = get_entry(name)
    config = resolve_config(entry.config_class, overrides)
    target = Path(output_dir) if output_dir else (entry.directory if ship else None)
    if target is not None and not evaluate:
        raise ConfigError("Only an evaluated run ships: drop evaluate=False or the destination.")
    runs_dir = Path(runs_dir) if runs_dir else ROOT / "runs"
    state = RunState(runs_dir, name, config)
    try:
        metrics = _train(entry, config, runs_dir, state, evaluate)
    finally:
        state.release()
    if target is not None:
        ship_run(Path(metrics["run_dir"]), target, force=force)
        print(f"Shipped {metrics['run_dir']} to {target}.", flush=True)
    elif evaluate:
        print(
            f"Trained and evaluated in {metrics['run_dir']}; the shipped model is unchanged. "
            f"Ship this run with `make ship-{name}` (python -m zoo ship {name}).",
            flush=True,
        )
    return metrics


def _shown(path: Path) -> str:
    """`path` relative to the working folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _train(entry, config, runs_dir: Path, state: RunState, evaluate: bool) -> dict:
    name = entry.name
    run_dir = state.run_dir if state.resumed else new_run_dir(runs_dir, name, state.key)
    gpus = accelerator_names()
    print(f"{device_line('training', gpus)}; run folder {_shown(run_dir)}", flush=True)
    if not gpus and (estimate := recorded_time(name, entry.directory, config)):
        print(estimate, flush=True)
    if state.resumed:
        print(
            f"Resuming the interrupted run {run_dir} (same config, hash {state.key}) from its "
            "last completed epoch.",
            flush=True,
        )
    else:
        state.discard()  # A backup without its record is from an older layout: start over.
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
    # Keras's progress bar knows each epoch's total; its validation, no warning of running out.
    if not config.steps_per_epoch:
        train_data = with_known_length(train_data)
    validation_data = with_known_length(validation_data, "validation")
    family.compile(model, config)
    monitor = f"val_{family.metric}"
    mode = "max" if family.higher_is_better else "min"
    # Without held-out validation data, the checkpoint keeps the last epoch and nothing stops early.
    selects_epoch = family.selects_epoch(config)
    best_weights = run_dir / "best.weights.h5"
    # With a weight EMA, the averaged weights are swapped in at each epoch's end, before the
    # family's callbacks score them and the checkpoint saves them.
    averaging = [SwapEMAWeights(swap_on_epoch=True)] if config.ema_momentum else []
    stops_early = bool(config.early_stopping_patience and selects_epoch)
    callbacks = [
        StopOnNonFiniteLoss("Lower the learning rate, or set clip_norm (gradient clipping)."),
        StepTimeEstimate(early_stopping=stops_early),
        # Before the EMA swap: the backup holds the trained weights in the model and their
        # average in the optimizer, so a resumed run goes on from where it stopped.
        keras.callbacks.BackupAndRestore(str(state.backup_dir)),
        keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: state.save(
                run_dir, state.earlier_seconds + time.time() - started
            )
        ),
        *averaging,
        # Next: a family's callbacks may add the metric the checkpoint and early stopping watch.
        *family.callbacks(model, config),
        keras.callbacks.ModelCheckpoint(
            str(best_weights),
            monitor=monitor,
            mode=mode,
            save_best_only=selects_epoch,
            save_weights_only=True,
        ),
        keras.callbacks.TensorBoard(str(run_dir / "tensorboard")),
    ]
    if config.learning_rate_schedule == "plateau":
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor=monitor, mode=mode, factor=0.25, patience=0, min_delta=0.0
            )
        )
    elif config.learning_rate_schedule != "constant":
        callbacks.append(
            keras.callbacks.LearningRateScheduler(
                lambda epoch: scheduled_learning_rate(config, epoch)
            )
        )
    if stops_early:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=monitor, mode=mode, patience=config.early_stopping_patience
            )
        )
    # Last, so that it logs what the others add (the learning rate): the run's full history.
    callbacks.append(keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=state.resumed))
    try:
        model.fit(
            train_data,
            validation_data=validation_data,
            epochs=config.epochs,
            steps_per_epoch=config.steps_per_epoch or None,
            shuffle=False,  # The datasets shuffle themselves (Keras warns of its default).
            callbacks=callbacks,
            verbose=verbosity(),
        )
    except TrainingError:
        state.discard()  # The same config would diverge again from its backup.
        best_weights.unlink(missing_ok=True)
        raise
    finally:
        keras.distribution.set_distribution(None)  # Saving and evaluation run on one device.
    if best_weights.exists():
        model.load_weights(best_weights)
    training_seconds = state.earlier_seconds + time.time() - started

    history_dict = read_history(run_dir / "history.csv")
    plot_training_curves(history_dict, run_dir / "curves.png", title=f"{name}: {config.cell}")
    scores = history_dict[monitor]
    best_epoch = (
        (max if family.higher_is_better else min)(range(len(scores)), key=scores.__getitem__)
        if selects_epoch
        else len(scores) - 1
    )
    training = {
        "entry": name,
        "config": config_to_dict(config),
        "epochs_run": len(scores),
        "best_epoch": best_epoch + 1,
        "epoch_selection": "best validation score" if selects_epoch else "last epoch",
        f"best_{monitor}": scores[best_epoch],
        "history": history_dict,
        "training_wall_seconds": round(training_seconds, 1),
        "resumed": state.resumed,
        "run_dir": os.path.relpath(run_dir, ROOT),
        **facts_at_start,
    }
    save_model_atomically(model, run_dir / "model.keras")
    (run_dir / "training.json").write_text(json.dumps(training, indent=2) + "\n")
    if not evaluate:
        return training
    metrics = evaluate_model(name, output_dir=run_dir, config=config)
    if config.quantize != "none":
        # Quantize, measure the quantized model too, and keep it if the metric holds.
        metrics = quantize_saved_model(
            name,
            run_dir,
            config.quantize,
            config=config,
            float_metrics=metrics,
            command=f'make train-{name} SET="quantize={config.quantize}" (config in metrics.json)',
        )
    return {**metrics, "run_dir": str(run_dir)}
