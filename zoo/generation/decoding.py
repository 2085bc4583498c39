"""Greedy and beam-search decoding with `keras_hub.samplers`, the model's recurrent states
(and anything else per sequence, such as an encoder's outputs) as the sampler's cache.

The samplers write each new token with `keras.ops.slice_update`, which Keras's TensorFlow
backend lowers to `XlaDynamicUpdateSlice`: an op TF Serving cannot run on GPU and a graph
should not need. `slice_update_without_xla` swaps in a `tf.pad` + `tf.where` version while a
decoding function is traced, so exported graphs hold no `Xla*` op.
"""

from __future__ import annotations

import contextlib

import keras
import keras_hub
from keras import ops

SAMPLERS = ("greedy", "top_k", "top_p", "random")

# Logit given to tokens a step may not produce: far below any real logit, yet finite.
FORBIDDEN = -1e9


def without_token(token_id: int):
    """A logits transform (to float32) under which `token_id` is never produced nor scored:
    its logit is forbidden. The unknown-word id: a "⁇" or "<unk>" in an output helps nobody."""

    def transform(logits):
        forbidden = ops.equal(ops.arange(ops.shape(logits)[-1]), token_id)
        return ops.where(forbidden, FORBIDDEN, ops.cast(logits, "float32"))

    return transform


def _slice_update_with_core_ops(inputs, start_indices, updates):
    """`keras.ops.slice_update` with core TF ops: `updates` padded into place, then selected."""
    import tensorflow as tf

    inputs = tf.convert_to_tensor(inputs)
    updates = tf.cast(updates, inputs.dtype)
    start = tf.cast(tf.stack([tf.cast(index, tf.int32) for index in start_indices]), tf.int32)
    update_shape = tf.shape(updates, out_type=tf.int32)
    paddings = tf.stack([start, tf.shape(inputs, out_type=tf.int32) - start - update_shape], 1)
    inside = tf.pad(tf.ones_like(updates, dtype=tf.bool), paddings, constant_values=False)
    return tf.where(inside, tf.pad(updates, paddings), inputs)


@contextlib.contextmanager
def slice_update_without_xla():
    """While active (on the TensorFlow backend), `keras.ops.slice_update` runs with core TF ops
    instead of `XlaDynamicUpdateSlice`. Trace decoding functions inside it."""
    if keras.backend.backend() != "tensorflow":
        yield
        return
    original = keras.ops.slice_update
    # keras-hub's samplers call `ops.slice_update` on the `keras.ops` module at run time.
    keras.ops.slice_update = _slice_update_with_core_ops
    try:
        yield
    finally:
        keras.ops.slice_update = original


def decode(
    step,
    cache,
    batch_size,
    max_length: int,
    start_id: int,
    end_id: int,
    pad_id: int = 0,
    num_beams: int = 1,
    beam_search: bool | None = None,
    model=None,
    sampler=None,
):
    """Decodes up to `max_length` tokens after a start token, greedily, by beam search, or
    with another `keras_hub.samplers` sampler (top-k, top-p, random: one candidate).

    `step(token_ids, cache) -> (logits, cache)` runs the model one token on: the previous
    tokens (batch,) and the cache -> next-token logits (batch, vocabulary) and the new cache.
    `cache` is a structure of tensors with the batch first (recurrent states, an encoder's
    outputs and mask); beam search repeats it per beam and reorders it with the beams.

    A sequence that has produced `end_id` is finished: from then on it can only add `pad_id`
    at no cost, so a finished beam keeps its score and is not extended. `pad_id` is never
    produced otherwise. Decoding stops when every sequence has ended, or after `max_length`
    tokens.

    `start_id`: an int, or an int tensor (batch,) of each sequence's own start token (a
    language model's last prompt word).
    `beam_search`: None runs `GreedySampler` for one beam and `BeamSampler` for more; True or
    False forces one (a beam search of width 1 is greedy decoding). `sampler`: a keras-hub
    sampler to run instead (one candidate per sequence).

    Returns:
        int32 tensor (batch, num_beams, max_length): each candidate's tokens after the start
        token, the end token included and padding after it; beams in keras-hub's order (the
        best raw log-probability first). Rank them with `length_normalized_scores`.
    """
    total = max_length + 1
    if isinstance(start_id, int):
        start = ops.full((batch_size, 1), start_id, dtype="int32")
    else:
        start = ops.reshape(ops.cast(start_id, "int32"), (batch_size, 1))
    prompt = ops.concatenate(
        [
            start,
            ops.zeros((batch_size, max_length), dtype="int32"),
        ],
        axis=1,
    )
    mask = ops.concatenate(
        [ops.ones((batch_size, 1), dtype="bool"), ops.zeros((batch_size, max_length), "bool")],
        axis=1,
    )

    def next_logits(prompt, cache, index):
        previous = ops.take(prompt, index - 1, axis=1)
        logits, cache = step(previous, cache)
        logits = ops.cast(logits, "float32")
        vocabulary = ops.shape(logits)[-1]
        is_pad = ops.equal(ops.arange(vocabulary), pad_id)[None, :]
        positions = ops.arange(total)[None, :]
        ended = ops.any(ops.equal(prompt, end_id) & (positions >= 1) & (positions < index), axis=1)[
            :, None
        ]
        only_pad = ops.where(is_pad, 0.0, FORBIDDEN)
        logits = ops.where(ended, only_pad, ops.where(is_pad, FORBIDDEN, logits))
        return logits, None, cache

    if sampler is not None:
        if num_beams != 1:
            raise ValueError(f"A sampler keeps one candidate; got num_beams={num_beams}.")
        tokens = sampler(
            next_logits, prompt, cache, index=1, mask=mask, stop_token_ids=[end_id], model=model
        )
        return ops.cast(tokens[:, None, 1:], "int32")
    if beam_search is None:
        beam_search = num_beams > 1
    if not beam_search:
        if num_beams != 1:
            raise ValueError(f"Greedy decoding keeps one candidate; got num_beams={num_beams}.")
        sampler = keras_hub.samplers.GreedySampler()
        tokens = sampler(
            next_logits, prompt, cache, index=1, mask=mask, stop_token_ids=[end_id], model=model
        )
        tokens = tokens[:, None, :]
    else:
        sampler = keras_hub.samplers.BeamSampler(num_beams=num_beams, return_all_beams=True)
        tokens, _ = sampler(
            next_logits, prompt, cache, index=1, mask=mask, stop_token_ids=[end_id], model=model
        )
    return ops.cast(tokens[:, :, 1:], "int32")


def cut_at_end(tokens, end_id: int):
    """Mask (same shape as `tokens`, time last) of the tokens up to and including the first
    `end_id`; all of them where there is none (a sequence cut at the maximum length)."""
    ended_before = ops.cumsum(ops.cast(ops.equal(tokens, end_id), "int32"), axis=-1)
    ended_before = ended_before - ops.cast(ops.equal(tokens, end_id), "int32")
    return ops.equal(ended_before, 0)


def length_normalized_scores(token_log_probs, mask, length_penalty: float = 1.0):
    """(ranking key, mean log-probability per token) of candidates whose tokens (up to and
    including the end token) `mask` marks: the ranking key is the total log-probability divided
    by `length ** length_penalty` (0: raw log-probability, favouring short outputs; 1: the
    mean per token)."""
    total = ops.sum(ops.where(mask, ops.cast(token_log_probs, "float32"), 0.0), axis=-1)
    length = ops.maximum(ops.sum(ops.cast(mask, "float32"), axis=-1), 1.0)
    return total / ops.power(length, length_penalty), total / length


def make_sampler(
    name: str, top_k: int = 40, top_p: float = 0.9, temperature: float = 1.0, seed=None
):
    """A keras-hub sampler by name: "greedy" (the most likely word), "top_k" (sampled from the
    `top_k` most likely), "top_p" (from the smallest set holding `top_p` of the probability,
    nucleus sampling) or "random" (from the whole distribution); `temperature` divides the
    logits before sampling (below 1: safer, above 1: more varied)."""
    samplers = keras_hub.samplers
    if name == "greedy":
        return samplers.GreedySampler()
    if name == "top_k":
        return samplers.TopKSampler(k=top_k, temperature=temperature, seed=seed)
    if name == "top_p":
        return samplers.TopPSampler(p=top_p, temperature=temperature, seed=seed)
    if name == "random":
        return samplers.RandomSampler(temperature=temperature, seed=seed)
    raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}; got {name!r}.")


def decoder_step(decoder, token_ids, cache):
    """One step of an `AttentionDecoder` for `decode`: the previous tokens (batch,) and the cache
    {"states", "memory", "keys", "memory_mask"} -> (next-token logits, the cache with the new
    states)."""
    logits, states, _ = decoder.step(
        token_ids, cache["states"], cache["memory"], cache["keys"], cache["memory_mask"]
    )
    return logits, {**cache, "states": states}


def candidate_log_probs(
    decoder,
    encode,
    source,
    candidates,
    start_id: int,
    end_id: int,
    pad_id: int = 0,
    return_attention: bool = False,
    float_logits=None,
):
    """Teacher-forced log-probability of each candidate token (batch, beams, time) under an
    `AttentionDecoder`, 0 after the first `end_id`; with `return_attention`, also the attention
    weights (batch, beams, time, memory time).

    `encode(source)` gives the decoding cache ({"states", "memory", "memory_mask", ...}) of the
    source (batch first), here repeated per beam. `float_logits(logits)` casts the logits to
    float32 (and may forbid tokens); by default a plain cast.
    """
    batch, beams, steps = (ops.shape(candidates)[i] for i in range(3))
    flat = ops.reshape(candidates, (-1, steps))
    keep = cut_at_end(flat, end_id)
    labels = ops.where(keep, flat, pad_id)
    inputs = ops.concatenate(
        [ops.full((ops.shape(flat)[0], 1), start_id, dtype="int32"), labels[:, :-1]], axis=1
    )
    cache = encode(ops.repeat(source, beams, axis=0))
    logits, weights = decoder(
        inputs, cache["memory"], cache["memory_mask"], cache["states"], return_attention=True
    )
    logits = ops.cast(logits, "float32") if float_logits is None else float_logits(logits)
    log_probs = ops.log_softmax(logits, axis=-1)
    chosen = ops.take_along_axis(log_probs, labels[:, :, None], axis=-1)[:, :, 0]
    chosen = ops.reshape(ops.where(keep, chosen, 0.0), (batch, beams, steps))
    if return_attention:
        weights = ops.reshape(weights, (batch, beams, steps, ops.shape(weights)[-1]))
        return chosen, weights
    return chosen


def rank_candidates(candidates, log_probs, end_id: int, pad_id: int = 0, length_penalty=1.0):
    """Decoded candidates (batch, beams, time) and their tokens' log-probabilities -> {
    "token_ids": (batch, beams, time) int32, each candidate's tokens with the end token and
    what follows it set to `pad_id`; "scores": (batch, beams) their mean log-probability per
    token (end token included); "ranks": their ranking keys (log-probability / length **
    length_penalty)}, candidates sorted by rank, best first."""
    keep = cut_at_end(candidates, end_id)
    ranks, scores = length_normalized_scores(log_probs, keep, length_penalty)
    order = ops.argsort(-ranks, axis=-1)
    words = ops.where(keep & ops.not_equal(candidates, end_id), candidates, pad_id)
    return {
        "token_ids": ops.take_along_axis(words, order[:, :, None], axis=1),
        "scores": ops.take_along_axis(scores, order, axis=1),
        "ranks": ops.take_along_axis(ranks, order, axis=1),
    }


def decode_ranked(
    model,
    step,
    source,
    max_length: int,
    start_id: int,
    end_id: int,
    pad_id: int = 0,
    num_beams: int | None = None,
    length_penalty: float | None = None,
    beam_search: bool | None = None,
):
    """`decode` then `rank_candidates` for an encoder-decoder `model` (the translator, the
    captioner): `model.encode(source)` gives the decoding cache, `step` runs one token on (see
    `decode`) and `model.token_log_probs(source, candidates)` rescores the candidates;
    `num_beams` and `length_penalty` default to the model's. Returns `rank_candidates`'s
    dict."""
    num_beams = num_beams or model.num_beams
    length_penalty = model.length_penalty if length_penalty is None else length_penalty
    batch = ops.shape(source)[0]
    candidates = decode(
        step,
        model.encode(source),
        batch,
        max_length,
        start_id,
        end_id,
        pad_id,
        num_beams=num_beams,
        beam_search=beam_search,
        model=model,
    )
    log_probs = model.token_log_probs(source, candidates)
    return rank_candidates(candidates, log_probs, end_id, pad_id, length_penalty)
