"""The initialisation derivation: variances of a layer from the moments of independent
variables, solved for the weight variance that preserves them (no result typed in).

For z_j = sum_i x_i W_ij with W_ij independent of x, E[W] = 0, E[W^2] = sigma^2::

    E[z_j^2] = n_in E[(x W)^2] + n_in (n_in - 1) E[x_1 W_1 x_2 W_2]      (expanded)
             = n_in sigma^2 v,          v = E[x_i^2] (the mean of x drops out)

and the backward xbar_i = sum_j zbar_j W_ij alike with n_out.  Xavier averages the two
gains; a uniform U(-a, a) has variance a^2/3 (an integral); after a ReLU, for z symmetric
about 0, E[relu(z)^2] = Var(z)/2 (the integral of z^2 over half a normal density), so a
ReLU layer's gain is n_in sigma^2 / 2.
"""

from __future__ import annotations

import sympy as sp

N_IN, N_OUT = sp.symbols("n_in n_out", positive=True, integer=True)
#: The weights' standard deviation (their variance is SIGMA**2), the input's second moment,
#: its mean, the upstream gradient's variance, a uniform bound and a pre-activation.
SIGMA = sp.Symbol("sigma", positive=True)
V, MU = sp.Symbol("v", positive=True), sp.Symbol("mu", real=True)
G, A = sp.Symbol("g", positive=True), sp.Symbol("a", positive=True)
Z, TAU = sp.Symbol("z", real=True), sp.Symbol("tau", positive=True)


def expect(poly: sp.Expr, moments: dict[sp.Symbol, dict[int, sp.Expr]]) -> sp.Expr:
    """E[poly] for independent variables with the given raw moments (power -> E[X^k]):
    each monomial's expectation is the product of its factors' moments."""
    total = sp.Integer(0)
    for term in sp.Add.make_args(sp.expand(poly)):
        coeff, factors = term.as_coeff_mul()
        value = coeff
        for f in factors:
            base, power = f.as_base_exp()
            value *= moments[base][int(power)] if base in moments else f
        total += value
    return total


def sum_variance(n: sp.Expr, left: dict, right: dict) -> sp.Expr:
    """Var of a sum of n terms u_k w_k, all 2n factors independent: n variances of one term
    plus n(n - 1) covariances of two, each from ``expect`` on two copies."""
    u1, w1, u2, w2 = sp.symbols("u1 w1 u2 w2")
    moments = {u1: left, u2: left, w1: right, w2: right}
    mean = expect(u1 * w1, moments)
    var_term = expect((u1 * w1) ** 2, moments) - mean**2
    cov = expect(u1 * w1 * u2 * w2, moments) - mean**2
    return sp.factor(n * var_term + n * (n - 1) * cov)


def _solve_sigma2(equation: sp.Expr) -> sp.Expr:
    """The sigma^2 with ``equation`` = 0 (linear in sigma^2)."""
    s2 = sp.Dummy("s2", positive=True)
    (root,) = sp.solve(equation.subs(SIGMA**2, s2), s2)
    return sp.factor(root)


def _bound(variance: sp.Expr) -> sp.Expr:
    """The a with Var U(-a, a) = ``variance``, written as one square root."""
    w = sp.Symbol("w", real=True)
    uniform = sp.integrate(w**2 / (2 * A), (w, -A, A))
    (root,) = sp.solve(uniform - variance, A)
    inside = sp.factor(sp.simplify(root**2))
    return sp.Pow(inside, sp.Rational(1, 2), evaluate=False)


def relu_ratio() -> sp.Expr:
    """E[relu(z)^2] / Var(z) for z ~ N(0, tau^2): the integral of z^2 over the positive half
    of the density, over the whole."""
    density = sp.exp(-(Z**2) / (2 * TAU**2)) / sp.sqrt(2 * sp.pi * TAU**2)
    half = sp.integrate(Z**2 * density, (Z, 0, sp.oo))
    whole = sp.integrate(Z**2 * density, (Z, -sp.oo, sp.oo))
    return sp.simplify(half / whole)


def derivation() -> dict[str, sp.Expr]:
    """Every symbolic result by key."""
    weights = {1: sp.Integer(0), 2: SIGMA**2}
    forward = sum_variance(N_IN, {1: MU, 2: V}, weights)
    backward = sum_variance(N_OUT, {1: sp.Integer(0), 2: G}, weights)
    fwd_gain, bwd_gain = forward / V, backward / G
    xavier = _solve_sigma2((fwd_gain + bwd_gain) / 2 - 1)
    ratio = relu_ratio()
    he_gain = sp.factor(forward.subs(V, ratio * TAU**2) / TAU**2)  # Var(z') / Var(z)
    he = _solve_sigma2(he_gain - 1)
    w = sp.Symbol("w", real=True)
    return {
        "forward_variance": forward, "forward_sigma2": _solve_sigma2(fwd_gain - 1),
        "backward_variance": backward, "backward_sigma2": _solve_sigma2(bwd_gain - 1),
        "xavier_sigma2": xavier,
        "uniform_variance": sp.integrate(w**2 / (2 * A), (w, -A, A)),
        "xavier_bound": _bound(xavier),
        "relu_ratio": ratio, "he_gain": he_gain, "he_sigma2": he, "he_bound": _bound(he),
        "lecun_relu_gain": he_gain.subs(SIGMA**2, _solve_sigma2(fwd_gain - 1)),
    }
