"""LSTM backprop through time (CSC421 HW3 Q1; hw7 Q2; CSE 891 HW3 Q2).

The univariate cell of the handouts, per step t:

    i = σ(w_ix x + w_ih h_prev)      f = σ(w_fx x + w_fh h_prev)
    o = σ(w_ox x + w_oh h_prev)      g = tanh(w_gx x + w_gh h_prev)
    c = f c_prev + i g               h = o tanh(c)

with a loss that reads h at every step.  The vector form adds biases b_i, b_f, b_o, b_g.
Everything below is derived by the engine from this data; nothing is typed in.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import sympy as sp

from derive.engine.cell import Cell, bar, loss_grad, t, timed
from derive.engine.functions import sigma
from derive.gradcheck import Case, backward_map_by_probes, make_data, probes, reference
from derive.problems.base import Result
from derive.problems.recurrent import RecurrentProblem, plain_sigma, scalar_data
from derive.verify import Check

GATES = ("i", "f", "o", "g")
WEIGHTS = tuple(f"w_{g}{s}" for g in GATES for s in ("x", "h"))
BIASES = tuple(f"b_{g}" for g in GATES)


def lstm_cell(biases: bool = False) -> Cell:
    """The LSTM cell as data; ``biases`` adds b_i, b_f, b_o, b_g (the vector form)."""
    x, h, c, h_prev, c_prev = sp.symbols("x h c h_prev c_prev")
    w = {n: sp.Symbol(n) for n in WEIGHTS}
    b = {n: (sp.Symbol(n) if biases else sp.S.Zero) for n in BIASES}

    def pre(gate: str) -> sp.Expr:
        return w[f"w_{gate}x"] * x + w[f"w_{gate}h"] * h_prev + b[f"b_{gate}"]

    i, f, o, g = sp.symbols("i f o g")
    params = {s: "weight" for s in w.values()}
    if biases:
        params |= {b[n]: "bias" for n in BIASES}
    return Cell(
        name="lstm",
        inputs=(x,),
        states=(h, c),
        prev={h: h_prev, c: c_prev},
        params=params,
        assignments=(
            (i, sigma(pre("i"))),
            (f, sigma(pre("f"))),
            (o, sigma(pre("o"))),
            (g, sp.tanh(pre("g"))),
            (c, f * c_prev + i * g),
            (h, o * sp.tanh(c)),
        ),
        loss_on=(h,),
    )


def lstm_step(w: dict, x: Any, h_prev: Any, c_prev: Any, lib: Any, bump: dict) -> dict:
    """One LSTM step typed from the equations above, without the engine: the independent
    forward pass of ``RecurrentProblem.plain_step`` (``lib`` and ``bump`` as there)."""
    i = plain_sigma(w["w_ix"] * x + w["w_ih"] * h_prev, lib) + bump.get("i", 0)
    f = plain_sigma(w["w_fx"] * x + w["w_fh"] * h_prev, lib) + bump.get("f", 0)
    o = plain_sigma(w["w_ox"] * x + w["w_oh"] * h_prev, lib) + bump.get("o", 0)
    g = lib.tanh(w["w_gx"] * x + w["w_gh"] * h_prev) + bump.get("g", 0)
    c = f * c_prev + i * g + bump.get("c", 0)
    h = o * lib.tanh(c) + bump.get("h", 0)
    return {"i": i, "f": f, "o": o, "g": g, "c": c, "h": h}


#: Gate values in the limit of the optional question.
LIMIT = {"f": 1, "i": 0, "o": 0}


class LSTM(RecurrentProblem):
    """Backprop-through-time equations of the univariate and vector LSTM, and the limit."""

    key = "lstm"
    title = "LSTM gradient (backprop through time)"
    LABELS = ("adjoints", "weight", "optional")

    def make_cell(self, biases: bool) -> Cell:
        return lstm_cell(biases)

    def plain_step(self, w: dict, x: dict, prev: dict, lib: Any, bump: dict) -> dict:
        return lstm_step(w, x["x"], prev["h"], prev["c"], lib, bump)

    def derive(self) -> dict[str, Result]:
        out = super().derive()
        out.update(self._limit(out["backward_map"].expr))
        return out

    def _limit(self, jac: sp.Matrix) -> dict[str, Result]:
        """The optional question: the backward recurrence when f -> 1, i -> 0, o -> 0."""
        at = {timed(g, k): v for g, v in LIMIT.items() for k in (0, 1)}
        forms = self.adjoints.through_states()
        later = {k.subs(t, t + 1): v.subs(t, t + 1) for k, v in forms.items()}
        gates = {bar(g, 1): later[bar(g, 1)] for g in GATES}
        out = {}
        for s in ("h", "c"):
            full = forms[bar(s)].xreplace(gates)
            out[f"{s}_bar_limit"] = Result(f"{s}_bar_limit", sp.expand(full.subs(at)), bar(s), full)
        lim = jac.subs(at).applyfunc(sp.simplify)
        out["backward_map_limit"] = Result(
            "backward_map_limit", lim, None, value=[[_num(v) for v in row] for row in lim.tolist()]
        )
        return out

    def verify(self) -> list[Check]:
        return super().verify() + self._limit_checks()

    def check_groups(self) -> list[tuple[str, list[Check]]]:
        # The limit's checks join the backward map's group (they are about J).
        name = "Backward map and the optional part"
        return [(name if n == "Backward map" else n, g) for n, g in super().check_groups()]

    def context(self) -> dict[str, Any]:
        lim = self.results["backward_map_limit"].expr
        return {
            **super().context(),
            "limit": {timed(g): v for g, v in LIMIT.items()},
            "limit_c_gain": lim[-1, -1],
            "limit_h_from_next": list(lim[0, :]),
            "limit_idempotent": bool((lim * lim - lim).is_zero_matrix),
        }

    def question_data(self) -> dict[str, Any]:
        """The recurrent question's data and the gate values of the optional part."""
        return {**super().question_data(), "limit": {timed(g): v for g, v in LIMIT.items()}}

    def _limit_checks(self, steps: int = 30) -> list[Check]:
        """The limit results against the forward pass of a run with saturated gates.

        With x = 1 at every step, w_fx = 25 and w_ix = w_ox = -25, every gate is within
        1.4e-11 of f = 1, i = 0, o = 0.  At each step, J is read off the forward pass by
        complex-step probes and compared with (1) the derived limit of J and (2) the
        coefficients of the derived limits of bar h and bar c; and the derived limit of
        bar h (the loss's direct term alone) is compared with complex-step adjoints.
        """
        case = Case(steps, seed=13)
        params, inputs, init = scalar_data(self.cell, case)
        params.update(SATURATING)
        inputs = {"x": [1.0] * steps}
        r = self.results
        nxt = [bar(s.name, 1) for s in self.cell.states]
        rows = {
            s.name: sp.Matrix([r[f"{s.name}_bar_limit"].expr]).jacobian(nxt)
            for s in self.cell.states
        }
        lim = np.array(r["backward_map_limit"].value, dtype=float)
        err = {"backward_map_limit": 0.0, "h_bar_limit": 0.0, "c_bar_limit": 0.0}
        for k in range(2, steps + 1):
            probed = backward_map_by_probes(self.cell, params, inputs, init, k)
            err["backward_map_limit"] = max(
                err["backward_map_limit"], float(np.max(np.abs(probed - lim)))
            )
            for i, s in enumerate(self.cell.states):
                got = np.array(rows[s.name].tolist(), dtype=float).ravel()
                err[f"{s.name}_bar_limit"] = max(
                    err[f"{s.name}_bar_limit"], float(np.max(np.abs(probed[i] - got)))
                )
        sizes = f"T={steps}, x=1, w_fx = 25, w_ix = w_ox = -25, seed {case.seed}, every step"
        method = "complex step on the forward pass: J at saturated gates"
        checks = [Check(k, method, sizes, v, 1e-8) for k, v in err.items()]
        return [*checks, self._loss_term_check(case, params, inputs["x"], sizes)]

    def _loss_term_check(self, case: Case, params: dict, xs: list, sizes: str) -> Check:
        """bar h(t) in the limit is the loss's direct term: derived form vs complex step."""
        data = make_data(self.cell, case)
        data.params.update({k: np.array([[v]]) for k, v in params.items()})
        data.inputs["x"] = [np.array([[v]]) for v in xs]
        plist = probes(self.cell, case, data)
        ref = reference(self.cell, data, plist, "complex step")
        h_bar = ref[np.array([p[0] == "h_bar" for p in plist])]
        a = [float(v[0, 0]) for v in data.loss_grads["h"]]
        expr = self.results["h_bar_limit"].expr
        derived = [float(expr.xreplace({loss_grad("h"): a[k]})) for k in range(case.T)]
        err = float(np.max(np.abs(h_bar - derived)) / np.max(np.abs(a)))
        method = "complex step: bar h(t) against its derived limit"
        return Check("h_bar_limit", method, sizes, err, 1e-8)


#: Weights that drive the gates to the limit of the optional question (with x = 1).
SATURATING = {
    "w_fx": 25.0,
    "w_fh": 0.1,
    "w_ix": -25.0,
    "w_ih": 0.1,
    "w_ox": -25.0,
    "w_oh": 0.1,
    "w_gx": 1.0,
    "w_gh": 0.1,
}


def _num(v: sp.Expr):
    return int(v) if v.is_Integer else float(v) if v.is_Number else None
