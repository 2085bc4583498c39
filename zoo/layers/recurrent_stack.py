import functools

import keras

from zoo.layers import fused_rnn
from zoo.layers.jordan_rnn_cell import JordanRNNCell
from zoo.layers.peephole_lstm_cell import PeepholeLSTMCell


def custom_cell_layer(cell_class, units, dropout=0.0, recurrent_dropout=0.0, seed=None, **kwargs):
    """`keras.layers.RNN` over a `cell_class(units, ...)`, called like the Keras built-ins.

    Dropout arguments and the dtype go to the cell, the other keyword arguments
    (return_sequences, return_state, go_backwards, name, ...) to the RNN layer.
    """
    cell = cell_class(
        units,
        dropout=dropout,
        recurrent_dropout=recurrent_dropout,
        seed=seed,
        dtype=kwargs.get("dtype"),
    )
    return keras.layers.RNN(cell, **kwargs)


# Cell name -> factory `(units, return_sequences=..., dropout=..., recurrent_dropout=..., name=...,
# dtype=...) -> recurrent layer`. The Keras built-ins (SimpleRNN, LSTM, reset-after GRU) take
# their fused cuDNN kernels on a GPU when their arguments allow it (tanh activations, no
# recurrent dropout), so they stay built-ins; the other cells run in keras.layers.RNN's loop.
CELL_LAYERS = {
    "elman": keras.layers.SimpleRNN,
    "jordan": functools.partial(custom_cell_layer, JordanRNNCell),
    "lstm": keras.layers.LSTM,  # unit_forget_bias=True (forget-gate bias 1) is its default
    "peephole_lstm": functools.partial(custom_cell_layer, PeepholeLSTMCell),
    "gru": keras.layers.GRU,
    # Cho et al. (2014): the reset gate acts before the recurrent matrix; no cuDNN kernel.
    "gru_cho": functools.partial(keras.layers.GRU, reset_after=False),
}
MERGE_MODES = ("concat", "sum", "mul", "ave")


@keras.saving.register_keras_serializable(package="zoo")
class RecurrentStack(keras.layers.Layer):
    """A stack of recurrent layers: any cell, uni- or bidirectional, any depth.

    Right-padded masks from the embedding are honoured by every layer, so padded steps neither
    change the states nor leak into the outputs.

    Args:
        cell: str. "elman" (vanilla tanh RNN), "jordan" (feeds back the previous output,
            `JordanRNNCell`), "lstm" (forget-gate bias initialised to 1), "peephole_lstm"
            (`PeepholeLSTMCell`), "gru" (Keras's reset-after variant, cuDNN-compatible) or
            "gru_cho" (Cho et al. 2014: reset gate before the recurrent matrix).
        units: int. Hidden size of each layer (per direction).
        num_layers: int. Depth of the stack.
        bidirectional: bool. Run each layer forward and backward.
        merge_mode: str. How the two directions combine: "concat", "sum", "mul" or "ave".
        dropout: float. Dropout on each layer's inputs.
        recurrent_dropout: float. Dropout on the recurrent state (disables cuDNN kernels); for
            "jordan", on the fed-back output.
        residual: bool. Add each layer's input to its output where the widths match.
        return_sequences: bool. Return all steps of the last layer, else its final state.
        implementation: str. How LSTM layers run on the JAX backend: "auto" (fused cuDNN
            kernels with per-sequence lengths on a GPU, see `zoo.layers.fused_rnn`; the Keras
            layers elsewhere), "keras" (always the Keras layers), "cudnn" or "reference" (the
            fused computation's cuDNN kernel or its `lax.scan` reference, for tests and
            benchmarks). Weights and saved files are the same whichever runs.

    Examples:
    >>> stack = RecurrentStack(cell="gru", units=64, num_layers=2, bidirectional=True)
    >>> outputs = stack(embedded_tokens)  # (batch, time, 128)
    """

    def __init__(
        self,
        cell="lstm",
        units=128,
        num_layers=1,
        bidirectional=True,
        merge_mode="concat",
        dropout=0.0,
        recurrent_dropout=0.0,
        residual=False,
        return_sequences=True,
        implementation="auto",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if cell not in CELL_LAYERS:
            raise ValueError(f"cell must be one of {', '.join(CELL_LAYERS)}; got {cell!r}.")
        if merge_mode not in MERGE_MODES:
            raise ValueError(
                f"merge_mode must be one of {', '.join(MERGE_MODES)}; got {merge_mode!r}."
            )
        if implementation not in fused_rnn.IMPLEMENTATIONS:
            raise ValueError(
                f"implementation must be one of {', '.join(fused_rnn.IMPLEMENTATIONS)}; "
                f"got {implementation!r}."
            )
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}.")
        # === Layers ===
        self.recurrent_layers = []
        for index in range(num_layers):
            last = index == num_layers - 1
            layer = CELL_LAYERS[cell](
                units,
                return_sequences=return_sequences or not last,
                dropout=dropout,
                recurrent_dropout=recurrent_dropout,
                name=f"{cell}_{index}",
                dtype=self.dtype_policy,
            )
            if bidirectional:
                layer = keras.layers.Bidirectional(
                    layer,
                    merge_mode=merge_mode,
                    name=f"bidirectional_{cell}_{index}",
                    dtype=self.dtype_policy,
                )
            self.recurrent_layers.append(layer)
        # === Config ===
        self.cell = cell
        self.units = units
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.merge_mode = merge_mode
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        self.residual = residual
        self.return_sequences = return_sequences
        self.implementation = implementation
        self.supports_masking = True

    def build(self, input_shape):
        # Building every layer here (not on the first call) lets .keras loading restore
        # the weights into a fully built stack.
        shape = input_shape
        for layer in self.recurrent_layers:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.built = True

    def call(self, inputs, mask=None, training=None):
        outputs = inputs
        for index, layer in enumerate(self.recurrent_layers):
            if self._fused(layer):
                layer_outputs = fused_rnn.fused_lstm_layer(
                    layer, outputs, mask, bool(training), self.implementation
                )
            else:
                layer_outputs = layer(outputs, mask=mask, training=training)
            same_shape = layer_outputs.shape[-1] == outputs.shape[-1]
            if self.residual and index > 0 and same_shape and len(layer_outputs.shape) == 3:
                layer_outputs = layer_outputs + outputs
            outputs = layer_outputs
        return outputs

    def _fused(self, layer) -> bool:
        if self.implementation == "keras":
            return False
        if not fused_rnn.can_fuse(layer, self.recurrent_dropout):
            if self.implementation != "auto":
                raise ValueError(
                    f"implementation={self.implementation!r} needs LSTM layers with default "
                    "activations, no recurrent dropout, float32, on the JAX backend."
                )
            return False
        return self.implementation != "auto" or fused_rnn.jax_cudnn_available()

    def compute_output_shape(self, input_shape):
        # Symbolic calls (building a functional model) use this instead of tracing `call`:
        # cuDNN's kernel needs concrete batch and time sizes to size its workspace.
        shape = input_shape
        for layer in self.recurrent_layers:
            shape = layer.compute_output_shape(shape)
        return shape

    def compute_mask(self, inputs, mask=None):
        return mask if self.return_sequences else None

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "cell": self.cell,
                "units": self.units,
                "num_layers": self.num_layers,
                "bidirectional": self.bidirectional,
                "merge_mode": self.merge_mode,
                "dropout": self.dropout,
                "recurrent_dropout": self.recurrent_dropout,
                "residual": self.residual,
                "return_sequences": self.return_sequences,
                "implementation": self.implementation,
            }
        )
        return config
