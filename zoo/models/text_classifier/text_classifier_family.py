"""The many-to-one text classification family: raw text in, a class label out."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from pipelines.transforms import bucket_by_length
from zoo.family import Family
from zoo.layers import RecurrentBackbone
from zoo.models.text_classifier.text_classifier import TextClassifier
from zoo.models.text_classifier.text_classifier_preprocessor import TextClassifierPreprocessor
from zoo.progress import dataset_size, progress
from zoo.vocabulary import most_frequent_words, word2vec_matrix


class TextClassifierFamily(Family):
    """Text classifier over a dataset of (text, label) pairs.

    Args:
        load_split: callable. Split name (TFDS syntax, e.g. "train[:90%]") -> (text, label)
            dataset.
        class_names: tuple of str. Label names, in label-id order.
        unlabeled_split: str or None. A split of unlabeled text that word2vec and the
            vocabulary may also learn from.
    """

    metric = "accuracy"
    model_class = TextClassifier

    def __init__(
        self,
        load_split: Callable[[str], tf.data.Dataset],
        class_names: tuple[str, ...],
        unlabeled_split: str | None = None,
    ):
        self.load_split = load_split
        self.class_names = class_names
        self.unlabeled_split = unlabeled_split

    def build(self, config, preprocessor=None) -> TextClassifier:
        if preprocessor is None:
            preprocessor = TextClassifierPreprocessor(
                vocabulary_size=config.vocabulary_size,
                sequence_length=config.sequence_length,
                truncation=config.truncation,
            )
            vocabulary_size = config.vocabulary_size
        else:
            vocabulary_size = preprocessor.vocabulary_size
        backbone = RecurrentBackbone(
            vocabulary_size,
            config.embedding_dim,
            embedding_dropout=config.embedding_dropout,
            spatial_embedding_dropout=True,
            return_sequences=config.pooling != "last",
            name="backbone",
            **config.encoder_arguments(),
        )
        return TextClassifier(
            backbone,
            preprocessor=preprocessor,
            pooling=config.pooling,
            class_names=self.class_names,
        )

    def _train_split(self, config) -> str:
        return f"train[:{round(100 * (1 - config.validation_fraction))}%]"

    def _validation_split(self, config) -> str:
        return f"train[{round(100 * (1 - config.validation_fraction))}%:]"

    def prepare_model(self, config, run_dir: Path) -> TextClassifier:
        texts = self.load_split(self._train_split(config)).map(lambda text, label: text)
        if self.unlabeled_split:
            texts = texts.concatenate(self.load_split(self.unlabeled_split).map(lambda t, l: t))
        preprocessor = TextClassifierPreprocessor(
            vocabulary_size=config.vocabulary_size,
            sequence_length=config.sequence_length,
            truncation=config.truncation,
        )
        sentences = preprocessor.tokenize_corpus(
            texts, "Tokenizing the training and unlabeled text (for the vocabulary)..."
        )
        preprocessor.set_vocabulary(most_frequent_words(sentences, config.vocabulary_size - 2))
        (run_dir / "vocabulary.txt").write_text("\n".join(preprocessor.get_vocabulary()) + "\n")
        model = self.build(config, preprocessor=preprocessor)
        if config.embedding_init == "word2vec":
            matrix = word2vec_matrix(
                sentences,
                preprocessor.get_vocabulary(),
                dim=config.embedding_dim,
                epochs=config.word2vec_epochs,
                seed=config.seed,
            )
            model.backbone.token_embedding.embeddings.assign(matrix)
        return model

    def _batches(self, model, config, split: str, training: bool) -> tf.data.Dataset:
        dataset = self.load_split(split).map(
            lambda text, label: (model.preprocessor(text), label),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        if training:
            dataset = dataset.cache().shuffle(
                50_000, seed=config.seed, reshuffle_each_iteration=True
            )
        dataset = bucket_by_length(
            dataset, config.batch_size, config.sequence_length, step=config.bucket_step
        )
        if training:
            # Buckets fill at different rates; shuffling batches keeps lengths mixed in time.
            dataset = dataset.shuffle(64, seed=config.seed)
        return dataset.prefetch(tf.data.AUTOTUNE)

    def training_data(self, model, config):
        train = self._batches(model, config, self._train_split(config), training=True)
        validation = self._batches(model, config, self._validation_split(config), training=False)
        return train, validation.cache()

    def compile(self, model, config) -> None:
        model.compile(
            optimizer=self.optimizer(config),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        )

    def evaluate(self, model, config, split: str) -> dict:
        correct = total = 0
        batches = progress(
            self._batches(model, config, split, training=False).as_numpy_iterator(),
            dataset_size(self.load_split(split)),  # Bucketed batches: counted in texts.
            f"Classifying the {split} split...",
            unit="text",
            size=lambda batch: len(batch[1]),
        )
        for token_ids, labels in batches:
            logits = keras.ops.convert_to_numpy(model.predict_on_batch(token_ids))
            correct += int(np.sum(np.argmax(logits, axis=-1) == labels))
            total += int(labels.shape[0])
        return {"accuracy": correct / total, "num_examples": total}

    def postprocess(self, model: TextClassifier, text, outputs) -> dict[str, tf.Tensor]:
        """`label` (the most probable class's name), `probability` (its softmax probability),
        `num_tokens` (the words the model read) and `truncated` (whether the text had more
        words than the model's `sequence_length`, which were not read).

        A text without a word (empty, whitespace only) gets no answer: label "" and
        probability 0.
        """
        probabilities = tf.nn.softmax(tf.cast(outputs, tf.float32), axis=-1)
        words = model.preprocessor.tokenize(text).row_lengths()
        empty = tf.equal(words, 0)
        labels = tf.gather(tf.constant(model.class_names), tf.argmax(probabilities, axis=-1))
        return {
            "label": tf.where(empty, "", labels),
            "probability": tf.where(empty, 0.0, tf.reduce_max(probabilities, axis=-1)),
            "num_tokens": tf.cast(tf.minimum(words, model.preprocessor.sequence_length), tf.int32),
            "truncated": words > model.preprocessor.sequence_length,
        }
