"""Keeps README's tables of entries and of training times in step with each entry's
metrics.json.

`python -m zoo.readme` rewrites the tables between their markers; a test fails if one is stale.
"""

from __future__ import annotations

import json
import re

from zoo.registry import entry_names, get_entry
from zoo.runtime import ROOT

README = ROOT / "README.md"
BEGIN, END = "<!-- entries:begin -->", "<!-- entries:end -->"
TIMES_BEGIN, TIMES_END = "<!-- training-times:begin -->", "<!-- training-times:end -->"


def scored(metrics: dict) -> str:
    """What the test metric was measured over: examples, or a language model's words."""
    if "num_examples" in metrics:
        return f"{metrics['num_examples']:,} examples"
    return f"{metrics['num_words']:,} words"


# Test variants a family scores beside the split as distributed (the taggers' re-cased copies
# and names replaced by unseen ones), as the table names them.
VARIANT_NAMES = {
    "lowercased": "lower-cased",
    "uppercased": "upper-cased",
    "unseen_names": "unseen names",
}


def variants(metrics: dict, points: float) -> str:
    """The test split's variants in `metrics` as "; lower-cased 87.10, ...", or "" if none."""
    scored_variants = [
        f"{VARIANT_NAMES.get(variant, variant)} {points * scores[metrics['metric']]:.2f}"
        for variant, scores in (metrics.get("variants") or {}).items()
    ]
    return f"; {', '.join(scored_variants)}" if scored_variants else ""


def entries_table() -> str:
    rows = [
        "| entry | family | test metric (full official test split) | trained on | card |",
        "|---|---|---|---|---|",
    ]
    for name in entry_names():
        entry = get_entry(name)
        metrics_path = entry.directory / "metrics.json"
        measured, device = "not trained yet", ""
        if metrics_path.exists():
            metrics = json.loads(metrics_path.read_text())
            points = entry.family.metric_points  # 100 for a fraction, 1 for BLEU.
            unit = " %" if points == 100 else ""
            measured = (
                f"{metrics['metric']} **{points * metrics['value']:.2f}{unit}** "
                f"({metrics['split']}, {scored(metrics)})"
            )
            if metrics.get("weights", "float32") != "float32":  # Shipped quantized: say so.
                measured += f", {metrics['weights']} weights"
            measured += variants(metrics, points)
            training = metrics.get("training") or {}
            minutes = (training.get("training_wall_seconds") or 0) / 60
            device = f"{training.get('device', '?')}, {minutes:.0f} min"
        card = (
            f"[card](saved_models/{name}/card.md)" if (entry.directory / "card.md").exists() else ""
        )
        rows.append(f"| `{name}` | {entry.description} | {measured} | {device} | {card} |")
    return "\n".join(rows)


def duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def training_times_table() -> str:
    """Per entry, the shipped model's training time on a CPU or on a GPU, whichever it was
    trained on (its metrics.json), with the time of one epoch: what `SET="epochs=1"` costs."""
    rows = [
        "| entry | on the CPU | on a GPU | epochs run | an epoch |",
        "|---|---|---|---|---|",
    ]
    for name in entry_names():
        metrics_path = get_entry(name).directory / "metrics.json"
        if not metrics_path.exists():
            rows.append(f"| `{name}` | not trained yet | | | |")
            continue
        training = json.loads(metrics_path.read_text()).get("training") or {}
        seconds, epochs = training.get("training_wall_seconds"), training.get("epochs_run")
        if not seconds or not epochs:
            rows.append(f"| `{name}` | not recorded | not recorded | | |")
            continue
        device = training.get("device") or "?"
        backend = training.get("backend") or "?"
        where = device if f"({backend})" in device else f"{device}, {backend}"
        measured = f"{duration(seconds)} ({where})"
        on_cpu = device.startswith("CPU")
        cpu, gpu = (measured, "not measured") if on_cpu else ("not measured", measured)
        per_epoch = f"{duration(seconds / epochs)} ({'CPU' if on_cpu else 'GPU'})"
        rows.append(f"| `{name}` | {cpu} | {gpu} | {epochs} | {per_epoch} |")
    return "\n".join(rows)


def render(text: str) -> str:
    for begin, end, table in (
        (BEGIN, END, entries_table),
        (TIMES_BEGIN, TIMES_END, training_times_table),
    ):
        pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.DOTALL)
        text = pattern.sub(lambda _, b=begin, e=end, t=table: f"{b}\n{t()}\n{e}", text)
    return text


def main() -> None:
    README.write_text(render(README.read_text()))


if __name__ == "__main__":
    main()
