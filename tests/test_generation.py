"""zoo.generation: beam search and greedy decoding through keras-hub's samplers, on a toy
model whose next-token probabilities are known; and the Xla-free slice update."""

import json
import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from tests.helpers.serving import xla_ops
from zoo.generation import cut_at_end, decode, length_normalized_scores, slice_update_without_xla

PAD, START, END, A, B = 0, 2, 3, 4, 5
# P(next | previous) of a toy model over ids 0-5 (padding, unknown, start, end, a, b). Greedy
# takes "a" (0.6) then whatever follows; the most probable sentence is "b <end>" (0.4 * 0.9).
TABLE = np.full((6, 6), 1e-6)
TABLE[START, [A, B]] = [0.6, 0.4]
TABLE[A, [END, A, B]] = [0.3, 0.35, 0.35]
TABLE[B, [END, A]] = [0.9, 0.1]
TABLE[END, END] = 1.0
TABLE = TABLE / TABLE.sum(axis=1, keepdims=True)


def toy_step(token_ids, cache):
    logits = ops.take(ops.convert_to_tensor(np.log(TABLE), "float32"), token_ids, axis=0)
    return logits, {"steps": cache["steps"] + 1}


def run(num_beams, beam_search=None, batch=2, max_length=6):
    cache = {"steps": ops.zeros((batch,), "int32")}
    tokens = decode(
        toy_step, cache, batch, max_length, START, END, PAD, num_beams, beam_search=beam_search
    )
    return keras.ops.convert_to_numpy(tokens)


def log_probs_of(tokens):
    """The toy model's log-probability of each token of (batch, beams, time) candidates."""
    previous = np.concatenate([np.full(tokens.shape[:2] + (1,), START), tokens[..., :-1]], -1)
    return np.log(TABLE[previous, tokens])


def test_beam_search_finds_the_most_probable_sentence_greedy_decoding_misses():
    greedy = run(num_beams=1)
    assert greedy.shape == (2, 1, 6) and greedy[0, 0, 0] == A
    beams = run(num_beams=3)
    assert beams.shape == (2, 3, 6)
    keep = keras.ops.convert_to_numpy(cut_at_end(beams, END))
    ranks, _ = length_normalized_scores(log_probs_of(beams), keep, length_penalty=0.0)
    best = np.argmax(keras.ops.convert_to_numpy(ranks), axis=1)
    np.testing.assert_array_equal(beams[np.arange(2), best, :2], [[B, END], [B, END]])
    # A finished beam is padded after its end token and keeps its score.
    np.testing.assert_array_equal(beams[np.arange(2), best, 2:], 0)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(ranks)[np.arange(2), best], np.log(0.4 * 0.9), rtol=1e-5
    )


def test_greedy_decoding_equals_a_beam_search_of_width_one():
    np.testing.assert_array_equal(run(num_beams=1), run(num_beams=1, beam_search=True))


def test_greedy_decoding_refuses_more_than_one_beam():
    with pytest.raises(ValueError, match="one candidate"):
        run(num_beams=2, beam_search=False)


def test_padding_is_never_produced_and_the_output_stops_at_the_limit():
    tokens = run(num_beams=2, max_length=3)
    assert tokens.shape == (2, 2, 3)
    for row in tokens.reshape(-1, 3):
        ended = list(row).index(END) if END in row else len(row)
        assert PAD not in row[:ended] and all(token == PAD for token in row[ended + 1 :])


def test_length_penalty_ranks_by_total_or_mean_log_probability():
    log_probs = np.log([[[0.5, 0.5, 0.0], [0.9, 0.9, 0.9]]]).astype("float32")
    mask = np.array([[[True, False, False], [True, True, True]]])
    raw, mean = (
        keras.ops.convert_to_numpy(x) for x in length_normalized_scores(log_probs, mask, 0.0)
    )
    np.testing.assert_allclose(raw, [[np.log(0.5), 3 * np.log(0.9)]], rtol=1e-6)
    np.testing.assert_allclose(mean, [[np.log(0.5), np.log(0.9)]], rtol=1e-6)
    per_token, _ = length_normalized_scores(log_probs, mask, 1.0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(per_token), mean, rtol=1e-6)


def test_cut_at_end_keeps_the_end_token_and_all_of_an_unended_row():
    tokens = np.array([[4, 3, 4, 0], [4, 4, 4, 4]])
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(cut_at_end(tokens, END)),
        [[True, True, False, False], [True, True, True, True]],
    )


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="a TensorFlow graph")
def test_slice_update_without_xla_matches_keras_and_leaves_no_xla_op(tmp_path):
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(3, 7, 2)).astype("float32")
    for start, shape in (([0, 0, 0], (3, 1, 2)), ([1, 4, 1], (2, 3, 1)), ([0, 6, 0], (3, 1, 2))):
        updates = rng.normal(size=shape).astype("float32")
        expected = keras.ops.convert_to_numpy(keras.ops.slice_update(inputs, start, updates))
        with slice_update_without_xla():
            actual = keras.ops.slice_update(inputs, start, updates)
        np.testing.assert_array_equal(actual.numpy(), expected)

    original = keras.ops.slice_update
    module = tf.Module()

    def greedy(batch):
        with slice_update_without_xla():
            return decode(
                toy_step, {"steps": tf.zeros([batch], tf.int32)}, batch, 4, START, END, PAD, 2
            )

    module.decode = tf.function(greedy, input_signature=[tf.TensorSpec([], tf.int32)])
    tf.saved_model.save(module, str(tmp_path))
    graph = tf.saved_model.load(str(tmp_path)).signatures["serving_default"].graph.as_graph_def()
    op_types = {node.op for node in graph.node}
    op_types |= {node.op for function in graph.library.function for node in function.node_def}
    assert "While" in op_types or "StatelessWhile" in op_types
    assert xla_ops(op_types) == []
    assert keras.ops.slice_update is original  # Restored after the block.


def test_a_report_sweeps_widths_then_length_penalties_at_the_best_width_above_one():
    from zoo.generation.family import sweep_decoding

    # Greedy scores best of all at penalty 1, but the penalties are tried at width 3, the best
    # width above 1; the best row overall wins.
    table = {(1, 1.0): 30.0, (3, 1.0): 29.0, (5, 1.0): 28.0, (3, 0.5): 31.0, (3, 2.0): 20.0}
    calls = []

    def score(num_beams, length_penalty):
        calls.append((num_beams, length_penalty))
        return {
            "num_beams": num_beams,
            "length_penalty": length_penalty,
            "bleu": table[(num_beams, length_penalty)],
        }

    rows, best = sweep_decoding(score, (1, 3, 5), (0.5, 1.0, 2.0), key=lambda row: row["bleu"])
    assert calls == [(1, 1.0), (3, 1.0), (5, 1.0), (3, 0.5), (3, 2.0)]
    assert [row["bleu"] for row in rows] == [30.0, 29.0, 28.0, 31.0, 20.0]
    assert (best["num_beams"], best["length_penalty"]) == (3, 0.5)


def test_a_report_scores_one_setting_and_writes_nothing_when_asked(tmp_path, capsys):
    from zoo.generation.family import report_main

    reports, settings = [], []

    def score_setting(model_dir, num_beams, length_penalty):
        settings.append((model_dir, num_beams, length_penalty))
        return {"num_beams": num_beams, "length_penalty": length_penalty, "bleu": 12.5}

    def report(model_dir, choose):
        reports.append((model_dir, choose))

    argv = [str(tmp_path), "--setting", "5", "0.5"]
    assert report_main("nmt", report, "Doc.", argv, score_setting=score_setting) == 0
    assert settings == [(tmp_path, 5, 0.5)] and reports == []
    assert json.loads(capsys.readouterr().out) == {
        "num_beams": 5,
        "length_penalty": 0.5,
        "bleu": 12.5,
    }
    assert report_main("nmt", report, "Doc.", [str(tmp_path), "--choose"], score_setting) == 0
    assert reports == [(tmp_path, True)]
    with pytest.raises(SystemExit):  # Entries without a scorer have no --setting.
        report_main("nmt", report, "Doc.", [str(tmp_path), "--setting", "5", "0.5"])
