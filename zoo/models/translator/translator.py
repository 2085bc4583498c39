import keras
from keras import ops

from zoo.generation import candidate_log_probs, decode_ranked, decoder_step
from zoo.generation.decoding import without_token
from zoo.models.translator.translator_preprocessor import END_ID, PAD_ID, START_ID, UNK_ID
from zoo.task import Task, as_string_batch, pad_to_multiple

# Source lengths are padded to a multiple of this before decoding, in every path (a split's
# scoring, `generate`, predict_records, the served graph): the decoding limit
# (`output_length`) then depends on the same padded length, and JAX compiles the decoding
# loop for a few shapes only.
DECODE_PAD_MULTIPLE = 16


@keras.saving.register_keras_serializable(package="zoo")
class Translator(Task):
    """A sequence-to-sequence RNN: a recurrent encoder and an attention decoder.

    Trains with teacher forcing: inputs {"source_ids", "target_ids"} (the target after the
    start token) -> next-token logits (batch, target time, vocabulary). `translate_ids`
    decodes greedily or by beam search (`zoo.generation.decode`), with the decoder's states,
    the encoder's outputs and their attention keys as the sampler's cache; `predict` on raw
    strings gives the first step's logits, as for preprocessed inputs.

    Args:
        encoder: RecurrentBackbone. Source embeddings and the (bidirectional) recurrent stack,
            with `return_sequences=True` and `return_state=True`.
        decoder: AttentionDecoder. Target embeddings, recurrent stack, attention, logits.
        preprocessor: TranslatorPreprocessor or None.
        num_beams: int. Beam width of `translate_ids` by default (1: greedy).
        length_penalty: float. Candidates are ranked by log-probability / length ** this.
        max_output_length: int. Most tokens decoded, the end token included.

    Examples:
    >>> translator = zoo.load("nmt")
    >>> zoo.get_entry("nmt").family.predict_records(translator, ["Ein Hund läuft."])
    """

    def __init__(
        self,
        encoder,
        decoder,
        preprocessor=None,
        num_beams=5,
        length_penalty=1.0,
        max_output_length=80,
        **kwargs,
    ):
        if not (encoder.return_sequences and encoder.return_state):
            raise ValueError("The encoder needs return_sequences=True and return_state=True.")
        # === Layers ===
        self.encoder = encoder
        self.decoder = decoder

        # === Functional Model ===
        source_ids = keras.Input(shape=(None,), dtype="int32", name="source_ids")
        target_ids = keras.Input(shape=(None,), dtype="int32", name="target_ids")
        memory, states = self.encoder(source_ids)
        logits = self.decoder(
            target_ids, memory, ops.not_equal(source_ids, 0), summary=self._summary(states)
        )
        super().__init__(
            inputs={"source_ids": source_ids, "target_ids": target_ids}, outputs=logits, **kwargs
        )

        # === Config ===
        self.preprocessor = preprocessor
        self.num_beams = num_beams
        self.length_penalty = length_penalty
        self.max_output_length = max_output_length

    def _summary(self, states):
        """The encoder's summary for the bridge: its top layer's final outputs (h), both
        directions' side by side."""
        top = states[-1]
        if not self.encoder.bidirectional:
            return top[0]
        return ops.concatenate([top[0], top[len(top) // 2]], axis=-1)

    def encode(self, source_ids, training=False):
        """Source ids -> the decoding cache: the decoder's initial states, the encoder's
        outputs (memory), their attention keys and the source mask."""
        memory, states = self.encoder(source_ids, training=training)
        return {
            "states": self.decoder.bridge(self._summary(states)),
            "memory": memory,
            "keys": self.decoder.keys(memory),
            "memory_mask": ops.not_equal(source_ids, 0),
        }

    # The unknown piece (SentencePiece's " ⁇ ") is never produced (nor scored).
    _without_unknown = staticmethod(without_token(UNK_ID))

    def _step(self, token_ids, cache):
        logits, cache = decoder_step(self.decoder, token_ids, cache)
        return self._without_unknown(logits), cache

    def output_length(self, source_ids):
        """Most tokens decoded for a (padded) source: twice its length and 10 more, at most
        `max_output_length`. An int where the source's shape is static (JAX compiles one loop
        per padded shape), else a tensor (a served graph)."""
        steps = source_ids.shape[1]
        if steps is None:
            return ops.minimum(2 * ops.shape(source_ids)[1] + 10, self.max_output_length)
        return min(2 * int(steps) + 10, self.max_output_length)

    def translate_ids(self, source_ids, num_beams=None, length_penalty=None, beam_search=None):
        """Decodes source ids (batch, time).

        `num_beams` and `length_penalty` default to the model's; `beam_search` forces the
        sampler (see `zoo.generation.decode`).

        Returns:
            {"token_ids": (batch, beams, time) int32, every candidate's tokens with the end
            token and what follows it set to 0; "scores": (batch, beams) their mean
            log-probability per token (end token included), "ranks": their ranking keys
            (log-probability / length ** length_penalty), candidates sorted by it, best first}.
        """
        return decode_ranked(
            self,
            self._step,
            source_ids,
            self.output_length(source_ids),
            START_ID,
            END_ID,
            PAD_ID,
            num_beams,
            length_penalty,
            beam_search,
        )

    def generate(self, inputs, num_beams=None, length_penalty=None, batch_size=128) -> list[str]:
        """Translations (str) of raw source sentences (a str or a list of them), decoded
        `batch_size` at a time with the model's beam width and length penalty unless given.

        >>> zoo.load("nmt").generate(["Ein Mann fährt Fahrrad."])
        ['A man is riding a bike.']
        """
        import tensorflow as tf

        texts = as_string_batch(inputs)
        translations = []
        for start in range(0, int(texts.shape[0]), batch_size):
            features = self.preprocessor(texts[start : start + batch_size])
            source_ids = pad_to_multiple(features["source_ids"], DECODE_PAD_MULTIPLE)
            result = self.translate_ids(source_ids.numpy(), num_beams, length_penalty)
            best = tf.constant(keras.ops.convert_to_numpy(result["token_ids"])[:, 0])
            empty = self.preprocessor.tokenize_source(texts[start : start + batch_size])
            empty = empty.row_lengths().numpy() == 0  # No subword: the empty translation.
            translations += [
                "" if nothing else text.decode("utf-8")
                for text, nothing in zip(self.preprocessor.detokenize(best).numpy(), empty)
            ]
        return translations

    def token_log_probs(self, source_ids, candidates, return_attention=False):
        """Teacher-forced log-probability of each candidate token (batch, beams, time) given
        the source; with `return_attention`, also the attention weights (batch, beams, time,
        source time)."""
        return candidate_log_probs(
            self.decoder,
            self.encode,
            source_ids,
            candidates,
            START_ID,
            END_ID,
            PAD_ID,
            return_attention=return_attention,
            float_logits=self._without_unknown,
        )

    def get_config(self):
        return {
            **super().get_config(),  # With a quantized model's dtype policies.
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "preprocessor": keras.saving.serialize_keras_object(self.preprocessor),
            "num_beams": self.num_beams,
            "length_penalty": self.length_penalty,
            "max_output_length": self.max_output_length,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("encoder", "decoder", "preprocessor"):
            if isinstance(config.get(key), dict):
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
