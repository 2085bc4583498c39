"""Tiny data mirrors for the dataset builders' tests: a private mirror and TFDS data dir, the
one-line errors a cut or foreign file must give, and checksum checks switched on."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines import mirror
from tests.conftest import real_mirror, requires_mirror
from zoo.errors import ZooError


def use_private_mirror(monkeypatch, tmp_path: Path) -> Path:
    """Points ZOO_DATA_MIRROR at `tmp_path / "mirror"` and ZOO_DATA_DIR at `tmp_path / "tfds"`
    (checksum checks stay off: conftest); the mirror's folder."""
    monkeypatch.setenv("ZOO_DATA_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path / "tfds"))
    return tmp_path / "mirror"


def one_line(error: pytest.ExceptionInfo) -> str:
    """The message of a raised ZooError, asserted to be one line."""
    message = str(error.value)
    assert isinstance(error.value, ZooError) and "\n" not in message, message
    return message


def nothing_prepared(folder: Path) -> bool:
    """Whether no TFDS split was written beside the mirror's dataset `folder`."""
    return not list((folder.parent.parent / "tfds").rglob("*.tfrecord*"))


def check_as_recorded(monkeypatch, folder: Path) -> None:
    """Turns checksum checks on, with the files of the mirror's dataset `folder` recorded as
    the upstream ones: they pass their checksums, whatever else is checked."""
    dataset = folder.name
    recorded = {
        f"{dataset}/{path.name}": [(path.stat().st_size, mirror.sha256_of(path), "")]
        for path in folder.iterdir()
    }
    monkeypatch.setattr(mirror, "recorded_checksums", lambda: recorded)
    monkeypatch.setenv("ZOO_VERIFY_CHECKSUMS", "1")


def refusal(builder_class, match: str | None = None) -> str:
    """The one-line DataError (matching `match`) that preparing `builder_class` raises."""
    with pytest.raises(mirror.DataError, match=match) as error:
        mirror.prepare(builder_class)
    return one_line(error)


def real_dataset(dataset: str) -> Path | None:
    """The real mirror's folder of `dataset`; None without the mirror or the folder."""
    root = real_mirror()
    folder = root / dataset if root else None
    return folder if folder is not None and folder.is_dir() else None


def on_real_data(dataset: str):
    """Marks a test of the real mirror's `dataset`: `real_data`, skipped without it."""
    skip = pytest.mark.skipif(real_dataset(dataset) is None, reason=f"the mirror has no {dataset}")

    def mark(test):
        return pytest.mark.real_data(requires_mirror(skip(test)))

    return mark


def split_sizes(builder_class) -> dict[str, int]:
    """{split: examples} of the prepared `builder_class`."""
    return {
        name: split.num_examples
        for name, split in mirror.prepare(builder_class).info.splits.items()
    }
