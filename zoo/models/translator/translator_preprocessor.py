import keras
import keras_hub
import sentencepiece
import tensorflow as tf

from zoo.errors import InputError
from zoo.task import as_string_batch

# SentencePiece's special ids as keras-hub's `compute_sentence_piece_proto` assigns them.
PAD_ID, UNK_ID, START_ID, END_ID = 0, 1, 2, 3


def clean_text(text):
    """Invalid UTF-8 replaced by U+FFFD (never an error); core TF ops only."""
    return tf.strings.unicode_transcode(
        text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
    )


def sentence_piece_tokenizer(proto=None):
    """A keras-hub SentencePiece tokenizer that always runs tensorflow-text's ops (the same
    ones in tf.data, eagerly and in exported graphs), never the Python `sentencepiece`."""
    return keras_hub.tokenizers.SentencePieceTokenizer(
        proto=proto, dtype="int32", _allow_python_workflow=False
    )


def sentence_piece_model(tokenizer):
    """The `tensorflow_text.SentencepieceTokenizer` (a trackable owning the model resource)
    behind a keras-hub SentencePieceTokenizer, which an exported SavedModel must track.

    keras-hub creates it on first use as the private `_sentence_piece`, with no public
    accessor (tests/test_private_keras_apis.py fails if it moves).
    """
    tokenizer._maybe_initialized_tf()
    return tokenizer._sentence_piece


def revive_sentence_piece_model(tokenizer) -> bool:
    """Creates the tokenizer's tensorflow-text model again if its resource is gone; True if so.

    The resource belongs to the eager kernel that created it ("kernel-owned", see
    tensorflow_text's sentencepiece_tokenizer.py), and `tf.random.set_seed` (so
    `keras.utils.set_random_seed`) clears the eager kernel cache: every tokenization after it
    fails with "Resource ... SentencepieceResource does not exist". Served graphs are not
    affected (the server creates the resource once and keeps it).
    """
    with tf.init_scope():  # Eagerly, also while a graph (tf.data, tf.function) is traced.
        try:
            sentence_piece_model(tokenizer).tokenize(tf.constant([""]))
            return False
        except tf.errors.NotFoundError:
            tokenizer._set_proto_tf(tokenizer.proto)  # keras-hub's own (re)initialisation.
            return True


@keras.saving.register_keras_serializable(package="zoo")
class TranslatorPreprocessor(keras.layers.Layer):
    """Raw source sentences -> subword ids for the `Translator`, and ids back to text.

    Subwords are SentencePiece units (keras-hub's `compute_sentence_piece_proto` and
    `SentencePieceTokenizer`: unigram model, NFKC normalisation, case kept, reversible
    detokenization), learned on the training text only by `adapt`. With `joint_vocabulary`
    one model covers both languages; otherwise each has its own. Ids 0-3 are padding,
    unknown, start and end.

    With `lowercase_source`, source sentences are lower-cased (Unicode, in the graph) before
    they are learned from or read: cased, lower-cased and all-caps input give one translation,
    and the target keeps its case (the model restores it).

    A source longer than `max_source_length` subwords keeps its first `max_source_length`
    (the rest is not read; `Translator` outputs say `truncated`). Invalid UTF-8 is replaced,
    never an error.

    Args:
        vocabulary_size: int. SentencePiece vocabulary size `adapt` learns (per language
            unless joint).
        joint_vocabulary: bool. One vocabulary for source and target.
        max_source_length: int. Most source subwords read.
        max_target_length: int. Most target subwords trained on (and decoded).
        lowercase_source: bool. Lower-case source sentences before reading them.

    Call arguments:
        text: tf.string tensor (batch,) of source sentences.

    Returns:
        {"source_ids": (batch, time) int32 right-padded with 0 (at least one step),
        "target_ids": (batch, 1) the start token}: the inputs of the first decoding step.
    """

    def __init__(
        self,
        vocabulary_size=8000,
        joint_vocabulary=True,
        max_source_length=128,
        max_target_length=128,
        lowercase_source=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        # === Layers === (their SentencePiece models are saved as the tokenizers' assets)
        self.source_tokenizer = sentence_piece_tokenizer()
        self.separate_target_tokenizer = None if joint_vocabulary else sentence_piece_tokenizer()
        # === Config ===
        self.vocabulary_size = vocabulary_size
        self.joint_vocabulary = joint_vocabulary
        self.max_source_length = max_source_length
        self.max_target_length = max_target_length
        self.lowercase_source = lowercase_source
        # Strings stay TF tensors (see TextClassifierPreprocessor).
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.built = True

    @property
    def target_tokenizer(self):
        return self.separate_target_tokenizer or self.source_tokenizer

    @property
    def source_vocabulary_size(self) -> int:
        return self.source_tokenizer.vocabulary_size()

    @property
    def target_vocabulary_size(self) -> int:
        return self.target_tokenizer.vocabulary_size()

    def adapt(self, source_texts, target_texts=None) -> None:
        """Learns the SentencePiece model(s) from raw sentences (lists or datasets of
        strings); `target_texts` defaults to `source_texts` (a smoke model's one language)."""
        source = self._string_dataset(source_texts)
        target = source if target_texts is None else self._string_dataset(target_texts)
        source = source.map(self._source_case)
        if self.joint_vocabulary:
            texts = source if target_texts is None else source.concatenate(target)
            self.source_tokenizer.set_proto(self._learn(texts))
        else:
            self.source_tokenizer.set_proto(self._learn(source))
            self.separate_target_tokenizer.set_proto(self._learn(target))

    @staticmethod
    def _string_dataset(texts) -> tf.data.Dataset:
        if isinstance(texts, tf.data.Dataset):
            return texts.unbatch() if texts.element_spec.shape.rank else texts
        return tf.data.Dataset.from_tensor_slices(as_string_batch(texts))

    def _learn(self, texts: tf.data.Dataset) -> bytes:
        sentencepiece.set_min_log_level(2)  # Its trainer logs every setting otherwise.
        return keras_hub.tokenizers.compute_sentence_piece_proto(
            texts.map(clean_text), vocabulary_size=self.vocabulary_size
        )

    def lookup_tables(self) -> list:
        """TF resources an exported SavedModel must carry (tracked by `zoo.export`): the
        tensorflow-text SentencePiece models of the tokenizers."""
        return [sentence_piece_model(tokenizer) for tokenizer in self._tokenizers()]

    def _check(self, text):
        text = tf.convert_to_tensor(text)
        if text.dtype != tf.string:
            raise InputError(
                f"TranslatorPreprocessor expects strings, got a tensor of {text.dtype.name}."
            )
        if self.source_tokenizer.proto is None:
            raise ValueError("TranslatorPreprocessor has no vocabulary: call adapt() first.")
        self._revive()
        return text

    def _revive(self) -> None:
        """Creates the tokenizers' resources again if `tf.random.set_seed` dropped them."""
        if any(revive_sentence_piece_model(tokenizer) for tokenizer in self._tokenizers()):
            # Traced functions hold the old resource: trace again.
            self.__dict__.pop("_graph_functions", None)

    def _tokenizers(self) -> list:
        return [t for t in (self.source_tokenizer, self.separate_target_tokenizer) if t]

    def _graph(self, key, function, *args):
        """`function(*args)` as a TF graph: keras-hub's tokenizers return Python lists when
        run eagerly, tf.RaggedTensors in graphs (tf.data, tf.function, exported models)."""
        if not tf.executing_eagerly():
            return function(*args)
        # Not a tracked attribute: Keras and SavedModels need not see these helpers.
        functions = self.__dict__.setdefault("_graph_functions", {})
        if key not in functions:
            functions[key] = tf.function(function, reduce_retracing=True, autograph=False)
        return functions[key](*args)

    def _source_case(self, text):
        return tf.strings.lower(text, encoding="utf-8") if self.lowercase_source else text

    def tokenize_source(self, text):
        """Source sentences (batch,) -> all their subword ids (tf.RaggedTensor), uncut."""
        text = self._source_case(clean_text(self._check(text)))
        return self._graph("tokenize_source", lambda text: self.source_tokenizer(text), text)

    def tokenize_target(self, text):
        """Target sentences (batch,) -> their subword ids (tf.RaggedTensor), uncut."""
        text = clean_text(self._check(text))
        return self._graph("tokenize_target", lambda text: self.target_tokenizer(text), text)

    def call(self, text):
        text = self._check(text)
        scalar = text.shape.rank == 0
        if scalar:
            text = tf.expand_dims(text, 0)
        source = self.tokenize_source(text)[:, : self.max_source_length]
        batch = source.nrows()
        # At least one step, also for an empty batch (see TextClassifierPreprocessor).
        length = tf.maximum(tf.reduce_max(source.row_lengths()), 1)
        source_ids = source.to_tensor(default_value=PAD_ID, shape=tf.stack([batch, length]))
        target_ids = tf.fill(tf.stack([batch, 1]), START_ID)
        features = {"source_ids": source_ids, "target_ids": target_ids}
        return tf.nest.map_structure(lambda t: t[0], features) if scalar else features

    def training_pair(self, source_text, target_text):
        """Unbatched raw (source, target) sentences -> (features, labels): the source ids, the
        target ids after the start token (teacher forcing), and the labels, the target ids
        followed by the end token; cut to the maximum lengths."""
        source = self.tokenize_source(source_text[None])[0][: self.max_source_length]
        target = self.tokenize_target(target_text[None])[0][: self.max_target_length - 1]
        start, end = tf.constant([START_ID]), tf.constant([END_ID])
        features = {"source_ids": source, "target_ids": tf.concat([start, target], 0)}
        return features, tf.concat([target, end], 0)

    def detokenize(self, token_ids):
        """Target ids (batch, time), cut at the end token or padded with 0 -> sentences."""
        self._revive()
        token_ids = tf.RaggedTensor.from_tensor(tf.cast(token_ids, tf.int32), padding=PAD_ID)
        return self._graph(
            "detokenize", lambda ids: self.target_tokenizer.detokenize(ids), token_ids
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "joint_vocabulary": self.joint_vocabulary,
                "max_source_length": self.max_source_length,
                "max_target_length": self.max_target_length,
                "lowercase_source": self.lowercase_source,
            }
        )
        return config
