"""Multi30k task 1 (German-English image descriptions) as a TFDS builder over the raw files."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import ClassVar

import tensorflow as tf
import tensorflow_datasets as tfds

from pipelines import mirror

URL = "https://github.com/multi30k/dataset/raw/master/data/task1/raw"
LANGUAGES = ("de", "en")
# Split name -> upstream file stem; the test split is the 2016 Flickr test set.
SPLIT_STEMS = {"train": "train", "validation": "val", "test": "test_2016_flickr"}
# Sentence pairs per split: a cut file is refused before anything is cached.
SPLIT_SIZES = {"train": 29_000, "validation": 1_014, "test": 1_000}

CITATION = """@inproceedings{elliott-etal-2016-multi30k,
  title     = {{M}ulti30{K}: Multilingual {E}nglish-{G}erman Image Descriptions},
  author    = {Elliott, Desmond and Frank, Stella and Sima'an, Khalil and Specia, Lucia},
  booktitle = {Proceedings of the 5th Workshop on Vision and Language},
  year      = {2016},
  pages     = {70--74},
}"""


class Multi30k(tfds.core.GeneratorBasedBuilder):
    """Multi30k task 1: German and English descriptions of Flickr30k images, one pair per line
    of the upstream `{train,val,test_2016_flickr}.{de,en}.gz`; train 29,000 / validation 1,014 /
    test 1,000 pairs. Sentences are kept as written: cased, untokenized, with punctuation."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {
        "1.0.0": "Built from task1/raw/{train,val,test_2016_flickr}.{de,en}.gz (or the mirror)."
    }

    def _info(self) -> tfds.core.DatasetInfo:
        # Files' order kept: pair i of a split is line i of its files.
        return mirror.ordered_info(
            self,
            description="Multi30k task 1: German-English translation of image descriptions.",
            features=tfds.features.FeaturesDict(
                {language: tfds.features.Text() for language in LANGUAGES}
            ),
            supervised_keys=LANGUAGES,
            homepage="https://github.com/multi30k/dataset",
            citation=CITATION,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        fetch = mirror.fetcher(self, dl_manager, "multi30k", URL)
        paths = {
            split: [fetch(f"{stem}.{language}.gz") for language in LANGUAGES]
            for split, stem in SPLIT_STEMS.items()
        }
        # Every file is verified and read, and every split checked, before any split is written.
        pairs = {}
        for split, (de_path, en_path) in paths.items():
            pairs[split] = read_multi30k_files(de_path, en_path)
            mirror.check_split_size(
                "Multi30k", split, len(pairs[split]), SPLIT_SIZES[split], "pairs", de_path
            )
        return {split: self._generate_examples(split_pairs) for split, split_pairs in pairs.items()}

    def _generate_examples(self, pairs):
        yield from enumerate({"de": de, "en": en} for de, en in pairs)


def read_multi30k_files(de_path: Path, en_path: Path) -> list[tuple[str, str]]:
    """The (German, English) sentence pairs of one split, line by line.

    Raises:
        DataError: a file is not readable gzip-compressed UTF-8 text, or the two files have
            different numbers of lines.
    """
    de_lines, en_lines = read_gzip_lines(de_path), read_gzip_lines(en_path)
    if len(de_lines) != len(en_lines):
        raise mirror.DataError(
            f"Multi30k files {de_path} and {en_path} are not line-aligned: {len(de_lines):,} "
            f"German and {len(en_lines):,} English lines. Fetch them again or fix the mirror; "
            "nothing was cached."
        )
    return list(zip(de_lines, en_lines))


def read_gzip_lines(path: Path) -> list[str]:
    """The lines of a gzip-compressed UTF-8 text file, each exactly as written but for its
    newline. Only "\\n" ends a line: `str.splitlines` would also split at characters such as
    U+2028 inside a sentence, and so shift the pairs."""
    try:
        with gzip.open(path, "rb") as file:
            text = file.read().decode("utf-8")
    # gzip's EOFError (cut) or zlib.error / BadGzipFile, an OSError (corrupt); bad UTF-8.
    except (EOFError, zlib.error, OSError, UnicodeDecodeError) as error:
        raise mirror.DataError(
            f"{path} is not readable gzip-compressed UTF-8 text ({error}): it is cut or "
            "corrupt. Fetch it again or fix the mirror; nothing was cached."
        ) from error
    lines = text.split("\n")
    if lines[-1] == "":  # The newline that ends the last line starts no line of its own.
        lines.pop()
    return lines


def load_multi30k(split: str, **builder_kwargs) -> tf.data.Dataset:
    """Examples {"de", "en"} (tf.string) of a split ("train", "validation", "test"), in file
    order; TFDS split slicing works ("train[:1%]")."""
    builder = mirror.prepare(Multi30k, **builder_kwargs)
    return builder.as_dataset(split=split, shuffle_files=False)
