import keras

from zoo.layers import MaskedPooling, RecurrentStack
from zoo.task import Task


@keras.saving.register_keras_serializable(package="zoo")
class TextClassifier(Task):
    """A many-to-one RNN text classifier: word embeddings, an RNN stack, pooling, logits.

    Takes right-padded token ids (0 = padding) and returns unnormalised class scores (logits);
    `predict` also accepts raw strings, which `preprocessor` turns into token ids.

    Args:
        preprocessor: TextPreprocessor or None. Maps raw strings to token ids.
        vocabulary_size: int. Rows of the embedding table (ids 0 and 1 are padding and OOV).
        embedding_dim: int. Width of the word embeddings.
        cell: str. Recurrent cell: "elman", "jordan", "lstm", "peephole_lstm", "gru" or
            "gru_cho" (see `RecurrentStack`).
        units: int. Hidden size of each recurrent layer, per direction.
        num_layers: int. Depth of the recurrent stack.
        bidirectional: bool. Run every recurrent layer in both directions.
        merge_mode: str. How directions combine ("concat", "sum", "mul", "ave").
        pooling: str. "last" (final state), "max", "mean" or "max_mean" over the outputs.
        embedding_dropout: float. Drops whole embedding channels (spatial dropout).
        dropout: float. Dropout on each recurrent layer's inputs and before the output layer.
        recurrent_dropout: float. Dropout on recurrent states (slower: no fused kernels).
        residual: bool. Residual connections between recurrent layers of equal width.
        class_names: list of str. Names of the classes, in logit order.

    Examples:
    >>> classifier = zoo.build("sentiment", cell="gru", units=64)
    >>> classifier.predict(["A wonderful, moving film."])  # logits, shape (1, 2)
    """

    def __init__(
        self,
        preprocessor=None,
        vocabulary_size=20000,
        embedding_dim=128,
        cell="gru",
        units=128,
        num_layers=1,
        bidirectional=True,
        merge_mode="concat",
        pooling="max_mean",
        embedding_dropout=0.0,
        dropout=0.0,
        recurrent_dropout=0.0,
        residual=False,
        class_names=("negative", "positive"),
        **kwargs,
    ):
        # === Layers ===
        self.token_embedding = keras.layers.Embedding(
            vocabulary_size, embedding_dim, mask_zero=True, name="token_embedding"
        )
        self.embedding_dropout = keras.layers.SpatialDropout1D(
            embedding_dropout, name="embedding_dropout"
        )
        self.encoder = RecurrentStack(
            cell=cell,
            units=units,
            num_layers=num_layers,
            bidirectional=bidirectional,
            merge_mode=merge_mode,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            residual=residual,
            return_sequences=pooling != "last",
            name="encoder",
        )
        self.pooling = None if pooling == "last" else MaskedPooling(pooling, name="pooling")
        self.output_dropout = keras.layers.Dropout(dropout, name="output_dropout")
        self.logits = keras.layers.Dense(len(class_names), name="logits")

        # === Functional Model ===
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        embedded = self.embedding_dropout(self.token_embedding(token_ids))
        encoded = self.encoder(embedded)
        if self.pooling is not None:
            encoded = self.pooling(encoded)
        outputs = self.logits(self.output_dropout(encoded))
        super().__init__(inputs=token_ids, outputs=outputs, **kwargs)

        # === Config ===
        self.preprocessor = preprocessor
        self.vocabulary_size = vocabulary_size
        self.embedding_dim = embedding_dim
        self.cell = cell
        self.units = units
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.merge_mode = merge_mode
        self.pooling_mode = pooling
        self.embedding_dropout_rate = embedding_dropout
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        self.residual = residual
        self.class_names = list(class_names)

    def get_config(self):
        return {
            **super().get_config(),  # With a quantized model's dtype policies.
            "preprocessor": keras.saving.serialize_keras_object(self.preprocessor),
            "vocabulary_size": self.vocabulary_size,
            "embedding_dim": self.embedding_dim,
            "cell": self.cell,
            "units": self.units,
            "num_layers": self.num_layers,
            "bidirectional": self.bidirectional,
            "merge_mode": self.merge_mode,
            "pooling": self.pooling_mode,
            "embedding_dropout": self.embedding_dropout_rate,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "residual": self.residual,
            "class_names": self.class_names,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("preprocessor"), dict):
            config["preprocessor"] = keras.saving.deserialize_keras_object(config["preprocessor"])
        return cls(**config)
