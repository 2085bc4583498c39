"""Family-agnostic evaluation of a saved model on a whole split -> metrics.json."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import keras

from zoo.config import resolve_config
from zoo.errors import ZooError
from zoo.registry import get_entry
from zoo.runtime import run_facts
from zoo.shipping import recover
from zoo.task import weights_dtype

TEST_SPLIT = "test"
# metrics.json's block comparing the float32 and the quantized model (`zoo.quantize`).
QUANTIZATION = "quantization"
# A model file re-saved with other decoding settings differs by a few bytes at most.
RESAVED_BYTES = 256


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
    _, output_dir, config = evaluation_setup(name, output_dir, config)
    recover(output_dir)
    model_path = output_dir / "model.keras"
    if not model_path.exists():
        raise ZooError(f"No model to evaluate at {model_path}. Run `make train-{name}` first.")
    model = keras.saving.load_model(model_path, compile=False)
    metrics = measure(name, model, config, output_dir, split)
    previous = output_dir / "metrics.json"
    quantization = json.loads(previous.read_text()).get(QUANTIZATION) if previous.exists() else None
    # The float32 / int8 comparison `python -m zoo quantize` recorded, while it is of this file:
    # of its size, give or take what new decoding settings (`make report-<entry>`) change in
    # the saved config, and of its precision.
    shipped = (quantization or {}).get(str((quantization or {}).get("shipped")), {})
    resaved = abs(shipped.get("bytes", -RESAVED_BYTES) - model_path.stat().st_size)
    if resaved < RESAVED_BYTES and metrics["weights"].startswith(str(quantization["shipped"])):
        metrics[QUANTIZATION] = quantization
    return write_metrics(metrics, output_dir)


def evaluation_setup(name: str, output_dir=None, config=None):
    """(entry, model folder, config): the config is the one in `training.json` unless given."""
    entry = get_entry(name)
    output_dir = Path(output_dir) if output_dir else entry.directory
    if config is None:
        config = resolve_config(entry.config_class, training_record(output_dir).get("config"))
    return entry, output_dir, config


def training_record(output_dir: Path) -> dict:
    training_path = output_dir / "training.json"
    return json.loads(training_path.read_text()) if training_path.exists() else {}


def write_metrics(metrics: dict, output_dir: Path) -> dict:
    partial = output_dir / ".metrics.json.partial"
    partial.write_text(json.dumps(metrics, indent=2, allow_nan=False) + "\n")
    os.replace(partial, output_dir / "metrics.json")
    return metrics


def measure(name: str, model: keras.Model, config, output_dir: Path, split: str = TEST_SPLIT):
    """The metrics record of `model` on the whole `split` (its figures written to output_dir).

    Training facts from `<output_dir>/training.json` (wall time, device) are carried over.
    """
    entry = get_entry(name)
    training = training_record(output_dir)
    started = time.time()
    results = entry.family.evaluate(model, config, split)
    figures = entry.family.save_figures(results, output_dir)
    return {
        "entry": name,
        "metric": entry.family.metric,
        "value": results[entry.family.metric],
        "split": split,
        **results,
        "figures": figures,
        "weights": weights_dtype(model),
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
