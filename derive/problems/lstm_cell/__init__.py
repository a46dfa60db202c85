"""One LSTM step in the LMU notation (exercise 5-3): gates, signs, and dC_t/dC_{t-1}.

The step, with W_f [h_{t-1}, x_t] split into W_fh h_{t-1} + W_fx x_t (likewise for i, o, c):

    h_{t-1} = o_{t-1} ∘ tanh(C_{t-1})
    f_t = σ(W_fh h_{t-1} + W_fx x_t + b_f)      i_t = σ(W_ih h_{t-1} + W_ix x_t + b_i)
    o_t = σ(W_oh h_{t-1} + W_ox x_t + b_o)      C̃_t = tanh(W_ch h_{t-1} + W_cx x_t + b_c)
    C_t = f_t ∘ C_{t-1} + i_t ∘ C̃_t             h_t = o_t ∘ tanh(C_t)

Writing h_{t-1} as a function of C_{t-1} (the cell carries C and o) makes every path from
C_{t-1} to C_t part of one cell (C̃ is ``g`` and C ``c``; a set's notation spells them).

* (b) Which quantities are always positive is decided by interval arithmetic over the
  cell's assignments (``derive.engine.intervals``: σ maps onto (0, 1), tanh onto (-1, 1)), then
  sampled; the sign table (ranges, decisions, smallest values seen) is a result.
* (d) The vector-Jacobian product of C_t by C_{t-1} comes from ``VectorCell.vjp`` (a
  reverse sweep over the assignments, ``derive.engine.jacobian.vjp_of``); it is linear in
  the cotangent, and each of its terms ``Aᵀ(ḡ ∘ d)`` is read as the Jacobian ``diag(d) A``
  (``jacobian_from_vjp``).
* (c) The limit f_t = 1, i_t = 0 of that Jacobian is the identity, so dC_t/dC_k = I.

Claims: complex step and central differences of a NumPy step on [h, x] sharing no code
with the engine (``derive.instances.lstm_step``), saturated runs, sampled signs.  Result
keys are documented in ``docs.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache, cached_property
from typing import Any, ClassVar

import sympy as sp

from derive.engine import matrix_terms as terms
from derive.engine.cell import Cell, t, timed
from derive.engine.functions import sigma
from derive.engine.intervals import Range, ranges
from derive.engine.jacobian import jacobian_from_vjp, vjp_of
from derive.engine.matrix_terms import SigmaPrime, TanhPrime, elementwise
from derive.engine.path_sums import chain_symbols, path_counts, path_factors, path_sum
from derive.engine.vector import ONE, VectorCell, n_h
from derive.instances import lstm_step as reference
from derive.instances.chain_paths import enumerated_counts, unrolled_gradient
from derive.params import Kind, Quote
from derive.problems.base import Problem, Result, json_float, json_rows
from derive.problems.lstm_cell.docs import CLAIM_NAMES, RESULTS
from derive.verify import Claim
from derive.verify.routes import TOLERANCE

#: LMU's gate letters (the candidate C̃ is the engine's ``g``) and the quantities next to
#: the handout's figure, as the reference step names them.
GATES, FIGURE = reference.GATES, reference.FIGURE
#: The number types the signs are sampled in, in the sign table's column order.
SAMPLED = ("float64", "mpmath")


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


#: Steps of the chain whose paths are counted, and the chains the double sum is checked on.
PATH_STEPS, PATH_RANGE = 3, range(1, 7)
#: Gates of the saturated run are within ~1e-10 of the limit: T = 50 steps stay near I.
LIMIT_TOLERANCE = 1e-6
#: The handout's formula as printed counts as wrong when it is off by more than this.
WRONG = 0.1
#: What the Jacobian's routes perturb, for the evidence.
STEP_ROUTE = "one float64 step of the cell, the previous hidden state from the previous cell"
#: Routes whose measured errors the prose quotes (looked up in the evidence by these).
ROW_SUMS = "J 1 (derived) against the row sums of the complex-step Jacobian"
RUN_COMPLEX_STEP = "complex step through the whole run from k = 0, T/2, T - 1: largest entry off I"
RUN_PRODUCT = "derived J multiplied over every step: largest entry off I"
#: 1 - f of a saturated gate cancels in float64 (spacing 1e-16 next to a gap near 1e-12):
#: the printed gap (two digits) is checked against 30 digits to this relative error.
GAP_TOLERANCE = 1e-3


class LSTMCell(Problem):
    """LMU exercise 5-3: the gates, which quantities are positive, and dC_t/dC_{t-1}."""

    key = "lstm_cell"
    title = "LSTM cell: gates, signs and the cell-state gradient"
    MAIN = "dC_dCk_f1_i0"
    RESULTS, CLAIM_NAMES = RESULTS, CLAIM_NAMES
    #: Names the printer spells through the set's notation (``Problem.symbols``).
    SYMBOLS = tuple("J L W W_ch W_cx W_fh W_fx W_ih W_ix W_oh W_ox b_c b_f b_i b_o c delta f g "
                    "h i j k o x".split())
    #: The problem's heading and its four parts, as a set's handout numbers them.
    LABELS = ("title", "gates", "positive", "limit", "recursive")
    #: What an original may print, quoted by a set: the words before its (lost) figure of
    #: the step, its gradient as a double sum, its product for (c), its formula for (d).
    ORIGINAL: ClassVar[dict[str, Kind]] = {
        "figure": Quote("the original's words introducing the step's equations"),
        "gradient": Quote("the original's double sum for dL/dW over the cell states"),
        "chain": Quote("the original's product for dC_t/dC_k"),
        "recursive": Quote("the original's formula for dC_t/dC_(t-1)"),
    }

    @cached_property
    def cell(self) -> Cell:
        return lstm_step_cell()

    def written_order(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The step as the handout writes it: h_{t-1} from o_{t-1} and C_{t-1}, each gate
        from W_kh h_{t-1} + W_kx x_t + b_k, then C_t = f C_{t-1} + i g and h_t."""
        written = ["o", "c"]
        for k in GATES:
            written += [f"W_{k}h", "h", f"W_{k}x", "x", f"b_{k}"]
        written += [u.name for u in self.cell.variables]
        assigned = tuple(u.name for u in self.cell.variables)
        return tuple(dict.fromkeys(written)), assigned

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
        return {
            "dC_dCprev": Result("dC_dCprev", jac, sp.Derivative(timed("c"), timed("c", -1))),
            "J_ones": Result("J_ones", self.handout["row_sums"], ones),
            "dC_dCk_f1_i0": Result("dC_dCk_f1_i0", lim, sp.Derivative(timed("c"), c(k)),
                                   value=lim == sp.Identity(n_h)),
            "positive": Result("positive", sp.Tuple(*[timed(n) for n in positive]),
                               value=positive),
            **self._measured_results(),
            **self._path_results(),
        }

    def _path_results(self) -> dict[str, Result]:
        """dL/dW along the cell states as a double sum over (t, k), and how often the sum
        with the total dL/dC_t in front holds the path from step k into L_s (row s, col k)."""
        k, end = sp.Symbol("k", integer=True), sp.Symbol("T", integer=True)
        double = sp.Sum(sp.Mul(*path_factors()), (k, 1, t), (t, 1, end))
        counts = path_counts(PATH_STEPS)
        return {
            "cell_gradient_sum": Result("cell_gradient_sum", double,
                                        sp.Derivative(sp.Symbol("L"), sp.Symbol("W"))),
            "path_counts": Result("path_counts", counts, value=json_rows(counts)),
        }

    def _measured_results(self) -> dict[str, Result]:
        """What the key quotes from numeric runs: the sign table (each figure quantity's
        range, whether it is always positive, its smallest sampled values), the saturated
        run's gate gap, and how far off the handout's formula as printed is."""
        table = {}
        for n in FIGURE:
            r, lows = self.ranges[sp.Symbol(n)], [self.samples[k][n][1] for k in SAMPLED]
            table[n] = (r.as_interval(), sp.true if r.positive else sp.false,
                        *(sp.Float(v, 30) for v in lows))
        value = {n: {"range": row[0], "positive": bool(row[1])}
                 | {f"smallest_{k}": json_float(v) for k, v in zip(SAMPLED, row[2:], strict=True)}
                 for n, row in table.items()}
        gap, printed = reference.gate_gap(), self.row_sum_errors["printed"]
        return {
            "sign_table": Result("sign_table", sp.Tuple(*(sp.Tuple(*r) for r in table.values())),
                                 sp.Tuple(*[timed(n) for n in FIGURE]), value=value),
            "gate_gap": Result("gate_gap", sp.Float(gap), value=gap),
            "printed_formula_error": Result("printed_formula_error", sp.Float(printed),
                                            value=printed),
        }

    # -- claims -------------------------------------------------------------------------------
    def claims(self) -> Iterator[Claim]:
        yield from self.jacobian_claims(self.results["dC_dCprev"].expr)
        yield from self._row_sum_claims()
        yield from self._limit_claims()
        yield from self._sign_claims()
        yield from self._path_claims()

    def _path_claims(self) -> Iterator[Claim]:
        """The double sum against the unrolled chain; the counts against an enumeration."""
        def wrong_sums() -> float:
            sums = (path_sum(n) - unrolled_gradient(*chain_symbols(n)) for n in PATH_RANGE)
            return float(sum(sp.expand(d) != 0 for d in sums))

        counts = sp.Matrix(enumerated_counts(PATH_STEPS))
        wrong = float(counts != self.results["path_counts"].expr)
        yield Claim("cell_gradient_sum", "exact: the unrolled chain C_t = a_t C_(t-1) + b_t w "
                    "differentiated", f"T = 1..{PATH_RANGE[-1]}", TOLERANCE["exact"], wrong_sums)
        yield Claim("path_counts", "exact: the pairs (t, k) and losses s >= t enumerated",
                    f"T = {PATH_STEPS}", TOLERANCE["exact"], lambda: wrong)

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
        yield Claim("J_ones", ROW_SUMS, sizes, 1e-12, lambda: errors["row_sums"])
        # The key says the handout's formula is wrong: count the cases where it is not.
        yield Claim("J_ones", f"exact: the formula with sigma'(W_fh delta) off by more than "
                    f"{WRONG} in every case", sizes, TOLERANCE["exact"],
                    lambda: float(errors["printed_least"] <= WRONG), detects=True)
        yield Claim("printed_formula_error", "central difference: the same error against the "
                    "row sums of the central-difference Jacobian", sizes,
                    TOLERANCE["central difference"], self._printed_error_difference)

    def _printed_error_difference(self) -> float:
        """Relative difference of the printed formula's error by the two Jacobians."""
        by_cd = reference.row_sum_errors(self.handout["row_sums"], self.handout["printed"],
                                         method="central difference")["printed"]
        stated = self.results["printed_formula_error"].value
        return abs(by_cd - stated) / stated

    @cached_property
    def saturated_run(self) -> dict[str, Any]:
        """Errors of dC_T/dC_k against I on a run with f near 1 and i near 0."""
        return reference.saturated_run(self.results["dC_dCprev"].expr)

    def _limit_claims(self) -> Iterator[Claim]:
        lim = self.results["dC_dCk_f1_i0"].expr
        yield Claim("dC_dCk_f1_i0", "exact: J with f = 1 and i = 0 is the identity matrix",
                    "any number of hidden units", TOLERANCE["exact"],
                    lambda: 0.0 if lim == sp.Identity(n_h) else 1.0)
        run = self.saturated_run
        yield Claim("dC_dCk_f1_i0", RUN_COMPLEX_STEP, run["sizes"], LIMIT_TOLERANCE,
                    lambda: run["complex_step"])
        yield Claim("dC_dCk_f1_i0", RUN_PRODUCT, run["sizes"], LIMIT_TOLERANCE,
                    lambda: run["derived_product"])
        gap = self.results["gate_gap"].value
        yield Claim("gate_gap", "30-digit arithmetic: largest gap of f below 1 and of i above 0",
                    reference.SATURATED, GAP_TOLERANCE,
                    lambda: float(abs(reference.gate_gap(digits=30) - gap) / gap))

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
        # The table's minima: each inside its quantity's range, ends included (float64
        # rounds tanh of a large argument to exactly -1; 30 digits round too).
        table = self.results["sign_table"].expr
        for col, kind in enumerate(SAMPLED, 2):
            method, sizes = reference.SAMPLING[kind]
            outside = sum(not self.ranges[sp.Symbol(n)].reaches(row[col])
                          for n, row in zip(FIGURE, table, strict=True))
            yield Claim("sign_table", method.split(":")[0] + ": each smallest value seen lies "
                        "in its range, ends included", sizes, TOLERANCE["exact"],
                        lambda w=outside: float(w))

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
        r = self.results
        return {
            **super().context(),
            "q": q,
            "equations": given["equations"],
            "signs": [(q[n], row[0], bool(row[1]), *row[2:])
                      for n, row in zip(FIGURE, r["sign_table"].expr, strict=True)],
            "vjp": terms.vjp_parts(*self.vjp, self.weights),
            "jac": terms.jacobian_parts(self.jacobian),
            "limit_subs": list(self.limit.items()),
            "path_factors": path_factors(),
            "path_steps": PATH_STEPS,
            # The evidence, in the prose: measured errors as the evidence table has them.
            "handout": {**self.handout, "row_sums_error": self._quoted("J_ones", ROW_SUMS),
                        "printed_error": r["printed_formula_error"].value},
            "run": {"steps": self.stated()["run_steps"], "gate_gap": r["gate_gap"].value,
                    "complex_step": self._quoted("dC_dCk_f1_i0", RUN_COMPLEX_STEP),
                    "derived_product": self._quoted("dC_dCk_f1_i0", RUN_PRODUCT)},
            "sample_digits": self.stated()["sample_digits"],
        }

    def stated(self) -> dict[str, Any]:
        """The saturated run's number of steps, the sampling's digits."""
        return {"run_steps": reference.SATURATED_STEPS, "sample_digits": reference.SAMPLE_DPS}

    def _quoted(self, key: str, method: str) -> float:
        """The measured error of the evidence row of ``key`` by ``method``."""
        return next(c.max_rel_error for c in self.checks if (c.claim, c.method) == (key, method))
