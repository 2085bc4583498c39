"""The language-model family: next-word prediction over a text stream, and generation."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import keras
import keras_hub
import numpy as np
import tensorflow as tf

from zoo.family import Family, records
from zoo.generation import slice_update_without_xla
from zoo.models.language_model.language_model import PAD_ID, LanguageModel, WordPredictor
from zoo.models.language_model.language_model_preprocessor import LanguageModelPreprocessor
from zoo.progress import dataset_size, progress
from zoo.task import as_string_batch, pad_to_multiple

# Prompt lengths are padded to a multiple of this: JAX compiles a few shapes only.
PROMPT_PAD_MULTIPLE = 8
NEXT_WORDS = 5


class CarriedStreams(keras.callbacks.Callback):
    """Stateful training's carried states: carried from window to window while `fit` runs
    (training and its validation), zeroed at each epoch's and each validation's start, and
    no longer carried once training ends (evaluation and generation start from zeros)."""

    def __init__(self, predictor: WordPredictor):
        super().__init__()
        self.predictor = predictor

    def on_train_begin(self, logs=None):
        self.predictor.carry_states = True

    def on_epoch_begin(self, epoch, logs=None):
        self.predictor.reset_states()

    def on_test_begin(self, logs=None):
        self.predictor.reset_states()

    def on_train_end(self, logs=None):
        self.predictor.carry_states = False
        self.predictor.reset_states()


def stream_windows(ids, batch_size: int, bptt: int):
    """A stream of ids (1-D) -> (inputs, labels) windows, each (windows, batch_size, bptt):
    the stream cut into `batch_size` consecutive parts read side by side, `bptt` words at a
    time, each label the word after its input. Row i of window k+1 continues row i of window k.
    The words that do not fill a last whole window are left out (at most
    batch_size * (bptt + 1) of them)."""
    ids = np.asarray(ids, dtype="int32")
    length = (len(ids) - 1) // batch_size
    windows = length // bptt
    if windows < 1:
        raise ValueError(
            f"The stream's {len(ids)} words fill no window of {batch_size} x {bptt} words."
        )
    used = windows * bptt

    def layout(values):
        streams = values[: batch_size * length].reshape(batch_size, length)[:, :used]
        return streams.reshape(batch_size, windows, bptt).transpose(1, 0, 2)

    return layout(ids[:-1]), layout(ids[1:])


class LanguageModelFamily(Family):
    """A word-level language model over a dataset of sentences (one stream, `<eos>` after
    each sentence), scored by perplexity.

    Args:
        load_split: callable. Split name ("train", "validation", "test") -> dataset of
            sentences (tf.string) in file order.
    """

    metric = "perplexity"
    metric_points = 1.0
    higher_is_better = False
    answers_empty_text = True  # An empty prompt continues from the start of a sentence.
    model_class = LanguageModel

    def __init__(self, load_split: Callable[[str], tf.data.Dataset]):
        self.load_split = load_split

    def build(self, config, preprocessor=None) -> LanguageModel:
        if preprocessor is None:
            preprocessor = LanguageModelPreprocessor(max_vocabulary=config.vocabulary_size)
        predictor = WordPredictor(
            config.vocabulary_size + 1,  # Padding, then `<unk>` and the words.
            config.embedding_dim,
            stream_batch_size=config.batch_size if config.stateful else 0,
            embedding_dropout=config.embedding_dropout,
            output_dropout=config.output_dropout,
            tie_embeddings=config.tie_embeddings,
            stack={
                key: value
                for key, value in config.encoder_arguments().items()
                if key not in ("bidirectional", "merge_mode")
            },
            name="predictor",
        )
        return LanguageModel(
            predictor,
            preprocessor=preprocessor,
            end_id=preprocessor.end_id if preprocessor.lookup is not None else 2,
            sampler=config.sampler,
            top_k=config.top_k,
            top_p=config.top_p,
            temperature=config.temperature,
            max_words=config.max_words,
        )

    def prepare_model(self, config, run_dir: Path) -> LanguageModel:
        preprocessor = LanguageModelPreprocessor(max_vocabulary=config.vocabulary_size)
        train = self.load_split("train")
        preprocessor.adapt(
            progress(
                train.as_numpy_iterator(),
                dataset_size(train),
                "Counting the training split's words (for the vocabulary)...",
                unit="sentence",
            )
        )
        return self.build(config, preprocessor=preprocessor)

    def stream(self, model, split: str) -> np.ndarray:
        """A whole split as one stream of ids: every sentence followed by `<eos>`."""
        sentences = self.load_split(split)
        batches = progress(
            sentences.batch(4096),
            dataset_size(sentences),
            f"Reading the {split} split as word ids...",
            unit="sentence",
            size=len,
        )
        parts = [model.preprocessor.stream(batch).numpy() for batch in batches]
        return np.concatenate(parts) if parts else np.zeros([0], "int32")

    def _windows(self, model, config, split: str, training: bool) -> tf.data.Dataset:
        inputs, labels = stream_windows(self.stream(model, split), config.batch_size, config.bptt)
        dataset = tf.data.Dataset.from_tensor_slices((inputs, labels))
        if training and not config.stateful:  # Fresh states: windows in any order.
            dataset = dataset.shuffle(len(inputs), seed=config.seed, reshuffle_each_iteration=True)
        return dataset.prefetch(tf.data.AUTOTUNE)

    def training_data(self, model, config):
        train = self._windows(model, config, "train", training=True)
        validation = self._windows(model, config, "validation", training=False)
        return train, validation

    def compile(self, model, config) -> None:
        model.compile(
            optimizer=self.optimizer(config),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[keras_hub.metrics.Perplexity(from_logits=True, name="perplexity")],
        )

    def callbacks(self, model, config) -> list[keras.callbacks.Callback]:
        return [CarriedStreams(model.predictor)] if config.stateful else []

    def evaluate(self, model, config, split: str) -> dict:
        """Perplexity of the whole split read as one stream, the state carried through it:
        exp(mean negative log-likelihood per word, every `<eos>` included), each word predicted
        from all before it (the first from a sentence's start, an `<eos>` put before it)."""
        ids = np.concatenate([[model.end_id], self.stream(model, split)])
        total, count = model.stream_log_likelihood(
            ids,
            config.eval_bptt,
            f"Scoring the {split} split's {len(ids) - 1:,} words, {config.eval_bptt} at a time...",
        )
        cross_entropy = -total / max(count, 1)
        return {
            "perplexity": round(math.exp(cross_entropy), 3),
            "cross_entropy": round(cross_entropy, 5),
            "num_words": count,
            "num_parameters": model.count_params(),
            "unknown_words": int(np.sum(ids[1:] == 1)),
        }

    def _prompt_ids(self, model, text):
        return pad_to_multiple(model.preprocessor(text)["token_ids"], PROMPT_PAD_MULTIPLE)

    def _lengths(self, model, text):
        """(prompt words read, whether the prompt was cut) per prompt."""
        ids = model.preprocessor.tokenize(text)
        words = tf.reduce_sum(tf.cast(ids > PAD_ID, tf.int32), axis=1)
        most = model.preprocessor.max_length - 1
        return tf.minimum(words, most), words > most

    @staticmethod
    def _backend_call(function, ids):
        """`function(ids)` on the model's backend; TF tensors back (NumPy across the boundary
        when the backend is not TensorFlow)."""
        if keras.backend.backend() == "tensorflow":
            return function(ids)
        result = function(ids.numpy())
        return tf.nest.map_structure(
            lambda value: tf.constant(keras.ops.convert_to_numpy(value)), result
        )

    def postprocess(self, model: LanguageModel, text, outputs=None, seed=None, words=True) -> dict:
        """`continuation` (up to `max_words` words sampled after the prompt, stopping at the
        sentence's end), `num_tokens` (prompt words read), `truncated` (whether the prompt
        had more words than `max_length` - 1; its last ones are read) and, with `words`,
        `next_words` and `next_word_probabilities` (see `next_words`). An empty prompt is
        continued from the start of a sentence. `outputs` is unused."""
        ids = self._prompt_ids(model, text)
        sampler = self._graph_sampler
        if sampler is None or tf.executing_eagerly():
            sampler = model.make_sampler(seed=seed)
        tokens = self._backend_call(
            lambda ids: model.generate_ids(ids, model.max_words, sampler), ids
        )
        read, truncated = self._lengths(model, text)
        outputs = {
            "continuation": model.preprocessor.detokenize(tokens),
            "num_tokens": read,
            "truncated": truncated,
        }
        if words:
            following = self.next_words(model, text)
            outputs["next_words"] = following["words"]
            outputs["next_word_probabilities"] = following["probabilities"]
        return outputs

    def next_words(self, model: LanguageModel, text) -> dict:
        """The `NEXT_WORDS` most likely next words of each prompt (`words`, tf.string (batch,
        5)) with their `probabilities`, most likely first."""
        ids = self._prompt_ids(model, text)
        log_probs = self._backend_call(model.next_word_log_probs, ids)
        log_probs = tf.where(tf.range(tf.shape(log_probs)[1]) == PAD_ID, -np.inf, log_probs)
        top = tf.math.top_k(log_probs, k=NEXT_WORDS)
        words, truncated = self._lengths(model, text)
        return {
            "words": model.preprocessor.words(top.indices),
            "probabilities": tf.exp(top.values),
            "num_tokens": words,
            "truncated": truncated,
        }

    def predict_records(self, model, inputs, seed=None) -> list[dict]:
        rows = records(self.postprocess(model, as_string_batch(inputs), seed=seed, words=False))
        following = self.next_words(model, as_string_batch(inputs))
        for row, words, probabilities in zip(
            rows, following["words"].numpy(), following["probabilities"].numpy()
        ):
            row["next_words"] = [word.decode("utf-8") for word in words]
            row["next_word_probabilities"] = [float(p) for p in probabilities]
        return rows

    # The sampler of a graph being traced (`serving_function`), else None.
    _graph_sampler = None

    def serving_function(self, model):
        serve = super().serving_function(model)
        sampler = model.make_sampler(in_graph=True)  # Before tracing: see make_sampler.

        def generate(prompt):
            # Decoding is traced with core-TF `slice_update`: no Xla* op in the graph.
            with slice_update_without_xla():
                self._graph_sampler = sampler
                try:
                    return serve(prompt)
                finally:
                    self._graph_sampler = None

        return generate

    def serving_signature(self) -> list[tf.TensorSpec]:
        return [tf.TensorSpec([None], tf.string, name="prompt")]

    def extra_endpoints(self, model) -> dict:
        """`next_words`: prompt -> the 5 most likely next words and their probabilities."""

        def next_words(prompt):
            return self.next_words(model, prompt)

        return {"next_words": (next_words, self.serving_signature())}

    def served_outputs(self, model, text):
        return None  # `postprocess` generates from the text itself.
