import keras
from keras import ops

# keras.layers.RNN draws a cell's dropout masks once per sequence, before its time loop, only
# for cells that mix this class in: that keeps the masks fixed over time and the loop free of
# random-state updates (which JAX's scan and TensorFlow's while_loop cannot hold).
# Private, and no public API serves: keras.layers.RNN resets a cell's cached dropout masks
# before each sequence only when the cell is a DropoutRNNCell (tests/test_private_keras_apis.py).
from keras.src.layers.rnn.dropout_rnn_cell import DropoutRNNCell


@keras.saving.register_keras_serializable(package="zoo")
class PeepholeLSTMCell(keras.layers.Layer, DropoutRNNCell):
    """An LSTM cell with peephole connections (Gers & Schmidhuber, 2000).

    The gates also see the cell state through diagonal (per-unit) peephole weights p:

        i_t = σ(W_i x_t + U_i h_{t-1} + p_i ⊙ c_{t-1} + b_i)
        f_t = σ(W_f x_t + U_f h_{t-1} + p_f ⊙ c_{t-1} + b_f)
        g_t = tanh(W_c x_t + U_c h_{t-1} + b_c)
        c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
        o_t = σ(W_o x_t + U_o h_{t-1} + p_o ⊙ c_t + b_o)
        h_t = o_t ⊙ tanh(c_t)

    The states are [h_t, c_t] and the output is h_t. Kernels hold the four gates in Keras's
    LSTM order (i, f, c, o). Run it over a sequence with `keras.layers.RNN`.

    Args:
        units: int. Size of the hidden and cell states.
        activation: str or callable. Activation of the candidate g_t and of the output's c_t.
        recurrent_activation: str or callable. Activation of the gates.
        use_bias: bool. Add the gate biases b.
        kernel_initializer: str or initializer. For W (inputs to gates).
        recurrent_initializer: str or initializer. For U (previous h to gates).
        peephole_initializer: str or initializer. For the peephole vectors p_i, p_f, p_o.
        bias_initializer: str or initializer. For b.
        unit_forget_bias: bool. Initialise the forget-gate bias b_f to 1 (Jozefowicz et al.,
            2015), so that the cell remembers by default at the start of training.
        dropout: float. Fraction of the inputs to drop; one mask per sequence.
        recurrent_dropout: float. Fraction of h_{t-1} to drop; one mask per sequence.
        seed: int or None. Seed of the dropout masks.

    Examples:
    >>> layer = keras.layers.RNN(PeepholeLSTMCell(32), return_sequences=True)
    >>> outputs = layer(keras.random.normal((8, 20, 16)))  # (8, 20, 32)
    """

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        peephole_initializer="glorot_uniform",
        bias_initializer="zeros",
        unit_forget_bias=True,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        **kwargs,
    ):
        if int(units) != units or units < 1:
            raise ValueError(f"units must be a positive integer, got {units!r}.")
        for name, rate in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if not 0.0 <= rate < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {rate!r}.")
        super().__init__(**kwargs)
        # === Config ===
        self.units = units
        self.activation = keras.activations.get(activation)
        self.recurrent_activation = keras.activations.get(recurrent_activation)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.peephole_initializer = keras.initializers.get(peephole_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.unit_forget_bias = unit_forget_bias
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        # What keras.layers.RNN reads: states [h, c]; the output is h.
        self.state_size = [units, units]
        self.output_size = units

    def build(self, input_shape):
        # === Layers ===
        self.kernel = self.add_weight(
            shape=(input_shape[-1], 4 * self.units),
            initializer=self.kernel_initializer,
            name="kernel",
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, 4 * self.units),
            initializer=self.recurrent_initializer,
            name="recurrent_kernel",
        )
        # Diagonal peepholes: each gate unit sees only its own cell unit.
        self.input_peephole = self.add_weight(
            shape=(self.units,), initializer=self.peephole_initializer, name="input_peephole"
        )
        self.forget_peephole = self.add_weight(
            shape=(self.units,), initializer=self.peephole_initializer, name="forget_peephole"
        )
        self.output_peephole = self.add_weight(
            shape=(self.units,), initializer=self.peephole_initializer, name="output_peephole"
        )
        if self.use_bias:
            self.bias = self.add_weight(
                shape=(4 * self.units,), initializer=self._initialize_bias, name="bias"
            )
        else:
            self.bias = None

    def _initialize_bias(self, shape, dtype=None):
        if not self.unit_forget_bias:
            return self.bias_initializer(shape, dtype=dtype)
        units = self.units
        return ops.concatenate(
            [
                self.bias_initializer((units,), dtype=dtype),
                ops.ones((units,), dtype=dtype),
                self.bias_initializer((2 * units,), dtype=dtype),
            ]
        )

    def call(self, inputs, states, training=False):
        previous_hidden, previous_cell = states[0], states[1]
        input_mask = self.get_dropout_mask(inputs)
        recurrent_mask = self.get_recurrent_dropout_mask(previous_hidden)
        if training and input_mask is not None:
            inputs = inputs * input_mask
        if training and recurrent_mask is not None:
            previous_hidden = previous_hidden * recurrent_mask
        z = ops.matmul(inputs, self.kernel) + ops.matmul(previous_hidden, self.recurrent_kernel)
        if self.bias is not None:
            z = z + self.bias
        z_input, z_forget, z_candidate, z_output = ops.split(z, 4, axis=-1)
        input_gate = self.recurrent_activation(z_input + self.input_peephole * previous_cell)
        forget_gate = self.recurrent_activation(z_forget + self.forget_peephole * previous_cell)
        cell = forget_gate * previous_cell + input_gate * self.activation(z_candidate)
        output_gate = self.recurrent_activation(z_output + self.output_peephole * cell)
        hidden = output_gate * self.activation(cell)
        return hidden, [hidden, cell]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "activation": keras.activations.serialize(self.activation),
                "recurrent_activation": keras.activations.serialize(self.recurrent_activation),
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
                "peephole_initializer": keras.initializers.serialize(self.peephole_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "unit_forget_bias": self.unit_forget_bias,
                "dropout": self.dropout,
                "recurrent_dropout": self.recurrent_dropout,
                "seed": self.seed,
            }
        )
        return config
