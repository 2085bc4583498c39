"""`RecurrentStack` states: `initial_state`, `return_state`, `step` and `get_initial_state`.

Each cell's stack is checked against an independent path: Keras layers of the same cell built
here on their own, with the stack's weights copied in and the stack's wiring (layer after
layer, residual sums, the two directions) redone by hand; `step` (the cells called one step
at a time) against `call`; on JAX, the fused LSTM path against the Keras layers.
"""

import json
import textwrap

import keras
import numpy as np
import pytest

from tests.conftest import run_on_jax
from zoo.layers.recurrent_stack import CELL_LAYERS, RecurrentStack

CELLS = tuple(CELL_LAYERS)
BATCH, STEPS, FEATURES, UNITS = 2, 5, 3, 4
ATOL = 1e-5


def num_states(cell) -> int:
    return 2 if cell in ("lstm", "peephole_lstm") else 1


def to_numpy(structure):
    return keras.tree.map_structure(keras.ops.convert_to_numpy, structure)


def make_stack(cell, seed=0, **options):
    """A built stack of `cell` with random weights (biases and peepholes included)."""
    keras.utils.set_random_seed(seed)
    options = {"units": UNITS, "num_layers": 2, "bidirectional": False, **options}
    stack = RecurrentStack(cell=cell, **options)
    stack.build((None, None, FEATURES))
    rng = np.random.default_rng(seed)
    for weight in stack.weights:
        weight.assign(rng.normal(0.0, 0.5, size=weight.shape).astype(weight.dtype))
    return stack


def random_states(stack, batch=BATCH, seed=1):
    """Non-zero states in the stack's layout: one list per layer."""
    rng = np.random.default_rng(seed)
    count = num_states(stack.cell) * (2 if stack.bidirectional else 1)
    return [
        [rng.normal(0.0, 0.5, size=(batch, UNITS)).astype("float32") for _ in range(count)]
        for _ in range(stack.num_layers)
    ]


def inputs_of(seed=2, batch=BATCH, steps=STEPS):
    return np.random.default_rng(seed).normal(size=(batch, steps, FEATURES)).astype("float32")


def standalone_layer(cell, weights_of, input_width, **options):
    """A Keras layer of `cell` (all steps and final states) holding the weights of `weights_of`."""
    layer = CELL_LAYERS[cell](UNITS, return_sequences=True, return_state=True, **options)
    layer.build((None, None, input_width))
    layer.set_weights(weights_of.get_weights())
    return layer


def reference_stack(stack, inputs, initial_state, mask=None):
    """The stack's outputs (all steps) and final states, wired by hand from standalone layers."""
    outputs, final_states = inputs, []
    for index, layer in enumerate(stack.recurrent_layers):
        width = outputs.shape[-1]
        states = initial_state[index]
        if stack.bidirectional:
            half = len(states) // 2
            forward = standalone_layer(stack.cell, layer.forward_layer, width)
            backward = standalone_layer(stack.cell, layer.backward_layer, width, go_backwards=True)
            y, *forward_states = forward(outputs, mask=mask, initial_state=states[:half])
            y_rev, *backward_states = backward(outputs, mask=mask, initial_state=states[half:])
            y_rev = keras.ops.flip(y_rev, axis=1)
            layer_outputs = keras.ops.concatenate([y, y_rev], axis=-1)
            layer_states = forward_states + backward_states
        else:
            single = standalone_layer(stack.cell, layer, width)
            layer_outputs, *layer_states = single(outputs, mask=mask, initial_state=states)
        if stack.residual and index > 0 and layer_outputs.shape[-1] == outputs.shape[-1]:
            layer_outputs = layer_outputs + outputs
        outputs = layer_outputs
        final_states.append(layer_states)
    return to_numpy(outputs), to_numpy(final_states)


def assert_states_close(actual, expected, atol=ATOL):
    assert len(actual) == len(expected)
    for layer_actual, layer_expected in zip(actual, expected):
        assert len(layer_actual) == len(layer_expected)
        for state, expected_state in zip(layer_actual, layer_expected):
            np.testing.assert_allclose(state, expected_state, atol=atol)


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("cell", CELLS)
def test_step_by_step_equals_the_whole_sequence(cell, residual):
    stack = make_stack(cell, residual=residual, return_state=True)
    inputs, initial_state = inputs_of(), random_states(stack)
    outputs, final_states = to_numpy(stack(inputs, initial_state=initial_state))
    assert outputs.shape == (BATCH, STEPS, UNITS)
    expected_outputs, expected_states = reference_stack(stack, inputs, initial_state)
    np.testing.assert_allclose(outputs, expected_outputs, atol=ATOL)
    assert_states_close(final_states, expected_states)

    states = initial_state
    for t in range(STEPS):
        output, states = stack.step(inputs[:, t], states)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(output), outputs[:, t], atol=ATOL)
    assert_states_close(to_numpy(states), final_states)


@pytest.mark.parametrize("cell", CELLS)
def test_get_initial_state_is_zeros_in_the_stack_layout(cell):
    stack = make_stack(cell, return_state=True)
    zeros = to_numpy(stack.get_initial_state(BATCH))
    assert [len(layer) for layer in zeros] == [num_states(cell)] * 2
    assert all(state.shape == (BATCH, UNITS) and not state.any() for s in zeros for state in s)
    # Zeros are what `call` starts from without initial_state; `step` continues from them.
    inputs = inputs_of()
    outputs, _ = to_numpy(stack(inputs))
    output, _ = stack.step(inputs[:, 0], stack.get_initial_state(BATCH))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(output), outputs[:, 0], atol=ATOL)
    bidirectional = make_stack(cell, bidirectional=True)
    assert [len(s) for s in bidirectional.get_initial_state(3)] == [2 * num_states(cell)] * 2


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", CELLS)
def test_initial_state_changes_the_outputs(cell, bidirectional):
    stack = make_stack(cell, bidirectional=bidirectional, return_state=True)
    inputs = inputs_of()
    default_outputs, default_states = to_numpy(stack(inputs))
    zero_outputs, zero_states = to_numpy(
        stack(inputs, initial_state=stack.get_initial_state(BATCH))
    )
    np.testing.assert_allclose(zero_outputs, default_outputs, atol=1e-6)
    assert_states_close(zero_states, default_states, atol=1e-6)
    initial_state = random_states(stack)
    outputs, states = to_numpy(stack(inputs, initial_state=initial_state))
    assert np.abs(outputs - default_outputs).max() > 1e-3
    for layer_states, layer_default in zip(states, default_states):
        # (Jordan cells forget fast: their final states move less, but they do move.)
        assert all(np.abs(a - b).max() > 1e-5 for a, b in zip(layer_states, layer_default))
    # Each layer's own initial state matters, not only the first one's.
    only_first = [initial_state[0], stack.get_initial_state(BATCH)[1]]
    first_outputs, _ = to_numpy(stack(inputs, initial_state=only_first))
    assert np.abs(first_outputs - outputs).max() > 1e-3


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", CELLS)
def test_padded_batch_final_states_equal_each_sequence_alone(cell, bidirectional):
    stack = make_stack(cell, bidirectional=bidirectional, residual=True, return_state=True)
    inputs = inputs_of()  # padding holds noise, not zeros: only the mask may keep it out
    lengths = (STEPS, 3)
    mask = np.arange(STEPS)[None, :] < np.array(lengths)[:, None]
    initial_state = random_states(stack)
    outputs, states = to_numpy(stack(inputs, mask=mask, initial_state=initial_state))
    for row, length in enumerate(lengths):
        alone_state = [[state[row : row + 1] for state in layer] for layer in initial_state]
        alone_outputs, alone_states = to_numpy(
            stack(inputs[row : row + 1, :length], initial_state=alone_state)
        )
        np.testing.assert_allclose(outputs[row, :length], alone_outputs[0], atol=ATOL)
        assert_states_close(
            [[state[row] for state in layer] for layer in states],
            [[state[0] for state in layer] for layer in alone_states],
        )
    # The padded row's states are not those at the last (padded) step.
    unmasked_states = to_numpy(stack(inputs, initial_state=initial_state))[1]
    assert np.abs(unmasked_states[-1][0][1] - states[-1][0][1]).max() > 1e-3


@pytest.mark.parametrize("cell", CELLS)
def test_bidirectional_states_are_forward_then_backward_and_step_refuses(cell):
    stack = make_stack(cell, bidirectional=True, return_state=True)
    inputs, initial_state = inputs_of(), random_states(stack)
    mask = np.arange(STEPS)[None, :] < np.array([STEPS, 4])[:, None]
    outputs, states = to_numpy(stack(inputs, mask=mask, initial_state=initial_state))
    assert outputs.shape == (BATCH, STEPS, 2 * UNITS)
    assert [len(layer) for layer in states] == [2 * num_states(cell)] * 2
    expected_outputs, expected_states = reference_stack(stack, inputs, initial_state, mask=mask)
    np.testing.assert_allclose(
        outputs * mask[..., None], expected_outputs * mask[..., None], atol=ATOL
    )
    assert_states_close(states, expected_states)
    with pytest.raises(ValueError, match="unidirectional"):
        stack.step(inputs[:, 0], initial_state)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_return_sequences_false_returns_the_last_output_and_the_states(bidirectional):
    stack = make_stack(
        "lstm", bidirectional=bidirectional, return_sequences=False, return_state=True
    )
    inputs, initial_state = inputs_of(), random_states(stack)
    output, states = to_numpy(stack(inputs, initial_state=initial_state))
    expected_outputs, expected_states = reference_stack(stack, inputs, initial_state)
    assert_states_close(states, expected_states)
    if bidirectional:  # forward's last step, backward's first (its last one)
        expected = np.concatenate(
            [expected_outputs[:, -1, :UNITS], expected_outputs[:, 0, UNITS:]], axis=-1
        )
    else:
        expected = expected_outputs[:, -1]
    np.testing.assert_allclose(output, expected, atol=ATOL)
    assert stack.compute_output_shape((None, STEPS, FEATURES))[0] == (None, output.shape[-1])


def test_initial_state_is_validated():
    stack = make_stack("lstm", return_state=True)
    inputs, states = inputs_of(), random_states(stack)
    with pytest.raises(ValueError, match=r"list of 2 entries, one per layer.*\[h, c\]"):
        stack(inputs, initial_state=states[:1])
    with pytest.raises(ValueError, match=r"initial_state\[1\] must hold the 2 states \[h, c\]"):
        stack(inputs, initial_state=[states[0], states[1][:1]])
    with pytest.raises(ValueError, match=r"initial_state\[0\] state c must have shape \(2, 4\)"):
        stack(inputs, initial_state=[[states[0][0], np.zeros((2, 5), "float32")], states[1]])
    with pytest.raises(ValueError, match=r"state h must have shape \(2, 4\); got \(3, 4\)"):
        stack(inputs, initial_state=[[np.zeros((3, 4), "float32")] * 2, states[1]])
    with pytest.raises(ValueError, match=r"states\[0\] must hold the 2 states"):
        stack.step(inputs[:, 0], [[states[0][0]], states[1]])
    with pytest.raises(ValueError, match=r"\(batch, features\)"):
        stack.step(inputs, states)
    bidirectional = make_stack("gru", bidirectional=True)
    with pytest.raises(ValueError, match=r"\[h_forward, h_backward\]"):
        bidirectional(inputs, initial_state=[[states[0][0]], [states[1][0]]])
    # Symbolic (functional) calls are checked too.
    symbolic = keras.Input((None, FEATURES))
    with pytest.raises(ValueError, match=r"must hold the 2 states"):
        stack(symbolic, initial_state=[[keras.Input((UNITS,))]] * 2)


def test_compute_output_shape_and_mask_with_return_state():
    stack = make_stack("peephole_lstm", bidirectional=True, return_state=True)
    outputs_shape, states_shape = stack.compute_output_shape((None, 7, FEATURES))
    assert outputs_shape == (None, 7, 2 * UNITS)
    assert states_shape == [[(None, UNITS)] * 4] * 2
    mask = np.ones((BATCH, STEPS), bool)
    output_mask, states_mask = stack.compute_mask(inputs_of(), mask)
    assert output_mask is mask and states_mask == [[None] * 4] * 2
    plain = make_stack("gru")
    assert plain.compute_output_shape((None, 7, FEATURES)) == (None, 7, UNITS)
    assert plain.compute_mask(inputs_of(), mask) is mask


@pytest.mark.parametrize("cell", ["lstm", "jordan"])
def test_a_functional_decoder_with_states_saves_and_loads(cell, tmp_path):
    """A decoder-shaped model: states in, states out, a mask through the embedding."""
    stack = make_stack(cell, return_state=True, residual=True)
    tokens = keras.Input((None,), dtype="int32")
    state_inputs = [
        [keras.Input((UNITS,)) for _ in range(num_states(cell))] for _ in range(stack.num_layers)
    ]
    embedding = keras.layers.Embedding(10, FEATURES, mask_zero=True)
    embedded = embedding(tokens)
    outputs, states = stack(embedded, initial_state=state_inputs)
    assert tuple(outputs.shape) == (None, None, UNITS)
    assert [[tuple(s.shape) for s in layer] for layer in states] == [
        [(None, UNITS)] * num_states(cell)
    ] * 2
    flat_inputs = [tokens] + [s for layer in state_inputs for s in layer]
    flat_outputs = [outputs] + [s for layer in states for s in layer]
    model = keras.Model(flat_inputs, flat_outputs)
    ids = np.array([[3, 4, 5, 6, 7], [2, 8, 9, 0, 0]], dtype="int32")
    initial_state = random_states(stack)
    values = [ids] + [s for layer in initial_state for s in layer]
    expected = to_numpy(model(values))
    # The mask reached the stack: the padded row's final states are those after 3 tokens.
    _, alone_states = to_numpy(
        stack(
            embedding(ids[1:, :3]),
            initial_state=[[s[1:] for s in layer] for layer in initial_state],
        )
    )
    np.testing.assert_allclose(expected[1][1], alone_states[0][0][0], atol=ATOL)
    model.save(tmp_path / "decoder.keras")
    loaded = keras.saving.load_model(tmp_path / "decoder.keras")
    for actual, wanted in zip(to_numpy(loaded(values)), expected):
        np.testing.assert_allclose(actual, wanted, atol=1e-6)


def test_config_round_trip_with_return_state_and_old_configs_load():
    stack = RecurrentStack(cell="gru_cho", units=UNITS, num_layers=2, return_state=True)
    config = stack.get_config()
    assert config["return_state"] is True
    clone = RecurrentStack.from_config(config)
    assert clone.return_state and clone.get_config() == config
    inputs = inputs_of()
    stack(inputs)
    clone(inputs)
    clone.set_weights(stack.get_weights())
    for a, b in zip(keras.tree.flatten(stack(inputs)), keras.tree.flatten(clone(inputs))):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    # A config saved before return_state existed loads as a stack returning outputs only.
    old = {key: value for key, value in config.items() if key != "return_state"}
    old_stack = RecurrentStack.from_config(old)
    assert old_stack.return_state is False and old_stack.get_config()["return_state"] is False
    assert tuple(old_stack(inputs).shape) == (BATCH, STEPS, 2 * UNITS)


JAX_CHECK = textwrap.dedent("""
    import json, sys
    import jax
    import keras, numpy as np
    from zoo.layers import fused_rnn
    from zoo.layers.recurrent_stack import RecurrentStack

    assert keras.backend.backend() == "jax"
    B, T, D, U = 2, 5, 3, 4
    rng = np.random.default_rng(0)
    x = rng.normal(size=(B, T, D)).astype("float32")
    mask = np.arange(T)[None, :] < np.array([5, 3])[:, None]
    x[~mask] = 9.0  # padded inputs must change nothing

    def flat(structure):
        return [np.asarray(leaf) for leaf in keras.tree.flatten(structure)]

    report = []
    for options in json.loads(sys.argv[1]):
        options = {"cell": "lstm", "units": U, "return_state": True, **options}
        use_initial_state = options.pop("initial_state")
        generic = RecurrentStack(implementation="keras", **options)
        fused = RecurrentStack(implementation="reference", **options)
        for stack in (generic, fused):
            stack.build((B, T, D))
        fused.set_weights([rng.normal(0, 0.5, size=w.shape).astype("float32")
                           for w in generic.weights])
        generic.set_weights(fused.get_weights())
        count = 4 if options["bidirectional"] else 2
        states = [[rng.normal(0, 0.5, size=(B, U)).astype("float32") for _ in range(count)]
                  for _ in range(options["num_layers"])] if use_initial_state else None
        readouts = None

        def loss(x, states, stack):
            outputs, final = stack(x, mask=mask, initial_state=states)
            if len(outputs.shape) == 3:
                outputs = outputs * mask[..., None]
            leaves = [outputs] + keras.tree.flatten(final)
            return sum((leaf * r).sum() for leaf, r in zip(leaves, readouts))

        results = []
        for stack in (generic, fused):
            outputs, final = stack(x, mask=mask, initial_state=states)
            outputs = np.asarray(outputs)
            if outputs.ndim == 3:
                if stack is fused:
                    assert np.all(outputs[~mask] == 0.0)
                outputs = np.where(mask[..., None], outputs, 0.0)
            if readouts is None:
                readouts = [rng.normal(size=leaf.shape).astype("float32")
                            for leaf in [outputs] + flat(final)]
            grads = jax.grad(loss, argnums=(0, 1) if states else 0)(x, states, stack)
            results.append(([outputs] + flat(final), flat(grads)))
        (generic_values, generic_grads), (fused_values, fused_grads) = results
        assert len(generic_values) == len(fused_values) == 1 + count * options["num_layers"]
        report.append({
            "options": options,
            "output_gap": float(np.abs(generic_values[0] - fused_values[0]).max()),
            "state_gap": max(float(np.abs(a - b).max())
                             for a, b in zip(generic_values[1:], fused_values[1:])),
            "gradient_gap": max(float(np.abs(a - b).max())
                                for a, b in zip(generic_grads, fused_grads)),
            "states_differ_from_zero_start": bool(use_initial_state) and float(np.abs(
                generic_values[1] - np.asarray(keras.tree.flatten(
                    generic(x, mask=mask)[1])[0])).max()) > 1e-3,
        })

    # step() on JAX, through the LSTM cells, equals the fused whole-sequence run.
    stack = RecurrentStack(cell="lstm", units=U, num_layers=2, bidirectional=False,
                           residual=True, return_state=True, implementation="reference")
    states = [[rng.normal(0, 0.5, size=(B, U)).astype("float32") for _ in range(2)]
              for _ in range(2)]
    outputs, final = stack(x[:, :3], initial_state=states)
    step_states = states
    for t in range(3):
        output, step_states = stack.step(x[:, t], step_states)
        assert np.abs(np.asarray(output) - np.asarray(outputs)[:, t]).max() < 1e-5
    assert max(np.abs(a - b).max() for a, b in zip(flat(step_states), flat(final))) < 1e-5
    print(json.dumps(report))
    """)

JAX_CASES = [
    {"num_layers": 2, "bidirectional": False, "initial_state": True},
    {"num_layers": 2, "bidirectional": False, "initial_state": False},
    {"num_layers": 2, "bidirectional": False, "residual": True, "initial_state": True},
    {"num_layers": 1, "bidirectional": False, "return_sequences": False, "initial_state": True},
    {"num_layers": 2, "bidirectional": True, "initial_state": True},
    {"num_layers": 2, "bidirectional": True, "initial_state": False},
    {
        "num_layers": 1,
        "bidirectional": True,
        "merge_mode": "sum",
        "return_sequences": False,
        "initial_state": True,
    },
]


def test_fused_lstm_states_equal_keras_layers_on_jax():
    stdout = run_on_jax(JAX_CHECK, json.dumps(JAX_CASES), timeout=600)
    report = json.loads(stdout.strip().splitlines()[-1])
    assert len(report) == len(JAX_CASES)
    for case, options in zip(report, JAX_CASES):
        assert case["output_gap"] < 1e-5, case
        assert case["state_gap"] < 1e-5, case
        assert case["gradient_gap"] < 1e-4, case
        assert case["states_differ_from_zero_start"] == options["initial_state"], case
