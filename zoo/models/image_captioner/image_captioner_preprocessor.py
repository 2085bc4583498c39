import collections

import keras
import tensorflow as tf

from zoo import vocabulary as word_vocabulary
from zoo.errors import InputError
from zoo.models.image_captioner.image_encoder import ImageEncoder
from zoo.progress import dataset_size, progress
from zoo.task import as_string_batch
from zoo.vocabulary import lookup_table, string_lookup

# Ids 0 and 1 pad and stand for unknown words (zoo.vocabulary); the start and end tokens are
# the vocabulary's first two words, so ids 2 and 3, as the translator's SentencePiece ones.
START_TOKEN, END_TOKEN = "<start>", "<end>"
START_ID, END_ID = 2, 3
PAD_ID, UNKNOWN_ID = word_vocabulary.PAD_ID, word_vocabulary.OOV_ID
JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NOT_AN_IMAGE = "not a JPEG or PNG image"


def normalize_caption(text):
    """The standard caption tokenization, in the graph: lower case, punctuation removed
    (deleted, so "tri-colored" is one word "tricolored", as Karpathy's Flickr8k split
    preprocessing does), words separated by single spaces."""
    text = tf.strings.lower(text, encoding="utf-8")
    text = tf.strings.regex_replace(text, r"[[:punct:]]", "")
    return tf.strings.strip(tf.strings.regex_replace(text, r"\s+", " "))


def is_image(data):
    """Whether each string (batch,) starts like a JPEG or a PNG file."""
    return tf.logical_or(
        tf.equal(tf.strings.substr(data, 0, len(JPEG_MAGIC)), JPEG_MAGIC),
        tf.equal(tf.strings.substr(data, 0, len(PNG_MAGIC)), PNG_MAGIC),
    )


@keras.saving.register_keras_serializable(package="zoo")
class ImageCaptionerPreprocessor(keras.layers.Layer):
    """Raw image bytes -> the frozen CNN's features for the `ImageCaptioner`; captions -> word
    ids, and word ids back to captions.

    Images are JPEG or PNG bytes, decoded (RGB), resized to `image_size` squared (squashed,
    as the mirror's images are) and encoded by the frozen `ImageEncoder`, all in the graph.
    A string that is not a JPEG or PNG image reads as a black image; `read_images` says which
    were images, and the captioner answers "" for the others. A JPEG or PNG whose data is
    corrupt fails the call with TensorFlow's InvalidArgumentError naming the format.

    Captions are normalised (`normalize_caption`) and split at spaces; words are the
    vocabulary's (those of the training captions seen at least `min_word_count` times, most
    frequent first, at most `vocabulary_size` ids with the 4 special ones), others the unknown
    id 1. Ids 0-3: padding, unknown, start, end.

    Args:
        vocabulary: list of str or None. Words after the start and end tokens; None until
            `adapt`.
        vocabulary_size: int. Most ids `adapt` keeps, the special ones included.
        min_word_count: int. Fewest occurrences in the training captions of a kept word.
        max_caption_length: int. Most words of a training caption (the end token included).
        encoder: str. The `ImageEncoder` architecture.
        image_size: int. Height and width images are resized to.

    Call arguments:
        data: tf.string tensor (batch,) of image bytes.

    Returns:
        {"features": (batch, positions, channels) float32, "token_ids": (batch, 1) the start
        token}: the inputs of the first decoding step.
    """

    def __init__(
        self,
        vocabulary=None,
        vocabulary_size=5000,
        min_word_count=5,
        max_caption_length=32,
        encoder="mobilenet_v1_0.75",
        image_size=224,
        **kwargs,
    ):
        super().__init__(**kwargs)
        # === Layers ===
        self.encoder = ImageEncoder(encoder, image_size, name="encoder")
        self.word_lookup = self.word_strings = None
        # === Config ===
        self.vocabulary_size = vocabulary_size
        self.min_word_count = min_word_count
        self.max_caption_length = max_caption_length
        self.image_size = image_size
        self.vocabulary = None
        if vocabulary is not None:
            self.set_vocabulary(vocabulary)
        # Strings stay TF tensors (see TextClassifierPreprocessor).
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.built = True

    def set_vocabulary(self, vocabulary) -> None:
        """Uses `vocabulary` (words after the start and end tokens, or the whole list with
        them first)."""
        words = [w.decode("utf-8") if isinstance(w, bytes) else str(w) for w in vocabulary]
        if words[:2] == [START_TOKEN, END_TOKEN]:
            words = words[2:]
        self.vocabulary = words
        self.word_lookup = string_lookup([START_TOKEN, END_TOKEN, *words], name="word_lookup")
        self.word_strings = string_lookup(
            [START_TOKEN, END_TOKEN, *words], invert=True, name="word_strings"
        )

    @property
    def num_ids(self) -> int:
        """Size of the id space: padding, unknown, start, end and the words."""
        return len(self.vocabulary or []) + 4

    def adapt(self, captions) -> None:
        """Builds the vocabulary from raw captions (a list, or a dataset of strings or of
        batches of them, such as Flickr8k's 5 captions per image)."""
        if isinstance(captions, tf.data.Dataset):
            dataset = captions
            while dataset.element_spec.shape.rank:
                dataset = dataset.unbatch()
            # `unbatch` loses the count, known before it when each element holds as many.
            shape, total = captions.element_spec.shape, dataset_size(captions)
            if total is not None and shape.is_fully_defined():
                total *= shape.num_elements()
            else:
                total = None
        else:
            dataset = tf.data.Dataset.from_tensor_slices(as_string_batch(captions))
            total = dataset_size(dataset)
        counts = collections.Counter()
        batches = progress(
            dataset.batch(1024).map(self.words),
            total,
            "Counting the captions' words (for the vocabulary)...",
            unit="caption",
            size=lambda words: words.nrows(),
        )
        for words in batches:
            counts.update(word for row in words.to_list() for word in row)
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        kept = [word.decode("utf-8") for word, count in ranked if count >= self.min_word_count]
        self.set_vocabulary(kept[: max(self.vocabulary_size - 4, 0)])

    def words(self, text):
        """Normalised captions (batch,) -> their words (tf.RaggedTensor of strings)."""
        return tf.strings.split(normalize_caption(text))

    def lookup_tables(self) -> list:
        """TF resources an exported SavedModel must carry (tracked by `zoo.export`)."""
        self._check_vocabulary()
        return [lookup_table(self.word_lookup), lookup_table(self.word_strings)]

    def _check_vocabulary(self) -> None:
        if self.word_lookup is None:
            raise ValueError("ImageCaptionerPreprocessor has no vocabulary: call adapt() first.")

    def caption_ids(self, text):
        """Raw captions (batch,) -> word ids (tf.RaggedTensor), cut to `max_caption_length`
        - 1 words (the end token takes the last place)."""
        self._check_vocabulary()
        words = self.words(text)[:, : self.max_caption_length - 1]
        return tf.cast(tf.ragged.map_flat_values(self.word_lookup, words), tf.int32)

    def training_pair(self, caption):
        """One raw caption -> (token_ids, labels): the start token and the words (teacher
        forcing), and the words and the end token."""
        ids = self.caption_ids(caption[None])[0]
        return tf.concat([[START_ID], ids], 0), tf.concat([ids, [END_ID]], 0)

    def detokenize(self, token_ids):
        """Word ids (batch, time), 0 after the caption -> captions (words joined by spaces)."""
        self._check_vocabulary()
        token_ids = tf.cast(token_ids, tf.int32)
        words = self.word_strings(tf.cast(token_ids, tf.int64))
        words = tf.where(token_ids > END_ID, words, "")  # Padding, start and end: no word.
        text = tf.strings.reduce_join(words, axis=-1, separator=" ")
        return tf.strings.strip(tf.strings.regex_replace(text, " +", " "))

    def read_images(self, data):
        """Image bytes (batch,) -> (uint8 pixels (batch, size, size, 3), is_image (batch,)):
        JPEG and PNG bytes decoded to RGB and resized; anything else a black image."""
        data = self._check(data)
        size = self.image_size

        def read(item):
            def decode():
                image = tf.cond(
                    tf.equal(tf.strings.substr(item, 0, len(PNG_MAGIC)), PNG_MAGIC),
                    lambda: tf.io.decode_png(item, channels=3),
                    lambda: tf.io.decode_jpeg(item, channels=3),
                )
                image = tf.image.resize(image, [size, size], antialias=True)
                return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)

            return tf.cond(is_image(item), decode, lambda: tf.zeros([size, size, 3], tf.uint8))

        pixels = tf.map_fn(read, data, fn_output_signature=tf.TensorSpec([size, size, 3], tf.uint8))
        return pixels, is_image(data)

    def _check(self, data):
        data = tf.convert_to_tensor(data)
        if data.dtype != tf.string:
            raise InputError(
                f"ImageCaptionerPreprocessor expects image bytes as strings, got a tensor of "
                f"{data.dtype.name}."
            )
        return data

    def encode(self, pixels):
        """uint8 pixels (batch, size, size, 3) -> the encoder's features."""
        return self.encoder(pixels)

    def call(self, data):
        data = self._check(data)
        scalar = data.shape.rank == 0
        if scalar:
            data = tf.expand_dims(data, 0)
        pixels, _ = self.read_images(data)
        features = self.encode(pixels)
        token_ids = tf.fill(tf.stack([tf.shape(data)[0], 1]), START_ID)
        outputs = {"features": features, "token_ids": token_ids}
        return tf.nest.map_structure(lambda t: t[0], outputs) if scalar else outputs

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary": self.vocabulary,
                "vocabulary_size": self.vocabulary_size,
                "min_word_count": self.min_word_count,
                "max_caption_length": self.max_caption_length,
                "encoder": self.encoder.architecture,
                "image_size": self.image_size,
            }
        )
        return config
