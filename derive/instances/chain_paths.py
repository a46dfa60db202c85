"""A chain of states unrolled, and the pairs a double sum over steps runs through: the
reference routes for ``derive.engine.path_sums``.

``unrolled_gradient`` builds C_t = a_t C_{t-1} + b_t w step by step from C_0 = 0, adds up
L = sum_t e_t C_t and differentiates by w with SymPy: no path is enumerated.
``enumerated_counts`` walks the double sum with the total dL/dC_t in front, pair by pair.
"""

from __future__ import annotations

import sympy as sp


def unrolled_gradient(a: list, b: list, e: list) -> sp.Expr:
    """dL/dw of the unrolled chain, for the local derivatives a_t, b_t, e_t (t >= 1)."""
    w, state, loss = sp.Symbol("w"), sp.Integer(0), sp.Integer(0)
    for j in range(1, len(a)):
        state = a[j] * state + b[j] * w
        loss += e[j] * state
    return sp.expand(sp.diff(loss, w))


def enumerated_counts(steps: int) -> list[list[int]]:
    """Row s, column k: the pairs (t, k) of the double sum, k <= t, whose total dL/dC_t
    holds the loss L_s (s >= t), counted one by one."""
    count = [[0] * steps for _ in range(steps)]
    for t in range(1, steps + 1):
        for k in range(1, t + 1):
            for s in range(t, steps + 1):
                count[s - 1][k - 1] += 1
    return count
