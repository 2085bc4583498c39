import keras
from keras import ops

from zoo.generation import decode, make_sampler
from zoo.layers.recurrent_stack import (
    UNIDIRECTIONAL_STACK_ARGUMENTS,
    RecurrentStack,
    _load_other_variables,
    _save_other_variables,
)
from zoo.task import Task

PAD_ID = 0


@keras.saving.register_keras_serializable(package="zoo")
class WordPredictor(keras.layers.Layer):
    """Embeddings, a unidirectional recurrent stack and next-word logits over the vocabulary.

    Dropouts are those of RNN language models (Gal & Ghahramani 2016; Merity et al. 2018):
    whole words dropped from the embeddings (`embedding_dropout`), one dropout mask per
    sequence on each recurrent layer's inputs (`dropout`, Keras's recurrent-layer dropout) and
    on the top layer's outputs (`output_dropout`). With `tie_embeddings`, the output layer is
    the transposed embedding matrix (plus a bias), after a linear projection from `units` to
    `embedding_dim` where they differ.

    With `stream_batch_size`, the layer holds that many streams' recurrent states in
    non-trainable variables (never saved): while `carry_states` is True, each call starts from
    them and stores its final states there (truncated BPTT over consecutive windows, the
    gradient stopping at the window's start). `reset_states` zeroes them.

    Args:
        vocabulary_size: int. Ids 0 (padding) to vocabulary_size - 1.
        embedding_dim: int.
        stream_batch_size: int. Streams of stateful training (0: none).
        embedding_dropout, output_dropout: float. Rates of the word and output dropouts.
        tie_embeddings: bool.
        **stack_arguments: `RecurrentStack` arguments (cell, units, num_layers, dropout, ...).
    """

    def __init__(
        self,
        vocabulary_size,
        embedding_dim,
        stream_batch_size=0,
        embedding_dropout=0.0,
        output_dropout=0.0,
        tie_embeddings=True,
        stack=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size
        self.embedding_dim = embedding_dim
        self.stream_batch_size = stream_batch_size
        self.embedding_dropout_rate = embedding_dropout
        self.output_dropout_rate = output_dropout
        self.tie_embeddings = tie_embeddings
        self.stack_config = dict(stack or {})
        # === Layers ===
        self.embedding = keras.layers.ReversibleEmbedding(
            vocabulary_size, embedding_dim, tie_weights=tie_embeddings, name="embedding"
        )
        # The stack's outputs carry its mask into the output layer (the reverse embedding),
        # which has no use for it.
        self.embedding.supports_masking = True
        self.word_dropout = keras.layers.Dropout(embedding_dropout, noise_shape=(None, None, 1))
        self.stack = RecurrentStack(
            **{**self.stack_config, "bidirectional": False},
            return_sequences=True,
            return_state=True,
            name="stack",
        )
        units = self.stack.units
        self.output_dropout = keras.layers.Dropout(output_dropout, noise_shape=(None, 1, units))
        self.projection = None
        if tie_embeddings and units != embedding_dim:
            self.projection = keras.layers.Dense(embedding_dim, use_bias=False, name="projection")
        self.carry_states = False

    def build(self, token_ids_shape=None):
        self.embedding.build((None, None))
        self.stack.build((None, None, self.embedding_dim))
        if self.projection is not None:
            self.projection.build((None, None, self.stack.units))
        self.output_bias = self.add_weight(
            shape=(self.vocabulary_size,), initializer="zeros", name="output_bias"
        )
        self.carried = []
        if self.stream_batch_size:
            zeros = self.stack.get_initial_state(self.stream_batch_size)
            self.carried = [
                [
                    self.add_weight(
                        shape=tuple(state.shape),
                        initializer="zeros",
                        trainable=False,
                        name=f"carried_{layer}_{index}",
                    )
                    for index, state in enumerate(states)
                ]
                for layer, states in enumerate(zeros)
            ]
        self.built = True

    def reset_states(self) -> None:
        for variable in self._carried_variables():
            variable.assign(ops.zeros(variable.shape, variable.dtype))

    def _carried_variables(self) -> list:
        return [variable for states in getattr(self, "carried", []) for variable in states]

    # The carried states are working memory, not weights: left out of .keras files.
    def save_own_variables(self, store):
        _save_other_variables(self, store, self._carried_variables)

    def load_own_variables(self, store):
        _load_other_variables(self, store, self._carried_variables)

    def logits(self, outputs, training=False):
        outputs = self.output_dropout(outputs, training=training)
        if self.projection is not None:
            outputs = self.projection(outputs)
        return self.embedding(outputs, reverse=True) + self.output_bias

    def call(
        self, token_ids, initial_state=None, steps_mask=None, return_state=False, training=None
    ):
        """Token ids (batch, time) -> next-word logits (batch, time, vocabulary) and, with
        `return_state`, the final states (at each row's last step `steps_mask` keeps; every
        step is read without one)."""
        carrying = self.carry_states and initial_state is None
        if carrying:
            initial_state = [[ops.convert_to_tensor(v) for v in states] for states in self.carried]
        embedded = self.word_dropout(self.embedding(token_ids), training=training)
        outputs, states = self.stack(
            embedded, mask=steps_mask, initial_state=initial_state, training=training
        )
        if carrying:
            for variables, values in zip(self.carried, states):
                for variable, value in zip(variables, values):
                    variable.assign(ops.stop_gradient(value))
        logits = self.logits(outputs, training=training)
        return (logits, states) if return_state else logits

    def step(self, token_ids, states):
        """One word on: token ids (batch,) and states -> (logits (batch, vocabulary), states)."""
        output, states = self.stack.step(self.embedding(token_ids), states)
        return self.logits(output[:, None, :])[:, 0], states

    def compute_output_spec(self, token_ids, *args, **kwargs):
        shape = tuple(token_ids.shape) + (self.vocabulary_size,)
        return keras.KerasTensor(shape, dtype=self.compute_dtype)

    def get_build_config(self):
        return {}

    def build_from_config(self, config):
        self.build()

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary_size": self.vocabulary_size,
            "embedding_dim": self.embedding_dim,
            "stream_batch_size": self.stream_batch_size,
            "embedding_dropout": self.embedding_dropout_rate,
            "output_dropout": self.output_dropout_rate,
            "tie_embeddings": self.tie_embeddings,
            # The stack's own settings now (an int8-stored stack says so).
            "stack": {key: getattr(self.stack, key) for key in UNIDIRECTIONAL_STACK_ARGUMENTS},
        }


@keras.saving.register_keras_serializable(package="zoo")
class LanguageModel(Task):
    """A word-level RNN language model: token ids (batch, time) -> next-word logits.

    `stream_log_likelihood` scores a whole text stream with the state carried through it;
    `generate_ids` continues prompts with a keras-hub sampler, the recurrent states as its
    cache; `next_word_log_probs` gives the distribution after each prompt.

    Args:
        predictor: WordPredictor.
        preprocessor: LanguageModelPreprocessor or None.
        end_id: int. The sentence end (`<eos>`) id: prompts start with it and generation stops
            at it.
        sampler, top_k, top_p, temperature: the default sampling of `generate_ids` and of the
            served continuation (`zoo.generation.make_sampler`).
        max_words: int. Most words a continuation has by default.

    Examples:
    >>> lm = zoo.load("lm")
    >>> zoo.get_entry("lm").family.predict_records(lm, ["never too late to"])
    """

    def __init__(
        self,
        predictor,
        preprocessor=None,
        end_id=2,
        sampler="top_p",
        top_k=40,
        top_p=0.9,
        temperature=0.8,
        max_words=20,
        **kwargs,
    ):
        # === Layers ===
        self.predictor = predictor

        # === Functional Model ===
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        logits = self.predictor(token_ids)
        super().__init__(inputs={"token_ids": token_ids}, outputs=logits, **kwargs)

        # === Config ===
        self.preprocessor = preprocessor
        self.end_id = end_id
        self.sampler = sampler
        self.top_k = top_k
        self.top_p = top_p
        self.temperature = temperature
        self.max_words = max_words
        # The served graph's sampling state: a variable of the model, so exports carry it.
        self.sampling_seed = keras.random.SeedGenerator(0, name="sampling_seed")

    def make_sampler(self, seed=None, in_graph=False, **overrides):
        """The model's sampler (`overrides` of sampler, top_k, top_p, temperature). With
        `in_graph`, for a TensorFlow graph (an export), it draws from the model's own seed
        state, which the graph then tracks; create it before tracing (keras-hub's samplers
        create a variable when built)."""
        settings = {
            key: overrides.get(key) if overrides.get(key) is not None else getattr(self, key)
            for key in ("top_k", "top_p", "temperature")
        }
        # No more candidates than words (TopKSampler fails otherwise).
        settings["top_k"] = min(int(settings["top_k"]), self.predictor.vocabulary_size)
        sampler = make_sampler(overrides.get("sampler") or self.sampler, seed=seed, **settings)
        if in_graph and hasattr(sampler, "seed_generator"):
            sampler.seed_generator = self.sampling_seed
        return sampler

    def encode_prompts(self, token_ids):
        """Prompt ids (batch, time), right-padded, each starting with `<eos>` -> (states after
        every prompt word but the last, the last word's id (batch,)): the decoding start."""
        lengths = ops.sum(ops.cast(ops.not_equal(token_ids, PAD_ID), "int32"), axis=1)
        lengths = ops.maximum(lengths, 1)
        last = ops.take_along_axis(token_ids, (lengths - 1)[:, None], axis=1)[:, 0]
        context_mask = ops.arange(ops.shape(token_ids)[1])[None, :] < (lengths - 1)[:, None]
        _, states = self.predictor(token_ids, steps_mask=context_mask, return_state=True)
        return states, last

    def next_word_log_probs(self, token_ids):
        """Log-probabilities (batch, vocabulary) of the word after each prompt."""
        states, last = self.encode_prompts(token_ids)
        logits, _ = self.predictor.step(last, states)
        return ops.log_softmax(ops.cast(logits, "float32"), axis=-1)

    def generate_ids(self, token_ids, max_length, sampler):
        """Continues prompts (ids as `encode_prompts` takes them) for at most `max_length`
        words with a keras-hub `sampler`; (batch, max_length) int32 ids, the `<eos>` that ends
        a sentence and what follows set to 0."""
        states, last = self.encode_prompts(token_ids)
        batch = ops.shape(token_ids)[0]
        tokens = decode(
            self.predictor.step,
            states,
            batch,
            max_length,
            last,
            self.end_id,
            PAD_ID,
            sampler=sampler,
            model=self,
        )[:, 0]
        ended = ops.cumsum(ops.cast(ops.equal(tokens, self.end_id), "int32"), axis=1) > 0
        return ops.where(ended, PAD_ID, tokens)

    def stream_log_likelihood(
        self, token_ids, window: int, label: str = "Scoring the stream..."
    ) -> tuple[float, int]:
        """(Total log-likelihood, number of predicted words) of a stream of ids (1-D), each
        word predicted from all before it: one sequence, read `window` words at a time with
        the state carried from window to window, with a progress bar under `label`."""
        import numpy as np

        from zoo.progress import progress

        token_ids = np.asarray(token_ids, dtype="int32")
        # Its own states from zeros, never the carried streams of stateful training.
        states, total = self.predictor.stack.get_initial_state(1), 0.0
        starts = range(0, len(token_ids) - 1, window)
        for start in progress(starts, len(starts), label, unit="window"):
            inputs = token_ids[start : start + window][None, :]
            labels = token_ids[start + 1 : start + window + 1][None, :]
            inputs = inputs[:, : labels.shape[1]]
            logits, states = self.predictor(inputs, initial_state=states, return_state=True)
            log_probs = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
            chosen = ops.take_along_axis(log_probs, labels[:, :, None], axis=-1)
            total += float(ops.convert_to_numpy(ops.sum(chosen)))
        return total, max(len(token_ids) - 1, 0)

    def get_config(self):
        return {
            **super().get_config(),
            "predictor": keras.saving.serialize_keras_object(self.predictor),
            "preprocessor": keras.saving.serialize_keras_object(self.preprocessor),
            "end_id": self.end_id,
            "sampler": self.sampler,
            "top_k": self.top_k,
            "top_p": self.top_p,
            "temperature": self.temperature,
            "max_words": self.max_words,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("predictor", "preprocessor"):
            if isinstance(config.get(key), dict):
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
