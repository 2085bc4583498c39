"""Many-to-one text classification: raw text in, a class label out."""

from zoo.models.text_classifier.text_classifier import TextClassifier
from zoo.models.text_classifier.text_classifier_config import TextClassifierConfig
from zoo.models.text_classifier.text_classifier_family import TextClassifierFamily
from zoo.models.text_classifier.text_classifier_preprocessor import (
    TextClassifierPreprocessor,
    standardize_text,
)

__all__ = [
    "TextClassifier",
    "TextClassifierConfig",
    "TextClassifierFamily",
    "TextClassifierPreprocessor",
    "standardize_text",
]
