"""The cell library: each cell against its equations in NumPy, BPTT gradients against finite
differences, masking, dropout masks, gradient clipping, training and serialization."""

import keras
import numpy as np
import pytest

from tests.conftest import TINY_SENTIMENT, write_imdb_archive
from tests.tagging_fixtures import TINY_TAGGER, write_atis_mirror, write_conll_mirror
from zoo.config import CELLS, resolve_config
from zoo.errors import ConfigError
from zoo.layers import CELL_LAYERS, JordanRNNCell, PeepholeLSTMCell, RecurrentStack
from zoo.registry import entry_names, get_entry

BATCH, STEPS, INPUT_DIM, UNITS = 3, 7, 4, 5
CUSTOM_CELLS = ("jordan", "peephole_lstm")


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def recurrent_layer(cell, dtype="float32", **kwargs):
    """One layer of `cell` from the stack's own table, returning all steps and final states."""
    return CELL_LAYERS[cell](UNITS, return_sequences=True, return_state=True, dtype=dtype, **kwargs)


def randomize_weights(layer, seed=0):
    """Random values for every weight, biases and peepholes included, so that each term of
    the equations is exercised (the initializers leave biases at 0 or 1)."""
    rng = np.random.default_rng(seed)
    for weight in layer.weights:
        weight.assign(rng.normal(0.0, 0.5, size=weight.shape).astype(weight.dtype))


def cell_weights(layer) -> dict:
    return {w.name: keras.ops.convert_to_numpy(w).astype("float64") for w in layer.cell.weights}


def numpy_step(cell, w, x, states, input_mask=1.0, recurrent_mask=1.0):
    """One step of `cell`'s equations: (output, new states)."""
    x = x * input_mask
    if cell == "elman":
        h = np.tanh(
            x @ w["kernel"] + (states[0] * recurrent_mask) @ w["recurrent_kernel"] + w["bias"]
        )
        return h, [h]
    if cell == "jordan":
        fed_back = states[0] * recurrent_mask
        hidden = np.tanh(x @ w["kernel"] + fed_back @ w["recurrent_kernel"] + w["bias"])
        y = np.tanh(hidden @ w["output_kernel"] + w["output_bias"])
        return y, [y]
    if cell in ("lstm", "peephole_lstm"):
        h, c = states
        z = x @ w["kernel"] + (h * recurrent_mask) @ w["recurrent_kernel"] + w["bias"]
        z_i, z_f, z_c, z_o = np.split(z, 4, axis=-1)
        if cell == "peephole_lstm":
            z_i = z_i + w["input_peephole"] * c
            z_f = z_f + w["forget_peephole"] * c
        c = sigmoid(z_f) * c + sigmoid(z_i) * np.tanh(z_c)
        if cell == "peephole_lstm":
            z_o = z_o + w["output_peephole"] * c
        h = sigmoid(z_o) * np.tanh(c)
        return h, [h, c]
    (h,) = states
    if cell == "gru":  # Reset after the recurrent matrix; separate input and recurrent biases.
        x_z, x_r, x_h = np.split(x @ w["kernel"] + w["bias"][0], 3, axis=-1)
        h_z, h_r, h_h = np.split(h @ w["recurrent_kernel"] + w["bias"][1], 3, axis=-1)
        z, r = sigmoid(x_z + h_z), sigmoid(x_r + h_r)
        candidate = np.tanh(x_h + r * h_h)
    else:  # gru_cho: reset before the recurrent matrix (Cho et al., 2014).
        x_z, x_r, x_h = np.split(x @ w["kernel"] + w["bias"], 3, axis=-1)
        u_z, u_r, u_h = np.split(w["recurrent_kernel"], 3, axis=-1)
        z, r = sigmoid(x_z + h @ u_z), sigmoid(x_r + h @ u_r)
        candidate = np.tanh(x_h + (r * h) @ u_h)
    h = z * h + (1.0 - z) * candidate
    return h, [h]


def num_states(cell) -> int:
    return 2 if cell in ("lstm", "peephole_lstm") else 1


def numpy_rnn(cell, layer, inputs, **masks):
    w = cell_weights(layer)
    states = [np.zeros((inputs.shape[0], UNITS))] * num_states(cell)
    outputs = []
    for t in range(inputs.shape[1]):
        output, states = numpy_step(cell, w, inputs[:, t].astype("float64"), states, **masks)
        outputs.append(output)
    return np.stack(outputs, axis=1), states


def test_the_stack_offers_every_configurable_cell():
    assert tuple(CELL_LAYERS) == CELLS


@pytest.mark.parametrize("cell", CELLS)
def test_forward_pass_matches_the_equations(cell):
    keras.utils.set_random_seed(0)
    inputs = np.random.default_rng(1).normal(size=(BATCH, STEPS, INPUT_DIM)).astype("float32")
    layer = recurrent_layer(cell)
    layer(inputs)
    randomize_weights(layer)
    outputs, *states = (keras.ops.convert_to_numpy(y) for y in layer(inputs))
    expected_outputs, expected_states = numpy_rnn(cell, layer, inputs)
    np.testing.assert_allclose(outputs, expected_outputs, atol=1e-5)
    assert len(states) == len(expected_states)
    for state, expected in zip(states, expected_states):
        np.testing.assert_allclose(state, expected, atol=1e-5)


@pytest.mark.parametrize("cell", CUSTOM_CELLS)
def test_dropout_masks_are_fixed_for_the_whole_sequence(cell):
    keras.utils.set_random_seed(0)
    inputs = np.random.default_rng(1).normal(size=(BATCH, STEPS, INPUT_DIM)).astype("float32")
    layer = recurrent_layer(cell, dropout=0.4, recurrent_dropout=0.4, seed=3)
    layer(inputs)
    randomize_weights(layer)
    # Draw the masks first: keras.layers.RNN then reuses them for every step of this call.
    input_mask = layer.cell.get_dropout_mask(keras.ops.convert_to_tensor(inputs[:, 0]))
    recurrent_mask = layer.cell.get_recurrent_dropout_mask(keras.ops.zeros((BATCH, UNITS)))
    masks = {
        "input_mask": keras.ops.convert_to_numpy(input_mask),
        "recurrent_mask": keras.ops.convert_to_numpy(recurrent_mask),
    }
    assert 0 < np.mean(masks["input_mask"] == 0) < 1 and 0 < np.mean(masks["recurrent_mask"] == 0)
    outputs = keras.ops.convert_to_numpy(layer(inputs, training=True)[0])
    expected_outputs, _ = numpy_rnn(cell, layer, inputs, **masks)
    np.testing.assert_allclose(outputs, expected_outputs, atol=1e-5)
    # Inference ignores dropout, and the next training call draws fresh masks.
    np.testing.assert_allclose(layer(inputs)[0], numpy_rnn(cell, layer, inputs)[0], atol=1e-5)
    assert not np.allclose(layer(inputs, training=True)[0], outputs)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="uses tf.GradientTape")
@pytest.mark.parametrize("cell", CELLS)
def test_bptt_gradients_match_finite_differences(cell):
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(2)
    inputs = tf.Variable(rng.normal(size=(BATCH, STEPS, INPUT_DIM)))
    layer = recurrent_layer(cell, dtype="float64")
    layer(inputs)
    randomize_weights(layer)
    # A loss that reads every step's output and every final state.
    readouts = [rng.normal(size=(BATCH, STEPS, UNITS))] + [
        rng.normal(size=(BATCH, UNITS)) for _ in range(num_states(cell))
    ]

    def loss():
        return sum(tf.reduce_sum(y * r) for y, r in zip(layer(inputs), readouts))

    variables = [inputs] + list(layer.trainable_weights)
    with tf.GradientTape() as tape:
        value = loss()
    gradients = tape.gradient(value, variables)
    epsilon = 1e-6
    for variable, gradient in zip(variables, gradients):
        gradient = tf.convert_to_tensor(gradient).numpy()
        original = variable.numpy()
        for flat_index in rng.choice(original.size, size=min(3, original.size), replace=False):
            index = np.unravel_index(flat_index, original.shape)
            shifted = original.copy()
            shifted[index] += epsilon
            variable.assign(shifted)
            plus = float(loss())
            shifted[index] -= 2 * epsilon
            variable.assign(shifted)
            minus = float(loss())
            variable.assign(original)
            numerical = (plus - minus) / (2 * epsilon)
            np.testing.assert_allclose(
                gradient[index], numerical, rtol=1e-5, atol=1e-7, err_msg=variable.name
            )


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padded_batch_equals_each_sequence_alone(cell, bidirectional):
    keras.utils.set_random_seed(0)
    layer = recurrent_layer(cell)
    if bidirectional:
        layer = keras.layers.Bidirectional(layer, merge_mode="concat")
    # Padding holds noise, not zeros: only the mask may keep it out.
    inputs = np.random.default_rng(3).normal(size=(2, 6, INPUT_DIM)).astype("float32")
    lengths = (6, 3)
    mask = np.arange(6)[None, :] < np.array(lengths)[:, None]
    outputs, *states = (keras.ops.convert_to_numpy(y) for y in layer(inputs, mask=mask))
    for row, length in enumerate(lengths):
        alone_outputs, *alone_states = (
            keras.ops.convert_to_numpy(y) for y in layer(inputs[row : row + 1, :length])
        )
        np.testing.assert_allclose(outputs[row, :length], alone_outputs[0], atol=1e-5)
        for state, alone_state in zip(states, alone_states):
            np.testing.assert_allclose(state[row], alone_state[0], atol=1e-5)


CLIPPING_KEYS = ("clipnorm", "global_clipnorm", "clipvalue")


@pytest.mark.parametrize(
    "key, bound", [("clipnorm", 0.5), ("global_clipnorm", 0.5), ("clipvalue", 0.25)]
)
def test_gradient_clipping_from_the_config_reaches_the_optimizer(key, bound):
    entry = get_entry("sentiment")
    clipping = {name: (bound if name == key else 0.0) for name in CLIPPING_KEYS}
    config = resolve_config(entry.config_class, {**TINY_SENTIMENT, **clipping})
    model = entry.family.build(config)
    entry.family.compile(model, config)
    optimizer = model.optimizer
    for name in CLIPPING_KEYS:
        assert getattr(optimizer, name) == (clipping[name] or None)
    weights = [keras.Variable(np.zeros(16, "float32"), name=f"weight_{i}") for i in range(2)]
    optimizer.apply_gradients([(keras.ops.full((16,), 1e12), weight) for weight in weights])
    for weight in weights:
        update = keras.ops.convert_to_numpy(weight)
        assert np.all(np.isfinite(update)) and np.max(np.abs(update)) <= 1.01 * config.learning_rate
    # Adam's first moment after one step is (1 - beta_1) times the gradient it was given.
    moments = [
        keras.ops.convert_to_numpy(v) / (1.0 - optimizer.beta_1)
        for v in optimizer.variables
        if "momentum" in v.path
    ]
    if key == "clipnorm":  # each weight's gradient on its own
        for used_gradient in moments:
            assert np.linalg.norm(used_gradient) == pytest.approx(bound, rel=1e-4)
    elif key == "global_clipnorm":  # all gradients together
        total = np.sqrt(sum(np.sum(np.square(g)) for g in moments))
        assert total == pytest.approx(bound, rel=1e-4)
    else:
        np.testing.assert_allclose(np.concatenate(moments), bound, rtol=1e-4)


def test_two_kinds_of_clipping_at_once_are_refused():
    entry = get_entry("sentiment")
    config = resolve_config(entry.config_class, {**TINY_SENTIMENT, "clipnorm": 1, "clipvalue": 1})
    model = entry.family.build(config)
    with pytest.raises(ConfigError, match="at most one of clipnorm"):
        entry.family.compile(model, config)


def test_weight_ema_is_configured_on_the_optimizer_and_validated():
    entry = get_entry("sentiment")
    config = resolve_config(entry.config_class, {**TINY_SENTIMENT, "ema_momentum": 0.99})
    optimizer = entry.family.optimizer(config)
    assert optimizer.use_ema and optimizer.ema_momentum == 0.99
    assert not entry.family.optimizer(resolve_config(entry.config_class, TINY_SENTIMENT)).use_ema
    with pytest.raises(ConfigError, match="ema_momentum"):
        entry.family.optimizer(resolve_config(entry.config_class, {"ema_momentum": 1.0}))


# Each entry's tiny recipe and the writer of its tiny dataset archive(s) under a mirror folder.
# An entry of a new family needs a line here before its one-step test can run.
TINY_ENTRIES = {
    "sentiment": (TINY_SENTIMENT, lambda mirror: write_imdb_archive(mirror / "imdb")),
    "slots": (TINY_TAGGER, write_atis_mirror),
    "ner": (TINY_TAGGER, write_conll_mirror),
}


@pytest.fixture(scope="module")
def mirror_root(tmp_path_factory):
    """A mirror of tiny archives and a private TFDS data dir, shared by all the cells."""
    root = tmp_path_factory.mktemp("cells")
    for _, write_archive in TINY_ENTRIES.values():
        write_archive(root / "mirror")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ZOO_DATA_MIRROR", str(root / "mirror"))
        patch.setenv("ZOO_DATA_DIR", str(root / "tfds"))
        yield root


def _family_cell_pairs() -> list[tuple[str, str]]:
    """Every cell on one entry of each family (the cell lives in the family's shared backbone),
    and the LSTM on each other entry."""
    first_of_family = {}
    for name in entry_names():
        first_of_family.setdefault(type(get_entry(name).family), name)
    firsts = set(first_of_family.values())
    return [
        (name, cell) for name in entry_names() for cell in CELLS if name in firsts or cell == "lstm"
    ]


@pytest.mark.parametrize("name, cell", _family_cell_pairs())
def test_every_family_builds_and_trains_one_step_with_every_cell(mirror_root, name, cell):
    if name not in TINY_ENTRIES:
        pytest.skip(f"No tiny recipe and dataset for entry {name!r} in TINY_ENTRIES.")
    entry = get_entry(name)
    # One bidirectional layer: a second would only double the graph tracing time.
    tiny_recipe, _ = TINY_ENTRIES[name]
    overrides = {**tiny_recipe, "cell": cell, "num_layers": 1, "recurrent_dropout": 0.1}
    config = resolve_config(entry.config_class, overrides)
    run_dir = mirror_root / f"{name}_{cell}"
    run_dir.mkdir()
    model = entry.family.prepare_model(config, run_dir)
    train, _ = entry.family.training_data(model, config)
    entry.family.compile(model, config)
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(train.repeat(), steps_per_epoch=1, shuffle=False, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    stacks = [layer for layer in model._flatten_layers() if isinstance(layer, RecurrentStack)]
    assert stacks and all(stack.cell == cell for stack in stacks)
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights()))


@pytest.mark.parametrize("cell", CUSTOM_CELLS + ("gru_cho",))
def test_stack_serialization_round_trip(cell, tmp_path):
    keras.utils.set_random_seed(0)
    stack = RecurrentStack(
        cell=cell, units=4, num_layers=2, bidirectional=True, dropout=0.1, recurrent_dropout=0.1
    )
    inputs = keras.Input(shape=(None, 3))
    model = keras.Model(inputs, stack(inputs))
    values = np.random.default_rng(4).normal(size=(2, 5, 3)).astype("float32")
    expected = keras.ops.convert_to_numpy(model(values))

    clone = RecurrentStack.from_config(stack.get_config())
    assert clone.get_config() == stack.get_config()
    clone(values)
    clone.set_weights(stack.get_weights())
    np.testing.assert_allclose(clone(values), expected, atol=1e-6)

    model.save(tmp_path / "stack.keras")
    loaded = keras.saving.load_model(tmp_path / "stack.keras")
    np.testing.assert_allclose(loaded(values), expected, atol=1e-6)


@pytest.mark.parametrize("cell_class", [JordanRNNCell, PeepholeLSTMCell])
def test_cell_config_round_trip_and_validation(cell_class):
    cell = cell_class(7, dropout=0.2, recurrent_dropout=0.1, seed=5, activation="relu")
    clone = cell_class.from_config(cell.get_config())
    assert clone.get_config() == cell.get_config()
    with pytest.raises(ValueError, match="units must be a positive integer"):
        cell_class(0)
    with pytest.raises(ValueError, match=r"recurrent_dropout must be in \[0, 1\)"):
        cell_class(3, recurrent_dropout=1.0)
