"""Gradients through a chain of states as sums over paths, and what a double sum counts.

A chain of states C_1, ..., C_T, each from the one before and from a weight w:

    C_t = a_t C_{t-1} + b_t w,        L = sum_t L_t,   L_t depending on C_t alone,

with a_t = ∂C_t/∂C_{t-1}, b_t = ∂⁺C_t/∂w (the direct dependence, C_{t-1} held fixed) and
e_t = ∂L_t/∂C_t as symbols: a linear chain is the general case to first order, since only
these local derivatives enter the chain rule.  Then

    dL/dw = sum_{t=1}^T sum_{k=1}^t e_t (a_t ... a_{k+1}) b_k,

one term per path from w, through the direct dependence at step k, along the chain to
C_t and into L_t.  The same double sum written with the total ∂L/∂C_t (which already sums
over every later L_s) in place of ∂L_t/∂C_t counts the path into L_s from step k once for
every t with k <= t <= s: ``path_counts`` reads those multiplicities off the expanded sum.
"""

from __future__ import annotations

import sympy as sp

from derive.engine.cell import t


def path_factors(state: str = "c", loss: str = "L", weight: str = "W") -> list[sp.Expr]:
    """∂L_t/∂C_t, ∂C_t/∂C_k, ∂C_k/∂W: one term of the double sum, as printed, in order."""
    c, k, w = sp.Function(state), sp.Symbol("k", integer=True), sp.Symbol(weight)
    return [sp.Derivative(sp.Function(loss)(t), c(t)), sp.Derivative(c(t), c(k)),
            sp.Derivative(c(k), w)]


def chain_symbols(steps: int) -> tuple[list[sp.Symbol], list[sp.Symbol], list[sp.Symbol]]:
    """The local derivatives a_t, b_t and e_t for t = 1..steps (index 0 unused: None)."""
    a = [None, *sp.symbols(f"a_1:{steps + 1}")]
    b = [None, *sp.symbols(f"b_1:{steps + 1}")]
    e = [None, *sp.symbols(f"e_1:{steps + 1}")]
    return a, b, e


def _across(a: list[sp.Symbol], t: int, k: int) -> sp.Expr:
    """∂C_t/∂C_k = a_t a_{t-1} ... a_{k+1} (1 for k = t)."""
    return sp.Mul(*[a[j] for j in range(k + 1, t + 1)])


def path_sum(steps: int, total: bool = False) -> sp.Expr:
    """sum_t sum_{k<=t} (∂L_t/∂C_t or, with ``total``, ∂L/∂C_t) (∂C_t/∂C_k) b_k."""
    a, b, e = chain_symbols(steps)

    def outer(t: int) -> sp.Expr:
        if not total:
            return e[t]
        return sp.Add(*[e[s] * _across(a, s, t) for s in range(t, steps + 1)])

    terms = [
        outer(t) * _across(a, t, k) * b[k] for t in range(1, steps + 1) for k in range(1, t + 1)
    ]
    return sp.expand(sp.Add(*terms))


def path_counts(steps: int) -> sp.Matrix:
    """Row s, column k: how often the sum with the total ∂L/∂C_t holds the path from the
    direct dependence at step k into L_s (0 for k > s, where no path exists)."""
    a, b, e = chain_symbols(steps)
    printed = sp.Poly(path_sum(steps, total=True), *a[1:], *b[1:], *e[1:])
    counts = sp.zeros(steps, steps)
    for s in range(1, steps + 1):
        for k in range(1, s + 1):
            monomial = sp.Poly(e[s] * _across(a, s, k) * b[k], *a[1:], *b[1:], *e[1:])
            counts[s - 1, k - 1] = printed.coeff_monomial(monomial.monoms()[0])
    return counts
