"""Where the upstream files come from (the offline mirror if set, else upstream URLs), and the
checks that they are the upstream ones before anything is built or cached from them.

`ZOO_DATA_MIRROR` names a folder laid out like `../shared/data`: one subfolder per dataset
holding the upstream files under their upstream names. Prepared TFRecords go to `ZOO_DATA_DIR`
(default: TFDS's own data dir, `~/tensorflow_datasets`).

Every file a builder reads must match a row of `checksums.tsv` (size and SHA-256), and every
split its recorded size, before any TFRecord is written. The prepared data records the digests
of the files it was built from, and is rebuilt when they are not the recorded ones, so a cache
made from a cut file is never served. `ZOO_VERIFY_CHECKSUMS=0` turns both checks off, for data
of one's own (the tests' tiny mirrors); the cache then follows the mirror files' digests.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from functools import cache
from pathlib import Path

import tensorflow_datasets as tfds

from zoo.errors import ZooError

CHECKSUMS_FILE = Path(__file__).with_name("checksums.tsv")
# Without network a download fails within seconds: a short wait per connection attempt or
# read, and one retry (TFDS's own downloader retried for minutes).
DOWNLOAD_TIMEOUT_S = 20
DOWNLOAD_ATTEMPTS = 2
# Key of the prepared data's metadata.json holding {upstream path: SHA-256} of its sources.
SOURCES_KEY = "zoo_source_sha256"
SKIP_ADVICE = "Nothing was built from it (ZOO_VERIFY_CHECKSUMS=0 skips the check, for own data)."

_logger = logging.getLogger(__name__)


class DataError(ZooError):
    """A dataset file that cannot be fetched, or is cut, corrupt or not the upstream one."""


class MissingDataError(DataError, FileNotFoundError):
    """A dataset file that is not where the mirror (or the manual folder) should hold it."""


def verification_enabled() -> bool:
    """Whether files must match `checksums.tsv` and splits their recorded sizes (the default)."""
    value = os.environ.get("ZOO_VERIFY_CHECKSUMS", "1").strip().lower()
    return value not in ("0", "false", "no", "off")


@cache
def recorded_checksums() -> dict[str, list[tuple[int, str, str]]]:
    """{upstream path: [(size, SHA-256, version), ...]} from `checksums.tsv`."""
    rows: dict[str, list[tuple[int, str, str]]] = {}
    for line in CHECKSUMS_FILE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, size, sha256, version = line.split("\t")
            rows.setdefault(name, []).append((int(size), sha256, version))
    return rows


# Digests by (path, size, mtime): a process that prepares several builders (or the same one
# twice) reads each file once; any change of the file changes its key.
_digests: dict[tuple[str, int, int], str] = {}


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file (hex), computed once per version of the file in a process."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        digest = hashlib.sha256()
        with open(path, "rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
        _digests[key] = digest.hexdigest()
    return _digests[key]


def verify_file(name: str, path: Path, advice: str, shown_as: str = "") -> str:
    """The SHA-256 of `path`, the local copy of upstream file `name` ("atis/train/seq.in").

    Raises:
        DataError: checks are on and the file matches no version recorded for `name`; the
            message names the file (`shown_as`, else `path`), its size and digest, the
            expected ones, and `advice`: what to do.
    """
    digest = sha256_of(path)
    if not verification_enabled():
        return digest
    versions = recorded_checksums().get(name)
    if not versions:
        raise DataError(
            f"No checksum is recorded for {name} in {CHECKSUMS_FILE}: add its size and SHA-256."
        )
    size = path.stat().st_size
    if any(size == expected_size and digest == sha256 for expected_size, sha256, _ in versions):
        return digest
    expected = " or ".join(f"{s:,} bytes, SHA-256 {d} ({v})" for s, d, v in versions)
    raise DataError(
        f"{shown_as or path} is not the upstream {name}: {size:,} bytes, SHA-256 {digest}; "
        f"expected {expected}, as recorded in pipelines/{CHECKSUMS_FILE.name}. {advice} "
        + SKIP_ADVICE
    )


def use_file(builder: tfds.core.DatasetBuilder, name: str, path: Path, advice: str) -> Path:
    """Verifies `path` (upstream file `name`) and records its digest in the data `builder`
    prepares, so that the cache can tell later which bytes it was built from."""
    digest = verify_file(name, path, advice)
    builder.info.metadata.setdefault(SOURCES_KEY, {})[name] = digest
    return path


def mirror_root(wanted: str = "") -> Path | None:
    """The folder `ZOO_DATA_MIRROR` names, or None when no mirror is configured.

    Raises:
        MissingDataError: `ZOO_DATA_MIRROR` names no folder (the message names `wanted`, the
            file looked for).
    """
    mirror = os.environ.get("ZOO_DATA_MIRROR")
    if not mirror:
        return None
    root = Path(mirror).expanduser().resolve()
    if not root.is_dir():
        needed = f" (needed for {wanted})" if wanted else ""
        raise MissingDataError(
            f"ZOO_DATA_MIRROR is set to {mirror!r}, but {root} is not a folder{needed}. Point "
            "ZOO_DATA_MIRROR at a folder laid out like ../shared/data, or unset it to download "
            "from upstream."
        )
    return root


def mirror_file(dataset: str, filename: str) -> Path | None:
    """The mirrored copy of an upstream file, or None when no mirror is configured.

    Raises:
        MissingDataError: the mirror folder, or the file in it, does not exist.
    """
    root = mirror_root(wanted=f"{dataset}/{filename}")
    if root is None:
        return None
    path = root / dataset / filename
    if not path.is_file():
        raise MissingDataError(
            f"ZOO_DATA_MIRROR is set to {os.environ['ZOO_DATA_MIRROR']!r} but {path} does not "
            f"exist. The mirror must hold the upstream files of '{dataset}' under their "
            "upstream names."
        )
    return path


def fetch(
    builder: tfds.core.DatasetBuilder,
    dl_manager: tfds.download.DownloadManager,
    dataset: str,
    filename: str,
    url: str,
) -> Path:
    """The verified local copy of an upstream file: the mirror's, else a download of `url`
    (kept in TFDS's download folder, under `zoo/<dataset>/<filename>`)."""
    name = f"{dataset}/{filename}"
    path = mirror_file(dataset, filename)
    if path is None:
        path = download(url, name, Path(dl_manager.download_dir) / "zoo" / name)
    advice = (
        f"Replace it with the upstream file ({url}), or point ZOO_DATA_MIRROR at a good mirror."
    )
    return use_file(builder, name, path, advice)


def fetcher(
    builder: tfds.core.DatasetBuilder,
    dl_manager: tfds.download.DownloadManager,
    dataset: str,
    url: str,
):
    """`fetch` for the upstream files of one folder: filename -> the verified local copy of
    `{url}/{filename}` (the mirror's `<dataset>/<filename>`, else a download)."""

    def fetch_file(filename: str) -> Path:
        return fetch(builder, dl_manager, dataset, filename, f"{url}/{filename}")

    return fetch_file


def ordered_info(builder: tfds.core.DatasetBuilder, **info) -> tfds.core.DatasetInfo:
    """`builder`'s DatasetInfo from `info` (description, features, homepage, citation...),
    with the metadata in which the mirror records which files the data was built from
    (`built_from_expected_files` checks it) and the files' order kept (no shuffling)."""
    return builder.dataset_info_from_configs(
        metadata=tfds.core.MetadataDict(), disable_shuffling=True, **info
    )


def download(url: str, name: str, destination: Path) -> Path:
    """`destination`, holding upstream file `name` downloaded from `url` unless an earlier
    download is there and verifies. A download that fails the check is deleted, not kept.

    Raises:
        DataError: `url` cannot be fetched (after one retry), or its bytes are not the
            recorded ones.
    """
    if destination.is_file():
        try:
            verify_file(name, destination, "")
            return destination
        except DataError:
            destination.unlink()
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
        try:
            with (
                urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response,
                open(partial, "wb") as file,
            ):
                shutil.copyfileobj(response, file, 1 << 20)
            break
        # URLError, HTTPError and timeouts are OSErrors; a cut response is an HTTPException.
        except (OSError, http.client.HTTPException) as error:
            partial.unlink(missing_ok=True)
            client_error = isinstance(error, urllib.error.HTTPError) and error.code < 500
            if attempt == DOWNLOAD_ATTEMPTS or client_error:
                reason = getattr(error, "reason", None) or error
                raise DataError(
                    f"Could not download {name} from {url} ({reason}). Without network, set "
                    f"ZOO_DATA_MIRROR to a folder laid out like ../shared/data holding {name}."
                ) from error
    try:
        verify_file(name, partial, "The download was deleted; try again later.", shown_as=url)
    except DataError:
        partial.unlink()
        raise
    partial.replace(destination)
    return destination


def check_split_size(
    dataset: str, split: str, count: int, expected: int, unit: str, source: Path
) -> None:
    """Raises DataError when checks are on and a parsed split does not have its known size."""
    if verification_enabled() and count != expected:
        raise DataError(
            f"{dataset} {split} has {count:,} {unit}, expected {expected:,}: {source} is cut or "
            f"not the upstream file. Fetch it again or fix the mirror; nothing was cached."
        )


def data_dir() -> str | None:
    return os.environ.get("ZOO_DATA_DIR") or None


def prepare(builder_class, **builder_kwargs) -> tfds.core.DatasetBuilder:
    """Instantiates a builder and writes its TFRecords once (later calls reuse them).

    Prepared data built from other files than the expected ones is deleted and built again,
    from files that pass the checks (`built_from_expected_files`).
    """
    directory = builder_kwargs.pop("data_dir", None) or data_dir()
    # One process prepares a dataset at a time (parallel test workers, two training runs);
    # the others wait, then find it prepared.
    lock_dir = directory or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
    with _preparation_lock(Path(lock_dir).expanduser(), builder_class.name):
        return _prepare(builder_class, directory)


@contextlib.contextmanager
def _preparation_lock(directory: Path, name: str):
    # The lock file lives in the system's temporary folder, not among the prepared data.
    key = hashlib.sha256(str(directory.resolve()).encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"zoo-prepare-{name}-{key}.lock"
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _prepare(builder_class, directory) -> tfds.core.DatasetBuilder:
    builder = builder_class(data_dir=directory)
    if builder.is_prepared() and not built_from_expected_files(builder):
        _logger.warning(
            "%s: the prepared data at %s was not built from the expected files; rebuilding it.",
            builder.name,
            builder.data_dir,
        )
        builder.data_path.rmtree()
        builder = builder_class(data_dir=directory)
    # No GCS lookup: the zoo's builders are not hosted there, and CI machines have no network.
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False)
    )
    return builder


def built_from_expected_files(builder: tfds.core.DatasetBuilder) -> bool:
    """Whether prepared data was built from the expected files: the recorded versions when
    checks are on; else the mirror's current files (any, without a mirror). Data prepared
    before the zoo recorded its sources, or by other code, never was."""
    sources = (builder.info.metadata or {}).get(SOURCES_KEY)
    if not sources:
        return False
    if verification_enabled():
        recorded = recorded_checksums()
        return all(
            any(digest == sha256 for _, sha256, _ in recorded.get(name, ()))
            for name, digest in sources.items()
        )
    root = mirror_root()
    if root is None:
        return True
    return all(
        (root / name).is_file() and sha256_of(root / name) == digest
        for name, digest in sources.items()
    )
