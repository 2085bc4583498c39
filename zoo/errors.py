"""Errors the zoo raises at its interfaces: each names what was wrong and what is accepted."""


class ZooError(ValueError):
    """Base class for user-facing errors (bad entry names, config keys, inputs)."""


class UnknownEntryError(ZooError):
    """A zoo entry name that is not registered."""


class ConfigError(ZooError):
    """An unknown config key or a value of the wrong type or range."""


class InputError(ZooError):
    """An input to `predict` (or the CLI) that the model cannot accept."""


class TrainingError(ZooError):
    """A training run that cannot go on (a non-finite loss, a live run of the same config)."""
