"""Matrix powers through the eigendecomposition (LMU exercise 5-2 b, c).

For a diagonalizable M = Q Λ Q^-1, M^n = Q Λ^n Q^-1 (by induction on n).  For the
handout's W the engine finds Q and Λ exactly (rationals), computes W^n exactly, checks the
decomposition printed in the handout against W, and shows with numbers what eigenvalues
below, above and equal to one do to W^n.

W may be any diagonalizable 2x2 matrix of exact numbers up to 10^6 (denominators up to
10^6) and n up to 200, so W^n reaches 10^1200 and its irrational relatives cancel through
thousands of digits.  The numeric checks therefore run in float64 only where a rounding
bound (in each helper's docstring) shows that float64 holds and resolves the numbers, and
otherwise in mpmath with as many digits as the same bound asks for.
"""

from __future__ import annotations

import math
import sys
from fractions import Fraction
from functools import cached_property, lru_cache
from typing import Any

import mpmath
import numpy as np
import sympy as sp

from derive.errors import InputError
from derive.params import Int, Matrix, Param, Vector, exact_number
from derive.problems.base import Problem, Result, json_float, json_rows
from derive.render.plot import Plot, log_plot
from derive.verify import Check, rel_error

#: The handout's W and the decomposition it states (LMU exercise 5-2 c), as printed.
HANDOUT_W = [["0.58", "0.24"], ["0.24", "0.72"]]
HANDOUT_Q = [["0.8", "-0.6"], ["0.6", "0.8"]]
HANDOUT_LAMBDA = ["0.4", "0.9"]
HANDOUT_N = 30
#: Largest power a set may ask for (exact entries of W^n grow with n).
MAX_N = 200
#: The eigenvector directions of generated matrices: a rotation with rational cos and sin.
ROTATION = ("4/5", "3/5")
#: Most matrices the generator makes: one per version at most (derive.variants.MAX_VERSIONS).
MAX_MATRICES = 1000
#: Powers k at which the regimes' norms are tabulated (n is the set's power).
NORM_STEPS = (1, 10, None, 100)
#: Significant digits of the exact spectral norms; and the first try of the mpmath routes.
NORM_DIGITS, START_DIGITS = 30, 30
#: Unit roundoff of float64, and the magnitudes inside which its rounding bounds hold with
#: room to spare (far from overflow at 1.8e308 and from the subnormals below 2.2e-308).
U64 = 2.0**-53
FLOAT_SAFE = (sys.float_info.min * 2.0**100, sys.float_info.max * 2.0**-100)
#: Relative accuracy of the plotted norms.
PLOT_TOL = 1e-6
#: Digits of the longest numerator or denominator W^n may have to be printed exactly (the
#: handout's W^30 has 31; a 2x2 matrix of 40-digit fractions still fits the line).
PRINTED_DIGITS = 40


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


def symmetric_candidates(spec: Any, where: str) -> list[list[list[str]]]:
    """Symmetric W = R diag(a, b) R^T for every pair of eigenvalues on two grids.

    ``spec`` is ``{eigenvalues = [{min, max, step}, {min, max, step}], rotation = [c, s]}``
    (rotation optional, c^2 + s^2 = 1, default 4/5, 3/5): rational eigenvectors keep W^n exact.
    """
    if not isinstance(spec, dict) or set(spec) - {"eigenvalues", "rotation"}:
        raise InputError(f"{where}: expected a table with keys eigenvalues and rotation")
    rotation = spec.get("rotation", ROTATION)
    if not isinstance(rotation, list | tuple) or len(rotation) != 2:
        raise InputError(f"{where}.rotation: expected [cos, sin], two exact numbers")
    c, s = (exact_number(v, f"{where}.rotation[{i}]") for i, v in enumerate(rotation))
    if c**2 + s**2 != 1:
        raise InputError(f"{where}.rotation: cos^2 + sin^2 must be exactly 1, got {c}, {s}")
    grids = spec.get("eigenvalues")
    if not isinstance(grids, list) or len(grids) != 2:
        raise InputError(f"{where}.eigenvalues: expected two ranges {{min, max, step}}")
    values = [_grid(g, f"{where}.eigenvalues[{i}]") for i, g in enumerate(grids)]
    count = len(values[0]) * len(values[1])
    if count > MAX_MATRICES:  # each costs a symbolic product: refuse before making them
        raise InputError(
            f"{where}.eigenvalues: the grids give {count} matrices; at most {MAX_MATRICES}"
        )
    rot = sp.Matrix([[c, -s], [s, c]])
    out = []
    for a in values[0]:
        for b in values[1]:
            w = with_eigenvalues(rot, [a, b])
            out.append([[str(v) for v in row] for row in w.tolist()])
    return out


def _grid(spec: Any, where: str) -> list[sp.Rational]:
    if not isinstance(spec, dict) or set(spec) != {"min", "max", "step"}:
        raise InputError(f"{where}: expected a table {{min, max, step}}")
    lo, hi, step = (exact_number(spec[k], f"{where}.{k}") for k in ("min", "max", "step"))
    if step <= 0 or hi < lo or (hi - lo) / step > 100:
        raise InputError(f"{where}: expected min <= max and 0 < step, at most 100 steps")
    return [lo + i * step for i in range(int((hi - lo) / step) + 1)]


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
    f = sp.expand(sum(v**2 for v in m))
    d2 = sp.expand(m.det() ** 2)
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
        return _mp_rational(v)
    a, rest = v.as_coeff_Add()
    b, root = rest.as_coeff_Mul()
    if root.is_Pow and root.exp == sp.S.Half and root.base.is_Rational:
        d = root.base
        with mpmath.workdps(mpmath.mp.dps + 10):
            sqrt_d = mpmath.sqrt(_mp_rational(d))
            if a == 0 or (a > 0) == (b > 0):
                out = _mp_rational(a) + _mp_rational(b) * sqrt_d
            else:
                out = _mp_rational(a * a - b * b * d) / (_mp_rational(a) - _mp_rational(b) * sqrt_d)
        return +out
    digits = mpmath.mp.dps + 10
    return mpmath.mpf(sp.N(v, digits, strict=True)._to_mpmath(mpmath.mp.prec + 40))


def _mp_rational(v: sp.Rational) -> mpmath.mpf:
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
    nq, nl, ni = _norm(q), _norm(lam), _norm(q.inv())
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
        return float(1 / _mp_rational(sp.Rational(bound)))


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
    size = _abs_power_max(m, k)
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


def _abs_power_max(m: sp.Matrix, k: int) -> mpmath.mpf:
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
        g = [_as_mp(x) for x in np.asarray(got, dtype=object).ravel()]
        r = [_as_mp(x) for x in np.asarray(ref, dtype=object).ravel()]
        scale = max([abs(x) for x in g + r] + [mpmath.mpf(0)]) or mpmath.mpf(1)
        return rel_error([float(x / scale) for x in g], [float(x / scale) for x in r])


def _as_mp(x: Any) -> mpmath.mpf:
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


def _slug(name: str) -> str:
    return name.replace(", ", "_")


def with_eigenvalues(q: sp.Matrix, values: list[sp.Expr]) -> sp.Matrix:
    """Q diag(values) Q^-1: a matrix with the eigenvectors Q and chosen eigenvalues."""
    # radsimp + expand: entries in a canonical a + b*sqrt(d) form, so powers stay small.
    return (q * sp.diag(*values) * q.inv()).applyfunc(lambda v: sp.expand(sp.radsimp(v)))


class EigenPower(Problem):
    """M^n = Q Λ^n Q^-1, the handout's W^30, and the role of the eigenvalues."""

    key = "eigen_power"
    title = "Matrix powers and eigenvalues (vanishing and exploding gradients)"
    #: Names the printer spells through the set's notation (``Problem.symbols``).
    SYMBOLS = ("k",)
    # The handout gives W, and states a decomposition whose eigenvalues are right and whose
    # Q is the derived Q^-1 (eigenvectors in rows): given data equal to two results.
    GIVEN = ("W", "Lambda", "Q_inv")

    PARAMS = (
        Param(
            "W",
            Matrix(2, 2),
            rational_matrix(HANDOUT_W),
            "the matrix whose powers are taken",
            generate=symmetric_candidates,
        ),
        Param("n", Int(1, MAX_N), HANDOUT_N, "the power asked for"),
        Param(
            "given_Q",
            Matrix(2, 2),
            None,
            "a stated eigenvector matrix to check (default: the handout's, for its W)",
        ),
        Param("given_Lambda", Vector(2), None, "the eigenvalues stated with given_Q"),
    )

    def __init__(
        self,
        W: sp.Matrix | None = None,  # noqa: N803 - the handout's W
        n: int = HANDOUT_N,
        given_Q: sp.Matrix | None = None,  # noqa: N803
        given_Lambda: list | None = None,  # noqa: N803
    ) -> None:
        self.w = rational_matrix(HANDOUT_W) if W is None else sp.Matrix(W)
        self.n = n
        q, lam = given_Q, given_Lambda
        if (q is None) != (lam is None):
            raise InputError("params.eigen_power: give both given_Q and given_Lambda, or neither")
        if q is None and self.w == rational_matrix(HANDOUT_W):
            q, lam = rational_matrix(HANDOUT_Q), HANDOUT_LAMBDA
        # A decomposition stated with the question, checked against W (not trusted).
        self.given_q = None if q is None else sp.Matrix(q)
        self.given_lambda = None if lam is None else sp.diag(*[sp.Rational(v) for v in lam])
        if self.given_q is not None and self.given_q.det() == 0:
            raise InputError(
                "params.eigen_power.given_Q: singular; the eigenvectors must be independent"
            )
        _ = self.decomposition  # fail now, with the field named, if W cannot be diagonalized

    @cached_property
    def decomposition(self) -> tuple[sp.Matrix, sp.Matrix]:
        if any(not v.is_real for v in self.w.eigenvals()):
            raise InputError(
                f"params.eigen_power.W: {self.w.tolist()} has complex eigenvalues; the problem "
                "needs a matrix diagonalizable over the reals (a symmetric one always is)"
            )
        try:
            return eigendecomposition(self.w)
        except ValueError:
            raise InputError(
                f"params.eigen_power.W: {self.w.tolist()} is not diagonalizable (a repeated "
                "eigenvalue with a single eigenvector); the problem needs a diagonalizable matrix"
            ) from None

    def regimes(self) -> dict[str, sp.Matrix]:
        """Matrices with W's eigenvectors: contracting, expanding, unit eigenvalues.

        W itself stands for its own regime; the others rescale or shift its eigenvalues.
        """
        q, lam = self.decomposition
        small, large = lam[0, 0], lam[1, 1]
        top = max(abs(small), abs(large))
        shrink = sp.Rational(9, 10) / top if top >= 1 else 1
        grow = 0 if top > 1 else 1 - top + sp.Rational(1, 5)
        return {
            "contracting": with_eigenvalues(q, [small * shrink, large * shrink]),
            "expanding": with_eigenvalues(q, [small, large + grow]),
            "unit": with_eigenvalues(q, [1, 1]),
            # All eigenvalues 1 but a single eigenvector: not diagonalizable (a Jordan block).
            "unit, defective": sp.Matrix([[1, 1], [0, 1]]),
        }

    # -- derivation ---------------------------------------------------------------------------
    def derive(self) -> dict[str, Result]:
        q, lam = self.decomposition
        n = self.n
        # radsimp + expand: irrational eigenvalues cancel back to W^n's rational entries.
        power = (q * lam**n * q.inv()).applyfunc(lambda v: sp.expand(sp.radsimp(v)))
        out = {
            "W": Result("W", self.w, sp.Symbol("W"), value=json_rows(self.w)),
            "Q": Result("Q", q, sp.Symbol("Q"), value=json_rows(q)),
            "Lambda": Result("Lambda", lam, sp.Symbol("Lambda"), value=json_rows(lam)),
            "Q_inv": Result("Q_inv", q.inv(), sp.Symbol("Q^{-1}"), value=json_rows(q.inv())),
            "W_power": Result("W_power", power, sp.Symbol(f"W^{{{n}}}"), value=json_rows(power)),
        }
        if self.given_q is not None:
            out.update(self._given())
        out.update(self._induction())
        for name, m in self.regimes().items():
            values = sorted(m.eigenvals(multiple=True))
            norms = self.regime_norms[name]
            out[f"regime_{_slug(name)}"] = Result(
                f"regime_{_slug(name)}",
                sp.Matrix([values]),
                m,
                value={
                    "eigenvalues": [str(v) for v in values],
                    "norm_powers": [json_float(x) for x in norms],
                },
            )
        return out

    @property
    def norm_steps(self) -> tuple[int, ...]:
        return tuple(self.n if k is None else k for k in NORM_STEPS)

    @cached_property
    def regime_norms(self) -> dict[str, list[mpmath.mpf]]:
        """||M^k||_2 of each regime at ``norm_steps``, from the exact powers (any size)."""
        return {
            name: [spectral_norm(matrix_power(m, k)) for k in self.norm_steps]
            for name, m in self.regimes().items()
        }

    def _given(self) -> dict[str, Result]:
        """The stated decomposition, multiplied out exactly; and the rows-for-columns slip."""
        given = self.given_q * self.given_lambda * self.given_q.inv()
        ok = given == self.w
        # A common slip: eigenvectors written as rows.  Is the transpose of the given Q right?
        transposed = self.given_q.T * self.given_lambda * self.given_q.T.inv() == self.w
        return {
            "given_product": Result("given_product", given, None, value=json_rows(given)),
            "given_decomposition_ok": Result(
                "given_decomposition_ok", sp.true if ok else sp.false, value=ok
            ),
            "given_q_transposed_ok": Result(
                "given_q_transposed_ok", sp.true if transposed else sp.false, value=transposed
            ),
        }

    def _induction(self) -> dict[str, Result]:
        """The inductive step as an identity in symbols, and the claim for small n."""
        a, b, c, d, l1, l2 = sp.symbols("q_11 q_12 q_21 q_22 lambda_1 lambda_2")
        k = sp.Symbol("n", integer=True, positive=True)
        q = sp.Matrix([[a, b], [c, d]])
        lam_k = sp.diag(l1**k, l2**k)
        lam = sp.diag(l1, l2)
        # Q^-1 = adj(Q) / det(Q): the step M^n M - Q Lambda^(n+1) Q^-1 is a polynomial matrix
        # over det(Q)^2, and expanding that numerator decides it (6x faster than simplify).
        adj, det = q.adjugate(), q.det()
        numerator = (
            q * lam_k * (adj * q) * lam * adj
            - det * q * sp.diag(l1 ** (k + 1), l2 ** (k + 1)) * adj
        )
        step = (numerator / det**2).applyfunc(lambda e: sp.cancel(sp.expand(e)))
        return {"induction_step": Result("induction_step", step)}

    # -- verification -------------------------------------------------------------------------
    def verify(self) -> list[Check]:
        q, lam = self.decomposition
        r = self.results
        rows = []
        # Eigenpairs and reconstruction, in exact arithmetic.
        pairs = max(_exact_norm(self.w * q[:, i] - lam[i, i] * q[:, i]) for i in range(q.cols))
        rows.append(Check("Q", "exact: max |W q_i - lambda_i q_i|", "2x2, exact", pairs, 0.0))
        recon = _exact_norm(q * lam * q.inv() - self.w)
        rows.append(Check("W", "exact: |Q Lambda Q^-1 - W|", "2x2, exact", recon, 0.0))
        rows.append(self._eigenvalue_check())
        inverse = _exact_norm(r["Q_inv"].expr * q - sp.eye(q.rows))
        rows.append(Check("Q_inv", "exact: |Q^-1 Q - I|", "2x2, rationals", inverse, 0.0))
        # W^n: exact by repeated multiplication in Fractions; float by numpy.
        exact = _fraction_power(self.w, self.n)
        power = r["W_power"].expr
        diff = max(
            abs(Fraction(str(power[i, j])) - exact[i][j]) for i in range(2) for j in range(2)
        )
        rows.append(
            Check(
                "W_power",
                f"Fractions: W multiplied {self.n} times",
                f"n={self.n}",
                float(diff),
                0.0,
            )
        )
        rows.append(self._numeric_power_check(power))
        if self.given_q is not None:
            rows += self._given_checks()
        # The induction: the step identity is zero; the claim holds for n = 1..6 in symbols.
        rows.append(
            Check(
                "induction_step",
                "simplify: step identity is the zero matrix",
                "symbolic 2x2, symbolic n",
                0.0 if r["induction_step"].expr.is_zero_matrix else 1.0,
                0.0,
            )
        )
        rows.append(self._induction_small_n())
        for name, m in self.regimes().items():
            rows.append(self._regime_check(name, m))
        return rows

    def _given_checks(self, tol: float = 1e-14) -> list[Check]:
        """The stated decomposition's verdicts against independent floating-point products
        (float64 unless its error bound is too wide, see ``stated_product``)."""
        r = self.results
        exact = r["given_product"].expr
        # Q Lambda Q^-1 - W, if not zero, has an entry of at least ``sep`` (see
        # ``separation``): a product within sep/4 of the truth decides equality exactly.
        sep = separation(self.given_q, self.given_lambda, self.w)
        top = max([abs(v) for v in exact] + [sp.Integer(0)])
        prod, digits = stated_product(self.given_q, self.given_lambda, float(top) * tol)
        error = _compared(prod, exact, digits)
        method = (
            "float64 product of the handout's factors"
            if digits is None
            else f"mpmath product of the handout's factors at {digits} digits"
        )
        rows = [Check("given_product", method, "2x2", error, tol)]
        texts = {
            "given_decomposition_ok": "{}: max |Q L Q^-1 - W| = {:.2f}",
            "given_q_transposed_ok": "{} with Q transposed: max deviation {:.1e}",
        }
        for key, q in (
            ("given_decomposition_ok", self.given_q),
            ("given_q_transposed_ok", self.given_q.T),
        ):
            prod, digits = stated_product(q, self.given_lambda, sep / 4)
            with mpmath.workdps(digits or 15):
                mismatch = max(
                    abs(_as_mp(prod[i][j]) - _mp_rational(self.w[i, j]))
                    for i in range(2)
                    for j in range(2)
                )
                agrees = bool(mismatch < sep / 2) == bool(r[key].value)
            route = "float64 product" if digits is None else f"mpmath product ({digits} digits)"
            method = texts[key].format(route, float(mismatch))
            rows.append(Check(key, method, "handout's Q, Lambda", float(not agrees), 0.0))
        return rows

    def _induction_small_n(self) -> Check:
        a, b, c, d, l1, l2 = sp.symbols("q_11 q_12 q_21 q_22 lambda_1 lambda_2")
        q = sp.Matrix([[a, b], [c, d]])
        # M = Q diag(l) Q^-1 = N / det Q with N = Q diag(l) adj Q, a polynomial matrix; so
        # M^n = Q diag(l^n) Q^-1 exactly when N^n = det(Q)^(n-1) Q diag(l^n) adj Q.
        # Expanded polynomials decide that without rational-function cancellation (3x faster).
        adj, det = q.adjugate(), q.det()
        n_mat = (q * sp.diag(l1, l2) * adj).expand()
        power, bad = sp.eye(2), 0
        for k in range(1, 7):
            power = (power * n_mat).expand()
            rhs = (det ** (k - 1) * q * sp.diag(l1**k, l2**k) * adj).expand()
            bad += not (power - rhs).is_zero_matrix
        method = "M^n by repeated products, symbolic 2x2 (numerators over det Q)"
        return Check("induction_step", method, "n = 1..6", float(bad), 0.0)

    def _eigenvalue_check(self, tol: float = 1e-13) -> Check:
        """The eigenvalues again, from the float W by LAPACK, or by mpmath where float64's
        error bound exceeds tol/4.

        A backward-stable eigensolver finds the eigenvalues of W + E, ||E|| <= c u ||W|| (c = 8
        covers LAPACK's 2x2 case with room), which moves lambda_i by kappa_i ||E|| to first
        order, kappa_i = ||q_i|| ||p_i|| (p_i the i-th row of Q^-1, Wilkinson's condition
        number).  Non-normal W with large entries and small eigenvalues lose digits there.
        """
        q, lam = self.decomposition
        exact = list(lam.diagonal())
        top = max(abs(v) for v in exact)
        if top == 0:  # W = 0: both routes give zeros exactly
            loss = 0.0
        else:
            q_inv = q.inv()
            kappa = max(_norm(q[:, i]) * _norm(q_inv[i, :]) for i in range(q.cols))
            loss = 8 * kappa * _norm(self.w) / _norm(sp.Matrix([top]))
        if loss * U64 <= tol / 4:
            eig = np.linalg.eigvals(np.array(self.w.tolist(), dtype=float))
            error = rel_error(np.sort(eig.real), np.array(exact, dtype=float).ravel())
            return Check("Lambda", "numpy.linalg.eigvals of float W", "2x2", error, tol)
        dps = int(mpmath.ceil(mpmath.log10(loss / (tol / 4)))) + 10
        with mpmath.workdps(dps):
            w = mpmath.matrix([[to_mp(v) for v in row] for row in self.w.tolist()])
            got = sorted(mpmath.re(v) for v in mpmath.eig(w, left=False, right=False))
            error = scaled_rel_error(got, exact)
        return Check("Lambda", f"mpmath.eig at {dps} digits", "2x2", error, tol)

    def _numeric_power_check(self, power: sp.Matrix, tol: float = 1e-12) -> Check:
        """W^n by repeated squaring in floating point (float64 unless it cannot resolve it)."""
        got, digits = numeric_power(self.w, self.n, tol)
        error = _compared(got, power, digits)
        method = (
            "numpy.linalg.matrix_power (float64)"
            if digits is None
            else f"mpmath: W squared repeatedly at {digits} digits"
        )
        return Check("W_power", method, f"n={self.n}", error, tol)

    def _regime_check(self, name: str, m: sp.Matrix, tol: float = 1e-10) -> Check:
        """||W^k||_2 by an SVD of the floating-point powers against the exact value: numpy in
        float64, or mpmath where float64 cannot hold or resolve the powers."""
        steps = self.norm_steps
        expected = self.regime_norms[name]
        got, widest = [], None
        for k in steps:
            p, digits = numeric_power(m, k, tol)
            got.append(_float_norm(p, digits))
            if digits is not None:
                widest = max(widest or 0, digits)
        if widest is None:
            error = rel_error(got, [float(x) for x in expected])
            method = "numpy: spectral norm of W^k"
        else:
            # Norms from 1e-600 to 1e1200: each against its own value, not the largest's.
            error = max(scaled_rel_error([g], [e]) for g, e in zip(got, expected, strict=True))
            method = f"spectral norm of W^k (mpmath where float64 fails, up to {widest} digits)"
        steps_text = ", ".join(map(str, steps))
        return Check(f"regime_{_slug(name)}", method, f"k = {steps_text}", error, tol)

    def question_data(self) -> dict[str, Any]:
        return {
            "W": self.w,
            "n": self.n,
            "given_q": self.given_q,
            "given_lambda": self.given_lambda,
        }

    def context(self) -> dict[str, Any]:
        q, lam = self.decomposition
        r = self.results
        regimes = []
        for name, m in self.regimes().items():
            result = r[f"regime_{_slug(name)}"]
            regimes.append((name, m, list(result.expr), self.regime_norms[name]))
        w = self.w
        given = r["given_product"].expr if "given_product" in r else w
        wrong = [
            (f"({i + 1},{j + 1})", given[i, j], w[i, j])
            for i in range(w.rows)
            for j in range(w.cols)
            if given[i, j] != w[i, j]
        ]
        largest = max(abs(v) for v in lam.diagonal())
        return {
            **super().context(),
            "n": self.n,
            "given_wrong_entries": wrong,
            "sign_flips_only": all(g == -v for _, g, v in wrong),
            "largest_eigenvalue": largest,
            "power_shrinks": bool(largest < 1),
            "power_zero": r["W_power"].expr.is_zero_matrix,
            "power_digits": max(
                len(str(abs(v.p))) if v.q == 1 else max(len(str(abs(v.p))), len(str(v.q)))
                for v in r["W_power"].expr
            ),
            "printed_digits": PRINTED_DIGITS,
            "lambda_n": sp.diag(
                *[sp.UnevaluatedExpr(lam[i, i]) ** self.n for i in range(lam.rows)]
            ),
            "power_decimal": r["W_power"].expr.evalf(6),
            "orthogonal": q.T == r["Q_inv"].expr,
            "terminating": all(_terminating(v) for v in self.w),
            "given_q": self.given_q,
            "given_lambda": self.given_lambda,
            "regimes": regimes,
            "norm_steps": self.norm_steps,
            "plot": self.norm_plot(),
            "defective": self.regimes()["unit, defective"],
            "defective_power": self.regimes()["unit, defective"] ** sp.Symbol("k", positive=True),
        }

    def norm_plot(self, steps: int = 40) -> Plot:
        """||W^k||_2 against k for the regimes (log scale), from floating-point powers good to
        1e-6 (float64 where it holds them, else mpmath): far finer than the plot's 0.01 mm."""
        series = {}
        for name, m in self.regimes().items():
            norms = [_float_norm(*numeric_power(m, k, PLOT_TOL)) for k in range(1, steps + 1)]
            if all(x == 0 for x in norms):  # only W = 0 makes a regime vanish (contracting)
                name = f"{name}: every power is the zero matrix, which a log axis cannot show"
            series[name] = list(zip(range(1, steps + 1), norms, strict=True))
        return log_plot(series, "power k", "spectral norm of the k-th power")


def _float_norm(p: list[list[Any]], digits: int | None) -> Any:
    """The spectral norm of a power from ``numeric_power``: numpy's SVD for float64 entries,
    mpmath's at the same digits otherwise."""
    if digits is None:
        return np.linalg.norm(np.array(p, dtype=float), 2)
    with mpmath.workdps(digits):
        return max(mpmath.svd_r(mpmath.matrix(p), compute_uv=False))


def _norm(m: sp.Matrix) -> float:
    """The Frobenius (for a vector: Euclidean) norm of exact entries, as a float for bounds."""
    with mpmath.workdps(20):
        return float(mpmath.sqrt(sum(to_mp(v) ** 2 for v in m)))


def _terminating(v: sp.Rational) -> bool:
    """True when ``v`` has a finite decimal expansion (denominator 2^a 5^b)."""
    return v.is_Rational and set(sp.factorint(v.q)) <= {2, 5}


def _exact_norm(m: sp.Matrix) -> float:
    """|m| after exact simplification: 0.0 exactly when m is the zero matrix."""
    return float(m.applyfunc(lambda v: sp.simplify(sp.radsimp(v))).norm())


def _fraction_power(w: sp.Matrix, n: int) -> list[list[Fraction]]:
    m = [[Fraction(str(v)) for v in row] for row in w.tolist()]
    out = [[Fraction(int(i == j)) for j in range(2)] for i in range(2)]
    for _ in range(n):
        out = [[sum(out[i][k] * m[k][j] for k in range(2)) for j in range(2)] for i in range(2)]
    return out


def _compared(got, exact: sp.Matrix, digits: int | None) -> float:
    """Error of ``got`` (float64 if ``digits`` is None, else mpmath numbers) against the exact
    matrix ``exact``."""
    if digits is None:
        return rel_error(np.array(exact.tolist(), dtype=float), np.array(got))
    return scaled_rel_error(got, exact.tolist())
