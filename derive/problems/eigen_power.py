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

from derive.problems.base import Problem, Result, json_rows
from derive.render.plot import Plot, log_plot
from derive.verify import Check, rel_error

#: The handout's W and the decomposition it states (LMU exercise 5-2 c), as printed.
HANDOUT_W = [["0.58", "0.24"], ["0.24", "0.72"]]
HANDOUT_Q = [["0.8", "-0.6"], ["0.6", "0.8"]]
HANDOUT_LAMBDA = ["0.4", "0.9"]
HANDOUT_N = 30


def rational_matrix(rows: list[list[str]]) -> sp.Matrix:
    """A matrix of exact rationals from decimal strings (never through floats)."""
    return sp.Matrix([[sp.Rational(v) for v in row] for row in rows])


def eigendecomposition(w: sp.Matrix) -> tuple[sp.Matrix, sp.Matrix]:
    """Q (unit eigenvectors as columns) and Λ, eigenvalues in increasing order, exactly."""
    pairs = sorted(w.eigenvects(), key=lambda p: p[0])
    cols, values = [], []
    for value, multiplicity, vectors in pairs:
        for v in vectors:
            v = v / sp.sqrt((v.T * v)[0])
            # A fixed sign (first nonzero entry positive) makes Q unique.
            first = next(x for x in v if x != 0)
            cols.append(sp.simplify(v * sp.sign(first)))
            values.append(value)
        if len(vectors) < multiplicity:
            raise ValueError("matrix is not diagonalizable")
    return sp.Matrix.hstack(*cols), sp.diag(*values)


def spectral_norm(m: sp.Matrix) -> float:
    """||m||_2, exactly: the square root of the largest eigenvalue of m^T m, then a float."""
    return float(sp.sqrt(max((m.T * m).eigenvals(multiple=True))))


def _slug(name: str) -> str:
    return name.replace(", ", "_")


def symmetric_with_eigenvalues(q: sp.Matrix, values: list[sp.Expr]) -> sp.Matrix:
    """Q diag(values) Q^T: a matrix with the same eigenvectors and chosen eigenvalues."""
    return q * sp.diag(*values) * q.T


class EigenPower(Problem):
    """M^n = Q Λ^n Q^-1, the handout's W^30, and the role of the eigenvalues."""

    key = "eigen_power"
    title = "Matrix powers and eigenvalues (vanishing and exploding gradients)"

    def __init__(
        self,
        w: list[list[str]] = HANDOUT_W,
        n: int = HANDOUT_N,
        given_q: list[list[str]] = HANDOUT_Q,
        given_lambda: list[str] = HANDOUT_LAMBDA,
    ) -> None:
        self.w_text = w
        self.w = rational_matrix(w)
        self.n = n
        # The decomposition the handout states, checked against W (not trusted).
        self.given_q = rational_matrix(given_q)
        self.given_lambda = sp.diag(*[sp.Rational(v) for v in given_lambda])

    @cached_property
    def decomposition(self) -> tuple[sp.Matrix, sp.Matrix]:
        return eigendecomposition(self.w)

    def regimes(self) -> dict[str, sp.Matrix]:
        """Three matrices with W's eigenvectors: contracting, expanding, unit eigenvalues."""
        q, lam = self.decomposition
        small, large = lam[0, 0], lam[1, 1]
        return {
            "contracting": self.w,
            "expanding": symmetric_with_eigenvalues(q, [small, large + sp.Rational(1, 5)]),
            "unit": symmetric_with_eigenvalues(q, [1, 1]),
            # All eigenvalues 1 but a single eigenvector: not diagonalizable (a Jordan block).
            "unit, defective": sp.Matrix([[1, 1], [0, 1]]),
        }

    # -- derivation ---------------------------------------------------------------------------
    def derive(self) -> dict[str, Result]:
        q, lam = self.decomposition
        n = self.n
        power = q * lam**n * q.inv()
        given = self.given_q * self.given_lambda * self.given_q.inv()
        ok = given == self.w
        # A common slip: eigenvectors written as rows.  Is the transpose of the given Q right?
        transposed = self.given_q.T * self.given_lambda * self.given_q.T.inv() == self.w
        out = {
            "W": Result("W", self.w, sp.Symbol("W"), value=json_rows(self.w)),
            "Q": Result("Q", q, sp.Symbol("Q"), value=json_rows(q)),
            "Lambda": Result("Lambda", lam, sp.Symbol("Lambda"), value=json_rows(lam)),
            "Q_inv": Result("Q_inv", q.inv(), sp.Symbol("Q^{-1}"), value=json_rows(q.inv())),
            "W_power": Result("W_power", power, sp.Symbol(f"W^{{{n}}}"), value=json_rows(power)),
            "given_product": Result("given_product", given, None, value=json_rows(given)),
            "given_decomposition_ok": Result(
                "given_decomposition_ok", sp.true if ok else sp.false, value=ok
            ),
            "given_q_transposed_ok": Result(
                "given_q_transposed_ok", sp.true if transposed else sp.false, value=transposed
            ),
        }
        out.update(self._induction())
        for name, m in self.regimes().items():
            values = sorted(m.eigenvals(multiple=True))
            norms = [spectral_norm(m**k) for k in (1, 10, n, 100)]
            out[f"regime_{_slug(name)}"] = Result(
                f"regime_{_slug(name)}",
                sp.Matrix([values]),
                m,
                value={"eigenvalues": [str(v) for v in values], "norm_powers": norms},
            )
        return out

    def _induction(self) -> dict[str, Result]:
        """The inductive step as an identity in symbols, and the claim for small n."""
        a, b, c, d, l1, l2 = sp.symbols("q_11 q_12 q_21 q_22 lambda_1 lambda_2")
        k = sp.Symbol("n", integer=True, positive=True)
        q = sp.Matrix([[a, b], [c, d]])
        lam_k = sp.diag(l1**k, l2**k)
        lam = sp.diag(l1, l2)
        step = (
            q * lam_k * q.inv() * (q * lam * q.inv())
            - q * sp.diag(l1 ** (k + 1), l2 ** (k + 1)) * q.inv()
        )
        return {
            "induction_step": Result("induction_step", step.applyfunc(sp.simplify)),
        }

    # -- verification -------------------------------------------------------------------------
    def verify(self) -> list[Check]:
        q, lam = self.decomposition
        r = self.results
        rows = []
        # Eigenpairs and reconstruction, in exact arithmetic.
        pairs = max(
            abs(float(sp.Matrix(self.w * q[:, i] - lam[i, i] * q[:, i]).norm()))
            for i in range(q.cols)
        )
        rows.append(Check("Q", "exact: max |W q_i - lambda_i q_i|", "2x2, rationals", pairs, 0.0))
        recon = float((q * lam * q.inv() - self.w).norm())
        rows.append(Check("Lambda", "exact: |Q Lambda Q^-1 - W|", "2x2, rationals", recon, 0.0))
        parsed = max(
            abs(Fraction(str(self.w[i, j])) - Fraction(v))
            for i, row in enumerate(self.w_text)
            for j, v in enumerate(row)
        )
        rows.append(
            Check("W", "Fractions: W against the decimals as written", "2x2", float(parsed), 0.0)
        )
        inverse = float((r["Q_inv"].expr * q - sp.eye(q.rows)).norm())
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
        # The handout's decomposition: the verdict against an independent float product.
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
        qt = qg.T @ np.diag(np.diag(np.array(self.given_lambda.tolist(), dtype=float))) @ qg
        t_mismatch = float(np.max(np.abs(qt - np.array(self.w.tolist(), dtype=float))))
        agrees = (t_mismatch < 1e-12) == bool(r["given_q_transposed_ok"].value)
        method = f"float64 product with Q transposed: max deviation {t_mismatch:.1e}"
        rows.append(
            Check("given_q_transposed_ok", method, "handout's Q, Lambda", float(not agrees), 0.0)
        )
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

    def _induction_small_n(self) -> Check:
        a, b, c, d, l1, l2 = sp.symbols("q_11 q_12 q_21 q_22 lambda_1 lambda_2")
        q = sp.Matrix([[a, b], [c, d]])
        m = q * sp.diag(l1, l2) * q.inv()
        bad = 0
        for k in range(1, 7):
            diff = (m**k - q * sp.diag(l1**k, l2**k) * q.inv()).applyfunc(sp.cancel)
            bad += not diff.is_zero_matrix
        return Check(
            "induction_step", "M^n by repeated products, symbolic 2x2", "n = 1..6", float(bad), 0.0
        )

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

    def context(self) -> dict[str, Any]:
        lam = self.decomposition[1]
        r = self.results
        regimes = []
        for name, m in self.regimes().items():
            value = r[f"regime_{_slug(name)}"].value
            regimes.append(
                (name, m, [sp.Rational(v) for v in value["eigenvalues"]], value["norm_powers"])
            )
        w, given = self.w, r["given_product"].expr
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


def _fraction_power(w: sp.Matrix, n: int) -> list[list[Fraction]]:
    m = [[Fraction(str(v)) for v in row] for row in w.tolist()]
    out = [[Fraction(int(i == j)) for j in range(2)] for i in range(2)]
    for _ in range(n):
        out = [[sum(out[i][k] * m[k][j] for k in range(2)) for j in range(2)] for i in range(2)]
    return out
