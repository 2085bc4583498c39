import json

import keras
import numpy as np

from zoo.gradient_norms import input_gradient, main, measure_gradient_norms


def test_input_gradient_is_the_derivative():
    value = np.array([[1.0, -2.0], [0.5, 3.0]])
    gradient = input_gradient(lambda x: keras.ops.sum(x**3), value)
    np.testing.assert_allclose(gradient, 3 * value**2, rtol=1e-6)


def test_tiny_measurement_writes_plot_and_numbers(tmp_path):
    results = measure_gradient_norms(
        cells=("elman",), lengths=(2, 4), units=4, seeds=1, batch_size=8, train_steps=2
    )
    norms = results["cells"]["elman"]
    assert len(norms["init"]) == len(norms["trained"]) == 2
    assert all(np.isfinite(v) and v > 0 for v in norms["init"] + norms["trained"])
    assert norms["init"][1] < norms["init"][0]  # Fewer steps, more gradient.
    output = tmp_path / "docs" / "norms.png"
    assert (
        main(
            [
                "--output",
                str(output),
                "--seeds",
                "1",
                "--train-steps",
                "1",
                "--units",
                "4",
                "--lengths",
                "2",
                "3",
            ]
        )
        == 0
    )
    assert output.stat().st_size > 1000
    numbers = json.loads(output.with_suffix(".json").read_text())
    assert set(numbers["cells"]) == {"elman", "lstm", "gru"} and numbers["lengths"] == [2, 3]
