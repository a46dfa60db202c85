"""One LSTM step in the LMU notation (exercise 5-3): gates, signs, and dC_t/dC_{t-1}.

The step, with W_f [h_{t-1}, x_t] split into W_fh h_{t-1} + W_fx x_t (likewise for i, o, c):

    h_{t-1} = o_{t-1} ∘ tanh(C_{t-1})
    f_t = σ(W_fh h_{t-1} + W_fx x_t + b_f)      i_t = σ(W_ih h_{t-1} + W_ix x_t + b_i)
    o_t = σ(W_oh h_{t-1} + W_ox x_t + b_o)      C̃_t = tanh(W_ch h_{t-1} + W_cx x_t + b_c)
    C_t = f_t ∘ C_{t-1} + i_t ∘ C̃_t             h_t = o_t ∘ tanh(C_t)

Writing h_{t-1} as a function of C_{t-1} (the cell carries C and o) makes every path from
C_{t-1} to C_t part of one cell.  The engine names C̃ ``g`` and C ``c``; a set's notation
spells them.

* (b) Which quantities are always positive is decided by interval arithmetic over the
  cell's assignments (σ maps onto (0, 1), tanh onto (-1, 1)), then sampled.
* (d) The vector-Jacobian product of C_t by C_{t-1} comes from ``VectorCell.vjp`` (a
  reverse sweep over the assignments, ``derive.engine.jacobian.vjp_of``); it is linear in
  the cotangent, and each of its terms ``Aᵀ(ḡ ∘ d)`` is read as the Jacobian ``diag(d) A``
  (``jacobian_from_vjp``).
* (c) The limit f_t = 1, i_t = 0 of that Jacobian is the identity, so dC_t/dC_k = I.

Checks: complex step and central differences of an independent NumPy step (written with
the concatenated W_f [h, x]), saturated runs of many steps, and sampling of the signs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import mpmath
import numpy as np
import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from derive.engine.cell import Cell, t, timed
from derive.engine.functions import NUMERIC as ENGINE_NUMERIC
from derive.engine.functions import increasing, sigma
from derive.engine.jacobian import Diag, jacobian_from_vjp, vjp_of
from derive.engine.numeric import MatrixEvaluator
from derive.engine.vector import ONE, VectorCell, n_h
from derive.errors import InputError
from derive.problems.base import Problem, Result
from derive.verify import Check, rel_error

#: LMU's gate letters; the candidate C̃ is the engine's ``g`` and reads W_c, b_c.
GATES = ("f", "i", "o", "c")
#: The quantities next to the handout's figure, in the order (b) discusses them.
FIGURE = ("f", "i", "o", "g", "c", "h")


def lstm_step_cell() -> Cell:
    """One LSTM step whose h_{t-1} is computed from C_{t-1} (and o_{t-1}), as data."""
    x, c, o, c_prev, o_prev = sp.symbols("x c o c_prev o_prev")
    h_prev, f, i, g, h = sp.symbols("h_prev f i g h")
    w = {f"W_{k}{s}": sp.Symbol(f"W_{k}{s}") for k in GATES for s in ("h", "x")}
    b = {f"b_{k}": sp.Symbol(f"b_{k}") for k in GATES}

    def pre(k: str) -> sp.Expr:
        return w[f"W_{k}h"] * h_prev + w[f"W_{k}x"] * x + b[f"b_{k}"]

    return Cell(
        name="lstm_cell",
        inputs=(x,),
        states=(c, o),
        prev={c: c_prev, o: o_prev},
        params={**{s: "weight" for s in w.values()}, **{s: "bias" for s in b.values()}},
        assignments=(
            (h_prev, o_prev * sp.tanh(c_prev)),
            (f, sigma(pre("f"))),
            (i, sigma(pre("i"))),
            (o, sigma(pre("o"))),
            (g, sp.tanh(pre("c"))),
            (c, f * c_prev + i * g),
            (h, o * sp.tanh(c)),
        ),
        loss_on=(h,),
    )


# -- (b) interval arithmetic over the assignments ------------------------------------------------
@dataclass(frozen=True)
class Range:
    """An interval of the extended reals with open or closed ends (exact SymPy numbers)."""

    lo: sp.Expr
    hi: sp.Expr
    lo_open: bool = True
    hi_open: bool = True

    @property
    def positive(self) -> bool:
        """Every value is > 0."""
        return bool(self.lo > 0) or (self.lo == 0 and self.lo_open)

    def as_interval(self) -> sp.Set:
        return sp.Interval(self.lo, self.hi, self.lo_open, self.hi_open)


REAL = Range(-sp.oo, sp.oo)
#: The registry's increasing functions: an interval maps to its ends' images.
INCREASING = increasing()


def _add(a: Range, b: Range) -> Range:
    return Range(a.lo + b.lo, a.hi + b.hi, a.lo_open or b.lo_open, a.hi_open or b.hi_open)


def _mul(a: Range, b: Range) -> Range:
    corners = []
    for x, x_open in ((a.lo, a.lo_open), (a.hi, a.hi_open)):
        for y, y_open in ((b.lo, b.lo_open), (b.hi, b.hi_open)):
            if x == 0 or y == 0:  # 0 times anything, even an infinite end, is 0
                # attained if the zero end is attained (the other factor takes some value)
                attained = (x == 0 and not x_open) or (y == 0 and not y_open)
                corners.append((sp.S.Zero, not attained))
            else:
                corners.append((x * y, x_open or y_open))
    lo = min(v for v, _ in corners)
    hi = max(v for v, _ in corners)
    # An end is attained if some corner with that value is (the product of closed ends).
    lo_open = all(o for v, o in corners if v == lo)
    hi_open = all(o for v, o in corners if v == hi)
    return Range(lo, hi, lo_open, hi_open)


def _power(a: Range, n: int) -> Range:
    if n % 2 or a.lo >= 0:  # increasing on the range
        return Range(a.lo**n, a.hi**n, a.lo_open, a.hi_open)
    if a.hi <= 0:  # decreasing: the ends swap
        return Range(a.hi**n, a.lo**n, a.hi_open, a.lo_open)
    # 0 is inside: it is the smallest value, reached; the larger end in size gives the top.
    top = max((-a.lo, a.lo_open), (a.hi, a.hi_open), key=lambda p: p[0])
    tops = [o for v, o in ((-a.lo, a.lo_open), (a.hi, a.hi_open)) if v == top[0]]
    return Range(sp.S.Zero, top[0] ** n, False, all(tops))


def _sum_of_terms(p: Range) -> Range:
    """Range of a sum of n >= 1 terms, each in ``p`` (one row of a matrix-vector product)."""
    lo, lo_open = (p.lo, p.lo_open) if p.lo >= 0 else (-sp.oo, True)
    hi, hi_open = (p.hi, p.hi_open) if p.hi <= 0 else (sp.oo, True)
    return Range(lo, hi, lo_open, hi_open)


def value_range(cell: Cell, e: sp.Expr, known: dict[sp.Symbol, Range]) -> Range:
    """Range of one right-hand side of ``cell``, entry by entry, read as vectors."""
    if e.is_Number:
        return Range(e, e, False, False)
    if e.is_Symbol:
        return known[e]
    if isinstance(e, sp.Add):
        out = value_range(cell, e.args[0], known)
        for a in e.args[1:]:
            out = _add(out, value_range(cell, a, known))
        return out
    if isinstance(e, sp.Mul):
        out = value_range(cell, e.args[0], known)
        for a in e.args[1:]:
            out = _mul(out, value_range(cell, a, known))
        has_weight = any(a.is_Symbol and cell.kind(a) == "weight" for a in e.args)
        return _sum_of_terms(out) if has_weight else out
    if isinstance(e, sp.Pow) and e.exp.is_Integer and e.exp > 0:
        return _power(value_range(cell, e.base, known), int(e.exp))
    if type(e) in INCREASING:
        fn = INCREASING[type(e)]
        z = value_range(cell, e.args[0], known)
        return Range(fn(z.lo), fn(z.hi), z.lo_open, z.hi_open)
    raise InputError(
        f"no range rule for {type(e).__name__} in {e}: register it (increasing) in "
        "derive/engine/functions.py or add a rule to value_range in derive/problems/lstm_cell.py"
    )


def ranges(cell: Cell) -> dict[sp.Symbol, Range]:
    """Range of every assigned variable, from inputs, previous states and parameters in R.

    Weights, biases, inputs and previous states may be any real numbers (an initial state
    is arbitrary), so everything a variable's range knows comes from its activations.
    """
    known = {s: REAL for s in (*cell.inputs, *cell.prev.values(), *cell.params)}
    for u, e in cell.assignments:
        known[u] = value_range(cell, e, known)
    return {u: known[u] for u in cell.variables}


# -- (d) the engine's Jacobian, ordered and applied for display --------------------------------
def _gate_rank(term, weights: list[str]) -> int:
    names = {m.name for m in term.atoms(sp.MatrixSymbol)}
    return min((weights.index(n) + 1 for n in names if n in weights), default=0)


def _ordered(jac: sp.MatrixExpr, weights: list[str]) -> sp.MatrixExpr:
    """The same sum with its terms in the gates' order (display only)."""
    if isinstance(jac, sp.MatMul):
        return sp.MatMul(*[_ordered(a, weights) for a in jac.args])
    if not isinstance(jac, sp.MatAdd):
        return jac
    terms = [_ordered(a, weights) for a in jac.args]
    return sp.MatAdd(*sorted(terms, key=lambda a: _gate_rank(a, weights)))


def apply_to(jac: sp.MatrixExpr, v: sp.MatrixExpr) -> sp.MatrixExpr:
    """``jac v`` with diagonal factors applied as Hadamard products (diag(d) v = d ∘ v)."""
    if isinstance(jac, sp.MatAdd):
        terms = [apply_to(a, v) for a in jac.args]
        flat = [p for t in terms for p in (t.args if isinstance(t, sp.MatAdd) else (t,))]
        return sp.MatAdd(*flat)
    if isinstance(jac, sp.MatMul):
        for a in reversed(jac.args):
            v = apply_to(a, v)
        return v
    if isinstance(jac, Diag):
        d = jac.args[0]
        return d if isinstance(v, sp.OneMatrix) else sp.HadamardProduct(d, v)
    if isinstance(jac, sp.Identity):
        return v
    return sp.MatMul(jac, v)


# -- the handout's formula, for display and numbers ----------------------------------------------
class SigmaPrime(sp.Function):
    """σ'(z), printed as the handout prints it."""

    nargs = 1

    def _latex(self, printer) -> str:
        return r"\sigma'\left(%s\right)" % printer._print(self.args[0])


class TanhPrime(sp.Function):
    """tanh'(z), printed as the handout prints it."""

    nargs = 1

    def _latex(self, printer) -> str:
        return r"\tanh'\left(%s\right)" % printer._print(self.args[0])


def _elementwise(fn: type, v: sp.MatrixExpr) -> ElementwiseApplyFunction:
    z = sp.Symbol("z")
    return ElementwiseApplyFunction(sp.Lambda(z, fn(z)), v)


# -- numbers: the derived expressions and an independent NumPy step ------------------------------
_np_sigma = ENGINE_NUMERIC[sigma]["numpy"]

NUMERIC = {
    **{f: forms["numpy"] for f, forms in ENGINE_NUMERIC.items()},
    SigmaPrime: lambda z: _np_sigma(z) * (1 - _np_sigma(z)),
    TanhPrime: lambda z: 1 - np.tanh(z) ** 2,
}


def evaluate(e, env: dict[str, np.ndarray]):
    """A derived matrix expression evaluated with NumPy; ``env`` maps symbol names to arrays."""
    return MatrixEvaluator(lambda m: env[m.name], NUMERIC, {n_h: env["n_h"]})(e)


@dataclass(frozen=True)
class StepData:
    """Weights W_k (n_h × (n_h + n_x), acting on [h, x]) and biases b_k of one LSTM."""

    weights: dict[str, np.ndarray]
    biases: dict[str, np.ndarray]

    @property
    def n_h(self) -> int:
        return self.weights["f"].shape[-2]

    def env(self) -> dict[str, Any]:
        """The engine's names for the split blocks W_kh, W_kx and the biases."""
        out: dict[str, Any] = {"n_h": self.n_h}
        for k in GATES:
            out[f"W_{k}h"] = self.weights[k][..., :, : self.n_h]
            out[f"W_{k}x"] = self.weights[k][..., :, self.n_h :]
            out[f"b_{k}"] = self.biases[k]
        return out


def random_step_data(
    rng: np.random.Generator, nh: int, nx: int, scale: float = 1.0, bias: dict | None = None
) -> StepData:
    """Weights uniform in [-scale, scale], biases normal (or the constants in ``bias``)."""
    weights = {k: rng.uniform(-scale, scale, (nh, nh + nx)) for k in GATES}
    biases = {k: rng.normal(size=(nh, 1)) for k in GATES}
    for k, v in (bias or {}).items():
        biases[k] = np.full((nh, 1), float(v))
    return StepData(weights, biases)


def lstm_step(data: StepData, c_prev, o_prev, x, sig=_np_sigma, tanh=np.tanh) -> dict[str, Any]:
    """One LSTM step in the LMU form: every gate reads the concatenation [h_{t-1}, x_t].

    Vectors are ``(..., n, 1)`` columns; leading axes are a batch.  Written without the
    engine, as an independent route for the checks.
    """
    h_prev = o_prev * tanh(c_prev)
    x = np.broadcast_to(x, (*h_prev.shape[:-2], *x.shape[-2:]))
    hx = np.concatenate([h_prev, x], axis=-2)
    z = {k: data.weights[k] @ hx + data.biases[k] for k in GATES}
    f, i, o = sig(z["f"]), sig(z["i"]), sig(z["o"])
    c_tilde = tanh(z["c"])
    c = f * c_prev + i * c_tilde
    return {"h_prev": h_prev, "f": f, "i": i, "o": o, "g": c_tilde, "c": c, "h": o * tanh(c)}


def step_env(data: StepData, c_prev, o_prev, x) -> dict[str, Any]:
    """Values of every matrix symbol of the derived results at one step."""
    s = lstm_step(data, c_prev, o_prev, x)
    env = data.env()
    env.update({f"{k}@0": s[k] for k in ("f", "i", "o", "g", "c", "h")})
    env.update({"c@-1": c_prev, "o@-1": o_prev, "x@0": x})
    env["delta"] = o_prev * (1 - np.tanh(c_prev) ** 2)
    return env


def jacobian_by_differences(data: StepData, c_prev, o_prev, x, method: str) -> np.ndarray:
    """dC_t/dC_{t-1} (rows C_t) from the NumPy step, all columns in one batch."""
    nh = data.n_h
    basis = np.eye(nh)[:, :, None]  # batch of unit columns e_j
    if method == "complex step":
        h = 1e-30
        c = lstm_step(data, c_prev + 1j * h * basis, o_prev, x)["c"]
        cols = np.imag(c) / h
    elif method == "central difference":
        h = 1e-6
        up = lstm_step(data, c_prev + h * basis, o_prev, x)["c"]
        down = lstm_step(data, c_prev - h * basis, o_prev, x)["c"]
        cols = (up - down) / (2 * h)
    else:
        raise ValueError(f"unknown method {method!r}")
    return cols[:, :, 0].T  # column j is dC_t/d(C_{t-1})_j


def sequence_jacobian(data: StepData, c0, o0, xs: list, k: int) -> np.ndarray:
    """dC_T/dC_k over a run of the NumPy step (every path, through h and o too), by complex step."""
    nh = data.n_h
    h = 1e-30
    c, o = c0.astype(complex), o0.astype(complex)
    for step, x in enumerate(xs):
        if step == k:
            c = c + 1j * h * np.eye(nh)[:, :, None]
        s = lstm_step(data, c, o, x)
        c, o = s["c"], s["o"]
    return (np.imag(c) / h)[:, :, 0].T


#: Cases of the Jacobian checks: (n_h, n_x, weight scale, seed).
JACOBIAN_CASES = ((1, 1, 1.0, 0), (3, 2, 1.0, 1), (5, 4, 1.0, 2), (8, 3, 2.0, 3), (4, 6, 0.5, 4))
#: Tolerances of the Jacobian checks (mixed relative error).
TOLERANCES = {"complex step": 1e-12, "central difference": 1e-6}
#: Biases that saturate f at 1 and i at 0 in the limit check (weights in [-0.5, 0.5]).
SATURATING = {"f": 30.0, "i": -30.0}
#: Gates there are within about 1e-10 of the limit, so T = 50 steps stay within 1e-6 of I.
LIMIT_TOLERANCE = 1e-6


def jacobian_errors(jac: sp.MatrixExpr, cases=JACOBIAN_CASES) -> dict[str, float]:
    """Worst mixed relative error of a Jacobian expression against each difference method."""
    worst = dict.fromkeys(TOLERANCES, 0.0)
    for nh, nx, scale, seed in cases:
        rng = np.random.default_rng(seed)
        data = random_step_data(rng, nh, nx, scale)
        c_prev = rng.normal(size=(nh, 1))
        o_prev = rng.uniform(0, 1, (nh, 1))
        x = rng.normal(size=(nx, 1))
        got = evaluate(jac, step_env(data, c_prev, o_prev, x))
        for method in TOLERANCES:
            ref = jacobian_by_differences(data, c_prev, o_prev, x, method)
            worst[method] = max(worst[method], rel_error(got, ref))
    return worst


def _describe(cases) -> str:
    sizes = ", ".join(f"({nh},{nx})" for nh, nx, _, _ in cases)
    scales = ",".join(sorted({f"{s:g}" for _, _, s, _ in cases}))
    seeds = ",".join(str(s) for *_, s in cases)
    return f"(n_h, n_x) in {sizes}; |W| up to {scales}; seeds {seeds}"


class LSTMCell(Problem):
    """LMU exercise 5-3: the gates, which quantities are positive, and dC_t/dC_{t-1}."""

    key = "lstm_cell"
    title = "LSTM cell: gates, signs and the cell-state gradient"
    #: Names the printer spells through the set's notation (``Problem.symbols``).
    SYMBOLS = (
        "J", "W_ch", "W_cx", "W_fh", "W_fx", "W_ih", "W_ix", "W_oh", "W_ox", "b_c", "b_f", "b_i",
        "b_o", "c", "delta", "f", "g", "h", "i", "j", "k", "o", "x",
    )

    @cached_property
    def cell(self) -> Cell:
        return lstm_step_cell()

    @cached_property
    def vc(self) -> VectorCell:
        return VectorCell(self.cell)

    def sym(self, name: str, k: int = 0) -> sp.MatrixSymbol:
        """A quantity of the step as a vector at step t+k (h_prev displays as h_{t-1})."""
        if name == "h_prev":
            return self.vc.sym(sp.Symbol("h"), k - 1)
        return self.vc.sym(sp.Symbol(name), k)

    # -- derivation ---------------------------------------------------------------------------
    @cached_property
    def ranges(self) -> dict[sp.Symbol, Range]:
        return ranges(self.cell)

    @cached_property
    def vjp(self) -> tuple[sp.MatrixExpr, sp.MatrixSymbol]:
        c, c_prev = sp.Symbol("c"), self.cell.prev[sp.Symbol("c")]
        return vjp_of(self.cell, c, c_prev)

    @cached_property
    def jacobian(self) -> sp.MatrixExpr:
        weights = [w.name for w in self.cell.weights]
        return _ordered(jacobian_from_vjp(*self.vjp), weights)

    @cached_property
    def limit(self) -> dict[sp.MatrixSymbol, sp.MatrixExpr]:
        """f_t -> 1, i_t -> 0 (J is polynomial in f_t and i_t, so the limit is a substitution)."""
        return {self.sym("f"): ONE, self.sym("i"): sp.ZeroMatrix(n_h, 1)}

    def derive(self) -> dict[str, Result]:
        c = sp.Function("c")
        jac = self.jacobian
        lim = jac.xreplace(self.limit).doit()
        k = sp.Symbol("k", integer=True)
        positive = [u.name for u in self.cell.variables if self.ranges[u].positive]
        return {
            "dC_dCprev": Result("dC_dCprev", jac, sp.Derivative(timed("c"), timed("c", -1))),
            "dC_dCk_f1_i0": Result(
                "dC_dCk_f1_i0",
                lim,
                sp.Derivative(timed("c"), c(k)),
                value="identity" if lim == sp.Identity(n_h) else sp.srepr(lim),
            ),
            "positive": Result(
                "positive",
                sp.Tuple(*[timed(n) for n in positive]),
                value=positive,
            ),
        }

    # -- verification -------------------------------------------------------------------------
    def verify(self) -> list[Check]:
        return [
            *self.jacobian_checks(self.results["dC_dCprev"].expr),
            self._row_sum_check(),
            *self._limit_checks(),
            *self._sign_checks(),
        ]

    def jacobian_checks(self, jac: sp.MatrixExpr) -> list[Check]:
        """``jac`` as dC_t/dC_{t-1} against complex step and central differences."""
        errors = jacobian_errors(jac)
        method = (
            "{}: one step of the cell in NumPy, the previous hidden state from the previous "
            "cell state"
        )
        return [
            Check("dC_dCprev", method.format(m), _describe(JACOBIAN_CASES), err, TOLERANCES[m])
            for m, err in errors.items()
        ]

    @cached_property
    def handout(self) -> dict[str, Any]:
        """The handout's vector formula as printed, J 1 derived, and how far apart they are."""
        delta = sp.MatrixSymbol("delta", n_h, 1)
        weight = {k: self.vc.sym(sp.Symbol(f"W_{k}h")) for k in GATES}
        printed = sp.MatAdd(
            sp.HadamardProduct(_elementwise(SigmaPrime, weight["f"] * delta), self.sym("c", -1)),
            self.sym("f"),
            sp.HadamardProduct(_elementwise(SigmaPrime, weight["i"] * delta), self.sym("g")),
            sp.HadamardProduct(self.sym("i"), _elementwise(TanhPrime, delta)),
        )
        # J 1 with delta for o_{t-1} ∘ tanh'(C_{t-1}), as the handout abbreviates it.
        d = sp.HadamardProduct(
            self.sym("o", -1), ONE - sp.HadamardPower(_elementwise(sp.tanh, self.sym("c", -1)), 2)
        )
        row_sums = apply_to(self.jacobian, ONE).xreplace({d: delta})
        worst = {"row_sums": 0.0, "printed": 0.0}
        for nh, nx, scale, seed in JACOBIAN_CASES:
            rng = np.random.default_rng(seed)
            data = random_step_data(rng, nh, nx, scale)
            c_prev, o_prev = rng.normal(size=(nh, 1)), rng.uniform(0, 1, (nh, 1))
            env = step_env(data, c_prev, o_prev, rng.normal(size=(nx, 1)))
            ref = jacobian_by_differences(data, c_prev, o_prev, env["x@0"], "complex step")
            ones = ref @ np.ones((nh, 1))
            worst["row_sums"] = max(worst["row_sums"], rel_error(evaluate(row_sums, env), ones))
            worst["printed"] = max(worst["printed"], rel_error(evaluate(printed, env), ones))
        return {
            "delta": delta,
            "delta_value": d,
            "printed": printed,
            "row_sums": row_sums,
            "row_sums_error": worst["row_sums"],
            "printed_error": worst["printed"],
        }

    def _row_sum_check(self) -> Check:
        return Check(
            "dC_dCprev",
            "J 1 (derived) against the row sums of the complex-step Jacobian",
            _describe(JACOBIAN_CASES),
            self.handout["row_sums_error"],
            1e-12,
        )

    @cached_property
    def saturated_run(self) -> dict[str, float]:
        """Errors of dC_T/dC_k against I on a run with f near 1 and i near 0."""
        nh, nx, steps = 4, 3, 50
        rng = np.random.default_rng(7)
        data = random_step_data(rng, nh, nx, 0.5, bias=SATURATING)
        c0, o0 = rng.normal(size=(nh, 1)), rng.uniform(0, 1, (nh, 1))
        xs = [rng.normal(size=(nx, 1)) for _ in range(steps)]
        eye = np.eye(nh)
        by_cs = max(
            float(np.max(np.abs(sequence_jacobian(data, c0, o0, xs, k) - eye)))
            for k in (0, steps // 2, steps - 1)
        )
        # The derived one-step J along the same run, multiplied over every step.
        product = eye
        gate_gap = 0.0
        c, o = c0, o0
        for x in xs:
            env = step_env(data, c, o, x)
            gate_gap = max(gate_gap, float(np.max(1 - env["f@0"])), float(np.max(env["i@0"])))
            product = evaluate(self.results["dC_dCprev"].expr, env) @ product
            c, o = env["c@0"], env["o@0"]
        return {
            "complex_step": by_cs,
            "derived_product": float(np.max(np.abs(product - eye))),
            "gate_gap": gate_gap,
            "steps": steps,
            "sizes": (
                f"T={steps}, n_h={nh}, n_x={nx}, b_f=30, b_i=-30, |W|<=0.5, seed 7; "
                f"max(1-f, i) = {gate_gap:.1e}"
            ),
        }

    def _limit_checks(self) -> list[Check]:
        lim = self.results["dC_dCk_f1_i0"].expr
        run = self.saturated_run
        return [
            Check(
                "dC_dCk_f1_i0",
                "exact: J at f_t = 1, i_t = 0 is the identity matrix",
                "symbolic n_h",
                0.0 if lim == sp.Identity(n_h) else 1.0,
                0.0,
            ),
            Check(
                "dC_dCk_f1_i0",
                "complex step through the whole run: max |dC_T/dC_k - I|, k = 0, T/2, T-1",
                run["sizes"],
                run["complex_step"],
                LIMIT_TOLERANCE,
            ),
            Check(
                "dC_dCk_f1_i0",
                "derived J multiplied over every step: max |prod J - I|",
                run["sizes"],
                run["derived_product"],
                LIMIT_TOLERANCE,
            ),
        ]

    # -- (b) sampling the signs ---------------------------------------------------------------
    @cached_property
    def samples(self) -> dict[str, dict[str, tuple[bool, str]]]:
        """Per number type and figure quantity: (smallest value seen > 0, that value in TeX)."""
        return {"float64": _sample_float(), "mpmath": _sample_mpmath()}

    def _sign_checks(self) -> list[Check]:
        decided = {u.name: self.ranges[u].positive for u in self.cell.variables}
        rows = []
        for kind, (method, sizes) in SAMPLING.items():
            lows = self.samples[kind]
            wrong = sum(lows[n][0] != decided[n] for n in FIGURE)
            rows.append(Check("positive", method, sizes, float(wrong), 0.0))
        return rows

    # -- template data ------------------------------------------------------------------------
    def jacobian_parts(self) -> dict[str, Any]:
        """J split as diag(f_t) + [paths into the gates] diag(dh_{t-1}/dC_{t-1}), for display."""
        direct = [a for a in self.jacobian.args if isinstance(a, Diag)]
        through = [a for a in self.jacobian.args if isinstance(a, sp.MatMul)]
        if len(direct) != 1 or len(through) != 1 or len(through[0].args) != 2:
            raise ValueError(f"unexpected structure of the Jacobian: {self.jacobian}")
        paths, right = through[0].args
        return {"direct": direct[0], "paths": list(paths.args), "through_h": right}

    def vjp_parts(self) -> dict[str, Any]:
        """The VJP split as ḡ ∘ f_t + [paths into the gates] ∘ (factors of dh_{t-1}/dC_{t-1})."""
        vjp, gbar = self.vjp
        direct = [a for a in vjp.args if gbar in a.args]
        through = [a for a in vjp.args if a not in direct]
        if len(direct) != 1 or len(through) != 1:
            raise ValueError(f"unexpected structure of the VJP: {vjp}")
        paths = [
            a
            for a in through[0].args
            if isinstance(a, sp.MatAdd) and gbar in a.atoms(sp.MatrixSymbol)
        ]
        factors = [a for a in through[0].args if a not in paths]
        weights = [w.name for w in self.cell.weights]
        return {
            "direct": direct[0],
            "paths": sorted(paths[0].args, key=lambda a: _gate_rank(a, weights)),
            "through_h": sp.HadamardProduct(*factors),
        }

    def context(self) -> dict[str, Any]:
        # The question's names and equations, and what only the solution writes.
        given = self.question_data()
        q = {
            **given["q"],
            "gbar": self.vjp[1],
            "cbar_prev": self.vc.bar(self.cell.prev[sp.Symbol("c")], 0),
            "identity": sp.Identity(n_h),
            "J": sp.MatrixSymbol("J", n_h, n_h),
            "J_ones": sp.MatMul(sp.MatrixSymbol("J", n_h, n_h), ONE),
        }
        q |= {f"b_{g}": self.vc.sym(sp.Symbol(f"b_{g}")) for g in GATES}
        equations = given["equations"]
        signs = []
        for n in FIGURE:
            r = self.ranges[sp.Symbol(n)]
            signs.append((q[n], r.as_interval(), r.positive, *self.samples_row(n)))
        return {
            **super().context(),
            "q": q,
            "equations": equations,
            "signs": signs,
            "sampling": SAMPLING,
            "vjp": self.vjp_parts(),
            "jac": self.jacobian_parts(),
            "limit_subs": list(self.limit.items()),
            "handout": self.handout,
            "run": self.saturated_run,
        }

    def question_data(self) -> dict[str, Any]:
        """The given step (its assignments as vectors), the quantities named, the limit of
        (c) and the handout's abbreviation delta of (d)."""
        c, j, k = sp.Function("c"), sp.Symbol("j", integer=True), sp.Symbol("k", integer=True)
        h_prev = self.sym("h_prev")
        show = {self.vc.sym(sp.Symbol("h_prev")): h_prev}
        lhs = {u: h_prev if u.name == "h_prev" else self.sym(u.name) for u in self.cell.variables}
        equations = [
            (lhs[u], self.vc.to_vec(e, 0).xreplace(show)) for u, e in self.cell.assignments
        ]
        q = {n: self.sym(n) for n in FIGURE}
        q |= {"c_prev": self.sym("c", -1), "o_prev": self.sym("o", -1), "h_prev": h_prev}
        q |= {"x": self.sym("x"), "C_t": timed("c"), "C_k": c(k)}
        for g in GATES:
            q[f"W_{g}h"] = self.vc.sym(sp.Symbol(f"W_{g}h"))
            q[f"W_{g}x"] = self.vc.sym(sp.Symbol(f"W_{g}x"))
        return {
            "equations": equations,
            "q": q,
            "figure": [q[n] for n in FIGURE],
            "limit": list(self.limit.items()),
            "chain": sp.Product(sp.Derivative(c(j), c(j - 1)), (j, k + 1, t)),
            "delta": sp.HadamardProduct(q["o_prev"], _elementwise(TanhPrime, q["c_prev"])),
        }

    def samples_row(self, name: str) -> tuple[str, str]:
        """The smallest sampled value of ``name`` in float64 and in mpmath, as LaTeX."""
        return self.samples["float64"][name][1], self.samples["mpmath"][name][1]


# -- sampling ---------------------------------------------------------------------------------
SAMPLING = {
    "float64": (
        "sampling in float64: decisions against the smallest value seen",
        "20000 random steps, n_h=4, n_x=3, weights, biases, inputs and states scaled by 1 or 5",
    ),
    "mpmath": (
        "sampling in mpmath (30 digits): decisions against the smallest value seen",
        "160 random steps, n_h=3, n_x=2, scaled by 1, 10, 100 or 1000",
    ),
}


def _random_batch(rng: np.random.Generator, batch: int, nh: int, nx: int, scale: float):
    """Per-sample weights, biases, inputs and states, all scaled by ``scale``."""
    data = StepData(
        {k: scale * rng.uniform(-1, 1, (batch, nh, nh + nx)) for k in GATES},
        {k: scale * rng.normal(size=(batch, nh, 1)) for k in GATES},
    )
    c_prev = scale * rng.normal(size=(batch, nh, 1))
    o_prev = rng.uniform(0, 1, (batch, nh, 1))
    x = scale * rng.normal(size=(batch, nx, 1))
    return data, c_prev, o_prev, x


def _log_sigma_exp(z):
    # exp(log σ(z)): relative accuracy down to σ ~ 1e-308, where 0.5 (1 + tanh(z/2))
    # already rounds to 0 below z ~ -37 and would fake a zero gate.
    return np.exp(-np.logaddexp(0.0, -z))


def _sample_float() -> dict[str, Any]:
    rng = np.random.default_rng(11)
    low = dict.fromkeys(FIGURE, math.inf)
    for scale in (1.0, 5.0):
        s = lstm_step(*_random_batch(rng, 10000, 4, 3, scale), sig=_log_sigma_exp)
        for n in FIGURE:
            low[n] = min(low[n], float(np.min(s[n])))
    return {n: (v > 0, _sci(mpmath.mpf(v))) for n, v in low.items()}


def _sample_mpmath() -> dict[str, float]:
    # Large magnitudes push σ below float64's smallest number; mpmath's exponent does not
    # underflow, so a gate's sign is measured, not rounded to 0.
    rng = np.random.default_rng(12)
    to_mp = np.vectorize(mpmath.mpf, otypes=[object])
    sig = np.vectorize(lambda z: 1 / (1 + mpmath.exp(-z)), otypes=[object])
    tanh = np.vectorize(mpmath.tanh, otypes=[object])
    low = {n: mpmath.inf for n in FIGURE}
    with mpmath.workdps(30):
        for scale in (1.0, 10.0, 100.0, 1000.0):
            data, c_prev, o_prev, x = _random_batch(rng, 40, 3, 2, scale)
            mp = StepData(
                {k: to_mp(v) for k, v in data.weights.items()},
                {k: to_mp(v) for k, v in data.biases.items()},
            )
            s = lstm_step(mp, to_mp(c_prev), to_mp(o_prev), to_mp(x), sig=sig, tanh=tanh)
            for n in FIGURE:
                low[n] = min(low[n], min(s[n].ravel()))
    return {n: (v > 0, _sci(v)) for n, v in low.items()}


def _sci(v) -> str:
    """An mpmath number in LaTeX, 3 digits, with an exponent beyond float64's range."""
    text = mpmath.nstr(v, 3, min_fixed=-3, max_fixed=4)
    mantissa, _, exponent = text.partition("e")
    return r"%s\times 10^{%d}" % (mantissa, int(exponent)) if exponent else mantissa
