"""The dropout derivation, by rules applied to the Bernoulli mask (no result typed in).

With ``m ~ Bernoulli(1 - p)`` (kept with probability 1 - p) and a scale ``s``::

    E[m], E[m^2]                 expectations over the mask's two outcomes
    E[y] for y = s m x           linearity, then solved for the s with E[y] = x
    E[y], E[y^2], Var(y)         at that s: Var(y) = E[y^2] - E[y]^2
    xbar = ybar dy/dx            the chain rule at a fixed mask
    E[m x] = c x                 the non-inverted variant: the test-time scale c

Every expression is brought to one written form (``in_keep``): fractions over ``1 - p``, the
keep probability, rather than over ``p - 1``.
"""

from __future__ import annotations

import sympy as sp
import sympy.stats as st

#: The drop probability, an input entry, the training scale, the test-time scale of the
#: non-inverted variant, a mask entry and the upstream gradient dL/dy_i.
P = sp.Symbol("p", positive=True)
X = sp.Symbol("x_i", real=True)
S = sp.Symbol("s", positive=True)
T = sp.Symbol("c", positive=True)
M = sp.Symbol("m_i", nonnegative=True)
YBAR = sp.Symbol("ybar_i", real=True)
#: The left-hand side of the backward rule.
XBAR = sp.Symbol("xbar_i", real=True)


def in_keep(expr: sp.Expr) -> sp.Expr:
    """``expr`` written over the keep probability ``1 - p`` (the same value, simplified)."""
    q = sp.Dummy("q", positive=True)
    return sp.factor(sp.simplify(expr.subs(P, 1 - q))).xreplace({q: 1 - P})


def derivation() -> dict[str, sp.Expr]:
    """Every symbolic result by key: the mask's moments, the scale, the output's moments,
    the backward rule and the non-inverted variant."""
    m = st.Bernoulli("m", 1 - P)
    general = st.E(S * m * X)  # the expected output for any scale s
    (scale,) = sp.solve(sp.Eq(general, X), S)  # the s that needs no rescaling at test time
    y = scale * m * X
    mean, second = st.E(y), st.E(y**2)
    plain = st.E(m * X)  # no scale in training
    (test_scale,) = sp.solve(sp.Eq(T * X, plain), T)  # the test output that matches it
    out = {
        "mask_mean": st.E(m),
        "mask_square": st.E(m**2),
        "mean_general": general,
        "scale": scale,
        "mean": mean,
        "second_moment": second,
        "variance": second - mean**2,
        # The forward at a fixed mask entry M, differentiated: dy/dx = s m.
        "backward": sp.diff(scale * M * X, X) * YBAR,
        "plain_mean": plain,
        "test_scale": test_scale,
    }
    return {key: in_keep(expr) for key, expr in out.items()}


def at_p(expr: sp.Expr, p: sp.Rational) -> sp.Expr:
    """``expr`` at the drop probability ``p``, exactly."""
    return sp.simplify(expr.xreplace({P: p}))
