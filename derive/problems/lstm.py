"""LSTM backprop through time (CSC421 HW3 Q1; hw7 Q2; CSE 891 HW3 Q2).

The univariate cell of the handouts, per step t:

    i = σ(w_ix x + w_ih h_prev)      f = σ(w_fx x + w_fh h_prev)
    o = σ(w_ox x + w_oh h_prev)      g = tanh(w_gx x + w_gh h_prev)
    c = f c_prev + i g               h = o tanh(c)

with a loss that reads h at every step.  The vector form adds biases b_i, b_f, b_o, b_g.
Everything below is derived by the engine from this data; nothing is typed in.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import sympy as sp

from derive import inputs as inp
from derive.engine.adjoint import Adjoints
from derive.engine.cell import Cell, T, bar, loss_grad, t, timed
from derive.engine.functions import sigma
from derive.engine.numeric import ScalarSweep, VectorSweep, evaluate_at, forward
from derive.engine.vector import VectorAdjoints, at_absolute_step
from derive.gradcheck import (
    Case,
    backward_map_by_probes,
    gradient_checks,
    make_data,
    probes,
    reference,
)
from derive.problems.base import Problem, Result
from derive.verify import Check, rel_error

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


#: Gate values in the limit of the optional question.
LIMIT = {"f": 1, "i": 0, "o": 0}


class LSTM(Problem):
    """Backprop-through-time equations of the univariate and vector LSTM."""

    key = "lstm"
    title = "LSTM gradient (backprop through time)"

    def __init__(self, cases: list[Case] | None = None) -> None:
        self.cases = cases

    @cached_property
    def cell(self) -> Cell:
        return lstm_cell(biases=False)

    @cached_property
    def vector_cell(self) -> Cell:
        return lstm_cell(biases=True)

    @cached_property
    def adjoints(self) -> Adjoints:
        return Adjoints(self.cell)

    @cached_property
    def vector_adjoints(self) -> VectorAdjoints:
        return VectorAdjoints(self.vector_cell)

    # -- derivation ---------------------------------------------------------------------------
    def derive(self) -> dict[str, Result]:
        out: dict[str, Result] = {}
        for name, adj in self.adjoints.variables.items():
            out[f"{name}_bar"] = Result(f"{name}_bar", adj.expr, adj.lhs, adj.chain)
        for name, adj in self.adjoints.params.items():
            out[f"{name}_bar"] = Result(f"{name}_bar", adj.expr, adj.lhs, adj.chain)
        x = self.adjoints.inputs["x"]
        out["x_bar"] = Result("x_bar", x.expr, x.lhs, x.chain)
        for s in self.cell.states:
            e = self.adjoints.variables[s.name].at_initial_step
            out[f"{s.name}0_bar"] = Result(f"{s.name}0_bar", e, bar(s.name).subs(t, 0))
        va = self.vector_adjoints
        for name, e in {**va.variables, **va.inputs}.items():
            out[f"vector_{name}_bar"] = Result(f"vector_{name}_bar", e, va.vc.bar(sp.Symbol(name)))
        for name, e in va.params.items():
            lhs = sp.MatrixSymbol("bar:" + name, *va.vc.shape(sp.Symbol(name)))
            out[f"vector_{name}_bar"] = Result(f"vector_{name}_bar", sp.Sum(e, (t, 1, T)), lhs)
        for s in self.cell.states:
            e = at_absolute_step(va.initial(s.name), 0)
            lhs = sp.MatrixSymbol(f"bar:{s.name}@=0", *va.vc.shape(s))
            out[f"vector_{s.name}0_bar"] = Result(f"vector_{s.name}0_bar", e, lhs)
        out.update(self._limit())
        return out

    def _limit(self) -> dict[str, Result]:
        """The optional question: the backward recurrence when f -> 1, i -> 0, o -> 0."""
        at = {timed(g, k): v for g, v in LIMIT.items() for k in (0, 1)}
        forms = self.adjoints.through_states()
        later = {k.subs(t, t + 1): v.subs(t, t + 1) for k, v in forms.items()}
        gates = {bar(g, 1): later[bar(g, 1)] for g in GATES}
        cols, jac = self.adjoints.backward_map()
        out = {}
        for s in ("h", "c"):
            full = forms[bar(s)].xreplace(gates)
            out[f"{s}_bar_limit"] = Result(f"{s}_bar_limit", sp.expand(full.subs(at)), bar(s), full)
        out["backward_map"] = Result("backward_map", jac, sp.Matrix(cols))
        lim = jac.subs(at).applyfunc(sp.simplify)
        out["backward_map_limit"] = Result(
            "backward_map_limit", lim, None, value=[[_num(v) for v in row] for row in lim.tolist()]
        )
        return out

    def shapes(self) -> dict[str, tuple]:
        """Shape of every quantity of the vector form."""
        return self.vector_adjoints.shapes()

    def _check_groups(self) -> list[tuple[str, list[Check]]]:
        limit = [c for c in self.checks if c.claim.endswith("_limit") or c.claim == "backward_map"]
        vector = [c for c in self.checks if c.claim.startswith("vector_")]
        scalar = [c for c in self.checks if c not in limit and c not in vector]
        return [
            ("Scalar form", scalar),
            ("Vector form, with biases", vector),
            ("Optional part", limit),
        ]

    def _map_entries(self) -> list[tuple[sp.Expr, sp.Expr, sp.Expr]]:
        jac = self.results["backward_map"].expr
        now = [bar(s.name) for s in self.cell.states]
        nxt = [bar(s.name, 1) for s in self.cell.states]
        return [(now[i], nxt[j], jac[i, j]) for i in range(len(now)) for j in range(len(nxt))]

    def context(self) -> dict[str, Any]:
        r = self.results
        step = self.cell.at_step(0)
        vstep = {s: self.vector_adjoints.vc.sym(s) for s in step}
        vc = self.vector_adjoints.vc
        lim = r["backward_map_limit"].expr
        return {
            **super().context(),
            "forward": [(step[u], e.xreplace(step)) for u, e in self.cell.assignments],
            "vector_forward": [
                (vstep[u], vc.to_vec(e, 0)) for u, e in self.vector_cell.assignments
            ],
            "adjoints": [r[f"{v.name}_bar"] for v in reversed(self.cell.variables)],
            "weights": [r[f"{w}_bar"] for w in WEIGHTS],
            "vector_adjoints": [r[f"vector_{v.name}_bar"] for v in reversed(self.cell.variables)],
            "vector_params": [r[f"vector_{p}_bar"] for p in (*WEIGHTS, *BIASES)],
            "vector_rest": [r[k] for k in ("vector_x_bar", "vector_h0_bar", "vector_c0_bar")],
            "shapes": [(vc.sym(sp.Symbol(n)), *shape) for n, shape in self.shapes().items()],
            "limit": {timed(g): v for g, v in LIMIT.items()},
            "inputs": [timed(x.name) for x in self.cell.inputs],
            "states_now": [bar(s.name) for s in self.cell.states],
            "states_next": [bar(s.name, 1) for s in self.cell.states],
            "backward_map_entries": self._map_entries(),
            "check_groups": self._check_groups(),
            "limit_power": lim**50,
            "limit_c_gain": lim[-1, -1],
            "limit_h_from_next": list(lim[0, :]),
            "limit_idempotent": bool((lim * lim - lim).is_zero_matrix),
        }

    # -- verification -------------------------------------------------------------------------
    def default_cases(self) -> list[Case]:
        scalar = [Case(1, seed=1), Case(2, seed=2), Case(7, seed=3), Case(50, seed=4)]
        scalar += [Case(3, scale=10, seed=5), Case(50, scale=10, seed=6), Case(3, seed=7)]
        vector = [Case(1, 3, 2, seed=8), Case(7, 3, 2, seed=9), Case(50, 3, 2, seed=10)]
        vector += [Case(50, 3, 2, scale=10, seed=11), Case(3, 2, 2, seed=12)]
        return scalar + vector

    def verify(self) -> list[Check]:
        cases = self.cases or self.default_cases()
        scalar = [c for c in cases if not c.vector]
        vector = [c for c in cases if c.vector]
        rows = gradient_checks(self.cell, scalar)
        rows += gradient_checks(self.vector_cell, vector, prefix="vector_")
        return rows + self._map_checks() + self._limit_checks()

    def _map_checks(self, steps: int = 8) -> list[Check]:
        """The derived backward map J against J read off the forward pass at every step."""
        worst = 0.0
        jac = self.results["backward_map"].expr
        for case in (Case(steps, seed=14), Case(steps, scale=5, seed=15)):
            params, xs, init = _scalar_data(self.cell, case)
            traj = forward(self.cell, params, {"x": xs}, init)
            for k in range(2, steps + 1):
                probed = backward_map_by_probes(self.cell, params, {"x": xs}, init, k)
                worst = max(worst, _compare_at(jac, traj, params, k - 1, probed))
        sizes = f"T={steps}, every step, |w| up to 1,5, seeds 14,15"
        return [Check("backward_map", "complex step on the forward pass", sizes, worst, 1e-11)]

    def _limit_checks(self, steps: int = 30) -> list[Check]:
        """The limit results against the forward pass of a run with saturated gates.

        With x = 1 at every step, w_fx = 25 and w_ix = w_ox = -25, every gate is within
        1.4e-11 of f = 1, i = 0, o = 0.  At each step, J is read off the forward pass by
        complex-step probes and compared with (1) the derived limit of J and (2) the
        coefficients of the derived limits of bar h and bar c; and the derived limit of
        bar h (the loss's direct term alone) is compared with complex-step adjoints.
        """
        case = Case(steps, seed=13)
        params, xs, init = _scalar_data(self.cell, case)
        params.update(SATURATING)
        xs = [1.0] * steps
        r = self.results
        nxt = [bar(s.name, 1) for s in self.cell.states]
        rows = {
            s.name: sp.Matrix([r[f"{s.name}_bar_limit"].expr]).jacobian(nxt)
            for s in self.cell.states
        }
        lim = np.array(r["backward_map_limit"].value, dtype=float)
        err = {"backward_map_limit": 0.0, "h_bar_limit": 0.0, "c_bar_limit": 0.0}
        for k in range(2, steps + 1):
            probed = backward_map_by_probes(self.cell, params, {"x": xs}, init, k)
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
        return [*checks, self._loss_term_check(case, params, xs, init, sizes)]

    def _loss_term_check(self, case, params, xs, init, sizes) -> Check:
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

    # -- numbers ------------------------------------------------------------------------------
    def grad(self, data: Any) -> dict:
        """Evaluate the derived adjoints on the numbers of a ``derive grad lstm`` input."""
        return grad(self, data)


def _scalar_data(cell: Cell, case: Case) -> tuple[dict, list, dict]:
    data = make_data(cell, case)
    params = {k: float(v[0, 0]) for k, v in data.params.items()}
    xs = [float(v[0, 0]) for v in data.inputs["x"]]
    return params, xs, {k: float(v[0, 0]) for k, v in data.initial.items()}


def _compare_at(expr, traj, params, k: int, ref: np.ndarray) -> float:
    """Error of a derived expression evaluated at step k against ``ref``; inf if it
    cannot be evaluated there (a wrong step index reads past the sequence)."""
    try:
        got = np.array(evaluate_at(expr, traj, params, k), dtype=float)
    except (IndexError, KeyError, TypeError):
        return float("inf")
    return rel_error(got, ref)


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


# -- derive grad lstm ------------------------------------------------------------------------------
def grad(problem: LSTM, data: Any) -> dict:
    """Parse a ``derive grad lstm`` input, run the forward pass and the derived sweep."""
    top = inp.mapping(data, "input", ["weights", "x", "h0", "c0", "dL_dh"])
    weights = inp.mapping(top["weights"], "weights", list(WEIGHTS), list(BIASES))
    # Overflow is reported below as one clear error, not as NumPy warnings.
    with np.errstate(all="ignore"):
        if isinstance(weights["w_ix"], list):
            out = _grad_vector(problem, top, weights)
        else:
            out = _grad_scalar(problem, top, weights)
    for key, value in [("h", out["h"]), ("c", out["c"]), *out["grad"].items()]:
        inp.finite_output(value, f"grad lstm ({key})")
    return out


def _sequence(value: Any, field: str) -> list:
    if not isinstance(value, list) or not value:
        raise inp.InputError(f"{field}: expected a non-empty list with one entry per step")
    return value


def _grad_scalar(problem: LSTM, top: dict, weights: dict) -> dict:
    if any(b in weights for b in BIASES):
        raise inp.InputError("weights: biases b_i, b_f, b_o, b_g need the vector form (matrices)")
    params = {k: inp.number(weights[k], f"weights.{k}") for k in WEIGHTS}
    xs = [inp.number(v, f"x[{k}]") for k, v in enumerate(_sequence(top["x"], "x"))]
    a = [inp.number(v, f"dL_dh[{k}]") for k, v in enumerate(_sequence(top["dL_dh"], "dL_dh"))]
    if len(a) != len(xs):
        raise inp.InputError(f"dL_dh: expected {len(xs)} numbers (one per step of x), got {len(a)}")
    init = {"h": inp.number(top["h0"], "h0"), "c": inp.number(top["c0"], "c0")}
    traj = forward(problem.cell, params, {"x": xs}, init)
    g = ScalarSweep(problem.adjoints).run(traj, params, {"h": a})
    out = {k: float(v) for k, v in g.params.items()}
    out |= {"h0": float(g.initial["h"]), "c0": float(g.initial["c"])}
    out["x"] = [float(v) for v in g.bars["x"][1 : len(xs) + 1]]
    return {
        "h": [float(v) for v in traj["h"][1:]],
        "c": [float(v) for v in traj["c"][1:]],
        "grad": out,
    }


def _grad_vector(problem: LSTM, top: dict, weights: dict) -> dict:
    w_ix = inp.matrix(weights["w_ix"], "weights.w_ix")
    n_h, n_x = w_ix.shape
    params = {}
    for k in WEIGHTS:
        params[k] = inp.matrix(weights[k], f"weights.{k}", (n_h, n_x if k.endswith("x") else n_h))
    for k in BIASES:
        params[k] = (
            inp.vector(weights[k], f"weights.{k}", n_h) if k in weights else np.zeros((n_h, 1))
        )
    xs = [inp.vector(v, f"x[{k}]", n_x) for k, v in enumerate(_sequence(top["x"], "x"))]
    a = [inp.vector(v, f"dL_dh[{k}]", n_h) for k, v in enumerate(_sequence(top["dL_dh"], "dL_dh"))]
    if len(a) != len(xs):
        raise inp.InputError(f"dL_dh: expected {len(xs)} vectors (one per step of x), got {len(a)}")
    init = {"h": inp.vector(top["h0"], "h0", n_h), "c": inp.vector(top["c0"], "c0", n_h)}
    traj = forward(problem.vector_cell, params, {"x": xs}, init)
    g = VectorSweep(problem.vector_adjoints).run(traj, params, {"h": a})
    out = {k: g.params[k].tolist() for k in WEIGHTS}
    out |= {k: g.params[k].ravel().tolist() for k in BIASES if k in weights}
    out |= {"h0": g.initial["h"].ravel().tolist(), "c0": g.initial["c"].ravel().tolist()}
    out["x"] = [v.ravel().tolist() for v in g.bars["x"][1 : len(xs) + 1]]
    return {
        "h": [v.ravel().tolist() for v in traj["h"][1:]],
        "c": [v.ravel().tolist() for v in traj["c"][1:]],
        "grad": out,
    }
