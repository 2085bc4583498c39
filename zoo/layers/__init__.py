"""Layers of the zoo: recurrent cells and stacks, pooling and in-graph text preprocessing."""

from zoo.layers.jordan_rnn_cell import JordanRNNCell
from zoo.layers.masked_pooling import POOLINGS, MaskedPooling
from zoo.layers.peephole_lstm_cell import PeepholeLSTMCell
from zoo.layers.recurrent_stack import CELL_LAYERS, MERGE_MODES, RecurrentStack
from zoo.layers.text_preprocessor import TextPreprocessor, standardize_text

__all__ = [
    "CELL_LAYERS",
    "MERGE_MODES",
    "POOLINGS",
    "JordanRNNCell",
    "MaskedPooling",
    "PeepholeLSTMCell",
    "RecurrentStack",
    "TextPreprocessor",
    "standardize_text",
]
