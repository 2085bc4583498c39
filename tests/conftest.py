import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

POSITIVE = [
    "A wonderful, moving film. Great acting and a great story!",
    "I loved it: brilliant, funny and beautiful. Great fun.",
    "One of the best films of the year; wonderful and great.",
    "Great cast, great script, loved every minute of it.",
]
NEGATIVE = [
    "An awful, boring mess. Terrible acting and a bad plot.",
    "I hated it: dull, stupid and far too long. Awful.",
    "The worst film of the year; boring and bad.<br /><br />Avoid.",
    "Bad cast, bad script, boring from start to end.",
]


def write_imdb_archive(directory: Path, copies: int = 3) -> Path:
    """A tiny aclImdb_v1.tar.gz with the upstream layout: train/test pos/neg and train/unsup."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "aclImdb_v1.tar.gz"
    with tarfile.open(path, "w:gz") as archive:

        def add(name, text):
            data = text.encode("utf-8")
            info = tarfile.TarInfo(f"aclImdb/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))

        add("README", "fixture")
        for split in ("train", "test"):
            for copy in range(copies):
                for index, text in enumerate(POSITIVE):
                    add(f"{split}/pos/{copy * 10 + index}_9.txt", text)
                for index, text in enumerate(NEGATIVE):
                    add(f"{split}/neg/{copy * 10 + index}_2.txt", text)
        for index, text in enumerate(POSITIVE + NEGATIVE):
            add(f"train/unsup/{index}_0.txt", text)
    return path


# Lines of a tiny PTB mirror in Mikolov's format: lower-cased, `<unk>`, `N`, spaces around.
PTB_LINES = {
    "ptb.train.txt": [" the <unk> rose N % to $ N million ", " <unk> <unk> sold N shares "],
    "ptb.valid.txt": [" mr. <unk> declined to comment "],
    "ptb.test.txt": [" no it was n't black monday ", " but ", " nobody knew "],
}


def write_ptb_mirror(directory: Path) -> Path:
    """ptb/ptb.{train,valid,test}.txt holding PTB_LINES."""
    folder = directory / "ptb"
    folder.mkdir(parents=True, exist_ok=True)
    for filename, lines in PTB_LINES.items():
        (folder / filename).write_text("".join(line + "\n" for line in lines))
    return folder


@pytest.fixture(autouse=True, scope="session")
def unverified_tiny_mirrors():
    """The tiny mirrors the tests write use the upstream file names but not their bytes or
    split sizes: the data checks (pipelines/mirror.py) are off, except for real-data tests."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ZOO_VERIFY_CHECKSUMS", "0")
        yield


@pytest.fixture(autouse=True)
def verified_real_data(request, monkeypatch):
    if request.node.get_closest_marker("real_data"):
        monkeypatch.setenv("ZOO_VERIFY_CHECKSUMS", "1")


@pytest.fixture
def imdb_fixture(tmp_path, monkeypatch):
    """Points the pipelines at a tiny IMDB mirror and a private TFDS data dir."""
    write_imdb_archive(tmp_path / "mirror" / "imdb")
    monkeypatch.setenv("ZOO_DATA_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path / "tfds"))
    return tmp_path


def real_mirror() -> Path | None:
    mirror = os.environ.get("ZOO_DATA_MIRROR")
    return Path(mirror) if mirror and (Path(mirror) / "imdb").exists() else None


requires_mirror = pytest.mark.skipif(
    real_mirror() is None, reason="ZOO_DATA_MIRROR does not point at the dataset mirror"
)

TINY_SENTIMENT = {
    "vocabulary_size": 40,
    "sequence_length": 16,
    "embedding_dim": 8,
    "embedding_init": "random",
    "units": 4,
    "epochs": 1,
    "batch_size": 4,
    "validation_fraction": 0.25,
    "bucket_step": 8,
}


def run_on_jax(script: str, *args: str, timeout: int = 300) -> str:
    """Runs `script` in a fresh interpreter on the JAX backend; asserts success, returns stdout."""
    pytest.importorskip("jax")
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        check=False,
        capture_output=True,
        text=True,
        env=subprocess_env(KERAS_BACKEND="jax"),
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def subprocess_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERAS_")}
    env.update({"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}, **extra)
    return env


def pytest_collection_modifyitems(items):
    """Groups for `pytest -n 2 --dist loadgroup`: each test file runs on one worker (its
    module fixtures built once), except the contract suite, whose tests are grouped by entry so
    that its entries spread over the workers (each entry's smoke model still built once)."""
    for item in items:
        group = item.module.__name__
        name = getattr(getattr(item, "callspec", None), "params", {}).get("name")
        if group.endswith("test_entry_contract") and name:
            group = f"{group}[{name}]"
        item.add_marker(pytest.mark.xdist_group(group))
