"""Training runs and shipping (issue 16): training never replaces the shipped model unless
asked, a replacement moves the whole set or nothing, a killed run resumes only under its own
config and counts every epoch, two runs of one config never share a backup, and a diverging
run stops with one line and saves nothing."""

import json
import os

import keras
import numpy as np
import pytest

import zoo.registry
from tests.conftest import TINY_SENTIMENT
from zoo.config import resolve_config
from zoo.errors import TrainingError, ZooError
from zoo.models.text_classifier import TextClassifierConfig
from zoo.registry import get_entry
from zoo.shipping import INCOMING, MANIFEST, latest_run, model_files, recover, replace_files, ship
from zoo.train import RunState, StopOnNonFiniteLoss, config_hash, train


def write_run(folder, value, model=b"model", metric="accuracy", entry="sentiment"):
    folder.mkdir(parents=True)
    (folder / "model.keras").write_bytes(model)
    (folder / "training.json").write_text("{}")
    (folder / "confusion.png").write_bytes(b"png")
    metrics = {"entry": entry, "metric": metric, "value": value, "figures": ["confusion.png"]}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def test_ship_replaces_the_set_and_refuses_a_worse_model(tmp_path):
    target = tmp_path / "shipped"
    ship(write_run(tmp_path / "runs" / "a", 0.8, b"first"), target)
    assert (target / "model.keras").read_bytes() == b"first"
    assert set(model_files(target)) == {
        "model.keras",
        "metrics.json",
        "training.json",
        "confusion.png",
    }
    worse = write_run(tmp_path / "runs" / "b", 0.7, b"worse")
    with pytest.raises(ZooError, match="worse than the shipped model's 0.8000"):
        ship(worse, target)
    assert (target / "model.keras").read_bytes() == b"first"
    ship(worse, target, force=True)
    assert (target / "model.keras").read_bytes() == b"worse"
    assert latest_run(tmp_path / "runs", "") == worse  # runs sort by their timestamped names


def test_a_language_model_ships_only_a_lower_perplexity(tmp_path):
    target = tmp_path / "shipped"
    ship(write_run(tmp_path / "runs" / "a", 120.0, b"first", "perplexity", "lm"), target)
    higher = write_run(tmp_path / "runs" / "b", 130.0, b"higher", "perplexity", "lm")
    with pytest.raises(ZooError, match="worse than the shipped model's 120.0000"):
        ship(higher, target)
    ship(write_run(tmp_path / "runs" / "c", 110.0, b"lower", "perplexity", "lm"), target)
    assert (target / "model.keras").read_bytes() == b"lower"


@pytest.mark.parametrize("value", [float("nan"), None])
def test_ship_refuses_a_run_without_a_finite_metric(tmp_path, value):
    run = write_run(tmp_path / "run", 0.5)
    if value is None:
        (run / "metrics.json").unlink()
    else:
        (run / "metrics.json").write_text(json.dumps({"metric": "accuracy", "value": value}))
    with pytest.raises(ZooError, match="evaluated model|finite"):
        ship(run, tmp_path / "shipped")
    assert not (tmp_path / "shipped" / "model.keras").exists()


def test_a_kill_leaves_the_old_set_or_the_new_one(tmp_path):
    folder = tmp_path / "shipped"
    replace_files(folder, model_files(write_run(tmp_path / "old", 0.5, b"old")))
    new = write_run(tmp_path / "new", 0.9, b"new")
    # Killed before the commit point: a partial staging folder -> the old set stays.
    (folder / f"{INCOMING}.partial").mkdir()
    (folder / f"{INCOMING}.partial" / "model.keras").write_bytes(b"new")
    recover(folder)
    assert (folder / "model.keras").read_bytes() == b"old"
    assert not (folder / f"{INCOMING}.partial").exists()
    # Killed after it, with the model moved but not its metrics -> the next access finishes.
    incoming = folder / INCOMING
    incoming.mkdir()
    for name, path in model_files(new).items():
        (incoming / name).write_bytes(path.read_bytes())
    (incoming / MANIFEST).write_text(json.dumps(sorted(model_files(new))))
    os.replace(incoming / "model.keras", folder / "model.keras")
    assert json.loads((folder / "metrics.json").read_text())["value"] == 0.5  # mixed, for now
    recover(folder)
    assert (folder / "model.keras").read_bytes() == b"new"
    assert json.loads((folder / "metrics.json").read_text())["value"] == 0.9
    assert not incoming.exists()


def test_runs_of_one_config_share_a_key_and_never_run_at_once(tmp_path):
    config = resolve_config(TextClassifierConfig, {"units": 8})
    assert config_hash(config) == config_hash(resolve_config(TextClassifierConfig, {"units": 8}))
    other = resolve_config(TextClassifierConfig, {"units": 8, "learning_rate": 0.01})
    assert config_hash(other) != config_hash(config)
    first = RunState(tmp_path, "sentiment", config)
    try:
        with pytest.raises(TrainingError, match="is training now"):
            RunState(tmp_path, "sentiment", config)
        RunState(tmp_path, "sentiment", other).release()  # Another config is another run.
    finally:
        first.release()
    RunState(tmp_path, "sentiment", config).release()  # Free again once the first ends.


def test_a_non_finite_loss_raises_one_line():
    callback = StopOnNonFiniteLoss("Lower the learning rate.")
    callback.on_train_batch_end(0, {"loss": 0.7})
    with pytest.raises(TrainingError, match="became nan at epoch 1, batch 3; .*Lower"):
        callback.on_train_batch_end(2, {"loss": float("nan")})


@pytest.fixture
def quiet_imdb(imdb_fixture, monkeypatch):
    monkeypatch.setenv("ZOO_VERBOSE", "0")
    monkeypatch.setattr(zoo.registry, "SAVED_MODELS_DIR", imdb_fixture / "saved_models")
    return imdb_fixture


def test_training_ships_only_when_asked(quiet_imdb):
    runs = quiet_imdb / "runs"
    metrics = train("sentiment", dict(TINY_SENTIMENT), runs_dir=runs)
    shipped = quiet_imdb / "saved_models" / "sentiment"
    assert not shipped.exists()
    assert (runs / "sentiment" / os.path.basename(metrics["run_dir"]) / "metrics.json").exists()
    train("sentiment", {**TINY_SENTIMENT, "seed": 2}, runs_dir=runs, ship=True, force=True)
    assert set(model_files(shipped)) >= {"model.keras", "metrics.json", "training.json"}


def test_a_diverging_run_stops_and_saves_nothing(quiet_imdb):
    runs = quiet_imdb / "runs"
    # A finite but absurd learning rate (1e38): the weights overflow float32 in a few steps.
    with pytest.raises(TrainingError, match="training loss became"):
        train("sentiment", {**TINY_SENTIMENT, "learning_rate": 1e38}, runs_dir=runs, ship=True)
    assert not list(runs.rglob("*.keras"))
    assert not [path for path in (runs / "sentiment").glob("backup-*") if path.is_dir()]
    assert not (quiet_imdb / "saved_models" / "sentiment").exists()


class KillAtEpoch(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.kill_epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.kill_epoch:
            raise KeyboardInterrupt  # As a kill after the backup of the epoch before.


class TrainableWeights(keras.callbacks.Callback):
    """The model's trainable weights when training begins (after a resume's restore) and
    after its last step."""

    at_train_begin = after_last_step = at_epoch_end = None

    def weights(self):
        return [keras.ops.convert_to_numpy(v) for v in self.model.trainable_variables]

    def on_train_begin(self, logs=None):
        self.at_train_begin = self.weights()

    def on_train_batch_end(self, batch, logs=None):
        self.after_last_step = self.weights()

    def on_epoch_end(self, epoch, logs=None):
        self.at_epoch_end = self.weights()  # The average, swapped in for scoring.


def test_a_killed_run_resumes_under_its_own_config_only(quiet_imdb, monkeypatch):
    family, runs = get_entry("sentiment").family, quiet_imdb / "runs"
    # With a weight EMA the average is in the model at an epoch's end (scored, checkpointed):
    # the backup must hold the trained weights, or a resumed run restarts from the average.
    overrides = {**TINY_SENTIMENT, "epochs": 2, "ema_momentum": 0.5}
    callbacks = family.callbacks
    killed, resumed = TrainableWeights(), TrainableWeights()
    with monkeypatch.context() as patch:
        patch.setattr(family, "callbacks", lambda *a: [*callbacks(*a), killed, KillAtEpoch(1)])
        with pytest.raises(KeyboardInterrupt):
            train("sentiment", overrides, runs_dir=runs, evaluate=False)
    (killed_dir,) = [path for path in (runs / "sentiment").iterdir() if path.name.startswith("2")]
    # Another config starts afresh, in a folder of its own.
    other = train("sentiment", {**overrides, "seed": 7}, runs_dir=runs, evaluate=False)
    assert not other["resumed"] and other["epochs_run"] == 2
    assert os.path.basename(other["run_dir"]) != killed_dir.name
    # The same config resumes the killed run, in its folder, and its record counts both epochs.
    with monkeypatch.context() as patch:
        patch.setattr(family, "callbacks", lambda *a: [*callbacks(*a), resumed])
        again = train("sentiment", overrides, runs_dir=runs, evaluate=False)
    assert again["resumed"] and os.path.basename(again["run_dir"]) == killed_dir.name
    assert again["epochs_run"] == 2 and len(again["history"]["loss"]) == 2
    # It went on from the trained weights (equal but for the rounding of TensorFlow's in-place
    # swap, a + b - b), not from their average.
    trained, averaged = killed.after_last_step, killed.at_epoch_end
    assert not all(np.allclose(a, t, rtol=1e-4) for a, t in zip(averaged, trained, strict=True))
    for restored, weights in zip(resumed.at_train_begin, trained, strict=True):
        np.testing.assert_allclose(restored, weights, rtol=1e-5, atol=1e-7)


def test_an_export_that_loses_the_race_for_a_version_takes_the_next(tmp_path, monkeypatch):
    import zoo.export

    serving = tmp_path / "serving"
    (serving / "1").mkdir(parents=True)
    (serving / "1" / "saved_model.pb").write_bytes(b"the other export")
    partial = serving / ".partial-x"
    partial.mkdir()
    (partial / "saved_model.pb").write_bytes(b"this export")
    real = zoo.export.next_version
    answers = iter([1])  # As if the other export renamed its folder to 1 just after we looked.
    monkeypatch.setattr(zoo.export, "next_version", lambda d: next(answers, None) or real(d))
    assert zoo.export.publish_version(partial, serving) == 2
    assert (serving / "1" / "saved_model.pb").read_bytes() == b"the other export"
    assert (serving / "2" / "saved_model.pb").read_bytes() == b"this export"
