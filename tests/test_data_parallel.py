"""`distribute=data_parallel`: keras.distribution.DataParallel over every local device (JAX),
checked on the CPU split into two virtual devices."""

import json

import pytest

from tests.conftest import TINY_SENTIMENT, run_on_jax
from tests.tagging_fixtures import TINY_TAGGER, tagging_mirror  # noqa: F401 (fixture)
from zoo.errors import ConfigError
from zoo.train import data_distribution, divisible_batches

TRAIN_BOTH_WAYS = """
import json, os, sys
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
import keras
from pathlib import Path
from zoo.train import train
assert len(keras.distribution.list_devices()) == 2
losses = {}
for root, name, overrides in json.loads(sys.argv[1]):
    # Prepared before either run, so that both read the same prepared TFRecords.
    if name == "sentiment":
        from pipelines.imdb import load_imdb
        load_imdb("train")
    else:
        from pipelines.atis import load_atis
        load_atis("train")
    for distribute in ("none", "data_parallel"):
        record = train(name, {**overrides, "distribute": distribute},
                       runs_dir=Path(root) / "runs", evaluate=False)
        monitored = "val_loss" if name == "sentiment" else "val_f1"
        losses[f"{name} {distribute}"] = record["history"]["loss"] + record["history"][monitored]
print("LOSSES", json.dumps(losses))
"""


def test_one_epoch_on_two_devices_matches_one_device(
    imdb_fixture, tagging_mirror  # noqa: F811 (fixture)
):
    # No dropout, so both runs see the same function; batches of 4 split into 2 + 2. The
    # tagger's dev scoring predicts batches of any size: padded to a multiple of the devices.
    # One bucket per entry (bucket_step = sequence_length) and the tagger's softmax head: the
    # least compiling that still covers the data-parallel path.
    sentiment = {**TINY_SENTIMENT, "dropout": 0.0, "embedding_dropout": 0.0, "bucket_step": 16}
    tagger = {
        **TINY_TAGGER,
        "dropout": 0.0,
        "embedding_dropout": 0.0,
        "word_dropout": 0.0,
        "bucket_step": TINY_TAGGER["sequence_length"],
        "head": "softmax",
    }
    jobs = [
        (str(imdb_fixture), "sentiment", sentiment),
        (str(tagging_mirror), "slots", tagger),
    ]
    output = run_on_jax(TRAIN_BOTH_WAYS, json.dumps(jobs), timeout=600)
    assert output.count("Data-parallel training on 2 devices: cpu:0, cpu:1") == 2
    losses = json.loads(output.split("LOSSES", 1)[1])
    for name in ("sentiment", "slots"):
        assert losses[f"{name} none"] == pytest.approx(losses[f"{name} data_parallel"], abs=1e-4)


def test_batches_are_cut_to_a_multiple_of_the_devices():
    import tensorflow as tf

    dataset = tf.data.Dataset.range(7).batch(3).map(lambda x: (x, x * 10))
    cut = [(x.tolist(), y.tolist()) for x, y in divisible_batches(dataset, 2).as_numpy_iterator()]
    assert cut == [([0, 1], [0, 10]), ([3, 4], [30, 40])]


def test_a_backend_without_keras_distribution_says_so():
    import keras

    from zoo.config import resolve_config
    from zoo.registry import get_entry

    if keras.backend.backend() != "jax":
        sentiment = get_entry("sentiment")
        config = resolve_config(sentiment.config_class, {"distribute": "data_parallel"})
        with pytest.raises(ConfigError, match="JAX backend"):
            data_distribution(config, sentiment.family)
