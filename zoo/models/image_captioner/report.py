"""Decoding settings and the card's measurements for a trained captioner.

`python -m zoo.models.image_captioner.report [MODEL_DIR] [--choose]` (`make report-captioning`):

1. scores beam widths and length penalties on the whole validation split (BLEU-1..4, CIDEr-D,
   from the cached encoder features), with each setting's decoding speed on this machine;
2. sets the best setting on the model (`num_beams`, `length_penalty`: decoding only, the
   weights are untouched) and saves it, when `--choose` is given; BLEU-4 chooses, CIDEr-D
   breaks ties;
3. captions the test split greedily and with the chosen setting (the BLEU-vs-beam table's
   test column; the setting was chosen on validation only);
4. draws each word's attention over the image for a few test images (soft attention only),
   lists test captions next to their references, and captions the images people send
   (a PNG, grayscale, a thumbnail, a panorama, a black frame, noise) and non-images.

Writes `decoding.json` and `attention_*.png` to the model folder. `make eval-captioning`
afterwards scores the chosen setting on the test images' bytes (the served path).
`--setting BEAMS PENALTY` only prints one setting's validation scores (to compare models, e.g.
a training run's folder, at the shipped decoding) and writes nothing.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import zoo  # noqa: F401  (registers the entries)
from zoo.errors import InputError
from zoo.generation.family import report_main, sweep_decoding
from zoo.models.image_captioner.image_captioner_family import caption_scores
from zoo.registry import get_entry
from zoo.runtime import run_facts

ENTRY = "captioning"
BEAM_WIDTHS = (1, 2, 3, 5)
LENGTH_PENALTIES = (0.0, 0.5, 1.0, 2.0)
ATTENTION_FIGURES = 3


def timed_scores(family, model, config, split, references, num_beams, length_penalty):
    """(captions, scores) of a whole split's cached features with one decoding setting."""
    started = time.time()
    hypotheses = family.caption_features(
        model,
        family.features(model, split),
        config.decode_batch_size,
        num_beams,
        length_penalty,
        f"Captioning the {split} images: beam {num_beams}, length penalty {length_penalty}",
    )
    seconds = time.time() - started
    return hypotheses, {
        "num_beams": num_beams,
        "length_penalty": length_penalty,
        **caption_scores(hypotheses, references),
        "images_per_second": round(len(hypotheses) / seconds, 1),
    }


def attention_figure(family, model, image: bytes, references: list[str], path: Path) -> str:
    """Each word of the caption over the image, its attention weights as a heat overlay."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result = family.attention(model, tf.constant([image]))
    caption = result["caption"].numpy()[0].decode("utf-8")
    words = [word.decode("utf-8") for word in result["words"].numpy()[0] if word]
    weights = result["weights"].numpy()[0][: len(words)]
    side = math.isqrt(weights.shape[-1])
    size = model.preprocessor.image_size
    pixels = tf.image.resize(
        tf.io.decode_image(image, channels=3, expand_animations=False), (size, size)
    )
    pixels = pixels.numpy().astype(np.uint8)
    columns = 5
    rows = 1 + (len(words) - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.4 * rows + 0.6))
    for index, axis in enumerate(np.ravel(axes)):
        axis.axis("off")
        if index >= len(words):
            continue
        axis.imshow(pixels)
        grid = weights[index].reshape(side, side)
        axis.imshow(
            grid, cmap="gray", alpha=0.6, extent=(0, size, size, 0), interpolation="bicubic"
        )
        axis.set_title(words[index], fontsize=10)
    figure.suptitle(f"{caption}\n(a reference: {references[0]})", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return caption


def encoded(pixels: np.ndarray, kind: str = "jpeg") -> bytes:
    if kind == "png":
        return tf.io.encode_png(pixels).numpy()
    return tf.io.encode_jpeg(pixels).numpy()


def probes(image: bytes) -> list[tuple[str, bytes]]:
    """What people send besides a Flickr photo: other formats and shapes, and non-images."""
    pixels = tf.io.decode_jpeg(image, channels=3).numpy()
    gray = tf.image.rgb_to_grayscale(pixels).numpy()
    rng = np.random.default_rng(0)
    return [
        ("the test image as PNG", encoded(pixels, "png")),
        ("the test image in grayscale (1-channel JPEG)", encoded(gray)),
        (
            "a 24 x 24 thumbnail of it",
            encoded(tf.image.resize(pixels, (24, 24)).numpy().astype(np.uint8)),
        ),
        ("a 1200 x 200 panorama (it, tiled)", encoded(np.tile(pixels, (1, 6, 1))[:200].copy())),
        ("a black frame", encoded(np.zeros((224, 224, 3), np.uint8))),
        ("uniform noise", encoded(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8))),
        ("text bytes, not an image", b"a dog runs on the grass"),
        ("empty bytes", b""),
        ("a JPEG cut in half", image[: len(image) // 2]),
    ]


def loaded(model_dir: Path):
    """(the family, the model of `model_dir`, its config)."""
    from zoo.evaluate import evaluation_setup

    model = keras.saving.load_model(model_dir / "model.keras", compile=False)
    _, _, config = evaluation_setup(ENTRY, model_dir)
    return get_entry(ENTRY).family, model, config


def validation_setting(model_dir: Path, num_beams: int, length_penalty: float) -> dict:
    """One decoding setting's scores on the whole validation split (cached features)."""
    family, model, config = loaded(model_dir)
    _, references = family.references("validation")
    return timed_scores(family, model, config, "validation", references, num_beams, length_penalty)[
        1
    ]


def report(model_dir: Path, choose: bool) -> dict:
    family, model, config = loaded(model_dir)
    model_path = model_dir / "model.keras"
    results = {"model": str(model_path), "facts": run_facts(), "validation": []}

    _, references = family.references("validation")
    results["validation"], best = sweep_decoding(
        lambda beams, penalty: timed_scores(
            family, model, config, "validation", references, beams, penalty
        )[1],
        BEAM_WIDTHS,
        LENGTH_PENALTIES,
        key=lambda row: (row["bleu4"], row["cider"]),
    )
    results["chosen"] = {key: best[key] for key in ("num_beams", "length_penalty")}
    model.num_beams, model.length_penalty = best["num_beams"], best["length_penalty"]
    if choose:
        from zoo.train import save_model_atomically

        save_model_atomically(model, model_path)

    ids, references = family.references("test")
    results["test"] = []
    for num_beams in sorted({1, best["num_beams"]}):
        length_penalty = best["length_penalty"] if num_beams > 1 else 1.0
        hypotheses, scores = timed_scores(
            family, model, config, "test", references, num_beams, length_penalty
        )
        results["test"].append(scores)
        print(json.dumps(scores), flush=True)
    results["test_captions"] = [
        {"image_id": image_id, "caption": caption, "references": refs}
        for image_id, caption, refs in list(zip(ids, hypotheses, references))[:12]
    ]

    images = [
        example["image"]
        for example in family.load_split("test").take(ATTENTION_FIGURES + 1).as_numpy_iterator()
    ]
    results["figures"] = []
    if config.attention != "none":
        for index in range(ATTENTION_FIGURES):
            name = f"attention_{index}.png"
            attention_figure(family, model, images[index], references[index], model_dir / name)
            results["figures"].append({"image_id": ids[index], "file": name})
    results["probes"] = []
    for description, data in probes(images[ATTENTION_FIGURES]):
        try:
            [record] = family.predict_records(model, [data])
        except InputError as error:
            record = {"error": str(error)}
        results["probes"].append({"input": description, **record})
        print(json.dumps(results["probes"][-1], default=str), flush=True)
    (model_dir / "decoding.json").write_text(
        json.dumps(results, indent=2, ensure_ascii=False, default=float) + "\n"
    )
    return results


def main(argv=None) -> int:
    return report_main(ENTRY, report, __doc__, argv, score_setting=validation_setting)


if __name__ == "__main__":
    raise SystemExit(main())
