"""A Keras model with a detachable preprocessor, after keras-hub's `Task`.

The model itself maps preprocessed tensors (token ids) to outputs with `keras.ops` only, so it
trains on any backend; the preprocessor is TF code that runs in tf.data. `predict` and
`evaluate` accept raw inputs and map the preprocessor over them in tf.data first; training
pipelines map it themselves (with length bucketing) and feed token ids.
"""

import keras
import numpy as np
import tensorflow as tf

from zoo.errors import InputError

PREDICT_BATCH_SIZE = 64
# Padding lengths are rounded up to a multiple of this, so JAX compiles a few shapes, not one
# per review length. Padded steps are masked, so this does not change any output.
PAD_MULTIPLE = 32


def as_string_batch(inputs) -> tf.Tensor:
    """Validates raw text inputs and returns them as a rank-1 tf.string tensor.

    Accepts a str or bytes, or a list / tuple / 1-D array of them. Anything else raises an
    InputError that says what is accepted.
    """
    if isinstance(inputs, (str, bytes)):
        inputs = [inputs]
    if isinstance(inputs, tf.Tensor):
        if inputs.dtype != tf.string:
            raise InputError(f"Expected string inputs, got a tensor of {inputs.dtype.name}.")
        return tf.reshape(inputs, [-1])
    if isinstance(inputs, np.ndarray) and inputs.dtype.kind in "USO":
        inputs = inputs.reshape(-1).tolist()
    if not isinstance(inputs, (list, tuple)):
        raise InputError(
            "Expected a string or a list of strings (str or UTF-8 bytes), "
            f"got {type(inputs).__name__}."
        )
    bad = [item for item in inputs if not isinstance(item, (str, bytes))]
    if bad:
        raise InputError(
            "Expected a list of strings (str or UTF-8 bytes); "
            f"found {type(bad[0]).__name__} value {bad[0]!r}."
        )
    if not inputs:
        raise InputError("Expected at least one string, got an empty list.")
    return tf.constant([utf8_bytes(item) if isinstance(item, str) else item for item in inputs])


def utf8_bytes(text: str) -> bytes:
    """UTF-8 bytes of `text`; never fails (the models replace what is not valid UTF-8)."""
    try:
        # surrogateescape: command-line arguments that were not UTF-8 get their bytes back.
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # Other lone surrogates, such as "\ud800".
        return text.encode("utf-8", "replace")


def pad_to_multiple(features, multiple=PAD_MULTIPLE):
    """Right-pads the time axis (axis 1) of a batch of features, or of each one in a dict."""

    def pad(tensor):
        length = tf.shape(tensor)[1]
        padding = (multiple - length % multiple) % multiple
        return tf.pad(tensor, [[0, 0], [0, padding]] + [[0, 0]] * (tensor.shape.rank - 2))

    return tf.nest.map_structure(pad, features)


def predict_on_whole_batch(model: keras.Model, features):
    """`model.predict_on_batch(features)` for a batch of any size, also under a data-parallel
    distribution (`keras.distribution.DataParallel`), whose devices each take an equal share:
    the batch is padded with copies of its first row to a multiple of the device count, and the
    outputs are cut back to the batch."""
    distribution = keras.distribution.distribution()
    devices = distribution.device_mesh.devices.size if distribution is not None else 1
    size = len(tf.nest.flatten(features)[0])
    padding = -size % devices
    if padding:
        features = tf.nest.map_structure(
            lambda array: np.concatenate([array, np.repeat(array[:1], padding, axis=0)]), features
        )
    outputs = model.predict_on_batch(features)
    return tf.nest.map_structure(lambda output: keras.ops.convert_to_numpy(output)[:size], outputs)


def quantizable(layer) -> bool:
    """Whether Keras's `quantize` handles `layer`: it implements it (Embedding, Dense, ...)
    and is not quantized yet."""
    return type(layer).quantize is not keras.layers.Layer.quantize and not layer.quantization_mode


def weights_dtype(model: keras.Model) -> str:
    """The weights' type: "int8" (another quantization mode) if quantized, else "float32";
    "int8, recurrent float32" when its layers are quantized but its recurrent stacks are not
    (`RecurrentStack.quantize_storage`)."""
    # `_flatten_layers` is private; Keras has no public walk into nested layers, and keras-hub
    # uses the same (tests/test_private_keras_apis.py fails if it moves).
    layers = list(model._flatten_layers(include_self=False))
    modes = {layer.quantization_mode for layer in layers}
    dtype = "+".join(sorted(mode for mode in modes if mode)) or "float32"
    storages = {getattr(layer, "weights_storage", None) for layer in layers} - {None}
    if dtype != "float32" and "float32" in storages:
        return f"{dtype}, recurrent float32"
    return dtype


class Task(keras.Model):
    """Base for zoo models: a functional model plus `self.preprocessor` for raw inputs.

    Subclasses build their layers from constructor hyperparameters and their `get_config` adds
    those to `Task.get_config()`'s. A quantized model (`model.quantize("int8")`) keeps its
    quantization through `get_config` / `from_config`, and so through `.keras` files, as
    keras-hub's `Backbone` does: the config's `dtype` is a `DTypePolicyMap` of each quantized
    layer's dtype policy by layer path, and the constructor quantizes those layers again, before
    any weights are loaded, so that their variables (int8 values and scales) match the saved ones.

    Args:
        dtype: None, a dtype policy, or a `DTypePolicyMap` (or its serialized dict) of the
            quantized layers' policies by path.
        quantization_config: dict or None. Serialized `keras.quantizers.QuantizationConfig` of
            the quantized layers that were given one, by path.
    """

    def __init__(self, *args, dtype=None, quantization_config=None, **kwargs):
        if isinstance(dtype, dict):
            dtype = keras.dtype_policies.deserialize(dtype)
        policies = None
        if isinstance(dtype, keras.dtype_policies.DTypePolicyMap):
            policies, dtype = dtype, None
        if dtype is not None:
            kwargs["dtype"] = dtype
        super().__init__(*args, **kwargs)
        if policies:
            self._quantize_layers(policies, quantization_config or {})

    def _quantize_layers(self, policies, quantization_configs: dict) -> None:
        """Quantizes each layer named in `policies` as its policy says (weights load later)."""
        layers = {layer.path: layer for layer in self._flatten_layers(include_self=False)}
        for path in policies:
            policy, layer = policies[path], layers.get(path)
            if layer is None or not policy.quantization_mode or layer.quantization_mode:
                raise ValueError(
                    f"Cannot quantize layer '{path}' of {type(self).__name__} as the config "
                    f"says ({policy.quantization_mode}): the model has no such float layer."
                )
            config = quantization_configs.get(path)
            if isinstance(config, dict):
                config = keras.saving.deserialize_keras_object(config)
            layer.quantize(policy.quantization_mode, config=config)
        if keras.backend.backend() == "torch":
            self._post_quantize(None)  # Re-tracks the replaced variables.

    def quantize(self, mode=None, config=None, filters=None, **kwargs):
        """Keras's `Model.quantize`, by default on the layers that implement it only (Keras
        warns about every other layer); with "int8", recurrent stacks then store their weight
        matrices as int8 too (`RecurrentStack.quantize_storage`)."""
        super().quantize(mode, config=config, filters=filters or quantizable, **kwargs)
        if mode == "int8" and filters is None:
            # Keras quantizes leaf layers only; recurrent stacks store their matrices as int8.
            for layer in self._flatten_layers(include_self=False):
                if hasattr(layer, "quantize_storage") and layer.weights_storage == "float32":
                    layer.quantize_storage("int8")

    def get_config(self):
        """`name` and `trainable`; for a quantized model also `dtype` (and `quantization_config`)."""
        config = {"name": self.name, "trainable": self.trainable}
        policies = keras.dtype_policies.DTypePolicyMap()
        quantization_configs = {}
        for layer in self._flatten_layers(include_self=False):
            if layer.quantization_mode:
                # A copy: serializing a map with no default policy clears its policies' names.
                policies[layer.path] = keras.dtype_policies.deserialize(
                    keras.dtype_policies.serialize(layer.dtype_policy)
                )
                if getattr(layer, "quantization_config", None) is not None:
                    quantization_configs[layer.path] = keras.saving.serialize_keras_object(
                        layer.quantization_config
                    )
        if len(policies):
            config["dtype"] = keras.dtype_policies.serialize(policies)
        if quantization_configs:
            config["quantization_config"] = quantization_configs
        return config

    def _is_raw(self, x) -> bool:
        """False only for preprocessed inputs: numeric arrays or tensors, or datasets of them.

        Everything else takes the raw-input path, which validates it and says what is accepted.
        """
        if isinstance(x, tf.data.Dataset):
            spec = x.element_spec
            spec = spec[0] if isinstance(spec, tuple) else spec
            return getattr(spec, "dtype", None) == tf.string
        if isinstance(x, dict) and x:  # Named inputs of a multi-input model.
            return any(self._is_raw(value) for value in x.values())
        if isinstance(x, np.ndarray):
            return x.dtype.kind in "USO"
        if isinstance(x, tf.Tensor) or keras.ops.is_tensor(x):
            return getattr(x, "dtype", None) == tf.string
        return True

    def _preprocess_dataset(self, dataset: tf.data.Dataset) -> tf.data.Dataset:
        if self.preprocessor is None:
            raise InputError("This model has no preprocessor; pass preprocessed tensors.")

        def preprocess(*element):
            features = pad_to_multiple(self.preprocessor(element[0]))
            return (features, *element[1:]) if len(element) > 1 else features

        return dataset.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
            tf.data.AUTOTUNE
        )

    def _check_preprocessed(self, x) -> None:
        """Refuses preprocessed inputs that cannot be token ids: floats, or no example at all."""
        for value in x.values() if isinstance(x, dict) else [x]:
            if isinstance(value, tf.data.Dataset):
                continue
            dtype = keras.backend.standardize_dtype(getattr(value, "dtype", "float32"))
            shape = tuple(getattr(value, "shape", ()))
            if not shape or shape[0] == 0:
                raise InputError(
                    f"{type(self).__name__} got no example (shape {shape}); pass at least one."
                )
            if not ("int" in dtype or dtype == "bool"):
                raise InputError(
                    f"{type(self).__name__} takes raw strings or integer token ids; got an "
                    f"array of {dtype} with shape {shape}."
                )

    def predict(self, x, batch_size=None, **kwargs):
        """Predicts from raw inputs (strings) or from preprocessed tensors."""
        if not self._is_raw(x):
            self._check_preprocessed(x)
        if self._is_raw(x):
            if not isinstance(x, tf.data.Dataset):
                x = tf.data.Dataset.from_tensor_slices(as_string_batch(x)).batch(
                    batch_size or PREDICT_BATCH_SIZE
                )
            return super().predict(self._preprocess_dataset(x), **kwargs)
        return super().predict(x, batch_size=batch_size, **kwargs)

    def evaluate(self, x=None, y=None, batch_size=None, **kwargs):
        """Evaluates on raw inputs (strings, with labels `y`) or on preprocessed tensors."""
        if self._is_raw(x):
            if not isinstance(x, tf.data.Dataset):
                x = tf.data.Dataset.from_tensor_slices((as_string_batch(x), y)).batch(
                    batch_size or PREDICT_BATCH_SIZE
                )
            return super().evaluate(self._preprocess_dataset(x), **kwargs)
        return super().evaluate(x, y, batch_size=batch_size, **kwargs)
