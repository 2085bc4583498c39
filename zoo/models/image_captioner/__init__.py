"""Image captioning: a frozen ImageNet CNN's feature grid, an attention decoder, beam search."""

from zoo.models.image_captioner.image_captioner import ImageCaptioner
from zoo.models.image_captioner.image_captioner_config import ImageCaptionerConfig
from zoo.models.image_captioner.image_captioner_family import ImageCaptionerFamily
from zoo.models.image_captioner.image_captioner_preprocessor import ImageCaptionerPreprocessor
from zoo.models.image_captioner.image_encoder import ImageEncoder

__all__ = [
    "ImageCaptioner",
    "ImageCaptionerConfig",
    "ImageCaptionerFamily",
    "ImageCaptionerPreprocessor",
    "ImageEncoder",
]
