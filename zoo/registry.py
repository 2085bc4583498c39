"""The registry of zoo entries: a name bound to a family, a dataset, a config and artifacts."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from zoo.errors import UnknownEntryError

if TYPE_CHECKING:
    from zoo.family import Family

SAVED_MODELS_DIR = Path(__file__).resolve().parent.parent / "saved_models"


@dataclasses.dataclass(frozen=True)
class Entry:
    """One zoo entry.

    Args:
        name: str. The entry's name (`make train-<name>`, `zoo.load(name)`).
        family: Family. Builds the model, its datasets, its metric and its serving function.
        config_class: type. The entry's config dataclass; its defaults are the recipe.
        description: str. One line for `python -m zoo list` and README.
    """

    name: str
    family: Family
    config_class: type
    description: str

    @property
    def directory(self) -> Path:
        return SAVED_MODELS_DIR / self.name


_ENTRIES: dict[str, Entry] = {}


def register(entry: Entry) -> Entry:
    if entry.name in _ENTRIES:
        raise ValueError(f"Zoo entry '{entry.name}' is already registered.")
    _ENTRIES[entry.name] = entry
    return entry


def entry_names() -> list[str]:
    return sorted(_ENTRIES)


def get_entry(name: str) -> Entry:
    if not isinstance(name, str) or name not in _ENTRIES:
        raise UnknownEntryError(
            f"Unknown zoo entry {name!r}. Known entries: {', '.join(entry_names())}."
        )
    return _ENTRIES[name]
