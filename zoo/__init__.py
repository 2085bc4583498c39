"""An RNN model zoo for Keras 3: `zoo.load(name)`, `zoo.build(name, **config)`."""

from zoo.api import build, list_entries, load
from zoo.errors import ConfigError, InputError, UnknownEntryError, ZooError

__all__ = [
    "ConfigError",
    "InputError",
    "UnknownEntryError",
    "ZooError",
    "build",
    "list_entries",
    "load",
]
