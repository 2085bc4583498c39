"""Keeps README's table of entries in step with each entry's metrics.json.

`python -m zoo.readme` rewrites the table between the markers; a test fails if it is stale.
"""

from __future__ import annotations

import json
import re

from zoo.registry import entry_names, get_entry
from zoo.runtime import ROOT

README = ROOT / "README.md"
BEGIN, END = "<!-- entries:begin -->", "<!-- entries:end -->"


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


def render(text: str) -> str:
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
    return pattern.sub(lambda _: f"{BEGIN}\n{entries_table()}\n{END}", text)


def main() -> None:
    README.write_text(render(README.read_text()))


if __name__ == "__main__":
    main()
