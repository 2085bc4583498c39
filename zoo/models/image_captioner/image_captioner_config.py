"""The captioner family's config: frozen encoder, word vocabulary, attention decoder, decoding."""

import dataclasses

from zoo.config import CELLS, LEARNING_RATE_SCHEDULES, TrainingConfig, choice
from zoo.errors import ConfigError
from zoo.layers.attention_decoder import ATTENTIONS
from zoo.models.image_captioner.image_encoder import ENCODERS


@dataclasses.dataclass
class ImageCaptionerConfig(TrainingConfig):
    """Recipe of a captioner: Show, Attend and Tell over MobileNet v1 (alpha 0.75) features;
    `attention=none` is Show and Tell (the image only initialises the decoder's states)."""

    # The frozen ImageNet CNN ("tiny": an untrained one-layer CNN, for tests only).
    encoder: str = choice("mobilenet_v1_0.75", ENCODERS)
    image_size: int = 224
    # Words of the training captions seen at least `min_word_count` times (Karpathy's
    # threshold; about 2,500 on Flickr8k), at most `vocabulary_size` ids with 4 special ones.
    vocabulary_size: int = 5000
    min_word_count: int = 5
    max_caption_length: int = 32
    embedding_dim: int = 256
    embedding_dropout: float = 0.1
    feature_dropout: float = 0.2
    cell: str = choice("lstm", CELLS)
    units: int = 512
    num_layers: int = 1
    dropout: float = 0.3
    recurrent_dropout: float = 0.0
    residual: bool = False
    # "bahdanau": additive soft attention over the grid's positions, as Show, Attend and Tell;
    # "none": Show and Tell.
    attention: str = choice("bahdanau", ATTENTIONS)
    # Show, Attend and Tell's doubly stochastic attention penalty (lambda = 1 in the paper).
    attention_penalty: float = 1.0
    tie_embeddings: bool = True
    label_smoothing: float = 0.1
    # Decoding (chosen on the validation split).
    num_beams: int = 3
    length_penalty: float = 1.0
    max_output_length: int = 30
    # Training: every (image, caption) pair of the training split is one example (30,000).
    # Measured on the shared 2-core CPU (TensorFlow): about 1 s a step of 64, so 469 steps
    # (~8 min) an epoch plus ~40 s of greedy validation decoding: 12 epochs fit 120 minutes.
    epochs: int = 12
    batch_size: int = 64
    learning_rate: float = 2e-3
    learning_rate_schedule: str = choice("cosine", LEARNING_RATE_SCHEDULES)
    clipnorm: float = 0.0
    global_clipnorm: float = 5.0
    early_stopping_patience: int = 4
    ema_momentum: float = 0.999
    # Images captioned per batch when scoring the validation and test splits.
    decode_batch_size: int = 100

    def validate(self) -> None:
        self.require_positive(
            "image_size",
            "vocabulary_size",
            "min_word_count",
            "max_caption_length",
            "embedding_dim",
            "units",
            "num_layers",
            "num_beams",
            "max_output_length",
            "decode_batch_size",
        )
        self.require_rates(
            "embedding_dropout",
            "feature_dropout",
            "dropout",
            "recurrent_dropout",
            "label_smoothing",
        )
        if self.vocabulary_size < 8:
            raise ConfigError("Config key 'vocabulary_size' must be at least 8.")
        if self.attention_penalty < 0:
            raise ConfigError(
                f"Config key 'attention_penalty' must be at least 0, got {self.attention_penalty}."
            )
        if self.encoder != "tiny" and self.image_size < 32:
            raise ConfigError(f"The {self.encoder} encoder needs image_size of at least 32.")

    def decoder_arguments(self) -> dict:
        """The `AttentionDecoder`'s keyword arguments."""
        return {
            "attention": self.attention,
            "tie_embeddings": self.tie_embeddings,
            "embedding_dropout": self.embedding_dropout,
            "cell": self.cell,
            "units": self.units,
            "num_layers": self.num_layers,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "residual": self.residual,
        }
