import keras
from keras import ops

POOLINGS = ("last", "max", "mean", "max_mean")


@keras.saving.register_keras_serializable(package="zoo")
class MaskedPooling(keras.layers.Layer):
    """Pools a padded sequence of RNN outputs over time, ignoring padded steps.

    Args:
        mode: str. "max", "mean" or "max_mean" (both, concatenated).

    Examples:
    >>> pooled = MaskedPooling("max_mean")(rnn_outputs, mask=mask)  # (batch, 2 * features)
    """

    def __init__(self, mode="max_mean", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("max", "mean", "max_mean"):
            raise ValueError(f"mode must be one of max, mean, max_mean; got {mode!r}.")
        self.mode = mode
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            mask = ops.ones(ops.shape(inputs)[:2], dtype="bool")
        valid = ops.expand_dims(ops.cast(mask, inputs.dtype), -1)
        pooled = []
        if self.mode in ("max", "max_mean"):
            very_negative = ops.cast(-1e9, inputs.dtype)
            pooled.append(ops.max(ops.where(valid > 0, inputs, very_negative), axis=1))
        if self.mode in ("mean", "max_mean"):
            count = ops.maximum(ops.sum(valid, axis=1), 1.0)
            pooled.append(ops.sum(inputs * valid, axis=1) / count)
        return pooled[0] if len(pooled) == 1 else ops.concatenate(pooled, axis=-1)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        factor = 2 if self.mode == "max_mean" else 1
        return (input_shape[0], input_shape[-1] * factor)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
