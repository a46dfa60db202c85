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
from derive.engine.spec import CellSpec
from derive.problems.recurrent import RecurrentProblem

WEIGHTS = ("w_zx", "w_zh", "w_rx", "w_rh", "w_nx", "w_nh")
BIASES = ("b_z", "b_r", "b_n")


class GRU(RecurrentProblem):
    """Backprop-through-time equations of the GRU, scalar and vector form."""

    key = "gru"
    title = "GRU gradient (backprop through time)"
    MAIN = "w_zx_bar"
    NOUN = "gated recurrent unit"
    ROLES = ("an update gate", "a reset gate", "a candidate state", "the new hidden state")

    CELL = CellSpec(
        name="gru",
        inputs=("x",),
        states=("h",),
        weights=WEIGHTS,
        biases=BIASES,
        equations=lambda s: (
            ("z", sigma(s.w_zx * s.x + s.w_zh * s.h_prev + s.b_z)),
            ("r", sigma(s.w_rx * s.x + s.w_rh * s.h_prev + s.b_r)),
            ("n", sp.tanh(s.w_nx * s.x + s.w_nh * (s.r * s.h_prev) + s.b_n)),
            ("h", (1 - s.z) * s.h_prev + s.z * s.n),
        ),
        loss_on=("h",),
    )


def gru_cell(biases: bool = False) -> Cell:
    """The GRU cell; ``biases`` adds b_z, b_r, b_n (the vector form)."""
    return GRU.CELL.build(biases)
