"""RecurrentBackbone: the embeddings + RecurrentStack layer every head takes."""

import keras
import numpy as np
import pytest

from zoo.layers import RecurrentBackbone


def test_padding_is_masked_and_features_sit_beside_the_embeddings():
    backbone = RecurrentBackbone(10, 4, cell="gru", units=3, bidirectional=True)
    padded = np.array([[2, 3, 4, 0, 0]], dtype="int32")
    features = np.random.default_rng(0).normal(size=(1, 5, 2)).astype("float32")
    with_features = RecurrentBackbone(10, 4, cell="gru", units=3, name="with_features")
    alone = keras.ops.convert_to_numpy(backbone(padded[:, :3]))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(backbone(padded))[:, :3], alone, atol=1e-6
    )
    assert backbone.output_dim == 6 and alone.shape == (1, 3, 6)
    outputs = with_features(padded, features=[features])
    assert keras.ops.shape(outputs) == (1, 5, 6)
    assert with_features.encoder.recurrent_layers[0].forward_layer.cell.kernel.shape[0] == 4 + 2


def test_config_round_trip_and_states():
    backbone = RecurrentBackbone(
        12,
        4,
        cell="lstm",
        units=5,
        num_layers=2,
        bidirectional=False,
        return_state=True,
        embedding_dropout=0.1,
        spatial_embedding_dropout=True,
    )
    token_ids = np.array([[2, 3, 0], [4, 0, 0]], dtype="int32")
    outputs, states = backbone(token_ids)
    assert len(states) == 2 and all(len(layer) == 2 for layer in states)  # [h, c] per layer
    clone = RecurrentBackbone.from_config(backbone.get_config())
    assert clone.get_config() == backbone.get_config() and clone.name == "backbone"
    clone.build(token_ids.shape)
    clone.set_weights(backbone.get_weights())
    clone_outputs, _ = clone(token_ids)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(clone_outputs), keras.ops.convert_to_numpy(outputs), atol=1e-6
    )
    # The last output of each sequence is its final h (padded steps masked).
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(outputs)[1, 0],
        keras.ops.convert_to_numpy(states[1][0])[1],
        atol=1e-6,
    )


def test_heads_check_what_they_need_of_the_backbone():
    from zoo.models.sequence_tagger.sequence_tagger import SequenceTagger
    from zoo.models.text_classifier import TextClassifier

    with pytest.raises(ValueError, match="return_sequences=True"):
        TextClassifier(RecurrentBackbone(10, 4, return_sequences=False), pooling="max")
    with pytest.raises(ValueError, match="return_sequences=True"):
        SequenceTagger(RecurrentBackbone(10, 4, return_sequences=False))
