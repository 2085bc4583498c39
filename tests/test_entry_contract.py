"""The contract every registered entry keeps (docs/DESIGN.md, "Contracts"), on a tiny untrained
model of each: registering an entry with a `smoke_config`, on a family whose preprocessor has
`adapt(texts)`, is all it takes to be checked here (see tests/helpers/smoke.py).

For every entry:
(a) a `.keras` file loads back with plain `keras.saving.load_model`: identical config and
    identical predictions;
(b) `model.predict` on raw strings (a list or a dataset) equals `predict` on the
    preprocessor's output;
(c) odd and bad inputs to `model.predict` and to the family's `predict_records` get a defined
    answer or a one-line `zoo.ZooError` (see `BAD_INPUTS`), never an error from inside TF/Keras;
(d) `zoo.export.export_model` writes a SavedModel that serves, in a fresh process with
    TensorFlow and tensorflow-text's ops only (no keras, keras_hub or zoo), the same fields as
    the in-memory `predict_records`, also for a one-word sentence, "", whitespace and an empty
    batch;
(e) the SavedModel's graph holds no `Xla*` op.
"""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from tests.helpers.outputs import (
    assert_close_on_common_steps,
    assert_defined_answer,
    assert_identical,
    assert_json_records,
    assert_probabilities,
    assert_served_like_records,
)
from tests.helpers.serving import (
    finish_serving,
    saved_model_op_types,
    start_serving,
    tensorflow_only_site,
    xla_ops,
)
from tests.helpers.smoke import MAX_SMOKE_PARAMETERS, NORMAL_TEXTS, smoke_model
from zoo.errors import ZooError
from zoo.family import MAX_SERVED_BATCH
from zoo.registry import get_entry

ENTRIES = zoo.list_entries()
requires_tensorflow = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="export writes a TensorFlow SavedModel: run with KERAS_BACKEND=tensorflow",
)
# Texts of the round-trip and raw-vs-preprocessed checks: sentences, one word, nothing.
TEXTS = NORMAL_TEXTS + ["Boston", ""]
ONE_MEGABYTE = "word " * 200_000

# (case, input, answer): an int is the number of answers the input gets (each a valid one, as
# for any sentence); a str, that it gets a `zoo.ZooError` (an `InputError`) instead: one line
# that names what was wrong (this pattern) and what is accepted (strings).
BAD_INPUTS = [
    # Text that tokenizes to nothing gets the empty answer: no label, intent or tag, and
    # probability 0 (test_empty_text_gets_no_answer_and_cut_text_says_so).
    ("empty_string", "", 1),
    ("whitespace_only", " \t\n ", 1),
    ("empty_and_whitespace", ["", "   "], 2),
    # Cut to the preprocessor's sequence_length (the first or last tokens, per family).
    ("one_megabyte", ONE_MEGABYTE, 1),
    # Invalid UTF-8 is replaced (U+FFFD), as in the served graph.
    ("invalid_utf8_bytes", [b"\xff\xfe\xfd", b"ok \xc3"], 2),
    ("lone_surrogate", ["lone \ud800 surrogate"], 1),
    ("non_ascii", ["🎬 ünïcödé, Zürich ✈"], 1),
    ("not_a_string", 3, "int"),
    ("none", None, "NoneType"),
    ("list_of_none", [None], "NoneType"),
    ("list_with_a_number", ["fine", 3.5], "float"),
    ("empty_list", [], "empty"),
    ("empty_array", np.array([], dtype=str), "empty"),
    ("dict", {"text": "fine"}, "dict"),
]
# Batches sent to the served signature, one call each: the bug of issue 16 needed a batch
# whose longest sentence has one token or none. None: not strings (the signature rejects it).
SERVE_CASES = {
    "sentences": NORMAL_TEXTS,
    "one_word": ["Boston"],
    "empty_string": [""],
    "whitespace_only": [" \t\n "],
    "empty_batch": [],
    "invalid_utf8_bytes": [b"\xff\xfe\xfd", b"ok \xc3"],
    "one_megabyte": [ONE_MEGABYTE],
    "not_strings": None,
    # One text more than a request may hold: refused with a clear error, not served unbounded.
    "over_max_batch": ["word"] * (MAX_SERVED_BATCH + 1),
}


def answer_or_error(call, value, answer):
    """`call(value)` when `answer` is a number of rows; else asserts its one-line ZooError."""
    if isinstance(answer, int):
        return call(value)
    with pytest.raises(ZooError) as caught:
        call(value)
    message = str(caught.value).strip()
    assert "\n" not in message and re.search(answer, message) and "string" in message, message
    return None


@pytest.mark.parametrize("name", ENTRIES)
def test_registration_gives_a_tiny_model_without_datasets(name):
    assert get_entry(name).smoke_config, (
        f"Register {name!r} with a smoke_config: config overrides for a tiny model "
        "(see zoo.registry.Entry)."
    )
    assert smoke_model(name).count_params() <= MAX_SMOKE_PARAMETERS


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(name, wait=True) -> (SavedModel directory, the serving process's answer to SERVE_CASES,
    or None without `wait`).

    An entry is exported and its serving process started on its first use (`test_export_...`):
    it serves in the background while the entry's other tests run. A failed export fails only
    its entry's tests.
    """
    from zoo.export import export_model

    site_dir = tensorflow_only_site(tmp_path_factory.mktemp("tensorflow_only_site"))
    started, answers = {}, {}

    def start(name):
        root = tmp_path_factory.mktemp(f"export_{name}")
        try:
            smoke_model(name).save(root / "model.keras")
            version = export_model(name, model_dir=root)
            return version, start_serving(version, SERVE_CASES, site_dir, root / "serve")
        except Exception as error:  # noqa: BLE001 - raised again in this entry's tests only
            return error

    def answer(name, wait=True):
        if name not in started:
            started[name] = start(name)
        if isinstance(started[name], Exception):
            raise started[name]
        if not wait:
            return started[name][0], None
        if name not in answers:
            version, process = started[name]
            answers[name] = version, finish_serving(process)
        return answers[name]

    yield answer
    for item in started.values():
        if not isinstance(item, Exception) and item[1].poll() is None:
            item[1].kill()
            item[1].wait()


@requires_tensorflow
@pytest.mark.parametrize("name", ENTRIES)
def test_export_writes_a_new_version_atomically(name, served):
    version, _ = served(name, wait=False)  # Starts serving the entry in the background.
    assert version.name == "1" and (version / "saved_model.pb").exists()
    assert not list(version.parent.glob(".partial*"))


@pytest.mark.parametrize("name", ENTRIES)
def test_keras_file_round_trip_is_identical(name, tmp_path):
    model = smoke_model(name)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert type(loaded) is type(model)
    assert loaded.get_config() == model.get_config()
    assert_identical(loaded.predict(TEXTS, verbose=0), model.predict(TEXTS, verbose=0))


@pytest.mark.parametrize("name", ENTRIES)
def test_raw_strings_predict_like_their_preprocessed_inputs(name):
    model = smoke_model(name)
    preprocessed = tf.nest.map_structure(
        lambda tensor: tensor.numpy(), model.preprocessor(tf.constant(TEXTS))
    )
    expected = model.predict(preprocessed, verbose=0)
    assert_close_on_common_steps(model.predict(TEXTS, verbose=0), expected)
    dataset = tf.data.Dataset.from_tensor_slices(TEXTS).batch(2)
    assert_close_on_common_steps(model.predict(dataset, verbose=0), expected)


@pytest.mark.parametrize("case, value, answer", BAD_INPUTS, ids=[row[0] for row in BAD_INPUTS])
@pytest.mark.parametrize("name", ENTRIES)
def test_predict_answers_odd_inputs_or_says_what_is_accepted(name, case, value, answer):
    outputs = answer_or_error(lambda x: smoke_model(name).predict(x, verbose=0), value, answer)
    if isinstance(answer, int):
        assert_defined_answer(outputs, answer)


@pytest.mark.parametrize("case, value, answer", BAD_INPUTS, ids=[row[0] for row in BAD_INPUTS])
@pytest.mark.parametrize("name", ENTRIES)
def test_predict_records_answers_odd_inputs_or_says_what_is_accepted(name, case, value, answer):
    family = get_entry(name).family
    records = answer_or_error(lambda x: family.predict_records(smoke_model(name), x), value, answer)
    if isinstance(answer, int):
        assert_json_records(records, answer)


@pytest.mark.parametrize("name", ENTRIES)
def test_empty_text_gets_no_answer_and_cut_text_says_so(name):
    # An image family answers each text with an error for that row, and nothing else.
    records = get_entry(name).family.predict_records(
        smoke_model(name), ["", " \t\n ", ONE_MEGABYTE, "Boston"]
    )
    empty, whitespace, cut, word = records
    if not get_entry(name).family.reads_text:  # Image bytes: none of these is an image.
        for record in records:
            assert record["error"] and record["caption"] == "" and record["score"] == 0.0
        return
    for record in (empty, whitespace):
        assert record["num_tokens"] == 0 and record["truncated"] is False, record
        if get_entry(name).family.answers_empty_text:
            continue  # A language model continues an empty prompt from a sentence's start.
        for key, value in record.items():
            # No label, intent or tag, and no confidence in one.
            if isinstance(value, str) or key.endswith("probability"):
                assert value in ("", 0.0, []), (key, value)
    assert cut["truncated"] is True and cut["num_tokens"] > 0
    # One token, or a few subwords (the translator's SentencePiece units).
    assert word["truncated"] is False and 1 <= word["num_tokens"] < cut["num_tokens"]


@requires_tensorflow
@pytest.mark.parametrize("name", ENTRIES)
def test_saved_model_serves_without_keras_like_predict_records(name, served):
    _, answer = served(name)
    assert answer["forbidden_modules"] == []
    assert answer["inputs"] and all(
        spec == ["string", [None]] for spec in answer["inputs"].values()
    ), answer["inputs"]
    results = answer["results"]
    assert "error" in results["not_strings"], "the signature must reject non-string inputs"
    model, family = smoke_model(name), get_entry(name).family
    refused = results["over_max_batch"].get("error", "")
    assert f"at most {family.max_batch_size} texts" in refused, refused
    for case, texts in SERVE_CASES.items():
        if texts is None or case == "over_max_batch":
            continue
        assert "error" not in results[case], f"{case!r}: {results[case].get('error')}"
        outputs = results[case]["outputs"]
        assert all(len(value) == len(texts) for value in outputs.values()), (case, outputs)
        assert_probabilities(outputs)
        if texts:  # predict_records takes no empty batch (an InputError, see BAD_INPUTS).
            assert_served_like_records(outputs, family.predict_records(model, texts))


@requires_tensorflow
@pytest.mark.parametrize("name", ENTRIES)
def test_saved_model_graph_has_no_xla_ops(name, served):
    version, answer = served(name)
    op_types = saved_model_op_types(version) | set(answer["op_types"])
    assert "StringSplit" in op_types or len(op_types) > 20  # The graph was read.
    assert xla_ops(op_types) == []


@requires_tensorflow
def test_the_xla_check_sees_the_op_keras_lowers_slice_update_to(tmp_path):
    module = tf.Module()
    module.update = tf.function(
        lambda x: keras.ops.slice_update(x, [0, 0], tf.ones([1, 1])),
        input_signature=[tf.TensorSpec([None, 2], tf.float32)],
    )
    tf.saved_model.save(module, str(tmp_path))
    assert xla_ops(saved_model_op_types(tmp_path))


@pytest.mark.parametrize("name", ENTRIES)
def test_predict_refuses_empty_or_float_arrays_in_one_line(name):
    model = smoke_model(name)
    for value, message in ((np.array([]), "no example"), (np.ones((1, 3)), "integer token ids")):
        with pytest.raises(ZooError, match=message) as caught:
            model.predict(value, verbose=0)
        assert "\n" not in str(caught.value)


@pytest.mark.parametrize("name", ENTRIES)
def test_load_names_a_cut_or_another_entrys_file_in_one_line(name, tmp_path):
    path = tmp_path / "model.keras"
    smoke_model(name).save(path)
    cut = tmp_path / "cut.keras"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ZooError, match=f"Cannot load {re.escape(str(cut))}") as caught:
        zoo.load(name, cut)
    assert "\n" not in str(caught.value)
    assert type(zoo.load(name, path)) is type(smoke_model(name))
    refused = 0
    for other in ENTRIES:
        other_model = smoke_model(other)
        try:
            get_entry(name).family.check_model(other_model, "x.keras")
        except ZooError as error:
            assert "another entry's model" in str(error)
            other_model.save(tmp_path / f"{other}.keras")
            with pytest.raises(ZooError, match="another entry's model"):
                zoo.load(name, tmp_path / f"{other}.keras")
            refused += 1
    assert refused >= 1  # Some other entry's model is told apart from this one's.
