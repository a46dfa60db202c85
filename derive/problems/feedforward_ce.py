"""The Hessian and log-sum-exp parts a network with a softmax cross-entropy may ask for
(``hessian = "S"`` in its model): results, claims and what the key says of them.

The Hessian in the scores is the rule of ``derive.feedforward.second``; it is checked
exactly by SymPy (the definition differentiated twice, C = 2..5), against a complex step
of the key's own gradient formula at random scores, and for the two properties the key
states (no negative eigenvalue; the ones vector in its null space).  The shift identity is
proved by SymPy and its float64 value compared with 50-digit mpmath where the unshifted
sum overflows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import sympy as sp

from derive.feedforward import numeric, second
from derive.feedforward.graph import softmax_symbols
from derive.problems.base import Result
from derive.verify import Claim, rel_error, routes
from derive.verify.gradcheck import METHODS

#: The classes SymPy checks the Hessian rule for, exactly.
EXACT_CLASSES = (2, 3, 4, 5)
#: Rows of scores the shift is measured on: large, very negative, and ordinary.
SHIFT_ROWS = ((1000.0, 1001.0, 1002.0), (-1000.0, -999.0, -998.0), (0.5, -0.3, 2.0))
SEEDS = (31, 32, 33)


class Fixed(sp.Symbol):
    """A left-hand side a key writes as given (∂²L/∂s_i∂s_iᵀ)."""

    def _latex(self, printer) -> str:
        return self.name


def results(problem) -> dict[str, Result]:
    """The Hessian in the scores' rows and the shift identity, as results."""
    scores = problem.GRAPH.nodes[problem.HESSIAN]
    rows, classes = scores.shape
    rule = problem._show(second.hessian_rule(rows, classes))
    lhs = Fixed(r"\frac{\partial^{2} L}{\partial s_{i} \partial s_{i}^{\top}}")
    j, m, sc = sp.Symbol("j", integer=True), sp.Symbol("m"), sp.IndexedBase("s")
    total = lambda e: sp.log(sp.Sum(sp.exp(e), (j, 1, classes)))  # noqa: E731
    shift = sp.Eq(total(sc[j]), m + total(sp.Add(sc[j], -m, evaluate=False)), evaluate=False)
    return {"hessian": Result("hessian", rule, lhs),
            "lse_shift": Result("lse_shift", shift, Fixed(r"\log \sum_{j} e^{s_{j}}"))}


def claims(problem) -> Iterator[Claim]:
    """Exact, numeric and property claims of the two results."""
    text = "C = " + ", ".join(map(str, EXACT_CLASSES))
    bad = sum(second.check_rule(c) for c in EXACT_CLASSES)
    yield Claim.measured("hessian", "exact: the definition differentiated twice",
                         text, bad, 0)
    sizes = problem.check_sizes()
    where = ", ".join(f"{k} = {v}" for k, v in sizes.items()) + \
        f"; seeds {', '.join(map(str, SEEDS))}"
    step, props = _numeric(problem, sizes)
    yield Claim.measured("hessian", "complex step on the gradient formula, all rows", where, step,
                         METHODS["complex step"])
    yield Claim.measured("hessian", "no negative eigenvalue, and H 1 = 0 (relative)", where, props,
                         1e-14)
    yield Claim.measured("lse_shift", "exact: simplified for real s and m", "C = 3",
                         second.lse_identity(3), 0)
    worst = max(rel_error(second.lse_shifted(np.array(r)), second.lse_reference(np.array(r)))
                for r in SHIFT_ROWS)
    yield Claim.measured("lse_shift", "float64, shifted, vs 50-digit arithmetic",
                         "3 rows, entries up to 1000 in size", worst, METHODS["float64 vs mpmath"])


def _numeric(problem, sizes: dict[str, int]) -> tuple[float, float]:
    """The worst error of the rule against a complex step of the key's gradient formula
    S̄: moving s_ik gives column k of row i's block in row i of S̄, and nothing in the
    other rows (the blocks of two rows are zero, as the key says); and the worst of
    −λ_min/λ_max and |H 1|/|H|, over rows and seeds."""
    g, name = problem.GRAPH, problem.HESSIAN
    formula, scores = problem.adjoints[name], g.nodes[name]
    hessian = second.hessian_rule(*scores.shape)
    worst_step = worst_props = 0.0
    for seed in SEEDS:
        given = problem.data(sizes, np.random.default_rng(seed))
        p = numeric.environment(g, given)[softmax_symbols(scores)[0].name]
        n, c = p.shape
        for i in range(n):
            rule = numeric.evaluate(hessian, {"p_i": p[i][:, None], **sizes})
            got, want = np.zeros((c, n, c)), np.zeros((c, n, c))
            for k in range(c):
                def probe(d, i=i, k=k, n=n, c=c, given=given):
                    unit = np.zeros((n, c))
                    unit[i, k] = 1.0
                    return numeric.evaluate(formula,
                                            numeric.environment(g, given, {name: d * unit}))
                got[k], want[k, i] = routes.complex_step(probe), rule[:, k]
            worst_step = max(worst_step, rel_error(got, want))
            eig = np.linalg.eigvalsh(rule)
            null = np.max(np.abs(rule @ np.ones(c))) / np.max(np.abs(rule))
            worst_props = max(worst_props, max(0.0, -eig[0]) / eig[-1], null)
    return worst_step, worst_props


def context(problem) -> dict[str, Any]:
    """What the key prints of the shift: the rows measured and float64's unshifted
    values on them (the overflow the shift avoids)."""
    rows = [np.array(r) for r in SHIFT_ROWS[:2]]
    return {"shift_rows": [(r.tolist(), second.lse_naive(r), float(second.lse_reference(r)))
                           for r in rows]}
