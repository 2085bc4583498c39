import keras
from keras import ops

from zoo.layers import POOLINGS, MaskedPooling
from zoo.task import Task


@keras.saving.register_keras_serializable(package="zoo")
class TextClassifier(Task):
    """A many-to-one RNN text classifier: a recurrent backbone, pooling over time, logits.

    Takes right-padded token ids (0 = padding) and returns unnormalised class scores (logits);
    `predict` also accepts raw strings, which `preprocessor` turns into token ids.

    Args:
        backbone: RecurrentBackbone. Token embeddings and the recurrent stack (every recurrent
            hyperparameter lives there); `return_sequences=False` with `pooling="last"`.
        preprocessor: TextClassifierPreprocessor or None. Maps raw strings to token ids.
        pooling: str. "last" (final state), "max", "mean" or "max_mean" over the outputs.
        class_names: list of str. Names of the classes, in logit order.

    Dropout before the logits is the backbone's `dropout`.

    Examples:
    >>> classifier = zoo.build("sentiment", cell="gru", units=64)
    >>> classifier.predict(["A wonderful, moving film."])  # logits, shape (1, 2)
    """

    def __init__(
        self,
        backbone,
        preprocessor=None,
        pooling="max_mean",
        class_names=("negative", "positive"),
        **kwargs,
    ):
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}; got {pooling!r}.")
        if backbone.return_sequences != (pooling != "last"):
            raise ValueError(
                f"pooling={pooling!r} needs a backbone with "
                f"return_sequences={pooling != 'last'}."
            )
        # === Layers ===
        self.backbone = backbone
        self.pooling = None if pooling == "last" else MaskedPooling(pooling, name="pooling")
        self.output_dropout = keras.layers.Dropout(backbone.dropout, name="output_dropout")
        self.logits = keras.layers.Dense(len(class_names), name="logits")

        # === Functional Model ===
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        encoded = self.backbone(token_ids)
        if self.pooling is not None:
            encoded = self.pooling(encoded, mask=ops.not_equal(token_ids, 0))
        outputs = self.logits(self.output_dropout(encoded))
        super().__init__(inputs=token_ids, outputs=outputs, **kwargs)

        # === Config ===
        self.preprocessor = preprocessor
        self.pooling_mode = pooling
        self.class_names = list(class_names)

    def get_config(self):
        return {
            **super().get_config(),  # With a quantized model's dtype policies.
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "preprocessor": keras.saving.serialize_keras_object(self.preprocessor),
            "pooling": self.pooling_mode,
            "class_names": self.class_names,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("backbone", "preprocessor"):
            if isinstance(config.get(key), dict):
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
