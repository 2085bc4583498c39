"""Training curves as a PNG saved with every run."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")  # Headless: runs on servers and CI without a display.
import matplotlib.pyplot as plt


def plot_training_curves(
    history: dict[str, list[float]], path: str | Path, title: str = ""
) -> None:
    """One panel per metric (loss, accuracy, ...), training and validation curves together."""
    metrics = [name for name in history if not name.startswith("val_") and name != "learning_rate"]
    # Validation-only metrics (a translator's BLEU, scored by decoding) get panels of their own.
    metrics += [name for name in history if name.startswith("val_") and name[4:] not in history]
    figure, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.6), squeeze=False)
    for axis, name in zip(axes[0], metrics):
        epochs = range(1, len(history[name]) + 1)
        axis.plot(
            epochs,
            history[name],
            marker="o",
            label="validation" if name.startswith("val_") else "train",
        )
        if f"val_{name}" in history:
            axis.plot(epochs, history[f"val_{name}"], marker="o", label="validation")
        axis.set_xlabel("epoch")
        axis.set_title(name)
        axis.grid(alpha=0.3)
        axis.legend()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_confusions(
    confusions: list[dict], labels: list[str], path: str | Path, title: str = ""
) -> None:
    """Gold (rows) x predicted (columns) token counts over `labels`, from sparse `confusions`
    ({"gold", "predicted", "count"}); the diagonal (correct tokens) is left blank."""
    from sklearn.metrics import ConfusionMatrixDisplay

    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=int)
    for cell in confusions:
        if cell["gold"] in index and cell["predicted"] in index:
            matrix[index[cell["gold"]], index[cell["predicted"]]] += cell["count"]
    np.fill_diagonal(matrix, 0)
    size = 2.0 + 0.55 * len(labels)
    figure, axis = plt.subplots(figsize=(size + 1.5, size))
    ConfusionMatrixDisplay(matrix, display_labels=labels).plot(
        ax=axis, cmap="Reds", xticks_rotation=60, values_format="d", colorbar=True
    )
    axis.set_xlabel("predicted tag")
    axis.set_ylabel("gold tag")
    if title:
        axis.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
