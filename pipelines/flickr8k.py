"""Flickr8k (Hodosh et al., 2013) as a TFDS builder over the upstream image and text archives."""

from __future__ import annotations

import re
import zipfile
import zlib
from pathlib import Path
from typing import ClassVar

import tensorflow as tf
import tensorflow_datasets as tfds

from pipelines import mirror

URL = "https://github.com/jbrownlee/Datasets/releases/download/Flickr8k"
IMAGES_ARCHIVE = "Flickr8k_Dataset.zip"
TEXT_ARCHIVE = "Flickr8k_text.zip"
# The image folder inside the images archive, as upstream spells it.
IMAGE_FOLDER = "Flicker8k_Dataset"
CAPTIONS_FILE = "Flickr8k.token.txt"
# Split name -> the upstream file listing its images, one file name a line.
SPLIT_FILES = {
    "train": "Flickr_8k.trainImages.txt",
    "validation": "Flickr_8k.devImages.txt",
    "test": "Flickr_8k.testImages.txt",
}
# Images per split: a cut archive is refused before anything is cached.
SPLIT_SIZES = {"train": 6_000, "validation": 1_000, "test": 1_000}
CAPTIONS_PER_IMAGE = 5
# "<image file name>#<caption number>\t<caption>". Upstream's token file also captions
# "2258277193_586949ec62.jpg.1", an image no split lists: its lines do not match.
_CAPTION_LINE = re.compile(r"^(?P<image>[^#\t]+\.jpg)#(?P<number>\d)\t(?P<caption>.*)$")

CITATION = """@article{hodosh2013framing,
  title   = {Framing Image Description as a Ranking Task: Data, Models and Evaluation Metrics},
  author  = {Hodosh, Micah and Young, Peter and Hockenmaier, Julia},
  journal = {Journal of Artificial Intelligence Research},
  volume  = {47},
  pages   = {853--899},
  year    = {2013},
}"""


class Flickr8k(tfds.core.GeneratorBasedBuilder):
    """Flickr8k: 8,000 Flickr photos with 5 English captions each, in the standard split of
    `Flickr_8k.{train,dev,test}Images.txt` (train 6,000 / validation 1,000 / test 1,000 images).

    Each example is one image: its JPEG bytes as stored in the archive (the zoo's mirror holds
    224 x 224 copies, squashed, quality 85), its file name (`image_id`) and its 5 captions as
    written (cased, punctuation and spacing kept), in caption-number order."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {
        "1.0.0": "Built from Flickr8k_Dataset.zip and Flickr8k_text.zip (or the zoo's mirror)."
    }

    def _info(self) -> tfds.core.DatasetInfo:
        # Split files' order kept.
        return mirror.ordered_info(
            self,
            description="Flickr8k: photos and 5 captions each, for image captioning.",
            features=tfds.features.FeaturesDict(
                {
                    # Bytes as stored: the model decodes them (in tf.data and in the server).
                    "image": tfds.features.Tensor(shape=(), dtype=tf.string),
                    "image_id": tfds.features.Text(),
                    "captions": tfds.features.Tensor(shape=(CAPTIONS_PER_IMAGE,), dtype=tf.string),
                }
            ),
            homepage="https://hockenmaier.cs.illinois.edu/8k-pictures.html",
            citation=CITATION,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        fetch = mirror.fetcher(self, dl_manager, "flickr8k", URL)
        images_path, text_path = fetch(IMAGES_ARCHIVE), fetch(TEXT_ARCHIVE)
        # Every file is read and every split checked before any split is written.
        texts = read_zip_members(text_path, [CAPTIONS_FILE, *SPLIT_FILES.values()])
        captions = parse_captions(texts[CAPTIONS_FILE], text_path)
        splits = {}
        for split, filename in SPLIT_FILES.items():
            images = parse_image_list(texts[filename])
            mirror.check_split_size(
                "Flickr8k", split, len(images), SPLIT_SIZES[split], "images", text_path
            )
            missing = [image for image in images if image not in captions]
            if missing:
                raise mirror.DataError(
                    f"{text_path}: {len(missing):,} images of the {split} split have no caption "
                    f"in {CAPTIONS_FILE} (the first: {missing[0]}). Fetch it again or fix the "
                    "mirror; nothing was cached."
                )
            splits[split] = images
        check_image_archive(images_path, [image for images in splits.values() for image in images])
        return {
            split: self._generate_examples(images_path, images, captions)
            for split, images in splits.items()
        }

    def _generate_examples(self, images_path: Path, images: list[str], captions):
        with open_zip(images_path) as archive:
            for image in images:
                yield image, {
                    "image": read_member(archive, f"{IMAGE_FOLDER}/{image}", images_path),
                    "image_id": image,
                    "captions": captions[image],
                }


def open_zip(path: Path) -> zipfile.ZipFile:
    """The zip archive at `path`; a cut or corrupt one is a DataError naming it."""
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise mirror.DataError(
            f"{path} is not a readable zip archive ({error}): it is cut or corrupt. Fetch it "
            "again or fix the mirror; nothing was cached."
        ) from error


def read_member(archive: zipfile.ZipFile, name: str, path: Path) -> bytes:
    """The bytes of member `name`; a missing or corrupt member is a DataError naming both."""
    try:
        return archive.read(name)
    except KeyError:
        raise mirror.DataError(
            f"{path} has no {name}. Fetch it again or fix the mirror; nothing was cached."
        ) from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:
        raise mirror.DataError(
            f"{path}: {name} cannot be read ({error}): the archive is cut or corrupt. Fetch it "
            "again or fix the mirror; nothing was cached."
        ) from error


def read_zip_members(path: Path, names: list[str]) -> dict[str, str]:
    """{member name: its UTF-8 text} of the zip archive at `path`."""
    with open_zip(path) as archive:
        texts = {}
        for name in names:
            try:
                texts[name] = read_member(archive, name, path).decode("utf-8")
            except UnicodeDecodeError as error:
                raise mirror.DataError(
                    f"{path}: {name} is not UTF-8 text ({error}). Fetch it again or fix the "
                    "mirror; nothing was cached."
                ) from error
        return texts


def check_image_archive(path: Path, images: list[str]) -> None:
    """Raises DataError unless the images archive holds every image the splits list."""
    with open_zip(path) as archive:
        stored = set(archive.namelist())
    missing = [image for image in images if f"{IMAGE_FOLDER}/{image}" not in stored]
    if missing:
        raise mirror.DataError(
            f"{path} lacks {len(missing):,} of the splits' images (the first: "
            f"{IMAGE_FOLDER}/{missing[0]}): it is cut or not the upstream archive. Fetch it "
            "again or fix the mirror; nothing was cached."
        )


def parse_image_list(text: str) -> list[str]:
    """The image file names of a split file, in order (its last line has no newline)."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def parse_captions(text: str, source: Path) -> dict[str, list[str]]:
    """{image file name: its 5 captions in caption-number order} from `Flickr8k.token.txt`.

    Lines of "<name>.jpg.1#<n>" (upstream's quirk: captions of an image no split lists) are
    skipped. Raises DataError when an image has another number of captions than 5.
    """
    numbered: dict[str, dict[int, str]] = {}
    for line in text.splitlines():
        match = _CAPTION_LINE.match(line.rstrip("\r"))
        if match:
            numbered.setdefault(match["image"], {})[int(match["number"])] = match["caption"]
    captions = {}
    for image, by_number in numbered.items():
        if sorted(by_number) != list(range(CAPTIONS_PER_IMAGE)):
            raise mirror.DataError(
                f"{source}: {image} has captions {sorted(by_number)} in {CAPTIONS_FILE}, "
                f"expected 0-{CAPTIONS_PER_IMAGE - 1}. Fetch it again or fix the mirror; "
                "nothing was cached."
            )
        captions[image] = [by_number[number] for number in range(CAPTIONS_PER_IMAGE)]
    return captions


def load_flickr8k(split: str, **builder_kwargs) -> tf.data.Dataset:
    """Examples {"image" (JPEG bytes), "image_id", "captions" (5,)} of a split ("train",
    "validation", "test"), in the split file's order; TFDS split slicing works ("train[:1%]")."""
    builder = mirror.prepare(Flickr8k, **builder_kwargs)
    return builder.as_dataset(split=split, shuffle_files=False)
