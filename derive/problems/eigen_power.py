"""Matrix powers through the eigendecomposition (LMU exercise 5-2 b, c).

For a diagonalizable M = Q Λ Q^-1, M^n = Q Λ^n Q^-1 (by induction on n).  For the
handout's W the engine finds Q and Λ exactly (rationals), computes W^n exactly, checks the
decomposition printed in the handout against W, and shows with numbers what eigenvalues
below, above and equal to one do to W^n.
"""

from __future__ import annotations

from fractions import Fraction
from functools import cached_property
from typing import Any

import numpy as np
import sympy as sp

from derive.errors import InputError
from derive.params import Int, Matrix, Param, Vector, exact_number
from derive.problems.base import Problem, Result, json_rows
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


def spectral_norm(m: sp.Matrix) -> float:
    """||m||_2, exactly: the square root of the largest eigenvalue of m^T m, then a float.

    For 2x2 that eigenvalue is (tr + sqrt(tr^2 - 4 det)) / 2, evaluated to 30 digits; the
    general route (eigenvals, then comparing radicals) took seconds on entries in Q(sqrt 5).
    """
    s = (m.T * m).applyfunc(sp.expand)
    if s.shape != (2, 2):
        return float(sp.sqrt(max(s.eigenvals(multiple=True))))
    tr, det = sp.expand(s.trace()), sp.expand(s.det())
    top = (tr + sp.sqrt(sp.expand(tr**2 - 4 * det))) / 2
    return float(sp.sqrt(top).evalf(30))


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
            norms = [spectral_norm(matrix_power(m, k)) for k in (1, 10, n, 100)]
            out[f"regime_{_slug(name)}"] = Result(
                f"regime_{_slug(name)}",
                sp.Matrix([values]),
                m,
                value={"eigenvalues": [str(v) for v in values], "norm_powers": norms},
            )
        return out

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
        eig = np.linalg.eigvals(np.array(self.w.tolist(), dtype=float))
        rows.append(
            Check(
                "Lambda",
                "numpy.linalg.eigvals of float W",
                "2x2",
                rel_error(np.sort(eig.real), np.array(lam.diagonal(), dtype=float).ravel()),
                1e-13,
            )
        )
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
        numeric = np.linalg.matrix_power(np.array(self.w.tolist(), dtype=float), self.n)
        rows.append(
            Check(
                "W_power",
                "numpy.linalg.matrix_power (float64)",
                f"n={self.n}",
                rel_error(np.array(power.tolist(), dtype=float), numeric),
                1e-12,
            )
        )
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

    def _given_checks(self) -> list[Check]:
        """The stated decomposition's verdicts against independent float64 products."""
        r = self.results
        rows = []
        qg = np.array(self.given_q.tolist(), dtype=float)
        prod = (
            qg
            @ np.diag(np.diag(np.array(self.given_lambda.tolist(), dtype=float)))
            @ np.linalg.inv(qg)
        )
        mismatch = float(np.max(np.abs(prod - np.array(self.w.tolist(), dtype=float))))
        verdict_agrees = (mismatch < 1e-12) == bool(r["given_decomposition_ok"].value)
        exact_product = np.array(r["given_product"].expr.tolist(), dtype=float)
        rows.append(
            Check(
                "given_product",
                "float64 product of the handout's factors",
                "2x2",
                rel_error(exact_product, prod),
                1e-14,
            )
        )
        method = f"float64 product: max |Q L Q^-1 - W| = {mismatch:.2f}"
        rows.append(
            Check(
                "given_decomposition_ok",
                method,
                "handout's Q, Lambda",
                float(not verdict_agrees),
                0.0,
            )
        )
        lam_g = np.diag(np.diag(np.array(self.given_lambda.tolist(), dtype=float)))
        qt = qg.T @ lam_g @ np.linalg.inv(qg.T)
        t_mismatch = float(np.max(np.abs(qt - np.array(self.w.tolist(), dtype=float))))
        agrees = (t_mismatch < 1e-12) == bool(r["given_q_transposed_ok"].value)
        method = f"float64 product with Q transposed: max deviation {t_mismatch:.1e}"
        rows.append(
            Check("given_q_transposed_ok", method, "handout's Q, Lambda", float(not agrees), 0.0)
        )
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

    def _regime_check(self, name: str, m: sp.Matrix) -> Check:
        """||W^k||_2 by numpy (float64 powers, SVD) against the exact value."""
        w = np.array(m.tolist(), dtype=float)
        name = _slug(name)
        expected = [float(v) for v in self.results[f"regime_{name}"].value["norm_powers"]]
        got = [np.linalg.norm(np.linalg.matrix_power(w, k), 2) for k in (1, 10, self.n, 100)]
        return Check(
            f"regime_{name}",
            "numpy: spectral norm of W^k",
            f"k = 1, 10, {self.n}, 100",
            rel_error(got, expected),
            1e-10,
        )

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
            regimes.append((name, m, list(result.expr), result.value["norm_powers"]))
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
            "lambda_n": sp.diag(
                *[sp.UnevaluatedExpr(lam[i, i]) ** self.n for i in range(lam.rows)]
            ),
            "power_decimal": r["W_power"].expr.evalf(6),
            "orthogonal": q.T == r["Q_inv"].expr,
            "terminating": all(_terminating(v) for v in self.w),
            "given_q": self.given_q,
            "given_lambda": self.given_lambda,
            "regimes": regimes,
            "norm_steps": (1, 10, self.n, 100),
            "plot": self.norm_plot(),
            "defective": self.regimes()["unit, defective"],
            "defective_power": self.regimes()["unit, defective"] ** sp.Symbol("k", positive=True),
        }

    def norm_plot(self, steps: int = 40) -> Plot:
        """||W^k||_2 against k for the three regimes, computed with numpy (log scale)."""
        series = {}
        for name, m in self.regimes().items():
            w = np.array(m.tolist(), dtype=float)
            norms = [np.linalg.norm(np.linalg.matrix_power(w, k), 2) for k in range(1, steps + 1)]
            series[name] = list(zip(range(1, steps + 1), norms, strict=True))
        return log_plot(series, "power k", "spectral norm of the k-th power")


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
