"""ATIS slot filling and intent detection (the JointBERT split) as a TFDS builder."""

from __future__ import annotations

from typing import ClassVar

import tensorflow as tf
import tensorflow_datasets as tfds

from pipelines import mirror

URL = "https://raw.githubusercontent.com/monologg/JointBERT/master/data/atis"
SPLITS = ("train", "dev", "test")
# Per split: the utterances (whitespace tokens), their BIO slot tags and their intents.
TOKENS_FILE, TAGS_FILE, INTENT_FILE = "seq.in", "seq.out", "label"
# Utterances per split in JointBERT's files: a cut file is refused before anything is cached.
SPLIT_SIZES = {"train": 4478, "dev": 500, "test": 893}

CITATION = """@inproceedings{hemphill-etal-1990-atis,
  title     = {The {ATIS} Spoken Language Systems Pilot Corpus},
  author    = {Hemphill, Charles T. and Godfrey, John J. and Doddington, George R.},
  booktitle = {Speech and Natural Language: Proceedings of a Workshop},
  year      = {1990},
}"""


class Atis(tfds.core.GeneratorBasedBuilder):
    """ATIS utterances with BIO slot tags and an intent, in JointBERT's split: train 4,478 /
    dev 500 / test 893. Tags and intents are kept as strings: the test split has slot types
    and intents that never occur in train."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {
        "1.0.0": "Built from JointBERT's data/atis files (or the zoo's mirror)."
    }

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description="ATIS (Airline Travel Information System) slot filling and intents.",
            features=tfds.features.FeaturesDict(
                {
                    "text": tfds.features.Text(),
                    "tokens": tfds.features.Sequence(tfds.features.Text()),
                    "tags": tfds.features.Sequence(tfds.features.Text()),
                    "intent": tfds.features.Text(),
                }
            ),
            homepage="https://github.com/monologg/JointBERT",
            citation=CITATION,
            # Which files the data was built from (pipelines/mirror.py checks it).
            metadata=tfds.core.MetadataDict(),
            # Keep the files' order: reproducible runs, and CoNLL's sentences stay in documents.
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        def fetch(split, name):
            return mirror.fetch(
                self, dl_manager, "atis", f"{split}/{name}", f"{URL}/{split}/{name}"
            )

        # Every file is fetched and verified before any split is generated.
        return {
            split: self._generate_examples(
                split, fetch(split, TOKENS_FILE), fetch(split, TAGS_FILE), fetch(split, INTENT_FILE)
            )
            for split in SPLITS
        }

    def _generate_examples(self, split, tokens_path, tags_path, intent_path):
        examples = read_atis_files(tokens_path, tags_path, intent_path)
        mirror.check_split_size(
            "ATIS", split, len(examples), SPLIT_SIZES[split], "utterances", tokens_path
        )
        yield from enumerate(examples)


def read_atis_files(tokens_path, tags_path, intent_path) -> list[dict]:
    """Reads one split's seq.in / seq.out / label files into examples.

    Raises:
        DataError: the files have different numbers of lines, or a line's tokens and tags
            differ in number.
    """
    columns = []
    for path in (tokens_path, tags_path, intent_path):
        with tf.io.gfile.GFile(str(path), "r") as file:
            columns.append(file.read().splitlines())
    if len({len(column) for column in columns}) != 1:
        raise mirror.DataError(
            f"ATIS files {tokens_path}, {tags_path} and {intent_path} have different numbers "
            f"of lines: {', '.join(str(len(column)) for column in columns)}."
        )
    examples = []
    for line_number, (utterance, tag_line, intent) in enumerate(zip(*columns), start=1):
        tokens, tags = utterance.split(), tag_line.split()
        if len(tokens) != len(tags):
            raise mirror.DataError(
                f"{tags_path}:{line_number}: {len(tags)} tags for {len(tokens)} tokens."
            )
        examples.append(
            {"text": " ".join(tokens), "tokens": tokens, "tags": tags, "intent": intent.strip()}
        )
    return examples


def load_atis(split: str, **builder_kwargs) -> tf.data.Dataset:
    """Examples {"text", "tokens", "tags", "intent"} of a split ("train", "dev", "test")."""
    builder = mirror.prepare(Atis, **builder_kwargs)
    return builder.as_dataset(split=split, shuffle_files=False)
