"""Typed, validated configs for zoo entries.

Every entry's config is a dataclass. `resolve_config` applies overrides (from Python or from
`--set key=value` on the command line), converting strings to each field's type and rejecting
unknown keys and out-of-range choices with a message that lists what is accepted.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from pathlib import Path
from typing import Any

from zoo.errors import ConfigError
from zoo.layers.recurrent_stack import CELL_LAYERS, MERGE_MODES

# The recurrent cells of zoo.layers.RecurrentStack, in the order of its CELL_LAYERS table.
CELLS = tuple(CELL_LAYERS)


def choice(default: str, choices: tuple[str, ...], help: str = "") -> Any:
    """A string field restricted to `choices`."""
    return dataclasses.field(default=default, metadata={"choices": choices, "help": help})


LEARNING_RATE_SCHEDULES = ("constant", "cosine", "plateau")
OPTIMIZERS = ("adam", "sgd")
DISTRIBUTIONS = ("none", "data_parallel")
# Far above any recipe here; a typo such as units=10**8 fails at once, not after 8 GB.
MAX_UNITS, MAX_LAYERS = 16384, 64


@dataclasses.dataclass
class TrainingConfig:
    """Settings every entry shares: optimisation, BPTT clipping, data split, seed."""

    seed: int = 1337
    epochs: int = 8
    batch_size: int = 64
    # "sgd": plain stochastic gradient descent, the classic recipe of RNN language models
    # (Zaremba et al. 2014), which wants a rate near 1 to 20 and clipping; "adam" wants ~1e-3.
    optimizer: str = choice("adam", OPTIMIZERS)
    learning_rate: float = 1e-3
    # "cosine": each epoch's rate follows a half cosine from `learning_rate` toward 0 at `epochs`.
    # "plateau": the rate is divided by 4 after each epoch whose validation metric is no better
    # than the best so far (`keras.callbacks.ReduceLROnPlateau`).
    learning_rate_schedule: str = choice("constant", LEARNING_RATE_SCHEDULES)
    # Gradient clipping for BPTT (0 disables; at most one of the three may be set): the norm of
    # each weight's gradient (clipnorm), the norm of all gradients together (global_clipnorm),
    # or each gradient value (clipvalue).
    clipnorm: float = 1.0
    global_clipnorm: float = 0.0
    clipvalue: float = 0.0
    # Exponential moving average of the weights (0 disables): epochs are evaluated, selected
    # and saved with the averaged weights, which are steadier than the last step's.
    ema_momentum: float = 0.0
    # Fraction of the official training split held out for model selection; the test split
    # is only ever used for the final number.
    validation_fraction: float = 0.1
    # Stop when the validation metric has not improved for this many epochs (0 disables).
    early_stopping_patience: int = 2
    # Cap on training steps per epoch (0 = the whole split); for smoke runs only.
    steps_per_epoch: int = 0
    # Post-training weight quantization: "int8" quantizes the embeddings and dense layers with
    # Keras's `model.quantize("int8")` after the float evaluation, and ships the int8 model if
    # its test metric is at most 0.2 points below float's (`zoo.quantize`); both are recorded.
    quantize: str = choice("none", ("none", "int8"))
    # "data_parallel": every local accelerator trains on a slice of each batch
    # (`keras.distribution.DataParallel`, JAX backend; the same API spans several hosts).
    distribute: str = choice("none", DISTRIBUTIONS)

    def validate_training(self) -> None:
        """Raises ConfigError for training settings no run can use (NaN, inf, negative, ...)."""
        for name in ("learning_rate", "clipnorm", "global_clipnorm", "clipvalue"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0 or (name == "learning_rate" and value == 0):
                bound = "a finite number above 0" if name == "learning_rate" else "finite and >= 0"
                raise ConfigError(f"Config key '{name}' must be {bound}, got {value}.")
        self.require_positive("epochs", "batch_size")
        for name in ("early_stopping_patience", "steps_per_epoch"):
            if getattr(self, name) < 0:
                raise ConfigError(
                    f"Config key '{name}' must be at least 0, got {getattr(self, name)}."
                )
        self.require_rates("validation_fraction", "ema_momentum")

    def require_positive(self, *names: str) -> None:
        """Raises ConfigError unless each named key is at least 1."""
        for name in names:
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"Config key '{name}' must be at least 1, got {getattr(self, name)}."
                )

    def require_rates(self, *names: str) -> None:
        """Raises ConfigError unless each named key is a rate in [0, 1)."""
        for name in names:
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(
                    f"Config key '{name}' must be in [0, 1), got {getattr(self, name)}."
                )


@dataclasses.dataclass
class RecurrentEncoderConfig:
    """The recurrent encoder of every family: the arguments of `zoo.layers.RecurrentStack`,
    written here once. A family's config inherits them (and may change their defaults); its
    `build` hands `encoder_arguments()` to the model, which passes them to its stack."""

    cell: str = choice("lstm", CELLS)
    # Hidden size of each layer, per direction.
    units: int = 128
    num_layers: int = 1
    bidirectional: bool = True
    merge_mode: str = choice("concat", MERGE_MODES)
    # Dropout on each recurrent layer's inputs (and the family's output layers).
    dropout: float = 0.0
    # Dropout on the recurrent state; it turns the fused cuDNN kernels off.
    recurrent_dropout: float = 0.0
    # Add each layer's input to its output where the widths match.
    residual: bool = False

    def encoder_arguments(self) -> dict[str, Any]:
        """The `RecurrentStack` keyword arguments these fields set."""
        return {field.name: getattr(self, field.name) for field in ENCODER_FIELDS}

    def validate(self) -> None:
        self.require_positive("units", "num_layers")
        self.require_rates("dropout", "recurrent_dropout")
        for name, largest in (("units", MAX_UNITS), ("num_layers", MAX_LAYERS)):
            if getattr(self, name) > largest:
                raise ConfigError(
                    f"Config key '{name}' must be at most {largest}, got {getattr(self, name)}."
                )


ENCODER_FIELDS = dataclasses.fields(RecurrentEncoderConfig)


def _convert(name: str, value: Any, field_type: Any) -> Any:
    """Converts `value` (often a CLI string) to `field_type`, or raises ConfigError."""
    optional = typing.get_origin(field_type) is typing.Union and type(None) in typing.get_args(
        field_type
    )
    if optional:
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        field_type = next(t for t in typing.get_args(field_type) if t is not type(None))
    try:
        if field_type is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
                return value.lower() in ("true", "1", "yes")
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            raise ValueError
        if field_type is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if field_type is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if field_type is str:
            if not isinstance(value, str):
                raise ValueError
            return value
    except (TypeError, ValueError):
        pass
    else:
        raise ConfigError(f"Config key '{name}' has unsupported type {field_type!r}.")
    raise ConfigError(
        f"Config key '{name}' expects {getattr(field_type, '__name__', field_type)}, got {value!r}."
    )


def resolve_config(config_class: type, overrides: dict[str, Any] | None = None):
    """Returns `config_class()` with `overrides` applied and validated.

    Raises:
        ConfigError: for an unknown key (the message lists the accepted keys), a value that
            does not convert to the field's type, or a value outside the field's choices.
    """
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    hints = typing.get_type_hints(config_class)
    values = {}
    for key, value in (overrides or {}).items():
        if key not in fields:
            raise ConfigError(
                f"Unknown config key '{key}' for {config_class.__name__}. "
                f"Accepted keys: {', '.join(sorted(fields))}."
            )
        converted = _convert(key, value, hints[key])
        choices = fields[key].metadata.get("choices")
        if choices and converted not in choices:
            raise ConfigError(
                f"Config key '{key}' must be one of {', '.join(choices)}; got {converted!r}."
            )
        values[key] = converted
    config = config_class(**values)
    if isinstance(config, TrainingConfig):
        config.validate_training()
    validate = getattr(config, "validate", None)
    if validate:
        validate()
    return config


def parse_overrides(pairs: list[str] | None) -> dict[str, str]:
    """Parses `["key=value", ...]` (the CLI's `--set`) into a dict."""
    overrides = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {pair!r}.")
        overrides[key.strip()] = value.strip()
    return overrides


def config_to_dict(config) -> dict[str, Any]:
    return dataclasses.asdict(config)


def save_config(config, path: str | Path) -> None:
    Path(path).write_text(json.dumps(config_to_dict(config), indent=2) + "\n")
