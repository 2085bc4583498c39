"""How far back the gradient reaches: ‖∂L/∂h_0‖ against sequence length, per cell.

A probe RNN reads T steps of Gaussian noise from a given initial state h_0 and must classify
the sign of the first input (so the loss depends on what happened T steps back). The norm of
the loss gradient with respect to h_0 measures how much of the error signal survives
backpropagation through time over T steps. For the Elman RNN it shrinks geometrically with T
(the vanishing gradient); the gates of the LSTM and GRU can learn to hold it, which is why the
norms are measured both at initialisation and after a short training at one length.

    python -m zoo.gradient_norms --output docs/gradient_norms.png

writes the plot and, beside it, the numbers (same name, `.json`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import keras
import numpy as np

from zoo.layers import CELL_LAYERS

CELLS = ("elman", "lstm", "gru")
DISPLAY_NAMES = {"elman": "Elman", "lstm": "LSTM", "gru": "GRU"}
LENGTHS = (5, 10, 20, 50, 100, 200)


def build_probe(cell: str, units: int, input_dim: int, dtype: str = "float64") -> keras.Model:
    """`[inputs, h_0 (, c_0)] -> logit`: an RNN from an explicit initial state, then Dense(1)."""
    inputs = keras.Input(shape=(None, input_dim), dtype=dtype, name="inputs")
    initial_state = [keras.Input(shape=(units,), dtype=dtype, name="h_0")]
    if cell == "lstm":
        initial_state.append(keras.Input(shape=(units,), dtype=dtype, name="c_0"))
    recurrent_layer = CELL_LAYERS[cell](units, name=cell, dtype=dtype)
    final_state = recurrent_layer(inputs, initial_state=initial_state)
    logit = keras.layers.Dense(1, name="logit", dtype=dtype)(final_state)
    return keras.Model([inputs, *initial_state], logit, name=f"{cell}_probe")


def sign_task(rng: np.random.Generator, batch_size: int, length: int, input_dim: int):
    """Noise sequences labelled by the sign of their first input."""
    inputs = rng.standard_normal((batch_size, length, input_dim))
    return inputs, (inputs[:, 0, 0] > 0).astype("float64")[:, None]


def zero_states(model: keras.Model, batch_size: int) -> list[np.ndarray]:
    return [np.zeros((batch_size, state.shape[-1]), state.dtype) for state in model.inputs[1:]]


def input_gradient(loss_of, value: np.ndarray) -> np.ndarray:
    """d loss_of(value) / d value on whichever backend Keras runs."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        value = tf.convert_to_tensor(value)
        with tf.GradientTape() as tape:
            tape.watch(value)
            loss = loss_of(value)
        return tape.gradient(loss, value).numpy()
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(loss_of)(jax.numpy.asarray(value)))
    if backend == "torch":
        import torch

        value = torch.tensor(value, requires_grad=True)
        loss_of(value).backward()
        return value.grad.cpu().numpy()
    raise ValueError(f"No input gradient for the {backend!r} backend.")


def initial_state_gradient_norm(model, inputs, labels) -> float:
    """Mean over the batch of ‖∂ℓ/∂h_0‖, ℓ each sequence's cross-entropy."""
    h_0, *other_states = zero_states(model, inputs.shape[0])
    # Keras layers take all-tensor or all-array arguments, and h_0 arrives as a tensor.
    inputs, *other_states = (keras.ops.convert_to_tensor(x) for x in (inputs, *other_states))

    def summed_loss(h_0):
        logits = model([inputs, h_0, *other_states], training=False)
        losses = keras.losses.binary_crossentropy(labels, logits, from_logits=True)
        return keras.ops.sum(losses)  # A sum, so row b of the gradient is ∂ℓ_b/∂h_0[b].

    gradient = input_gradient(summed_loss, h_0)
    return float(np.mean(np.linalg.norm(gradient, axis=-1)))


def train_probe(model, rng, steps: int, batch_size: int, length: int, learning_rate: float):
    """`steps` Adam steps on fresh batches of the sign task; returns accuracy on a new batch."""
    inputs, labels = sign_task(rng, steps * batch_size, length, model.inputs[0].shape[-1])
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate, clipnorm=1.0),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
    )
    model.fit(
        [inputs, *zero_states(model, len(inputs))],
        labels,
        batch_size=batch_size,
        epochs=1,
        shuffle=False,
        verbose=0,
    )
    inputs, labels = sign_task(rng, 512, length, inputs.shape[-1])
    logits = model.predict([inputs, *zero_states(model, 512)], verbose=0)
    return float(np.mean((logits > 0) == (labels > 0.5)))


def norms_by_length(model, lengths, batch_size: int, seed: int) -> list[float]:
    """‖∂L/∂h_0‖ at each length, on batches that depend only on `seed` (the same before and
    after training)."""
    rng = np.random.default_rng(seed)
    norms = []
    for length in lengths:
        inputs, labels = sign_task(rng, batch_size, length, model.inputs[0].shape[-1])
        norms.append(initial_state_gradient_norm(model, inputs, labels))
    return norms


def geometric_mean(per_seed: list[list[float]]) -> list[float]:
    """Mean over seeds in log space: the norms span dozens of decades, and after training one
    seed that solved the task would otherwise outweigh all the others."""
    with np.errstate(divide="ignore"):
        return np.exp(np.mean(np.log(np.asarray(per_seed)), axis=0)).tolist()


def decay_per_step(lengths, norms) -> float | None:
    """The factor by which the norm shrinks per extra step: exp(slope of log norm against T)."""
    if len(set(lengths)) < 2:
        return None
    slope = np.polyfit(np.asarray(lengths, "float64"), np.log(np.asarray(norms)), deg=1)[0]
    return float(np.exp(slope))


def measure_gradient_norms(
    cells=CELLS,
    lengths=LENGTHS,
    units: int = 32,
    input_dim: int = 8,
    seeds: int = 5,
    batch_size: int = 64,
    train_steps: int = 300,
    train_length: int = 20,
    learning_rate: float = 1e-2,
    dtype: str = "float64",
) -> dict:
    """‖∂L/∂h_0‖ for each cell and length, at initialisation and after training at one length.

    In float64 by default: in float32 the Elman and GRU norms underflow to 0 before T=200.
    Returns a JSON-ready dict: the settings, and per cell the geometric means over seeds of the
    norms ("init", "trained", one value per length), each seed's norms and the accuracies the
    trained probes reach on fresh sequences of the training length.
    """
    results = {
        "quantity": "mean over sequences of ||dL/dh_0||, L the sequence's cross-entropy; "
        "geometric mean over seeds",
        "task": "classify the sign of the first input; inputs i.i.d. standard normal",
        "backend": keras.backend.backend(),
        "lengths": list(lengths),
        "units": units,
        "input_dim": input_dim,
        "seeds": seeds,
        "batch_size": batch_size,
        "train_steps": train_steps,
        "train_length": train_length,
        "learning_rate": learning_rate,
        "dtype": dtype,
        "cells": {},
    }
    for cell in cells:
        per_seed = {"init": [], "trained": []}
        accuracies = []
        for seed in range(seeds):
            keras.utils.set_random_seed(seed)
            model = build_probe(cell, units, input_dim, dtype)
            per_seed["init"].append(norms_by_length(model, lengths, batch_size, seed))
            training_rng = np.random.default_rng(1000 + seed)
            accuracies.append(
                train_probe(
                    model, training_rng, train_steps, batch_size, train_length, learning_rate
                )
            )
            per_seed["trained"].append(norms_by_length(model, lengths, batch_size, seed))
        results["cells"][cell] = {"trained_accuracy": accuracies}
        for stage, norms in per_seed.items():
            mean_norms = geometric_mean(norms)
            results["cells"][cell][stage] = mean_norms
            results["cells"][cell][f"{stage}_decay_per_step"] = decay_per_step(lengths, mean_norms)
            results["cells"][cell][f"{stage}_per_seed"] = norms
    return results


def plot_gradient_norms(results: dict, path: str | Path) -> None:
    """One line per cell on a log scale: solid at initialisation, dashed after training."""
    import matplotlib

    matplotlib.use("Agg")  # Headless: runs on servers and CI without a display.
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for index, (cell, norms) in enumerate(results["cells"].items()):
        color = f"C{index}"
        for stage, style in (("init", "-"), ("trained", "--")):
            values = np.asarray(norms[stage], dtype="float64")
            values[values <= 0] = np.nan  # Underflowed to zero: nothing to draw on a log scale.
            label = f"{DISPLAY_NAMES.get(cell, cell)}, " + (
                "at initialisation"
                if stage == "init"
                else f"after {results['train_steps']} steps at T={results['train_length']}"
            )
            axis.plot(results["lengths"], values, style, marker="o", color=color, label=label)
    axis.set_yscale("log")
    axis.set_xlabel("sequence length T")
    axis.set_ylabel("‖∂L/∂h₀‖ (mean over sequences)")
    axis.set_title(
        f"Gradient reaching the initial state ({results['units']} units, "
        f"geometric mean of {results['seeds']} seeds)"
    )
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=8)
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m zoo.gradient_norms",
        description="Plot ||dL/dh_0|| against sequence length for Elman, LSTM and GRU.",
    )
    parser.add_argument("--output", default="docs/gradient_norms.png", help="PNG to write")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS))
    args = parser.parse_args(argv)
    start = time.perf_counter()
    results = measure_gradient_norms(
        lengths=args.lengths, units=args.units, seeds=args.seeds, train_steps=args.train_steps
    )
    results["wall_seconds"] = round(time.perf_counter() - start, 1)
    output = Path(args.output)
    plot_gradient_norms(results, output)
    output.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    header = "".join(f"T={t:<9}" for t in results["lengths"])
    print(f"{'cell':<8}{'stage':<9}{header}per step")
    for cell, norms in results["cells"].items():
        for stage in ("init", "trained"):
            values = "".join(f"{v:<11.3g}" for v in norms[stage])
            decay = norms[f"{stage}_decay_per_step"]
            print(f"{cell:<8}{stage:<9}{values}{'-' if decay is None else f'{decay:.3f}'}")
    print(f"Wrote {output} and {output.with_suffix('.json')} in {results['wall_seconds']} s.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
