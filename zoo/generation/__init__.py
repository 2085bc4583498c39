"""Shared autoregressive decoding: keras-hub samplers driven by recurrent states, for the
translation, language-model and captioning entries."""

from zoo.generation.decoding import (
    SAMPLERS,
    cut_at_end,
    decode,
    length_normalized_scores,
    make_sampler,
    slice_update_without_xla,
)

__all__ = [
    "SAMPLERS",
    "cut_at_end",
    "decode",
    "length_normalized_scores",
    "make_sampler",
    "slice_update_without_xla",
]
