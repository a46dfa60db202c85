"""The registry of problems: key -> class.  Adding a problem is one line here."""

from __future__ import annotations

from derive.errors import InputError
from derive.problems.base import Problem, Result
from derive.problems.binary_adder import BinaryAdder
from derive.problems.cnn_params import CNNParams
from derive.problems.eigen_power import EigenPower
from derive.problems.gru import GRU
from derive.problems.lstm import LSTM
from derive.problems.lstm_cell import LSTMCell
from derive.problems.mdrnn import MDRNN
from derive.problems.mgu import MGU
from derive.problems.momentum import Momentum
from derive.problems.pixelcnn_mdrnn import PixelCNNMDRNN
from derive.problems.resnet_bn import ResnetBN
from derive.problems.vanilla_rnn import VanillaRNN

REGISTRY: dict[str, type[Problem]] = {
    "lstm": LSTM,
    "gru": GRU,
    "mgu": MGU,
    "eigen_power": EigenPower,
    "binary_adder": BinaryAdder,
    "lstm_cell": LSTMCell,
    "vanilla_rnn": VanillaRNN,
    "momentum": Momentum,
    "mdrnn": MDRNN,
    "cnn_params": CNNParams,
    "resnet_bn": ResnetBN,
    "pixelcnn_mdrnn": PixelCNNMDRNN,
}


def get_problem(key: str) -> Problem:
    """A fresh instance of the registered problem ``key``."""
    if key not in REGISTRY:
        raise InputError(f"unknown problem {key!r}; known problems: {', '.join(REGISTRY)}")
    return REGISTRY[key]()


__all__ = ["REGISTRY", "Problem", "Result", "get_problem"]
