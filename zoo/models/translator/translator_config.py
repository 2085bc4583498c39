"""The translator family's config: subwords, encoder, attention decoder, training, decoding."""

import dataclasses

from zoo.config import (
    CELLS,
    LEARNING_RATE_SCHEDULES,
    RecurrentEncoderConfig,
    TrainingConfig,
    choice,
)
from zoo.errors import ConfigError
from zoo.layers.attention_decoder import ATTENTIONS


@dataclasses.dataclass
class TranslatorConfig(RecurrentEncoderConfig, TrainingConfig):
    """Recipe of a translator; the encoder fields (`cell`, `units`, ...) are the encoder's."""

    # SentencePiece unigram vocabulary learned on the training text (per language unless joint).
    vocabulary_size: int = 8000
    joint_vocabulary: bool = True
    max_source_length: int = 100
    max_target_length: int = 100
    # Source sentences lower-cased in the graph: any casing of the input reads the same (the
    # cased-source recipe's model failed on lower-case and all-caps German).
    lowercase_source: bool = True
    embedding_dim: int = 256
    embedding_dropout: float = 0.1
    cell: str = choice("gru", CELLS)
    units: int = 256
    num_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.3
    # The decoder: its cell ("" = the encoder's), units and depth; attention scores.
    decoder_cell: str = choice("", ("", *CELLS))
    decoder_units: int = 512
    decoder_layers: int = 1
    attention: str = choice("luong", ATTENTIONS)
    tie_embeddings: bool = True
    label_smoothing: float = 0.1
    # Decoding (the shipped model's defaults; chosen on the validation split).
    num_beams: int = 5
    length_penalty: float = 1.0
    max_output_length: int = 100
    # Training.
    # 18 epochs of the 2-core CPU recipe fit its 120-minute budget with validation scoring.
    epochs: int = 18
    batch_size: int = 64
    learning_rate: float = 2e-3
    learning_rate_schedule: str = choice("cosine", LEARNING_RATE_SCHEDULES)
    clipnorm: float = 0.0
    global_clipnorm: float = 1.0
    early_stopping_patience: int = 4
    # Epochs are scored, selected and saved with the averaged weights.
    ema_momentum: float = 0.999
    bucket_step: int = 8
    # Sentences decoded per batch when scoring the validation and test splits.
    decode_batch_size: int = 128

    def validate(self) -> None:
        super().validate()
        self.require_positive(
            "vocabulary_size",
            "max_source_length",
            "max_target_length",
            "embedding_dim",
            "decoder_units",
            "decoder_layers",
            "num_beams",
            "max_output_length",
            "bucket_step",
            "decode_batch_size",
        )
        self.require_rates("embedding_dropout", "label_smoothing")
        if self.vocabulary_size < 8:
            raise ConfigError("Config key 'vocabulary_size' must be at least 8.")

    def decoder_arguments(self) -> dict:
        """The `AttentionDecoder`'s keyword arguments."""
        return {
            "attention": self.attention,
            "tie_embeddings": self.tie_embeddings,
            "embedding_dropout": self.embedding_dropout,
            "cell": self.decoder_cell or self.cell,
            "units": self.decoder_units,
            "num_layers": self.decoder_layers,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "residual": self.residual,
        }
