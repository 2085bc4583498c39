"""Post-training weight quantization of a saved entry: float32 -> Keras's int8, kept only when
the test metric holds.

`python -m zoo quantize NAME` (`make quantize-NAME`) loads `saved_models/NAME/model.keras`
(float32), measures it and its `model.quantize("int8")` copy on the whole test split with the
family's own `evaluate`, and replaces the file with the int8 model only when its metric is at
most `MAX_METRIC_DROP` below the float one; `metrics.json` records both. `make train-NAME
SET="quantize=int8"` runs the same step after training and the float evaluation.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import keras

from zoo.errors import ZooError
from zoo.evaluate import QUANTIZATION, TEST_SPLIT, evaluation_setup, measure, write_metrics
from zoo.registry import get_entry
from zoo.shipping import model_files, recover, replace_files
from zoo.task import weights_dtype

MODES = ("int8",)
# The most a quantized model's metric may lose, in points (of 100) where higher is better.
MAX_METRIC_DROP_POINTS = 0.2
# The same for a metric that is a fraction in [0, 1] (accuracy, F1).
MAX_METRIC_DROP = MAX_METRIC_DROP_POINTS / 100


def keeps_quantized(
    float_value: float,
    quantized_value: float,
    points: float = 100.0,
    higher_is_better: bool = True,
) -> bool:
    """Whether the quantized model ships: its metric is at most 0.2 points worse than float's.

    `points`: points per unit of the metric (`Family.metric_points`): 100 for a fraction in
    [0, 1], 1 for a metric already in points (BLEU, perplexity). `higher_is_better`: False
    for a metric such as perplexity, which the quantized model may raise by 0.2.
    """
    loss = points_worse(float_value, quantized_value, points, higher_is_better)
    return loss <= MAX_METRIC_DROP_POINTS + 1e-7


def points_worse(reference: float, value: float, points: float, higher_is_better: bool) -> float:
    """How many points `value` is worse than `reference` (negative: better)."""
    return points * (reference - value if higher_is_better else value - reference)


def quantize_model(model: keras.Model, mode: str = "int8") -> keras.Model:
    """Quantizes `model` in place with Keras's `model.quantize(mode)`; returns it."""
    if mode not in MODES:
        raise ZooError(f"Unknown quantization mode {mode!r}; accepted: {', '.join(MODES)}.")
    require_float(model)
    model.quantize(mode)
    return model


def require_float(model: keras.Model, where: str = "The model") -> None:
    if weights_dtype(model) != "float32":
        raise ZooError(
            f"{where} is already quantized ({weights_dtype(model)}); quantization starts from "
            "a float32 model (an earlier version of the file is in git history, or retrain)."
        )


def quantize_saved_model(
    name: str,
    output_dir: str | Path | None = None,
    mode: str = "int8",
    config=None,
    float_metrics: dict | None = None,
    command: str | None = None,
) -> dict:
    """Quantizes `<output_dir>/model.keras` if the test metric holds; writes `metrics.json`.

    Measures the float32 model on the whole test split (unless `float_metrics`, its record from
    `zoo.evaluate`, is given), then the quantized model as reloaded from its file. The quantized
    file replaces the float one (atomically) only when `keeps_quantized`; otherwise it is
    deleted. `metrics.json` is the record of the shipped model with a `quantization` block:
    `shipped` ("int8" or "float32"), `mode`, and for "float32" and the mode the metric
    `value`, file `bytes` and evaluation `wall_seconds`. Returns that record.

    The work happens in a scratch copy of the folder; the model, metrics and figures then
    replace the folder's as one set (`zoo.shipping.replace_files`), so a kill at any moment
    leaves a model beside its own metrics.
    """
    entry, output_dir, config = evaluation_setup(name, output_dir, config)
    recover(output_dir)
    model_path = output_dir / "model.keras"
    if not model_path.exists():
        raise ZooError(f"No model to quantize at {model_path}. Run `make train-{name}` first.")
    model = keras.saving.load_model(model_path, compile=False)
    require_float(model, str(model_path))
    work = Path(tempfile.mkdtemp(prefix=".quantize-", dir=output_dir))
    try:
        for file_name, path in model_files(output_dir).items():
            shutil.copyfile(path, work / file_name)
        metrics = _quantize_folder(
            entry, model, work, mode, config, float_metrics, command or f"make quantize-{name}"
        )
        replace_files(output_dir, model_files(work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return metrics


def _quantize_folder(entry, model, output_dir, mode, config, float_metrics, command) -> dict:
    from zoo.train import save_model_atomically  # zoo.train imports this module.

    name = entry.name
    model_path = output_dir / "model.keras"
    if float_metrics is None:
        float_metrics = measure(name, model, config, output_dir, TEST_SPLIT)
    float_bytes = model_path.stat().st_size
    quantize_model(model, mode)

    partial = output_dir / f".model.{mode}.partial.keras"
    try:
        save_model_atomically(model, partial)
        # What is measured is what ships: the model as loaded back from its file.
        quantized = keras.saving.load_model(partial, compile=False)
        quantized_metrics = measure(name, quantized, config, output_dir, TEST_SPLIT)
        quantized_bytes = partial.stat().st_size
        metric = entry.family.metric
        points = entry.family.metric_points
        ships = keeps_quantized(
            float_metrics[metric],
            quantized_metrics[metric],
            points,
            entry.family.higher_is_better,
        )
        if ships:
            os.replace(partial, model_path)
    finally:
        partial.unlink(missing_ok=True)
    metrics = quantized_metrics if ships else float_metrics
    if not ships:  # The figures on disk are the quantized model's: redraw the float model's.
        entry.family.save_figures(float_metrics, output_dir)
    metrics[QUANTIZATION] = {
        "shipped": mode if ships else "float32",
        "mode": mode,
        "max_metric_drop": MAX_METRIC_DROP_POINTS / points,
        "float32": _summary(float_metrics, float_bytes),
        mode: _summary(quantized_metrics, quantized_bytes),
        "command": command,
    }
    return write_metrics(metrics, output_dir)


def _summary(metrics: dict, size: int) -> dict:
    return {
        "value": metrics["value"],
        "bytes": size,
        "wall_seconds": metrics["evaluation"]["wall_seconds"],
    }


def describe(metrics: dict) -> str:
    """One line saying which model ships and why."""
    block = metrics[QUANTIZATION]
    mode = block["mode"]
    family = get_entry(metrics["entry"]).family
    points = family.metric_points
    float_value, quantized_value = block["float32"]["value"], block[mode]["value"]
    drop = points_worse(float_value, quantized_value, points, family.higher_is_better)
    verdict = (
        f"ships {mode}"
        if block["shipped"] == mode
        else f"keeps float32: {mode} is more than {MAX_METRIC_DROP_POINTS:.1f} points worse"
    )
    return (
        f"{metrics['entry']}: {metrics['metric']} float32 {points * float_value:.2f} "
        f"({block['float32']['bytes']:,} bytes), {mode} {points * quantized_value:.2f} "
        f"({block[mode]['bytes']:,} bytes), worse by {drop:.2f} points; {verdict}."
    )
