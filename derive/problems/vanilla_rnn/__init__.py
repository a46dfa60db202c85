"""LMU 5-1, 5-2 a: backprop through time in a vanilla RNN (see ``problem``)."""

from derive.problems.vanilla_rnn.problem import VanillaRNN

__all__ = ["VanillaRNN"]
