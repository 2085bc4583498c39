"""The sequence-to-sequence translation family: a source sentence in, its translation out."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import keras
import sacrebleu
import tensorflow as tf
from keras import ops

from zoo.family import ValidationScore, records
from zoo.generation.family import DecodingFamily, best_attention, decoded
from zoo.layers import RecurrentBackbone
from zoo.layers.attention_decoder import AttentionDecoder
from zoo.models.translator.translator import DECODE_PAD_MULTIPLE, Translator
from zoo.models.translator.translator_preprocessor import (
    END_ID,
    TranslatorPreprocessor,
    sentence_piece_model,
)
from zoo.task import as_string_batch, pad_to_multiple


@keras.saving.register_keras_serializable(package="zoo")
class SmoothedSequenceCrossEntropy(keras.losses.Loss):
    """Token cross-entropy with label smoothing, averaged over the real (non-padding, label
    != 0) tokens of a batch: `(1 - e) * NLL + e * mean over the vocabulary of -log p`."""

    def __init__(self, label_smoothing=0.0, name="smoothed_cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "int32")
        log_probs = ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1)
        nll = -ops.take_along_axis(log_probs, y_true[..., None], axis=-1)[..., 0]
        loss = nll
        if self.label_smoothing:
            smooth = -ops.mean(log_probs, axis=-1)
            loss = (1.0 - self.label_smoothing) * nll + self.label_smoothing * smooth
        mask = ops.cast(ops.not_equal(y_true, 0), "float32")
        # Keras averages over every position; rescaled, that is the mean over real tokens.
        scale = ops.cast(ops.size(mask), "float32") / ops.maximum(ops.sum(mask), 1.0)
        return loss * mask * scale

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


class TranslatorFamily(DecodingFamily):
    """Translation over a dataset of {source language: text, target language: text} pairs.

    Args:
        load_split: callable. Split name ("train", "validation", "test") -> dataset of
            examples keyed by language code.
        source: str. Source language key.
        target: str. Target language key.
    """

    metric = "bleu"
    metric_points = 1.0  # sacreBLEU is in points already.
    model_class = Translator

    def __init__(self, load_split: Callable[[str], tf.data.Dataset], source: str, target: str):
        self.load_split = load_split
        self.source = source
        self.target = target

    def build(self, config, preprocessor=None) -> Translator:
        if preprocessor is None:
            preprocessor = self.preprocessor(config)
            source_size = target_size = config.vocabulary_size
        else:
            source_size = preprocessor.source_vocabulary_size
            target_size = preprocessor.target_vocabulary_size
        encoder = RecurrentBackbone(
            source_size,
            config.embedding_dim,
            embedding_dropout=config.embedding_dropout,
            return_sequences=True,
            return_state=True,
            name="encoder",
            **config.encoder_arguments(),
        )
        decoder = AttentionDecoder(
            target_size, config.embedding_dim, name="decoder", **config.decoder_arguments()
        )
        return Translator(
            encoder,
            decoder,
            preprocessor=preprocessor,
            num_beams=config.num_beams,
            length_penalty=config.length_penalty,
            max_output_length=config.max_output_length,
        )

    @staticmethod
    def preprocessor(config) -> TranslatorPreprocessor:
        return TranslatorPreprocessor(
            vocabulary_size=config.vocabulary_size,
            joint_vocabulary=config.joint_vocabulary,
            max_source_length=config.max_source_length,
            max_target_length=config.max_target_length,
            lowercase_source=config.lowercase_source,
        )

    def prepare_model(self, config, run_dir: Path) -> Translator:
        train, languages = self.load_split("train"), (self.source, self.target)
        preprocessor = self.preprocessor(config)
        print("Learning SentencePiece subwords on the training text...", flush=True)
        preprocessor.adapt(*(train.map(self._sentences(language)) for language in languages))
        return self.build(config, preprocessor=preprocessor)

    @staticmethod
    def _sentences(language: str):
        def sentences(pair):
            return pair[language]

        return sentences

    def _batches(self, model, config, split: str, training: bool) -> tf.data.Dataset:
        preprocessor = model.preprocessor
        dataset = self.load_split(split).map(
            lambda pair: preprocessor.training_pair(pair[self.source], pair[self.target]),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        if training:
            dataset = dataset.cache().shuffle(
                30_000, seed=config.seed, reshuffle_each_iteration=True
            )
        else:
            dataset = dataset.cache()

        def length(features, labels):
            return tf.maximum(tf.shape(features["source_ids"])[0], tf.shape(labels)[0])

        longest = max(config.max_source_length, config.max_target_length)
        boundaries = list(range(config.bucket_step, longest, config.bucket_step))
        dataset = dataset.bucket_by_sequence_length(
            length,
            bucket_boundaries=[boundary + 1 for boundary in boundaries],
            bucket_batch_sizes=[config.batch_size] * (len(boundaries) + 1),
        )

        def pad(features, labels):
            # Source and target to one length, a multiple of bucket_step: few batch shapes.
            steps = tf.maximum(tf.shape(features["source_ids"])[1], tf.shape(labels)[1])
            steps = -(-steps // config.bucket_step) * config.bucket_step

            def to_steps(tensor):
                return tf.pad(tensor, [[0, 0], [0, steps - tf.shape(tensor)[1]]])

            return tf.nest.map_structure(to_steps, (features, labels))

        dataset = dataset.map(pad, num_parallel_calls=tf.data.AUTOTUNE)
        if training:
            dataset = dataset.shuffle(64, seed=config.seed)
        return dataset.prefetch(tf.data.AUTOTUNE)

    def training_data(self, model, config):
        train = self._batches(model, config, "train", training=True)
        validation = self._batches(model, config, "validation", training=False)
        return train, validation

    def compile(self, model, config) -> None:
        model.compile(
            optimizer=self.optimizer(config),
            loss=SmoothedSequenceCrossEntropy(config.label_smoothing),
        )

    def callbacks(self, model, config) -> list[keras.callbacks.Callback]:
        """`val_bleu`: sacreBLEU of greedy translations of the whole validation split."""
        score = functools.partial(
            self._score,
            model,
            config,
            "validation",
            num_beams=1,
            # On a new line: Keras's epoch bar leaves its line open until the epoch ends.
            label="\nTranslating the validation split (greedy) for its BLEU...",
        )
        return [ValidationScore("bleu", score, "validation BLEU (greedy, sacreBLEU)")]

    def references(self, split: str) -> tuple[list[str], list[str]]:
        """(source sentences, reference translations) of a whole split, in file order."""
        sources, references = [], []
        for pair in self.load_split(split).as_numpy_iterator():
            sources.append(pair[self.source].decode("utf-8"))
            references.append(pair[self.target].decode("utf-8"))
        return sources, references

    def translations(self, model, config, sources: list[str], label: str, **kwargs) -> list[str]:
        """`model.generate(sources, **kwargs)`, `decode_batch_size` at a time, with a bar."""
        batch_size = config.decode_batch_size

        def generate(batch):
            return model.generate(batch, batch_size=batch_size, **kwargs)

        return self.generated(generate, sources, batch_size, label, unit="sentence")

    def _score(self, model, config, split: str, label=None, **kwargs) -> dict:
        sources, references = self.references(split)
        label = label or f"Translating the {split} split..."
        return bleu_scores(self.translations(model, config, sources, label, **kwargs), references)

    def evaluate(self, model, config, split: str) -> dict:
        """sacreBLEU, lower-cased BLEU and chrF of the split as distributed, and BLEU of the
        same split with lower-cased and all-caps sources (`source_casing`; same references):
        the input people type."""
        sources, references = self.references(split)
        beams = self.decoding(model)
        hypotheses = self.translations(
            model, config, sources, f"Translating the {split} split ({beams})..."
        )
        scores = bleu_scores(hypotheses, references)
        casing = {"as_distributed": scores["bleu"]}
        for name, recase in (("lower", str.lower), ("upper", str.upper)):
            recased = self.translations(
                model,
                config,
                [recase(source) for source in sources],
                f"Translating the {split} split, {name}-cased sources ({beams})...",
            )
            casing[name] = bleu_scores(recased, references)["bleu"]
        return {
            **scores,
            "source_casing_bleu": casing,
            "num_examples": len(references),
            "num_beams": model.num_beams,
            "length_penalty": model.length_penalty,
            "examples": [
                {"source": source, "reference": reference, "translation": hypothesis}
                for source, reference, hypothesis in list(zip(sources, references, hypotheses))[:5]
            ],
        }

    def postprocess(self, model: Translator, text, outputs=None) -> dict[str, tf.Tensor]:
        """`translation` (the best candidate, detokenized), `score` (its mean log-probability
        per token, the end token included), `num_tokens` (source subwords read) and
        `truncated` (whether the source had more than `max_source_length`, which were not read).
        A text without a subword (empty, whitespace only) gets "" and score 0. `outputs` is
        unused: decoding runs here, from the text."""
        preprocessor = model.preprocessor
        # Padded as in `generate`: the same translations whichever way a sentence comes.
        source_ids = pad_to_multiple(preprocessor(text)["source_ids"], DECODE_PAD_MULTIPLE)
        result = decoded(model.translate_ids, source_ids)
        translation = preprocessor.detokenize(result["token_ids"][:, 0])
        pieces = tf.cast(preprocessor.tokenize_source(text).row_lengths(), tf.int32)
        empty = tf.equal(pieces, 0)
        return {
            "translation": tf.where(empty, "", translation),
            "score": tf.where(empty, 0.0, tf.cast(result["scores"][:, 0], tf.float32)),
            "num_tokens": tf.minimum(pieces, preprocessor.max_source_length),
            "truncated": pieces > preprocessor.max_source_length,
        }

    def predict_records(self, model, inputs) -> list[dict]:
        return records(self.postprocess(model, as_string_batch(inputs)))

    def attention(self, model: Translator, text) -> dict[str, tf.Tensor]:
        """The best translation's attention over the source, for plotting (TensorFlow backend):
        `translation`, `source_pieces` (batch, source time) and `target_pieces` (batch, time)
        subword strings ("" for padding; the target's last piece is the end token, "</s>"),
        `weights` (batch, time, source time): each target piece's attention weights."""
        preprocessor = model.preprocessor
        source_ids = pad_to_multiple(preprocessor(text)["source_ids"], DECODE_PAD_MULTIPLE)
        token_ids = model.translate_ids(source_ids)["token_ids"]
        # The end token after the translation's last piece: what its last weights predict.
        with_end, weights = best_attention(model.token_log_probs, source_ids, token_ids, END_ID)

        def pieces(tokenizer, ids):
            strings = sentence_piece_model(tokenizer).id_to_string(ids)
            return tf.where(ids > 0, strings, "")

        return {
            "translation": preprocessor.detokenize(token_ids[:, 0]),
            "source_pieces": pieces(preprocessor.source_tokenizer, source_ids),
            "target_pieces": pieces(preprocessor.target_tokenizer, with_end),
            "weights": weights,
        }


def bleu_scores(hypotheses: list[str], references: list[str]) -> dict:
    """sacreBLEU (default 13a tokenization, cased), lower-cased BLEU and chrF of detokenized
    hypotheses against the raw references, one reference each."""
    bleu = sacrebleu.metrics.BLEU()
    score = bleu.corpus_score(hypotheses, [references])
    lowercase = sacrebleu.metrics.BLEU(lowercase=True).corpus_score(hypotheses, [references])
    chrf = sacrebleu.metrics.CHRF().corpus_score(hypotheses, [references])
    return {
        "bleu": round(score.score, 2),
        "bleu_lowercase": round(lowercase.score, 2),
        "chrf": round(chrf.score, 2),
        "bleu_signature": str(bleu.get_signature()),
        "brevity_penalty": round(score.bp, 4),
        "hypothesis_length": score.sys_len,
        "reference_length": score.ref_len,
    }
