"""tf.data transforms shared by every family: length bucketing, padding, document packing,
re-casing."""

from __future__ import annotations

import tensorflow as tf


def length_boundaries(max_length: int, step: int = 32) -> list[int]:
    """Bucket boundaries every `step` tokens up to `max_length`."""
    return list(range(step, max_length, step)) + [max_length]


def bucket_by_length(
    dataset: tf.data.Dataset,
    batch_size: int,
    max_length: int,
    step: int = 32,
    drop_remainder: bool = False,
    length_fn=None,
) -> tf.data.Dataset:
    """Batches examples of similar length, padded to their bucket's boundary.

    An example is a (features, label) pair by default, whose length is that of `features`;
    any other structure (dicts of sequences and labels, say) needs `length_fn(*element)`.
    Every sequence in an example (a tensor of rank 1 or more: time first) is right-padded,
    with 0 or "", to the bucket's boundary; scalars are just batched. Padding to fixed
    boundaries keeps the number of distinct batch shapes small (a handful of compilations
    under JAX / XLA), and grouping by length keeps the wasted padded steps few. Examples
    longer than `max_length` go to a last bucket, padded to their own length.
    """
    boundaries = length_boundaries(max_length, step)
    if length_fn is None:
        length_fn = lambda features, *_: tf.shape(features)[0]
    return dataset.bucket_by_sequence_length(
        element_length_func=length_fn,
        bucket_boundaries=[b + 1 for b in boundaries],
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        pad_to_bucket_boundary=False,
        drop_remainder=drop_remainder,
    ).map(_pad_to_boundary(boundaries), num_parallel_calls=tf.data.AUTOTUNE)


def _pad_to_boundary(boundaries):
    boundaries = tf.constant(boundaries)

    def pad(*element):
        sequences = [t for t in tf.nest.flatten(element) if t.shape.rank >= 2]
        length = tf.shape(sequences[0])[1]
        index = tf.reduce_sum(tf.cast(boundaries < length, tf.int32))
        target = tf.maximum(boundaries[tf.minimum(index, tf.size(boundaries) - 1)], length)

        def pad_sequence(tensor):
            if tensor.shape.rank < 2:
                return tensor
            paddings = [[0, 0], [0, target - tf.shape(tensor)[1]]]
            paddings += [[0, 0]] * (tensor.shape.rank - 2)
            return tf.pad(tensor, paddings, constant_values="" if tensor.dtype == tf.string else 0)

        padded = tf.nest.map_structure(pad_sequence, element)
        return padded if len(padded) > 1 else padded[0]

    return pad


def pack_documents(examples: tf.data.Dataset, max_tokens: int) -> tf.data.Dataset:
    """Consecutive sentences of one document packed end to end, up to `max_tokens` tokens.

    `examples` yields {"tokens", "tags", "document"} with a document's sentences consecutive
    (CoNLL's file order). Each packed example is {"tokens", "tags", "sentence_lengths"}: the
    tokens and tags of its sentences in order, and each sentence's length, so that per-token
    outputs split back into sentences. A sentence longer than `max_tokens` is packed alone.
    """
    packs = []
    for example in examples.as_numpy_iterator():
        length = len(example["tokens"])
        if not (
            packs
            and packs[-1]["document"] == example["document"]
            and sum(packs[-1]["sentence_lengths"]) + length <= max_tokens
        ):
            packs.append(
                {"document": example["document"], "tokens": [], "tags": [], "sentence_lengths": []}
            )
        packs[-1]["tokens"] += list(example["tokens"])
        packs[-1]["tags"] += list(example["tags"])
        packs[-1]["sentence_lengths"].append(length)

    def generate():
        for pack in packs:
            yield {key: pack[key] for key in ("tokens", "tags", "sentence_lengths")}

    return tf.data.Dataset.from_generator(
        generate,
        output_signature={
            "tokens": tf.TensorSpec([None], tf.string),
            "tags": tf.TensorSpec([None], tf.string),
            "sentence_lengths": tf.TensorSpec([None], tf.int32),
        },
    )


# The text features of a tagged sentence (the others, tags and intents, keep their case).
TEXT_KEYS = ("text", "tokens")
CASES = ("lower", "upper")


def recased(example: dict, case: str) -> dict:
    """A tagged sentence with its text lower-cased or upper-cased, its tags as they were."""
    if case not in CASES:
        raise ValueError(f"case must be one of {', '.join(CASES)}, got {case!r}.")
    change = tf.strings.lower if case == "lower" else tf.strings.upper
    return {
        key: change(value, encoding="utf-8") if key in TEXT_KEYS else value
        for key, value in example.items()
    }


def with_casing_copies(examples: tf.data.Dataset, fraction: float, seed: int) -> tf.data.Dataset:
    """Each tagged sentence, then a lower-cased copy of it with probability `fraction` and an
    upper-cased copy with probability `fraction` (drawn apart), as Mayhew et al. (2019) train
    one tagger for cased and uncased text. Which sentences get copies depends on the seed and
    each sentence's position only, so the result is the same every epoch and can be cached."""

    def copies(index, example):
        draws = tf.random.stateless_uniform(
            [2], seed=tf.stack([tf.constant(seed, tf.int64), index])
        )
        single = tf.data.Dataset.from_tensors
        return (
            single(example)
            .concatenate(
                single(recased(example, "lower")).take(tf.cast(draws[0] < fraction, tf.int64))
            )
            .concatenate(
                single(recased(example, "upper")).take(tf.cast(draws[1] < fraction, tf.int64))
            )
        )

    return examples.enumerate().flat_map(copies)
