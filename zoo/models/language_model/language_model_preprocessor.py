import collections

import keras
import tensorflow as tf

from zoo.errors import InputError
from zoo.vocabulary import OOV_ID, PAD_ID, lookup_table, string_lookup

END_TOKEN, UNKNOWN_TOKEN, NUMBER_TOKEN = "<eos>", "<unk>", "N"


def ptb_words(text):
    """Raw text (batch,) -> words in Penn Treebank's language-modelling form (tf.RaggedTensor):
    lower case, clitics split ("it's" -> "it 's", "don't" -> "do n't"), numbers as `N`,
    percent signs as `N`, dollar signs a word of their own (`$ N`), other punctuation dropped
    except inside words
    ("u.s.", "mid-october") and where the vocabulary has the word with it (`finish_words`)."""
    text = tf.strings.unicode_transcode(
        text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
    )
    text = tf.strings.lower(text, encoding="utf-8")
    text = tf.strings.regex_replace(text, "([%$])", " \\1 ")
    text = tf.strings.regex_replace(text, r"(\pL)n't\b", r"\1 n't")
    text = tf.strings.regex_replace(text, r"(\pL)'(s|re|ve|m|ll|d)\b", r"\1 '\2")
    text = tf.strings.regex_replace(text, r"[^\pL\pN\s.'&%$-]", " ")
    words = tf.strings.split(text)
    number = tf.strings.regex_full_match(words, r"[+-]?[0-9][0-9,.:/-]*|%")
    return tf.ragged.map_flat_values(
        lambda flat, is_number: tf.where(is_number, NUMBER_TOKEN, flat), words, number
    )


@keras.saving.register_keras_serializable(package="zoo")
class LanguageModelPreprocessor(keras.layers.Layer):
    """Raw text -> word ids of a word-level language model, and ids back to text.

    Text is put in the vocabulary's form (`ptb_words`): PTB's own conventions, applied in the
    graph. Ids: 0 pads, 1 is `<unk>` (every word outside the vocabulary), the vocabulary's
    words follow, `<eos>` among them. Invalid UTF-8 is replaced, never an error.

    Args:
        vocabulary: list of str or None. The words (not `<unk>`), most frequent first; `adapt`
            learns them from training sentences.
        max_vocabulary: int. Words `adapt` keeps, `<unk>` included.
        max_length: int. Most prompt words read (the last ones are kept).

    Call arguments:
        text: tf.string tensor (batch,) of prompts.

    Returns:
        {"token_ids": (batch, time) int32}: `<eos>` (the context before a sentence) then the
        prompt's words, right-padded with 0; at least two steps.
    """

    def __init__(self, vocabulary=None, max_vocabulary=10000, max_length=256, **kwargs):
        super().__init__(**kwargs)
        self.max_vocabulary = max_vocabulary
        self.max_length = max_length
        self.lookup = None
        self.inverse = None
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        if vocabulary is not None:
            self.set_vocabulary(vocabulary)
        self.built = True

    def set_vocabulary(self, vocabulary) -> None:
        vocabulary = list(vocabulary)
        if END_TOKEN not in vocabulary:
            raise ValueError(f"The vocabulary needs the sentence end {END_TOKEN!r}.")
        self._end_id = vocabulary.index(END_TOKEN) + 2  # A Python int, also while tracing.
        self.lookup = string_lookup(vocabulary, oov_token=UNKNOWN_TOKEN, name="lookup")
        self.inverse = string_lookup(
            vocabulary, invert=True, oov_token=UNKNOWN_TOKEN, name="inverse"
        )

    def get_vocabulary(self) -> list[str]:
        """The words of ids 2, 3, ..."""
        return self.lookup.get_vocabulary()[2:]

    @property
    def vocabulary_size(self) -> int:
        """Ids in use, padding and `<unk>` included."""
        return self.lookup.vocabulary_size()

    @property
    def end_id(self) -> int:
        return self._end_id

    def adapt(self, sentences) -> None:
        """Learns the `max_vocabulary` - 1 most frequent words (`<eos>` counted once per
        sentence) of training sentences (an iterable of str or bytes, split at spaces as they
        are: PTB's are in its form already) besides `<unk>`; ties broken by the word."""
        counts = collections.Counter()
        for sentence in sentences:
            if isinstance(sentence, bytes):
                sentence = sentence.decode("utf-8")
            counts.update(sentence.split())
            counts[END_TOKEN] += 1
        counts.pop(UNKNOWN_TOKEN, None)
        ranked = sorted(counts, key=lambda word: (-counts[word], word))
        self.set_vocabulary(ranked[: self.max_vocabulary - 1])

    def lookup_tables(self) -> list:
        return [lookup_table(self.lookup), lookup_table(self.inverse)]

    def _check(self, text):
        if self.lookup is None:
            raise ValueError("LanguageModelPreprocessor has no vocabulary: call adapt() first.")
        text = tf.convert_to_tensor(text)
        if text.dtype != tf.string:
            raise InputError(
                f"LanguageModelPreprocessor expects strings, got a tensor of {text.dtype.name}."
            )
        return text

    def tokenize(self, text):
        """Raw text (batch,) -> word ids (tf.RaggedTensor), no `<eos>` added."""
        words = ptb_words(self._check(text))
        return tf.ragged.map_flat_values(self._word_ids, words)

    def _word_ids(self, words):
        """Ids of words; a word outside the vocabulary is looked up again without the
        punctuation around it ("end." -> "end"), and dropped if nothing else is left."""
        ids = tf.cast(self.lookup(words), tf.int32)
        stripped = tf.strings.regex_replace(words, r"^['.&-]+|['.&-]+$", "")
        stripped_ids = tf.cast(self.lookup(stripped), tf.int32)
        ids = tf.where(tf.equal(ids, OOV_ID), stripped_ids, ids)
        return tf.where(tf.equal(stripped, "") & tf.equal(ids, OOV_ID), PAD_ID, ids)

    def stream(self, sentences):
        """Sentences in PTB form (tf.string (batch,)) -> their ids, each followed by `<eos>`,
        as one flat int32 tensor."""
        words = tf.strings.split(self._check(sentences))
        ends = tf.fill(tf.stack([words.nrows(), 1]), END_TOKEN)
        words = tf.concat([words, tf.RaggedTensor.from_tensor(ends)], axis=1)
        return tf.cast(self.lookup(words.flat_values), tf.int32)

    def call(self, text):
        text = self._check(text)
        scalar = text.shape.rank == 0
        if scalar:
            text = tf.expand_dims(text, 0)
        ids = self.tokenize(text)
        ids = tf.ragged.boolean_mask(ids, ids > PAD_ID)[:, -(self.max_length - 1) :]
        start = tf.fill(tf.stack([ids.nrows(), 1]), self.end_id)
        ids = tf.concat([tf.RaggedTensor.from_tensor(start), ids], axis=1)
        length = tf.maximum(tf.reduce_max(ids.row_lengths()), 2)
        token_ids = ids.to_tensor(default_value=PAD_ID, shape=tf.stack([ids.nrows(), length]))
        features = {"token_ids": token_ids}
        return tf.nest.map_structure(lambda t: t[0], features) if scalar else features

    def detokenize(self, token_ids):
        """Ids (batch, time), 0 after the end -> text: the words joined by spaces."""
        words = self.inverse(tf.cast(token_ids, tf.int64))
        words = tf.ragged.boolean_mask(words, tf.not_equal(token_ids, PAD_ID))
        return tf.strings.reduce_join(words, axis=1, separator=" ")

    def words(self, token_ids):
        """The words of ids (any shape)."""
        return self.inverse(tf.cast(token_ids, tf.int64))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary": self.get_vocabulary() if self.lookup is not None else None,
                "max_vocabulary": self.max_vocabulary,
                "max_length": self.max_length,
            }
        )
        return config
