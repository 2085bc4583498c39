"""train -> eval -> export -> serve for `slots` and `ner`, on tiny mirrors written in the test."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import zoo
from pipelines.name_substitution import SUBSTITUTION_SEED
from tests.conftest import REPO, subprocess_env, write_imdb_archive, write_ptb_mirror
from tests.helpers.serving import tensorflow_only_site
from tests.tagging_fixtures import (
    ATIS_TEST,
    CONLL_COPIES,
    CONLL_SENTENCES,
    TINY_TAGGER,
    write_atis_mirror,
    write_conll_mirror,
)
from zoo.evaluate import evaluate_model
from zoo.export import export_model
from zoo.registry import get_entry
from zoo.train import train

SERVE = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    serving = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
    texts = json.loads(sys.stdin.read())
    outputs = serving(text=tf.constant([t.encode("latin-1") for t in texts]))

    def plain(value):
        value = value.numpy()
        if value.dtype == object:
            return [[b.decode() for b in row] if value.ndim == 2 else row.decode() for row in value]
        return value.tolist()

    print(json.dumps({
        "outputs": {name: plain(value) for name, value in outputs.items()},
        "dtypes": {name: value.dtype.name for name, value in outputs.items()},
        "inputs": {k: (v.dtype.name, v.shape.as_list())
                   for k, v in serving.structured_input_signature[1].items()},
        "forbidden_modules": [m for m in ("keras", "zoo", "tensorflow_text") if m in sys.modules],
    }))
    try:
        serving(text=tf.constant([1.5]))
    except (TypeError, ValueError, tf.errors.InvalidArgumentError) as error:
        print("REJECTED", type(error).__name__, str(error).splitlines()[0])
    """)
TEXTS = {
    "slots": [
        "I want to fly from Boston to Denver.",
        "",
        "boston " * 200_000,
        "\xff\xfe bytes that are not UTF-8",
        "what flights leave denver on monday",
    ],
    "ner": [
        "EU rejects German call to boycott British lamb.",
        "",
        "Spain " * 200_000,
        "\xff\xfe bytes that are not UTF-8",
        "Peter Blackburn didn't end in Brussels",
    ],
}


@pytest.fixture(scope="module", params=["slots", "ner"])
def trained(request, tmp_path_factory):
    name = request.param
    root = tmp_path_factory.mktemp(name)
    write_atis_mirror(root / "mirror")
    write_conll_mirror(root / "mirror")
    write_imdb_archive(root / "mirror" / "imdb")
    write_ptb_mirror(root / "mirror")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ZOO_DATA_MIRROR", str(root / "mirror"))
        patch.setenv("ZOO_DATA_DIR", str(root / "tfds"))
        patch.setenv("ZOO_VERBOSE", "0")
        overrides = {**TINY_TAGGER, "embedding_init": "word2vec", "word2vec_epochs": 1}
        if name == "slots":
            # Copies of the training sentences with unseen cities, and city words dropped.
            overrides.update(value_substitution=0.5, name_word_dropout=0.2)
        if name == "ner":
            # Skip-gram word2vec also reads IMDB reviews and PTB news (their words join the
            # vocabulary), and a weight EMA: the averaged weights are scored, kept and saved.
            overrides.update(
                character_encoder="bilstm",
                unlabeled_documents=1000,
                word2vec_architecture="skipgram",
                learning_rate_schedule="cosine",
                ema_momentum=0.5,
                epochs=3,
                # The dev split joins training: no early stopping, the last epoch is kept.
                train_on_development=True,
                early_stopping_patience=1,
                # Each document's 9-, 2- and 14-token sentences make examples [9, 2] and [14].
                context_tokens=12,
                # Trained in IOBES, read and scored in IOB2.
                tag_scheme="iobes",
                # A casing class embedding beside the lower-cased words': a third model input.
                casing_dim=4,
                # Lower- and upper-cased copies of the packed training examples.
                casing_augmentation=0.5,
            )
        metrics = train(name, overrides, output_dir=root / "model", runs_dir=root / "runs")
        yield name, root, metrics


def test_training_and_evaluation_cover_the_whole_splits(trained, monkeypatch):
    name, root, metrics = trained
    assert metrics["metric"] == "f1" and metrics["split"] == "test"
    assert 0.0 <= metrics["value"] <= 1.0 and metrics["value"] == metrics["f1"]
    if name == "slots":
        assert metrics["num_examples"] == len(ATIS_TEST) and metrics["dev"]["num_examples"] == 2
        assert 0.0 <= metrics["intent_accuracy"] <= 1.0
        assert metrics["tokenizer_agreement"] == 1.0
    else:
        sentences = len(CONLL_SENTENCES)
        assert metrics["num_examples"] == sentences * CONLL_COPIES["eng.testb"]
        assert metrics["dev"]["num_examples"] == sentences * CONLL_COPIES["eng.testa"]
        assert set(metrics["per_type"]) == {"LOC", "MISC", "ORG", "PER"}
        # Packed examples are scored per sentence: every gold span counted once, as when
        # sentences come alone.
        supports = {"LOC": 3, "MISC": 2, "ORG": 2, "PER": 1}
        copies = CONLL_COPIES["eng.testb"]
        assert {t: s["support"] for t, s in metrics["per_type"].items()} == {
            t: n * copies for t, n in supports.items()
        }
        assert metrics["sentences_alone"]["num_examples"] == metrics["num_examples"]
        assert 0.0 <= metrics["sentences_alone"]["f1"] <= 1.0
    # The re-cased and substituted variants of the test and dev splits, sentence by sentence.
    for scores in (metrics, metrics["dev"]):
        assert set(scores["variants"]) == {"lowercased", "uppercased", "unseen_names"}
        for variant in scores["variants"].values():
            assert variant["num_examples"] == scores["num_examples"]
            assert 0.0 <= variant["f1"] <= 1.0
    unseen = metrics["variants"]["unseen_names"]
    assert unseen["seed"] == SUBSTITUTION_SEED
    names = {kind for kind, mapping in unseen["mapping"].items() if mapping}
    assert names == ({"city_name"} if name == "slots" else {"LOC", "ORG", "PER"})
    assert unseen["mapping"] != metrics["dev"]["variants"]["unseen_names"]["mapping"]
    (run_dir,) = (root / "runs" / name).glob("2*")
    tags = (run_dir / "tags.txt").read_text().splitlines()
    assert tags[0] == "O"
    assert ("S-LOC" in tags and "E-PER" in tags) is (name == "ner")
    model = zoo.load(name, root / "model" / "model.keras")
    assert sorted(model.input) == sorted(
        ["token_ids", "character_ids"] + ["casing_ids"] * (name == "ner")
    )
    vocabulary = (run_dir / "vocabulary.txt").read_text().splitlines()
    assert ("wonderful" in vocabulary) is (name == "ner")  # A word of IMDB reviews only.
    assert metrics["figures"] == ["confusion.png"] and (root / "model" / "confusion.png").exists()
    training = json.loads((root / "model" / "training.json").read_text())
    # The kept epoch's dev score (the best one's for slots, the last one's for ner) is what
    # evaluation measures again on the saved model.
    assert training["best_val_f1"] == pytest.approx(metrics["dev"]["f1"])
    assert len(training["history"]["val_f1"]) == training["epochs_run"]
    if name == "ner":  # Cosine schedule over its 3 epochs, all run, the last one kept.
        assert training["history"]["learning_rate"] == pytest.approx([1e-3, 7.5e-4, 2.5e-4])
        assert training["epochs_run"] == training["best_epoch"] == 3
        assert training["epoch_selection"] == "last epoch"
        assert metrics["training"]["epoch_selection"] == "last epoch"
    else:
        assert training["epoch_selection"] == "best validation score"
    assert metrics["dev"]["trained_on"] is (name == "ner")

    monkeypatch.setenv("ZOO_DATA_MIRROR", str(root / "mirror"))
    monkeypatch.setenv("ZOO_DATA_DIR", str(root / "tfds"))
    again = evaluate_model(name, output_dir=root / "model")
    assert again["value"] == metrics["value"] and again["dev"] == metrics["dev"]


def test_exported_saved_model_serves_with_tensorflow_alone(trained, tmp_path):
    name, root, _ = trained
    version_dir = export_model(name, model_dir=root / "model")
    assert version_dir.name == "1" and not list(version_dir.parent.glob(".partial*"))
    texts = TEXTS[name]
    result = subprocess.run(
        [sys.executable, "-S", "-c", SERVE, str(version_dir)],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**subprocess_env(), "PYTHONPATH": str(tensorflow_only_site(tmp_path / "site"))},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    served = json.loads(lines[0])
    assert served["forbidden_modules"] == []
    assert served["inputs"] == {"text": ["string", [None]]}
    assert lines[1].startswith("REJECTED") and "string" in lines[1]
    outputs = served["outputs"]
    expected_keys = {"tokens", "tags", "tag_probability", "num_tokens", "truncated"}
    if name == "slots":
        expected_keys |= {"intent", "intent_probability"}
    assert set(outputs) == expected_keys
    assert served["dtypes"]["tag_probability"] == "float32"

    model = zoo.load(name, root / "model" / "model.keras")
    records = get_entry(name).family.predict_records(model, [t.encode("latin-1") for t in texts])
    assert outputs["num_tokens"][1] == 0 and set(outputs["tags"][1]) == {""}
    assert outputs["num_tokens"][2] == model.preprocessor.sequence_length  # cut, and says so
    assert outputs["truncated"][2] is True and outputs["truncated"][0] is False
    for row, record in enumerate(records):
        length = outputs["num_tokens"][row]
        assert outputs["tokens"][row][:length] == record["tokens"]
        assert outputs["tags"][row][:length] == record["tags"]
        assert set(outputs["tags"][row][length:]) <= {""}
        assert set(outputs["tokens"][row][length:]) <= {""}
        np.testing.assert_allclose(
            outputs["tag_probability"][row][:length], record["tag_probability"], atol=1e-5
        )
        assert all(p == 0 for p in outputs["tag_probability"][row][length:])
        if name == "slots":
            assert outputs["intent"][row] == record["intent"]
            np.testing.assert_allclose(
                outputs["intent_probability"][row], record["intent_probability"], atol=1e-5
            )
    assert records[0]["tokens"][-1] == "."  # "Denver." / "lamb." -> "...", "."
    # IOB2 out, whatever the scheme the model was trained in (the NER fixture's is IOBES).
    iob2_tags = {tag for tag in model.tag_names if tag[:2] not in ("E-", "S-")}
    assert set(records[0]["tags"]) <= iob2_tags
    assert {tag for row in outputs["tags"] for tag in row} <= iob2_tags | {""}


def run_cli(*args, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "zoo", *args],
        input=stdin,
        capture_output=True,
        check=False,
        env=subprocess_env(),
        cwd=REPO,
        timeout=300,
    )


def test_cli_predict_prints_one_json_record_per_sentence(trained):
    name, root, _ = trained
    model = str(root / "model" / "model.keras")
    stdin = TEXTS[name][0].encode() + b"\n\xff\xfe not UTF-8\n\n"
    result = run_cli("predict", name, "--model", model, stdin=stdin)
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert len(records) == 3 and records[2] == {
        "tokens": [],
        "tags": [],
        "tag_probability": [],
        "num_tokens": 0,
        "truncated": False,
        # The empty answer: no intent, and no confidence in one.
        **({"intent": "", "intent_probability": 0.0} if name == "slots" else {}),
    }
    assert len(records[0]["tags"]) == len(records[0]["tokens"]) > 3
    assert records[1]["tokens"][0] == "\ufffd\ufffd"


@pytest.mark.parametrize(
    "args, message",
    [
        (("train", "ner", "--set", "colour=red"), "Unknown config key 'colour'"),
        (("eval", "slots", "--output", "/nonexistent"), "No model to evaluate at /nonexistent"),
    ],
)
def test_cli_errors_are_one_clear_line(args, message):
    result = run_cli(*args)
    stderr = result.stderr.decode()
    assert result.returncode == 2
    assert message in stderr and "Traceback" not in stderr
