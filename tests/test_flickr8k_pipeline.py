"""The Flickr8k builder: image bytes and captions round-trip from a tiny mirror in the split
files' order; the token file's ".jpg.1" quirk is skipped; cut or incomplete archives are
refused in one line naming them; the real splits have 6,000 / 1,000 / 1,000 images."""

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from pipelines import flickr8k
from pipelines.flickr8k import Flickr8k, load_flickr8k
from tests.helpers.mirrors import (
    check_as_recorded,
    nothing_prepared,
    on_real_data,
    real_dataset,
    refusal,
    split_sizes,
    use_private_mirror,
)

# Image -> its 5 captions, per split, of a tiny mirror.
SPLITS = {
    "train": ["1000_a.jpg", "1001_b.jpg", "1002_c.jpg"],
    "validation": ["2000_d.jpg"],
    "test": ["3000_e.jpg", "3001_f.jpg"],
}
SPLIT_FILES = {
    "train": "Flickr_8k.trainImages.txt",
    "validation": "Flickr_8k.devImages.txt",
    "test": "Flickr_8k.testImages.txt",
}


def captions_of(image: str) -> list[str]:
    return [f"A dog number {n} runs , near {image} ." for n in range(5)]


def image_bytes(seed: int) -> bytes:
    import tensorflow as tf

    pixels = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return tf.io.encode_jpeg(pixels).numpy()


def write_flickr8k_mirror(
    directory: Path, splits=None, captions_of=captions_of, image_of=None
) -> Path:
    """flickr8k/Flickr8k_Dataset.zip + Flickr8k_text.zip for `splits` ({split: images}),
    with upstream's layout, the ".jpg.1" quirk and split files without a final newline;
    `image_of(name, index)` gives an image's bytes (default: random 8 x 8 JPEGs)."""
    splits = splits or SPLITS
    folder = directory / "flickr8k"
    folder.mkdir(parents=True, exist_ok=True)
    images = [image for names in splits.values() for image in names]
    with zipfile.ZipFile(folder / "Flickr8k_Dataset.zip", "w") as archive:
        archive.writestr("Flicker8k_Dataset/", b"")
        for index, image in enumerate(images):
            data = image_of(image, index) if image_of else image_bytes(index)
            archive.writestr(f"Flicker8k_Dataset/{image}", data)
    lines = [
        f"{image}#{n}\t{caption}"
        for image in images
        for n, caption in enumerate(captions_of(image))
    ]
    lines[3:3] = [f"9999_quirk.jpg.1#{n}\tpeople waiting" for n in range(5)]
    with zipfile.ZipFile(folder / "Flickr8k_text.zip", "w") as archive:
        archive.writestr("Flickr8k.token.txt", "\n".join(lines) + "\n")
        for split, filename in SPLIT_FILES.items():
            archive.writestr(filename, "\n".join(splits.get(split, [])))
        archive.writestr("readme.txt", "fixture")
    return folder


@pytest.fixture
def flickr8k_mirror(tmp_path, monkeypatch) -> Path:
    """A tiny mirror's flickr8k folder and a private TFDS data dir (checks off: conftest)."""
    return write_flickr8k_mirror(use_private_mirror(monkeypatch, tmp_path))


def test_images_and_captions_round_trip_in_split_order(flickr8k_mirror):
    index = 0
    for split, images in SPLITS.items():
        examples = list(load_flickr8k(split).as_numpy_iterator())
        assert [e["image_id"].decode() for e in examples] == images
        for example, image in zip(examples, images):
            assert [c.decode() for c in example["captions"]] == captions_of(image)
            assert example["image"] == image_bytes(index)  # The stored bytes, not re-encoded.
            index += 1


def test_the_quirk_image_in_no_split_is_skipped(flickr8k_mirror):
    captions = flickr8k.parse_captions(
        "a.jpg#0\tx\na.jpg.1#0\ty\n" + "".join(f"a.jpg#{n}\tc{n}\n" for n in range(1, 5)),
        Path("t"),
    )
    assert captions == {"a.jpg": ["x", "c1", "c2", "c3", "c4"]}


def test_an_image_missing_from_the_archive_is_refused_naming_it(flickr8k_mirror):
    path = flickr8k_mirror / "Flickr8k_Dataset.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("Flicker8k_Dataset/1000_a.jpg", image_bytes(0))
    assert str(path) in refusal(Flickr8k, "lacks 5 of the splits' images")
    assert nothing_prepared(flickr8k_mirror)


def test_an_image_without_five_captions_is_refused(flickr8k_mirror):
    path = flickr8k_mirror / "Flickr8k_text.zip"
    members = {}
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    token = members["Flickr8k.token.txt"].decode().replace("2000_d.jpg#4\t", "2000_d.jpg#7\t")
    members["Flickr8k.token.txt"] = token.encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    assert str(path) in refusal(Flickr8k, r"2000_d.jpg has captions \[0, 1, 2, 3, 7\]")
    assert nothing_prepared(flickr8k_mirror)


@pytest.mark.parametrize("name", ["Flickr8k_Dataset.zip", "Flickr8k_text.zip"])
def test_a_cut_archive_is_one_line_naming_it(flickr8k_mirror, name):
    path = flickr8k_mirror / name
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert str(path) in refusal(Flickr8k, "cut or corrupt")
    assert nothing_prepared(flickr8k_mirror)


def test_with_checks_on_a_split_of_the_wrong_size_is_refused(flickr8k_mirror, monkeypatch):
    check_as_recorded(monkeypatch, flickr8k_mirror)
    assert "Flickr8k train has 3 images, expected 6,000" in refusal(Flickr8k)
    assert nothing_prepared(flickr8k_mirror)


def test_with_checks_on_files_other_than_the_recorded_ones_are_refused(
    flickr8k_mirror, monkeypatch
):
    monkeypatch.setenv("ZOO_VERIFY_CHECKSUMS", "1")
    message = refusal(Flickr8k, "checksums.tsv")
    assert "is not the upstream flickr8k/Flickr8k_Dataset.zip" in message
    assert nothing_prepared(flickr8k_mirror)


@on_real_data("flickr8k")
def test_real_split_sizes_five_captions_each_and_the_first_test_image():
    import tensorflow as tf

    sizes = split_sizes(Flickr8k)
    assert sizes == {"train": 6_000, "validation": 1_000, "test": 1_000}
    with zipfile.ZipFile(real_dataset("flickr8k") / "Flickr8k_text.zip") as archive:
        first_test = archive.read("Flickr_8k.testImages.txt").decode().split()[0]
    seen = set()
    for split in sizes:
        for example in load_flickr8k(split).as_numpy_iterator():
            assert example["captions"].shape == (5,) and all(example["captions"])
            seen.add(example["image_id"])
    assert len(seen) == 8_000 and b"2258277193_586949ec62.jpg" not in seen
    first = next(load_flickr8k("test").as_numpy_iterator())
    assert first["image_id"].decode() == first_test
    image = tf.io.decode_jpeg(first["image"]).numpy()
    assert image.shape == (224, 224, 3)  # The mirror's squashed copies.
    assert io.BytesIO(first["image"]).read(3) == b"\xff\xd8\xff"
