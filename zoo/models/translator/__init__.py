"""Sequence-to-sequence translation: a recurrent encoder, an attention decoder, beam search."""

from zoo.models.translator.translator import Translator
from zoo.models.translator.translator_config import TranslatorConfig
from zoo.models.translator.translator_family import TranslatorFamily
from zoo.models.translator.translator_preprocessor import TranslatorPreprocessor

__all__ = ["Translator", "TranslatorConfig", "TranslatorFamily", "TranslatorPreprocessor"]
