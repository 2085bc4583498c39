"""Data checks (issue 16 item 6): every upstream file matches its recorded checksum and every
split its size before anything is cached; a cache built from other bytes is rebuilt; a missing
mirror, no network or a corrupt archive fails fast, with one line naming the file."""

import io
import os
import shutil
import subprocess
import sys
import time
import urllib.error
from pathlib import Path

import pytest

from pipelines import atis, mirror, ptb
from pipelines.atis import Atis
from pipelines.conll2003 import Conll2003, read_conll_file
from pipelines.imdb import AclImdb
from pipelines.ptb import Ptb
from tests.conftest import REPO, subprocess_env, write_imdb_archive, write_ptb_mirror
from tests.tagging_fixtures import write_atis_mirror
from zoo.errors import ZooError


def find_real_data() -> Path | None:
    """The dataset mirror: ZOO_DATA_MIRROR as the tests start, else ../shared/data."""
    for folder in (os.environ.get("ZOO_DATA_MIRROR"), REPO.parent / "shared" / "data"):
        if folder and all((Path(folder) / name).is_dir() for name in ("atis", "conll2003", "ptb")):
            return Path(folder)
    return None


REAL_DATA = find_real_data()
requires_real_data = pytest.mark.skipif(
    REAL_DATA is None, reason="needs the dataset mirror (ZOO_DATA_MIRROR or ../shared/data)"
)


@pytest.fixture
def verified(tmp_path, monkeypatch):
    """Checks on (the tests' default is off), a mirror folder and a private TFDS data dir."""
    monkeypatch.setenv("ZOO_VERIFY_CHECKSUMS", "1")
    monkeypatch.setenv("ZOO_DATA_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path / "tfds"))
    return tmp_path


def copy_real(dataset: str, root: Path) -> Path:
    shutil.copytree(REAL_DATA / dataset, root / "mirror" / dataset)
    return root / "mirror" / dataset


def cut_lines(path: Path, keep: int) -> None:
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:keep]))


def nothing_prepared(root: Path) -> bool:
    return not list((root / "tfds").rglob("*.tfrecord*"))


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert isinstance(error.value, ZooError) and "\n" not in message, message
    return message


@requires_real_data
def test_a_cut_atis_file_is_refused_not_cached_and_the_good_one_then_works(verified):
    folder = copy_real("atis", verified)
    for name in ("seq.in", "seq.out", "label"):  # Cut consistently: 1,000 of 4,478 lines.
        cut_lines(folder / "train" / name, 1000)
    with pytest.raises(mirror.DataError) as error:
        mirror.prepare(Atis)
    message = one_line(error)
    assert str(folder / "train" / "seq.in") in message
    assert "expected 289,848 bytes" in message and "checksums.tsv" in message
    assert nothing_prepared(verified)

    shutil.rmtree(folder)
    copy_real("atis", verified)
    sizes = {name: split.num_examples for name, split in mirror.prepare(Atis).info.splits.items()}
    assert sizes == {"train": 4478, "dev": 500, "test": 893}


@requires_real_data
def test_a_cut_conll_test_file_is_refused(verified):
    folder = copy_real("conll2003", verified)
    # The first 1,342 of its 3,453 sentences (a blank line ends each, and each -DOCSTART-).
    chunks = (folder / "eng.testb").read_text().split("\n\n")
    sentence_ends = [i for i, chunk in enumerate(chunks) if not chunk.startswith("-DOCSTART-")]
    (folder / "eng.testb").write_text("\n\n".join(chunks[: sentence_ends[1341] + 1]) + "\n\n")
    assert len(read_conll_file(folder / "eng.testb")) == 1342
    with pytest.raises(mirror.DataError, match=r"eng\.testb is not the upstream") as error:
        mirror.prepare(Conll2003)
    assert "expected 748,096 bytes" in one_line(error)
    assert nothing_prepared(verified)


@requires_real_data
def test_a_cache_built_from_a_cut_file_is_rebuilt_from_the_good_one(verified, monkeypatch):
    # What the unchecked pipeline did: it cached the 1,000 lines it was given.
    folder = copy_real("atis", verified)
    good = {name: (folder / "train" / name).read_bytes() for name in ("seq.in", "seq.out", "label")}
    for name in good:
        cut_lines(folder / "train" / name, 1000)
    monkeypatch.setenv("ZOO_VERIFY_CHECKSUMS", "0")
    assert mirror.prepare(Atis).info.splits["train"].num_examples == 1000

    for name, content in good.items():
        (folder / "train" / name).write_bytes(content)
    monkeypatch.setenv("ZOO_VERIFY_CHECKSUMS", "1")
    assert mirror.prepare(Atis).info.splits["train"].num_examples == 4478


def test_unchecked_data_is_rebuilt_when_the_mirror_files_change(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_DATA_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path / "tfds"))
    folder = write_ptb_mirror(tmp_path / "mirror")
    assert mirror.prepare(Ptb).info.splits["test"].num_examples == 3
    (folder / "ptb.test.txt").write_text(" one line \n")
    assert mirror.prepare(Ptb).info.splits["test"].num_examples == 1


def test_a_split_of_the_wrong_size_is_refused(verified, monkeypatch):
    # Files that pass their checksums (the tiny mirror's, recorded here) but not the split sizes.
    folder = write_atis_mirror(verified / "mirror")
    recorded = {
        f"atis/{path.relative_to(folder)}": [(path.stat().st_size, mirror.sha256_of(path), "")]
        for path in folder.rglob("*")
        if path.is_file()
    }
    monkeypatch.setattr(mirror, "recorded_checksums", lambda: recorded)
    with pytest.raises(mirror.DataError) as error:
        mirror.prepare(Atis)
    assert f"ATIS train has 10 utterances, expected {atis.SPLIT_SIZES['train']:,}" in one_line(
        error
    )
    assert nothing_prepared(verified)


def test_a_missing_mirror_folder_is_one_line_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_DATA_MIRROR", str(tmp_path / "no-such-mirror"))
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path / "tfds"))
    with pytest.raises(mirror.MissingDataError) as error:
        mirror.prepare(Ptb)
    message = one_line(error)
    assert "ZOO_DATA_MIRROR" in message and str(tmp_path / "no-such-mirror") in message
    assert "ptb/ptb.train.txt" in message


def test_the_cli_reports_a_missing_mirror_in_one_line(tmp_path):
    env = subprocess_env(
        KERAS_BACKEND="tensorflow",
        ZOO_DATA_MIRROR=str(tmp_path / "no-such-mirror"),
        ZOO_DATA_DIR=str(tmp_path / "tfds"),
    )
    result = subprocess.run(
        [sys.executable, "-m", "zoo", "train", "slots", "--runs-dir", str(tmp_path / "runs")],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("zoo: error:")]
    assert "ZOO_DATA_MIRROR" in line and "no-such-mirror" in line


def test_without_mirror_or_network_downloads_fail_fast_naming_zoo_data_mirror(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("ZOO_DATA_MIRROR", raising=False)
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path / "tfds"))
    # An address nothing answers on, and a short wait: the download's own limits, not a mock.
    monkeypatch.setattr(ptb, "URL", "http://10.255.255.1/ptb")
    monkeypatch.setattr(mirror, "DOWNLOAD_TIMEOUT_S", 0.2)
    start = time.monotonic()
    with pytest.raises(mirror.DataError) as error:
        mirror.prepare(Ptb)
    assert time.monotonic() - start < 5
    message = one_line(error)
    assert "http://10.255.255.1/ptb/ptb.train.txt" in message and "ZOO_DATA_MIRROR" in message


def test_a_download_is_tried_twice_at_most(tmp_path, monkeypatch):
    monkeypatch.delenv("ZOO_DATA_MIRROR", raising=False)
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path / "tfds"))
    calls = []

    def no_network(url, timeout):
        calls.append((url, timeout))
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(mirror.urllib.request, "urlopen", no_network)
    with pytest.raises(mirror.DataError, match="name resolution.*ZOO_DATA_MIRROR"):
        mirror.prepare(Ptb)
    assert calls == [(f"{ptb.URL}/ptb.train.txt", mirror.DOWNLOAD_TIMEOUT_S)] * 2


def test_a_download_with_other_bytes_is_refused_and_deleted(verified, monkeypatch):
    monkeypatch.delenv("ZOO_DATA_MIRROR")
    monkeypatch.setattr(
        mirror.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(b"<html>moved</html>")
    )
    with pytest.raises(mirror.DataError, match=r"ptb\.train\.txt is not.*: 18 bytes.*was deleted"):
        mirror.prepare(Ptb)
    assert not [path for path in (verified / "tfds").rglob("*") if path.is_file()]


@requires_real_data
def test_a_verified_download_is_kept_and_used(verified, monkeypatch):
    source = REAL_DATA / "ptb"
    monkeypatch.delenv("ZOO_DATA_MIRROR")
    opened = []

    def upstream(url, timeout):
        opened.append(url)
        return open(source / url.rsplit("/", 1)[1], "rb")

    monkeypatch.setattr(mirror.urllib.request, "urlopen", upstream)
    sizes = {name: split.num_examples for name, split in mirror.prepare(Ptb).info.splits.items()}
    assert sizes == {"train": 42068, "validation": 3370, "test": 3761} and len(opened) == 3
    shutil.rmtree(verified / "tfds" / "ptb")
    mirror.prepare(Ptb)
    assert len(opened) == 3  # Rebuilt from the kept downloads.


def test_a_corrupt_archive_is_one_line_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_DATA_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path / "tfds"))
    archive = write_imdb_archive(tmp_path / "mirror" / "imdb")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(mirror.DataError, match="cut or corrupt") as error:
        mirror.prepare(AclImdb)
    assert str(archive) in one_line(error)
    assert nothing_prepared(tmp_path)


@requires_real_data
def test_a_cut_imdb_archive_is_refused_by_its_checksum(verified):
    archive = verified / "mirror" / "imdb" / "aclImdb_v1.tar.gz"
    archive.parent.mkdir(parents=True)
    with open(REAL_DATA / "imdb" / "aclImdb_v1.tar.gz", "rb") as file:
        archive.write_bytes(file.read(1 << 20))  # The first MiB only.
    with pytest.raises(mirror.DataError) as error:
        mirror.prepare(AclImdb)
    message = one_line(error)
    assert str(archive) in message and "1,048,576 bytes" in message
    assert "84,125,825 bytes" in message and "56,695,855 bytes" in message  # Both versions.
