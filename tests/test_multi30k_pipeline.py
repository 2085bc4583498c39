"""The Multi30k builder: raw sentences round-trip exactly from a tiny mirror; misaligned, cut or
corrupt files are refused in one line naming them; the real splits have their known sizes."""

import gzip
from pathlib import Path

import pytest

from pipelines import mirror, multi30k
from pipelines.multi30k import Multi30k, load_multi30k
from tests.helpers.mirrors import (
    check_as_recorded,
    nothing_prepared,
    on_real_data,
    real_dataset,
    refusal,
    split_sizes,
    use_private_mirror,
)

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
    return write_multi30k_mirror(use_private_mirror(monkeypatch, tmp_path))


def pairs_of(split: str) -> list[tuple[str, str]]:
    return [
        (example["de"].decode("utf-8"), example["en"].decode("utf-8"))
        for example in load_multi30k(split).as_numpy_iterator()
    ]


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
    message = refusal(Multi30k, "not line-aligned")
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
    assert str(path) in refusal(Multi30k, "cut or corrupt")
    assert nothing_prepared(multi30k_mirror)


def test_with_checks_on_files_other_than_the_recorded_ones_are_refused(
    multi30k_mirror, monkeypatch
):
    monkeypatch.setenv("ZOO_VERIFY_CHECKSUMS", "1")
    message = refusal(Multi30k, "checksums.tsv")
    assert str(multi30k_mirror / "train.de.gz") in message
    assert "is not the upstream multi30k/train.de.gz" in message and "637,044 bytes" in message
    assert nothing_prepared(multi30k_mirror)


def test_with_checks_on_a_split_of_the_wrong_size_is_refused(multi30k_mirror, monkeypatch):
    # Files that pass their checksums (the tiny mirror's, recorded here) but not the split sizes.
    check_as_recorded(monkeypatch, multi30k_mirror)
    assert "Multi30k train has 3 pairs, expected 29,000" in refusal(Multi30k)
    assert nothing_prepared(multi30k_mirror)


@on_real_data("multi30k")
def test_real_split_sizes_and_first_pair():
    real_multi30k = real_dataset("multi30k")
    sizes = split_sizes(Multi30k)
    assert sizes == {"train": 29_000, "validation": 1_014, "test": 1_000}
    first_lines = []
    for language in ("de", "en"):
        with gzip.open(real_multi30k / f"train.{language}.gz", "rt", encoding="utf-8") as file:
            first_lines.append(file.readline().removesuffix("\n"))
    first = next(load_multi30k("train").as_numpy_iterator())
    assert (first["de"].decode("utf-8"), first["en"].decode("utf-8")) == tuple(first_lines)
    assert first_lines[0] == "Zwei junge weiße Männer sind im Freien in der Nähe vieler Büsche."
    # The whole test split, pair by pair, is its files' lines.
    test_lines = [
        gzip.decompress((real_multi30k / f"test_2016_flickr.{language}.gz").read_bytes())
        .decode("utf-8")
        .splitlines()
        for language in ("de", "en")
    ]
    assert pairs_of("test") == list(zip(*test_lines))
