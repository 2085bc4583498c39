import keras
import tensorflow as tf

from zoo.errors import InputError
from zoo.progress import dataset_size, progress
from zoo.task import as_string_batch
from zoo.vocabulary import OOV_ID, lookup_table, most_frequent_words, string_lookup


@keras.saving.register_keras_serializable(package="zoo")
def standardize_text(text):
    """Lower-cases, drops HTML line breaks and splits punctuation into tokens of its own.

    Core TF ops only, so the same code runs in tf.data and in a SavedModel served by stock TF
    Serving (no tensorflow-text). Invalid UTF-8 is replaced, never an error.
    """
    text = tf.strings.unicode_transcode(
        text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
    )
    text = tf.strings.lower(text, encoding="utf-8")
    text = tf.strings.regex_replace(text, r"<br\s*/?>", " ")
    # Punctuation carries sentiment ("!", "?") and separates words glued to it ("great.").
    return tf.strings.regex_replace(text, r"([!\"#$%&()*+,\-./:;<=>?@\[\\\]^_`{|}~])", r" \1 ")


# Registered under its first name, which the committed .keras files record.
@keras.saving.register_keras_serializable(package="zoo", name="TextPreprocessor")
class TextClassifierPreprocessor(keras.layers.Layer):
    """Maps raw strings to right-padded word ids, with TF ops that serve without tf-text.

    Id 0 is padding, 1 is out-of-vocabulary and 2... are the vocabulary's words in order. Sequences longer than `sequence_length` are
    truncated (keeping the start or the end); an empty string becomes a single
    out-of-vocabulary token, so every input gets a valid answer; an empty batch gives shape
    (0, 1).

    Args:
        vocabulary: list of str or None. Word list without the padding and OOV tokens; None
            leaves the layer to be `adapt`ed.
        vocabulary_size: int. Size of the vocabulary built by `adapt`, the two special ids
            included (ignored when `vocabulary` is given).
        sequence_length: int. Maximum number of tokens kept per text.
        truncation: str. "post" keeps the first tokens, "pre" the last ones.

    Examples:
    >>> preprocessor = TextClassifierPreprocessor(vocabulary=["great", "film"])
    >>> preprocessor(tf.constant(["A great film!"]))  # [[1, 2, 3, 1]]
    """

    def __init__(
        self,
        vocabulary=None,
        vocabulary_size=20000,
        sequence_length=400,
        truncation="post",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if truncation not in ("pre", "post"):
            raise ValueError(f"truncation must be 'pre' or 'post', got {truncation!r}.")
        # === Config ===
        self.vocabulary_size = vocabulary_size
        self.sequence_length = sequence_length
        self.truncation = truncation
        self.vocabulary = None
        self.word_lookup = None
        if vocabulary is not None:
            self.set_vocabulary(vocabulary)
        # Strings stay TF tensors: this layer runs in tf.data or a TF graph on any backend.
        # Private attributes, no public switch: Keras would convert inputs to the backend's
        # tensors, which cannot hold strings (tests/test_private_keras_apis.py).
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.built = True

    def set_vocabulary(self, vocabulary) -> None:
        """Sets the word list (most frequent first), without the padding and OOV tokens."""
        self.word_lookup = string_lookup(vocabulary, name="word_lookup")
        self.vocabulary = [str(word) for word in self.word_lookup.get_vocabulary()[2:]]
        self.vocabulary_size = len(self.vocabulary) + 2

    def adapt(self, texts) -> None:
        """Builds the vocabulary (the `vocabulary_size - 2` most frequent words) from raw strings.

        `texts`: a tf.data.Dataset of strings (batched or not), or a list of str / bytes.
        """
        if not isinstance(texts, tf.data.Dataset):
            texts = tf.data.Dataset.from_tensor_slices(as_string_batch(texts))
        self.set_vocabulary(
            most_frequent_words(self.tokenize_corpus(texts), self.vocabulary_size - 2)
        )

    def tokenize_corpus(
        self, texts: tf.data.Dataset, label: str = "Tokenizing the texts"
    ) -> list[list[str]]:
        """Raw strings (a dataset, batched or not) -> lists of the words the model sees, with a
        progress bar under `label` (a total of texts unless `unbatch` lost it)."""
        texts = texts.unbatch() if texts.element_spec.shape.rank else texts
        words = texts.batch(256).map(self.tokenize, num_parallel_calls=tf.data.AUTOTUNE)
        batches = progress(
            words.prefetch(tf.data.AUTOTUNE).as_numpy_iterator(),
            dataset_size(texts),
            label,
            unit="text",
            size=len,
        )
        return [[word.decode("utf-8") for word in row] for batch in batches for row in batch]

    def lookup_tables(self) -> list:
        """TF resources an exported SavedModel must carry (tracked by `zoo.export`)."""
        return [lookup_table(self.word_lookup)] if self.word_lookup is not None else []

    def get_vocabulary(self) -> list[str]:
        return list(self.vocabulary or [])

    def tokenize(self, text):
        """Raw strings -> standardized word strings (tf.RaggedTensor), as the model sees them."""
        return tf.strings.split(standardize_text(text))

    def call(self, text, ragged=False):
        text = tf.convert_to_tensor(text)
        if text.dtype != tf.string:
            raise InputError(
                f"TextClassifierPreprocessor expects strings, got a tensor of {text.dtype.name}."
            )
        scalar = text.shape.rank == 0
        if scalar:
            text = tf.expand_dims(text, 0)
        if self.word_lookup is None:
            raise ValueError(
                "TextClassifierPreprocessor has no vocabulary: pass one or call adapt()."
            )
        words = self.tokenize(text)
        token_ids = self.word_lookup(words)
        if self.truncation == "post":
            token_ids = token_ids[:, : self.sequence_length]
        else:
            token_ids = token_ids[:, -self.sequence_length :]
        empty = tf.cast(token_ids.row_lengths() == 0, tf.int64)
        fill = tf.RaggedTensor.from_row_lengths(
            tf.fill([tf.reduce_sum(empty)], tf.constant(OOV_ID, token_ids.dtype)), empty
        )
        token_ids = tf.concat([token_ids, fill], axis=1)
        token_ids = tf.cast(token_ids, tf.int32)
        if not ragged:
            # At least one step, also for an empty batch: TensorFlow's RNN loop cannot stack
            # the outputs of zero steps of an unknown batch size (a served empty batch).
            length = tf.maximum(tf.reduce_max(token_ids.row_lengths()), 1)
            token_ids = token_ids.to_tensor(
                default_value=0, shape=tf.stack([token_ids.nrows(), length])
            )
        return token_ids[0] if scalar else token_ids

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary": self.vocabulary,
                "vocabulary_size": self.vocabulary_size,
                "sequence_length": self.sequence_length,
                "truncation": self.truncation,
            }
        )
        return config
