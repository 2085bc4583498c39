"""The language-model family's config: vocabulary, LSTM stack, RNN dropouts, BPTT, sampling."""

import dataclasses

from zoo.config import (
    CELLS,
    LEARNING_RATE_SCHEDULES,
    OPTIMIZERS,
    RecurrentEncoderConfig,
    TrainingConfig,
    choice,
)
from zoo.errors import ConfigError
from zoo.generation import SAMPLERS


@dataclasses.dataclass
class LanguageModelConfig(RecurrentEncoderConfig, TrainingConfig):
    """Recipe of a word-level language model: the defaults are the 2-core CPU recipe (2 x 256
    LSTM, tied, 8 epochs of SGD: float32 weights under 16 MiB); the GPU recipe is in the entry's card.
    """

    # Most frequent training words kept (PTB has 10,000 with `<unk>`; `<eos>` among them).
    vocabulary_size: int = 10000
    embedding_dim: int = 256
    cell: str = choice("lstm", CELLS)
    units: int = 256
    num_layers: int = 2
    bidirectional: bool = False
    # Variational (locked) dropout: one mask per sequence on each layer's inputs (`dropout`,
    # Keras's own recurrent-layer input dropout), on the embeddings (`embedding_dropout`,
    # whole words dropped) and on the top layer's outputs (`output_dropout`).
    dropout: float = 0.2
    embedding_dropout: float = 0.05
    output_dropout: float = 0.2
    # The output layer is the transposed embedding (Press & Wolf 2017); a projection maps
    # `units` to `embedding_dim` when they differ.
    tie_embeddings: bool = True
    # Truncated BPTT: `batch_size` parallel streams of the training text, windows of `bptt`
    # words, the recurrent state carried from each window to the next (`stateful`) or
    # started from zeros in every window.
    bptt: int = 35
    # Stateful training is not the default: its model failed on held-out text (`make train-lm`
    # at 3b2f64c, Adam: validation perplexity 2,442 after one epoch, training 500). Those
    # weights score 2,442 with fresh states in every window too, so the weights failed, not the
    # carrying; on random words stateful training learns nothing beyond uniform (test), so
    # no future word leaks through the carried state.
    stateful: bool = False
    # Batches of 20 streams: 1,327 updates an epoch (64 streams gave 414, and validation
    # perplexity 651 after the first epoch, `make train-lm` at d3f4f8b).
    batch_size: int = 20
    epochs: int = 8
    # Plain SGD at a high rate, its steps bounded by clipping the global gradient norm at 0.25,
    # the rate divided by 4 after each epoch that does not improve validation perplexity (the
    # recipe of PyTorch's word_language_model example, after Zaremba et al. 2014). After 200
    # updates (ad-hoc script, same windows; perplexity of the first 14,000 validation words in
    # 35-word windows) it scored 639 where Adam at 1e-3 (`make train-lm` at 3d37702) had 857; Adam at 3e-3 stayed at the unigram
    # plateau (validation perplexity 2,374 after epoch 1, `make train-lm` at a9d474b).
    optimizer: str = choice("sgd", OPTIMIZERS)
    learning_rate: float = 20.0
    learning_rate_schedule: str = choice("plateau", LEARNING_RATE_SCHEDULES)
    clipnorm: float = 0.0
    global_clipnorm: float = 0.25
    early_stopping_patience: int = 3
    # Words per window when the validation and test streams are scored (state carried).
    eval_bptt: int = 200
    # Generation served and printed by `predict` (CLI flags override).
    sampler: str = choice("top_p", SAMPLERS)
    top_k: int = 40
    top_p: float = 0.9
    temperature: float = 0.8
    max_words: int = 20

    def validate(self) -> None:
        super().validate()
        self.require_positive(
            "vocabulary_size", "embedding_dim", "bptt", "eval_bptt", "top_k", "max_words"
        )
        self.require_rates("embedding_dropout", "output_dropout")
        if self.bidirectional:
            raise ConfigError("A language model reads left to right: set bidirectional=false.")
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigError(f"Config key 'top_p' must be in (0, 1], got {self.top_p}.")
        if not self.temperature > 0.0:
            raise ConfigError(f"Config key 'temperature' must be above 0, got {self.temperature}.")
