"""Exact 2x2 matrices of rationals (and of numbers in Q(sqrt d)), and floating-point
counterparts whose rounding is bounded.

Entries of W^n reach 10^1200 and irrational relatives cancel through thousands of digits,
so every floating-point helper here runs in float64 only where a rounding bound (in its
docstring) shows that float64 holds and resolves the numbers, and otherwise in mpmath with
as many digits as the same bound asks for.  ``to_mp`` turns an exact number into mpmath
digits without cancellation; ``spectral_norm`` gives ||m||_2 to chosen digits at any size.
"""

from __future__ import annotations

import math
import sys
from fractions import Fraction
from functools import lru_cache
from typing import Any

import mpmath
import numpy as np
import sympy as sp
from sympy.polys.matrices import DomainMatrix

from derive.verify import rel_error

#: Significant digits of the exact spectral norms; and the first try of the mpmath routes.
NORM_DIGITS, START_DIGITS = 30, 30
#: Unit roundoff of float64, and the magnitudes inside which its rounding bounds hold with
#: room to spare (far from overflow at 1.8e308 and from the subnormals below 2.2e-308).
U64 = 2.0**-53
FLOAT_SAFE = (sys.float_info.min * 2.0**100, sys.float_info.max * 2.0**-100)


def rational_matrix(rows: list[list[str]]) -> sp.Matrix:
    """A matrix of exact rationals from decimal strings (never through floats)."""
    return sp.Matrix([[sp.Rational(v) for v in row] for row in rows])


def eigendecomposition(w: sp.Matrix) -> tuple[sp.Matrix, sp.Matrix]:
    """Q (eigenvectors as columns) and Λ, eigenvalues in increasing order, exactly.

    Eigenvectors are scaled to unit length when their lengths are rational (then a symmetric
    W has Q^-1 = Q^T); otherwise to a first nonzero entry of 1, which keeps Q free of nested
    radicals.  A fixed sign (first nonzero entry positive) makes Q unique.
    """
    pairs = sorted(w.eigenvects(), key=lambda p: p[0])
    cols, values = [], []
    for value, multiplicity, vectors in pairs:
        if len(vectors) < multiplicity:
            raise ValueError("matrix is not diagonalizable")
        for v in vectors:
            first = next(x for x in v if x != 0)
            cols.append((v / first).applyfunc(sp.radsimp))
            values.append(value)
    lengths = [sp.sqrt(sp.radsimp((c.T * c)[0])) for c in cols]
    if all(n.is_Rational for n in lengths):
        cols = [c / n for c, n in zip(cols, lengths, strict=True)]
    return sp.Matrix.hstack(*cols), sp.diag(*values)


def spectral_norm(m: sp.Matrix, dps: int = NORM_DIGITS) -> mpmath.mpf:
    """||m||_2 of a 2x2 matrix of exact numbers, good to ``dps`` significant digits.

    sigma_max^2 = (F + sqrt(F^2 - 4 D^2)) / 2, with F the sum of the squared entries and D the
    determinant, both exact; only F and D^2 are evaluated.  (SymPy's sqrt of the big rationals
    of high powers factors them: minutes for denominators near 10^6.)  F and the root are not
    negative, so their sum loses nothing; F^2 - 4 D^2 = (s1^2 - s2^2)^2 may cancel, but an
    error e F^2 there moves the root by at most sqrt(e) F (|sqrt a - sqrt b| <= sqrt|a - b|):
    2 dps working digits keep dps.  Any size is fine: mpmath has no overflow.
    """
    if m.shape != (2, 2):
        raise ValueError("spectral_norm takes 2x2 matrices")
    return _norm_from(sp.expand(sum(v**2 for v in m)), sp.expand(m.det() ** 2), dps)


def power_norms(m: sp.Matrix, steps: int, dps: int = NORM_DIGITS) -> list[mpmath.mpf]:
    """||m^k||_2 for k = 1 .. steps, as ``spectral_norm`` gives them, from exact powers.

    The powers, F and D^2 are computed in m's own number field (SymPy's ``DomainMatrix``:
    QQ, or QQ<sqrt d> for irrational eigenvalues), exactly and without SymPy's expression
    trees: ten times faster than expanding the entries of each power.
    """
    if m.shape != (2, 2):
        raise ValueError("power_norms takes 2x2 matrices")
    base = DomainMatrix.from_Matrix(m, extension=True)
    field = base.domain
    power, out = DomainMatrix.eye(2, field), []
    for _ in range(steps):
        power = power.matmul(base)
        entries = power.to_list_flat()
        f = sum((v * v for v in entries), field.zero)
        det = power.det()
        out.append(_norm_from(field.to_sympy(f), field.to_sympy(det * det), dps))
    return out


def _norm_from(f: sp.Expr, d2: sp.Expr, dps: int) -> mpmath.mpf:
    """sigma_max from F and D^2 (see ``spectral_norm``)."""
    with mpmath.workdps(2 * dps + 10):
        f_mp, d2_mp = to_mp(f), to_mp(d2)
        disc = max(f_mp * f_mp - 4 * d2_mp, mpmath.mpf(0))
        top = (f_mp + mpmath.sqrt(disc)) / 2
        return +mpmath.sqrt(top)


def to_mp(v: sp.Expr) -> mpmath.mpf:
    """An exact real number as an mpmath number, correct to the working precision.

    The numbers here lie in Q(sqrt d): W is rational and its eigenvalues are
    (tr +- sqrt(disc)) / 2.  a + b sqrt(d) with a and b sqrt(d) of opposite signs can cancel
    to any depth (a regime of [[10^6, 1], [1, 0]] raised to the 100th power: 2000 digits),
    so it is evaluated as (a^2 - b^2 d) / (a - b sqrt(d)), whose numerator is exact and whose
    denominator adds two numbers of one sign.  Anything else goes through SymPy's evalf in
    strict mode, which raises rather than return digits it could not get.
    """
    v = sp.sympify(v)
    if v.is_Rational:
        return mp_rational(v)
    a, rest = v.as_coeff_Add()
    b, root = rest.as_coeff_Mul()
    if root.is_Pow and root.exp == sp.S.Half and root.base.is_Rational:
        d = root.base
        with mpmath.workdps(mpmath.mp.dps + 10):
            sqrt_d = mpmath.sqrt(mp_rational(d))
            if a == 0 or (a > 0) == (b > 0):
                out = mp_rational(a) + mp_rational(b) * sqrt_d
            else:
                out = mp_rational(a * a - b * b * d) / (mp_rational(a) - mp_rational(b) * sqrt_d)
        return +out
    digits = mpmath.mp.dps + 10
    return mpmath.mpf(sp.N(v, digits, strict=True)._to_mpmath(mpmath.mp.prec + 40))


def mp_rational(v: sp.Rational) -> mpmath.mpf:
    return mpmath.mpf(int(v.p)) / int(v.q)


def float_matrix(m: sp.Matrix) -> np.ndarray:
    """m's exact entries rounded to float64 (through ``to_mp``, so cancellation costs nothing)."""
    return np.array(_floats(tuple(m))).reshape(m.shape)


@lru_cache(maxsize=256)
def _floats(entries: tuple[sp.Expr, ...]) -> tuple[float, ...]:
    # Cached: the plot asks for the same few matrices at 40 powers.
    with mpmath.workdps(30):
        return tuple(float(v) if v.is_Rational else float(to_mp(v)) for v in entries)


def stated_product(
    q: sp.Matrix, lam: sp.Matrix, within: float
) -> tuple[list[list[Any]], int | None]:
    """Q Lambda Q^-1 in floating point with an error under ``within`` (absolute, entrywise):
    (entries, None) from numpy's float64 inverse when its bound allows, else mpmath's.

    To first order the inverse errs by c u kappa ||Q^-1|| and the two products by
    c u ||Q|| ||Lambda|| ||Q^-1||, so the product by c u (kappa + 1) ||Q|| ||Lambda|| ||Q^-1||
    (kappa = ||Q|| ||Q^-1||, Frobenius norms, c = 4 for these 2x2 operations), u the unit
    roundoff.  An ill-conditioned stated Q (nearly parallel eigenvectors) needs more digits.
    """
    nq, nl, ni = frobenius(q), frobenius(lam), frobenius(q.inv())
    growth = 4 * (nq * ni + 1) * nq * nl * ni
    if growth * U64 <= within:
        qg = float_matrix(q)
        prod = qg @ np.diag(np.diag(float_matrix(lam))) @ np.linalg.inv(qg)
        return prod.tolist(), None
    dps = int(mpmath.ceil(mpmath.log10(growth / within))) + 10
    with mpmath.workdps(dps):
        qm = mpmath.matrix([[to_mp(v) for v in row] for row in q.tolist()])
        lm = mpmath.diag([to_mp(lam[i, i]) for i in range(lam.rows)])
        prod = qm * lm * mpmath.inverse(qm)
        return [[prod[i, j] for j in range(q.cols)] for i in range(q.rows)], dps


def separation(q: sp.Matrix, lam: sp.Matrix, w: sp.Matrix) -> float:
    """A lower bound on the largest |entry| of Q Lambda Q^-1 - W when that is not zero.

    Q Lambda Q^-1 - W = (Q Lambda adj Q - det(Q) W) / det Q.  With a, b, c the common
    denominators of the entries of Q, Lambda and W, the numerator times a^2 lcm(b, c) has
    integer entries; so a nonzero entry of the difference is at least
    1 / (a^2 lcm(b, c) |det Q|).
    """

    def den(m: sp.Matrix) -> int:
        return int(sp.ilcm(*[sp.Rational(v).q for v in m] + [1]))

    bound = den(q) ** 2 * sp.ilcm(den(lam), den(w)) * abs(q.det())
    with mpmath.workdps(20):
        return float(1 / mp_rational(sp.Rational(bound)))


def numeric_power(m: sp.Matrix, k: int, tol: float) -> tuple[list[list[Any]], int | None]:
    """m^k by repeated squaring in floating point, with an error under tol/4 of its largest
    entry: (entries, None) from numpy in float64 when that bound allows, else (entries,
    digits) from mpmath at enough digits.

    Binary powering forms m^k as a product of k copies of the rounded m, however grouped; a
    2x2 product errs entrywise by at most 2u |A| |B| (Higham, Accuracy and Stability of
    Numerical Algorithms, sec. 3.5), so to first order the power errs by at most
    (k + 2(k - 1)) u |m|^k <= (3k + 2) u |m|^k: the k roundings of m's entries and the k - 1
    products' roundings, u the unit roundoff.  Two things defeat float64: magnitudes beyond
    its range (1e6^200 = 1e1200) and cancellation (mixed signs make |m^k| far smaller than
    |m|^k).  Both are measured first; mpmath gets the digits the same bound asks for.
    """
    size = abs_power_max(m, k)
    if size == 0:  # m = 0: every power is the zero matrix, exactly in any arithmetic
        return [[0.0] * m.cols for _ in range(m.rows)], None
    c = 3 * k + 2
    if FLOAT_SAFE[0] < size < FLOAT_SAFE[1]:
        p = np.linalg.matrix_power(float_matrix(m), k)
        top = float(np.max(np.abs(p)))
        bound = c * U64 * float(size)
        if top > FLOAT_SAFE[0] and bound <= tol / 4 * (top - bound):
            return p.tolist(), None
    dps = START_DIGITS
    while True:
        with mpmath.workdps(dps):
            p = mpmath.matrix([[to_mp(v) for v in row] for row in m.tolist()]) ** k
            entries = [[p[i, j] for j in range(m.cols)] for i in range(m.rows)]
            top = max(abs(x) for row in entries for x in row)
            bound = c * mpmath.mpf(2) ** -mpmath.mp.prec * size
            if bound <= tol / 4 * (top - bound):
                return entries, dps
            # Digits short of the bound (all of them while the bound swamps the result).
            short = dps if top <= 2 * bound else mpmath.log10(bound / (tol / 4 * top))
        dps += int(mpmath.ceil(short)) + 10


def abs_power_max(m: sp.Matrix, k: int) -> mpmath.mpf:
    """The largest entry of |m|^k, for a bound: no cancellation, so float64 is good to
    (3k + 2) u where |m|_F^k stays inside its range; else 20 digits of mpmath."""
    a = np.abs(float_matrix(m))
    norm = float(np.linalg.norm(a))
    if norm == 0:
        return mpmath.mpf(0)
    inside = math.log(FLOAT_SAFE[0]) < k * math.log(norm) < math.log(FLOAT_SAFE[1])
    if inside and np.all((a == 0) | (a > FLOAT_SAFE[0])):
        return mpmath.mpf(float(np.max(np.linalg.matrix_power(a, k)))) * (1 + (3 * k + 2) * U64)
    with mpmath.workdps(20):
        p = mpmath.matrix([[abs(to_mp(v)) for v in row] for row in m.tolist()]) ** k
        return max(p[i, j] for i in range(m.rows) for j in range(m.cols))


def scaled_rel_error(got: Any, ref: Any) -> float:
    """``rel_error`` for values of any size: both divided by their largest magnitude first (a
    mixed relative error is unchanged by a common scale); exact references at 40 digits."""
    with mpmath.workdps(40):
        g = [as_mp(x) for x in np.asarray(got, dtype=object).ravel()]
        r = [as_mp(x) for x in np.asarray(ref, dtype=object).ravel()]
        scale = max([abs(x) for x in g + r] + [mpmath.mpf(0)]) or mpmath.mpf(1)
        return rel_error([float(x / scale) for x in g], [float(x / scale) for x in r])


def as_mp(x: Any) -> mpmath.mpf:
    if isinstance(x, mpmath.mpf):
        return x
    if isinstance(x, float | int | np.floating):
        return mpmath.mpf(float(x)) if isinstance(x, float | np.floating) else mpmath.mpf(x)
    return to_mp(sp.sympify(x))


def matrix_power(m: sp.Matrix, k: int) -> sp.Matrix:
    """m^k exactly, by squaring, each product expanded (entries stay a + b*sqrt(d))."""
    out, base = sp.eye(m.rows), m
    while k:
        if k & 1:
            out = (out * base).applyfunc(sp.expand)
        k >>= 1
        if k:
            base = (base * base).applyfunc(sp.expand)
    return out


def with_eigenvalues(q: sp.Matrix, values: list[sp.Expr]) -> sp.Matrix:
    """Q diag(values) Q^-1: a matrix with the eigenvectors Q and chosen eigenvalues."""
    # radsimp + expand: entries in a canonical a + b*sqrt(d) form, so powers stay small.
    return (q * sp.diag(*values) * q.inv()).applyfunc(lambda v: sp.expand(sp.radsimp(v)))


def float_norm(p: list[list[Any]], digits: int | None) -> Any:
    """The spectral norm of a power from ``numeric_power``: numpy's SVD for float64 entries,
    mpmath's at the same digits otherwise."""
    if digits is None:
        return np.linalg.norm(np.array(p, dtype=float), 2)
    with mpmath.workdps(digits):
        return max(mpmath.svd_r(mpmath.matrix(p), compute_uv=False))


def frobenius(m: sp.Matrix) -> float:
    """The Frobenius (for a vector: Euclidean) norm of exact entries, as a float for bounds."""
    with mpmath.workdps(20):
        return float(mpmath.sqrt(sum(to_mp(v) ** 2 for v in m)))


def terminating(v: sp.Rational) -> bool:
    """True when ``v`` has a finite decimal expansion (denominator 2^a 5^b)."""
    return v.is_Rational and set(sp.factorint(v.q)) <= {2, 5}


def exact_norm(m: sp.Matrix) -> float:
    """|m| after exact simplification: 0.0 exactly when m is the zero matrix."""
    return float(m.applyfunc(lambda v: sp.simplify(sp.radsimp(v))).norm())


def fraction_power(w: sp.Matrix, n: int) -> list[list[Fraction]]:
    """w^n by n plain multiplications in Python's Fractions (no SymPy, no squaring)."""
    m = [[Fraction(str(v)) for v in row] for row in w.tolist()]
    out = [[Fraction(int(i == j)) for j in range(2)] for i in range(2)]
    for _ in range(n):
        out = [[sum(out[i][k] * m[k][j] for k in range(2)) for j in range(2)] for i in range(2)]
    return out


def compared(got: Any, exact: Any, digits: int | None) -> float:
    """Error of ``got`` (float64 if ``digits`` is None, else mpmath numbers) against the exact
    numbers ``exact`` (a matrix or a sequence)."""
    exact = exact.tolist() if isinstance(exact, sp.MatrixBase) else list(exact)
    if digits is None:
        return rel_error(np.array(exact, dtype=float), np.array(got))
    return scaled_rel_error(got, exact)


def numeric_eigenvalues(
    w: sp.Matrix, q: sp.Matrix, lam: sp.Matrix, tol: float
) -> tuple[list[Any], int | None]:
    """W's eigenvalues again, in increasing order: from the float W by LAPACK, or by mpmath
    where float64's error bound exceeds tol/4; (values, None) or (values, digits).

    A backward-stable eigensolver finds the eigenvalues of W + E, ||E|| <= c u ||W|| (c = 8
    covers LAPACK's 2x2 case with room), which moves lambda_i by kappa_i ||E|| to first
    order, kappa_i = ||q_i|| ||p_i|| (p_i the i-th row of Q^-1, Wilkinson's condition
    number); Q and Lambda are the exact decomposition, used for the bound only.  Non-normal
    W with large entries and small eigenvalues lose digits there.
    """
    top = max(abs(v) for v in lam.diagonal())
    if top == 0:  # W = 0: both routes give zeros exactly
        loss = 0.0
    else:
        q_inv = q.inv()
        kappa = max(frobenius(q[:, i]) * frobenius(q_inv[i, :]) for i in range(q.cols))
        loss = 8 * kappa * frobenius(w) / frobenius(sp.Matrix([top]))
    if loss * U64 <= tol / 4:
        eig = np.linalg.eigvals(np.array(w.tolist(), dtype=float))
        return list(np.sort(eig.real)), None
    dps = int(mpmath.ceil(mpmath.log10(loss / (tol / 4)))) + 10
    with mpmath.workdps(dps):
        wm = mpmath.matrix([[to_mp(v) for v in row] for row in w.tolist()])
        return sorted(mpmath.re(v) for v in mpmath.eig(wm, left=False, right=False)), dps
