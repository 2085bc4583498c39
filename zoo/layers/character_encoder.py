import keras
from keras import ops

CHARACTER_ENCODERS = ("cnn", "bilstm")


@keras.saving.register_keras_serializable(package="zoo")
class CharacterEncoder(keras.layers.Layer):
    """Encodes every token from its characters: a character CNN or a character BiLSTM.

    "cnn" (Ma & Hovy, 2016) convolves the character embeddings and max-pools over the real
    characters; "bilstm" (Lample et al., 2016) runs an LSTM over them in each direction and
    concatenates the two final states. Character id 0 is padding: padded characters are
    ignored, and a padded token (all zeros) encodes to zeros for "cnn".

    Args:
        vocabulary_size: int. Rows of the character embedding table (0 padding, 1 unknown).
        embedding_dim: int. Width of the character embeddings.
        encoder: str. "cnn" or "bilstm".
        units: int. CNN filters, or LSTM units per direction (the output has twice as many).
        kernel_size: int. Width of the CNN's window, in characters.

    Examples:
    >>> encoder = CharacterEncoder(vocabulary_size=80, embedding_dim=32, encoder="cnn", units=64)
    >>> encoder(character_ids)  # (batch, time, width) ids -> (batch, time, 64)
    """

    def __init__(
        self,
        vocabulary_size,
        embedding_dim=32,
        encoder="cnn",
        units=64,
        kernel_size=3,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if encoder not in CHARACTER_ENCODERS:
            raise ValueError(
                f"encoder must be one of {', '.join(CHARACTER_ENCODERS)}; got {encoder!r}."
            )
        # === Layers ===
        self.embedding = keras.layers.Embedding(
            vocabulary_size, embedding_dim, name="character_embedding", dtype=self.dtype_policy
        )
        if encoder == "cnn":
            self.convolution = keras.layers.Conv1D(
                units,
                kernel_size,
                padding="same",
                activation="tanh",
                name="character_convolution",
                dtype=self.dtype_policy,
            )
        else:
            # Two LSTMs rather than keras.layers.Bidirectional: the latter rebuilds its layers
            # through serialization, which can mix up shared objects while a model loads.
            self.forward_lstm = keras.layers.LSTM(
                units, name="character_lstm_forward", dtype=self.dtype_policy
            )
            self.backward_lstm = keras.layers.LSTM(
                units, go_backwards=True, name="character_lstm_backward", dtype=self.dtype_policy
            )
        # === Config ===
        self.vocabulary_size = vocabulary_size
        self.embedding_dim = embedding_dim
        self.encoder = encoder
        self.units = units
        self.kernel_size = kernel_size
        self.output_dim = units if encoder == "cnn" else 2 * units

    def build(self, input_shape):
        width = input_shape[-1]
        self.embedding.build((None, width))
        if self.encoder == "cnn":
            self.convolution.build((None, width, self.embedding_dim))
        else:
            self.forward_lstm.build((None, width, self.embedding_dim))
            self.backward_lstm.build((None, width, self.embedding_dim))
        self.built = True

    def call(self, character_ids):
        shape = ops.shape(character_ids)
        flat_ids = ops.reshape(character_ids, (-1, shape[-1]))  # (batch * time, width)
        mask = flat_ids != 0
        embedded = self.embedding(flat_ids) * ops.cast(mask, self.compute_dtype)[..., None]
        if self.encoder == "cnn":
            features = self.convolution(embedded)
            very_negative = ops.cast(-1e4, features.dtype)
            features = ops.max(ops.where(mask[..., None], features, very_negative), axis=1)
            has_characters = ops.any(mask, axis=1, keepdims=True)
            features = ops.where(has_characters, features, ops.zeros_like(features))
        else:
            # Every row keeps its first step: recurrent kernels reject empty sequences, and
            # padded tokens are ignored downstream anyway.
            mask = ops.logical_or(mask, (ops.arange(shape[-1]) == 0)[None, :])
            features = ops.concatenate(
                [self.forward_lstm(embedded, mask=mask), self.backward_lstm(embedded, mask=mask)],
                axis=-1,
            )
        return ops.reshape(features, (shape[0], shape[1], self.output_dim))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "embedding_dim": self.embedding_dim,
                "encoder": self.encoder,
                "units": self.units,
                "kernel_size": self.kernel_size,
            }
        )
        return config
