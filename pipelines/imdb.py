"""IMDB Large Movie Review Dataset (Maas et al., 2011) as a TFDS builder over the upstream archive."""

from __future__ import annotations

import re
import tarfile
import zlib
from typing import ClassVar

import tensorflow as tf
import tensorflow_datasets as tfds

from pipelines import mirror

URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
ARCHIVE = "aclImdb_v1.tar.gz"
LABEL_NAMES = ("neg", "pos")
UNLABELED = -1
# Reviews per split: an archive that lacks some is refused before anything is cached.
SPLIT_SIZES = {"train": 25_000, "test": 25_000, "unsupervised": 50_000}
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
            # Which files the data was built from (pipelines/mirror.py checks it).
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        archive = mirror.fetch(self, dl_manager, "imdb", ARCHIVE, URL)
        return {
            split: self._generate_examples(dl_manager, archive, split, directory, labels)
            for split, directory, labels in (
                ("train", "train", ("pos", "neg")),
                ("test", "test", ("pos", "neg")),
                ("unsupervised", "train", ("unsup",)),
            )
        }

    def _generate_examples(self, dl_manager, archive, split, directory, labels):
        count = 0
        for path, text in _read_archive(dl_manager, archive):
            match = _REVIEW_PATH.search(path.replace("\\", "/"))
            if not match or match.group(1) != directory or match.group(2) not in labels:
                continue
            label = UNLABELED if match.group(2) == "unsup" else LABEL_NAMES.index(match.group(2))
            count += 1
            yield path, {"text": text.decode("utf-8", errors="replace"), "label": label}
        mirror.check_split_size("IMDB", split, count, SPLIT_SIZES[split], "reviews", archive)


def _read_archive(dl_manager: tfds.download.DownloadManager, archive):
    """(path, content) of each file in the archive; a cut or corrupt one is a DataError."""
    try:
        for path, fobj in dl_manager.iter_archive(archive):
            yield path, fobj.read()
    # gzip's EOFError or zlib.error, tarfile's errors, OSErrors (BadGzipFile among them).
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise mirror.DataError(
            f"{archive} is not a readable .tar.gz ({error}): it is cut or corrupt. Fetch it "
            "again or fix the mirror; nothing was cached."
        ) from error


def load_imdb(split: str, **builder_kwargs) -> tf.data.Dataset:
    """(text, label) pairs of a split; TFDS split slicing works ("train[:90%]")."""
    builder = mirror.prepare(AclImdb, **builder_kwargs)
    return builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
