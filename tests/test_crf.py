"""The CRF layer against brute-force enumeration of all tag paths, and span F1 against seqeval."""

import itertools

import keras
import numpy as np
import pytest

from zoo.layers.crf import CRF

NUM_TAGS, LENGTH = 3, 4
LENGTHS = [4, 2, 1]  # Real steps of each sequence; the rest is padding.


@pytest.fixture(scope="module")
def example():
    rng = np.random.default_rng(7)
    crf = CRF(NUM_TAGS)
    crf.build((None, None, NUM_TAGS))
    transitions = rng.normal(size=(NUM_TAGS, NUM_TAGS)).astype("float32")
    start = rng.normal(size=NUM_TAGS).astype("float32")
    end = rng.normal(size=NUM_TAGS).astype("float32")
    crf.set_weights([transitions, start, end])
    potentials = rng.normal(size=(len(LENGTHS), LENGTH, NUM_TAGS)).astype("float32")
    mask = np.arange(LENGTH)[None, :] < np.array(LENGTHS)[:, None]

    def path_score(row, path):
        score = start[path[0]] + end[path[-1]] + potentials[row, 0, path[0]]
        for step in range(1, len(path)):
            score += transitions[path[step - 1], path[step]] + potentials[row, step, path[step]]
        return score

    def all_paths(row):
        paths = list(itertools.product(range(NUM_TAGS), repeat=LENGTHS[row]))
        return paths, np.array([path_score(row, path) for path in paths], dtype="float64")

    return crf, potentials, mask, all_paths


def numpy(tensor):
    return keras.ops.convert_to_numpy(tensor)


def test_forward_algorithm_negative_log_likelihood_equals_brute_force(example):
    crf, potentials, mask, all_paths = example
    rng = np.random.default_rng(0)
    tags = rng.integers(0, NUM_TAGS, size=(len(LENGTHS), LENGTH))
    nll = numpy(crf.negative_log_likelihood(potentials, tags, mask))
    for row, length in enumerate(LENGTHS):
        paths, scores = all_paths(row)
        log_partition = np.log(np.exp(scores).sum())
        gold = scores[paths.index(tuple(tags[row, :length]))]
        np.testing.assert_allclose(nll[row], log_partition - gold, rtol=1e-5, atol=1e-5)


def test_viterbi_equals_brute_force_argmax_and_pads_with_zeros(example):
    crf, potentials, mask, all_paths = example
    tags, best_scores = crf.viterbi_decode(potentials, mask)
    tags, best_scores = numpy(tags), numpy(best_scores)
    assert tags.dtype == np.int32 and tags.shape == (len(LENGTHS), LENGTH)
    for row, length in enumerate(LENGTHS):
        paths, scores = all_paths(row)
        assert tuple(tags[row, :length]) == paths[int(scores.argmax())]
        assert np.all(tags[row, length:] == 0)
        np.testing.assert_allclose(best_scores[row], scores.max(), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(numpy(crf(potentials, mask=mask)), tags)


def test_marginals_equal_brute_force_and_are_zero_on_padding(example):
    crf, potentials, mask, all_paths = example
    marginals = numpy(crf.marginals(potentials, mask))
    for row, length in enumerate(LENGTHS):
        paths, scores = all_paths(row)
        probabilities = np.exp(scores - np.log(np.exp(scores).sum()))
        for step in range(length):
            for tag in range(NUM_TAGS):
                expected = probabilities[[path[step] == tag for path in paths]].sum()
                np.testing.assert_allclose(marginals[row, step, tag], expected, atol=1e-5)
        assert np.all(marginals[row, length:] == 0)


def test_padding_changes_nothing(example):
    crf, potentials, _, _ = example
    row = potentials[1:2, :2]  # Length 2, no padding.
    padded = np.concatenate([row, np.full((1, 5, NUM_TAGS), 9.0, "float32")], axis=1)
    padded_mask = np.arange(7)[None, :] < 2
    tags = np.array([[2, 1]])
    padded_tags = np.array([[2, 1, 0, 2, 2, 1, 0]])
    np.testing.assert_allclose(
        numpy(crf.negative_log_likelihood(row, tags)),
        numpy(crf.negative_log_likelihood(padded, padded_tags, padded_mask)),
        rtol=1e-6,
    )
    np.testing.assert_array_equal(numpy(crf(row))[0], numpy(crf(padded, mask=padded_mask))[0, :2])


def test_gradients_are_finite_and_reach_the_transitions():
    import tensorflow as tf

    if keras.backend.backend() != "tensorflow":
        pytest.skip("gradient check written with tf.GradientTape")
    crf = CRF(4)
    crf.build((None, None, 4))
    potentials = tf.constant(np.random.default_rng(1).normal(size=(2, 5, 4)).astype("float32"))
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    with tf.GradientTape() as tape:
        tape.watch(potentials)
        loss = tf.reduce_mean(crf.negative_log_likelihood(potentials, np.ones((2, 5)), mask))
    gradients = tape.gradient(loss, [potentials, *crf.trainable_variables])
    assert all(np.all(np.isfinite(g.numpy())) for g in gradients)
    assert np.all(gradients[0].numpy()[0, 3:] == 0)  # Padded steps get no gradient.
    assert np.abs(gradients[1].numpy()).sum() > 0


def test_crf_config_round_trip_and_errors():
    crf = CRF(5, name="crf")
    assert CRF.from_config(crf.get_config()).get_config() == crf.get_config()
    with pytest.raises(ValueError, match="num_tags must be a positive integer"):
        CRF(0)


def test_sequences_of_one_step_equal_brute_force_on_every_backend(example):
    crf, potentials, _, all_paths = example
    paths, scores = all_paths(2)  # Row 2 of the example has one real step.
    tags, best = crf.viterbi_decode(potentials[2:3, :1])
    assert numpy(tags).shape == (1, 1) and tuple(numpy(tags)[0]) == paths[int(scores.argmax())]
    np.testing.assert_allclose(numpy(best)[0], scores.max(), atol=1e-5)
    marginals = numpy(crf.marginals(potentials[2:3, :1]))
    np.testing.assert_allclose(marginals[0, 0], np.exp(scores) / np.exp(scores).sum(), atol=1e-5)
    assert numpy(crf.marginals(potentials[:, :0])).shape == (len(LENGTHS), 0, NUM_TAGS)


def test_sequences_of_at_most_one_step_decode_in_a_graph_of_unknown_shape(example):
    """Issue 16: a served tagger failed ("Tried to stack elements of an empty list") when the
    longest sentence of a batch had one token or none: the scans run over time - 1 steps, and
    TensorFlow's cannot stack zero outputs of an unknown batch size."""
    import tensorflow as tf

    if keras.backend.backend() != "tensorflow":
        pytest.skip("exported graphs are TensorFlow's")
    crf, potentials, _, all_paths = example
    spec = [
        tf.TensorSpec([None, None, NUM_TAGS], tf.float32),
        tf.TensorSpec([None, None], tf.bool),
    ]

    @tf.function(input_signature=spec)
    def outputs(potentials, mask):
        tags, _ = crf.viterbi_decode(potentials, mask)
        return tags, crf.marginals(potentials, mask), crf.log_partition(potentials, mask)

    # Row 2 of the example has one real step; a second sentence of the batch is empty.
    one_step = np.concatenate([potentials[2:3, :1], potentials[:1, :1]])
    mask = np.array([[True], [False]])
    tags, marginals, log_partition = (t.numpy() for t in outputs(one_step, mask))
    paths, scores = all_paths(2)
    log_z = np.log(np.exp(scores).sum())
    assert tags.shape == (2, 1) and tuple(tags[0]) == paths[int(scores.argmax())]
    assert tags[1, 0] == 0 and np.all(marginals[1] == 0)
    np.testing.assert_allclose(marginals[0, 0], np.exp(scores - log_z), atol=1e-5)
    np.testing.assert_allclose(log_partition[0], log_z, atol=1e-5)
    for shape in ((2, 0), (0, 1), (0, 0)):  # No steps; an empty batch.
        zeros = np.zeros((*shape, NUM_TAGS), "float32")
        tags, marginals, log_partition = outputs(zeros, np.ones(shape, bool))
        assert tags.shape == shape and marginals.shape == (*shape, NUM_TAGS)
        assert log_partition.shape == shape[:1]


def test_marginals_stay_within_zero_and_one():
    """Served `tag_probability` was 1.0000153: exp(alpha + beta - log Z) rounds above 1 in
    float32 (on these scores, up to 1.00006 before the marginals were clipped)."""
    rng = np.random.default_rng(0)
    crf = CRF(5)
    crf.build((None, None, 5))
    crf.set_weights([10 * rng.normal(size=shape).astype("float32") for shape in ((5, 5), 5, 5)])
    potentials = 10 * rng.normal(size=(8, 30, 5)).astype("float32")
    marginals = numpy(crf.marginals(potentials))
    assert marginals.max() <= 1.0 and marginals.min() >= 0.0
