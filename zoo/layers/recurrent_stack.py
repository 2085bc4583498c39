import functools
import types

import keras
import numpy as np

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
# How a stack's weight matrices are stored in .keras files: as they are, or as int8 values with
# one float32 scale per output column (`RecurrentStack.quantize_storage`).
WEIGHTS_STORAGES = ("float32", "int8")
# The arguments that rebuild a unidirectional stack inside a larger layer's config (a
# decoder's, a language model's): read from the stack itself, so an int8-stored stack says so.
UNIDIRECTIONAL_STACK_ARGUMENTS = (
    "cell",
    "units",
    "num_layers",
    "dropout",
    "recurrent_dropout",
    "residual",
    "implementation",
    "weights_storage",
)


def int8_columns(matrix):
    """A (rows, columns) float matrix -> (int8 values, float32 scale per column), the scale
    mapping each column's largest magnitude to 127 (symmetric abs-max, as Keras's int8)."""
    matrix = np.asarray(matrix, dtype="float32")
    scale = np.max(np.abs(matrix), axis=0) / 127.0
    scale = np.where(scale > 0, scale, 1.0).astype("float32")
    return np.clip(np.round(matrix / scale), -127, 127).astype("int8"), scale


def _save_other_variables(layer, store, stored_elsewhere):
    """A layer's `save_own_variables` that leaves out the variables its stack stores
    (`stored_elsewhere()` lists them)."""
    skipped = {id(variable) for variable in stored_elsewhere()}
    for index, variable in enumerate(layer._trainable_variables + layer._non_trainable_variables):
        if id(variable) not in skipped:
            store[f"{index}"] = variable


def _load_other_variables(layer, store, stored_elsewhere):
    skipped = {id(variable) for variable in stored_elsewhere()}
    for index, variable in enumerate(layer._trainable_variables + layer._non_trainable_variables):
        if id(variable) not in skipped:
            variable.assign(store[f"{index}"])


@keras.saving.register_keras_serializable(package="zoo")
class RecurrentStack(keras.layers.Layer):
    """A stack of recurrent layers: any cell, uni- or bidirectional, any depth.

    Right-padded masks from the embedding are honoured by every layer, so padded steps neither
    change the states nor leak into the outputs.

    States follow Keras's own convention, one list per layer: [h, c] for "lstm" and
    "peephole_lstm", [h] for "elman", "gru" and "gru_cho", [y] (the fed-back output) for
    "jordan"; a bidirectional layer's forward states then its backward states, as
    `keras.layers.Bidirectional` takes them. `call` takes them as `initial_state` and, with
    `return_state=True`, returns the final ones (at each sequence's last unmasked step);
    `step` runs a unidirectional stack one time step at a time (decoders, language models).

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
        return_state: bool. Return `(outputs, final_states)`, `final_states` a list with one
            list of states per layer (the layout of `initial_state`), instead of `outputs`.
        weights_storage: str. "float32", or "int8": the weight matrices (kernels and
            recurrent kernels) are stored in .keras files as int8 with a float32 scale per
            output column and computed with in float32 as loaded (`quantize_storage`; biases
            and peephole weights stay float32).
        implementation: str. How LSTM layers run on the JAX backend: "auto" (fused cuDNN
            kernels with per-sequence lengths on a GPU, see `zoo.layers.fused_rnn`; the Keras
            layers elsewhere), "keras" (always the Keras layers), "cudnn" or "reference" (the
            fused computation's cuDNN kernel or its `lax.scan` reference, for tests and
            benchmarks). Weights and saved files are the same whichever runs.

    Call arguments:
        inputs: tensor of shape (batch, time, features).
        mask: optional boolean tensor of shape (batch, time), right-padded.
        training: bool. Whether dropout applies.
        initial_state: optional list with one entry per layer, each that layer's list of
            (batch, units) states; zeros when omitted.
        inputs_mask: the mask Keras attaches to `inputs` (e.g. an Embedding's with
            `mask_zero=True`); Keras passes it here, not as `mask`, when `initial_state` is
            given too. Used when `mask` is None.

    Examples:
    >>> stack = RecurrentStack(cell="gru", units=64, num_layers=2, bidirectional=True)
    >>> outputs = stack(embedded_tokens)  # (batch, time, 128)
    >>> decoder = RecurrentStack(cell="lstm", units=64, bidirectional=False, return_state=True)
    >>> outputs, states = decoder(embedded_tokens, initial_state=[[h, c]])
    >>> output, states = decoder.step(embedded_token, states)  # one step: (batch, 64)
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
        return_state=False,
        implementation="auto",
        weights_storage="float32",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if weights_storage not in WEIGHTS_STORAGES:
            raise ValueError(
                f"weights_storage must be one of {', '.join(WEIGHTS_STORAGES)}; "
                f"got {weights_storage!r}."
            )
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
                return_state=return_state,
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
        self.return_state = return_state
        self.implementation = implementation
        self.weights_storage = "float32"
        self.supports_masking = True
        if weights_storage == "int8":
            self._store_matrices_as_int8()

    def quantize_storage(self, mode="int8") -> None:
        """Rounds the weight matrices to int8 with a float32 scale per output column, and
        stores them so from now on (a .keras file then holds 1 byte per weight, not 4).

        Weight-only and storage-only: the layers keep float32 variables and compute as before,
        with the rounded values, so a model computes exactly what its file holds, on every
        backend, in the fused cuDNN path and in exported SavedModels; fine-tuning trains the
        float values (saving rounds them again).
        """
        if mode != "int8":
            raise ValueError(f"RecurrentStack stores weights as int8 only; got {mode!r}.")
        if not self.built:
            raise ValueError("Build the stack (call it once) before quantizing its storage.")
        for variable in self._matrices():
            values, scale = int8_columns(keras.ops.convert_to_numpy(variable))
            variable.assign(values.astype("float32") * scale)
        self._store_matrices_as_int8()

    def _matrices(self) -> list:
        """The weight matrices (kernels, recurrent kernels) of every layer, in a fixed order;
        not biases, which a reset-after GRU keeps as a (2, 3 * units) matrix."""
        return [
            variable
            for variable in self.weights
            if len(variable.shape) == 2 and "kernel" in variable.name
        ]

    def _store_matrices_as_int8(self) -> None:
        # Each inner layer saves and loads its other variables itself; the stack saves and
        # loads the matrices (its `save_own_variables`), so the file holds them once, as int8.
        # Keras's saving walks nested layers and calls each one's methods: replacing them on
        # the instances is the hook it offers for layers the zoo does not define.
        self.weights_storage = "int8"
        for layer in self._flatten_layers(include_self=False):
            layer.save_own_variables = types.MethodType(
                functools.partial(_save_other_variables, stored_elsewhere=self._matrices), layer
            )
            layer.load_own_variables = types.MethodType(
                functools.partial(_load_other_variables, stored_elsewhere=self._matrices), layer
            )

    def save_own_variables(self, store):
        super().save_own_variables(store)
        if self.weights_storage != "int8":
            return
        for index, variable in enumerate(self._matrices()):
            values, scale = int8_columns(keras.ops.convert_to_numpy(variable))
            store[f"matrix_{index}"] = values
            store[f"matrix_{index}_scale"] = scale

    def load_own_variables(self, store):
        if self.weights_storage != "int8":
            return super().load_own_variables(store)
        for index, variable in enumerate(self._matrices()):
            values = np.asarray(store[f"matrix_{index}"], dtype="float32")
            variable.assign(values * np.asarray(store[f"matrix_{index}_scale"]))

    def build(self, input_shape):
        # Building every layer here (not on the first call) lets .keras loading restore
        # the weights into a fully built stack.
        shape = input_shape
        for layer in self.recurrent_layers:
            layer.build(shape)
            shape = self._layer_output_shape(layer, shape)
        self.built = True

    def call(self, inputs, mask=None, training=None, initial_state=None, inputs_mask=None):
        # With more than one tensor argument (inputs and initial_state), Keras passes the
        # mask attached to `inputs` (an Embedding's, say) as `inputs_mask`, not as `mask`.
        if mask is None:
            mask = inputs_mask
        initial_state = self._standardize_states(initial_state, inputs, "initial_state")
        outputs = inputs
        final_states = []
        for index, layer in enumerate(self.recurrent_layers):
            layer_state = None if initial_state is None else initial_state[index]
            if self._fused(layer):
                result = fused_rnn.fused_lstm_layer(
                    layer, outputs, mask, bool(training), self.implementation, layer_state
                )
            else:
                result = layer(outputs, mask=mask, training=training, initial_state=layer_state)
            if self.return_state:  # Keras's layout: (outputs, *states)
                layer_outputs = result[0]
                final_states.append(list(result[1:]))
            else:
                layer_outputs = result
            same_shape = layer_outputs.shape[-1] == outputs.shape[-1]
            if self.residual and index > 0 and same_shape and len(layer_outputs.shape) == 3:
                layer_outputs = layer_outputs + outputs
            outputs = layer_outputs
        if self.return_state:
            return outputs, final_states
        return outputs

    def step(self, inputs, states, training=False):
        """Runs a unidirectional stack for one time step.

        Feeding a sequence step by step gives `call`'s outputs at each step (those of
        `return_sequences=True`, residual connections included) and its final states. With
        `training=True`, each step draws new dropout masks (`call` keeps one per sequence).

        Args:
            inputs: tensor of shape (batch, features): the inputs at this step.
            states: list with one entry per layer, that layer's list of (batch, units)
                states, as returned by `get_initial_state`, `step` or `call` with
                `return_state=True`.
            training: bool. Whether dropout applies.

        Returns:
            `(output, new_states)`: the last layer's output (batch, units) and the states
            after this step, in the layout of `states`.
        """
        if self.bidirectional:
            raise ValueError(
                "step() needs a unidirectional RecurrentStack (bidirectional=False): the "
                "backward direction of a bidirectional layer needs the whole sequence. Call "
                "the stack on the sequence instead."
            )
        inputs = keras.ops.convert_to_tensor(inputs, dtype=self.compute_dtype)
        if len(inputs.shape) != 2:
            raise ValueError(
                f"step() expects inputs of shape (batch, features) for one time step; "
                f"got shape {tuple(inputs.shape)}."
            )
        if not self.built:
            self.build((inputs.shape[0], None, inputs.shape[-1]))
        states = self._standardize_states(states, inputs, "states")
        if states is None:
            raise ValueError("step() needs states; start from get_initial_state(batch_size).")
        outputs = inputs
        new_states = []
        for index, (layer, layer_states) in enumerate(zip(self.recurrent_layers, states)):
            cell = layer.cell
            layer_outputs, layer_new_states = cell(outputs, layer_states, training=training)
            # Dropout masks are drawn (and cached) per call of the cell here, not per sequence.
            for reset in ("reset_dropout_mask", "reset_recurrent_dropout_mask"):
                if hasattr(cell, reset):
                    getattr(cell, reset)()
            if not isinstance(layer_new_states, (list, tuple)):
                layer_new_states = [layer_new_states]
            new_states.append(list(layer_new_states))
            same_shape = layer_outputs.shape[-1] == outputs.shape[-1]
            if self.residual and index > 0 and same_shape:
                layer_outputs = layer_outputs + outputs
            outputs = layer_outputs
        return outputs, new_states

    def get_initial_state(self, batch_size):
        """Zero states for `batch_size` sequences: one list per layer, as `initial_state`."""
        return [
            [
                state
                for direction in fused_rnn.directions(layer)
                for state in direction.get_initial_state(batch_size)
            ]
            for layer in self.recurrent_layers
        ]

    def _state_names(self, layer) -> list:
        """The names of stack layer `layer`'s states, in Keras's order."""
        names = {"lstm": ["h", "c"], "peephole_lstm": ["h", "c"], "jordan": ["y"]}
        names = names.get(self.cell, ["h"])
        if len(fused_rnn.directions(layer)) == 1:
            return names
        return [f"{name}_forward" for name in names] + [f"{name}_backward" for name in names]

    def _state_sizes(self, layer) -> list:
        """The sizes of stack layer `layer`'s states (forward, then backward)."""
        return [size for direction in fused_rnn.directions(layer) for size in direction.state_size]

    def _standardize_states(self, states, inputs, argument):
        """`states` as a list of per-layer lists, checked against the stack and the batch."""
        if states is None:
            return None
        expected = ", ".join(
            f"[{', '.join(self._state_names(layer))}]" for layer in self.recurrent_layers
        )
        expected = (
            f"a list of {self.num_layers} {'entry' if self.num_layers == 1 else 'entries'}, "
            f"one per layer, each a list of that layer's "
            f"(batch, {self.units}) states: [{expected}]"
        )
        if not isinstance(states, (list, tuple)) or len(states) != self.num_layers:
            got = f"{len(states)} entries" if isinstance(states, (list, tuple)) else type(states)
            raise ValueError(f"{argument} must be {expected}; got {got}.")
        batch = inputs.shape[0]
        standardized = []
        for index, (layer, layer_states) in enumerate(zip(self.recurrent_layers, states)):
            names, sizes = self._state_names(layer), self._state_sizes(layer)
            if not isinstance(layer_states, (list, tuple)):
                layer_states = [layer_states]  # a single state may come bare
            if len(layer_states) != len(sizes):
                raise ValueError(
                    f"{argument}[{index}] must hold the {len(sizes)} states "
                    f"[{', '.join(names)}] of layer {index} ({self.cell}); got "
                    f"{len(layer_states)}. {argument} must be {expected}."
                )
            for name, size, state in zip(names, sizes, layer_states):
                shape = tuple(keras.ops.shape(state))
                known = [d if isinstance(d, int) else None for d in shape]
                if (
                    len(shape) != 2
                    or known[1] not in (None, size)
                    or (batch is not None and known[0] not in (None, batch))
                ):
                    raise ValueError(
                        f"{argument}[{index}] state {name} must have shape "
                        f"({batch if batch is not None else 'batch'}, {size}); got {shape}."
                    )
            standardized.append(list(layer_states))
        return standardized

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

    def compute_output_spec(self, inputs, *args, initial_state=None, **kwargs):
        # Symbolic calls do not run `call`: check the states here too.
        self._standardize_states(initial_state, inputs, "initial_state")
        return super().compute_output_spec(inputs, *args, initial_state=initial_state, **kwargs)

    def _layer_output_shape(self, layer, input_shape):
        """The shape of stack layer `layer`'s outputs, without its states."""
        shape = layer.compute_output_shape(input_shape)
        return shape[0] if self.return_state else shape

    def compute_output_shape(self, input_shape):
        # Symbolic calls (building a functional model) use this instead of tracing `call`:
        # cuDNN's kernel needs concrete batch and time sizes to size its workspace.
        shape = input_shape
        states_shape = []
        for layer in self.recurrent_layers:
            shape = layer.compute_output_shape(shape)
            if self.return_state:
                shape, *layer_states_shape = shape
                states_shape.append([tuple(state) for state in layer_states_shape])
        if self.return_state:
            return tuple(shape), states_shape
        return shape

    def compute_mask(self, inputs, mask=None):
        output_mask = mask if self.return_sequences else None
        if not self.return_state:
            return output_mask
        states_mask = [[None] * len(self._state_sizes(layer)) for layer in self.recurrent_layers]
        return output_mask, states_mask

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
                "return_state": self.return_state,
                "implementation": self.implementation,
                "weights_storage": self.weights_storage,
            }
        )
        return config
