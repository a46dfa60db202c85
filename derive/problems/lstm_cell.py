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

Claims: complex step and central differences of a NumPy step on [h, x] that shares no code
with the engine (``derive.instances.lstm_step``), saturated runs, sampled signs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any

import mpmath
import sympy as sp

from derive import matrix_terms as terms
from derive.engine.cell import Cell, t, timed
from derive.engine.functions import increasing, sigma
from derive.engine.jacobian import jacobian_from_vjp, vjp_of
from derive.engine.vector import ONE, VectorCell, n_h
from derive.errors import InputError
from derive.instances import lstm_step as reference
from derive.matrix_terms import SigmaPrime, TanhPrime, elementwise
from derive.problems.base import Problem, Result
from derive.verify import Claim
from derive.verify.routes import TOLERANCE

#: LMU's gate letters (the candidate C̃ is the engine's ``g``) and the quantities next to
#: the handout's figure, as the reference step names them.
GATES, FIGURE = reference.GATES, reference.FIGURE


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


#: Gates of the saturated run are within ~1e-10 of the limit: T = 50 steps stay near I.
LIMIT_TOLERANCE = 1e-6
#: The handout's formula as printed counts as wrong when it is off by more than this.
WRONG = 0.1
#: What the Jacobian's routes perturb, for the evidence.
STEP_ROUTE = "one step of the cell in NumPy, the previous hidden state from the previous cell state"


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
        return terms.ordered(jacobian_from_vjp(*self.vjp), self.weights)

    @property
    def weights(self) -> list[str]:
        return [w.name for w in self.cell.weights]

    @cached_property
    def limit(self) -> dict[sp.MatrixSymbol, sp.MatrixExpr]:
        """f_t -> 1, i_t -> 0 (J is polynomial in f_t and i_t, so the limit is a substitution)."""
        return {self.sym("f"): ONE, self.sym("i"): sp.ZeroMatrix(n_h, 1)}

    @cached_property
    def handout(self) -> dict[str, Any]:
        """The handout's vector formula as printed, and J 1 derived in its abbreviation."""
        delta = sp.MatrixSymbol("delta", n_h, 1)
        weight = {k: self.vc.sym(sp.Symbol(f"W_{k}h")) for k in GATES}
        printed = sp.MatAdd(
            sp.HadamardProduct(elementwise(SigmaPrime, weight["f"] * delta), self.sym("c", -1)),
            self.sym("f"),
            sp.HadamardProduct(elementwise(SigmaPrime, weight["i"] * delta), self.sym("g")),
            sp.HadamardProduct(self.sym("i"), elementwise(TanhPrime, delta)),
        )
        # J 1 with delta for o_{t-1} ∘ tanh'(C_{t-1}), as the handout abbreviates it.
        d = sp.HadamardProduct(
            self.sym("o", -1), ONE - sp.HadamardPower(elementwise(sp.tanh, self.sym("c", -1)), 2)
        )
        row_sums = terms.apply_to(self.jacobian, ONE).xreplace({d: delta})
        return {"delta": delta, "delta_value": d, "printed": printed, "row_sums": row_sums}

    def derive(self) -> dict[str, Result]:
        c, k = sp.Function("c"), sp.Symbol("k", integer=True)
        jac = self.jacobian
        lim = jac.xreplace(self.limit).doit()
        positive = [u.name for u in self.cell.variables if self.ranges[u].positive]
        ones = sp.MatMul(sp.MatrixSymbol("J", n_h, n_h), ONE)
        identity = "identity" if lim == sp.Identity(n_h) else sp.srepr(lim)
        return {
            "dC_dCprev": Result("dC_dCprev", jac, sp.Derivative(timed("c"), timed("c", -1))),
            "J_ones": Result("J_ones", self.handout["row_sums"], ones),
            "dC_dCk_f1_i0": Result("dC_dCk_f1_i0", lim, sp.Derivative(timed("c"), c(k)),
                                   value=identity),
            "positive": Result("positive", sp.Tuple(*[timed(n) for n in positive]),
                               value=positive),
        }

    # -- claims -------------------------------------------------------------------------------
    def claims(self) -> Iterator[Claim]:
        yield from self.jacobian_claims(self.results["dC_dCprev"].expr)
        yield from self._row_sum_claims()
        yield from self._limit_claims()
        yield from self._sign_claims()

    def jacobian_claims(self, jac: sp.MatrixExpr) -> list[Claim]:
        """``jac`` as dC_t/dC_{t-1} against each route on the NumPy step (one shared run)."""
        worst = cache(lambda: reference.jacobian_errors(jac))
        sizes = reference.describe(reference.JACOBIAN_CASES)
        return [
            Claim("dC_dCprev", f"{m}: {STEP_ROUTE}", sizes, TOLERANCE[m], lambda m=m: worst()[m])
            for m in reference.ROUTES
        ]

    @cached_property
    def row_sum_errors(self) -> dict[str, float]:
        """J 1 and the handout's formula as printed against the complex-step row sums."""
        return reference.row_sum_errors(self.handout["row_sums"], self.handout["printed"])

    def _row_sum_claims(self) -> Iterator[Claim]:
        sizes, errors = reference.describe(reference.JACOBIAN_CASES), self.row_sum_errors
        yield Claim("J_ones", "J 1 (derived) against the row sums of the complex-step Jacobian",
                    sizes, 1e-12, lambda: errors["row_sums"])
        # The key says the handout's formula is wrong: count the cases where it is not.
        yield Claim("J_ones", f"exact: the handout's formula off by more than {WRONG} in "
                    "every case", sizes, TOLERANCE["exact"],
                    lambda: float(errors["printed_least"] <= WRONG))

    @cached_property
    def saturated_run(self) -> dict[str, Any]:
        """Errors of dC_T/dC_k against I on a run with f near 1 and i near 0."""
        return reference.saturated_run(self.results["dC_dCprev"].expr)

    def _limit_claims(self) -> Iterator[Claim]:
        lim = self.results["dC_dCk_f1_i0"].expr
        yield Claim("dC_dCk_f1_i0", "exact: J at f_t = 1, i_t = 0 is the identity matrix",
                    "symbolic n_h", TOLERANCE["exact"],
                    lambda: 0.0 if lim == sp.Identity(n_h) else 1.0)
        run = self.saturated_run
        yield Claim("dC_dCk_f1_i0", "complex step through the whole run: max |dC_T/dC_k - I|, "
                    "k = 0, T/2, T-1", run["sizes"], LIMIT_TOLERANCE, lambda: run["complex_step"])
        yield Claim("dC_dCk_f1_i0", "derived J multiplied over every step: max |prod J - I|",
                    run["sizes"], LIMIT_TOLERANCE, lambda: run["derived_product"])

    @cached_property
    def samples(self) -> dict[str, dict[str, tuple[bool, Any]]]:
        """Per number type and figure quantity: (smallest value seen > 0, that value)."""
        runs = {"float64": reference.sample_float, "mpmath": reference.sample_mpmath}
        return {kind: {n: (v > 0, v) for n, v in run().items()} for kind, run in runs.items()}

    def _sign_claims(self) -> Iterator[Claim]:
        decided = {u.name: self.ranges[u].positive for u in self.cell.variables}
        for kind, (method, sizes) in reference.SAMPLING.items():
            wrong = sum(self.samples[kind][n][0] != decided[n] for n in FIGURE)
            yield Claim("positive", method, sizes, TOLERANCE["exact"], lambda w=wrong: float(w))

    # -- the question, and what the template formats ------------------------------------------
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
            "delta": sp.HadamardProduct(q["o_prev"], elementwise(TanhPrime, q["c_prev"])),
        }

    def context(self) -> dict[str, Any]:
        given = self.question_data()
        # The question's names and equations, and what only the solution writes.
        q = {
            **given["q"],
            "gbar": self.vjp[1],
            "cbar_prev": self.vc.bar(self.cell.prev[sp.Symbol("c")], 0),
            "identity": sp.Identity(n_h),
            "J": sp.MatrixSymbol("J", n_h, n_h),
            "J_ones": self.results["J_ones"].lhs,
        }
        q |= {f"b_{g}": self.vc.sym(sp.Symbol(f"b_{g}")) for g in GATES}
        errors = self.row_sum_errors
        return {
            **super().context(),
            "q": q,
            "equations": given["equations"],
            "signs": [self._sign_row(q[n], n) for n in FIGURE],
            "sampling": reference.SAMPLING,
            "vjp": terms.vjp_parts(*self.vjp, self.weights),
            "jac": terms.jacobian_parts(self.jacobian),
            "limit_subs": list(self.limit.items()),
            "handout": {**self.handout, "row_sums_error": errors["row_sums"],
                        "printed_error": errors["printed"]},  # the evidence, in the prose
            "run": self.saturated_run,
        }

    def _sign_row(self, sym: sp.MatrixSymbol, name: str) -> tuple:
        r = self.ranges[sp.Symbol(name)]
        lows = (_sci(self.samples[kind][name][1]) for kind in ("float64", "mpmath"))
        return (sym, r.as_interval(), r.positive, *lows)


def _sci(v) -> str:
    """An mpmath number in LaTeX, 3 digits, with an exponent beyond float64's range."""
    text = mpmath.nstr(v, 3, min_fixed=-3, max_fixed=4)
    mantissa, _, exponent = text.partition("e")
    return r"%s\times 10^{%d}" % (mantissa, int(exponent)) if exponent else mantissa
