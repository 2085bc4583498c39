"""CoNLL-2003 English named entities as a TFDS builder over the original eng.* files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

import tensorflow as tf
import tensorflow_datasets as tfds

from pipelines import mirror

# The official files: train, development (testa) and test (testb).
SPLIT_FILES = {"train": "eng.train", "dev": "eng.testa", "test": "eng.testb"}
# Sentences per split: a cut file is refused before anything is cached.
SPLIT_SIZES = {"train": 14041, "dev": 3250, "test": 3453}
TAG_NAMES = ("O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER")

CITATION = """@inproceedings{tjong-kim-sang-de-meulder-2003-introduction,
  title     = {Introduction to the {C}o{NLL}-2003 Shared Task: Language-Independent Named
               Entity Recognition},
  author    = {Tjong Kim Sang, Erik F. and De Meulder, Fien},
  booktitle = {Proceedings of CoNLL-2003},
  year      = {2003},
  pages     = {142--147},
}"""


def iob1_to_iob2(tags: list[str]) -> list[str]:
    """IOB1 (B- only between two adjacent spans of one type) -> IOB2 (B- at every span start)."""
    converted = []
    for index, tag in enumerate(tags):
        if tag.startswith("I-"):
            previous = converted[index - 1] if index else "O"
            if previous == "O" or previous[2:] != tag[2:]:
                tag = "B-" + tag[2:]
        converted.append(tag)
    return converted


def read_conll_file(path) -> list[dict]:
    """Sentences of a CoNLL-2003 file (token POS chunk NER per line), NER tags in IOB2.

    `-DOCSTART-` lines and blank lines separate sentences and are not examples; a
    `-DOCSTART-` line also begins a new document, whose index (from 0, in file order) every
    sentence carries as "document".

    Raises:
        DataError: a line does not have four columns.
    """
    sentences, tokens, tags = [], [], []
    document = -1

    def close_sentence():
        if tokens:
            sentences.append(
                {
                    "text": " ".join(tokens),
                    "tokens": list(tokens),
                    "tags": iob1_to_iob2(tags),
                    "document": max(document, 0),
                }
            )
        tokens.clear()
        tags.clear()

    with tf.io.gfile.GFile(str(path), "r") as file:
        for line_number, line in enumerate(file, start=1):
            columns = line.split()
            if not columns or columns[0] == "-DOCSTART-":
                close_sentence()
                document += bool(columns)
                continue
            if len(columns) != 4:
                raise mirror.DataError(
                    f"{path}:{line_number}: expected 4 columns (token POS chunk NER), "
                    f"got {len(columns)}: {line.strip()!r}."
                )
            tokens.append(columns[0])
            tags.append(columns[3])
    close_sentence()
    return sentences


class Conll2003(tfds.core.GeneratorBasedBuilder):
    """CoNLL-2003 English NER: train 14,041 / dev (testa) 3,250 / test (testb) 3,453 sentences,
    tags converted from the files' IOB1 to IOB2."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {
        "1.0.0": "Built from the original eng.train / eng.testa / eng.testb.",
        "1.1.0": "Each sentence carries the index of its document (-DOCSTART- sections).",
    }
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "CoNLL-2003 has no public download (Reuters licence). Put eng.train, eng.testa and "
        "eng.testb in the manual folder, or in <ZOO_DATA_MIRROR>/conll2003/."
    )

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description="CoNLL-2003 English named entity recognition (PER, LOC, ORG, MISC).",
            features=tfds.features.FeaturesDict(
                {
                    "text": tfds.features.Text(),
                    "tokens": tfds.features.Sequence(tfds.features.Text()),
                    "tags": tfds.features.Sequence(tfds.features.ClassLabel(names=TAG_NAMES)),
                    "document": tf.int32,
                }
            ),
            homepage="https://www.clips.uantwerpen.be/conll2003/ner/",
            citation=CITATION,
            # Which files the data was built from (pipelines/mirror.py checks it).
            metadata=tfds.core.MetadataDict(),
            # Keep the files' order: reproducible runs, and CoNLL's sentences stay in documents.
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        # Every file is found and verified before any split is generated.
        paths = {
            split: mirror.use_file(
                self,
                f"conll2003/{filename}",
                conll_file(dl_manager, filename),
                "Put the original file there again.",
            )
            for split, filename in SPLIT_FILES.items()
        }
        return {split: self._generate_examples(split, path) for split, path in paths.items()}

    def _generate_examples(self, split, path):
        sentences = read_conll_file(path)
        mirror.check_split_size(
            "CoNLL-2003", split, len(sentences), SPLIT_SIZES[split], "sentences", path
        )
        yield from enumerate(sentences)


def conll_file(dl_manager: tfds.download.DownloadManager, filename: str) -> Path:
    """The mirror's copy of `filename`, else the one in TFDS's manual folder.

    Raises:
        MissingDataError: the file is in neither.
    """
    path = mirror.mirror_file("conll2003", filename)
    if path is not None:
        return path
    try:
        path = Path(dl_manager.manual_dir) / filename
    except (AssertionError, ValueError, OSError):  # TFDS: no manual folder.
        raise mirror.MissingDataError(
            f"CoNLL-2003 file {filename} not found. {Conll2003.MANUAL_DOWNLOAD_INSTRUCTIONS}"
        ) from None
    if not os.path.exists(path):
        raise mirror.MissingDataError(
            f"CoNLL-2003 file {path} not found. {Conll2003.MANUAL_DOWNLOAD_INSTRUCTIONS}"
        )
    return path


def load_conll2003(split: str, **builder_kwargs) -> tf.data.Dataset:
    """Examples {"text", "tokens", "tags", "document"} of a split ("train", "dev", "test"),
    tags as strings, in file order (a document's sentences are consecutive)."""
    builder = mirror.prepare(Conll2003, **builder_kwargs)
    tag_names = tf.constant(TAG_NAMES)
    return builder.as_dataset(split=split, shuffle_files=False).map(
        lambda example: {**example, "tags": tf.gather(tag_names, example["tags"])},
        num_parallel_calls=tf.data.AUTOTUNE,
    )
