"""Shared autoregressive decoding: keras-hub samplers driven by recurrent states, for the
translation, language-model and captioning entries."""

from zoo.generation.decoding import (
    cut_at_end,
    decode,
    length_normalized_scores,
    slice_update_without_xla,
)

__all__ = ["cut_at_end", "decode", "length_normalized_scores", "slice_update_without_xla"]
