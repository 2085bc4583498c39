#!/usr/bin/env bash
# IMDB test accuracy of each recurrent cell at one size and budget: the cell ablation table of
# saved_models/sentiment/card.md. Every run is `python -m zoo train sentiment --set ...` (the
# code path of `make train-sentiment`) with only `cell` changed, evaluated on the full test
# split; results go to runs/ablation/<cell>/ and a summary to saved_models/sentiment/ablation.json.
#
# Usage: scripts/cell_ablation.sh ["key=value ..." budget overrides]   (BACKEND, PY as in make)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
budget=${1:-"units=64 num_layers=1 sequence_length=256 vocabulary_size=20000 word2vec_epochs=2 epochs=3 early_stopping_patience=0"}
cells=${CELLS:-"elman jordan lstm peephole_lstm gru"}
sets=(); for pair in $budget; do sets+=(--set "$pair"); done
for cell in $cells; do
  if [ -f "runs/ablation/$cell/metrics.json" ]; then continue; fi
  KERAS_BACKEND=${BACKEND:-jax} ZOO_VERBOSE=2 TF_CPP_MIN_LOG_LEVEL=2 \
    ZOO_DATA_MIRROR=${ZOO_DATA_MIRROR:-../shared/data} \
    "$PY" -m zoo train sentiment "${sets[@]}" --set "cell=$cell" \
    --output "runs/ablation/$cell" --runs-dir runs/ablation/logs
done
"$PY" - "$budget" $cells <<'PY'
import json, sys
from pathlib import Path

budget, cells = sys.argv[1], sys.argv[2:]
rows = {}
for cell in cells:
    metrics = json.loads(Path(f"runs/ablation/{cell}/metrics.json").read_text())
    rows[cell] = {
        "test_accuracy": metrics["value"],
        "num_examples": metrics["num_examples"],
        "best_val_accuracy": metrics["training"]["best_val_accuracy"],
        "best_epoch": metrics["training"]["best_epoch"],
        "training_wall_seconds": metrics["training"]["training_wall_seconds"],
        "device": metrics["training"]["device"],
        "backend": metrics["training"]["backend"],
        "commit": metrics["training"]["commit"],
    }
summary = {"budget": budget, "cells": rows}
Path("saved_models/sentiment/ablation.json").write_text(json.dumps(summary, indent=2) + "\n")
print("| cell | test accuracy (25,000) | best val. accuracy | training time |")
print("|---|---|---|---|")
for cell, row in rows.items():
    print(f"| {cell} | {100 * row['test_accuracy']:.2f} % | {100 * row['best_val_accuracy']:.2f} % "
          f"| {row['training_wall_seconds'] / 60:.1f} min |")
PY
