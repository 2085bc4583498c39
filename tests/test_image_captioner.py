"""The captioning entry on a tiny Flickr8k mirror (coloured squares and their captions): the
MobileNet TF.js weights reader, training from cached features with BLEU-1..4 and CIDEr, the
decoders (greedy = width-1 beam, Show and Tell, the attention penalty), the served SavedModel
(raw JPEG/PNG bytes, a clear answer for a non-image and an error for a corrupt image, the
attention signature) and the CLI on image files."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from pipelines.flickr8k import SPLIT_SIZES as REAL_SPLIT_SIZES
from tests.conftest import REPO, subprocess_env
from tests.helpers.serving import finish_serving, start_serving, tensorflow_only_site
from tests.test_flickr8k_pipeline import write_flickr8k_mirror
from zoo.export import export_model
from zoo.models.image_captioner.image_encoder import (
    EncoderWeightsError,
    assign_weights_by_name,
    mobilenet,
    mobilenet_weights_folder,
    read_tfjs_weights,
)
from zoo.registry import get_entry
from zoo.train import train

COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 200, 30)}
SPLITS = {
    "train": [f"{n}_{colour}.jpg" for n in range(4) for colour in COLOURS],
    "validation": [f"5{n}_{colour}.jpg" for n, colour in enumerate(COLOURS)],
    "test": [f"6{n}_{colour}.jpg" for n, colour in enumerate(COLOURS)],
}
TINY_CAPTIONER = {
    "encoder": "tiny",
    "image_size": 28,
    "min_word_count": 1,
    "vocabulary_size": 40,
    "embedding_dim": 8,
    "units": 8,
    "epochs": 2,
    "batch_size": 6,
    "num_beams": 2,
    "max_output_length": 8,
    "decode_batch_size": 2,
    "ema_momentum": 0.0,
}


def colour_of(name: str) -> str:
    return name.rsplit("_", 1)[1].removesuffix(".jpg")


def square(colour: str, seed: int = 0, size: int = 40, png: bool = False) -> bytes:
    noise = np.random.default_rng(seed).integers(-20, 20, (size, size, 3))
    pixels = np.clip(np.array(COLOURS[colour]) + noise, 0, 255).astype(np.uint8)
    return (tf.io.encode_png if png else tf.io.encode_jpeg)(pixels).numpy()


def captions_of(name: str) -> list[str]:
    colour = colour_of(name)
    return [
        f"A {colour} square.",
        f"a {colour} square on a wall",
        f"The {colour} square!",
        f"A {colour} square",
        f"A square , {colour} .",
    ]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("captioning")
    write_flickr8k_mirror(
        root / "mirror", SPLITS, captions_of, lambda name, index: square(colour_of(name), index)
    )
    with pytest.MonkeyPatch.context() as patch:
        use_tiny_mirror(patch, root)
        patch.setenv("ZOO_VERBOSE", "0")
        metrics = train(
            "captioning", TINY_CAPTIONER, output_dir=root / "model", runs_dir=root / "runs"
        )
        yield root, metrics


def use_tiny_mirror(patch, root: Path) -> None:
    patch.setenv("ZOO_DATA_MIRROR", str(root / "mirror"))
    patch.setenv("ZOO_DATA_DIR", str(root / "tfds"))
    patch.setattr(
        "pipelines.flickr8k.SPLIT_SIZES", {split: len(images) for split, images in SPLITS.items()}
    )


@pytest.fixture(scope="module")
def model(trained):
    return zoo.load("captioning", trained[0] / "model" / "model.keras")


# --- The encoder's weights ---


def write_tfjs_folder(model: keras.Model, folder: Path) -> None:
    """A TF.js layers-model folder of `model`'s weights as Keras 2 named them (one group per
    layer, depthwise kernels as "depthwise_kernel")."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = []
    for index, layer in enumerate(layer for layer in model.layers if layer.weights):
        specs, data = [], b""
        for weight in layer.weights:
            name = weight.path.rsplit("/", 1)[-1]
            if isinstance(layer, keras.layers.DepthwiseConv2D) and name == "kernel":
                name = "depthwise_kernel"
            array = keras.ops.convert_to_numpy(weight).astype("<f4")
            specs.append(
                {"name": f"{layer.name}/{name}", "shape": list(array.shape), "dtype": "float32"}
            )
            data += array.tobytes()
        (folder / f"group{index}-shard1of1").write_bytes(data)
        manifest.append({"paths": [f"group{index}-shard1of1"], "weights": specs})
    (folder / "model.json").write_text(json.dumps({"weightsManifest": manifest}))


def small_cnn(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv1")(inputs)
    x = keras.layers.BatchNormalization(name="conv1_bn")(x)
    x = keras.layers.DepthwiseConv2D(3, name="conv_dw_1")(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="conv_preds")(x))


def test_tfjs_weights_are_read_and_assigned_by_layer_and_weight_name(tmp_path):
    source, target = small_cnn(1), small_cnn(2)
    write_tfjs_folder(source, tmp_path / "tfjs")
    report = assign_weights_by_name(target, read_tfjs_weights(tmp_path / "tfjs"))
    assert len(report["assigned"]) == len(source.weights) and report["unused"] == []
    for expected, actual in zip(source.weights, target.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(actual), expected.numpy())


def test_cut_or_mismatched_tfjs_weights_are_refused(tmp_path):
    write_tfjs_folder(small_cnn(1), tmp_path / "tfjs")
    shard = tmp_path / "tfjs" / "group0-shard1of1"
    shard.write_bytes(shard.read_bytes()[:-4])
    with pytest.raises(EncoderWeightsError, match="too few"):
        read_tfjs_weights(tmp_path / "tfjs")
    write_tfjs_folder(small_cnn(1), tmp_path / "tfjs")
    tensors = read_tfjs_weights(tmp_path / "tfjs")
    tensors["conv1/kernel"] = tensors["conv1/kernel"][..., :2]
    with pytest.raises(EncoderWeightsError, match="conv1/kernel has shape"):
        assign_weights_by_name(small_cnn(2), tensors)
    del tensors["conv1/kernel"]
    with pytest.raises(EncoderWeightsError, match="No stored weights for 1"):
        assign_weights_by_name(small_cnn(2), tensors)


# The real mirror's settings, as they were before a module fixture pointed them at a tiny one.
REAL_DATA = {key: os.environ.get(key) for key in ("ZOO_DATA_MIRROR", "ZOO_DATA_DIR")}


@pytest.fixture
def real_flickr8k(monkeypatch):
    """The real Flickr8k mirror, also while the `trained` fixture's tiny one is set."""
    import pipelines.flickr8k

    for key, value in REAL_DATA.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    monkeypatch.setattr(pipelines.flickr8k, "SPLIT_SIZES", REAL_SPLIT_SIZES)


def dog_images(count: int) -> list[bytes]:
    """The first `count` Flickr8k test images whose 5 captions all say "dog"."""
    from pipelines.flickr8k import load_flickr8k

    images = []
    for example in load_flickr8k("test").as_numpy_iterator():
        captions = [caption.decode().lower().split() for caption in example["captions"]]
        if all("dog" in words for words in captions):
            images.append(example["image"])
            if len(images) == count:
                return images
    return images


def dog_classes(scores) -> tuple[int, int]:
    """(images whose top-1 class is a dog, images with a dog among their top 5) of ImageNet
    class scores (images, 1000). ImageNet's dog classes are 151-268; untrained or misassigned
    weights find none."""
    top5 = np.argsort(-np.asarray(scores), axis=1)[:, :5]
    dogs = (top5 >= 151) & (top5 <= 268)
    return int(dogs[:, 0].sum()), int(dogs.any(axis=1).sum())


@pytest.mark.real_data
@pytest.mark.skipif(mobilenet_weights_folder() is None, reason="the mirror has no MobileNet")
def test_the_mirror_mobilenet_loads_whole_and_sees_dogs_in_dog_photos(real_flickr8k):
    classifier = mobilenet(include_top=True)
    report = assign_weights_by_name(classifier, read_tfjs_weights(mobilenet_weights_folder()))
    assert len(report["assigned"]) == 137 and report["unused"] == []
    labels = json.loads((mobilenet_weights_folder() / "metadata.json").read_text())["labels"]
    assert len(labels) == 1000 and labels[207].startswith("golden retriever")
    images = np.stack([tf.io.decode_jpeg(image).numpy() for image in dog_images(8)])
    probabilities = classifier.predict(images.astype("float32") / 127.5 - 1.0, verbose=0)
    assert dog_classes(probabilities)[1] >= 6, np.argsort(-probabilities, axis=1)[:, :5]
    # The captioner's encoder (no top) takes the same weights but the classifier's.
    encoder = mobilenet(include_top=False)
    report = assign_weights_by_name(encoder, read_tfjs_weights(mobilenet_weights_folder()))
    assert report["unused"] == ["conv_preds/bias", "conv_preds/kernel"]
    assert encoder.output_shape == (None, 7, 7, 768)


# --- Training, metrics and decoding ---


def test_training_scores_bleu_and_cider_against_all_references(trained):
    root, metrics = trained
    assert metrics["metric"] == "bleu4" and metrics["split"] == "test"
    assert metrics["num_examples"] == 3 and metrics["num_beams"] == 2
    for key in ("bleu1", "bleu2", "bleu3", "bleu4", "cider"):
        assert 0.0 <= metrics[key], key
    assert "tok:none" in metrics["bleu_signature"]
    assert [example["image_id"] for example in metrics["examples"]] == SPLITS["test"]
    training = json.loads((root / "model" / "training.json").read_text())
    assert len(training["history"]["val_bleu4"]) == 2  # Scored after every epoch.
    # The encoder's features were cached once per split, beside the prepared data.
    cached = sorted(path.name.split("-")[0] for path in (root / "tfds").rglob("*.npy"))
    assert cached == ["test", "train", "validation"] or cached == ["train", "validation"]


def test_caption_scores_are_the_standard_ones_on_known_captions():
    from zoo.models.image_captioner.image_captioner_family import caption_scores

    references = [
        ["A dog runs.", "a dog is running", "The dog runs!", "dog runs", "A dog"],
        ["A cat sleeps.", "a cat is asleep", "The cat sleeps", "cat sleeping", "A cat"],
    ]
    perfect = caption_scores(["a dog runs", "a cat sleeps"], references)
    assert perfect["bleu1"] == perfect["bleu2"] == perfect["bleu3"] == 100.0
    swapped = caption_scores(["a cat sleeps", "a dog runs"], references)
    assert swapped["bleu1"] < 40 and swapped["cider"] < perfect["cider"] / 5


def test_greedy_decoding_equals_a_beam_search_of_width_one(model):
    features = model.preprocessor(tf.constant([square("red"), square("blue", 3)]))["features"]
    greedy = model.caption_ids(features.numpy(), num_beams=1)
    beam = model.caption_ids(features.numpy(), num_beams=1, beam_search=True)
    for key in ("token_ids", "scores"):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(greedy[key]), keras.ops.convert_to_numpy(beam[key])
        )


def test_generate_captions_like_predict_records_and_says_which_were_not_images(model):
    images = [square("red", png=True), square("green", 5), b"GIF89a not supported", "hello"]
    records = get_entry("captioning").family.predict_records(model, images)
    assert [r["caption"] for r in records] == model.generate(images, batch_size=3)
    assert [r["error"] for r in records] == ["", "", *["not a JPEG or PNG image"] * 2]
    assert records[2]["caption"] == "" and records[2]["score"] == 0.0
    # A cut JPEG is refused with the decoder's reason, not the first line of a graph trace.
    with pytest.raises(zoo.InputError, match=r"decoded \(.*JPEG.*\): a JPEG or PNG file is cut"):
        get_entry("captioning").family.predict_records(model, [square("green")[:200]])


def test_show_and_tell_and_the_attention_penalty_build_and_train():
    for overrides in ({"attention": "none"}, {"attention_penalty": 1.0}):
        keras.utils.set_random_seed(0)
        model = zoo.build("captioning", **{**TINY_CAPTIONER, **overrides})
        model.preprocessor.adapt(["a red square", "a blue square"])
        inputs = {
            "features": np.random.default_rng(0).random((2, 49, 4)).astype("float32"),
            "token_ids": np.array([[2, 4, 5, 0], [2, 6, 5, 7]], dtype="int32"),
        }
        get_entry("captioning").family.compile(
            model,
            zoo.config.resolve_config(
                get_entry("captioning").config_class, {**TINY_CAPTIONER, **overrides}
            ),
        )
        history = model.fit(inputs, np.array([[4, 5, 3, 0], [6, 5, 7, 3]]), epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
        if overrides.get("attention") == "none":
            assert model.penalty is None and model.decoder.attention_layer is None
        else:
            assert model.penalty is not None and model.losses  # The penalty joins the loss.


# --- Serving and the CLI ---


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="exports a TF SavedModel")
def test_exported_captioner_serves_image_bytes_with_tensorflow_alone(trained, model, tmp_path):
    version = export_model("captioning", model_dir=trained[0] / "model")
    images = [square("red"), square("blue", 2, size=60, png=True)]
    cut = square("green")[:200]
    cases = {"images": images, "with_text": [images[0], b"not an image"], "cut_jpeg": [cut]}
    answer = finish_serving(
        start_serving(version, cases, tensorflow_only_site(tmp_path / "site"), tmp_path / "w")
    )
    assert answer["forbidden_modules"] == [] and list(answer["inputs"]) == ["image"]
    assert not [op for op in answer["op_types"] if op.startswith("Xla")]
    served = answer["results"]["images"]["outputs"]
    records = get_entry("captioning").family.predict_records(model, images)
    assert served["caption"] == [record["caption"] for record in records]
    np.testing.assert_allclose(served["score"], [r["score"] for r in records], atol=1e-5)
    mixed = answer["results"]["with_text"]["outputs"]
    assert mixed["caption"] == [served["caption"][0], ""]
    assert mixed["error"] == ["", "not a JPEG or PNG image"]
    # A JPEG whose data is cut: that request gets an error naming the format, not a crash.
    assert "JPEG" in answer["results"]["cut_jpeg"]["error"]

    attention = tf.saved_model.load(str(version)).signatures["attention"](image=tf.constant(images))
    weights, words = attention["weights"].numpy(), attention["words"].numpy()
    for row in range(len(images)):
        steps = int(np.sum(words[row] != b""))
        assert words[row, steps - 1] == b"<end>"
        np.testing.assert_allclose(weights[row, :steps].sum(axis=-1), 1.0, rtol=1e-5)
        assert weights.shape[-1] == 49


def test_cli_predict_reads_image_files(trained, tmp_path):
    (tmp_path / "red.jpg").write_bytes(square("red"))
    (tmp_path / "blue.png").write_bytes(square("blue", png=True))

    def predict(*args):
        return subprocess.run(  # noqa: PLW1510 - the return code is asserted
            [
                sys.executable,
                "-m",
                "zoo",
                "predict",
                "captioning",
                *args,
                "--model",
                str(trained[0] / "model" / "model.keras"),
            ],
            capture_output=True,
            text=True,
            env=subprocess_env(KERAS_BACKEND="tensorflow"),
            cwd=REPO,
            timeout=300,
        )

    result = predict(str(tmp_path / "red.jpg"), str(tmp_path / "blue.png"), "--beam", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in result.stdout.splitlines()[-2:]]
    assert all(set(row) == {"caption", "score", "error"} and row["error"] == "" for row in rows)
    missing = predict(str(tmp_path / "nowhere.jpg"))
    assert missing.returncode == 2 and "No image file" in missing.stderr


SHIPPED = get_entry("captioning").directory / "model.keras"


@pytest.mark.real_data
@pytest.mark.pretrained
@pytest.mark.skipif(not SHIPPED.exists(), reason="no pretrained captioning model")
@pytest.mark.skipif(mobilenet_weights_folder() is None, reason="no Flickr8k mirror")
def test_the_pretrained_captioner_loads_in_plain_keras_and_sees_the_dogs(real_flickr8k):
    model = keras.saving.load_model(SHIPPED, compile=False)  # `import zoo` registered it.
    assert type(model).__name__ == "ImageCaptioner"
    captions = model.generate(dog_images(6), batch_size=6)
    dogs = [{"dog", "dogs", "puppy"} & set(caption.split()) for caption in captions]
    assert sum(map(bool, dogs)) >= 5, captions
    records = get_entry("captioning").family.predict_records(model, [b"not an image"])
    assert records[0]["caption"] == "" and records[0]["error"], records
