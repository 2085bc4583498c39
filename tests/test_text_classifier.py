import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from tests.conftest import NEGATIVE, POSITIVE, TINY_SENTIMENT
from zoo.layers import RecurrentBackbone
from zoo.models.text_classifier import TextClassifierPreprocessor
from zoo.models.text_classifier.text_classifier import TextClassifier

VOCABULARY = ["great", "wonderful", "loved", "bad", "awful", "boring", "film", "."]


def tiny_classifier(**overrides) -> TextClassifier:
    config = {
        "vocabulary_size": len(VOCABULARY) + 2,
        "embedding_dim": 4,
        "units": 3,
        "cell": "gru",
        **overrides,
    }
    preprocessor = TextClassifierPreprocessor(vocabulary=VOCABULARY, sequence_length=12)
    pooling = config.pop("pooling", "max_mean")
    backbone = RecurrentBackbone(
        return_sequences=pooling != "last", spatial_embedding_dropout=True, **config
    )
    return TextClassifier(backbone, preprocessor=preprocessor, pooling=pooling)


def test_preprocessor_adapts_to_a_list_and_gives_an_empty_batch_one_step():
    preprocessor = TextClassifierPreprocessor(vocabulary_size=4, sequence_length=8)
    preprocessor.adapt(["Great film!", b"great acting", "film"])
    assert preprocessor.get_vocabulary() == ["film", "great"]  # vocabulary_size - 2 words
    # A served empty batch: TensorFlow's RNN loop cannot stack zero steps of unknown batch size.
    tokenize = tf.function(preprocessor, input_signature=[tf.TensorSpec([None], tf.string)])
    assert tokenize(tf.constant([], tf.string)).shape == (0, 1)
    np.testing.assert_array_equal(tokenize(tf.constant(["great", ""])), [[3], [1]])


def test_config_round_trip():
    model = tiny_classifier(cell="lstm", num_layers=2, pooling="last", merge_mode="sum")
    clone = TextClassifier.from_config(model.get_config())
    assert clone.get_config() == model.get_config()


def test_variable_length_inputs_and_padding_do_not_change_outputs():
    model = tiny_classifier()
    alone = model.predict(["great film"], verbose=0)
    with_long_neighbour = model.predict(["great film", "bad " * 11], verbose=0)
    np.testing.assert_allclose(alone[0], with_long_neighbour[0], atol=1e-6)


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_one_training_step_with_each_cell(cell):
    model = tiny_classifier(cell=cell, num_layers=2, dropout=0.1)
    model.compile(
        optimizer=keras.optimizers.Adam(clipnorm=1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    texts = tf.constant(POSITIVE + NEGATIVE)
    labels = np.array([1] * len(POSITIVE) + [0] * len(NEGATIVE))
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(model.preprocessor(texts), labels, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights()))


def test_build_gives_an_untrained_model_of_the_requested_architecture():
    model = zoo.build("sentiment", **{**TINY_SENTIMENT, "cell": "lstm", "num_layers": 2})
    assert isinstance(model, TextClassifier)
    assert (model.backbone.cell, model.backbone.num_layers, model.backbone.units) == ("lstm", 2, 4)
    assert model.predict(np.array([[2, 3, 0]]), verbose=0).shape == (1, 2)
