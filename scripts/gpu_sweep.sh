#!/usr/bin/env bash
# Trains several sentiment recipes side by side on one GPU machine (see ../shared/docs/GPU.md),
# each a full `python -m zoo train sentiment --set ...` run (the same code path as
# `make train-sentiment SET="..."`), then picks the run with the best *validation* accuracy
# and copies its model, metrics and curves to $OUT. The test split plays no part in the choice.
#
# Usage on the GPU machine, after `. /root/gpu-env.sh`:
#   bash scripts/gpu_sweep.sh NAME1 "key=value ..." NAME2 "key=value ..." ...
# The runs start in their own sessions (setsid), so they outlive a device call that ends at its
# time limit; this script waits up to SWEEP_WAIT seconds, and calling it again with the same
# arguments waits on the runs still going (or resumes killed ones from /root/runs/NAME).
set -uo pipefail

export ZOO_DATA_DIR=${ZOO_DATA_DIR:-/root/tfds} ZOO_VERBOSE=2
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.15}
OUT=${OUT:-/root/sweep-out}
work=/root/sweep
mkdir -p "$work" "$OUT"

# Prepare the TFDS splits once, before the runs start reading them concurrently.
python3 -c "from pipelines.imdb import load_imdb; [load_imdb(s) for s in ('train', 'test', 'unsupervised')]"

names=()
while [ $# -ge 2 ]; do
  name=$1; sets=(); for pair in $2; do sets+=(--set "$pair"); done; shift 2
  names+=("$name")
  if [ -f "$work/$name/metrics.json" ] || pgrep -f -- "--output $work/$name " >/dev/null; then
    continue
  fi
  setsid python3 -m zoo train sentiment "${sets[@]}" --output "$work/$name" \
    --runs-dir "/root/runs/$name" >> "$work/$name.log" 2>&1 < /dev/null &
done
deadline=$((SECONDS + ${SWEEP_WAIT:-540}))
while [ $SECONDS -lt $deadline ] && pgrep -f -- "zoo train sentiment" >/dev/null; do sleep 5; done

python3 - "$work" "$OUT" "${names[@]}" <<'PY'
import json, shutil, sys
from pathlib import Path

work, out, names = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
summary = {}
for name in names:
    path = work / name / "metrics.json"
    if path.exists():
        metrics = json.loads(path.read_text())
        summary[name] = {
            "best_val_accuracy": metrics["training"]["best_val_accuracy"],
            "best_epoch": metrics["training"]["best_epoch"],
            "test_accuracy": metrics["value"],
            "training_wall_seconds": metrics["training"]["training_wall_seconds"],
            "config": metrics["config"],
        }
    else:
        summary[name] = {"unfinished": (work / f"{name}.log").read_text()[-3000:]}
done = {n: s for n, s in summary.items() if "best_val_accuracy" in s}
if done:
    chosen = max(done, key=lambda n: done[n]["best_val_accuracy"])
    summary["chosen_by_validation"] = chosen
    for file in ("model.keras", "metrics.json", "training.json", "curves.png"):
        shutil.copyfile(work / chosen / file, out / file)
(out / "sweep.json").write_text(json.dumps(summary, indent=2) + "\n")
print(json.dumps({n: {k: v for k, v in s.items() if k != "config"} for n, s in summary.items()
                  if isinstance(s, dict)}, indent=2))
PY
for name in "${names[@]}"; do tail -c 4000 "$work/$name.log"; done > "$OUT/logs.txt"
