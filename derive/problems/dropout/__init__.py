"""Inverted dropout (``Dropout``): the scale 1/(1 - p), the output's mean and variance, and
the backward rule, derived from the Bernoulli mask and checked by enumeration, sampling and
differences (``algebra``, ``claims``; ``evaluate`` serves ``derive eval``)."""

from derive.problems.dropout.problem import Dropout

__all__ = ["Dropout"]
