import keras
from keras import ops

# The fewest time steps the CRF's scans run on (see `CRF._pad_steps`).
MIN_STEPS = 2


@keras.saving.register_keras_serializable(package="zoo")
class CRF(keras.layers.Layer):
    """A linear-chain conditional random field over per-token tag scores.

    Learns a score for every pair of consecutive tags (`transitions[previous, next]`) and for
    the first and last tag of a sequence. `call` returns the best tag sequence (Viterbi
    decoding); `negative_log_likelihood` is the training loss (the forward algorithm) and
    `marginals` the per-token tag probabilities (forward-backward). Everything is written in
    `keras.ops`, so it runs on the TensorFlow, JAX and torch backends, and inside an exported
    TensorFlow graph.

    Sequences are right-padded and `mask` marks their real steps (True) and padding (False).
    Padded steps add no score and do not change the tags of real steps; decoded tags at padded
    steps are 0. The first step of every sequence is always scored, so a sequence of length 0
    is treated as if its first step were real (its outputs are padding anyway).

    Args:
        num_tags: int. Number of tags (the last axis of the scores).

    Examples:
    >>> crf = CRF(num_tags=5)
    >>> tags = crf(tag_scores, mask=mask)  # (batch, time) int32, Viterbi decoding
    >>> loss = ops.mean(crf.negative_log_likelihood(tag_scores, gold_tags, mask))
    """

    def __init__(self, num_tags, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(num_tags, int) or num_tags < 1:
            raise ValueError(f"num_tags must be a positive integer, got {num_tags!r}.")
        # === Config ===
        self.num_tags = num_tags
        self.supports_masking = True

    def build(self, input_shape=None):
        # Zeros: the CRF starts as independent per-token softmaxes and learns its transitions.
        self.transitions = self.add_weight(
            shape=(self.num_tags, self.num_tags), initializer="zeros", name="transitions"
        )
        self.start_transitions = self.add_weight(
            shape=(self.num_tags,), initializer="zeros", name="start_transitions"
        )
        self.end_transitions = self.add_weight(
            shape=(self.num_tags,), initializer="zeros", name="end_transitions"
        )
        self.built = True

    def _prepare(self, potentials, mask, pad=True):
        """Float32 scores, the boolean mask, and the mask with every first step set True.

        With `pad`, sequences shorter than `MIN_STEPS` get padded steps appended (see
        `_pad_steps`); callers slice per-step outputs back to the input's length.
        """
        potentials = ops.cast(ops.convert_to_tensor(potentials), "float32")
        shape = ops.shape(potentials)
        if mask is None:
            mask = ops.ones(shape[:2], dtype="bool")
        mask = ops.cast(mask, "bool")
        if pad:
            potentials, mask = self._pad_steps(potentials, mask)
        first_step = ops.expand_dims(ops.arange(ops.shape(potentials)[1]) == 0, 0)
        return potentials, mask, ops.logical_or(mask, first_step)

    @staticmethod
    def _pad_steps(potentials, mask):
        """Appends padded steps (mask False) up to `MIN_STEPS` steps.

        The scans run over the steps after the first; over none, TensorFlow's `ops.scan` fails
        where the batch size is unknown (an exported graph: "Tried to stack elements of an
        empty list"), e.g. for a batch of one-word or empty sentences. Padded steps change no
        output. A static length of `MIN_STEPS` or more (JAX, torch, Keras's padded batches)
        is returned as it is.
        """
        length = ops.shape(potentials)[1]
        if isinstance(length, int):
            if length >= MIN_STEPS:
                return potentials, mask
            missing = MIN_STEPS - length
        else:  # Unknown in a TensorFlow graph: pad by 0 or more.
            missing = ops.maximum(MIN_STEPS - length, 0)
        potentials = ops.pad(potentials, [[0, 0], [0, missing], [0, 0]])
        # Padded as integers: not every backend pads boolean tensors.
        mask = ops.pad(ops.cast(mask, "int32"), [[0, 0], [0, missing]])
        return potentials, ops.cast(mask, "bool")

    @staticmethod
    def _unpad(per_step, reference):
        """`per_step` (batch, time, ...) cut back to the time axis of `reference`."""
        length = ops.shape(reference)[1]
        if isinstance(length, int) and length >= MIN_STEPS:
            return per_step
        return per_step[:, :length]

    def _weights(self):
        return (
            ops.cast(self.transitions, "float32"),
            ops.cast(self.start_transitions, "float32"),
            ops.cast(self.end_transitions, "float32"),
        )

    @staticmethod
    def _steps(potentials, mask):
        """The scores and mask of the steps after the first, time-major: (time - 1, batch, tags + 1).

        One tensor, not a tuple: TensorFlow's `ops.scan` fails on several inputs of unknown length.
        """
        steps = ops.concatenate([potentials, ops.cast(mask, "float32")[:, :, None]], axis=-1)
        return ops.transpose(steps[:, 1:], (1, 0, 2))

    @staticmethod
    def _split_step(step_inputs):
        return step_inputs[:, :-1], step_inputs[:, -1] > 0.5

    def sequence_score(self, potentials, tags, mask=None):
        """Unnormalised log score of the given tag sequences, shape (batch,)."""
        potentials, _, mask = self._prepare(potentials, mask, pad=False)  # No scan here.
        transitions, start, end = self._weights()
        tags = ops.cast(tags, "int32")
        valid = ops.cast(mask, "float32")
        emissions = ops.take_along_axis(potentials, ops.expand_dims(tags, -1), axis=-1)[..., 0]
        score = ops.sum(emissions * valid, axis=1)
        pair_index = tags[:, :-1] * self.num_tags + tags[:, 1:]
        pair_scores = ops.take(ops.reshape(transitions, (-1,)), pair_index)
        score += ops.sum(pair_scores * valid[:, 1:], axis=1)
        score += ops.take(start, tags[:, 0])
        last_index = ops.sum(ops.cast(mask, "int32"), axis=1) - 1
        last_tags = ops.take_along_axis(tags, ops.expand_dims(last_index, 1), axis=1)[:, 0]
        return score + ops.take(end, last_tags)

    def _forward(self, potentials, mask):
        """Forward variables: the log-sum of all paths ending in each tag, at every step."""
        transitions, start, _ = self._weights()
        alpha = start[None, :] + potentials[:, 0]

        def step(alpha, inputs):
            emissions, step_mask = self._split_step(inputs)
            scores = ops.logsumexp(alpha[:, :, None] + transitions[None], axis=1) + emissions
            alpha = ops.where(step_mask[:, None], scores, alpha)
            return alpha, alpha

        _, alphas = ops.scan(step, alpha, self._steps(potentials, mask))
        return ops.concatenate([alpha[None], alphas], axis=0)  # (time, batch, tags)

    def log_partition(self, potentials, mask=None):
        """Log of the sum of the scores of all tag sequences, shape (batch,)."""
        potentials, _, mask = self._prepare(potentials, mask)
        _, _, end = self._weights()
        alphas = self._forward(potentials, mask)
        return ops.logsumexp(alphas[-1] + end[None, :], axis=1)

    def negative_log_likelihood(self, potentials, tags, mask=None):
        """-log p(tags | potentials) for each sequence, shape (batch,)."""
        return self.log_partition(potentials, mask) - self.sequence_score(potentials, tags, mask)

    def marginals(self, potentials, mask=None):
        """p(tag at step t | potentials) for every step and tag, shape (batch, time, tags).

        Rows of padded steps are 0. Values are clipped to [0, 1]: in float32,
        exp(alpha + beta - log Z) can exceed 1 by rounding (1.0000153 was served).
        """
        inputs = potentials
        potentials, given_mask, mask = self._prepare(potentials, mask)
        transitions, _, end = self._weights()
        alphas = self._forward(potentials, mask)
        beta_last = ops.zeros_like(potentials[:, 0]) + end[None, :]

        def step(beta_next, inputs):
            emissions, step_mask = self._split_step(inputs)  # Of the step after this one.
            beta = ops.logsumexp(transitions[None] + (emissions + beta_next)[:, None, :], axis=2)
            # Where the next step is padding, this one is the last: only the end score follows.
            beta = ops.where(step_mask[:, None], beta, beta_last)
            return beta, beta

        _, betas = ops.scan(
            step,
            beta_last,
            self._steps(potentials, mask),
            reverse=True,
        )
        betas = ops.concatenate([betas, beta_last[None]], axis=0)
        log_partition = ops.logsumexp(alphas[-1] + end[None, :], axis=1)
        log_marginals = alphas + betas - log_partition[None, :, None]
        marginals = ops.clip(ops.transpose(ops.exp(log_marginals), (1, 0, 2)), 0.0, 1.0)
        return self._unpad(marginals * ops.cast(given_mask, "float32")[:, :, None], inputs)

    def viterbi_decode(self, potentials, mask=None):
        """The highest-scoring tag sequences (batch, time) int32 and their scores (batch,)."""
        inputs = potentials
        potentials, given_mask, mask = self._prepare(potentials, mask)
        transitions, start, end = self._weights()
        identity = ops.arange(self.num_tags, dtype="int32")[None, :]

        # The carry holds the backpointers too: TensorFlow's `ops.scan` stacks outputs that
        # must match the carry's structure and dtypes.
        def step(carry, inputs):
            score, _ = carry
            emissions, step_mask = self._split_step(inputs)
            candidates = score[:, :, None] + transitions[None]  # (batch, previous, next)
            best_previous = ops.cast(ops.argmax(candidates, axis=1), "int32")
            next_score = ops.max(candidates, axis=1) + emissions
            # Padded steps keep the score and point each tag back to itself.
            score = ops.where(step_mask[:, None], next_score, score)
            backpointers = ops.where(step_mask[:, None], best_previous, identity)
            return (score, backpointers), (score, backpointers)

        first_score = start[None, :] + potentials[:, 0]
        (score, _), (_, backpointers) = ops.scan(
            step,
            (first_score, ops.zeros_like(first_score, dtype="int32") + identity),
            self._steps(potentials, mask),
        )
        final_scores = score + end[None, :]
        last_tags = ops.cast(ops.argmax(final_scores, axis=1), "int32")

        def backtrack(next_tags, step_backpointers):
            tags = ops.take_along_axis(step_backpointers, next_tags[:, None], axis=1)[:, 0]
            return tags, tags

        _, previous_tags = ops.scan(backtrack, last_tags, backpointers, reverse=True)
        tags = ops.concatenate([ops.transpose(previous_tags), last_tags[:, None]], axis=1)
        tags = ops.where(given_mask, tags, ops.zeros_like(tags))
        return self._unpad(tags, inputs), ops.max(final_scores, axis=1)

    def call(self, potentials, mask=None):
        tags, _ = self.viterbi_decode(potentials, mask)
        return tags

    def compute_output_spec(self, potentials, mask=None):
        return keras.KerasTensor(potentials.shape[:-1], dtype="int32")

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        return {**super().get_config(), "num_tags": self.num_tags}
