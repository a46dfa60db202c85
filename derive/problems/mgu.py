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

from derive.engine.cell import Cell
from derive.engine.functions import sigma
from derive.problems.recurrent import RecurrentProblem

WEIGHTS = ("w_fx", "w_fh", "w_nx", "w_nh")
BIASES = ("b_f", "b_n")


def mgu_cell(biases: bool = False) -> Cell:
    """The MGU cell as data; ``biases`` adds b_f, b_n (the vector form)."""
    x, h, h_prev, f, n = sp.symbols("x h h_prev f n")
    w = {k: sp.Symbol(k) for k in WEIGHTS}
    b = {k: (sp.Symbol(k) if biases else sp.S.Zero) for k in BIASES}
    params = {s: "weight" for s in w.values()}
    if biases:
        params |= {b[k]: "bias" for k in BIASES}
    return Cell(
        name="mgu",
        inputs=(x,),
        states=(h,),
        prev={h: h_prev},
        params=params,
        assignments=(
            (f, sigma(w["w_fx"] * x + w["w_fh"] * h_prev + b["b_f"])),
            (n, sp.tanh(w["w_nx"] * x + w["w_nh"] * (f * h_prev) + b["b_n"])),
            (h, (1 - f) * h_prev + f * n),
        ),
        loss_on=(h,),
    )


class MGU(RecurrentProblem):
    """Backprop-through-time equations of the minimal gated unit, scalar and vector form."""

    key = "mgu"
    title = "MGU gradient (backprop through time)"
    NOUN = "minimal gated unit"
    ROLES = ("a forget gate", "a candidate state", "the new hidden state")

    def make_cell(self, biases: bool) -> Cell:
        return mgu_cell(biases)
