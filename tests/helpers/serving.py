"""Serving an exported SavedModel as stock TF Serving would: TensorFlow and tensorflow-text's
ops only, no keras, keras_hub or zoo; and the op types a SavedModel's graph holds."""

from __future__ import annotations

import importlib.util
import json
import site
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import subprocess_env

# Python packages a served SavedModel must not need. tensorflow_text's Python package imports
# keras; TF Serving links its C++ ops instead, and so does the serving process here
# (`tf.load_op_library`), from `tensorflow_text_op_libraries()`.
BLOCKED_PACKAGES = (
    "keras",
    "tf_keras",
    "keras_hub",
    "keras_nlp",
    "tensorflow_text",
    "zoo",
    "rnn_zoo",
)
FORBIDDEN_MODULES = ("keras", "keras_hub", "zoo")

# Reads {"saved_model", "op_libraries", "cases": {case: [latin-1 str of the input's bytes]}}
# on stdin; prints one JSON line: per case the outputs (or the error), the signature's inputs,
# the op types of every function it loaded, and the forbidden modules it found imported.
SERVE_SCRIPT = textwrap.dedent("""
    import json, sys
    import tensorflow as tf

    request = json.loads(sys.stdin.read())
    for library in request["op_libraries"]:
        tf.load_op_library(library)
    loaded = tf.saved_model.load(request["saved_model"])
    serving = loaded.signatures["serving_default"]
    inputs = serving.structured_input_signature[1]

    def plain(value):
        value = value.numpy()
        if value.dtype == object:
            return tf.nest.map_structure(
                lambda b: b.decode("utf-8", "replace"), value.tolist()
            )
        return value.tolist()

    results = {}
    for case, texts in request["cases"].items():
        if texts is None:  # Not strings: the signature must reject it.
            batch = tf.constant([1.5])
        else:
            batch = tf.constant([t.encode("latin-1") for t in texts], dtype=tf.string)
        try:
            outputs = serving(**{name: batch for name in inputs})
        except Exception as error:  # Reported to the test, which decides.
            lines = [line.strip() for line in str(error).splitlines() if line.strip()]
            # TF's first line is often "Graph execution error:", its cause the last ones.
            message = " ... ".join(dict.fromkeys(lines[:1] + lines[-2:]))
            results[case] = {"error": f"{type(error).__name__}: {message}"}
            continue
        results[case] = {
            "outputs": {name: plain(value) for name, value in outputs.items()},
            "dtypes": {name: value.dtype.name for name, value in outputs.items()},
        }

    op_types = set()
    for function in loaded.signatures.values():
        graph = function.graph.as_graph_def()
        op_types.update(node.op for node in graph.node)
        for library_function in graph.library.function:
            op_types.update(node.op for node in library_function.node_def)
    print(json.dumps({
        "results": results,
        "inputs": {k: [v.dtype.name, v.shape.as_list()] for k, v in inputs.items()},
        "op_types": sorted(op_types),
        "forbidden_modules": sorted(
            m for m in sys.modules if m.split(".")[0] in request["forbidden_modules"]
        ),
    }))
    """)


def tensorflow_only_site(directory: Path) -> Path:
    """A site-packages look-alike of this environment without `BLOCKED_PACKAGES`."""
    directory.mkdir(parents=True, exist_ok=True)
    for packages in site.getsitepackages():
        for item in Path(packages).iterdir():
            name = item.name.lower().replace("-", "_")
            if not name.startswith(BLOCKED_PACKAGES) and item.suffix != ".pth":
                target = directory / item.name
                if not target.exists():
                    target.symlink_to(item)
    return directory


def tensorflow_text_op_libraries() -> list[str]:
    """tensorflow-text's op kernels (what TF Serving links), found without importing it."""
    spec = importlib.util.find_spec("tensorflow_text")
    if spec is None or not spec.submodule_search_locations:
        return []
    root = Path(next(iter(spec.submodule_search_locations)))
    return sorted(str(path) for path in (root / "python").glob("*/_*.so"))


def as_latin1(text) -> str:
    """The UTF-8 bytes of `text` (str or bytes) as a latin-1 str, so JSON carries any bytes."""
    data = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    return data.decode("latin-1")


def start_serving(saved_model: Path, cases: dict, site_dir: Path, work_dir: Path):
    """Starts serving `cases` ({case: list of str/bytes, or None for a non-string batch}) from
    `saved_model` in a fresh `python -S` with TensorFlow only; `finish_serving` collects it.

    It runs in `work_dir` (not the repository, whose `zoo/` would be importable).
    """
    request = {
        "saved_model": str(saved_model),
        "op_libraries": tensorflow_text_op_libraries(),
        "forbidden_modules": list(FORBIDDEN_MODULES),
        "cases": {
            case: None if texts is None else [as_latin1(t) for t in texts]
            for case, texts in cases.items()
        },
    }
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / "request.json").write_text(json.dumps(request))
    env = {**subprocess_env(), "PYTHONPATH": str(site_dir), "CUDA_VISIBLE_DEVICES": ""}
    with open(work_dir / "request.json", "rb") as stdin:
        return subprocess.Popen(
            [sys.executable, "-S", "-c", SERVE_SCRIPT],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=work_dir,
            env=env,
        )


def finish_serving(process, timeout: int = 300) -> dict:
    """The serving process's JSON answer; fails the test with its stderr if it failed."""
    stdout, stderr = process.communicate(timeout=timeout)
    assert process.returncode == 0, stderr.decode("utf-8", "replace")[-3000:]
    return json.loads(stdout.decode("utf-8").strip().splitlines()[-1])


def saved_model_op_types(saved_model: Path) -> set[str]:
    """Op types of every node of a SavedModel's graphs and of its function library."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((Path(saved_model) / "saved_model.pb").read_bytes())
    op_types = set()
    for meta_graph in proto.meta_graphs:
        op_types.update(node.op for node in meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            op_types.update(node.op for node in function.node_def)
    return op_types


def xla_ops(op_types) -> list[str]:
    """The `Xla*` ops among `op_types`: TF Serving cannot compile them on GPUs."""
    return sorted(op for op in op_types if op.startswith("Xla"))
