import keras
from keras import ops

# keras.layers.RNN draws a cell's dropout masks once per sequence, before its time loop, only
# for cells that mix this class in: that keeps the masks fixed over time and the loop free of
# random-state updates (which JAX's scan and TensorFlow's while_loop cannot hold).
# Private, and no public API serves: keras.layers.RNN resets a cell's cached dropout masks
# before each sequence only when the cell is a DropoutRNNCell (tests/test_private_keras_apis.py).
from keras.src.layers.rnn.dropout_rnn_cell import DropoutRNNCell


@keras.saving.register_keras_serializable(package="zoo")
class JordanRNNCell(keras.layers.Layer, DropoutRNNCell):
    """A Jordan (1986) RNN cell: the previous output, not the hidden state, is fed back.

    h_t = tanh(W x_t + U y_{t-1} + b) and y_t = tanh(V h_t + c). The state carried from step to
    step is y_{t-1}; the cell outputs y_t. Run it over a sequence with `keras.layers.RNN`.

    Args:
        units: int. Size of the hidden layer and of the output (the fed-back state).
        activation: str or callable. Activation of the hidden layer.
        output_activation: str or callable. Activation of the output y_t.
        use_bias: bool. Add the biases b and c.
        kernel_initializer: str or initializer. For W (inputs to hidden).
        recurrent_initializer: str or initializer. For U (previous output to hidden).
        output_initializer: str or initializer. For V (hidden to output).
        bias_initializer: str or initializer. For b and c.
        dropout: float. Fraction of the inputs to drop; one mask per sequence.
        recurrent_dropout: float. Fraction of the fed-back output y_{t-1} to drop; one mask
            per sequence.
        seed: int or None. Seed of the dropout masks.

    Examples:
    >>> layer = keras.layers.RNN(JordanRNNCell(32), return_sequences=True)
    >>> outputs = layer(keras.random.normal((8, 20, 16)))  # (8, 20, 32)
    """

    def __init__(
        self,
        units,
        activation="tanh",
        output_activation="tanh",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        output_initializer="glorot_uniform",
        bias_initializer="zeros",
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
        self.output_activation = keras.activations.get(output_activation)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.output_initializer = keras.initializers.get(output_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        # What keras.layers.RNN reads: one state, y_{t-1}, and an output of the same size.
        self.state_size = units
        self.output_size = units

    def build(self, input_shape):
        # === Layers ===
        self.kernel = self.add_weight(
            shape=(input_shape[-1], self.units),
            initializer=self.kernel_initializer,
            name="kernel",
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, self.units),
            initializer=self.recurrent_initializer,
            name="recurrent_kernel",
        )
        self.output_kernel = self.add_weight(
            shape=(self.units, self.units),
            initializer=self.output_initializer,
            name="output_kernel",
        )
        if self.use_bias:
            self.bias = self.add_weight(
                shape=(self.units,), initializer=self.bias_initializer, name="bias"
            )
            self.output_bias = self.add_weight(
                shape=(self.units,), initializer=self.bias_initializer, name="output_bias"
            )
        else:
            self.bias = self.output_bias = None

    def call(self, inputs, states, training=False):
        previous_output = states[0] if isinstance(states, (list, tuple)) else states
        input_mask = self.get_dropout_mask(inputs)
        recurrent_mask = self.get_recurrent_dropout_mask(previous_output)
        if training and input_mask is not None:
            inputs = inputs * input_mask
        fed_back = previous_output
        if training and recurrent_mask is not None:
            fed_back = fed_back * recurrent_mask
        hidden = ops.matmul(inputs, self.kernel) + ops.matmul(fed_back, self.recurrent_kernel)
        if self.bias is not None:
            hidden = hidden + self.bias
        hidden = self.activation(hidden)
        output = ops.matmul(hidden, self.output_kernel)
        if self.output_bias is not None:
            output = output + self.output_bias
        output = self.output_activation(output)
        new_states = [output] if isinstance(states, (list, tuple)) else output
        return output, new_states

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "activation": keras.activations.serialize(self.activation),
                "output_activation": keras.activations.serialize(self.output_activation),
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
                "output_initializer": keras.initializers.serialize(self.output_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "dropout": self.dropout,
                "recurrent_dropout": self.recurrent_dropout,
                "seed": self.seed,
            }
        )
        return config
