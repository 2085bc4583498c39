"""Shared autoregressive decoding: keras-hub samplers driven by recurrent states, for the
translation, language-model and captioning entries."""

from zoo.generation.decoding import (
    SAMPLERS,
    candidate_log_probs,
    cut_at_end,
    decode,
    decode_ranked,
    decoder_step,
    length_normalized_scores,
    make_sampler,
    rank_candidates,
    slice_update_without_xla,
)

__all__ = [
    "SAMPLERS",
    "candidate_log_probs",
    "cut_at_end",
    "decode",
    "decode_ranked",
    "decoder_step",
    "length_normalized_scores",
    "make_sampler",
    "rank_candidates",
    "slice_update_without_xla",
]
