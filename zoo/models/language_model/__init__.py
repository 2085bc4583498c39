from zoo.models.language_model.language_model import LanguageModel
from zoo.models.language_model.language_model_config import LanguageModelConfig
from zoo.models.language_model.language_model_family import LanguageModelFamily
from zoo.models.language_model.language_model_preprocessor import LanguageModelPreprocessor

__all__ = [
    "LanguageModel",
    "LanguageModelConfig",
    "LanguageModelFamily",
    "LanguageModelPreprocessor",
]
