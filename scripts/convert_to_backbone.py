"""Re-serialises the committed models of a commit from before the recurrent backbone (issue 15)
into today's layout, with the same weights, bit for bit.

Before, a model held `token_embedding` and `encoder` (the RecurrentStack) itself and listed the
recurrent hyperparameters in its own config; now both live in a `RecurrentBackbone` (weights
under `backbone/`). This script:

1. checks out OLD_COMMIT in a temporary git worktree and, with that commit's code, loads each
   entry's `saved_models/<entry>/model.keras` and writes its config, every weight by variable
   path, and its predictions on a few sentences;
2. with this checkout's code, builds the model from the converted config (quantizing the same
   layers), assigns each weight from its old path, checks that the predictions are the same (exactly for
   decoded tags, to float32 rounding for scores),
   and replaces `saved_models/<entry>/model.keras`.

    KERAS_BACKEND=jax python scripts/convert_to_backbone.py 7afd26c
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENTRIES = ("sentiment", "slots", "ner")
SENTENCES = [
    "A wonderful, moving film.",
    "EU rejects German call to boycott British lamb .",
    "show me flights from boston to denver tomorrow",
    "Peter Blackburn",
    "",
    "awful " * 50,
]
# The old heads' keys that the backbone holds now: its own, and its RecurrentStack's.
BACKBONE_KEYS = ("vocabulary_size", "embedding_dim", "embedding_dropout")
MOVED_LAYERS = ("token_embedding", "encoder")

EXTRACT = """
import json, os, sys
import numpy as np
import keras
import zoo

assert zoo.__file__.startswith(os.getcwd()), zoo.__file__  # The old commit's code.
print("extracting with", zoo.__file__)
out = sys.argv[1]
sentences = json.loads(sys.argv[2])
for name in sys.argv[3:]:
    model = zoo.load(name)
    weights = {v.path: keras.ops.convert_to_numpy(v) for v in model.weights}
    assert len(weights) == len(model.weights)
    np.savez(f"{out}/{name}.weights.npz", **weights)
    json.dump(model.get_config(), open(f"{out}/{name}.config.json", "w"))
    outputs = model.predict(sentences, verbose=0)
    np.savez(f"{out}/{name}.outputs.npz", **(outputs if isinstance(outputs, dict) else {"logits": outputs}))
"""


def extract(old_commit: str, folder: Path) -> None:
    worktree = folder / "old"
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(worktree), old_commit], cwd=ROOT, check=True
    )
    try:
        subprocess.run(
            [sys.executable, "-c", EXTRACT, str(folder), json.dumps(SENTENCES), *ENTRIES],
            cwd=worktree,
            env={**os.environ, "PYTHONPATH": str(worktree)},
            check=True,
        )
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, check=True
        )


def new_config(old: dict) -> dict:
    """The head's config with the backbone's keys moved into a RecurrentBackbone's."""
    import keras

    from zoo.layers import RecurrentBackbone
    from zoo.layers.recurrent_backbone import STACK_ARGUMENTS

    config = dict(old)
    keys = (*BACKBONE_KEYS, *STACK_ARGUMENTS)
    arguments = {key: config.pop(key) for key in keys if key in config}
    classifier = "pooling" in config
    if classifier:
        arguments.update(
            spatial_embedding_dropout=True, return_sequences=config["pooling"] != "last"
        )
    config["backbone"] = keras.saving.serialize_keras_object(RecurrentBackbone(**arguments))
    if isinstance(config.get("dtype"), dict):  # Quantized layers' policies, by layer path.
        policies = config["dtype"]["config"]["policy_map"]
        config["dtype"]["config"]["policy_map"] = {moved(path): p for path, p in policies.items()}
    if config.get("quantization_config"):
        config["quantization_config"] = {
            moved(path): value for path, value in config["quantization_config"].items()
        }
    return config


def moved(path: str) -> str:
    return f"backbone/{path}" if path.split("/")[0] in MOVED_LAYERS else path


def convert(name: str, folder: Path) -> None:
    import numpy as np

    import zoo
    from zoo.registry import get_entry
    from zoo.train import save_model_atomically

    old_config = json.loads((folder / f"{name}.config.json").read_text())
    old_weights = np.load(folder / f"{name}.weights.npz")
    model_class = get_entry(name).family.model_class
    model = model_class.from_config(new_config(old_config))
    for variable in model.weights:
        old_path = variable.path.removeprefix("backbone/")
        variable.assign(old_weights[old_path])
    assert len(model.weights) == len(old_weights.files), (name, len(model.weights))
    outputs = model.predict(SENTENCES, verbose=0)
    outputs = outputs if isinstance(outputs, dict) else {"logits": outputs}
    expected = np.load(folder / f"{name}.outputs.npz")
    largest = same_outputs(outputs, expected)
    path = get_entry(name).directory / "model.keras"
    save_model_atomically(model, path)
    loaded = zoo.load(name)
    again = loaded.predict(SENTENCES, verbose=0)
    again = again if isinstance(again, dict) else {"logits": again}
    same_outputs(again, expected)
    print(
        f"{name}: converted {len(model.weights)} weights; predictions within {largest:.1e} "
        f"of the old code's (float32 rounding); {path.stat().st_size:,} bytes"
    )


def same_outputs(outputs: dict, expected) -> float:
    """Asserts the outputs equal the old code's to float32 rounding; the largest difference."""
    import numpy as np

    largest = 0.0
    for key in expected.files:
        actual = np.asarray(outputs[key])
        if actual.dtype.kind in "iub":  # Decoded tags: exactly the same.
            np.testing.assert_array_equal(actual, expected[key], err_msg=key)
            continue
        np.testing.assert_allclose(actual, expected[key], rtol=0, atol=1e-4, err_msg=key)
        largest = max(largest, float(np.max(np.abs(actual - expected[key]), initial=0.0)))
    return largest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old_commit")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        extract(args.old_commit, Path(folder))
        for name in ENTRIES:
            convert(name, Path(folder))


if __name__ == "__main__":
    main()
