"""Layers of the zoo: recurrent stacks, pooling and in-graph text preprocessing."""

from zoo.layers.masked_pooling import POOLINGS, MaskedPooling
from zoo.layers.recurrent_stack import CELL_LAYERS, MERGE_MODES, RecurrentStack
from zoo.layers.text_preprocessor import TextPreprocessor, standardize_text

__all__ = [
    "CELL_LAYERS",
    "MERGE_MODES",
    "POOLINGS",
    "MaskedPooling",
    "RecurrentStack",
    "TextPreprocessor",
    "standardize_text",
]
