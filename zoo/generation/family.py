"""Family glue shared by the entries whose served graph decodes from the raw inputs (the
translator and the captioner): decoding traced without `Xla*` ops, an `attention` endpoint,
decoding in the graph or eagerly, and the best candidate's attention weights."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from zoo.family import Family
from zoo.generation.decoding import slice_update_without_xla


class DecodingFamily(Family):
    """A family whose `postprocess` decodes (beam search) from the raw inputs themselves, and
    whose `attention(model, inputs)` gives the best output's attention weights for plotting:
    both are exported, traced with core-TF `slice_update` (no Xla* op in the graph)."""

    def serving_function(self, model):
        serve = super().serving_function(model)

        def decode(inputs):
            # Decoding is traced with core-TF `slice_update`: no Xla* op in the graph.
            with slice_update_without_xla():
                return serve(inputs)

        return decode

    def served_outputs(self, model, text):
        return None  # `postprocess` decodes from the raw inputs itself.

    def attention(self, model, inputs) -> dict[str, tf.Tensor]:
        raise NotImplementedError

    def extra_endpoints(self, model) -> dict:
        """`attention`: raw inputs -> the best output's attention weights (see `attention`)."""

        def attention(inputs):
            with slice_update_without_xla():
                return self.attention(model, inputs)

        return {"attention": (attention, self.serving_signature())}


def decoded(decode, inputs) -> dict[str, tf.Tensor]:
    """`decode(inputs)` (a model's dict of decoded tensors) in the graph on the TensorFlow
    backend; on JAX or torch (eagerly: predict_records), NumPy across the boundary and the
    results back as TF tensors."""
    if keras.backend.backend() == "tensorflow":
        return decode(inputs)
    return {
        key: tf.constant(keras.ops.convert_to_numpy(value))
        for key, value in decode(np.asarray(inputs)).items()
    }


def best_attention(token_log_probs, source, token_ids, end_id: int):
    """The best candidate's tokens with the end token after its last one (what its last
    weights predict), (batch, time + 1), and their attention weights (batch, time + 1, memory
    time) float32, from decoded `token_ids` (batch, beams, time; 0 after each candidate) and a
    model's `token_log_probs(source, candidates, return_attention=True)`."""
    best = token_ids[:, 0]
    length = tf.reduce_sum(tf.cast(best > 0, tf.int32), axis=1)
    with_end = tf.where(
        tf.range(tf.shape(best)[1] + 1)[None, :] == length[:, None],
        end_id,
        tf.pad(best, [[0, 0], [0, 1]]),
    )
    _, weights = token_log_probs(source, with_end[:, None], return_attention=True)
    return with_end, tf.cast(weights[:, 0], tf.float32)
