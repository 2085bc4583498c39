import os
import tempfile

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from tests.conftest import NEGATIVE, POSITIVE, TINY_SENTIMENT
from zoo.errors import InputError
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
    return TextClassifier(preprocessor=preprocessor, **config)


def test_config_round_trip():
    model = tiny_classifier(cell="lstm", num_layers=2, pooling="last", merge_mode="sum")
    clone = TextClassifier.from_config(model.get_config())
    assert clone.get_config() == model.get_config()


def test_save_and_load_round_trip_with_plain_keras():
    model = tiny_classifier()
    path = os.path.join(tempfile.mkdtemp(), "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    texts = ["a great film .", "awful and boring"]
    np.testing.assert_allclose(loaded.predict(texts, verbose=0), model.predict(texts, verbose=0))


def test_raw_string_predict_equals_preprocessed_predict():
    model = tiny_classifier()
    texts = ["a great film .", "awful", "boring boring bad film ."]
    token_ids = model.preprocessor(tf.constant(texts)).numpy()
    np.testing.assert_allclose(
        model.predict(texts, verbose=0), model.predict(token_ids, verbose=0), atol=1e-6
    )
    dataset = tf.data.Dataset.from_tensor_slices(texts).batch(2)
    np.testing.assert_allclose(
        model.predict(dataset, verbose=0), model.predict(token_ids, verbose=0), atol=1e-6
    )


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


def test_predict_gives_valid_answers_for_odd_strings():
    model = tiny_classifier()
    logits = model.predict(["", b"\xff\xfe\xfd", "great " * 200_000, "🎬 ünïcödé"], verbose=0)
    assert logits.shape == (4, 2) and np.all(np.isfinite(logits))
    assert model.predict("a single string", verbose=0).shape == (1, 2)


@pytest.mark.parametrize(
    "bad_input, message",
    [
        (42, "Expected a string or a list of strings"),
        ([None], "found NoneType"),
        (["fine", 3.5], "found float"),
        ([], "at least one string"),
        ({"text": "great"}, "got dict"),
    ],
)
def test_predict_rejects_non_strings_clearly(bad_input, message):
    model = tiny_classifier()
    with pytest.raises(InputError, match=message):
        model.predict(bad_input, verbose=0)


def test_build_gives_an_untrained_model_of_the_requested_architecture():
    model = zoo.build("sentiment", **{**TINY_SENTIMENT, "cell": "lstm", "num_layers": 2})
    assert isinstance(model, TextClassifier)
    assert (model.cell, model.num_layers, model.units) == ("lstm", 2, 4)
    assert model.predict(np.array([[2, 3, 0]]), verbose=0).shape == (1, 2)
