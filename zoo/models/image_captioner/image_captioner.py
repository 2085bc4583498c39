import keras
import numpy as np
from keras import ops

from zoo.errors import InputError
from zoo.generation import candidate_log_probs, decode_ranked, decoder_step
from zoo.generation.decoding import without_token
from zoo.models.image_captioner.image_captioner_preprocessor import (
    END_ID,
    PAD_ID,
    START_ID,
    UNKNOWN_ID,
)
from zoo.task import Task


@keras.saving.register_keras_serializable(package="zoo")
class DoublyStochasticAttention(keras.layers.Layer):
    """Passes the logits through and adds Show, Attend and Tell's doubly stochastic attention
    penalty to the model's losses: `weight * sum_i (1 - sum_t alpha_ti)^2` per caption,
    averaged over the batch, where alpha_ti is caption step t's attention to image position
    i (real steps only): every position should get, over the caption, about one step's worth
    of attention, so that the model looks at the whole image.

    Args:
        weight: float. The penalty's weight (Xu et al. 2015 use 1).
    """

    def __init__(self, weight=1.0, **kwargs):
        super().__init__(**kwargs)
        self.weight = weight

    def call(self, logits, weights, token_ids):
        mask = ops.cast(ops.not_equal(token_ids, PAD_ID), weights.dtype)[:, :, None]
        coverage = ops.sum(weights * mask, axis=1)  # (batch, positions)
        self.add_loss(self.weight * ops.mean(ops.sum(ops.square(1.0 - coverage), axis=-1)))
        return logits

    def compute_output_spec(self, logits, weights, token_ids):
        return keras.KerasTensor(logits.shape, dtype=logits.dtype)

    def get_config(self):
        return {**super().get_config(), "weight": self.weight}


@keras.saving.register_keras_serializable(package="zoo")
class ImageCaptioner(Task):
    """An image captioner: a frozen CNN's feature grid and a recurrent decoder.

    Show, Attend and Tell (Xu et al. 2015) with the zoo's `AttentionDecoder`: the mean of the
    grid's features initialises the decoder's states, and each step attends (softly) over the
    grid's positions; with the decoder's `attention="none"` it is Show and Tell (Vinyals et
    al. 2015): the image only initialises the states.

    The CNN is the preprocessor's (`ImageCaptionerPreprocessor`): frozen, its features are
    computed once per image and cached for training. The model trains with teacher forcing:
    inputs {"features" (batch, positions, channels), "token_ids" (the caption after the start
    token)} -> next-word logits (batch, time, vocabulary). `caption_ids` decodes greedily or
    by beam search (`zoo.generation.decode`, the decoder's states as the sampler's cache);
    `predict` on raw image bytes gives the first step's logits.

    Args:
        decoder: AttentionDecoder. Word embeddings, recurrent stack, attention, logits.
        preprocessor: ImageCaptionerPreprocessor or None.
        num_positions: int. Positions of the feature grid (49 for a 7 x 7 grid).
        feature_dim: int. Channels of the feature grid.
        attention_penalty: float. Weight of the doubly stochastic attention penalty (0: none).
        feature_dropout: float. Dropout on the features while training.
        num_beams: int. Beam width of `caption_ids` by default (1: greedy).
        length_penalty: float. Candidates are ranked by log-probability / length ** this.
        max_output_length: int. Most words decoded, the end token included.

    Examples:
    >>> captioner = zoo.load("captioning")
    >>> image = open("photo.jpg", "rb").read()  # JPEG or PNG bytes, not a file name.
    >>> zoo.get_entry("captioning").family.predict_records(captioner, [image])
    """

    def __init__(
        self,
        decoder,
        preprocessor=None,
        num_positions=49,
        feature_dim=768,
        attention_penalty=0.0,
        feature_dropout=0.0,
        num_beams=3,
        length_penalty=1.0,
        max_output_length=30,
        **kwargs,
    ):
        # === Layers ===
        self.decoder = decoder
        self.feature_dropout_layer = keras.layers.Dropout(feature_dropout, name="feature_dropout")
        attends = decoder.attention != "none"
        self.penalty = (
            DoublyStochasticAttention(attention_penalty, name="attention_penalty")
            if attends and attention_penalty
            else None
        )

        # === Functional Model ===
        features = keras.Input(shape=(num_positions, feature_dim), name="features")
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        memory = self.feature_dropout_layer(features)
        logits, weights = self.decoder(
            token_ids, memory, summary=ops.mean(features, axis=1), return_attention=True
        )
        if self.penalty is not None:
            logits = self.penalty(logits, weights, token_ids)
        super().__init__(
            inputs={"features": features, "token_ids": token_ids}, outputs=logits, **kwargs
        )

        # === Config ===
        self.preprocessor = preprocessor
        self.num_positions = num_positions
        self.feature_dim = feature_dim
        self.attention_penalty = attention_penalty
        self.feature_dropout = feature_dropout
        self.num_beams = num_beams
        self.length_penalty = length_penalty
        self.max_output_length = max_output_length

    def _check_preprocessed(self, x) -> None:
        """Refuses preprocessed inputs other than {"features": floats, "token_ids": ints}."""
        if not isinstance(x, dict) or set(x) != {"features", "token_ids"}:
            shape = tuple(getattr(x, "shape", ()))
            if not shape or shape[0] == 0:
                raise InputError(
                    f"ImageCaptioner got no example (shape {shape}); pass at least one."
                )
            raise InputError(
                "ImageCaptioner takes raw image bytes (strings) or a dict of float 'features' and "
                f"integer token ids ('token_ids'); got {type(x).__name__} of shape {shape}."
            )
        for key, kind in (("features", "f"), ("token_ids", "i")):
            dtype = np.dtype(keras.backend.standardize_dtype(getattr(x[key], "dtype", "object")))
            if dtype.kind != kind or not getattr(x[key], "shape", (0,))[0]:
                raise InputError(
                    f"ImageCaptioner takes float 'features' and integer token ids ('token_ids') "
                    f"of at least one example; got {key} of {dtype} with shape {x[key].shape}."
                )

    def _preprocess_dataset(self, dataset):
        """Raw image bytes -> features in tf.data (the feature grid is not padded)."""
        import tensorflow as tf

        if self.preprocessor is None:
            raise InputError("This model has no preprocessor; pass preprocessed tensors.")

        def preprocess(*element):
            features = self.preprocessor(element[0])
            return (features, *element[1:]) if len(element) > 1 else features

        return dataset.map(preprocess).prefetch(tf.data.AUTOTUNE)

    def encode(self, features):
        """Features (batch, positions, channels) -> the decoding cache: the decoder's initial
        states, the features (memory) and their attention keys."""
        features = ops.convert_to_tensor(features, dtype=self.decoder.compute_dtype)
        return {
            "states": self.decoder.bridge(ops.mean(features, axis=1)),
            "memory": features,
            "keys": self.decoder.keys(features),
            "memory_mask": ops.ones(ops.shape(features)[:2], dtype="bool"),
        }

    # The unknown-word id is never produced (nor scored).
    _without_unknown = staticmethod(without_token(UNKNOWN_ID))

    def _step(self, token_ids, cache):
        logits, cache = decoder_step(self.decoder, token_ids, cache)
        return self._without_unknown(logits), cache

    def caption_ids(self, features, num_beams=None, length_penalty=None, beam_search=None):
        """Decodes captions of features (batch, positions, channels).

        Returns:
            {"token_ids": (batch, beams, time) int32 word ids, 0 from the end token on;
            "scores": (batch, beams) mean log-probability per token (end token included);
            "ranks": their ranking keys; candidates sorted by rank, best first}.
        """
        return decode_ranked(
            self,
            self._step,
            features,
            self.max_output_length,
            START_ID,
            END_ID,
            PAD_ID,
            num_beams,
            length_penalty,
            beam_search,
        )

    def token_log_probs(self, features, candidates, return_attention=False):
        """Teacher-forced log-probability of each candidate token (batch, beams, time); with
        `return_attention`, also the attention weights (batch, beams, time, positions)."""
        return candidate_log_probs(
            self.decoder,
            self.encode,
            features,
            candidates,
            START_ID,
            END_ID,
            PAD_ID,
            return_attention=return_attention,
            float_logits=self._without_unknown,
        )

    def generate(self, images, num_beams=None, length_penalty=None, batch_size=64) -> list[str]:
        """Captions (str) of raw image bytes (one, or a list), `batch_size` at a time; "" for
        bytes that are not a JPEG or PNG image."""
        import tensorflow as tf

        from zoo.task import as_string_batch

        data = as_string_batch(images)
        captions = []
        for start in range(0, int(data.shape[0]), batch_size):
            batch = data[start : start + batch_size]
            _, images_read = self.preprocessor.read_images(batch)
            features = self.preprocessor(batch)["features"]
            result = self.caption_ids(np.asarray(features), num_beams, length_penalty)
            best = tf.constant(keras.ops.convert_to_numpy(result["token_ids"])[:, 0])
            texts = self.preprocessor.detokenize(best).numpy()
            captions += [
                text.decode("utf-8") if read else ""
                for text, read in zip(texts, images_read.numpy())
            ]
        return captions

    def get_config(self):
        return {
            **super().get_config(),  # With a quantized model's dtype policies.
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "preprocessor": keras.saving.serialize_keras_object(self.preprocessor),
            "num_positions": self.num_positions,
            "feature_dim": self.feature_dim,
            "attention_penalty": self.attention_penalty,
            "feature_dropout": self.feature_dropout,
            "num_beams": self.num_beams,
            "length_penalty": self.length_penalty,
            "max_output_length": self.max_output_length,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("decoder", "preprocessor"):
            if isinstance(config.get(key), dict):
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
