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
        smoke_config: dict. Config overrides for a tiny model of the entry that builds and
            predicts in seconds (a tiny vocabulary, 2-8 units, one layer, batch 2). The entry
            contract tests (tests/test_entry_contract.py) run every registered entry through
            `zoo.build(name, **smoke_config)`, then `model.preprocessor.adapt(texts)` on a few
            sentences: no dataset is read. Never mutated.
    """

    name: str
    family: Family
    config_class: type
    description: str
    smoke_config: dict = dataclasses.field(default_factory=dict)

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
