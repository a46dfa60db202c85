"""The claims of the momentum key, each checked by a route that does not reuse the derivation.

* the inverse: composed with the real map both ways (float64), and substituted into the
  forward equations (SymPy: symbolic zero);
* the factors, their product and the determinants: instantiated for D = 1..4 with symbolic
  Hessian entries against SymPy's ``jacobian()`` of the map and Berkowitz determinants;
* the same numerically: the central-difference Jacobian of the real map (non-quadratic J)
  against F2 F1, and its ``slogdet`` against log of the derived determinant.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import sympy as sp

from derive.problems.momentum.model import (
    D,
    GradJ,
    alpha,
    at,
    beta,
    explicit,
    forward,
    hess_j,
    p_next,
    theta_next,
)
from derive.verify import Claim, rel_error
from derive.verify.routes import (
    CENTRAL_STEP,
    central_difference,
    jacobian,
    nonzero_entries,
    step_text,
)

#: The sizes of the float64 round trips and of the numeric Jacobians.
INVERSE_DIMS = (1, 3, 17, 50)
JACOBIAN_DIMS = (1, 2, 5, 13, 50)
#: The explicit (symbolic) instances; a full Berkowitz determinant only up to this D.
EXPLICIT_DIMS, FULL_DET_MAX = (1, 2, 3, 4), 3
#: A float64 round trip loses a few ulps per step; a wrong inverse loses everything.
ROUND_TRIP_TOL = 1e-12
#: The central difference is accurate to about h² ~ 1e-12 relative, on entries of order 1.
JACOBIAN_TOL = 1e-7


def inverse_claims(inv, a: float, b: float, states: list[np.ndarray]) -> Iterator[Claim]:
    """f^-1(f(s)) and f(f^-1(s)) against s, one shared run over ``states``."""
    worst_t = worst_p = worst_fi = 0.0
    for s in states:
        n = s.size // 2
        back = inv(forward(s, a, b), a, b)
        worst_t = max(worst_t, rel_error(back[:n], s[:n]))
        worst_p = max(worst_p, rel_error(back[n:], s[n:]))
        worst_fi = max(worst_fi, rel_error(forward(inv(s, a, b), a, b), s))
    sizes = f"D = {', '.join(str(s.size // 2) for s in states)}; non-quadratic J"
    there, back = "float64: the inverse after the map", "float64: the map after the inverse"
    yield Claim.measured("inverse_theta", there, sizes, worst_t, ROUND_TRIP_TOL)
    yield Claim.measured("inverse_p", there, sizes, worst_p, ROUND_TRIP_TOL)
    yield Claim.measured("inverse_p", back, sizes, worst_fi, ROUND_TRIP_TOL)


def symbolic_inverse_claim(inverse: tuple[sp.Expr, sp.Expr, sp.Expr]) -> Claim:
    """Substituting the inverse into the forward equations gives back s' (symbolically)."""
    th, _, pp = inverse
    p_new = beta * pp - alpha * GradJ(th)
    residual = sp.Matrix([p_new - p_next, th + p_new - theta_next])
    return Claim(
        "inverse_theta",
        "symbolic: forward map of the inverse minus s'",
        "symbolic, any D (elementwise)",
        0.0,
        lambda: nonzero_entries(residual),
    )


# -- explicit instances: D = 1..4 with symbolic Hessian entries ----------------------------------
def map_jacobian(n: int) -> tuple[sp.Matrix, sp.Matrix]:
    """(symbolic Hessian, SymPy ``jacobian()`` of the map) at D = n, ∇J unspecified."""
    ths = sp.symbols(f"t1:{n + 1}")
    ps = sp.symbols(f"q1:{n + 1}")
    gs = [sp.Function(f"g{i + 1}")(*ths) for i in range(n)]
    hess = sp.Matrix(n, n, lambda i, j: sp.Symbol(f"h_{min(i, j) + 1}{max(i, j) + 1}"))
    derivs = {gs[i].diff(ths[j]): hess[i, j] for i in range(n) for j in range(n)}
    pn = [beta * ps[i] - alpha * gs[i] for i in range(n)]
    image = sp.Matrix([ths[i] + pn[i] for i in range(n)] + pn)
    return hess, image.jacobian(list(ths) + list(ps)).xreplace(derivs)


@dataclass
class ExplicitCounts:
    """Entries that fail to vanish, summed over the explicit instances."""

    product: int = 0  # F2 F1 - jacobian()
    collapsed: int = 0  # the collapsed block product - jacobian()
    factor_dets: int = 0  # berkowitz det of each factor - the rule's
    det: int = 0  # berkowitz det of the Jacobian - the derived det


def explicit_counts(factors, product, dets, det) -> ExplicitCounts:
    """Instantiate F2, F1 and their collapsed product at D = 1..4 and count what differs.

    ``dets`` is (det F2, det F1) and ``det`` the derived determinant.
    """
    (f2, f1), (d2, d1), out = factors, dets, ExplicitCounts()
    for n in EXPLICIT_DIMS:
        hess, jac = map_jacobian(n)
        e1, e2 = explicit(at(f1, n), n, hess), explicit(at(f2, n), n, hess)
        out.product += nonzero_entries(e2 * e1 - jac)
        out.collapsed += nonzero_entries(explicit(at(product, n), n, hess) - jac)
        got1, got2 = e1.det(method="berkowitz"), e2.det(method="berkowitz")
        out.factor_dets += nonzero_entries(sp.Matrix([got1 - d1.subs(D, n), got2 - d2.subs(D, n)]))
        if n <= FULL_DET_MAX:
            full = jac.det(method="berkowitz")
        else:
            full = got2 * got1
        out.det += nonzero_entries(full - det.subs(D, n))
    return out


def explicit_claims(counts: ExplicitCounts) -> Iterator[Claim]:
    """The explicit instances' counts as claims (exact: tolerance 0)."""
    sizes = f"D = {EXPLICIT_DIMS[0]}..{EXPLICIT_DIMS[-1]}, symbolic Hessian entries"
    yield Claim.measured(
        "jacobian_factors",
        "symbolic: F2 F1 against the map's Jacobian",
        sizes,
        counts.product,
        0.0,
    )
    yield Claim.measured(
        "jacobian",
        "symbolic: the collapsed block product against the map's Jacobian",
        sizes,
        counts.collapsed,
        0.0,
    )
    yield Claim.measured(
        "factor_dets",
        "symbolic determinant of each explicit factor",
        sizes,
        counts.factor_dets,
        0.0,
    )
    yield Claim.measured(
        "det_jacobian",
        f"symbolic determinant of the Jacobian (D <= {FULL_DET_MAX}), of the factors "
        f"(D = {EXPLICIT_DIMS[-1]})",
        sizes,
        counts.det,
        0.0,
    )


# -- the real map, numerically -------------------------------------------------------------------
def numeric_jacobian_claims(
    factors, det: sp.Expr, a: float, b: float, states: list[np.ndarray]
) -> Iterator[Claim]:
    """The central-difference Jacobian of the real map against F2 F1; slogdet against log det."""
    f2, f1 = factors
    values = {alpha: a, beta: b}
    worst_j = worst_det = 0.0
    for s in states:
        n = s.size // 2
        jac = jacobian(lambda v: forward(v, a, b), s, route=central_difference)
        hess = hess_j(s[:n])
        product = explicit(at(f2, n), n, hess, values) @ explicit(at(f1, n), n, hess, values)
        worst_j = max(worst_j, rel_error(jac, product))
        sign, logdet = np.linalg.slogdet(jac)
        claim = float(det.subs({D: n, beta: b}))
        # |log det - log claim| is the relative error of det; a wrong sign is an error.
        err = abs(logdet - math.log(claim)) if claim > 0 and sign == 1 else math.inf
        worst_det = max(worst_det, err)
    sizes = f"D = {', '.join(str(s.size // 2) for s in states)}; non-quadratic J"
    method = f"central difference (h = {step_text(CENTRAL_STEP)}) of the map"
    yield Claim.measured("jacobian_factors", method, sizes, worst_j, JACOBIAN_TOL)
    yield Claim.measured(
        "det_jacobian",
        "log |det| of the central-difference Jacobian against the log of the claim",
        sizes,
        worst_det,
        JACOBIAN_TOL,
    )


