"""Shipping a trained run: the model folder's files replaced as one set, never half.

Training writes into its run folder (`runs/<entry>/<timestamp>/`). Replacing the shipped model
in `saved_models/<entry>/` is an explicit act (`python -m zoo ship NAME`, `make ship-NAME`, or
`train --ship`) that moves the model, its metrics, its training record and its figures
together:

1. the new files are copied into `<folder>/.incoming.partial/` with a manifest;
2. that folder is renamed to `<folder>/.incoming/` (the commit point: one rename);
3. each file is moved into place (`os.replace`), then `.incoming/` is removed.

A kill before step 2 leaves the old set (the partial folder is deleted on the next access); a
kill during step 3 leaves `.incoming/`, which the next access (`recover`: `zoo.load`, eval,
quantize, export, ship) finishes first, so every reader sees either the old set or the new one.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

from zoo.errors import ZooError

INCOMING = ".incoming"
MANIFEST = "manifest.json"
# The files of a model folder that are one model's: they move together. Figures are added from
# the metrics record (`figures`).
MODEL_FILES = ("model.keras", "metrics.json", "training.json", "curves.png")


def recover(folder: Path) -> None:
    """Finishes a set replacement a kill interrupted after its commit point, or discards one
    interrupted before it. Cheap when there is nothing to do."""
    folder = Path(folder)
    shutil.rmtree(folder / f"{INCOMING}.partial", ignore_errors=True)
    incoming = folder / INCOMING
    if not incoming.is_dir():
        return
    manifest = incoming / MANIFEST
    names = json.loads(manifest.read_text()) if manifest.exists() else []
    for name in names:
        if (incoming / name).exists():
            os.replace(incoming / name, folder / name)
    shutil.rmtree(incoming, ignore_errors=True)


def replace_files(folder: Path, files: dict[str, Path]) -> None:
    """Replaces `folder/<name>` by `files[name]` for every name, all or none (see the module
    docstring). The sources are copied, not moved."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    recover(folder)
    for name in files:
        if Path(name).name != name or name in (MANIFEST, INCOMING):
            raise ValueError(f"Not a plain file name of a model folder: {name!r}.")
    staging = folder / f"{INCOMING}.partial"
    staging.mkdir()
    try:
        for name, source in files.items():
            shutil.copyfile(source, staging / name)
        (staging / MANIFEST).write_text(json.dumps(sorted(files)))
        _sync(staging)
        os.rename(staging, folder / INCOMING)  # The commit point.
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    recover(folder)


def _sync(folder: Path) -> None:
    """Flushes a folder's files to disk, so the commit point never names unwritten data."""
    for path in folder.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())


def model_files(folder: Path) -> dict[str, Path]:
    """The files of the model in `folder` that ship together (those that exist)."""
    folder = Path(folder)
    metrics_path = folder / "metrics.json"
    figures = (
        json.loads(metrics_path.read_text()).get("figures", []) if metrics_path.exists() else []
    )
    names = [*MODEL_FILES, *(Path(figure).name for figure in figures or [])]
    return {name: folder / name for name in dict.fromkeys(names) if (folder / name).exists()}


def latest_run(runs_dir: Path, name: str) -> Path:
    """The newest run folder of entry `name` that holds an evaluated model."""
    runs = sorted(
        (path for path in (Path(runs_dir) / name).glob("*/metrics.json")),
        key=lambda path: path.parent.name,
    )
    if not runs:
        raise ZooError(
            f"No evaluated run of '{name}' under {Path(runs_dir) / name}: run `make train-{name}` "
            "first, or name a run folder with --run."
        )
    return runs[-1].parent


def ship(run_dir: Path, target: Path, force: bool = False) -> dict:
    """Replaces the model in `target` by the evaluated model of `run_dir`, as one set.

    Refuses (ZooError) when the run has no `metrics.json`, when its metric is not finite, or
    when it is worse than the metric of the model `target` holds now (lower, or higher for a
    perplexity), unless `force`. Returns the shipped metrics record.
    """
    run_dir, target = Path(run_dir), Path(target)
    metrics_path = run_dir / "metrics.json"
    if not (run_dir / "model.keras").exists() or not metrics_path.exists():
        raise ZooError(
            f"{run_dir} holds no evaluated model (model.keras and metrics.json): only a run that "
            "finished its test evaluation ships."
        )
    metrics = json.loads(metrics_path.read_text())
    value = metrics.get("value")
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ZooError(f"{metrics_path} has no finite test metric ({value!r}); nothing shipped.")
    recover(target)
    shipped_path = target / "metrics.json"
    if shipped_path.exists() and not force:
        shipped = json.loads(shipped_path.read_text())
        from zoo.registry import entry_names, get_entry

        entry = metrics.get("entry")
        # Perplexity is better lower; accuracy, F1 and BLEU higher.
        higher = get_entry(entry).family.higher_is_better if entry in entry_names() else True
        before = shipped.get("value", math.nan)
        worse = value < before if higher else value > before
        if shipped.get("metric") == metrics.get("metric") and worse:
            raise ZooError(
                f"The run's test {metrics['metric']} {value:.4f} is worse than the shipped model's "
                f"{shipped['value']:.4f} ({target}); nothing replaced. Pass --force to ship it "
                "anyway."
            )
    replace_files(target, model_files(run_dir))
    return metrics
