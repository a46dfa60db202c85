"""A gated recurrent unit, added purely as data: the engine derives and checks the rest,
the generic recurrent templates print it.

Per step t (the convention of PyTorch's GRU, with the reset gate applied before the
recurrent weight; Cho et al. 2014 write the same unit with z and 1 - z exchanged):

    z = σ(w_zx x + w_zh h_prev)            update gate
    r = σ(w_rx x + w_rh h_prev)            reset gate
    n = tanh(w_nx x + w_nh (r h_prev))     candidate state
    h = (1 - z) h_prev + z n

The vector form adds biases b_z, b_r, b_n.
"""

from __future__ import annotations

import sympy as sp

from derive.engine.cell import Cell
from derive.engine.functions import sigma
from derive.problems.recurrent import RecurrentProblem

WEIGHTS = ("w_zx", "w_zh", "w_rx", "w_rh", "w_nx", "w_nh")
BIASES = ("b_z", "b_r", "b_n")


def gru_cell(biases: bool = False) -> Cell:
    """The GRU cell as data; ``biases`` adds b_z, b_r, b_n (the vector form)."""
    x, h, h_prev, z, r, n = sp.symbols("x h h_prev z r n")
    w = {k: sp.Symbol(k) for k in WEIGHTS}
    b = {k: (sp.Symbol(k) if biases else sp.S.Zero) for k in BIASES}
    params = {s: "weight" for s in w.values()}
    if biases:
        params |= {b[k]: "bias" for k in BIASES}
    return Cell(
        name="gru",
        inputs=(x,),
        states=(h,),
        prev={h: h_prev},
        params=params,
        assignments=(
            (z, sigma(w["w_zx"] * x + w["w_zh"] * h_prev + b["b_z"])),
            (r, sigma(w["w_rx"] * x + w["w_rh"] * h_prev + b["b_r"])),
            (n, sp.tanh(w["w_nx"] * x + w["w_nh"] * (r * h_prev) + b["b_n"])),
            (h, (1 - z) * h_prev + z * n),
        ),
        loss_on=(h,),
    )


class GRU(RecurrentProblem):
    """Backprop-through-time equations of the GRU, scalar and vector form."""

    key = "gru"
    title = "GRU gradient (backprop through time)"
    NOUN = "gated recurrent unit"
    ROLES = ("an update gate", "a reset gate", "a candidate state", "the new hidden state")

    def make_cell(self, biases: bool) -> Cell:
        return gru_cell(biases)
