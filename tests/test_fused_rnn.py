"""The fused LSTM path of `RecurrentStack` (zoo.layers.fused_rnn) equals the Keras layers.

The cuDNN kernel itself needs a GPU; here the same weight packing, lengths and direction
handling run through `jax.experimental.rnn.lstm_ref` ("reference") on the CPU, in a JAX
subprocess, against the Keras LSTM layers (the generic path) with the same weights.
"""

import json
import textwrap

import numpy as np
import pytest

from tests.conftest import run_on_jax
from zoo.layers.recurrent_stack import RecurrentStack

CHECK = textwrap.dedent("""
    import json, sys
    import keras, numpy as np
    from zoo.layers import fused_rnn
    from zoo.layers.recurrent_stack import RecurrentStack

    assert keras.backend.backend() == "jax"
    assert not fused_rnn.jax_cudnn_available()  # CPU: "auto" keeps the Keras layers
    rng = np.random.default_rng(0)
    B, T, D = 4, 7, 5
    lengths = np.array([7, 3, 1, 5])
    x = rng.normal(size=(B, T, D)).astype("float32")
    mask = np.arange(T)[None, :] < lengths[:, None]
    x[~mask] = 9.0  # padded inputs must change nothing
    target = rng.normal(size=(B, 1)).astype("float32")

    def model_of(implementation, options):
        inputs, m = keras.Input((T, D)), keras.Input((T,), dtype="bool")
        stack = RecurrentStack(implementation=implementation, name="stack", **options)
        out = stack(inputs, mask=m)
        if len(out.shape) == 3:
            out = keras.ops.sum(keras.ops.where(m[..., None], out, 0.0), axis=1)
        return keras.Model([inputs, m], keras.layers.Dense(1)(out))

    report = []
    for options in json.loads(sys.argv[1]):
        generic, fused = model_of("keras", options), model_of("reference", options)
        fused.set_weights(generic.get_weights())
        steps = [keras.ops.convert_to_numpy(model.get_layer("stack")(x, mask=mask))
                 for model in (generic, fused)]
        if steps[0].ndim == 3:
            assert np.all(steps[1][~mask] == 0.0)  # fused: 0 at padded steps
            steps = [np.where(mask[..., None], s, 0.0) for s in steps]
        # One SGD step with learning rate 1: the weight change is the gradient.
        for model in (generic, fused):
            model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
            model.train_on_batch([x, mask], target)
        gradient_gap = max(float(np.abs(a - b).max())
                           for a, b in zip(generic.get_weights(), fused.get_weights()))
        report.append({"options": options, "output_gap": float(np.abs(steps[0] - steps[1]).max()),
                       "gradient_gap": gradient_gap})

    # Training-time input dropout: one mask per sequence, outputs change, stay finite.
    stack = RecurrentStack(cell="lstm", units=6, dropout=0.5, implementation="reference")
    train, infer = (keras.ops.convert_to_numpy(stack(x, mask=mask, training=t)) for t in (True, False))
    assert np.isfinite(train).all() and not np.allclose(train, infer)
    print(json.dumps(report))
    """)

CASES = [
    {"cell": "lstm", "units": 6, "num_layers": 2, "bidirectional": True},
    {"cell": "lstm", "units": 6, "num_layers": 1, "bidirectional": False},
    {"cell": "lstm", "units": 6, "num_layers": 2, "bidirectional": True, "return_sequences": False},
    {
        "cell": "lstm",
        "units": 6,
        "num_layers": 1,
        "bidirectional": False,
        "return_sequences": False,
    },
    {"cell": "lstm", "units": 6, "num_layers": 2, "merge_mode": "sum", "residual": True},
    {"cell": "lstm", "units": 6, "merge_mode": "mul", "return_sequences": False},
    {"cell": "lstm", "units": 6, "merge_mode": "ave"},
]


def test_fused_lstm_equals_keras_layers_outputs_and_gradients_on_jax():
    stdout = run_on_jax(CHECK, json.dumps(CASES), timeout=600)
    report = json.loads(stdout.strip().splitlines()[-1])
    assert [case["options"] for case in report] == CASES
    for case in report:
        assert case["output_gap"] < 1e-5, case
        assert case["gradient_gap"] < 1e-5, case


SYMBOLIC = textwrap.dedent("""
    import keras
    from zoo.layers.recurrent_stack import RecurrentStack

    # A functional model's symbolic build has unknown batch and time sizes; cuDNN's kernel
    # cannot run on those (nor on a CPU at all), so the build must not trace the fused path.
    for options in ({}, {"return_sequences": False}, {"merge_mode": "sum"}):
        inputs, mask = keras.Input((None, 5)), keras.Input((None,), dtype="bool")
        stack = RecurrentStack(cell="lstm", units=6, num_layers=2, implementation="cudnn", **options)
        outputs = stack(inputs, mask=mask)
        expected = stack.compute_output_shape((None, None, 5))
        assert tuple(outputs.shape) == expected, (outputs.shape, expected)
        print(options, tuple(outputs.shape))
    """)


def test_a_functional_model_builds_without_tracing_the_cudnn_kernel():
    lines = run_on_jax(SYMBOLIC).strip().splitlines()[-3:]
    assert lines == [
        "{} (None, None, 12)",
        "{'return_sequences': False} (None, 12)",
        "{'merge_mode': 'sum'} (None, None, 6)",
    ]


def test_implementation_is_validated_and_serialized():
    with pytest.raises(ValueError, match="implementation must be one of"):
        RecurrentStack(implementation="fast")
    stack = RecurrentStack(cell="gru", units=3, implementation="keras")
    assert RecurrentStack.from_config(stack.get_config()).implementation == "keras"
    # Only LSTMs on JAX have a fused kernel: asking for it elsewhere is an error, not a fallback.
    stack = RecurrentStack(cell="gru", units=3, implementation="reference")
    with pytest.raises(ValueError, match="needs LSTM layers"):
        stack(np.zeros((2, 4, 3), "float32"))
