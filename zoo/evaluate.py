"""Family-agnostic evaluation of a saved model on a whole split -> metrics.json."""

from __future__ import annotations

import json
import time
from pathlib import Path

import keras

from zoo.config import resolve_config
from zoo.errors import ZooError
from zoo.registry import get_entry
from zoo.runtime import run_facts

TEST_SPLIT = "test"


def evaluate_model(
    name: str,
    output_dir: str | Path | None = None,
    split: str = TEST_SPLIT,
    config=None,
) -> dict:
    """Evaluates `<output_dir>/model.keras` on the whole `split`; writes `metrics.json` there.

    The metric is computed over every example of the split (`num_examples` records how many),
    never a sample. Training facts from `training.json` (wall time, device) are carried over.
    """
    entry = get_entry(name)
    output_dir = Path(output_dir) if output_dir else entry.directory
    training_path = output_dir / "training.json"
    training = json.loads(training_path.read_text()) if training_path.exists() else {}
    if config is None:
        config = resolve_config(entry.config_class, training.get("config"))
    model_path = output_dir / "model.keras"
    if not model_path.exists():
        raise ZooError(f"No model to evaluate at {model_path}. Run `make train-{name}` first.")
    model = keras.saving.load_model(model_path, compile=False)
    started = time.time()
    results = entry.family.evaluate(model, config, split)
    figures = entry.family.save_figures(results, output_dir)
    metrics = {
        "entry": name,
        "metric": entry.family.metric,
        "value": results[entry.family.metric],
        "split": split,
        **results,
        "figures": figures,
        "evaluation": {"wall_seconds": round(time.time() - started, 1), **run_facts()},
        "training": {
            key: training.get(key)
            for key in (
                "device",
                "backend",
                "commit",
                "date",
                "training_wall_seconds",
                "epochs_run",
                "best_epoch",
                "epoch_selection",
                f"best_val_{entry.family.metric}",
            )
        },
        "config": training.get("config"),
    }
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
