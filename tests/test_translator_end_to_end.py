"""The translation entry on a tiny German-English mirror built in the test: train -> eval ->
export -> serve with TensorFlow alone; beam search against greedy decoding; the same
translations under JAX and TensorFlow; the attention signature; the CLI."""

import gzip
import itertools
import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from tests.conftest import REPO, run_on_jax, subprocess_env
from tests.helpers.serving import finish_serving, start_serving, tensorflow_only_site
from zoo.evaluate import evaluate_model
from zoo.export import export_model
from zoo.models.translator.translator_preprocessor import TranslatorPreprocessor
from zoo.registry import get_entry
from zoo.train import train

SUBJECTS = [("Ein Mann", "A man"), ("Eine Frau", "A woman"), ("Ein Kind", "A child")]
VERBS = [("läuft", "runs"), ("schläft", "sleeps"), ("singt", "sings"), ("lacht", "laughs")]
PLACES = [("", ""), (" im Park", " in the park"), (" am Strand", " on the beach")]
PAIRS = [
    (f"{de_subject} {de_verb}{de_place}.", f"{en_subject} {en_verb}{en_place}.")
    for (de_subject, en_subject), (de_verb, en_verb), (de_place, en_place) in itertools.product(
        SUBJECTS, VERBS, PLACES
    )
]  # 36 pairs
SPLITS = {"train": PAIRS[:28], "val": PAIRS[28:32], "test_2016_flickr": PAIRS[32:]}
TINY_TRANSLATOR = {
    "vocabulary_size": 44,
    "embedding_dim": 8,
    "units": 8,
    "decoder_units": 8,
    "epochs": 2,
    "batch_size": 4,
    "num_beams": 3,
    "max_output_length": 12,
    "decode_batch_size": 3,
    "ema_momentum": 0.0,
}
TEXTS = ["Ein Mann läuft.", "Eine Frau singt am Strand.", "Ein Kind lacht im Park."]


def write_multi30k(directory: Path) -> None:
    folder = directory / "multi30k"
    folder.mkdir(parents=True)
    for stem, pairs in SPLITS.items():
        for index, language in enumerate(("de", "en")):
            with gzip.open(folder / f"{stem}.{language}.gz", "wb") as file:
                file.write("".join(pair[index] + "\n" for pair in pairs).encode("utf-8"))


def use_tiny_mirror(patch, root: Path) -> None:
    patch.setenv("ZOO_DATA_MIRROR", str(root / "mirror"))
    patch.setenv("ZOO_DATA_DIR", str(root / "tfds"))
    # The tiny mirror's split sizes are not Multi30k's.
    patch.setattr("pipelines.multi30k.SPLIT_SIZES", {"train": 28, "validation": 4, "test": 4})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("nmt")
    write_multi30k(root / "mirror")
    with pytest.MonkeyPatch.context() as patch:
        use_tiny_mirror(patch, root)
        patch.setenv("ZOO_VERBOSE", "0")
        metrics = train("nmt", TINY_TRANSLATOR, output_dir=root / "model", runs_dir=root / "runs")
        yield root, metrics


def test_training_evaluates_bleu_and_chrf_on_the_whole_test_split(trained, monkeypatch):
    root, metrics = trained
    assert metrics["metric"] == "bleu" and metrics["split"] == "test"
    assert metrics["num_examples"] == 4 and metrics["num_beams"] == 3
    for key in ("bleu", "bleu_lowercase", "chrf"):
        assert 0.0 <= metrics[key] <= 100.0, key
    assert "tok:13a" in metrics["bleu_signature"] and "case:mixed" in metrics["bleu_signature"]
    assert [example["source"] for example in metrics["examples"]] == [p[0] for p in PAIRS[32:]]
    # The recipe lower-cases the source in the graph: any casing of the test split reads alike.
    casing = metrics["source_casing_bleu"]
    assert casing == {
        "as_distributed": metrics["bleu"],
        "lower": casing["lower"],
        "upper": casing["upper"],
    }
    assert casing["lower"] == casing["upper"] == metrics["bleu"]
    training = json.loads((root / "model" / "training.json").read_text())
    assert len(training["history"]["val_bleu"]) == 2  # Scored after every epoch.
    monkeypatch.setenv("ZOO_DATA_MIRROR", str(root / "mirror"))
    monkeypatch.setenv("ZOO_DATA_DIR", str(root / "tfds"))
    monkeypatch.setattr("pipelines.multi30k.SPLIT_SIZES", {"train": 28, "validation": 4, "test": 4})
    again = evaluate_model("nmt", output_dir=root / "model")
    assert again["bleu"] == metrics["bleu"] and again["chrf"] == metrics["chrf"]


@pytest.fixture(scope="module")
def model(trained):
    return zoo.load("nmt", trained[0] / "model" / "model.keras")


def source_ids(model, texts):
    return model.preprocessor(tf.constant(texts))["source_ids"].numpy()


def test_any_casing_of_the_source_reads_the_same(model):
    assert model.preprocessor.lowercase_source
    for recase in (str.lower, str.upper):
        np.testing.assert_array_equal(
            source_ids(model, [recase(text) for text in TEXTS]), source_ids(model, TEXTS)
        )
    cased = TranslatorPreprocessor.from_config(
        {**model.preprocessor.get_config(), "lowercase_source": False}
    )
    cased.source_tokenizer.set_proto(model.preprocessor.source_tokenizer.proto)
    upper, as_given = (cased(tf.constant([t]))["source_ids"] for t in ("EIN MANN LÄUFT.", TEXTS[0]))
    assert upper.shape != as_given.shape or not np.array_equal(upper, as_given)


def test_greedy_decoding_equals_a_beam_search_of_width_one(model):
    ids = source_ids(model, TEXTS)
    greedy = model.translate_ids(ids, num_beams=1)
    beam = model.translate_ids(ids, num_beams=1, beam_search=True)
    for key in ("token_ids", "scores"):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(greedy[key]), keras.ops.convert_to_numpy(beam[key])
        )


def test_the_unknown_piece_is_never_decoded_even_when_most_likely(trained):
    from zoo.models.translator.translator_preprocessor import UNK_ID

    model = zoo.load("nmt", trained[0] / "model" / "model.keras")  # Its own copy: changed here.
    bias = model.decoder.output_bias
    bias.assign(keras.ops.convert_to_numpy(bias) + 1e4 * (np.arange(bias.shape[0]) == UNK_ID))
    ids = source_ids(model, TEXTS)
    for num_beams in (1, 3):
        tokens = keras.ops.convert_to_numpy(model.translate_ids(ids, num_beams)["token_ids"])
        assert tokens.size and not np.any(tokens == UNK_ID), num_beams
    assert "⁇" not in "".join(model.generate(TEXTS))


def test_generate_translates_like_predict_records_and_the_server(model):
    records = get_entry("nmt").family.predict_records(model, TEXTS + [""])
    assert model.generate(TEXTS + [""], batch_size=2) == [r["translation"] for r in records]
    assert model.generate("Ein Mann läuft.", num_beams=1) == model.generate(
        ["Ein Mann läuft."], num_beams=1, batch_size=1
    )


def test_beams_come_back_sorted_by_their_ranking_score(model):
    for length_penalty in (0.0, 1.0):
        result = model.translate_ids(source_ids(model, TEXTS), 3, length_penalty)
        ranks = keras.ops.convert_to_numpy(result["ranks"])
        assert ranks.shape == (3, 3) and np.all(np.diff(ranks, axis=1) <= 0)
        scores = keras.ops.convert_to_numpy(result["scores"])
        if length_penalty == 1.0:  # Ranked by the mean log-probability per token itself.
            np.testing.assert_allclose(ranks, scores, rtol=1e-6)
        assert np.all(scores <= 0)


def test_decoding_is_identical_under_jax_and_tensorflow(trained, model):
    path = trained[0] / "model" / "model.keras"
    script = (
        "import json, sys, keras, zoo, numpy as np\n"
        "from zoo.registry import get_entry\n"
        "model = zoo.load('nmt', sys.argv[1])\n"
        "family = get_entry('nmt').family\n"
        "print(json.dumps(family.predict_records(model, json.loads(sys.argv[2]))))\n"
    )
    on_jax = json.loads(run_on_jax(script, str(path), json.dumps(TEXTS)).splitlines()[-1])
    on_tensorflow = get_entry("nmt").family.predict_records(model, TEXTS)
    assert [r["translation"] for r in on_jax] == [r["translation"] for r in on_tensorflow]
    np.testing.assert_allclose(
        [r["score"] for r in on_jax], [r["score"] for r in on_tensorflow], atol=1e-5
    )


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="exports a TF SavedModel")
def test_exported_translator_serves_with_tensorflow_alone(trained, model, tmp_path):
    version = export_model("nmt", model_dir=trained[0] / "model")
    cases = {"sentences": TEXTS, "empty": ["", " "]}
    answer = finish_serving(
        start_serving(version, cases, tensorflow_only_site(tmp_path / "site"), tmp_path / "w")
    )
    assert answer["forbidden_modules"] == []
    served = answer["results"]["sentences"]["outputs"]
    records = get_entry("nmt").family.predict_records(model, TEXTS)
    assert served["translation"] == [record["translation"] for record in records]
    np.testing.assert_allclose(served["score"], [r["score"] for r in records], atol=1e-5)
    assert answer["results"]["empty"]["outputs"]["translation"] == ["", ""]

    attention = tf.saved_model.load(str(version)).signatures["attention"](text=tf.constant(TEXTS))
    weights = attention["weights"].numpy()
    real = attention["source_pieces"].numpy() != b""
    pieces = attention["target_pieces"].numpy()
    for row in range(len(TEXTS)):
        steps = int(np.sum(pieces[row] != b""))
        assert pieces[row, steps - 1] == b"</s>"
        # Each target piece's weights are a distribution over the real source pieces.
        np.testing.assert_allclose(weights[row, :steps].sum(axis=-1), 1.0, rtol=1e-5)
        assert np.all(weights[row, :steps][:, ~real[row]] < 1e-6)


def test_cli_predict_translates_with_the_beam_asked_for(trained):
    path = str(trained[0] / "model" / "model.keras")

    def predict(*args):
        result = subprocess.run(  # noqa: PLW1510 - the return code is asserted
            [sys.executable, "-m", "zoo", "predict", "nmt", *args, "--model", path],
            capture_output=True,
            text=True,
            env=subprocess_env(KERAS_BACKEND="tensorflow"),
            cwd=REPO,
            timeout=300,
        )
        return result

    result = predict("Ein Mann läuft.", "--beam", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads(result.stdout.splitlines()[-1])
    assert set(record) == {"translation", "score", "num_tokens", "truncated"}
    refused = predict("Ein Mann läuft.", "--beam", "0")
    assert refused.returncode == 2 and "--beam must be at least 1" in refused.stderr


def test_report_chooses_the_decoding_on_validation_and_saves_it(trained, tmp_path, monkeypatch):
    import shutil

    from zoo.models.translator.report import BEAM_WIDTHS, LENGTH_PENALTIES, report

    use_tiny_mirror(monkeypatch, trained[0])
    shutil.copy(trained[0] / "model" / "model.keras", tmp_path / "model.keras")
    results = report(tmp_path, choose=True)
    assert len(results["validation"]) == len(BEAM_WIDTHS) + len(LENGTH_PENALTIES) - 1
    best = max(row["bleu"] for row in results["validation"])
    chosen = results["chosen"]
    assert any(
        row["bleu"] == best and row["num_beams"] == chosen["num_beams"]
        for row in results["validation"]
    )
    model = zoo.load("nmt", tmp_path / "model.keras")
    assert (model.num_beams, model.length_penalty) == (
        chosen["num_beams"],
        chosen["length_penalty"],
    )
    assert [row["num_beams"] for row in results["test"]] == sorted({1, chosen["num_beams"]})
    assert len(results["worst"]) == len(results["best"]) == 4  # The whole tiny test split.
    empty = next(probe for probe in results["probes"] if probe["source"] == "")
    assert empty["translation"] == "" and empty["score"] == 0.0
    for name in results["figures"]:
        assert (tmp_path / name).stat().st_size > 1000
