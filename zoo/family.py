"""What a model family provides to the family-agnostic train / evaluate / export code."""

from __future__ import annotations

import abc
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from zoo.errors import ConfigError, ZooError
from zoo.task import as_string_batch

# The most texts one served request may hold. The served graph refuses more with a clear
# error instead of growing without bound (5,000 reviews took 22 GB); batch larger workloads
# on the client, or let TF Serving's batching (README) split and merge requests.
MAX_SERVED_BATCH = 256


def records(outputs: dict[str, tf.Tensor]) -> list[dict]:
    """Batched served outputs -> one JSON-ready dict per row.

    Strings are decoded; with a `num_tokens` output, per-token outputs (rank 2) keep that
    row's tokens only.
    """
    arrays = {key: np.asarray(value) for key, value in outputs.items()}
    lengths = arrays.get("num_tokens")
    rows = []
    for row in range(len(next(iter(arrays.values())))):
        record = {}
        for key, values in arrays.items():
            value = values[row]
            if lengths is not None and values.ndim == 2:
                value = value[: lengths[row]]
            record[key] = json_ready(value)
        rows.append(record)
    return rows


def json_ready(value):
    """A NumPy value -> str, int, float, or a list of them."""
    if isinstance(value, np.ndarray):
        return [json_ready(item) for item in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


class ValidationScore(keras.callbacks.Callback):
    """Adds `val_<metric>` to each epoch's logs from `score()`, a family's own scoring of its
    whole validation split (a tagger's seqeval F1, a translator's BLEU), and prints it.

    Placed before the checkpoint and early-stopping callbacks, which then select epochs by it.
    """

    def __init__(self, metric: str, score, description: str):
        super().__init__()
        self.metric = metric
        self.score = score
        self.description = description

    def on_epoch_end(self, epoch, logs=None):
        value = self.score()[self.metric]
        if logs is not None:
            logs[f"val_{self.metric}"] = value
        print(f"Epoch {epoch + 1}: {self.description} {value:.4f}", flush=True)


class Family(abc.ABC):
    """A model family bound to one dataset: the pieces `zoo.train`, `zoo.evaluate` and
    `zoo.export` call, so that those stay the same for every entry."""

    #: Name of the metric reported on the test split (the README's table column).
    metric: str = ""
    #: Points per unit of the metric: 100 for a fraction in [0, 1], 1 for one in points (BLEU).
    metric_points: float = 100.0
    #: Whether a higher metric is better (accuracy, F1, BLEU), or a lower one (perplexity).
    higher_is_better: bool = True
    #: Whether an empty text gets an answer (a language model continues it), not the empty one.
    answers_empty_text: bool = False
    #: Whether the inputs are texts (tokens counted, long ones cut), not image bytes.
    reads_text: bool = True
    #: The model class `build` returns (what `check_model` expects of a loaded file).
    model_class: type = keras.Model
    #: The most texts a served request may hold.
    max_batch_size: int = MAX_SERVED_BATCH

    def check_model(self, model, source) -> None:
        """Raises ZooError when `model` (loaded from `source`) is not one of this family's."""
        if not isinstance(model, self.model_class):
            raise ZooError(
                f"{source} holds a {type(model).__name__}, not a {self.model_class.__name__}: "
                "it is another entry's model."
            )

    @abc.abstractmethod
    def build(self, config) -> keras.Model:
        """A fresh, untrained model of the config's architecture (`zoo.build`)."""

    @abc.abstractmethod
    def prepare_model(self, config, run_dir: Path) -> keras.Model:
        """A model ready to train: vocabularies built from the training data, embeddings set."""

    @abc.abstractmethod
    def training_data(self, model, config) -> tuple[tf.data.Dataset, tf.data.Dataset]:
        """(train, validation) datasets of preprocessed batches; validation is cut from train."""

    @abc.abstractmethod
    def compile(self, model, config) -> None:
        """Compiles with the config's optimizer, BPTT gradient clipping and metrics."""

    @abc.abstractmethod
    def evaluate(self, model, config, split: str) -> dict:
        """Metrics on a whole split, as a dict with `self.metric` among its keys."""

    @abc.abstractmethod
    def postprocess(self, model, text: tf.Tensor, outputs: dict) -> dict[str, tf.Tensor]:
        """The named outputs served for a batch of raw `text`, from the model's `outputs` for it.

        TF ops only, run eagerly by `predict_records` and traced into the exported graph by
        `serving_function`: one implementation, so the two cannot disagree.
        """

    def predict_records(self, model, inputs) -> list[dict]:
        """Raw inputs -> one JSON-ready dict per input, the same fields the server returns."""
        text = as_string_batch(inputs)
        outputs = self.postprocess(model, text, model.predict(text, verbose=0))
        return records(outputs)

    def serving_function(self, model):
        """A function of raw tf.string inputs returning a dict of named outputs."""

        def serve(text):
            check = tf.debugging.assert_less_equal(
                tf.shape(text)[0],
                self.max_batch_size,
                message=f"A request holds at most {self.max_batch_size} texts; split it",
            )
            with tf.control_dependencies([check]):
                text = tf.identity(text)
            return self.postprocess(model, text, self.served_outputs(model, text))

        return serve

    def served_outputs(self, model, text):
        """The model's outputs for raw `text` that `postprocess` serves from (in a graph)."""
        return model(model.preprocessor(text), training=False)

    def extra_endpoints(self, model) -> dict:
        """Signatures exported beside `serving_default`: {name: (function, input signature)}."""
        return {}

    def serving_signature(self) -> list[tf.TensorSpec]:
        """The input signature of `serving_function`."""
        return [tf.TensorSpec([None], tf.string, name="text")]

    def save_figures(self, results: dict, output_dir: Path) -> list[str]:
        """Writes figures of evaluation `results` (e.g. a confusion plot); their file names."""
        return []

    def selects_epoch(self, config) -> bool:
        """Whether the validation data selects the epoch whose weights are kept (and stops
        training early); False when the config also trains on it, so the last epoch is kept."""
        return True

    def callbacks(self, model, config) -> list[keras.callbacks.Callback]:
        """Callbacks that run before checkpointing each epoch (e.g. to add a `val_` metric)."""
        return []

    def optimizer(self, config) -> keras.optimizers.Optimizer:
        """The config's optimizer (Adam or SGD) at its learning rate, with its BPTT gradient
        clipping (and weight EMA)."""
        clipping = {
            key: getattr(config, key)
            for key in ("clipnorm", "global_clipnorm", "clipvalue")
            if getattr(config, key)
        }
        if len(clipping) > 1:
            raise ConfigError(
                "Set at most one of clipnorm, global_clipnorm and clipvalue (0 disables); "
                f"got {', '.join(f'{key}={value}' for key, value in clipping.items())}."
            )
        config.require_rates("ema_momentum")
        if config.ema_momentum:
            clipping.update(use_ema=True, ema_momentum=config.ema_momentum)
        if config.optimizer == "sgd":
            return keras.optimizers.SGD(learning_rate=config.learning_rate, **clipping)
        return keras.optimizers.Adam(learning_rate=config.learning_rate, **clipping)
