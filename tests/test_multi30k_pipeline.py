"""The Multi30k builder: raw sentences round-trip exactly from a tiny mirror; misaligned, cut or
corrupt files are refused in one line naming them; the real splits have their known sizes."""

import gzip
from pathlib import Path

import pytest

from pipelines import mirror, multi30k
from pipelines.multi30k import Multi30k, load_multi30k
from tests.conftest import real_mirror, requires_mirror
from zoo.errors import ZooError

# (German, English) pairs of a tiny mirror, by split: non-ASCII, punctuation, spaces kept as
# they are, an empty line, and a U+2028 inside a sentence (only "\n" ends a line).
MULTI30K_PAIRS = {
    "train": [
        ("Ein Mädchen läuft.", "A girl runs."),
        ("Zwei Männer, die Fußball spielen!", "Two men playing soccer!"),
        ("  Ein Hund  ", ""),
    ],
    "validation": [("Ein Hund springt über\u2028den Zaun.", "A dog jumps over the fence.")],
    "test": [("Eine Frau isst ein Eis.", "A woman eats ice cream."), ("Ein Café.", "A café.")],
}
STEMS = {"train": "train", "validation": "val", "test": "test_2016_flickr"}


def write_multi30k_mirror(directory: Path) -> Path:
    """multi30k/{train,val,test_2016_flickr}.{de,en}.gz holding MULTI30K_PAIRS."""
    folder = directory / "multi30k"
    folder.mkdir(parents=True, exist_ok=True)
    for split, pairs in MULTI30K_PAIRS.items():
        for index, language in enumerate(("de", "en")):
            text = "".join(pair[index] + "\n" for pair in pairs)
            with gzip.open(folder / f"{STEMS[split]}.{language}.gz", "wb") as file:
                file.write(text.encode("utf-8"))
    return folder


@pytest.fixture
def multi30k_mirror(tmp_path, monkeypatch) -> Path:
    """A tiny mirror's multi30k folder and a private TFDS data dir (checks off: conftest)."""
    monkeypatch.setenv("ZOO_DATA_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path / "tfds"))
    return write_multi30k_mirror(tmp_path / "mirror")


def pairs_of(split: str) -> list[tuple[str, str]]:
    return [
        (example["de"].decode("utf-8"), example["en"].decode("utf-8"))
        for example in load_multi30k(split).as_numpy_iterator()
    ]


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert isinstance(error.value, ZooError) and "\n" not in message, message
    return message


def nothing_prepared(folder: Path) -> bool:
    return not list((folder.parent.parent / "tfds").rglob("*.tfrecord*"))


def test_raw_sentences_round_trip_exactly(multi30k_mirror):
    for split, pairs in MULTI30K_PAIRS.items():
        assert pairs_of(split) == pairs, split


def test_without_a_mirror_the_upstream_files_are_downloaded(multi30k_mirror, monkeypatch):
    monkeypatch.delenv("ZOO_DATA_MIRROR")
    opened = []

    def upstream(url, timeout):
        opened.append(url)
        return open(multi30k_mirror / url.rsplit("/", 1)[1], "rb")

    monkeypatch.setattr(mirror.urllib.request, "urlopen", upstream)
    assert pairs_of("test") == MULTI30K_PAIRS["test"]
    assert opened == [
        f"{multi30k.URL}/{stem}.{language}.gz"
        for stem in ("train", "val", "test_2016_flickr")
        for language in ("de", "en")
    ]
    assert multi30k.URL == "https://github.com/multi30k/dataset/raw/master/data/task1/raw"


def test_misaligned_files_are_refused_naming_them(multi30k_mirror):
    english = multi30k_mirror / "test_2016_flickr.en.gz"
    with gzip.open(english, "wb") as file:
        file.write(b"A woman eats ice cream.\n")
    with pytest.raises(mirror.DataError, match="not line-aligned") as error:
        mirror.prepare(Multi30k)
    message = one_line(error)
    assert str(multi30k_mirror / "test_2016_flickr.de.gz") in message and str(english) in message
    assert "2 German and 1 English lines" in message
    assert nothing_prepared(multi30k_mirror)


@pytest.mark.parametrize("damage", ["cut", "not gzip", "not UTF-8"])
def test_a_corrupt_file_is_one_line_naming_it(multi30k_mirror, damage):
    path = multi30k_mirror / "test_2016_flickr.en.gz"
    if damage == "cut":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "not gzip":
        path.write_bytes(b"<html>moved</html>")
    else:
        with gzip.open(path, "wb") as file:
            file.write(b"A caf\xe9.\n")  # Latin-1.
    with pytest.raises(mirror.DataError, match="cut or corrupt") as error:
        mirror.prepare(Multi30k)
    assert str(path) in one_line(error)
    assert nothing_prepared(multi30k_mirror)


def test_with_checks_on_files_other_than_the_recorded_ones_are_refused(
    multi30k_mirror, monkeypatch
):
    monkeypatch.setenv("ZOO_VERIFY_CHECKSUMS", "1")
    with pytest.raises(mirror.DataError, match="checksums.tsv") as error:
        mirror.prepare(Multi30k)
    message = one_line(error)
    assert str(multi30k_mirror / "train.de.gz") in message
    assert "is not the upstream multi30k/train.de.gz" in message and "637,044 bytes" in message
    assert nothing_prepared(multi30k_mirror)


def test_with_checks_on_a_split_of_the_wrong_size_is_refused(multi30k_mirror, monkeypatch):
    # Files that pass their checksums (the tiny mirror's, recorded here) but not the split sizes.
    recorded = {
        f"multi30k/{path.name}": [(path.stat().st_size, mirror.sha256_of(path), "")]
        for path in multi30k_mirror.iterdir()
    }
    monkeypatch.setattr(mirror, "recorded_checksums", lambda: recorded)
    monkeypatch.setenv("ZOO_VERIFY_CHECKSUMS", "1")
    with pytest.raises(mirror.DataError) as error:
        mirror.prepare(Multi30k)
    assert "Multi30k train has 3 pairs, expected 29,000" in one_line(error)
    assert nothing_prepared(multi30k_mirror)


REAL_MULTI30K = real_mirror() / "multi30k" if real_mirror() else None


@pytest.mark.real_data
@requires_mirror
@pytest.mark.skipif(
    REAL_MULTI30K is None or not REAL_MULTI30K.is_dir(), reason="the mirror has no multi30k"
)
def test_real_split_sizes_and_first_pair():
    sizes = {
        name: split.num_examples for name, split in mirror.prepare(Multi30k).info.splits.items()
    }
    assert sizes == {"train": 29_000, "validation": 1_014, "test": 1_000}
    first_lines = []
    for language in ("de", "en"):
        with gzip.open(REAL_MULTI30K / f"train.{language}.gz", "rt", encoding="utf-8") as file:
            first_lines.append(file.readline().removesuffix("\n"))
    first = next(load_multi30k("train").as_numpy_iterator())
    assert (first["de"].decode("utf-8"), first["en"].decode("utf-8")) == tuple(first_lines)
    assert first_lines[0] == "Zwei junge weiße Männer sind im Freien in der Nähe vieler Büsche."
    # The whole test split, pair by pair, is its files' lines.
    test_lines = [
        gzip.decompress((REAL_MULTI30K / f"test_2016_flickr.{language}.gz").read_bytes())
        .decode("utf-8")
        .splitlines()
        for language in ("de", "en")
    ]
    assert pairs_of("test") == list(zip(*test_lines))
