"""The sequence tagger family's config: vocabularies, architecture and training."""

import dataclasses

from zoo.config import CELLS, RecurrentEncoderConfig, TrainingConfig, choice
from zoo.errors import ConfigError
from zoo.layers.character_encoder import CHARACTER_ENCODERS
from zoo.models.sequence_tagger.sequence_tagger import HEADS
from zoo.models.sequence_tagger.tag_schemes import TAG_SCHEMES
from zoo.vocabulary import WORD2VEC_ARCHITECTURES


@dataclasses.dataclass
class SequenceTaggerConfig(RecurrentEncoderConfig, TrainingConfig):
    """Recipe of a sequence tagger: vocabularies, architecture and training.

    The dataset's official development split selects the best epoch (CoNLL-2003's testa,
    ATIS's dev), so `validation_fraction` is not used.
    """

    epochs: int = 30
    batch_size: int = 32
    # BPTT clipping on the norm of all gradients together, as Lample et al. (2016) clip at 5.
    clipnorm: float = 0.0
    global_clipnorm: float = 5.0
    early_stopping_patience: int = 6
    vocabulary_size: int = 30000
    sequence_length: int = 256
    max_word_length: int = 20
    embedding_dim: int = 100
    # Width of an embedding of each token's casing class ("Germany", "EU", "clinton", "1,000",
    # ...) beside the lower-cased word's; 0: case reaches the tagger through characters only.
    casing_dim: int = 0
    embedding_init: str = choice("word2vec", ("word2vec", "random"))
    word2vec_epochs: int = 20
    word2vec_architecture: str = choice("cbow", WORD2VEC_ARCHITECTURES)
    # Documents of the family's unlabeled text (if it has one) that join word2vec's corpus;
    # their words fill the vocabulary after every training word (0: training text only).
    unlabeled_documents: int = 0
    # Training replaces this fraction of words by the OOV id, so the model learns to tag
    # unseen words from their characters and context.
    word_dropout: float = 0.05
    # Lample et al. (2016): training also replaces each word seen once in the training split
    # by the OOV id with this probability, as most unseen test words are rare names.
    singleton_dropout: float = 0.0
    # False keeps the word2vec vectors fixed, so words the training split lacks (learned from
    # the unlabeled text only) stay in the same space as the words the tagger was trained on.
    train_embeddings: bool = True
    character_encoder: str = choice("cnn", CHARACTER_ENCODERS)
    character_embedding_dim: int = 32
    character_units: int = 64
    character_kernel_size: int = 3
    lowercase_characters: bool = False
    split_clitics: bool = True
    cell: str = choice("lstm", CELLS)
    units: int = 200
    num_layers: int = 2
    head: str = choice("crf", HEADS)
    # The scheme the tagger is trained in; datasets are read and scored in IOB2.
    tag_scheme: str = choice("iob2", TAG_SCHEMES)
    embedding_dropout: float = 0.5
    dropout: float = 0.5
    intent_loss_weight: float = 1.0
    bucket_step: int = 16
    # 0: every sentence is an example. N > 0: consecutive sentences of one document (the
    # split needs a "document" feature) are packed into examples of up to N tokens, so the
    # tagger reads the text around each sentence; scores are still counted per sentence.
    context_tokens: int = 0
    # True: the development split joins the training data (the protocol of Chiu & Nichols
    # 2016 and Akbik et al. 2018 on CoNLL-2003). Nothing held out then selects an epoch or
    # stops early: the last epoch's weights are kept, and dev scores are not held-out scores.
    train_on_development: bool = False
    # Training adds a lower-cased copy of this fraction of the training sentences and an
    # upper-cased copy of as many (drawn apart): Mayhew et al. (2019) train one tagger on
    # cased + lower-cased copies for cased and uncased text. Evaluation scores both casings.
    casing_augmentation: float = 0.0
    # Training adds, for this fraction of the training sentences that hold a name (of the
    # span types the entry substitutes: ATIS's cities, airlines, airports; CoNLL's PER, LOC,
    # ORG), a copy with each name replaced by one from the training pool of names, which no
    # evaluation variant uses; the new names stay out of the vocabulary (OOV, as unseen names).
    value_substitution: float = 0.0
    # Training also replaces each word of a name span by the OOV id with this probability,
    # so names are found from their characters and context rather than looked up.
    name_word_dropout: float = 0.0

    def validate(self) -> None:
        super().validate()
        self.require_positive(
            "vocabulary_size",
            "sequence_length",
            "max_word_length",
            "embedding_dim",
            "word2vec_epochs",
            "character_embedding_dim",
            "character_units",
            "character_kernel_size",
            "epochs",
            "batch_size",
            "bucket_step",
        )
        if self.vocabulary_size < 3:
            raise ConfigError(
                "Config key 'vocabulary_size' must be at least 3 (padding, OOV, a word)."
            )
        self.require_rates(
            "word_dropout", "singleton_dropout", "embedding_dropout", "name_word_dropout"
        )
        for name in ("casing_augmentation", "value_substitution"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(
                    f"Config key '{name}' must be a fraction in [0, 1], got {getattr(self, name)}."
                )
        if self.value_substitution and self.context_tokens:
            raise ConfigError(
                "Config key 'value_substitution' adds single sentences, which documents packed "
                "by 'context_tokens' cannot hold: set one of them to 0."
            )
        if self.context_tokens < 0 or self.context_tokens > self.sequence_length:
            raise ConfigError(
                "Config key 'context_tokens' must be between 0 and sequence_length "
                f"({self.sequence_length}), got {self.context_tokens}."
            )
        if self.casing_dim < 0:
            raise ConfigError(f"Config key 'casing_dim' must be at least 0, got {self.casing_dim}.")
        if self.unlabeled_documents < 0:
            raise ConfigError(
                "Config key 'unlabeled_documents' must be at least 0, "
                f"got {self.unlabeled_documents}."
            )
        if self.intent_loss_weight < 0:
            raise ConfigError(
                f"Config key 'intent_loss_weight' must be at least 0, got {self.intent_loss_weight}."
            )
