"""The private Keras APIs the zoo relies on, where no public one serves: each test fails
loudly if a Keras release moves or changes one (see the comments where they are used)."""

import keras
import numpy as np
import tensorflow as tf

from zoo.layers import JordanRNNCell, PeepholeLSTMCell
from zoo.models.text_classifier import TextClassifierPreprocessor
from zoo.train import SwapEMAWeights
from zoo.vocabulary import lookup_table, string_lookup


def test_rnn_resets_the_dropout_masks_of_the_zoo_cells_between_calls():
    for cell_class in (JordanRNNCell, PeepholeLSTMCell):
        layer = keras.layers.RNN(cell_class(4, dropout=0.5, seed=1), return_sequences=True)
        inputs = np.ones((2, 3, 5), dtype="float32")
        first = keras.ops.convert_to_numpy(layer(inputs, training=True))
        second = keras.ops.convert_to_numpy(layer(inputs, training=True))
        # Same mask within a call (Keras's DropoutRNNCell caches it), a new one the next call.
        assert not np.allclose(first, second), cell_class.__name__


def test_string_layers_receive_tf_strings_unconverted():
    preprocessor = TextClassifierPreprocessor(vocabulary=["great", "film"], sequence_length=4)
    assert preprocessor._convert_input_args is False
    assert preprocessor._allow_non_tensor_positional_args is True
    ids = keras.ops.convert_to_numpy(preprocessor(tf.constant(["great film"])))
    np.testing.assert_array_equal(ids, [[2, 3]])


def test_weight_averages_swap_through_the_optimizers_private_lists():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(use_ema=True, ema_momentum=0.5), loss="mse")
    model.fit(np.ones((4, 2)), np.ones((4, 1)), epochs=1, verbose=0)
    optimizer = model.optimizer
    weights = [keras.ops.convert_to_numpy(v) for v in optimizer._trainable_variables]
    averages = [keras.ops.convert_to_numpy(v) for v in optimizer._model_variables_moving_average]
    assert len(weights) == len(averages) == 2
    SwapEMAWeights()._backend_swap_variables(optimizer)
    swapped = [keras.ops.convert_to_numpy(v) for v in optimizer._trainable_variables]
    for before, after in zip(averages, swapped):
        np.testing.assert_array_equal(before, after)


def test_nested_layers_are_walked_through_flatten_layers():
    inner = keras.layers.Dense(2, name="inner")
    outer = keras.Sequential([keras.Input((3,)), inner])
    model = keras.Sequential([keras.Input((3,)), outer])
    assert inner in list(model._flatten_layers(include_self=False))


def test_string_lookup_keeps_its_hash_table_where_export_tracks_it():
    lookup = string_lookup(["great", "film"])
    table = lookup_table(lookup)
    assert isinstance(table, tf.lookup.StaticHashTable)
    np.testing.assert_array_equal(table.lookup(tf.constant(["film", "bad"])).numpy(), [3, 1])


def test_sentence_piece_tokenizer_keeps_its_tensorflow_text_model_where_export_tracks_it():
    from tests.helpers.smoke import SAMPLE_TEXTS
    from zoo.models.translator import TranslatorPreprocessor
    from zoo.models.translator.translator_preprocessor import sentence_piece_model

    preprocessor = TranslatorPreprocessor(vocabulary_size=60)
    preprocessor.adapt(SAMPLE_TEXTS)
    model = sentence_piece_model(preprocessor.source_tokenizer)
    assert isinstance(model, tf.Module) and model.trainable_variables == ()
    assert model.tokenize(tf.constant(["Boston"])).shape[0] == 1
