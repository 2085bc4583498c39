import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.config import CELLS
from zoo.errors import InputError
from zoo.layers import MaskedPooling, RecurrentStack
from zoo.models.text_classifier import TextClassifierPreprocessor

VOCABULARY = ["great", "film", "bad", "é"]


def test_preprocessor_maps_words_punctuation_and_unknown_words():
    preprocessor = TextClassifierPreprocessor(vocabulary=VOCABULARY, sequence_length=10)
    ids = preprocessor(tf.constant(["A GREAT film!<br />Bad.", "great"])).numpy()
    # 0 = padding, 1 = unknown; words start at 2. "a", "!" and "." are unknown here.
    np.testing.assert_array_equal(ids, [[1, 2, 3, 1, 4, 1], [2, 0, 0, 0, 0, 0]])


def test_preprocessor_gives_every_bad_string_a_valid_answer():
    preprocessor = TextClassifierPreprocessor(vocabulary=VOCABULARY, sequence_length=5)
    ids = preprocessor(tf.constant(["", "   ", b"\xff\xfe great", "É " * 500_000])).numpy()
    np.testing.assert_array_equal(ids[0], [1, 0, 0, 0, 0])  # empty -> one unknown token
    np.testing.assert_array_equal(ids[1], [1, 0, 0, 0, 0])
    np.testing.assert_array_equal(ids[2], [1, 2, 0, 0, 0])  # invalid UTF-8 is replaced
    np.testing.assert_array_equal(ids[3], [5, 5, 5, 5, 5])  # 1 MB truncated; UTF-8 lower-cased


@pytest.mark.parametrize("truncation, expected", [("post", [2, 3]), ("pre", [4, 2])])
def test_preprocessor_truncation(truncation, expected):
    preprocessor = TextClassifierPreprocessor(
        vocabulary=VOCABULARY, sequence_length=2, truncation=truncation
    )
    np.testing.assert_array_equal(preprocessor(tf.constant(["great film bad great"]))[0], expected)


def test_preprocessor_rejects_non_strings():
    preprocessor = TextClassifierPreprocessor(vocabulary=VOCABULARY)
    with pytest.raises(InputError, match="expects strings"):
        preprocessor(tf.constant([1, 2]))


def test_preprocessor_adapt_and_config_round_trip():
    preprocessor = TextClassifierPreprocessor(vocabulary_size=4, sequence_length=7)
    preprocessor.adapt(tf.data.Dataset.from_tensor_slices(["b a b", "c b a", "d"]).batch(2))
    assert preprocessor.get_vocabulary() == ["b", "a"]  # the 2 most frequent words
    clone = TextClassifierPreprocessor.from_config(preprocessor.get_config())
    text = tf.constant(["a b c d"])
    np.testing.assert_array_equal(clone(text), preprocessor(text))


def test_masked_pooling_ignores_padding():
    values = np.array([[[1.0, -1.0], [3.0, -3.0], [100.0, 100.0]]], dtype="float32")
    mask = np.array([[True, True, False]])
    for mode, expected in (("max", [3.0, -1.0]), ("mean", [2.0, -2.0])):
        np.testing.assert_allclose(MaskedPooling(mode)(values, mask=mask)[0], expected)
    assert MaskedPooling("max_mean")(values, mask=mask).shape == (1, 4)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("return_sequences", [True, False])
def test_recurrent_stack_padded_batch_equals_each_sequence_alone(cell, return_sequences):
    keras.utils.set_random_seed(0)
    embedding = keras.layers.Embedding(10, 3, mask_zero=True)
    stack = RecurrentStack(
        cell=cell,
        units=4,
        num_layers=2,
        bidirectional=True,
        residual=True,
        return_sequences=return_sequences,
    )
    padded = np.array([[3, 4, 5, 6, 7], [2, 8, 9, 0, 0]], dtype="int32")
    batch_outputs = keras.ops.convert_to_numpy(stack(embedding(padded)))
    for row, length in ((0, 5), (1, 3)):
        alone = keras.ops.convert_to_numpy(stack(embedding(padded[row : row + 1, :length])))
        expected = alone[0]
        actual = batch_outputs[row][:length] if return_sequences else batch_outputs[row]
        np.testing.assert_allclose(actual, expected, atol=1e-5)


def test_recurrent_stack_config_round_trip_and_validation():
    stack = RecurrentStack(cell="gru", units=5, num_layers=3, merge_mode="sum", dropout=0.1)
    clone = RecurrentStack.from_config(stack.get_config())
    assert clone.get_config() == stack.get_config()
    with pytest.raises(ValueError, match="cell must be one of"):
        RecurrentStack(cell="transformer")
    with pytest.raises(ValueError, match="merge_mode"):
        RecurrentStack(merge_mode="max")
