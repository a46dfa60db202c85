"""An Elman network (Elman 1990) for derive: a hidden state read out through a sigmoid.

Per step t:

    h = tanh(w_hx x + w_hh h_prev + b_h)    hidden state
    y = σ(w_yh h + b_y)                     output, which the loss reads

The cell is data; derive derives and checks its backprop-through-time equations and
prints them through its generic recurrent templates.
"""

import sympy as sp

import derive
from derive.engine.functions import sigma


class Elman(derive.RecurrentProblem):
    """Backprop-through-time equations of an Elman network, scalar and vector form."""

    key = "elman"
    title = "Elman network gradient (backprop through time)"
    MAIN = "w_hh_bar"
    NOUN = "Elman network"
    ROLES = ("its hidden state", "its output")

    CELL = derive.CellSpec(
        name="elman",
        inputs=("x",),
        states=("h",),
        weights=("w_hx", "w_hh", "w_yh"),
        biases=("b_h", "b_y"),
        equations=lambda s: (
            ("h", sp.tanh(s.w_hx * s.x + s.w_hh * s.h_prev + s.b_h)),
            ("y", sigma(s.w_yh * s.h + s.b_y)),
        ),
        loss_on=("y",),
    )
