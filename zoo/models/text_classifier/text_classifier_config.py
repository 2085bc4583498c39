"""The text classifier family's config: vocabulary, architecture and training."""

import dataclasses

from zoo.config import CELLS, RecurrentEncoderConfig, TrainingConfig, choice
from zoo.errors import ConfigError
from zoo.layers import POOLINGS


@dataclasses.dataclass
class TextClassifierConfig(RecurrentEncoderConfig, TrainingConfig):
    """Recipe of a text classifier: vocabulary, architecture and training."""

    vocabulary_size: int = 25000
    sequence_length: int = 800
    truncation: str = choice("pre", ("pre", "post"), "keep the first (post) or last (pre) words")
    embedding_dim: int = 128
    embedding_init: str = choice("word2vec", ("word2vec", "random"))
    word2vec_epochs: int = 5
    cell: str = choice("gru", CELLS)
    units: int = 128
    num_layers: int = 2
    pooling: str = choice("max_mean", POOLINGS)
    embedding_dropout: float = 0.25
    dropout: float = 0.3
    bucket_step: int = 64

    def validate(self) -> None:
        super().validate()
        self.require_positive(
            "vocabulary_size",
            "sequence_length",
            "embedding_dim",
            "epochs",
            "batch_size",
            "bucket_step",
        )
        if self.vocabulary_size < 3:
            raise ConfigError(
                "Config key 'vocabulary_size' must be at least 3 (padding, OOV, a word)."
            )
        self.require_rates("embedding_dropout")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ConfigError("Config key 'validation_fraction' must be in (0, 1).")
