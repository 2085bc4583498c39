import collections

import keras
import tensorflow as tf

from zoo.errors import InputError
from zoo.task import as_string_batch
from zoo.vocabulary import PAD_ID, lookup_table, string_lookup

# Punctuation split off the start / the end of a word. Word-internal punctuation stays, so
# "U.S.", "1996-08-22", "o'clock" and "1,000" remain one token, as in ATIS and CoNLL-2003.
OPENING = r"[(\[{\"`]|\$"
CLOSING = r"[,;:!?)\]}\"%]"
# Penn Treebank clitics, split off as CoNLL-2003 does ("does n't", "Germany 's").
CLITICS = r"(?i)(\S)('s|'re|'ve|'ll|'m|'d|n't)(\s|$)"
# Casing classes of a token (0 is padding), first full match wins: the word ids are looked
# up lower-cased, so this is how the tagger reads "May" against "may" beside the characters.
CASING_PATTERNS = (
    r"[0-9.,/-]*[0-9][0-9.,/-]*",  # 2: numeric
    r".*[0-9].*",  # 3: has a digit
    r"\P{Lu}*\p{Ll}\P{Lu}*",  # 4: lower
    r"\P{Ll}*\p{Lu}\P{Ll}*",  # 5: upper
    r"\p{Lu}\P{Lu}*",  # 6: initial upper
    r".*\pL.*",  # 7: mixed
)
CASING_CLASSES = len(CASING_PATTERNS) + 2  # padding, the patterns, no letter or digit


def casing_ids(tokens):
    """A rank-1 string tensor of tokens -> (n,) int32 casing classes, 1 to CASING_CLASSES - 1.

    1: no letter or digit ("-", ","); then in order of `CASING_PATTERNS`: numeric ("1,000",
    "1996-08-22"), has a digit ("F16"), lower ("clinton"), upper ("EU", "A"), initial upper
    ("Germany"), mixed ("McDonald", "iPhone").
    """
    classes = tf.ones_like(tokens, dtype=tf.int32)
    # Last pattern first, so that the first one that matches is the one that stays.
    for index, pattern in reversed(list(enumerate(CASING_PATTERNS, start=2))):
        classes = tf.where(tf.strings.regex_full_match(tokens, pattern), index, classes)
    return classes


def tokenize_sentences(text, split_clitics=False):
    """Splits raw sentences into tokens (tf.RaggedTensor), with core TF ops only.

    Whitespace separates tokens; opening brackets and quotes are split off the start of a word
    and closing punctuation off its end; a sentence-final period is split off a word of two or
    more letters ("Boston." -> "Boston", ".") but not off "U.S." or "3."; with
    `split_clitics`, "'s", "n't", ... become tokens of their own. A sentence that is already
    tokenized the CoNLL-2003 or ATIS way and joined with spaces comes back as its tokens
    (4 of CoNLL-2003's 17,494 train and test sentences and none of ATIS's differ). Invalid
    UTF-8 is replaced, never an error.
    """
    text = tf.strings.unicode_transcode(
        text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
    )
    for _ in range(2):  # Twice: a match consumes the character a second one would need.
        text = tf.strings.regex_replace(text, rf"(^|\s)({OPENING})(\S)", r"\1\2 \3")
        text = tf.strings.regex_replace(text, rf"(\S)({CLOSING})(\s|$)", r"\1 \2\3")
    text = tf.strings.regex_replace(text, r"([^\s.][^\s.])\.(\s*)$", r"\1 .\2")
    if split_clitics:
        text = tf.strings.regex_replace(text, CLITICS, r"\1 \2\3")
    return tf.strings.split(text)


@keras.saving.register_keras_serializable(package="zoo")
class SequenceTaggerPreprocessor(keras.layers.Layer):
    """Maps raw sentences (or their tokens) to word ids and character ids, serving without tf-text.

    `call` tokenizes raw strings (`tokenize_sentences`) and encodes the tokens; `encode_tokens`
    encodes tokens that are already split (a dataset's gold tokens), so training and serving
    share one implementation. Words are looked up lower-cased, with digits mapped to "0",
    in the word vocabulary (id 0 padding, 1 out-of-vocabulary, 2... the words); characters
    keep their case (unless `lowercase_characters`) and are looked up in the character
    vocabulary (same special ids). Outputs are right-padded with 0 to at least one step, so an
    empty sentence gives one padded step.

    Args:
        vocabulary: list of str or None. Normalized words, without the special tokens.
        characters: list of str or None. Single characters, without the special tokens.
        sequence_length: int. Maximum number of tokens kept from a raw sentence; longer ones
            are cut (the tokens returned by `tokenize` show which were kept).
        max_word_length: int. Characters kept per token (its first ones).
        lowercase_characters: bool. Lower-case the characters too (for lower-cased corpora).
        split_clitics: bool. Split "'s", "n't", ... into tokens of their own.
        casing: bool. Also output `casing_ids`, each token's casing class (see `casing_ids`).

    Examples:
    >>> preprocessor = SequenceTaggerPreprocessor(vocabulary=["to", "boston"], characters=list("abc"))
    >>> preprocessor(tf.constant(["Flights to Boston"]))["token_ids"]  # [[1, 2, 3]]
    """

    def __init__(
        self,
        vocabulary=None,
        characters=None,
        sequence_length=256,
        max_word_length=20,
        lowercase_characters=False,
        split_clitics=False,
        casing=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (
            ("sequence_length", sequence_length),
            ("max_word_length", max_word_length),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        # === Config ===
        self.sequence_length = sequence_length
        self.max_word_length = max_word_length
        self.lowercase_characters = lowercase_characters
        self.split_clitics = split_clitics
        self.casing = casing
        self.vocabulary = None
        self.characters = None
        self.word_lookup = None
        self.character_lookup = None
        if vocabulary is not None:
            self.set_vocabulary(vocabulary)
        if characters is not None:
            self.set_characters(characters)
        # Strings stay TF tensors: this layer runs in tf.data or a TF graph on any backend.
        # Private attributes, no public switch: Keras would convert inputs to the backend's
        # tensors, which cannot hold strings (tests/test_private_keras_apis.py).
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.built = True

    @staticmethod
    def _lookup(keys, name):
        lookup = string_lookup(keys, name=name)
        return [str(key) for key in lookup.get_vocabulary()[2:]], lookup

    @property
    def vocabulary_size(self) -> int:
        return len(self.vocabulary or []) + 2

    @property
    def character_vocabulary_size(self) -> int:
        return len(self.characters or []) + 2

    def set_vocabulary(self, vocabulary) -> None:
        """Sets the normalized word list (most frequent first), without the special tokens."""
        self.vocabulary, self.word_lookup = self._lookup(vocabulary, "word_lookup")

    def set_characters(self, characters) -> None:
        """Sets the character list, without the special tokens."""
        if any(len(c) != 1 for c in characters):
            raise ValueError("The character vocabulary must hold single characters.")
        self.characters, self.character_lookup = self._lookup(characters, "character_lookup")

    def adapt(self, texts, vocabulary_size=None, character_vocabulary_size=None) -> None:
        """Sets the word and character vocabularies from raw sentences, as `call` reads them.

        Words are ranked by frequency (ties by the word), normalized as they are looked up;
        characters likewise, from the tokens (lower-cased with `lowercase_characters`).

        Args:
            texts: a tf.data.Dataset of strings (batched or not), or a list of str / bytes.
            vocabulary_size: int or None. Keep at most `vocabulary_size - 2` words (ids 0 and
                1 are padding and OOV); None keeps all of them.
            character_vocabulary_size: int or None. The same for characters.
        """
        if isinstance(texts, tf.data.Dataset):
            texts = texts.unbatch() if texts.element_spec.shape.rank else texts
        else:
            texts = tf.data.Dataset.from_tensor_slices(as_string_batch(texts))
        words, characters = collections.Counter(), collections.Counter()
        for batch in texts.batch(256).prefetch(tf.data.AUTOTUNE):
            tokens = self.tokenize(batch).flat_values
            words.update(self.normalize_words(tokens).numpy().tolist())
            if self.lowercase_characters:
                tokens = tf.strings.lower(tokens, encoding="utf-8")
            split = tf.strings.unicode_split(tokens, "UTF-8", errors="replace")
            characters.update(split.flat_values.numpy().tolist())

        def ranked(counts, size):
            keys = sorted(counts, key=lambda key: (-counts[key], key))
            return [key.decode("utf-8") for key in keys[: None if size is None else size - 2]]

        self.set_vocabulary(ranked(words, vocabulary_size))
        self.set_characters(ranked(characters, character_vocabulary_size))

    def get_vocabulary(self) -> list[str]:
        return list(self.vocabulary or [])

    def get_characters(self) -> list[str]:
        return list(self.characters or [])

    def lookup_tables(self) -> list:
        """TF resources an exported SavedModel must carry (tracked by `zoo.export`)."""
        return [
            lookup_table(lookup)
            for lookup in (self.word_lookup, self.character_lookup)
            if lookup is not None
        ]

    def tokenize(self, text, cut=True):
        """Raw sentences (rank 1) -> tokens (tf.RaggedTensor), at most `sequence_length` each
        (all of them with `cut=False`)."""
        text = tf.convert_to_tensor(text)
        if text.dtype != tf.string:
            raise InputError(
                f"SequenceTaggerPreprocessor expects strings, got a tensor of {text.dtype.name}."
            )
        tokens = tokenize_sentences(text, self.split_clitics)
        return tokens[:, : self.sequence_length] if cut else tokens

    @staticmethod
    def normalize_words(tokens):
        """The form words are looked up in: lower-cased, every digit replaced by "0"."""
        return tf.strings.regex_replace(tf.strings.lower(tokens, encoding="utf-8"), r"\d", "0")

    def _encode_flat(self, tokens):
        """A rank-1 string tensor of tokens -> {"token_ids": (n,), "character_ids": (n, width)},
        and with `casing`, "casing_ids": (n,)."""
        if self.word_lookup is None or self.character_lookup is None:
            raise ValueError(
                "SequenceTaggerPreprocessor has no vocabulary: pass `vocabulary` and "
                "`characters`, or train the model (which builds them from the data)."
            )
        features = {"token_ids": tf.cast(self.word_lookup(self.normalize_words(tokens)), tf.int32)}
        if self.casing:
            features["casing_ids"] = casing_ids(tokens)
        if self.lowercase_characters:
            tokens = tf.strings.lower(tokens, encoding="utf-8")
        characters = tf.strings.unicode_split(tokens, "UTF-8", errors="replace")
        characters = characters[:, : self.max_word_length]
        character_ids = characters.with_flat_values(
            tf.cast(self.character_lookup(characters.flat_values), tf.int32)
        )
        features["character_ids"] = character_ids.to_tensor(
            default_value=PAD_ID, shape=[None, self.max_word_length]
        )
        return features

    def encode_tokens(self, tokens):
        """Tokens -> {"token_ids", "character_ids"} (and "casing_ids" with `casing`).

        `tokens` is one sentence (a rank-1 string tensor: outputs (time,) and (time, width)) or
        a batch (a tf.RaggedTensor of rank 2: outputs (batch, time) and (batch, time, width),
        right-padded with 0 to at least one step).
        """
        if not isinstance(tokens, tf.RaggedTensor):
            return self._encode_flat(tf.convert_to_tensor(tokens))
        batch_size = tokens.nrows()
        length = tf.maximum(tf.reduce_max(tokens.row_lengths()), 1)  # 0 when no rows
        return {
            name: tokens.with_flat_values(value).to_tensor(
                default_value=PAD_ID,
                shape=tf.stack([batch_size, length, *value.shape[1:]]),
            )
            for name, value in self._encode_flat(tokens.flat_values).items()
        }

    def call(self, text):
        text = tf.convert_to_tensor(text)
        scalar = text.shape.rank == 0
        if scalar:
            text = tf.expand_dims(text, 0)
        features = self.encode_tokens(self.tokenize(text))
        return {key: value[0] for key, value in features.items()} if scalar else features

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary": self.vocabulary,
                "characters": self.characters,
                "sequence_length": self.sequence_length,
                "max_word_length": self.max_word_length,
                "lowercase_characters": self.lowercase_characters,
                "split_clitics": self.split_clitics,
                "casing": self.casing,
            }
        )
        return config
