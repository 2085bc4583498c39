import keras
import pytest

import zoo
from zoo.config import parse_overrides, resolve_config
from zoo.errors import ConfigError, UnknownEntryError
from zoo.models.text_classifier import TextClassifierConfig
from zoo.registry import Entry, get_entry, register
from zoo.train import scheduled_learning_rate


def test_overrides_are_converted_from_strings():
    config = resolve_config(
        TextClassifierConfig,
        {"units": "32", "bidirectional": "false", "learning_rate": "0.01", "cell": "lstm"},
    )
    assert (config.units, config.bidirectional, config.learning_rate, config.cell) == (
        32,
        False,
        0.01,
        "lstm",
    )


def test_unknown_key_lists_accepted_keys():
    with pytest.raises(ConfigError, match="Unknown config key 'colour'.*Accepted keys:.*units"):
        resolve_config(TextClassifierConfig, {"colour": "red"})


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"units": "many"}, "'units' expects int"),
        ({"units": 2.5}, "'units' expects int"),
        ({"bidirectional": "maybe"}, "'bidirectional' expects bool"),
        (
            {"cell": "transformer"},
            "'cell' must be one of elman, jordan, lstm, peephole_lstm, gru, gru_cho",
        ),
        ({"dropout": "1.5"}, "'dropout' must be in"),
        ({"units": "0"}, "'units' must be at least 1"),
    ],
)
def test_bad_values_name_the_key_and_what_is_accepted(overrides, message):
    with pytest.raises(ConfigError, match=message):
        resolve_config(TextClassifierConfig, overrides)


def test_parse_overrides():
    assert parse_overrides(["units=8", " cell = gru "]) == {"units": "8", "cell": "gru"}
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["units"])


def test_unknown_entry_lists_known_entries():
    with pytest.raises(UnknownEntryError, match="Known entries: .*sentiment"):
        zoo.load("sentimental")
    with pytest.raises(UnknownEntryError):
        zoo.build(42)


def test_duplicate_registration_raises():
    with pytest.raises(ValueError, match="already registered"):
        register(get_entry("sentiment"))


def test_build_rejects_unknown_config_keys():
    with pytest.raises(ConfigError, match="Unknown config key 'hidden'"):
        zoo.build("sentiment", hidden=3)


def test_entry_dataclass_is_frozen():
    entry = get_entry("sentiment")
    assert isinstance(entry, Entry)
    assert entry.directory.name == "sentiment"


def test_cosine_learning_rate_schedule_decays_toward_zero_by_epoch():
    overrides = {"learning_rate": "0.01", "epochs": "4"}
    constant = resolve_config(TextClassifierConfig, overrides)
    assert [scheduled_learning_rate(constant, epoch) for epoch in range(4)] == [0.01] * 4
    cosine = resolve_config(TextClassifierConfig, {**overrides, "learning_rate_schedule": "cosine"})
    rates = [scheduled_learning_rate(cosine, epoch) for epoch in range(4)]
    assert rates == pytest.approx([0.01, 0.0085355, 0.005, 0.0014645], rel=1e-4)
    with pytest.raises(ConfigError, match="learning_rate_schedule"):
        resolve_config(TextClassifierConfig, {"learning_rate_schedule": "linear"})


def test_optimizer_is_chosen_by_the_config_with_its_clipping():
    family = get_entry("sentiment").family
    sgd = resolve_config(
        TextClassifierConfig, {"optimizer": "sgd", "learning_rate": "20", "clipnorm": "0.25"}
    )
    optimizer = family.optimizer(sgd)
    assert isinstance(optimizer, keras.optimizers.SGD)
    assert float(optimizer.learning_rate) == 20.0 and optimizer.clipnorm == 0.25
    assert isinstance(
        family.optimizer(resolve_config(TextClassifierConfig, {})), keras.optimizers.Adam
    )
    with pytest.raises(ConfigError, match="optimizer"):
        resolve_config(TextClassifierConfig, {"optimizer": "rmsprop"})


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"learning_rate": "nan"}, "'learning_rate' must be a finite number above 0"),
        ({"learning_rate": "inf"}, "'learning_rate' must be a finite number above 0"),
        ({"learning_rate": "-0.1"}, "'learning_rate' must be a finite number above 0"),
        ({"clipnorm": "-1"}, "'clipnorm' must be finite and >= 0"),
        ({"early_stopping_patience": "-2"}, "'early_stopping_patience' must be at least 0"),
        ({"units": str(10**8)}, "'units' must be at most 16384"),
        ({"num_layers": "1000"}, "'num_layers' must be at most 64"),
    ],
)
def test_nonsense_training_values_are_refused_at_config_time(overrides, message):
    with pytest.raises(ConfigError, match=message):
        resolve_config(TextClassifierConfig, overrides)
