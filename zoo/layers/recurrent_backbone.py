import json

import keras
from keras import ops

from zoo.layers.recurrent_stack import RecurrentStack

# RecurrentStack's hyperparameters, which a backbone passes on (and serialises) as they are.
STACK_ARGUMENTS = (
    "cell",
    "units",
    "num_layers",
    "bidirectional",
    "merge_mode",
    "dropout",
    "recurrent_dropout",
    "residual",
    "return_sequences",
    "return_state",
    "implementation",
    "weights_storage",
)


@keras.saving.register_keras_serializable(package="zoo")
class RecurrentBackbone(keras.layers.Layer):
    """Token embeddings and a `RecurrentStack`: the encoder every family's head takes.

    The layer holds every recurrent hyperparameter once (`zoo.config.RecurrentEncoderConfig`
    is its config mixin); heads (a classifier's pooling and logits, a tagger's CRF, a decoder)
    take a backbone and read what they need from it (`output_dim`, `dropout`).

    Token id 0 is padding: the padding mask is computed from the ids and given to the stack,
    so sequences must be right-padded (every zoo preprocessor pads on the right).

    Args:
        vocabulary_size: int. Rows of the embedding table (ids 0 and 1: padding and OOV).
        embedding_dim: int. Width of the token embeddings.
        embedding_dropout: float. Dropout on the token features (the embeddings and any
            `features` given to `call`) before the stack.
        spatial_embedding_dropout: bool. Drop whole feature channels of a sequence
            (`SpatialDropout1D`) instead of single values.
        name: str. "backbone" unless given: its weights are under `backbone/`.
        **kwargs: the `RecurrentStack`'s arguments (`cell`, `units`, `num_layers`,
            `bidirectional`, `merge_mode`, `dropout`, `recurrent_dropout`, `residual`,
            `return_sequences`, `return_state`, `implementation`, `weights_storage`), which the backbone also
            exposes as attributes; other Keras layer arguments.

    Call arguments:
        token_ids: int tensor (batch, time), right-padded with 0.
        features: optional list of (batch, time, width) tensors placed beside the embeddings
            (a tagger's character and casing features).
        initial_state: optional states of the stack, one list per layer.
        training: bool. Whether dropout applies.

    Examples:
    >>> backbone = RecurrentBackbone(20000, 128, cell="gru", units=64, bidirectional=True)
    >>> encoded = backbone(token_ids)  # (batch, time, 128)
    """

    def __init__(
        self,
        vocabulary_size,
        embedding_dim,
        embedding_dropout=0.0,
        spatial_embedding_dropout=False,
        **kwargs,
    ):
        # The stack's arguments are the stack's: taken from kwargs, not listed again here.
        stack_arguments = {key: kwargs.pop(key) for key in STACK_ARGUMENTS if key in kwargs}
        # A fixed default name keeps weight paths (backbone/...) independent of how many
        # backbones were built before; a model with two (encoder, decoder) names them.
        kwargs.setdefault("name", "backbone")
        super().__init__(**kwargs)
        # === Layers ===
        self.token_embedding = keras.layers.Embedding(
            vocabulary_size, embedding_dim, name="token_embedding", dtype=self.dtype_policy
        )
        dropout_class = (
            keras.layers.SpatialDropout1D if spatial_embedding_dropout else keras.layers.Dropout
        )
        self.embedding_dropout = dropout_class(embedding_dropout, name="embedding_dropout")
        self.encoder = RecurrentStack(**stack_arguments, name="encoder", dtype=self.dtype_policy)
        # === Config ===
        self.vocabulary_size = vocabulary_size
        self.embedding_dim = embedding_dim
        self.embedding_dropout_rate = embedding_dropout
        self.spatial_embedding_dropout = spatial_embedding_dropout

    @property
    def output_dim(self) -> int:
        """Width of the outputs: `units`, doubled when bidirectional with "concat"."""
        doubled = self.bidirectional and self.merge_mode == "concat"
        return self.units * (2 if doubled else 1)

    def build(self, token_ids_shape, features_shape=None):
        self.token_embedding.build(token_ids_shape)
        width = self.embedding_dim + sum(shape[-1] for shape in features_shape or [])
        self.encoder.build((*token_ids_shape, width))
        self.built = True

    def call(self, token_ids, features=None, initial_state=None, training=None):
        mask = ops.not_equal(token_ids, 0)
        embedded = self.token_embedding(token_ids)
        if features:
            embedded = ops.concatenate([embedded, *features], axis=-1)
        embedded = self.embedding_dropout(embedded, training=training)
        return self.encoder(embedded, mask=mask, training=training, initial_state=initial_state)

    def compute_output_spec(self, token_ids, features=None, initial_state=None, training=None):
        width = self.embedding_dim + sum(feature.shape[-1] for feature in features or [])
        embedded = keras.KerasTensor((*token_ids.shape, width), dtype=self.compute_dtype)
        return self.encoder.compute_output_spec(embedded, initial_state=initial_state)

    def get_build_config(self):
        # Shapes as lists, as they come back from a .keras file's JSON: the config of a loaded
        # model then equals the original's.
        config = super().get_build_config()
        return json.loads(json.dumps(config)) if config else config

    def compute_mask(self, token_ids, mask=None):
        return None  # Heads compute the padding mask from the token ids themselves.

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "embedding_dim": self.embedding_dim,
                "embedding_dropout": self.embedding_dropout_rate,
                "spatial_embedding_dropout": self.spatial_embedding_dropout,
                **{key: getattr(self.encoder, key) for key in STACK_ARGUMENTS},
            }
        )
        return config


# The backbone reads its stack's hyperparameters (`backbone.units`, ...) from the stack.
for _key in STACK_ARGUMENTS:
    setattr(RecurrentBackbone, _key, property(lambda self, key=_key: getattr(self.encoder, key)))
del _key
