"""The public Python API: `zoo.load`, `zoo.build`, `zoo.list_entries`."""

from __future__ import annotations

from pathlib import Path

import keras

import zoo.entries  # noqa: F401  (registers the entries)
from zoo.config import resolve_config
from zoo.errors import ZooError
from zoo.registry import entry_names, get_entry
from zoo.shipping import recover


def list_entries() -> list[str]:
    """Names of the registered zoo entries."""
    return entry_names()


def build(name: str, **config) -> keras.Model:
    """A fresh, untrained model of entry `name`'s family with config overrides applied.

    Raises:
        UnknownEntryError: `name` is not registered (the message lists those that are).
        ConfigError: an override key is unknown or its value is invalid.
    """
    entry = get_entry(name)
    return entry.family.build(resolve_config(entry.config_class, config))


def model_path(name: str) -> Path:
    return get_entry(name).directory / "model.keras"


def load(name: str, path: str | Path | None = None) -> keras.Model:
    """The pretrained model of entry `name` (from `saved_models/<name>/model.keras`, or `path`).

    Raises:
        UnknownEntryError: `name` is not registered.
        ZooError: the entry has no pretrained model yet (train it with `make train-<name>`).
    """
    if path is None:
        recover(get_entry(name).directory)  # Finishes a model replacement a kill interrupted.
    path = Path(path) if path is not None else model_path(name)
    if not path.exists():
        raise ZooError(
            f"No pretrained model for '{name}' at {path}. Train one with `make train-{name}`."
        )
    entry = get_entry(name)
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types for a corrupt, cut or foreign file.
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ZooError(
            f"Cannot load {path} as a Keras model ({type(error).__name__}: {reason[:200]}). "
            f"Is it a complete .keras file written by `make train-{name}`?"
        ) from error
    entry.family.check_model(model, path)
    return model
