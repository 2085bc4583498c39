import json

import keras
from keras import ops

from zoo.layers.recurrent_stack import UNIDIRECTIONAL_STACK_ARGUMENTS, RecurrentStack

# "none": no attention; the memory only initialises the states (through `bridge`).
ATTENTIONS = ("luong", "bahdanau", "none")


@keras.saving.register_keras_serializable(package="zoo")
class AttentionDecoder(keras.layers.Layer):
    """A recurrent decoder attending over an encoder's outputs (its "memory").

    Luong et al. (2015)'s global attention: at each step the decoder's top-layer output `h_t`
    scores every memory step, the weights average the memory into a context `c_t`, and the
    attentional state `tanh(W_c [c_t; h_t])`, mapped linearly to the embeddings' width, gives
    the next-token logits (its product with the output embeddings, plus a bias). The score is
    multiplicative (`keras.layers.Attention` over keys `W_k m`, Luong's "general") or additive
    (`keras.layers.AdditiveAttention`, Bahdanau's `v . tanh(h + W_k m)`). The attention comes
    after the recurrence, so teacher-forced training runs the whole target sequence through
    the (fused) recurrent layers at once, and `step` runs one token at a time for decoding.

    The output embeddings are the target embeddings (tied, `ReversibleEmbedding`) or a matrix of
    their own (`tie_embeddings=False`). `bridge` maps a summary of the encoder (its final states) to the
    decoder's initial states.

    Args:
        vocabulary_size: int. Target vocabulary size (id 0 is padding).
        embedding_dim: int. Width of the target (and output) embeddings.
        attention: str. "luong" (multiplicative) or "bahdanau" (additive) scores; "none"
            attends to nothing: the attentional state is `tanh(W_c h_t)`, and the memory
            reaches the decoder only through its initial states (`bridge`, e.g. Show and
            Tell's image-initialised captioner). Its attention weights are all 0.
        tie_embeddings: bool. Share the target embeddings with the output projection.
        embedding_dropout: float. Dropout on the target embeddings.
        **kwargs: the decoder `RecurrentStack`'s arguments (`cell`, `units`, `num_layers`,
            `dropout`, `recurrent_dropout`, `residual`, `implementation`, `weights_storage`;
            always unidirectional); `dropout` also applies to the attentional state.

    Call arguments:
        token_ids: int tensor (batch, time) of target tokens, right-padded with 0 (teacher
            forcing: the tokens before each predicted one).
        memory: float tensor (batch, source time, width): the encoder's outputs.
        memory_mask: bool tensor (batch, source time): which memory steps are real.
        initial_state: the stack's states (one list per layer), e.g. from `bridge`; or
        summary: (batch, width) the encoder's summary, which `bridge` maps to them.
        return_attention: bool. Also return the attention weights (batch, time, source time).

    Examples:
    >>> decoder = AttentionDecoder(8000, 256, cell="gru", units=512)
    >>> logits = decoder(target_ids, memory, memory_mask, summary=encoder_summary)
    """

    def __init__(
        self,
        vocabulary_size,
        embedding_dim,
        attention="luong",
        tie_embeddings=True,
        embedding_dropout=0.0,
        cell="lstm",
        units=256,
        num_layers=1,
        dropout=0.0,
        recurrent_dropout=0.0,
        residual=False,
        implementation="auto",
        weights_storage="float32",
        **kwargs,
    ):
        kwargs.setdefault("name", "decoder")
        super().__init__(**kwargs)
        if attention not in ATTENTIONS:
            raise ValueError(
                f"attention must be one of {', '.join(ATTENTIONS)}; got {attention!r}."
            )
        policy = self.dtype_policy
        # === Layers ===
        self.token_embedding = keras.layers.ReversibleEmbedding(
            vocabulary_size,
            embedding_dim,
            tie_weights=tie_embeddings,
            name="token_embedding",
            dtype=policy,
        )
        self.embedding_dropout = keras.layers.Dropout(embedding_dropout, name="embedding_dropout")
        self.stack = RecurrentStack(
            cell=cell,
            units=units,
            num_layers=num_layers,
            bidirectional=False,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            residual=residual,
            return_sequences=True,
            implementation=implementation,
            weights_storage=weights_storage,
            name="stack",
            dtype=policy,
        )
        self.bridge_layer = keras.layers.Dense(
            units, activation="tanh", name="bridge", dtype=policy
        )
        self.memory_keys = self.attention_layer = None
        if attention != "none":
            self.memory_keys = keras.layers.Dense(
                units, use_bias=False, name="memory_keys", dtype=policy
            )
        if attention == "luong":
            self.attention_layer = keras.layers.Attention(name="attention", dtype=policy)
        elif attention == "bahdanau":
            self.attention_layer = keras.layers.AdditiveAttention(name="attention", dtype=policy)
        self.combine = keras.layers.Dense(
            units, activation="tanh", use_bias=False, name="combine", dtype=policy
        )
        # A linear map from the tanh-bounded attentional state to the embeddings' space: with
        # the logits its product with the embeddings directly, the state saturates and training
        # stalls (measured: a tiny model's loss stuck near 1.0 where this reaches 0.06).
        self.projection = keras.layers.Dense(
            embedding_dim, use_bias=False, name="projection", dtype=policy
        )
        self.output_dropout = keras.layers.Dropout(dropout, name="output_dropout")
        # === Config ===
        self.vocabulary_size = vocabulary_size
        self.embedding_dim = embedding_dim
        self.attention = attention
        self.tie_embeddings = tie_embeddings
        self.embedding_dropout_rate = embedding_dropout

    def build(
        self,
        token_ids_shape,
        memory_shape,
        memory_mask_shape=None,
        initial_state_shape=None,
        summary_shape=None,
    ):
        batch = token_ids_shape[0]
        self.token_embedding.build(token_ids_shape)
        self.stack.build((batch, None, self.embedding_dim))
        units = self.stack.units
        self.bridge_layer.build((batch, memory_shape[-1]))
        if self.attention_layer is None:
            self.combine.build((batch, None, units))
        else:
            self.memory_keys.build(memory_shape)
            self.attention_layer.build(
                [(batch, None, units), memory_shape, (*memory_shape[:2], units)]
            )
            self.combine.build((batch, None, units + memory_shape[-1]))
        self.projection.build((batch, None, units))
        self.output_bias = self.add_weight(
            shape=(self.vocabulary_size,), initializer="zeros", name="output_bias"
        )
        self.built = True

    def get_build_config(self):
        # Shapes as lists, as they come back from a .keras file's JSON (see RecurrentBackbone).
        config = super().get_build_config()
        return json.loads(json.dumps(config)) if config else config

    def bridge(self, summary):
        """Initial decoder states from an encoder summary (batch, width): each layer's states
        are `tanh(W summary)`, the same for every state of every layer (h, and c for LSTMs)."""
        start = self.bridge_layer(summary)
        return [
            [start for _ in self.stack._state_sizes(layer)] for layer in self.stack.recurrent_layers
        ]

    def keys(self, memory):
        """The attention keys of `memory` (computed once per source, reused at every step);
        the memory itself without attention (unused)."""
        return memory if self.memory_keys is None else self.memory_keys(memory)

    def _attend(self, outputs, query_mask, memory, keys, memory_mask, training):
        if self.attention_layer is None:
            weights = ops.zeros(
                (ops.shape(outputs)[0], ops.shape(outputs)[1], ops.shape(memory)[1]),
                dtype=outputs.dtype,
            )
            attentional = self.combine(outputs)
        else:
            context, weights = self.attention_layer(
                [outputs, memory, keys],
                mask=[query_mask, memory_mask],
                return_attention_scores=True,
                training=training,
            )
            attentional = self.combine(ops.concatenate([context, outputs], axis=-1))
        attentional = self.projection(self.output_dropout(attentional, training=training))
        # Tied: the transposed embeddings; untied: the layer's own output matrix. The bias
        # carries the tokens' prior, which the bounded attentional state need not encode.
        logits = self.token_embedding(attentional, reverse=True) + self.output_bias
        return logits, weights

    def call(
        self,
        token_ids,
        memory,
        memory_mask=None,
        initial_state=None,
        summary=None,
        training=None,
        return_attention=False,
    ):
        if initial_state is None and summary is not None:
            initial_state = self.bridge(summary)
        mask = ops.not_equal(token_ids, 0)
        if memory_mask is None:
            memory_mask = ops.ones(ops.shape(memory)[:2], dtype="bool")
        embedded = self.embedding_dropout(self.token_embedding(token_ids), training=training)
        outputs = self.stack(embedded, mask=mask, training=training, initial_state=initial_state)
        logits, weights = self._attend(
            outputs, mask, memory, self.keys(memory), memory_mask, training
        )
        return (logits, weights) if return_attention else logits

    def step(self, token_ids, states, memory, keys, memory_mask, training=False):
        """One decoding step: the previous tokens (batch,) and states -> (logits (batch,
        vocabulary), new states, attention weights (batch, source time)). Equals `call` at
        each step of a teacher-forced sequence."""
        embedded = self.token_embedding(token_ids)
        output, states = self.stack.step(embedded, states, training=training)
        logits, weights = self._attend(
            output[:, None, :], None, memory, keys, memory_mask, training
        )
        return logits[:, 0, :], states, weights[:, 0, :]

    def compute_output_spec(
        self,
        token_ids,
        memory,
        memory_mask=None,
        initial_state=None,
        summary=None,
        training=None,
        return_attention=False,
    ):
        batch, steps = token_ids.shape
        logits = keras.KerasTensor((batch, steps, self.vocabulary_size), dtype=self.compute_dtype)
        weights = keras.KerasTensor((batch, steps, memory.shape[1]), dtype=self.compute_dtype)
        return (logits, weights) if return_attention else logits

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "embedding_dim": self.embedding_dim,
                "attention": self.attention,
                "tie_embeddings": self.tie_embeddings,
                "embedding_dropout": self.embedding_dropout_rate,
                **{key: getattr(self.stack, key) for key in UNIDIRECTIONAL_STACK_ARGUMENTS},
            }
        )
        return config
