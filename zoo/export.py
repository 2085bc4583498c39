"""Family-agnostic export to a SavedModel that stock TF Serving loads.

`saved_models/<entry>/serving/<version>/` gets signature `serving_default`: raw `tf.string`
inputs -> named outputs, with preprocessing (core TF ops, and tensorflow-text's for subword
entries) and decoding in the graph; and any `Family.extra_endpoints` (the translator's
`attention`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import keras

from zoo.errors import ZooError
from zoo.registry import SAVED_MODELS_DIR, entry_names, get_entry
from zoo.shipping import recover

MODELS_CONFIG = SAVED_MODELS_DIR / "models.config"


def next_version(serving_dir: Path) -> int:
    versions = [int(p.name) for p in serving_dir.glob("*") if p.is_dir() and p.name.isdigit()]
    return max(versions, default=0) + 1


def export_model(name: str, model_dir: str | Path | None = None) -> Path:
    """Exports `<model_dir>/model.keras` to `<model_dir>/serving/<next version>/`, atomically.

    The SavedModel is written to a hidden temporary folder and renamed into place, so TF
    Serving (which watches the folder) never sees a half-written version.
    """
    if keras.backend.backend() != "tensorflow":
        raise ZooError(
            "Export builds a TensorFlow graph: run it with KERAS_BACKEND=tensorflow "
            f"(the current backend is {keras.backend.backend()})."
        )
    import tensorflow as tf

    entry = get_entry(name)
    model_dir = Path(model_dir) if model_dir else entry.directory
    recover(model_dir)
    model_path = model_dir / "model.keras"
    if not model_path.exists():
        raise ZooError(f"No model to export at {model_path}. Run `make train-{name}` first.")
    model = keras.saving.load_model(model_path, compile=False)

    archive = keras.export.ExportArchive()
    archive.track(model)
    preprocessor = getattr(model, "preprocessor", None)
    for table in preprocessor.lookup_tables() if preprocessor is not None else []:
        archive.track(table)
    archive.add_endpoint(
        name="serving_default",
        fn=tf.function(entry.family.serving_function(model)),
        input_signature=entry.family.serving_signature(),
    )
    for endpoint, (function, signature) in entry.family.extra_endpoints(model).items():
        archive.add_endpoint(name=endpoint, fn=tf.function(function), input_signature=signature)
    serving_dir = model_dir / "serving"
    serving_dir.mkdir(parents=True, exist_ok=True)
    # A scratch folder of this process's own: concurrent exports never share one.
    partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=serving_dir))
    try:
        archive.write_out(str(partial), verbose=False)
        version = publish_version(partial, serving_dir)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    if model_dir.resolve() == entry.directory.resolve():
        write_models_config()
    return serving_dir / str(version)


def publish_version(partial: Path, serving_dir: Path) -> int:
    """Renames the written SavedModel `partial` to the next free version; an export that loses
    the race for a number (another process renamed first) takes the one after."""
    for _ in range(100):
        version = next_version(serving_dir)
        try:
            os.rename(partial, serving_dir / str(version))
            return version
        except OSError:
            if not (serving_dir / str(version)).exists():
                raise
    raise ZooError(f"Could not publish a version under {serving_dir}: too many concurrent exports.")


def write_models_config(path: Path = MODELS_CONFIG) -> Path:
    """A TF Serving `--model_config_file` listing every entry that has an exported version."""
    blocks = []
    for name in entry_names():
        serving_dir = get_entry(name).directory / "serving"
        if serving_dir.exists() and next_version(serving_dir) > 1:
            blocks.append(
                "  config {\n"
                f'    name: "{name}"\n'
                f'    base_path: "{serving_dir.resolve()}"\n'
                '    model_platform: "tensorflow"\n'
                "  }\n"
            )
    path.write_text("model_config_list {\n" + "".join(blocks) + "}\n")
    return path
