"""The card's measurements for a trained language model.

`python -m zoo.models.language_model.report [MODEL_DIR]` (`make report-lm`) writes
`samples.json` to the model folder: for fixed prompts (and prompts as people type them: capitals,
digits, punctuation, unseen names, an empty one), the 5 most likely next words and
continuations from each sampler with fixed seeds, and the model's parameter count and stored
size. Perplexities are in `metrics.json` (`make eval-lm`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import zoo
from zoo.registry import get_entry
from zoo.runtime import run_facts

PROMPTS = [
    "never too late to",
    "the company said",
    "",
    "Shares of IBM rose 5% to $120.50 on Monday, analysts said",
    "THE FEDERAL RESERVE",
    "mr. okonkwo of wuppertal told reporters that",
]
# (sampler, settings): every sampler the entry serves, with fixed seeds.
SAMPLINGS = [
    ("greedy", {}),
    ("top_k", {"top_k": 40, "temperature": 0.8}),
    ("top_p", {"top_p": 0.9, "temperature": 0.8}),
    ("random", {"temperature": 1.0}),
]
SEEDS = (1, 2)


def report(model_dir: Path) -> dict:
    entry = get_entry("lm")
    model = zoo.load("lm", model_dir / "model.keras")
    family = entry.family
    samples = []
    for sampler, settings in SAMPLINGS:
        for key, value in {"sampler": sampler, **settings}.items():
            setattr(model, key, value)
        for seed in SEEDS if sampler != "greedy" else (None,):
            rows = family.predict_records(model, PROMPTS, seed=seed)
            for prompt, row in zip(PROMPTS, rows):
                samples.append(
                    {
                        "prompt": prompt,
                        "sampler": sampler,
                        **settings,
                        "seed": seed,
                        "continuation": row["continuation"],
                    }
                )
    next_words = [
        {
            "prompt": prompt,
            "next_words": dict(zip(row["next_words"], row["next_word_probabilities"])),
        }
        for prompt, row in zip(PROMPTS, family.predict_records(model, PROMPTS))
    ]
    result = {
        "num_parameters": model.count_params(),
        "stored_bytes": (model_dir / "model.keras").stat().st_size,
        "next_words": next_words,
        "samples": samples,
        **run_facts(),
    }
    (model_dir / "samples.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", nargs="?", default=str(get_entry("lm").directory))
    args = parser.parse_args()
    result = report(Path(args.model_dir))
    print(json.dumps(result["next_words"], indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
