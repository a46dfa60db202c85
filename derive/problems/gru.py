"""A gated recurrent unit, added purely as data: the engine derives and checks the rest.

Per step t (the convention of PyTorch's GRU, with the reset gate applied before the
recurrent weight; Cho et al. 2014 write the same unit with z and 1 - z exchanged):

    z = σ(w_zx x + w_zh h_prev)            update gate
    r = σ(w_rx x + w_rh h_prev)            reset gate
    n = tanh(w_nx x + w_nh (r h_prev))     candidate state
    h = (1 - z) h_prev + z n

The vector form adds biases b_z, b_r, b_n.
"""

from __future__ import annotations

from typing import Any

import sympy as sp

from derive.engine.cell import Cell, bar
from derive.engine.functions import sigma
from derive.problems.recurrent import RecurrentProblem, plain_sigma

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


def gru_step(w: dict, x: Any, h_prev: Any, lib: Any, bump: dict) -> dict:
    """One GRU step typed from the equations above, without the engine: the independent
    forward pass of ``RecurrentProblem.plain_step`` (``lib`` and ``bump`` as there)."""
    z = plain_sigma(w["w_zx"] * x + w["w_zh"] * h_prev, lib) + bump.get("z", 0)
    r = plain_sigma(w["w_rx"] * x + w["w_rh"] * h_prev, lib) + bump.get("r", 0)
    n = lib.tanh(w["w_nx"] * x + w["w_nh"] * (r * h_prev)) + bump.get("n", 0)
    h = (1 - z) * h_prev + z * n + bump.get("h", 0)
    return {"z": z, "r": r, "n": n, "h": h}


class GRU(RecurrentProblem):
    """Backprop-through-time equations of the GRU, scalar and vector form."""

    key = "gru"
    title = "GRU gradient (backprop through time)"

    def make_cell(self, biases: bool) -> Cell:
        return gru_cell(biases)

    def plain_step(self, w: dict, x: dict, prev: dict, lib: Any, bump: dict) -> dict:
        return gru_step(w, x["x"], prev["h"], lib, bump)

    def question_data(self) -> dict[str, Any]:
        """The recurrent question's data and the state adjoints that part (c) relates."""
        states = self.cell.states
        return {
            **super().question_data(),
            "states_now": [bar(s.name) for s in states],
            "states_next": [bar(s.name, 1) for s in states],
        }
