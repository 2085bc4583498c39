"""IMDB Large Movie Review Dataset (Maas et al., 2011) as a TFDS builder over the upstream archive."""

from __future__ import annotations

import re
from typing import ClassVar

import tensorflow as tf
import tensorflow_datasets as tfds

from pipelines import mirror

URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
ARCHIVE = "aclImdb_v1.tar.gz"
LABEL_NAMES = ("neg", "pos")
UNLABELED = -1
_REVIEW_PATH = re.compile(r"aclImdb/(train|test)/(pos|neg|unsup)/\d+_\d+\.txt$")

CITATION = """@InProceedings{maas-EtAl:2011:ACL-HLT2011,
  author    = {Maas, Andrew L. and Daly, Raymond E. and Pham, Peter T. and Huang, Dan and
               Ng, Andrew Y. and Potts, Christopher},
  title     = {Learning Word Vectors for Sentiment Analysis},
  booktitle = {Proceedings of ACL-HLT 2011},
  year      = {2011},
  pages     = {142--150},
}"""


class AclImdb(tfds.core.GeneratorBasedBuilder):
    """IMDB reviews from the upstream `aclImdb_v1.tar.gz`: train 25,000 / test 25,000 labeled
    reviews (balanced pos/neg) and 50,000 unlabeled ones (label -1)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {
        "1.0.0": "Built from the upstream archive (or the zoo's mirror of it)."
    }

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description="IMDB Large Movie Review Dataset, binary sentiment.",
            features=tfds.features.FeaturesDict(
                {"text": tfds.features.Text(), "label": tfds.features.ClassLabel(names=LABEL_NAMES)}
            ),
            supervised_keys=("text", "label"),
            homepage="https://ai.stanford.edu/~amaas/data/sentiment/",
            citation=CITATION,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        archive = mirror.fetch(dl_manager, "imdb", ARCHIVE, URL)
        return {
            split: self._generate_examples(dl_manager.iter_archive(archive), directory, labels)
            for split, directory, labels in (
                ("train", "train", ("pos", "neg")),
                ("test", "test", ("pos", "neg")),
                ("unsupervised", "train", ("unsup",)),
            )
        }

    def _generate_examples(self, archive, directory, labels):
        for path, fobj in archive:
            match = _REVIEW_PATH.search(path.replace("\\", "/"))
            if not match or match.group(1) != directory or match.group(2) not in labels:
                continue
            label = UNLABELED if match.group(2) == "unsup" else LABEL_NAMES.index(match.group(2))
            yield path, {"text": fobj.read().decode("utf-8", errors="replace"), "label": label}


def load_imdb(split: str, **builder_kwargs) -> tf.data.Dataset:
    """(text, label) pairs of a split; TFDS split slicing works ("train[:90%]")."""
    builder = mirror.prepare(AclImdb, **builder_kwargs)
    return builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
