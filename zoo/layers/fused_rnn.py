"""Fused (cuDNN) LSTM layers of a `RecurrentStack` on the JAX backend, masks included.

Keras 3 runs LSTMs on JAX as a `lax.scan` loop, one small matmul per step; a padding mask
keeps it there on every backend but TensorFlow. `jax.experimental.rnn.lstm` binds cuDNN's
LSTM with per-sequence lengths (`seq_lengths`), both directions and several layers in one call.
This module computes a stack layer with it from the Keras layers' own weights, so checkpoints,
`.keras` files and the TensorFlow SavedModel stay exactly those of `keras.layers.LSTM`:

- Keras's kernel (input, 4 units) and recurrent kernel (units, 4 units) have cuDNN's gate order
  (input, forget, cell, output), so cuDNN's W_ih and W_hh are their transposes; Keras's one
  bias is cuDNN's b_ih, with b_hh zero.
- Masks must be right-padded (every zoo preprocessor pads on the right): the lengths are the
  mask's row sums. Outputs at padded steps are 0.
- Initial states, Keras's [h, c] per direction (forward then backward), are cuDNN's h_0 and
  c_0; its final h_n and c_n (at each sequence's last unpadded step) come back in that layout
  when the layer has `return_state`.
- Input dropout (training) is one mask per sequence and feature, shared by every step and by
  both directions, as Keras's own cuDNN path does per direction.

`jax.experimental.rnn.lstm` has a GPU lowering only and no GRU or Elman RNN; those cells, other
backends and other dtypes keep the Keras layers (TensorFlow's Keras LSTM/GRU take cuDNN with
right-padded masks themselves). On a CPU, `implementation="reference"` runs the same packing
through `jax.experimental.rnn.lstm_ref` (a `lax.scan`), which is how the tests check it.
"""

from __future__ import annotations

import functools

import keras

IMPLEMENTATIONS = ("auto", "cudnn", "reference", "keras")


@functools.cache
def jax_cudnn_available() -> bool:
    """Whether `jax.experimental.rnn.lstm` can run here: the JAX backend on a CUDA GPU."""
    if keras.backend.backend() != "jax":
        return False
    try:
        import jax
        from jax.experimental import rnn
    except ImportError:
        return False
    return getattr(rnn, "gpu_rnn", None) is not None and jax.default_backend() == "gpu"


def can_fuse(layer, recurrent_dropout: float) -> bool:
    """Whether a stack layer (LSTM, or Bidirectional over LSTMs) has a fused equivalent."""
    if keras.backend.backend() != "jax" or recurrent_dropout:
        return False
    if layer.compute_dtype != "float32":  # cuDNN RNNs in jax.experimental.rnn: float32 only
        return False
    return all(
        isinstance(cell, keras.layers.LSTMCell)
        and cell.use_bias
        and cell.activation is keras.activations.tanh
        and cell.recurrent_activation is keras.activations.sigmoid
        for cell in (sublayer.cell for sublayer in directions(layer))
    )


def directions(layer) -> list:
    """The recurrent layers of stack layer `layer`: itself, or a Bidirectional's two."""
    if isinstance(layer, keras.layers.Bidirectional):
        return [layer.forward_layer, layer.backward_layer]
    return [layer]


def pack_lstm_weights(cells) -> object:
    """cuDNN's flat weight vector for one layer of `cells` (forward, then backward)."""
    from jax import numpy as jnp

    matrices, biases = [], []
    for cell in cells:
        kernel = jnp.asarray(cell.kernel.value)
        matrices += [kernel.T.reshape(-1), jnp.asarray(cell.recurrent_kernel.value).T.reshape(-1)]
        bias = jnp.asarray(cell.bias.value)
        biases += [bias, jnp.zeros_like(bias)]
    return jnp.concatenate(matrices + biases)


def fused_lstm_layer(
    layer, inputs, mask=None, training=False, implementation="auto", initial_state=None
):
    """The output of stack layer `layer` (LSTM or Bidirectional LSTM) for `inputs`, fused.

    Returns what `layer(inputs, mask=mask, training=training, initial_state=initial_state)`
    returns at every unpadded step (all steps with `return_sequences`, else the final state),
    with 0 at padded steps; with the layer's `return_state`, `(output, *final_states)` as
    Keras does: [h, c], or forward [h, c] then backward [h, c], each at the sequence's last
    unpadded step. `initial_state` is None (zeros) or that layout's list of (batch, units)
    states. A row with no unpadded step keeps its initial states (its final output is its
    initial h, as in Keras's loop on JAX).
    """
    from jax import numpy as jnp
    from jax.experimental import rnn

    sublayers = directions(layer)
    bidirectional = len(sublayers) == 2
    cells = [sublayer.cell for sublayer in sublayers]
    units = cells[0].units
    x = jnp.asarray(inputs)
    batch, steps, width = x.shape
    if mask is None:
        lengths = jnp.full((batch,), steps, dtype="int32")
    else:
        lengths = jnp.sum(jnp.asarray(mask).astype("int32"), axis=1)
    if training and cells[0].dropout:
        cells[0].reset_dropout_mask()
        keep = cells[0].get_dropout_mask(x[:, 0, :])  # 0 or 1 / (1 - rate)
        cells[0].reset_dropout_mask()  # Keras caches it per call; a new one next call.
        x = x * jnp.asarray(keep)[:, None, :]
    if initial_state is None:
        h_0 = c_0 = jnp.zeros((len(cells), batch, units), dtype=x.dtype)
    else:
        if len(initial_state) != 2 * len(cells):
            raise ValueError(
                f"initial_state must hold {2 * len(cells)} states ([h, c] per direction); "
                f"got {len(initial_state)}."
            )
        # cuDNN's (directions, batch, units) from Keras's [h, c] per direction.
        states = [jnp.asarray(state, dtype=x.dtype) for state in initial_state]
        h_0, c_0 = jnp.stack(states[0::2]), jnp.stack(states[1::2])
    weights = pack_lstm_weights(cells)
    if implementation == "auto":
        implementation = "cudnn" if jax_cudnn_available() else "reference"
    if implementation == "cudnn":
        outputs, final_h, final_c = rnn.lstm(
            x, h_0, c_0, weights, lengths, width, units, 1, 0.0, bidirectional
        )
    elif implementation == "reference":
        w_ih, w_hh, b_ih, b_hh = rnn.unpack_lstm_weights(weights, width, units, 1, bidirectional)
        outputs, final_h, final_c = rnn.lstm_ref(
            x, h_0, c_0, w_ih, w_hh, b_ih, b_hh, lengths, width, units, 1, 0.0, bidirectional
        )
    else:
        raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}; got {implementation!r}")
    valid = jnp.arange(steps)[None, :] < lengths[:, None]
    outputs = jnp.where(valid[..., None], outputs, 0.0)
    # As Keras's loop on JAX: a row with no unpadded step keeps its initial states.
    started = (lengths > 0)[None, :, None]
    final_h, final_c = jnp.where(started, final_h, h_0), jnp.where(started, final_c, c_0)
    if sublayers[0].return_sequences:
        output = outputs
        if bidirectional:
            output = merge(layer.merge_mode, outputs[..., :units], outputs[..., units:])
    elif bidirectional:
        output = merge(layer.merge_mode, final_h[0], final_h[1])
    else:
        output = final_h[0]
    if not sublayers[0].return_state:
        return output
    return (output,) + tuple(
        state
        for direction in range(len(cells))
        for state in (final_h[direction], final_c[direction])
    )


def merge(mode: str, forward, backward):
    """Combines the two directions as `keras.layers.Bidirectional(merge_mode=mode)` does."""
    if mode == "concat":
        return keras.ops.concatenate([forward, backward], axis=-1)
    if mode == "sum":
        return forward + backward
    if mode == "ave":
        return (forward + backward) / 2
    if mode == "mul":
        return forward * backward
    raise ValueError(f"Unsupported merge_mode {mode!r}.")
