"""A minimal gated unit (Zhou et al. 2016), added purely as data like the GRU: one gate
serves as both the GRU's update and reset gates.

Per step t:

    f = σ(w_fx x + w_fh h_prev)            forget gate
    n = tanh(w_nx x + w_nh (f h_prev))     candidate state
    h = (1 - f) h_prev + f n

The vector form adds biases b_f, b_n.
"""

from __future__ import annotations

import sympy as sp

from derive.engine.functions import sigma
from derive.engine.spec import CellSpec
from derive.problems.recurrent import RecurrentProblem


class MGU(RecurrentProblem):
    """Backprop-through-time equations of the minimal gated unit, scalar and vector form."""

    key = "mgu"
    title = "MGU gradient (backprop through time)"
    MAIN = "w_fx_bar"
    NOUN = "minimal gated unit"
    ROLES = ("a forget gate", "a candidate state", "the new hidden state")

    CELL = CellSpec(
        name="mgu",
        inputs=("x",),
        states=("h",),
        weights=("w_fx", "w_fh", "w_nx", "w_nh"),
        biases=("b_f", "b_n"),
        equations=lambda s: (
            ("f", sigma(s.w_fx * s.x + s.w_fh * s.h_prev + s.b_f)),
            ("n", sp.tanh(s.w_nx * s.x + s.w_nh * (s.f * s.h_prev) + s.b_n)),
            ("h", (1 - s.f) * s.h_prev + s.f * s.n),
        ),
        loss_on=("h",),
    )
