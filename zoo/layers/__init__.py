"""Layers of the zoo: recurrent cells and stacks, pooling, CRF and character encoders shared by the families."""

from zoo.layers.jordan_rnn_cell import JordanRNNCell
from zoo.layers.masked_pooling import POOLINGS, MaskedPooling
from zoo.layers.peephole_lstm_cell import PeepholeLSTMCell
from zoo.layers.recurrent_backbone import RecurrentBackbone
from zoo.layers.recurrent_stack import CELL_LAYERS, MERGE_MODES, RecurrentStack

__all__ = [
    "CELL_LAYERS",
    "MERGE_MODES",
    "POOLINGS",
    "JordanRNNCell",
    "MaskedPooling",
    "PeepholeLSTMCell",
    "RecurrentBackbone",
    "RecurrentStack",
]
