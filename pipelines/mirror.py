"""Where the upstream archives come from: the offline mirror if set, else upstream URLs.

`ZOO_DATA_MIRROR` names a folder laid out like `../shared/data`: one subfolder per dataset
holding the upstream files under their upstream names. Prepared TFRecords go to `ZOO_DATA_DIR`
(default: TFDS's own data dir, `~/tensorflow_datasets`).
"""

from __future__ import annotations

import os
from pathlib import Path

import tensorflow_datasets as tfds


def mirror_file(dataset: str, filename: str) -> Path | None:
    """The mirrored copy of an upstream file, or None when no mirror is configured."""
    mirror = os.environ.get("ZOO_DATA_MIRROR")
    if not mirror:
        return None
    path = Path(mirror).expanduser().resolve() / dataset / filename
    if not path.exists():
        raise FileNotFoundError(
            f"ZOO_DATA_MIRROR is set to {mirror!r} but {path} does not exist. The mirror must "
            f"hold the upstream files of '{dataset}' under their upstream names."
        )
    return path


def fetch(dl_manager: tfds.download.DownloadManager, dataset: str, filename: str, url: str):
    """Returns the local path of an upstream file: mirrored copy, else a download of `url`."""
    return mirror_file(dataset, filename) or Path(dl_manager.download(url))


def data_dir() -> str | None:
    return os.environ.get("ZOO_DATA_DIR") or None


def prepare(builder_class, **builder_kwargs) -> tfds.core.DatasetBuilder:
    """Instantiates a builder and writes its TFRecords once (later calls reuse them)."""
    builder = builder_class(data_dir=builder_kwargs.pop("data_dir", None) or data_dir())
    # No GCS lookup: the zoo's builders are not hosted there, and CI machines have no network.
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False)
    )
    return builder
