"""int8 weights (`model.quantize("int8")`): save / load, export, fine-tuning, the quantize step."""

import io
import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from tests.conftest import TINY_SENTIMENT, subprocess_env
from tests.test_sequence_tagger import SENTENCES, tiny_tagger
from tests.test_text_classifier import tiny_classifier
from zoo.cli import main
from zoo.errors import ZooError
from zoo.evaluate import evaluate_model
from zoo.export import export_model
from zoo.quantize import MAX_METRIC_DROP, keeps_quantized, quantize_model, quantize_saved_model
from zoo.registry import get_entry
from zoo.task import weights_dtype
from zoo.train import save_model_atomically, train

TEXTS = ["a great film .", "awful and boring", "loved it , a wonderful film"]
# name -> (tiny model builder, raw inputs)
FAMILIES = {"sentiment": (tiny_classifier, TEXTS), "slots": (tiny_tagger, SENTENCES)}


def quantized(name):
    build, _ = FAMILIES[name]
    model = build()
    model.quantize("int8")
    return model


def assert_same_outputs(actual, expected):
    for key, value in (expected.items() if isinstance(expected, dict) else [(None, expected)]):
        np.testing.assert_array_equal(actual[key] if key else actual, value)


def as_json(config: dict) -> str:
    """A config as its .keras file holds it (tuples become lists)."""
    return json.dumps(config, sort_keys=True)


def quantized_layers(model) -> dict:
    return {
        layer.path: layer.quantization_mode
        for layer in model._flatten_layers(include_self=False)
        if layer.quantization_mode
    }


@pytest.mark.parametrize("name", FAMILIES)
def test_quantized_model_round_trips_through_a_keras_file(name, tmp_path):
    model = quantized(name)
    layers = quantized_layers(model)
    # The word and character embeddings and the dense output layers; RNN and CRF stay float.
    assert "backbone/token_embedding" in layers and set(layers.values()) == {"int8"}
    assert not any(path.startswith("backbone/encoder") or path == "crf" for path in layers)
    assert model.get_config()["dtype"]["class_name"] == "DTypePolicyMap"
    path = tmp_path / "model.keras"
    model.save(path)
    inputs = FAMILIES[name][1]
    expected = model.predict(inputs, verbose=0)
    for loaded in (keras.saving.load_model(path), zoo.load(name, path)):
        assert quantized_layers(loaded) == layers and weights_dtype(loaded) == "int8"
        dtypes = {variable.path: variable.dtype for variable in loaded.weights}
        assert dtypes["backbone/token_embedding/embeddings"] == "int8"
        assert as_json(loaded.get_config()) == as_json(model.get_config())
        assert_same_outputs(loaded.predict(inputs, verbose=0), expected)


def test_a_float_model_config_has_no_dtype_map():
    assert "dtype" not in tiny_classifier().get_config()
    assert weights_dtype(tiny_classifier()) == "float32"


@pytest.mark.parametrize("name", FAMILIES)
def test_save_model_atomically_keeps_the_quantization(name, tmp_path):
    model = quantized(name)
    save_model_atomically(model, tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert quantized_layers(loaded) == quantized_layers(model)
    inputs = FAMILIES[name][1]
    assert_same_outputs(loaded.predict(inputs, verbose=0), model.predict(inputs, verbose=0))


def test_int8_file_is_smaller(tmp_path):
    model = tiny_classifier(vocabulary_size=2000, embedding_dim=64)
    model.save(tmp_path / "float.keras")
    quantize_model(model)
    model.save(tmp_path / "int8.keras")
    assert (tmp_path / "int8.keras").stat().st_size < 0.4 * (
        tmp_path / "float.keras"
    ).stat().st_size
    with pytest.raises(ZooError, match="already quantized"):
        quantize_model(model)


# Loads the SavedModel with TensorFlow and tensorflow-text only (as TF Serving links them) and
# lists the op types of its serving graph and of every function in the graph's library.
SERVE = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    import tensorflow_text  # noqa: F401
    serving = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
    graph = serving.graph.as_graph_def()
    ops = {node.op for node in graph.node}
    for function in graph.library.function:
        ops.update(node.op for node in function.node_def)
    outputs = serving(text=tf.constant(json.loads(sys.stdin.read())))
    print(json.dumps({
        "ops": sorted(ops),
        "outputs": {k: v.numpy().tolist() for k, v in outputs.items() if v.dtype != tf.string},
    }))
    """)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="export needs TensorFlow")
@pytest.mark.parametrize("name", FAMILIES)
def test_export_of_a_quantized_model_has_no_xla_ops_and_serves_what_predict_gives(name, tmp_path):
    model = quantized(name)
    model.save(tmp_path / "model.keras")
    version_dir = export_model(name, model_dir=tmp_path)
    inputs = FAMILIES[name][1]
    result = subprocess.run(  # noqa: PLW1510 - the return code is asserted
        [sys.executable, "-c", SERVE, str(version_dir)],
        input=json.dumps(inputs),
        capture_output=True,
        text=True,
        timeout=300,
        env=subprocess_env(),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    assert "BatchMatMulV3" in served["ops"]  # The int8 x int8 -> int32 matmul of the Dense.
    assert [op for op in served["ops"] if op.startswith("Xla")] == []
    loaded = zoo.load(name, tmp_path / "model.keras")
    expected = get_entry(name).family.predict_records(loaded, inputs)
    for key, rows in served["outputs"].items():
        for row, record in zip(rows, expected):
            if isinstance(row, list):  # Per-token outputs, padded past the sentence's tokens.
                row = row[: record["num_tokens"]]
            np.testing.assert_allclose(row, record[key], atol=1e-5, err_msg=key)


@pytest.mark.parametrize("name", FAMILIES)
def test_a_loaded_quantized_model_fine_tunes_its_float_weights(name, tmp_path):
    quantized(name).save(tmp_path / "model.keras")
    model = zoo.load(name, tmp_path / "model.keras")
    inputs = FAMILIES[name][1]
    if name == "sentiment":
        model.compile(
            optimizer=keras.optimizers.Adam(0.01),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        x, y = model.preprocessor(tf.constant(inputs)).numpy(), np.array([1, 0, 1])
    else:
        model.compile(optimizer=keras.optimizers.Adam(0.01))
        x = {k: v.numpy() for k, v in model.preprocessor(tf.constant(inputs)).items()}
        y = {"tags": np.ones(x["token_ids"].shape, "int32"), "intent": np.array([0, 1, 0])}
    before = {v.path: keras.ops.convert_to_numpy(v).copy() for v in model.weights}
    history = model.fit(x, y, epochs=1, batch_size=3, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    for variable in model.weights:
        changed = not np.array_equal(keras.ops.convert_to_numpy(variable), before[variable.path])
        # Keras's int8 values and scales are not trainable; every float weight is.
        assert changed == variable.trainable, variable.path
    assert any(v.dtype == "int8" and not v.trainable for v in model.weights)


def test_quantized_model_ships_only_within_0_2_points():
    assert MAX_METRIC_DROP == 0.002
    assert keeps_quantized(0.9146, 0.9146) and keeps_quantized(0.9146, 0.9150)
    assert keeps_quantized(0.9146, 0.9127) and keeps_quantized(0.9146, 0.9126)  # 0.20 points
    assert not keeps_quantized(0.9146, 0.9125) and not keeps_quantized(0.8835, 0.8700)
    # A metric in points already (BLEU): 0.2 BLEU.
    assert keeps_quantized(34.10, 33.90, points=1.0) and not keeps_quantized(34.1, 33.8, 1.0)


@pytest.mark.parametrize("drop, shipped", [(0.001, "int8"), (0.003, "float32")])
def test_quantize_command_keeps_float_when_the_metric_drops_more_than_0_2_points(
    drop, shipped, tmp_path, monkeypatch, capsys
):
    """`python -m zoo quantize` on a saved float model, with the family's evaluation faked."""
    family = get_entry("sentiment").family

    def evaluate(model, config, split):
        assert split == "test"
        value = 0.9 - (drop if weights_dtype(model) == "int8" else 0.0)
        return {"accuracy": value, "num_examples": 3}

    monkeypatch.setattr(family, "evaluate", evaluate)
    model = tiny_classifier(vocabulary_size=500, embedding_dim=32)
    model.save(tmp_path / "model.keras")
    float_bytes = (tmp_path / "model.keras").stat().st_size
    assert main(["quantize", "sentiment", "--output", str(tmp_path)]) == 0
    assert ("keeps float32" in capsys.readouterr().out) == (shipped == "float32")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    block = metrics["quantization"]
    assert block["shipped"] == shipped and metrics["weights"] == shipped
    assert block["float32"]["value"] == 0.9 and block["float32"]["bytes"] == float_bytes
    assert block["int8"]["value"] == pytest.approx(0.9 - drop)
    assert block["int8"]["bytes"] < float_bytes
    assert metrics["value"] == pytest.approx(0.9 if shipped == "float32" else 0.9 - drop)
    assert weights_dtype(zoo.load("sentiment", tmp_path / "model.keras")) == shipped
    size = (tmp_path / "model.keras").stat().st_size
    assert size == block[shipped]["bytes"]
    assert not list(tmp_path.glob(".*partial*"))
    if shipped == "int8":  # A second run has no float model to start from.
        with pytest.raises(ZooError, match="already quantized"):
            quantize_saved_model("sentiment", tmp_path)


def test_training_with_quantize_int8_measures_both_and_ships_one(imdb_fixture, monkeypatch):
    monkeypatch.setenv("ZOO_VERBOSE", "0")
    output = imdb_fixture / "model"
    overrides = {**TINY_SENTIMENT, "quantize": "int8"}
    metrics = train("sentiment", overrides, output_dir=output, runs_dir=imdb_fixture / "runs")
    block = metrics["quantization"]
    assert block["float32"]["bytes"] > 0 and block["int8"]["bytes"] > 0  # Tiny: no smaller.
    assert block["shipped"] == (
        "int8" if keeps_quantized(block["float32"]["value"], block["int8"]["value"]) else "float32"
    )
    assert metrics["value"] == block[block["shipped"]]["value"] and metrics["num_examples"] == 24
    assert metrics["config"]["quantize"] == "int8"
    run_dir = metrics.pop("run_dir")  # Where it trained; the record shipped with it.
    assert json.loads((output / "metrics.json").read_text()) == metrics
    assert json.loads((Path(run_dir) / "metrics.json").read_text()) == metrics
    assert (output / "model.keras").stat().st_size == block[block["shipped"]]["bytes"]
    assert weights_dtype(zoo.load("sentiment", output / "model.keras")) == block["shipped"]
    # Evaluating the shipped file again keeps the comparison, which is still of this file.
    assert evaluate_model("sentiment", output_dir=output)["quantization"] == block


def stored_weights(path) -> dict:
    """{dataset path: (dtype name, bytes)} of a .keras file's weights."""
    stored = {}
    with zipfile.ZipFile(path) as archive, archive.open("model.weights.h5") as weights:
        data = io.BytesIO(weights.read())
    with h5py.File(data) as h5:
        h5.visititems(
            lambda name, item: (
                stored.update({name: (item.dtype.name, item.nbytes)})
                if isinstance(item, h5py.Dataset)
                else None
            )
        )
    return stored


# A Keras cell and a zoo cell: the storage is chosen by variable name, whatever the cell.
@pytest.mark.parametrize("cell", ["gru", "peephole_lstm"])
def test_recurrent_matrices_are_stored_as_int8_and_load_as_computed(cell, tmp_path):
    model = zoo.build(
        "sentiment", vocabulary_size=40, embedding_dim=8, units=16, num_layers=2, cell=cell
    )
    token_ids = np.array([[2, 3, 4, 0], [5, 6, 7, 8]], dtype="int32")
    float_outputs = model.predict(token_ids, verbose=0)
    model.save(tmp_path / "float.keras")
    model.quantize("int8")
    stack = model.backbone.encoder
    assert stack.weights_storage == "int8" and weights_dtype(model) == "int8"
    quantized_outputs = model.predict(token_ids, verbose=0)
    np.testing.assert_allclose(quantized_outputs, float_outputs, atol=2e-3)
    for matrix in stack._matrices():  # Rounded in place: what the file will hold.
        values = keras.ops.convert_to_numpy(matrix)
        steps = values / (np.max(np.abs(values), axis=0) / 127.0)
        np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)
    model.save(tmp_path / "int8.keras")
    loaded = keras.saving.load_model(tmp_path / "int8.keras")
    assert loaded.backbone.encoder.weights_storage == "int8"
    np.testing.assert_array_equal(loaded.predict(token_ids, verbose=0), quantized_outputs)
    stored = stored_weights(tmp_path / "int8.keras")
    matrices = [name for name in stored if name.split("/")[-1].startswith("matrix_")]
    assert matrices and {stored[name][0] for name in matrices} == {"int8", "float32"}  # scales
    # No inner layer stores a float copy: recurrent float32 is biases (and peepholes) only.
    before = stored_weights(tmp_path / "float.keras")
    float_bytes = sum(size for name, (_, size) in before.items() if "encoder" in name)
    int8_bytes = sum(size for name, (_, size) in stored.items() if "encoder" in name)
    assert int8_bytes < 0.4 * float_bytes, (int8_bytes, float_bytes)  # 1/4, + scales, biases
    # A loaded model fine-tunes (its float values) and saves again.
    loaded.compile(
        optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    loaded.fit(token_ids, np.array([0, 1]), epochs=1, verbose=0)
    loaded.save(tmp_path / "tuned.keras")
    assert (
        keras.saving.load_model(tmp_path / "tuned.keras").backbone.encoder.weights_storage == "int8"
    )
