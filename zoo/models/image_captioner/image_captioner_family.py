"""The image captioning family: JPEG or PNG bytes in, a sentence out."""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import sacrebleu
import tensorflow as tf

from zoo.errors import InputError
from zoo.family import ValidationScore, records
from zoo.generation.family import DecodingFamily, best_attention, decoded
from zoo.layers.attention_decoder import AttentionDecoder
from zoo.models.image_captioner.image_captioner import ImageCaptioner
from zoo.models.image_captioner.image_captioner_preprocessor import (
    END_ID,
    NOT_AN_IMAGE,
    ImageCaptionerPreprocessor,
    normalize_caption,
)
from zoo.models.translator.translator_family import SmoothedSequenceCrossEntropy
from zoo.progress import dataset_size, progress
from zoo.task import utf8_bytes

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
# Training captions are padded to a multiple of this: few batch shapes (JAX compiles each).
CAPTION_PAD_MULTIPLE = 8
# Images encoded per batch when caching features.
ENCODE_BATCH_SIZE = 64


def as_image_batch(inputs) -> tf.Tensor:
    """Raw inputs -> a rank-1 tf.string tensor of image bytes. Each input is bytes (the image
    itself), or a str: a path to an image file (read here), else taken as the bytes.

    Raises:
        InputError: not a string or a list of strings; a str ending like an image file name
            (.jpg, .jpeg, .png) that names no file.
    """
    from zoo.task import as_string_batch

    if isinstance(inputs, (str, bytes)):
        inputs = [inputs]
    if isinstance(inputs, (list, tuple)):
        read = []
        for item in inputs:
            if isinstance(item, str) or (isinstance(item, bytes) and len(item) < 4096):
                path = item.decode("utf-8", "replace") if isinstance(item, bytes) else item
                is_path_like = path.lower().endswith(IMAGE_SUFFIXES)
                if is_path_like and os.path.isfile(path):
                    read.append(Path(path).read_bytes())
                    continue
                if is_path_like and isinstance(item, str):
                    raise InputError(
                        f"No image file {path!r}: pass paths of JPEG or PNG files, or their bytes."
                    )
            read.append(utf8_bytes(item) if isinstance(item, str) else item)
        inputs = read
    return as_string_batch(inputs)


def caption_scores(
    hypotheses: list[str], references: list[list[str]], meteor: bool = False
) -> dict:
    """Corpus BLEU-1..4 (sacreBLEU, `tokenize="none"` on normalised captions: lower case,
    punctuation removed, words split at spaces), CIDEr-D (pycocoevalcap) and METEOR (its
    Java scorer, with `meteor` where Java is installed; its start takes seconds) of
    hypotheses against every image's references."""
    hypotheses = [_normalized(text) for text in hypotheses]
    references = [[_normalized(text) for text in refs] for refs in references]
    streams = [list(stream) for stream in zip(*references)]
    scores = {}
    for order in range(1, 5):
        bleu = sacrebleu.metrics.BLEU(tokenize="none", max_ngram_order=order)
        result = bleu.corpus_score(hypotheses, streams)
        scores[f"bleu{order}"] = round(result.score, 2)
    scores["bleu_signature"] = str(bleu.get_signature())
    scores["brevity_penalty"] = round(result.bp, 4)
    from pycocoevalcap.cider.cider import Cider

    gts = {i: refs for i, refs in enumerate(references)}
    res = {i: [hypothesis] for i, hypothesis in enumerate(hypotheses)}
    scores["cider"] = round(float(Cider().compute_score(gts, res)[0]) * 100, 2)
    if meteor and shutil.which("java"):
        from pycocoevalcap.meteor.meteor import Meteor

        # METEOR's scorer refuses empty hypotheses.
        res = {i: [text or "a"] for i, [text] in res.items()}
        scores["meteor"] = round(float(Meteor().compute_score(gts, res)[0]) * 100, 2)
    return scores


def _normalized(text: str) -> str:
    return normalize_caption(tf.constant(text)).numpy().decode("utf-8")


class ImageCaptionerFamily(DecodingFamily):
    """Captioning over a dataset of {"image" (JPEG bytes), "image_id", "captions" (5,)}.

    Args:
        load_split: callable. Split name ("train", "validation", "test") -> dataset.
        name: str. The dataset's name, for the feature cache's folder.
    """

    metric = "bleu4"
    metric_points = 1.0  # BLEU is in points already.
    model_class = ImageCaptioner
    reads_text = False  # JPEG or PNG bytes.

    def __init__(self, load_split: Callable[[str], tf.data.Dataset], name: str = "flickr8k"):
        self.load_split = load_split
        self.name = name

    def build(self, config, preprocessor=None) -> ImageCaptioner:
        preprocessor = preprocessor or self.preprocessor(config)
        num_ids = preprocessor.num_ids if preprocessor.vocabulary else config.vocabulary_size
        decoder = AttentionDecoder(
            num_ids, config.embedding_dim, name="decoder", **config.decoder_arguments()
        )
        return ImageCaptioner(
            decoder,
            preprocessor=preprocessor,
            num_positions=preprocessor.encoder.num_positions,
            feature_dim=preprocessor.encoder.channels,
            attention_penalty=config.attention_penalty,
            feature_dropout=config.feature_dropout,
            num_beams=config.num_beams,
            length_penalty=config.length_penalty,
            max_output_length=config.max_output_length,
        )

    @staticmethod
    def preprocessor(config) -> ImageCaptionerPreprocessor:
        return ImageCaptionerPreprocessor(
            vocabulary_size=config.vocabulary_size,
            min_word_count=config.min_word_count,
            max_caption_length=config.max_caption_length,
            encoder=config.encoder,
            image_size=config.image_size,
        )

    def prepare_model(self, config, run_dir: Path) -> ImageCaptioner:
        preprocessor = self.preprocessor(config)
        preprocessor.adapt(self.load_split("train").map(lambda example: example["captions"]))
        print(f"Vocabulary: {preprocessor.num_ids:,} ids.", flush=True)
        source = preprocessor.encoder.load_imagenet_weights()
        print(f"Encoder {config.encoder}: ImageNet weights from {source}.", flush=True)
        return self.build(config, preprocessor=preprocessor)

    # --- Cached encoder features ---

    def feature_cache_dir(self, preprocessor) -> Path:
        """Where a split's features by this encoder (its architecture, input size and weights)
        are kept: beside the prepared TFDS data, reused by every run with the same encoder."""
        digest = hashlib.sha256()
        for weight in preprocessor.encoder.weights:
            digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
        encoder = preprocessor.encoder
        root = os.environ.get("ZOO_DATA_DIR") or os.environ.get("TFDS_DATA_DIR")
        root = Path(root or "~/tensorflow_datasets").expanduser()
        name = f"{encoder.architecture}-{encoder.image_size}-{digest.hexdigest()[:12]}"
        return root / "zoo_features" / self.name / name

    def features(self, model, split: str) -> np.ndarray:
        """The encoder's features of every image of `split` (images, positions, channels),
        float16, in the split's order: computed once, then read from the cache (memory-mapped).
        """
        examples = self.load_split(split)
        ids = b"\n".join(examples.map(lambda e: e["image_id"]).as_numpy_iterator())
        path = self.feature_cache_dir(model.preprocessor) / (
            f"{split}-{hashlib.sha256(ids).hexdigest()[:12]}.npy"
        )
        if not path.exists():
            image_batches = progress(
                examples.map(lambda e: e["image"]).batch(ENCODE_BATCH_SIZE),
                dataset_size(examples),
                f"Caching the encoder's features of the {split} images in {path}...",
                unit="image",
                size=len,
            )
            batches = []
            for images in image_batches:
                features = model.preprocessor(images)["features"]
                batches.append(keras.ops.convert_to_numpy(features).astype(np.float16))
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
            with open(partial, "wb") as file:
                np.save(file, np.concatenate(batches))
            os.replace(partial, path)
        return np.load(path, mmap_mode="r")

    def _pairs(self, model, config, split: str, training: bool) -> tf.data.Dataset:
        """Batches of ({"features", "token_ids"}, labels): one example per (image, caption)."""
        features = self.features(model, split)
        captions = self.load_split(split).map(lambda e: e["captions"])
        captions = np.concatenate(list(captions.batch(1024).as_numpy_iterator()))
        per_image = captions.shape[1]
        indices = np.repeat(np.arange(len(captions)), per_image).astype(np.int32)
        dataset = tf.data.Dataset.from_tensor_slices((indices, captions.reshape(-1)))
        if training:
            dataset = dataset.shuffle(len(indices), seed=config.seed, reshuffle_each_iteration=True)
        preprocessor = model.preprocessor
        dataset = dataset.map(
            lambda index, caption: (index, *preprocessor.training_pair(caption)),
            num_parallel_calls=tf.data.AUTOTUNE,
        ).padded_batch(config.batch_size)

        def with_features(index, token_ids, labels):
            grid = tf.numpy_function(
                lambda rows: features[np.sort(rows)][np.argsort(np.argsort(rows))].astype(
                    np.float32
                ),
                [index],
                tf.float32,
            )
            grid.set_shape([None, features.shape[1], features.shape[2]])
            steps = tf.shape(token_ids)[1]
            padding = [[0, 0], [0, (-steps) % CAPTION_PAD_MULTIPLE]]
            inputs = {"features": grid, "token_ids": tf.pad(token_ids, padding)}
            return inputs, tf.pad(labels, padding)

        return dataset.map(with_features, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
            tf.data.AUTOTUNE
        )

    def training_data(self, model, config):
        return (
            self._pairs(model, config, "train", training=True),
            self._pairs(model, config, "validation", training=False),
        )

    def compile(self, model, config) -> None:
        model.compile(
            optimizer=self.optimizer(config),
            loss=SmoothedSequenceCrossEntropy(config.label_smoothing),
        )

    def callbacks(self, model, config) -> list[keras.callbacks.Callback]:
        """`val_bleu4`: BLEU-4 of greedy captions of the whole validation split (cached
        features) against its 5 references each."""
        score = functools.partial(
            self._score_cached,
            model,
            config,
            "validation",
            num_beams=1,
            # On a new line: Keras's epoch bar leaves its line open until the epoch ends.
            label="\nCaptioning the validation images (greedy) for their BLEU-4...",
        )
        return [ValidationScore("bleu4", score, "validation BLEU-4 (greedy)")]

    def references(self, split: str) -> tuple[list[str], list[list[str]]]:
        """(image ids, the 5 raw captions of each) of a whole split, in order."""
        ids, references = [], []
        for example in self.load_split(split).as_numpy_iterator():
            ids.append(example["image_id"].decode("utf-8"))
            references.append([caption.decode("utf-8") for caption in example["captions"]])
        return ids, references

    def caption_features(
        self,
        model,
        features,
        batch_size: int,
        num_beams=None,
        length_penalty=None,
        label="Captioning...",
    ) -> list[str]:
        """Captions of cached features (images, positions, channels), `batch_size` at a time,
        with the model's decoding unless `num_beams` / `length_penalty` are given, and a
        progress bar under `label`."""

        def caption(batch):
            batch = np.asarray(batch, dtype=np.float32)
            result = model.caption_ids(batch, num_beams, length_penalty)
            best = tf.constant(keras.ops.convert_to_numpy(result["token_ids"])[:, 0])
            return [text.decode("utf-8") for text in model.preprocessor.detokenize(best).numpy()]

        return self.generated(caption, features, batch_size, label, unit="image")

    def _score_cached(self, model, config, split: str, num_beams=None, label=None) -> dict:
        _, references = self.references(split)
        hypotheses = self.caption_features(
            model,
            self.features(model, split),
            config.decode_batch_size,
            num_beams,
            label=label or f"Captioning the {split} images...",
        )
        return caption_scores(hypotheses, references)

    def evaluate(self, model, config, split: str) -> dict:
        """BLEU-1..4, CIDEr-D and METEOR of the whole split's captions, decoded from the raw
        image bytes (the served path, the encoder included) with the model's beam width."""
        ids, references = self.references(split)
        images = [example["image"] for example in self.load_split(split).as_numpy_iterator()]
        batch_size = config.decode_batch_size
        beams = self.decoding(model)
        hypotheses = self.generated(
            lambda batch: model.generate(batch, batch_size=batch_size),
            images,
            batch_size,
            f"Captioning the {split} images from their bytes ({beams})...",
            unit="image",
        )
        return {
            **caption_scores(hypotheses, references, meteor=True),
            "num_examples": len(references),
            "num_beams": model.num_beams,
            "length_penalty": model.length_penalty,
            "tokenization": "lower case, punctuation removed, split at spaces",
            "examples": [
                {"image_id": image_id, "caption": hypothesis, "references": refs}
                for image_id, hypothesis, refs in list(zip(ids, hypotheses, references))[:5]
            ],
        }

    def postprocess(self, model: ImageCaptioner, data, outputs=None) -> dict[str, tf.Tensor]:
        """`caption` (the best candidate's words), `score` (its mean log-probability per token,
        the end token included) and `error` ("" for an image; "not a JPEG or PNG image", with
        caption "" and score 0, for anything else). `outputs` is unused: decoding runs here."""
        preprocessor = model.preprocessor
        pixels, read = preprocessor.read_images(data)
        features = preprocessor.encode(pixels)
        result = decoded(model.caption_ids, features)
        caption = preprocessor.detokenize(result["token_ids"][:, 0])
        return {
            "caption": tf.where(read, caption, ""),
            "score": tf.where(read, tf.cast(result["scores"][:, 0], tf.float32), 0.0),
            "error": tf.where(read, "", NOT_AN_IMAGE),
        }

    def predict_records(self, model, inputs) -> list[dict]:
        data = as_image_batch(inputs)
        try:
            return records(self.postprocess(model, data))
        except tf.errors.InvalidArgumentError as error:
            # A graph error's message is mostly its trace; the reason is its last plain line.
            context = ("[[", "File ", "Detected at", "Graph execution", "in user code")
            lines = [line.strip() for line in error.message.splitlines()]
            reasons = [line for line in lines if line and not line.startswith(context)]
            reason = reasons[-1] if reasons else "corrupt data"
            raise InputError(
                f"An image could not be decoded ({reason[:200]}): a JPEG or PNG file is cut or "
                "corrupt."
            ) from None

    def serving_signature(self) -> list[tf.TensorSpec]:
        return [tf.TensorSpec([None], tf.string, name="image")]

    def attention(self, model: ImageCaptioner, data) -> dict[str, tf.Tensor]:
        """The best caption's attention over the image grid, for plotting (TensorFlow
        backend): `caption`, `words` (batch, time) strings ("" after the caption; the last
        is the end token "<end>"), `weights` (batch, time, positions): each word's attention
        weights over the grid's positions (row by row, e.g. 7 x 7)."""
        preprocessor = model.preprocessor
        pixels, _ = preprocessor.read_images(data)
        features = preprocessor.encode(pixels)
        token_ids = model.caption_ids(features)["token_ids"]
        with_end, weights = best_attention(model.token_log_probs, features, token_ids, END_ID)
        words = preprocessor.word_strings(tf.cast(with_end, tf.int64))
        return {
            "caption": preprocessor.detokenize(token_ids[:, 0]),
            "words": tf.where(with_end > 0, words, ""),
            "weights": weights,
        }
