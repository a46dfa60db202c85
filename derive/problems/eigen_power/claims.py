"""The claims of eigen_power, each checked by a route that shares nothing with ``derive``:
exact routes (tolerance 0) recompute exactly or count failures; floating-point routes run in
float64 where ``engine.exact_matrix``'s rounding bounds allow, else in mpmath at the digits
the bound asks for (the method text says which ran)."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from typing import TYPE_CHECKING

import mpmath
import numpy as np
import sympy as sp

from derive.engine.exact_matrix import (
    as_mp,
    compared,
    exact_norm,
    float_norm,
    fraction_power,
    matrix_power,
    mp_rational,
    numeric_eigenvalues,
    numeric_power,
    power_norms,
    scaled_rel_error,
    separation,
    stated_product,
)
from derive.problems.eigen_power.params import DEFECTIVE, PLOT_TOL, K, slug
from derive.verify import Claim, rel_error
from derive.verify.routes import failures, nonzero_entries

if TYPE_CHECKING:
    from derive.problems.eigen_power.problem import EigenPower

#: Tolerances of the floating-point routes (mixed relative errors).
EIGEN_TOL, POWER_TOL, PRODUCT_TOL, REGIME_TOL = 1e-13, 1e-12, 1e-14, 1e-10
#: Powers at which the defective matrix's power in k is multiplied out.
DEFECTIVE_STEPS = range(1, 11)
#: The sizes column of the stated decomposition's claims.
GIVEN = "the stated Q, Lambda"


def claims(p: EigenPower) -> Iterator[Claim]:
    """Every claim of ``p``, in the order of its evidence table."""
    yield from _decomposition_claims(p)
    yield _orthogonal_claim(p)
    yield _lambda_power_claim(p)
    yield from _power_claims(p)
    if p.given_q is not None:
        yield from _given_claims(p)
    yield from _induction_claims(p)
    for name, m in p.regimes().items():
        yield _regime_claim(p, name, m)
    yield _curve_claim(p)
    yield _defective_claim(p)


def _decomposition_claims(p: EigenPower) -> Iterator[Claim]:
    """Eigenpairs and reconstruction in exact arithmetic; eigenvalues again numerically."""
    q, lam = p.decomposition
    r = p.results

    def pairs() -> float:
        return max(exact_norm(p.w * q[:, i] - lam[i, i] * q[:, i]) for i in range(q.cols))

    yield Claim("Q", "exact: W times each eigenvector against its eigenvalue times it",
                "2x2, exact", 0.0, pairs)
    yield Claim(
        "W",
        "exact: the product of the factors against W",
        "2x2, exact",
        0.0,
        lambda: exact_norm(q * lam * q.inv() - p.w),
    )
    values, digits = numeric_eigenvalues(p.w, q, lam, EIGEN_TOL)
    exact = list(lam.diagonal())
    method = (
        "float64 eigenvalues of W" if digits is None else f"eigenvalues of W at {digits} digits"
    )
    yield Claim("Lambda", method, "2x2", EIGEN_TOL, lambda: compared(values, exact, digits))
    yield Claim(
        "spectral_radius",
        f"{method}: the largest in size",
        "2x2",
        EIGEN_TOL,
        lambda: compared([max(abs(v) for v in values)], [r["spectral_radius"].expr], digits),
    )
    yield Claim(
        "Q_inv",
        "exact: the inverse times Q against I",
        "2x2, rationals",
        0.0,
        lambda: exact_norm(r["Q_inv"].expr * q - sp.eye(q.rows)),
    )


def _orthogonal_claim(p: EigenPower) -> Claim:
    """Orthogonal exactly when Q^T Q - I has no nonzero entry."""
    q, _ = p.decomposition
    holds = nonzero_entries(q.T * q - sp.eye(q.rows)) == 0
    stated = p.results["Q_orthogonal"].value
    return Claim("Q_orthogonal", "exact: Q transposed times Q against I", "2x2, exact", 0.0,
                 lambda: float(holds != stated))


def _lambda_power_claim(p: EigenPower) -> Claim:
    """Λ^n against Λ multiplied n times in exact arithmetic."""
    lam = p.results["Lambda"].expr
    printed = p.results["Lambda_power"].expr.doit()

    def product() -> float:
        m = sp.eye(lam.rows)
        for _ in range(p.n):
            m = m * lam
        return float(nonzero_entries(printed - m))

    return Claim("Lambda_power", f"exact: Lambda multiplied {p.n} times", f"n={p.n}", 0.0,
                 product)


def _power_claims(p: EigenPower) -> Iterator[Claim]:
    """W^n by repeated multiplication in Fractions, and by repeated squaring in floats."""
    power = p.results["W_power"].expr
    exact = fraction_power(p.w, p.n)

    def fractions() -> float:
        return float(
            max(abs(Fraction(str(power[i, j])) - exact[i][j]) for i in range(2) for j in range(2))
        )

    yield Claim("W_power", f"exact rationals: W multiplied {p.n} times", f"n={p.n}", 0.0, fractions)
    got, digits = numeric_power(p.w, p.n, POWER_TOL)
    method = (
        "float64: W squared repeatedly"
        if digits is None
        else f"W squared repeatedly at {digits} digits"
    )
    yield Claim("W_power", method, f"n={p.n}", POWER_TOL, lambda: compared(got, power, digits))
    longest = max(_digits(f) for row in exact for f in row)
    yield Claim(
        "power_digits",
        "exact rationals: digits of W multiplied out",
        f"n={p.n}",
        0.0,
        lambda: abs(longest - p.results["power_digits"].value),
    )
    yield from _power_facts(p, exact)


def _power_facts(p: EigenPower, exact: list[list[Fraction]]) -> Iterator[Claim]:
    """Zero, shrinking and terminating, each against a route that does not use Λ."""
    r = p.results
    zero = all(f == 0 for row in exact for f in row)
    yield Claim("power_zero", f"exact rationals: W multiplied {p.n} times is zero", f"n={p.n}", 0.0,
                lambda: float(zero != r["power_zero"].value))
    # Both roots of x^2 - tr x + det lie in (-1, 1) exactly when |det| < 1 and
    # |tr| < 1 + det (Jury's test for degree 2): no eigenvalue is computed.
    tr, det = p.w.trace(), p.w.det()
    inside = bool(abs(det) < 1 and abs(tr) < 1 + det)
    yield Claim("power_shrinks", "exact: Jury's test on the determinant and trace of W",
                "2x2, exact", 0.0, lambda: float(inside != r["power_shrinks"].value))
    w = [Fraction(str(v)) for v in p.w]
    stated = r["terminating"].value
    # Stated: W's entries terminate, and so (products of them) do W^n's.
    wrong = (all(map(_decimal, w)) != stated) + (stated and not all(
        _decimal(f) for row in exact for f in row))
    yield Claim("terminating",
                "exact rationals: denominators of W and its power divided by 2 and 5",
                f"n={p.n}", 0.0, lambda: float(wrong))


def _decimal(f: Fraction) -> bool:
    """``f`` has a finite decimal expansion: its denominator divides by 2 and 5 down to 1."""
    q = f.denominator
    for prime in (2, 5):
        while q % prime == 0:
            q //= prime
    return q == 1


def _digits(f: Fraction) -> int:
    """Digits of the longer of numerator and denominator (none for a denominator of 1)."""
    return max(len(str(abs(f.numerator))), len(str(f.denominator)) if f.denominator > 1 else 0)


def _given_claims(p: EigenPower) -> Iterator[Claim]:
    """The stated decomposition against independent floating-point products (float64
    unless its error bound is too wide, see ``stated_product``): its product, then its
    verdicts, decided by products within a quarter of the least nonzero difference that
    ``separation`` allows."""
    r = p.results
    exact = r["given_product"].expr
    top = max([abs(v) for v in exact] + [sp.Integer(0)])
    prod, digits = stated_product(p.given_q, p.given_lambda, float(top) * PRODUCT_TOL)
    method = (
        "float64 product of the stated factors"
        if digits is None
        else f"product of the stated factors at {digits} digits"
    )
    yield Claim("given_product", method, "2x2", PRODUCT_TOL, lambda: compared(prod, exact, digits))
    sep = separation(p.given_q, p.given_lambda, p.w)
    dev, flipped, route = _deviation(p, p.given_q, sep)
    text = "{}: largest entry off W is {:.2f}"
    yield _verdict(p, "given_decomposition_ok", text.format(route, float(dev.max())), dev, sep)
    yield from _entry_claims(p, dev, flipped, route, sep)
    dev, _, route = _deviation(p, p.given_q.T, sep)
    text = "{} with Q transposed: max deviation {:.1e}"
    yield _verdict(p, "given_q_transposed_ok", text.format(route, float(dev.max())), dev, sep)
    if "flipped_W" in r:
        yield from _flipped_claims(p)


def _same_eigenvalues_claim(p: EigenPower, flipped: list[list[Fraction]]) -> Claim:
    """Two 2x2 matrices share their eigenvalues exactly when they share trace and
    determinant (one characteristic polynomial): no eigenvalue is computed."""
    v = [[Fraction(str(x)) for x in row] for row in p.w.tolist()]

    def invariants(m: list[list[Fraction]]) -> tuple[Fraction, Fraction]:
        return m[0][0] + m[1][1], m[0][0] * m[1][1] - m[0][1] * m[1][0]

    same = invariants(flipped) == invariants(v)
    return Claim("flipped_same_eigenvalues", "exact rationals: trace and determinant of both",
                 GIVEN, 0.0, lambda: float(same != p.results["flipped_same_eigenvalues"].value))


def _flipped_claims(p: EigenPower) -> Iterator[Claim]:
    """W with the wrong entries' signs flipped, built again from W and the entries the
    float products found; the stated factors multiplied in Fractions against it; its
    power by repeated multiplication in Fractions."""
    r = p.results
    w = [[Fraction(str(v)) for v in row] for row in p.w.tolist()]
    for i, j in r["given_wrong_entries"].value:
        w[i - 1][j - 1] = -w[i - 1][j - 1]
    flipped = r["flipped_W"].expr

    def rebuilt() -> float:
        pairs = [(i, j) for i in range(2) for j in range(2)]
        return float(sum(Fraction(str(flipped[i, j])) != w[i][j] for i, j in pairs))

    yield Claim("flipped_W", "exact rationals: W with the wrong entries negated", GIVEN, 0.0,
                rebuilt)
    q = [[Fraction(str(v)) for v in row] for row in p.given_q.tolist()]
    lam = [Fraction(str(v)) for v in p.given_lambda.diagonal()]
    det = q[0][0] * q[1][1] - q[0][1] * q[1][0]
    q_inv = [[q[1][1] / det, -q[0][1] / det], [-q[1][0] / det, q[0][0] / det]]
    product = [[sum(q[i][k] * lam[k] * q_inv[k][j] for k in range(2)) for j in range(2)]
               for i in range(2)]
    holds = product == w
    yield Claim("flipped_decomposition_ok",
                "exact rationals: stated Q, Lambda and Q's inverse multiplied, against it", GIVEN,
                0.0, lambda: float(holds != r["flipped_decomposition_ok"].value))
    exact = _fraction_power(w, p.n)
    power = r["flipped_power"].expr

    def powers() -> float:
        return float(max(abs(Fraction(str(power[i, j])) - exact[i][j])
                         for i in range(2) for j in range(2)))

    yield Claim("flipped_power", f"exact rationals: that W multiplied {p.n} times", f"n={p.n}",
                0.0, powers)
    yield _same_eigenvalues_claim(p, w)


def _fraction_power(w: list[list[Fraction]], n: int) -> list[list[Fraction]]:
    m = [[Fraction(int(i == j)) for j in range(2)] for i in range(2)]
    for _ in range(n):
        m = [[sum(m[i][k] * w[k][j] for k in range(2)) for j in range(2)] for i in range(2)]
    return m


def _verdict(p: EigenPower, key: str, method: str, dev: np.ndarray, sep: float) -> Claim:
    """The verdict "the product is W" (or "is not": then a wrong datum is detected)."""
    ok = bool(p.results[key].value)
    agrees = bool(dev.max() < sep / 2) == ok
    return Claim.measured(key, method, GIVEN, float(not agrees), 0.0, detects=not ok)


def _deviation(p: EigenPower, q: sp.Matrix, sep: float) -> tuple[np.ndarray, np.ndarray, str]:
    """|Q L Q^-1 - W| and |Q L Q^-1 + W| entry by entry (mpmath numbers), and the route."""
    prod, digits = stated_product(q, p.given_lambda, sep / 4)
    with mpmath.workdps(digits or 15):
        got = [[as_mp(prod[i][j]) for j in range(2)] for i in range(2)]
        w = [[mp_rational(p.w[i, j]) for j in range(2)] for i in range(2)]
        dev = np.array(
            [[abs(g - v) for g, v in zip(*rows, strict=True)] for rows in zip(got, w, strict=True)],
            dtype=object,
        )
        flipped = np.array(
            [[abs(g + v) for g, v in zip(*rows, strict=True)] for rows in zip(got, w, strict=True)],
            dtype=object,
        )
    route = "float64 product" if digits is None else f"{digits}-digit product"
    return dev, flipped, route


def _entry_claims(
    p: EigenPower, dev: np.ndarray, flipped: np.ndarray, route: str, sep: float
) -> Iterator[Claim]:
    """Which entries differ from W, and whether each is W's entry with its sign flipped."""
    r = p.results
    wrong = [[i + 1, j + 1] for i in range(2) for j in range(2) if dev[i, j] >= sep / 2]
    error = float(wrong != r["given_wrong_entries"].value)
    yield Claim.measured("given_wrong_entries", f"{route}: entries off W", GIVEN, error, 0.0,
                         detects=bool(wrong))
    flips = bool(wrong) and all(flipped[i - 1, j - 1] < sep / 2 for i, j in wrong)
    error = float(flips != r["given_sign_flips_only"].value)
    yield Claim.measured(
        "given_sign_flips_only", f"{route}: wrong entries are those of W, sign flipped",
        GIVEN, error, 0.0,
    )


INDUCTION_N = 6  # M^n = Q Lambda^n Q^-1 is also multiplied out in symbols up to this n


def _induction_claims(p: EigenPower) -> Iterator[Claim]:
    """The step identity is zero; the claim holds for n = 1..INDUCTION_N in symbols."""
    step = p.results["induction_step"].expr
    yield Claim(
        "induction_step",
        "simplify: step identity is the zero matrix",
        "symbolic 2x2, symbolic n",
        0.0,
        lambda: 0.0 if step.is_zero_matrix else 1.0,
    )
    method = "repeated products of a symbolic 2x2 M (numerators over det Q)"
    yield Claim("induction_step", method, f"n = 1..{INDUCTION_N}", 0.0, _small_n_failures)


def _small_n_failures() -> float:
    a, b, c, d, l1, l2 = sp.symbols("q_11 q_12 q_21 q_22 lambda_1 lambda_2")
    q = sp.Matrix([[a, b], [c, d]])
    # M = Q diag(l) Q^-1 = N / det Q with N = Q diag(l) adj Q, a polynomial matrix; so
    # M^n = Q diag(l^n) Q^-1 exactly when N^n = det(Q)^(n-1) Q diag(l^n) adj Q.
    # Expanded polynomials decide that without rational-function cancellation (3x faster).
    adj, det = q.adjugate(), q.det()
    n_mat = (q * sp.diag(l1, l2) * adj).expand()
    power, bad = sp.eye(2), 0
    for k in range(1, INDUCTION_N + 1):
        power = (power * n_mat).expand()
        rhs = (det ** (k - 1) * q * sp.diag(l1**k, l2**k) * adj).expand()
        bad += not (power - rhs).is_zero_matrix
    return float(bad)


def _regime_claim(p: EigenPower, name: str, m: sp.Matrix) -> Claim:
    """||W^k||_2 by an SVD of the floating-point powers against the exact value: numpy in
    float64, or mpmath where float64 cannot hold or resolve the powers."""
    expected = p.regime_norms[name]
    got, widest = [], None
    for k in p.norm_steps:
        power, digits = numeric_power(m, k, REGIME_TOL)
        got.append(float_norm(power, digits))
        if digits is not None:
            widest = max(widest or 0, digits)
    if widest is None:
        error = rel_error(got, [float(x) for x in expected])
        method = "float64 spectral norms of the powers"
    else:
        # Norms from 1e-600 to 1e1200: each against its own value, not the largest's.
        error = max(scaled_rel_error([g], [e]) for g, e in zip(got, expected, strict=True))
        method = f"spectral norm of W^k (more digits where float64 fails, up to {widest})"
    steps = ", ".join(map(str, p.norm_steps))
    return Claim.measured(f"regime_{slug(name)}", method, f"k = {steps}", error, REGIME_TOL)


def _curve_claim(p: EigenPower) -> Claim:
    """The plotted norms against exact spectral norms of the exact powers, at every k."""
    curves = p.results["norm_curves"].expr

    def worst() -> float:
        errors = []
        for i, m in enumerate(p.regimes().values()):
            for j, norm in enumerate(power_norms(m, len(p.plot_steps))):
                errors.append(scaled_rel_error([curves[i, j]], [norm]))
        return max(errors)

    sizes = f"k = 1..{len(p.plot_steps)}, {curves.rows} regimes"
    return Claim("norm_curves", "exact spectral norms of the exact powers", sizes, PLOT_TOL, worst)


def _defective_claim(p: EigenPower) -> Claim:
    """M^k in the symbol k against M multiplied out at k = 1..10."""
    m, power = p.regimes()[DEFECTIVE], p.results["defective_power"].expr

    def holds(j: int) -> bool:
        return nonzero_entries(power.subs(K, j) - matrix_power(m, j)) == 0

    steps = f"k = {DEFECTIVE_STEPS[0]}..{DEFECTIVE_STEPS[-1]}"
    return Claim(
        "defective_power",
        "exact: M multiplied k times",
        steps,
        0.0,
        lambda: float(failures(DEFECTIVE_STEPS, holds)),
    )
