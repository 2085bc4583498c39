"""The shared vocabulary helpers: StringLookup ids, their inverse, and the ranking of words."""

import numpy as np
import pytest
import tensorflow as tf

from zoo.vocabulary import OOV_ID, PAD_ID, most_frequent_words, string_lookup


def test_string_lookup_gives_the_zoo_ids_and_inverts_them():
    words = string_lookup(["the", "cat", "café"])
    ids = words(tf.ragged.constant([["the", "café", "dog"], ["cat"]]))
    assert ids.to_list() == [[2, 4, OOV_ID], [3]]
    assert words(tf.constant("")).numpy() == PAD_ID
    back = string_lookup(["the", "cat", "café"], invert=True)
    decoded = back(tf.constant([2, 4, OOV_ID, PAD_ID, 99], dtype=tf.int64)).numpy()
    assert [w.decode("utf-8") for w in decoded] == ["the", "café", "[UNK]", "", "[UNK]"]


def test_string_lookup_takes_another_oov_token():
    words = string_lookup(["the", "cat"], oov_token="<unk>")
    np.testing.assert_array_equal(words(tf.constant(["cat", "zebra"])).numpy(), [3, OOV_ID])
    back = string_lookup(["the", "cat"], oov_token="<unk>", invert=True)
    assert back(tf.constant([1], dtype=tf.int64)).numpy().tolist() == [b"<unk>"]


@pytest.mark.parametrize(
    "vocabulary, message",
    [(["a", "b", "a"], "duplicate"), (["a", ""], "reserved"), (["[UNK]"], "reserved")],
)
def test_string_lookup_refuses_ambiguous_vocabularies(vocabulary, message):
    with pytest.raises(ValueError, match=message):
        string_lookup(vocabulary)


def test_most_frequent_words_breaks_ties_by_the_word():
    sentences = [["b", "a", "c"], ["a", "b"], ["d"]]
    assert most_frequent_words(sentences, 3) == ["a", "b", "c"]
