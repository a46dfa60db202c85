"""Multidimensional RNN on a G×G grid (CSC421 homework 3, question 2): weights,
operations, parallel steps and the comparison with a conv net.

``model`` holds the sizes and grid models, ``sample`` the sample submission's claims,
``problem`` the derivation and the key's data, ``claims`` the independent checks.
"""

from derive.instances.gridsim import run_mdrnn
from derive.problems.mdrnn.model import D, G, H, i, j, n_phi, step_rule_violations
from derive.problems.mdrnn.problem import MDRNN

__all__ = ["MDRNN", "D", "G", "H", "i", "j", "n_phi", "run_mdrnn", "step_rule_violations"]
