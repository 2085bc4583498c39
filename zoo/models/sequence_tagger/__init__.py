"""Many-to-many sequence tagging: a raw sentence in, one tag per token out (and an intent)."""

from zoo.models.sequence_tagger.sequence_tagger import SequenceTagger
from zoo.models.sequence_tagger.sequence_tagger_config import SequenceTaggerConfig
from zoo.models.sequence_tagger.sequence_tagger_family import SequenceTaggerFamily
from zoo.models.sequence_tagger.sequence_tagger_preprocessor import SequenceTaggerPreprocessor

__all__ = [
    "SequenceTagger",
    "SequenceTaggerConfig",
    "SequenceTaggerFamily",
    "SequenceTaggerPreprocessor",
]
