"""tf.data transforms shared by every family: length bucketing, padding, prefetch."""

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
) -> tf.data.Dataset:
    """Batches (features, label) pairs of similar length, padded to their bucket's boundary.

    Sequences are right-padded with 0. Padding to fixed boundaries keeps the number of
    distinct batch shapes small (a handful of compilations under JAX / XLA), and grouping by
    length keeps the wasted padded steps few.
    """
    boundaries = length_boundaries(max_length, step)
    return dataset.bucket_by_sequence_length(
        element_length_func=lambda features, *_: tf.shape(features)[0],
        bucket_boundaries=[b + 1 for b in boundaries],
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        pad_to_bucket_boundary=False,
        drop_remainder=drop_remainder,
    ).map(_pad_to_boundary(boundaries), num_parallel_calls=tf.data.AUTOTUNE)


def _pad_to_boundary(boundaries):
    boundaries = tf.constant(boundaries)

    def pad(features, *rest):
        length = tf.shape(features)[1]
        target = boundaries[tf.reduce_sum(tf.cast(boundaries < length, tf.int32))]
        features = tf.pad(features, [[0, 0], [0, target - length]])
        return (features, *rest)

    return pad
