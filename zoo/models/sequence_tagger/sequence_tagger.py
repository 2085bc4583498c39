import keras
import tensorflow as tf
from keras import ops

from zoo.errors import InputError
from zoo.layers import MaskedPooling, RecurrentStack
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
        preprocessor: SequenceTaggerPreprocessor or None. Maps raw sentences to the inputs.
        vocabulary_size: int. Rows of the word embedding table (ids 0 and 1: padding, OOV).
        character_vocabulary_size: int. Rows of the character embedding table.
        max_word_length: int. Characters per token in `character_ids`.
        tag_names: list of str. The tag of each tag id ("O", "B-<type>", "I-<type>", and in
            IOBES "E-<type>", "S-<type>").
        tag_scheme: str. "iob2" or "iobes": the scheme of `tag_names`. Outputs read as
            strings (`output_tag_names`) are IOB2 either way.
        intent_names: list of str or None. The intent of each intent id; None: no intent head.
        embedding_dim: int. Width of the word embeddings.
        casing_dim: int. Width of an embedding of each token's casing class (the
            preprocessor's `casing_ids`) beside the lower-cased word's; 0: none.
        character_encoder: str. "cnn" or "bilstm" (see `CharacterEncoder`).
        character_embedding_dim: int. Width of the character embeddings.
        character_units: int. CNN filters, or LSTM units per direction.
        character_kernel_size: int. CNN window, in characters.
        cell: str. Recurrent cell, any of `zoo.config.CELLS`.
        units: int. Hidden size of each recurrent layer, per direction.
        num_layers: int. Depth of the recurrent stack.
        bidirectional: bool. Run every recurrent layer in both directions.
        merge_mode: str. How directions combine ("concat", "sum", "mul", "ave").
        head: str. "crf" (linear-chain CRF) or "softmax" (independent per-token softmax).
        embedding_dropout: float. Dropout on the concatenated word and character features.
        dropout: float. Dropout on each recurrent layer's inputs and before the output layers.
        recurrent_dropout: float. Dropout on recurrent states (slower: no fused kernels).
        residual: bool. Residual connections between recurrent layers of equal width.
        intent_loss_weight: float. Weight of the intent loss against the tagging loss.

    Examples:
    >>> tagger = zoo.load("ner")
    >>> tagger.predict(["EU rejects German call to boycott British lamb ."])["tag_ids"]
    """

    def __init__(
        self,
        preprocessor=None,
        vocabulary_size=20000,
        character_vocabulary_size=100,
        max_word_length=20,
        tag_names=("O",),
        tag_scheme="iob2",
        intent_names=None,
        embedding_dim=100,
        casing_dim=0,
        character_encoder="cnn",
        character_embedding_dim=32,
        character_units=64,
        character_kernel_size=3,
        cell="lstm",
        units=128,
        num_layers=2,
        bidirectional=True,
        merge_mode="concat",
        head="crf",
        embedding_dropout=0.0,
        dropout=0.0,
        recurrent_dropout=0.0,
        residual=False,
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
        # === Layers ===
        # No mask_zero: the concatenation with character features would turn the mask into
        # all-True; the padding mask is computed from the token ids and passed explicitly.
        self.token_embedding = keras.layers.Embedding(
            vocabulary_size, embedding_dim, name="token_embedding"
        )
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
        self.token_features = keras.layers.Concatenate(name="token_features")
        self.embedding_dropout = keras.layers.Dropout(embedding_dropout, name="embedding_dropout")
        self.encoder = RecurrentStack(
            cell=cell,
            units=units,
            num_layers=num_layers,
            bidirectional=bidirectional,
            merge_mode=merge_mode,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            residual=residual,
            return_sequences=True,
            name="encoder",
        )
        self.output_dropout = keras.layers.Dropout(dropout, name="output_dropout")
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
        features = [self.token_embedding(token_ids), self.character_encoder(character_ids)]
        if self.casing_embedding is not None:
            inputs["casing_ids"] = keras.Input(shape=(None,), dtype="int32", name="casing_ids")
            features.append(self.casing_embedding(inputs["casing_ids"]))
        features = self.token_features(features)
        encoded = self.encoder(self.embedding_dropout(features), mask=mask)
        encoded = self.output_dropout(encoded)
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
        self.vocabulary_size = vocabulary_size
        self.character_vocabulary_size = character_vocabulary_size
        self.max_word_length = max_word_length
        self.tag_names = tag_names
        self.tag_scheme = tag_scheme
        self.intent_names = intent_names
        self.embedding_dim = embedding_dim
        self.casing_dim = casing_dim
        self.character_encoder_type = character_encoder
        self.character_embedding_dim = character_embedding_dim
        self.character_units = character_units
        self.character_kernel_size = character_kernel_size
        self.cell = cell
        self.units = units
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.merge_mode = merge_mode
        self.head = head
        self.embedding_dropout_rate = embedding_dropout
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        self.residual = residual
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
            "preprocessor": keras.saving.serialize_keras_object(self.preprocessor),
            "vocabulary_size": self.vocabulary_size,
            "character_vocabulary_size": self.character_vocabulary_size,
            "max_word_length": self.max_word_length,
            "tag_names": self.tag_names,
            "tag_scheme": self.tag_scheme,
            "intent_names": self.intent_names,
            "embedding_dim": self.embedding_dim,
            "casing_dim": self.casing_dim,
            "character_encoder": self.character_encoder_type,
            "character_embedding_dim": self.character_embedding_dim,
            "character_units": self.character_units,
            "character_kernel_size": self.character_kernel_size,
            "cell": self.cell,
            "units": self.units,
            "num_layers": self.num_layers,
            "bidirectional": self.bidirectional,
            "merge_mode": self.merge_mode,
            "head": self.head,
            "embedding_dropout": self.embedding_dropout_rate,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "residual": self.residual,
            "intent_loss_weight": self.intent_loss_weight,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("preprocessor"), dict):
            config["preprocessor"] = keras.saving.deserialize_keras_object(config["preprocessor"])
        return cls(**config)
