import keras
import tensorflow as tf
from keras import ops

from zoo.errors import InputError
from zoo.layers import MaskedPooling
from zoo.layers.character_encoder import CharacterEncoder
from zoo.layers.crf import CRF
from zoo.models.sequence_tagger.sequence_tagger_preprocessor import CASING_CLASSES
from zoo.models.sequence_tagger.tag_schemes import TAG_SCHEMES, iob2_tag_name
from zoo.task import PREDICT_BATCH_SIZE, Task, as_string_batch, pad_to_multiple

HEADS = ("softmax", "crf")


@keras.saving.register_keras_serializable(package="zoo")
class SequenceTagger(Task):
    """A many-to-many RNN tagger: word and character features, a bidirectional RNN stack and a
    softmax or CRF output layer, with an optional many-to-one intent head (joint slot filling).

    Takes right-padded `token_ids` (batch, time) and `character_ids` (batch, time, width)
    (0 = padding), and with `casing_dim`, `casing_ids` (batch, time), and returns a dict: `tag_scores` (batch, time, tags), unnormalised per-token
    tag scores; `tag_ids` (batch, time), the decoded tags (Viterbi for "crf", per-token argmax
    for "softmax"; 0 at padded steps); and with `intent_names`, `intent_logits`
    (batch, intents), from the max- and mean-pooled RNN outputs. `predict` also accepts raw
    sentences, which `preprocessor` tokenizes and encodes.

    The model computes its own loss (the CRF's negative log-likelihood or the per-token
    cross-entropy, plus `intent_loss_weight` times the intent cross-entropy) and, with an
    intent head, `intent_accuracy`, so `compile` needs only an optimizer (span F1 is seqeval's,
    computed on whole splits outside the graph by `SequenceTaggerFamily`). Targets
    are a dict: `tags` (batch, time) tag ids and, with an intent head, `intent` (batch,) ids,
    where -1 marks an intent unknown to the model (left out of the loss, counted as wrong).

    Args:
        backbone: RecurrentBackbone. Word embeddings and the recurrent stack (every recurrent
            hyperparameter, the feature dropout and the dropout before the output layers live
            there); the character (and casing) features are given to it beside the words'.
        preprocessor: SequenceTaggerPreprocessor or None. Maps raw sentences to the inputs.
        character_vocabulary_size: int. Rows of the character embedding table.
        max_word_length: int. Characters per token in `character_ids`.
        tag_names: list of str. The tag of each tag id ("O", "B-<type>", "I-<type>", and in
            IOBES "E-<type>", "S-<type>").
        tag_scheme: str. "iob2" or "iobes": the scheme of `tag_names`. Outputs read as
            strings (`output_tag_names`) are IOB2 either way.
        intent_names: list of str or None. The intent of each intent id; None: no intent head.
        casing_dim: int. Width of an embedding of each token's casing class (the
            preprocessor's `casing_ids`) beside the lower-cased word's; 0: none.
        character_encoder: str. "cnn" or "bilstm" (see `CharacterEncoder`).
        character_embedding_dim: int. Width of the character embeddings.
        character_units: int. CNN filters, or LSTM units per direction.
        character_kernel_size: int. CNN window, in characters.
        head: str. "crf" (linear-chain CRF) or "softmax" (independent per-token softmax).
        intent_loss_weight: float. Weight of the intent loss against the tagging loss.

    Examples:
    >>> tagger = zoo.load("ner")
    >>> tagger.predict(["EU rejects German call to boycott British lamb ."])["tag_ids"]
    """

    def __init__(
        self,
        backbone,
        preprocessor=None,
        character_vocabulary_size=100,
        max_word_length=20,
        tag_names=("O",),
        tag_scheme="iob2",
        intent_names=None,
        casing_dim=0,
        character_encoder="cnn",
        character_embedding_dim=32,
        character_units=64,
        character_kernel_size=3,
        head="crf",
        intent_loss_weight=1.0,
        **kwargs,
    ):
        if head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}; got {head!r}.")
        if tag_scheme not in TAG_SCHEMES:
            raise ValueError(
                f"tag_scheme must be one of {', '.join(TAG_SCHEMES)}; got {tag_scheme!r}."
            )
        if casing_dim and preprocessor is not None and not preprocessor.casing:
            raise ValueError(
                "casing_dim needs a preprocessor that outputs casing_ids (casing=True)."
            )
        tag_names = list(tag_names)
        intent_names = list(intent_names) if intent_names else None
        if not backbone.return_sequences:
            raise ValueError("A tagger needs a backbone with return_sequences=True.")
        # === Layers ===
        self.backbone = backbone
        self.casing_embedding = (
            keras.layers.Embedding(CASING_CLASSES, casing_dim, name="casing_embedding")
            if casing_dim
            else None
        )
        self.character_encoder = CharacterEncoder(
            character_vocabulary_size,
            embedding_dim=character_embedding_dim,
            encoder=character_encoder,
            units=character_units,
            kernel_size=character_kernel_size,
            name="character_encoder",
        )
        self.output_dropout = keras.layers.Dropout(backbone.dropout, name="output_dropout")
        self.tag_scores = keras.layers.Dense(len(tag_names), name="tag_scores")
        self.crf = CRF(len(tag_names), name="crf") if head == "crf" else None
        if intent_names:
            self.intent_pooling = MaskedPooling("max_mean", name="intent_pooling")
            self.intent_logits = keras.layers.Dense(len(intent_names), name="intent_logits")

        # === Functional Model ===
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        character_ids = keras.Input(
            shape=(None, max_word_length), dtype="int32", name="character_ids"
        )
        inputs = {"token_ids": token_ids, "character_ids": character_ids}
        mask = ops.not_equal(token_ids, 0)
        features = [self.character_encoder(character_ids)]
        if self.casing_embedding is not None:
            inputs["casing_ids"] = keras.Input(shape=(None,), dtype="int32", name="casing_ids")
            features.append(self.casing_embedding(inputs["casing_ids"]))
        encoded = self.output_dropout(self.backbone(token_ids, features=features))
        scores = self.tag_scores(encoded)
        if self.crf is not None:
            tag_ids = self.crf(scores, mask=mask)
        else:
            tag_ids = ops.where(mask, ops.cast(ops.argmax(scores, axis=-1), "int32"), 0)
        outputs = {"tag_scores": scores, "tag_ids": tag_ids}
        if intent_names:
            pooled = self.intent_pooling(encoded, mask=mask)
            outputs["intent_logits"] = self.intent_logits(pooled)
        super().__init__(
            inputs=inputs,
            outputs=outputs,
            **kwargs,
        )

        # === Config ===
        self.preprocessor = preprocessor
        self.character_vocabulary_size = character_vocabulary_size
        self.max_word_length = max_word_length
        self.tag_names = tag_names
        self.tag_scheme = tag_scheme
        self.intent_names = intent_names
        self.casing_dim = casing_dim
        self.character_encoder_type = character_encoder
        self.character_embedding_dim = character_embedding_dim
        self.character_units = character_units
        self.character_kernel_size = character_kernel_size
        self.head = head
        self.intent_loss_weight = intent_loss_weight

        # === Metrics ===
        self.intent_accuracy = keras.metrics.Mean(name="intent_accuracy") if intent_names else None

    def predict(self, x, batch_size=None, **kwargs):
        """Predicts from raw sentences (strings) or from preprocessed inputs (a dict of ids).

        Per-token outputs of all batches are concatenated, so every batch is padded to one
        length: that of the longest sentence (a multiple of 32) for a list of strings, and the
        preprocessor's `sequence_length` for a dataset of strings.
        """
        if self._is_raw(x) and not isinstance(x, tf.data.Dataset):
            if self.preprocessor is None:
                raise InputError("This model has no preprocessor; pass preprocessed inputs.")
            features = pad_to_multiple(self.preprocessor(as_string_batch(x)))
            x = {name: value.numpy() for name, value in features.items()}
            batch_size = batch_size or PREDICT_BATCH_SIZE
        return super().predict(x, batch_size=batch_size, **kwargs)

    def _preprocess_dataset(self, dataset: tf.data.Dataset) -> tf.data.Dataset:
        if self.preprocessor is None:
            raise InputError("This model has no preprocessor; pass preprocessed inputs.")
        length = self.preprocessor.sequence_length

        def preprocess(*element):
            features = self.preprocessor(element[0])
            features = {
                name: tf.pad(
                    value,
                    [[0, 0], [0, length - tf.shape(value)[1]]] + [[0, 0]] * (value.shape.rank - 2),
                )
                for name, value in features.items()
            }
            return (features, *element[1:]) if len(element) > 1 else features

        return dataset.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
            tf.data.AUTOTUNE
        )

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        mask = ops.not_equal(x["token_ids"], 0)
        tags = ops.cast(y["tags"], "int32")
        scores = ops.cast(y_pred["tag_scores"], "float32")
        if self.crf is not None:
            loss = ops.mean(self.crf.negative_log_likelihood(scores, tags, mask))
        else:
            per_token = keras.losses.sparse_categorical_crossentropy(tags, scores, from_logits=True)
            valid = ops.cast(mask, "float32")
            loss = ops.sum(per_token * valid) / ops.maximum(ops.sum(valid), 1.0)
        if self.intent_names and "intent" in y:
            intents = ops.cast(y["intent"], "int32")
            known = ops.cast(intents >= 0, "float32")
            per_sentence = keras.losses.sparse_categorical_crossentropy(
                ops.maximum(intents, 0),
                ops.cast(y_pred["intent_logits"], "float32"),
                from_logits=True,
            )
            intent_loss = ops.sum(per_sentence * known) / ops.maximum(ops.sum(known), 1.0)
            loss = loss + self.intent_loss_weight * intent_loss
        if self.losses:
            loss = loss + ops.sum(self.losses)
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if self.intent_accuracy is not None and "intent" in y:
            predicted = ops.cast(ops.argmax(y_pred["intent_logits"], axis=-1), "int32")
            self.intent_accuracy.update_state(
                ops.cast(ops.equal(predicted, ops.cast(y["intent"], "int32")), "float32")
            )
        return self.get_metrics_result()

    @property
    def output_tag_names(self) -> list[str]:
        """The IOB2 tag of each tag id: `tag_names`, with IOBES's E- and S- read as I- and B-."""
        if self.tag_scheme == "iobes":
            return [iob2_tag_name(tag) for tag in self.tag_names]
        return list(self.tag_names)

    def tag_probabilities(self, tag_scores, tag_ids, mask):
        """The probability of each decoded tag (CRF marginal or softmax), 0 at padded steps."""
        if self.crf is not None:
            probabilities = self.crf.marginals(tag_scores, mask)
        else:
            probabilities = ops.softmax(ops.cast(tag_scores, "float32"), axis=-1)
        chosen = ops.take_along_axis(
            probabilities, ops.expand_dims(ops.cast(tag_ids, "int32"), -1), axis=-1
        )[..., 0]
        return ops.where(mask, chosen, ops.zeros_like(chosen))

    def get_config(self):
        return {
            **super().get_config(),  # With a quantized model's dtype policies.
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "preprocessor": keras.saving.serialize_keras_object(self.preprocessor),
            "character_vocabulary_size": self.character_vocabulary_size,
            "max_word_length": self.max_word_length,
            "tag_names": self.tag_names,
            "tag_scheme": self.tag_scheme,
            "intent_names": self.intent_names,
            "casing_dim": self.casing_dim,
            "character_encoder": self.character_encoder_type,
            "character_embedding_dim": self.character_embedding_dim,
            "character_units": self.character_units,
            "character_kernel_size": self.character_kernel_size,
            "head": self.head,
            "intent_loss_weight": self.intent_loss_weight,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("backbone", "preprocessor"):
            if isinstance(config.get(key), dict):
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
