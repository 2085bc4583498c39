"""train -> eval -> export -> serve, on a tiny IMDB archive built in the test."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import zoo
from tests.conftest import REPO, TINY_SENTIMENT, subprocess_env, write_imdb_archive
from tests.helpers.serving import tensorflow_only_site
from zoo.errors import ZooError
from zoo.evaluate import evaluate_model
from zoo.export import export_model
from zoo.train import train

SERVE = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    serving = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
    texts = json.loads(sys.stdin.read())
    outputs = serving(text=tf.constant([t.encode("latin-1") for t in texts]))
    forbidden = [m for m in ("keras", "zoo", "tensorflow_text") if m in sys.modules]
    print(json.dumps({
        "label": [label.decode() for label in outputs["label"].numpy()],
        "probability": outputs["probability"].numpy().tolist(),
        "dtype": outputs["probability"].dtype.name,
        "inputs": {k: (v.dtype.name, v.shape.as_list())
                   for k, v in serving.structured_input_signature[1].items()},
        "forbidden_modules": forbidden,
    }))
    try:
        serving(text=tf.constant([1.5]))
    except (TypeError, ValueError, tf.errors.InvalidArgumentError) as error:
        print("REJECTED", type(error).__name__, str(error).splitlines()[0])
    """)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("sentiment")
    write_imdb_archive(root / "mirror" / "imdb")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ZOO_DATA_MIRROR", str(root / "mirror"))
        patch.setenv("ZOO_DATA_DIR", str(root / "tfds"))
        patch.setenv("ZOO_VERBOSE", "0")
        overrides = {**TINY_SENTIMENT, "embedding_init": "word2vec", "epochs": 2}
        metrics = train("sentiment", overrides, output_dir=root / "model", runs_dir=root / "runs")
        yield root, metrics


def test_training_writes_model_metrics_config_logs_and_curves(trained):
    root, metrics = trained
    assert metrics["metric"] == "accuracy" and metrics["split"] == "test"
    assert metrics["num_examples"] == 24  # the whole fixture test split
    assert 0.0 <= metrics["value"] <= 1.0
    for name in ("model.keras", "metrics.json", "training.json", "curves.png"):
        assert (root / "model" / name).exists(), name
    (run_dir,) = (root / "runs" / "sentiment").glob("2*")
    config = json.loads((run_dir / "config.json").read_text())
    assert config["units"] == TINY_SENTIMENT["units"] and config["embedding_init"] == "word2vec"
    assert list((run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    assert (run_dir / "curves.png").stat().st_size > 1000
    # The resume state is removed after a clean finish (the lock file stays, unlocked).
    assert not [path for path in (root / "runs" / "sentiment").glob("backup-*") if path.is_dir()]


def test_evaluation_is_reproducible_on_the_saved_model(trained, monkeypatch):
    root, metrics = trained
    monkeypatch.setenv("ZOO_DATA_MIRROR", str(root / "mirror"))
    monkeypatch.setenv("ZOO_DATA_DIR", str(root / "tfds"))
    again = evaluate_model("sentiment", output_dir=root / "model")
    assert again["value"] == metrics["value"]
    assert json.loads((root / "model" / "metrics.json").read_text())["value"] == metrics["value"]


def test_exported_saved_model_serves_with_tensorflow_alone(trained, tmp_path):
    root, _ = trained
    version_dir = export_model("sentiment", model_dir=root / "model")
    assert version_dir.name == "1" and not list(version_dir.parent.glob(".partial*"))
    assert export_model("sentiment", model_dir=root / "model").name == "2"
    texts = ["A wonderful film!", "", "awful " * 200_000, "\xff\xfe bytes that are not UTF-8"]
    result = subprocess.run(  # noqa: PLW1510 - the return code is asserted
        [sys.executable, "-S", "-c", SERVE, str(version_dir)],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        timeout=300,
        env={**subprocess_env(), "PYTHONPATH": str(tensorflow_only_site(tmp_path / "site"))},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    served = json.loads(lines[0])
    assert served["forbidden_modules"] == []
    assert served["inputs"] == {"text": ["string", [None]]}
    assert served["dtype"] == "float32"
    assert lines[1].startswith("REJECTED") and "string" in lines[1]

    model = zoo.load("sentiment", root / "model" / "model.keras")
    logits = model.predict([t.encode("latin-1") for t in texts], verbose=0)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    empty = np.array([text == "" for text in texts])  # The empty answer: "" and 0.
    expected = np.where(empty, 0.0, probabilities.max(axis=-1))
    np.testing.assert_allclose(served["probability"], expected, atol=1e-5)
    labels = [model.class_names[i] for i in probabilities.argmax(axis=-1)]
    assert served["label"] == ["" if e else label for e, label in zip(empty, labels)]


def test_export_without_a_model_is_a_clear_error(tmp_path):
    with pytest.raises(ZooError, match="No model to export.*make train-sentiment"):
        export_model("sentiment", model_dir=tmp_path)


def run_cli(*args, stdin=None):
    return subprocess.run(  # noqa: PLW1510 - callers assert the return code
        [sys.executable, "-m", "zoo", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=subprocess_env(),
        cwd=REPO,
        timeout=300,
    )


def test_cli_predict_reads_arguments_and_stdin(trained):
    root, _ = trained
    model = str(root / "model" / "model.keras")
    result = run_cli("predict", "sentiment", "great film", "", "--model", model)
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 2 and records[0]["label"] in ("negative", "positive")
    assert records[1] == {"label": "", "probability": 0.0, "num_tokens": 0, "truncated": False}
    result = run_cli("predict", "sentiment", "--model", model, stdin="one\ntwo\nthree\n")
    assert len(result.stdout.splitlines()) == 3


@pytest.mark.parametrize(
    "args, message",
    [
        (("train", "sentimental"), "Unknown zoo entry 'sentimental'. Known entries: "),
        (("eval", "sentiment", "--set", "colour=red"), "Unknown config key 'colour'"),
        (("train", "sentiment", "--set", "units"), "--set expects key=value"),
        (("predict", "nope", "x"), "Unknown zoo entry 'nope'"),
        (("predict", "sentiment", "--model", "/nonexistent.keras", "x"), "No pretrained model"),
    ],
)
def test_cli_errors_are_one_clear_line(args, message):
    result = run_cli(*args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
