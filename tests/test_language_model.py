"""The `lm` entry on tiny data: PTB-form prompts, stream windows, perplexity against a hand
computation, carried states, sampling, and train -> eval -> export -> TF-only serving."""

import itertools
import json
import math
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from tests.conftest import REPO, subprocess_env
from tests.helpers.serving import finish_serving, start_serving, tensorflow_only_site
from zoo.config import resolve_config
from zoo.evaluate import evaluate_model
from zoo.export import export_model
from zoo.models.language_model.language_model import WordPredictor
from zoo.models.language_model.language_model_family import stream_windows
from zoo.models.language_model.language_model_preprocessor import (
    LanguageModelPreprocessor,
    ptb_words,
)
from zoo.registry import get_entry
from zoo.train import train

SUBJECTS = ["the company", "the bank", "mr. <unk>"]
VERBS = ["said", "expects", "reported"]
OBJECTS = ["N million", "a loss", "higher profit"]
SENTENCES = [" ".join(words) for words in itertools.product(SUBJECTS, VERBS, OBJECTS)]  # 27
PTB_FILES = {
    "ptb.train.txt": SENTENCES * 3,
    "ptb.valid.txt": SENTENCES[:9],
    "ptb.test.txt": SENTENCES[9:18],
}
TINY_LM = {
    "vocabulary_size": 30,
    "embedding_dim": 8,
    "units": 8,
    "batch_size": 4,
    "bptt": 5,
    "epochs": 2,
    "eval_bptt": 7,
    "max_words": 6,
}


def write_tiny_ptb(directory):
    folder = directory / "ptb"
    folder.mkdir(parents=True)
    for name, lines in PTB_FILES.items():
        (folder / name).write_text("".join(f" {line} \n" for line in lines))


def use_tiny_mirror(patch, root):
    patch.setenv("ZOO_DATA_MIRROR", str(root / "mirror"))
    patch.setenv("ZOO_DATA_DIR", str(root / "tfds"))
    words = {
        split: sum(len(line.split()) for line in PTB_FILES[name])
        for split, name in (
            ("train", "ptb.train.txt"),
            ("validation", "ptb.valid.txt"),
            ("test", "ptb.test.txt"),
        )
    }
    patch.setattr("pipelines.ptb.SPLIT_WORDS", words)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm")
    write_tiny_ptb(root / "mirror")
    with pytest.MonkeyPatch.context() as patch:
        use_tiny_mirror(patch, root)
        patch.setenv("ZOO_VERBOSE", "0")
        metrics = train("lm", TINY_LM, output_dir=root / "model", runs_dir=root / "runs")
        yield root, metrics


@pytest.fixture(scope="module")
def model(trained):
    return zoo.load("lm", trained[0] / "model" / "model.keras")


def words_of(texts):
    return [b" ".join(row).decode() for row in ptb_words(tf.constant(texts)).to_list()]


def test_prompts_take_penn_treebank_form_in_the_graph():
    assert words_of(["It's 12.5% of $5, don't.", "NEVER too LATE to"]) == [
        "it 's N N of $ N do n't.",  # The dot goes where the vocabulary lacks "n't.".
        "never too late to",
    ]
    preprocessor = LanguageModelPreprocessor(vocabulary=["<eos>", "n't", "mr.", "the", "N"])
    ids = preprocessor.tokenize(tf.constant(["Mr. Smith doesn't -- the 3 end."])).to_list()
    vocabulary = ["", "<unk>"] + preprocessor.get_vocabulary()
    # "mr." is a word of the vocabulary; "smith", "does" and "end" are not (<unk>); "--" and
    # the final dot are punctuation (dropped, id 0).
    assert [vocabulary[i] for i in ids[0]] == [
        "mr.",
        "<unk>",
        "<unk>",
        "n't",
        "",
        "the",
        "N",
        "<unk>",
    ]
    features = preprocessor(tf.constant(["", "the"]))["token_ids"].numpy()
    end, the = preprocessor.end_id, vocabulary.index("the")
    assert features.tolist() == [[end, 0], [end, the]]  # `<eos>` first: a sentence's start.


def test_stream_windows_read_consecutive_parts_side_by_side():
    inputs, labels = stream_windows(np.arange(23), batch_size=2, bptt=3)
    # 22 predictions: 11 per row, 3 whole windows of 3 (the last 2 per row left out).
    assert inputs.shape == labels.shape == (3, 2, 3)
    assert inputs[:, 0].ravel().tolist() == list(range(9))
    assert inputs[:, 1].ravel().tolist() == list(range(11, 20))
    np.testing.assert_array_equal(labels, inputs + 1)
    with pytest.raises(ValueError, match="fill no window"):
        stream_windows(np.arange(5), batch_size=2, bptt=3)


def tiny_predictor(**kwargs):
    keras.utils.set_random_seed(3)
    predictor = WordPredictor(
        12, 6, stack={"cell": "lstm", "units": 5, "num_layers": 2}, name="predictor", **kwargs
    )
    predictor.build()
    for variable in predictor.trainable_variables:  # Away from zero-initialised biases.
        variable.assign(keras.random.normal(variable.shape, stddev=0.5, seed=1))
    return predictor


def test_stream_perplexity_equals_a_hand_computation_word_by_word():
    predictor = tiny_predictor()
    model = zoo.models.language_model.LanguageModel(predictor, end_id=2)
    stream = np.array([2, 5, 7, 3, 2, 9, 11, 4, 6, 2], "int32")
    # By hand: each word's probability after all before it, one word at a time.
    states = predictor.stack.get_initial_state(1)
    total = 0.0
    for current, following in itertools.pairwise(stream):
        logits, states = predictor.step(np.array([current]), states)
        probabilities = np.exp(logits[0]) / np.sum(np.exp(logits[0]))
        total += math.log(float(probabilities[following]))
    for window in (1, 3, 4, 9, 50):  # The state carried across windows of any length.
        log_likelihood, count = model.stream_log_likelihood(stream, window)
        assert count == 9
        assert log_likelihood == pytest.approx(total, rel=1e-5)
    assert math.exp(-total / 9) > 1.0


def test_carried_states_continue_a_stream_across_windows():
    predictor = tiny_predictor(stream_batch_size=2)
    stream = np.array([[2, 5, 7, 3, 2, 9], [4, 6, 2, 8, 8, 10]], "int32")
    whole = keras.ops.convert_to_numpy(predictor(stream))
    predictor.carry_states = True
    first = keras.ops.convert_to_numpy(predictor(stream[:, :3]))
    second = keras.ops.convert_to_numpy(predictor(stream[:, 3:]))
    np.testing.assert_allclose(np.concatenate([first, second], 1), whole, atol=1e-5)
    predictor.reset_states()
    restarted = keras.ops.convert_to_numpy(predictor(stream[:, 3:]))
    assert not np.allclose(restarted, second, atol=1e-3)
    # Working memory, not weights: the layer's own saved variables are its output bias only.
    store = {}
    predictor.save_own_variables(store)
    assert [value.shape for value in store.values()] == [(12,)]
    carried = [v for v in predictor.non_trainable_variables if "carried" in v.path]
    assert len(carried) == 4  # [h, c] of two layers.


def test_stateful_training_reads_no_future_word_through_the_carried_states():
    # Random words: nothing to learn, so a model that beats uniform perplexity in training
    # reads the words it predicts (a carried state from a later window would let it).
    family = get_entry("lm").family
    config = resolve_config(
        get_entry("lm").config_class,
        {
            "vocabulary_size": "20",
            "embedding_dim": "16",
            "units": "16",
            "batch_size": "8",
            "bptt": "10",
            "stateful": "true",
            "optimizer": "adam",
            "learning_rate": "0.01",
            "learning_rate_schedule": "constant",
            "global_clipnorm": "1.0",
        },
    )
    model = family.build(config)
    family.compile(model, config)
    words = np.random.default_rng(0).integers(2, 21, size=8 * 10 * 60 + 1)
    windows = tf.data.Dataset.from_tensor_slices(stream_windows(words, 8, 10))
    callbacks = family.callbacks(model, config)
    history = model.fit(windows, epochs=3, callbacks=callbacks, shuffle=False, verbose=0).history
    assert model.predictor.carry_states is False  # Only while `fit` runs.
    assert math.exp(history["loss"][-1]) > 16.0  # Uniform over the 19 words drawn: 19.
    assert model.predictor.stream_batch_size == 8


def test_training_scores_perplexity_on_the_whole_test_stream(trained, monkeypatch):
    root, metrics = trained
    assert metrics["metric"] == "perplexity" and metrics["split"] == "test"
    # 9 sentences of 4-5 words, each followed by <eos>.
    assert metrics["num_words"] == sum(len(s.split()) + 1 for s in SENTENCES[9:18])
    assert 1.0 < metrics["perplexity"] < 31.0  # Better than uniform over the vocabulary.
    training = json.loads((root / "model" / "training.json").read_text())
    assert len(training["history"]["val_perplexity"]) == 2
    assert training["epoch_selection"] == "best validation score"
    monkeypatch.setenv("ZOO_DATA_MIRROR", str(root / "mirror"))
    monkeypatch.setenv("ZOO_DATA_DIR", str(root / "tfds"))
    use_tiny_mirror(monkeypatch, root)
    again = evaluate_model("lm", output_dir=root / "model")
    assert again["perplexity"] == metrics["perplexity"]


def test_greedy_generation_follows_the_most_likely_word(model):
    family = get_entry("lm").family
    model.sampler = "greedy"
    try:
        record = family.predict_records(model, ["the company"])[0]
    finally:
        model.sampler = "top_p"
    # Greedy: each word is the most likely after the prompt and the words before it.
    words = record["continuation"].split()
    prompt = "the company"
    for word in words[:3]:
        assert family.predict_records(model, [prompt])[0]["next_words"][0] == word
        prompt = f"{prompt} {word}"


def test_sampling_is_seeded_and_top_k_of_one_is_greedy(model):
    family = get_entry("lm").family
    prompts = ["the bank", "", "mr. smith"]
    sampled = [r["continuation"] for r in family.predict_records(model, prompts, seed=7)]
    again = [r["continuation"] for r in family.predict_records(model, prompts, seed=7)]
    assert sampled == again
    vocabulary = set(model.preprocessor.get_vocabulary()) | {"<unk>"}
    assert all(set(text.split()) <= vocabulary for text in sampled)
    model.sampler, model.top_k = "top_k", 1
    try:
        top_one = [r["continuation"] for r in family.predict_records(model, prompts, seed=1)]
        model.sampler = "greedy"
        greedy = [r["continuation"] for r in family.predict_records(model, prompts)]
    finally:
        model.sampler, model.top_k = "top_p", 40
    assert top_one == greedy


def test_empty_prompts_continue_from_a_sentence_start_and_unknown_words_are_unk(model):
    family = get_entry("lm").family
    empty, unknown = family.predict_records(model, ["", "zyzzyva"])
    assert empty["num_tokens"] == 0 and len(empty["next_words"]) == 5
    assert unknown["num_tokens"] == 1
    assert model.preprocessor.tokenize(tf.constant(["zyzzyva"])).to_list() == [[1]]
    probabilities = empty["next_word_probabilities"]
    assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1.0


def test_exported_language_model_samples_in_the_graph_with_tensorflow_alone(
    trained, model, tmp_path
):
    version = export_model("lm", model_dir=trained[0] / "model")  # Sampler: top_p.
    prompts = ["the company", "", "THE BANK said"]
    answer = finish_serving(
        start_serving(
            version, {"prompts": prompts}, tensorflow_only_site(tmp_path / "site"), tmp_path / "w"
        )
    )
    assert answer["forbidden_modules"] == []
    served = answer["results"]["prompts"]["outputs"]
    vocabulary = set(model.preprocessor.get_vocabulary()) | {"<unk>"}
    assert all(set(text.split()) <= vocabulary for text in served["continuation"])
    records = get_entry("lm").family.predict_records(model, prompts)
    assert served["next_words"] == [record["next_words"] for record in records]
    loaded = tf.saved_model.load(str(version))
    following = loaded.signatures["next_words"](prompt=tf.constant(prompts))
    assert following["words"].shape == (3, 5)
    np.testing.assert_allclose(
        following["probabilities"].numpy(),
        [r["next_word_probabilities"] for r in records],
        rtol=1e-5,
    )


def test_cli_prints_next_words_and_a_continuation(trained):
    result = subprocess.run(  # noqa: PLW1510 - the return code is asserted
        [
            sys.executable,
            "-m",
            "zoo",
            "predict",
            "lm",
            "the company",
            "--model",
            str(trained[0] / "model" / "model.keras"),
            "--sampler",
            "top_k",
            "--top-k",
            "3",
            "--temperature",
            "0.7",
            "--max-words",
            "4",
            "--seed",
            "5",
        ],
        capture_output=True,
        text=True,
        env=subprocess_env(KERAS_BACKEND="tensorflow"),
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads(result.stdout.splitlines()[-1])
    assert len(record["next_words"]) == 5 and len(record["continuation"].split()) <= 4
    bad = subprocess.run(  # noqa: PLW1510
        [sys.executable, "-m", "zoo", "predict", "lm", "x", "--temperature", "0"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        cwd=REPO,
        timeout=300,
    )
    assert bad.returncode == 2 and "--temperature must be above 0" in bad.stderr


def test_report_lists_next_words_and_seeded_samples_of_every_sampler(trained):
    from zoo.models.language_model import report

    result = report.report(trained[0] / "model")
    assert json.loads((trained[0] / "model" / "samples.json").read_text()) == result
    per_prompt = 1 + (len(report.SAMPLINGS) - 1) * len(report.SEEDS)
    assert len(result["samples"]) == len(report.PROMPTS) * per_prompt
    assert {row["sampler"] for row in result["samples"]} == {"greedy", "top_k", "top_p", "random"}
    assert all(len(row["next_words"]) >= 1 for row in result["next_words"])
    assert result["num_parameters"] > 0 and result["stored_bytes"] > 0
