"""EigenPower: the model (W, n, a stated decomposition), its derivation and its template data."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cached_property
from typing import Any, ClassVar

import mpmath
import sympy as sp

from derive.engine.exact_matrix import (
    eigendecomposition,
    float_norm,
    matrix_power,
    numeric_power,
    rational_matrix,
    spectral_norm,
    terminating,
    with_eigenvalues,
)
from derive.errors import InputError
from derive.params import Int, Kind, Matrix, Param, Quote, Vector
from derive.problems.base import Problem, Result, json_float, json_number, json_rows, truth
from derive.problems.eigen_power import claims
from derive.problems.eigen_power.docs import RESULTS
from derive.problems.eigen_power.params import (
    DEFECTIVE,
    HANDOUT_N,
    HANDOUT_W,
    MAX_N,
    NORM_STEPS,
    PLOT_STEPS,
    PLOT_TOL,
    PRINTED_DIGITS,
    K,
    slug,
    symmetric_candidates,
)
from derive.verify import Claim


def digits(v: sp.Rational) -> int:
    """Digits of the longer of a rational's numerator and denominator."""
    return len(str(abs(v.p))) if v.q == 1 else max(len(str(abs(v.p))), len(str(v.q)))


class EigenPower(Problem):
    """M^n = Q Λ^n Q^-1, the handout's W^30, and the role of the eigenvalues."""

    CLAIM_NAMES: ClassVar[dict[str, str]] = {
        # Literal names: these left-hand sides are display symbols no set may respell.
        "Q": "eigenvectors $Q$", "W": "$Q \\Lambda Q^{-1} = W$", "Lambda": "eigenvalues "
        "$\\Lambda$", "spectral_radius": "$\\rho(W)$", "Q_inv": "$Q^{-1}$", "W_power": "$W^n$",
        "defective_power": "$M^k$",
        "Q_orthogonal": "$Q$ orthogonal", "Lambda_power": "$\\Lambda^n$",
        "power_digits": "digits of $W^n$", "power_zero": "whether $W^n = 0$",
        "power_shrinks": "whether $W^n \\to 0$", "terminating": "whether $W^n$ has finite "
        "decimals", "given_product": "product of the stated factors",
        "given_decomposition_ok": "the stated decomposition",
        "given_wrong_entries": "its wrong entries", "given_sign_flips_only": "only signs wrong",
        "given_q_transposed_ok": "stated $Q$ transposed", "induction_step": "the induction step",
        "regime_contracting": "every $|\\lambda| < 1$", "regime_expanding": "some "
        "$|\\lambda| > 1$", "regime_unit": "every $|\\lambda| = 1$", "regime_unit_defective":
        "eigenvalue 1, not diagonalizable", "norm_curves": "the plotted norms",
        "flipped_W": "$W$ with those signs flipped", "flipped_decomposition_ok": "the stated "
        "decomposition of that $W$", "flipped_power": "its power through the stated factors",
        "flipped_same_eigenvalues": "$W'$ has the eigenvalues of $W$",
    }

    key = "eigen_power"
    title = "Matrix powers and eigenvalues (vanishing and exploding gradients)"
    MAIN = "W_power"
    RESULTS = RESULTS
    # The handout gives W, and states a decomposition whose eigenvalues are right and whose
    # Q is the derived Q^-1 (eigenvectors in rows): given data equal to two results.
    GIVEN = ("W", "Lambda", "Q_inv")
    #: Names the printer spells through the set's notation (``Problem.symbols``).
    SYMBOLS = ("k",)
    #: The problem's heading and its two parts, as a set's handout numbers them.
    LABELS = ("title", "induction", "power")
    #: What an original handout may print: its statement of W and of a decomposition (a
    #: remark on how its text may read is made only where a set quotes it).
    ORIGINAL: ClassVar[dict[str, Kind]] = {
        "text": Quote("the original's statement of W and its decomposition"),
    }

    SHOWN = ("W", "n", "given_Q", "given_Lambda")
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
            "a stated eigenvector matrix to check (default: none is stated)",
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
        """Q and Λ of W, exactly (eigenvalues increasing)."""
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
        # The eigenvalue of largest absolute value moves away from 0 to |lambda| = 6/5
        # (when no |lambda| exceeds 1 already): -0.9 becomes -1.2, not -0.7.
        grow = 0 if top > 1 else 1 - top + sp.Rational(1, 5)
        spread = [small, large]
        far = 0 if abs(small) > abs(large) else 1
        spread[far] += -grow if spread[far] < 0 else grow
        return {
            "contracting": with_eigenvalues(q, [small * shrink, large * shrink]),
            "expanding": with_eigenvalues(q, spread),
            "unit": with_eigenvalues(q, [1, 1]),
            DEFECTIVE: sp.Matrix([[1, 1], [0, 1]]),
        }

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

    # -- derivation ---------------------------------------------------------------------------
    def derive(self) -> dict[str, Result]:
        out = self._decomposition()
        if self.given_q is not None:
            out.update(self._given())
        out.update(self._induction())
        out.update(self._regimes())
        return out

    def _decomposition(self) -> dict[str, Result]:
        """1. Q, Λ and Q^-1 of W; 2. W^n = Q Λ^n Q^-1 exactly, its size and its digits,
        whether it is zero, shrinks with n, and has terminating decimals as W has."""
        q, lam = self.decomposition
        n = self.n
        # radsimp + expand: irrational eigenvalues cancel back to W^n's rational entries.
        power = (q * lam**n * q.inv()).applyfunc(lambda v: sp.expand(sp.radsimp(v)))
        radius = max(abs(v) for v in lam.diagonal())
        longest = max(digits(v) for v in power)
        return {
            "W": Result("W", self.w, sp.Symbol("W"), value=json_rows(self.w)),
            "Q": Result("Q", q, sp.Symbol("Q"), value=json_rows(q)),
            "Lambda": Result("Lambda", lam, sp.Symbol("Lambda"), value=json_rows(lam)),
            "spectral_radius": Result(
                "spectral_radius", radius, sp.Symbol(r"\rho(W)"), value=json_number(radius)
            ),
            "Q_inv": Result("Q_inv", q.inv(), sp.Symbol("Q^{-1}"), value=json_rows(q.inv())),
            # Whether Q^-1 is Q^T (unit, orthogonal eigenvectors): the key says so when it is.
            "Q_orthogonal": truth("Q_orthogonal", q.T == q.inv()),
            # Λ^n as printed in W^n = Q Λ^n Q^-1: each eigenvalue's power, not multiplied out.
            "Lambda_power": Result(
                "Lambda_power",
                sp.diag(*[sp.UnevaluatedExpr(v) ** n for v in lam.diagonal()]),
                value=json_rows(lam**n),
            ),
            "W_power": Result("W_power", power, sp.Symbol(f"W^{{{n}}}"), value=json_rows(power)),
            "power_digits": Result("power_digits", sp.Integer(longest), value=longest),
            # What the key says of W^n: zero, shrinking (rho < 1), exact as decimals.
            "power_zero": truth("power_zero", power.is_zero_matrix),
            "power_shrinks": truth("power_shrinks", bool(radius < 1)),
            "terminating": truth("terminating", all(terminating(v) for v in self.w)),
        }

    def _given(self) -> dict[str, Result]:
        """The stated decomposition multiplied out exactly; where it differs from W; and the
        rows-for-columns slip (is the transpose of the given Q right?)."""
        given = self.given_q * self.given_lambda * self.given_q.inv()
        transposed = self.given_q.T * self.given_lambda * self.given_q.T.inv() == self.w
        w = self.w
        wrong = [(i, j) for i in range(w.rows) for j in range(w.cols) if given[i, j] != w[i, j]]
        flips = all(given[i, j] == -w[i, j] for i, j in wrong)
        positions = [[i + 1, j + 1] for i, j in wrong]
        out = self._flipped(wrong) if wrong and flips else {}
        return out | {
            "given_product": Result("given_product", given, None, value=json_rows(given)),
            "given_decomposition_ok": truth("given_decomposition_ok", given == w),
            "given_wrong_entries": Result(
                "given_wrong_entries",
                sp.Tuple(*[sp.Tuple(*pos) for pos in positions]),
                value=positions,
            ),
            "given_sign_flips_only": truth("given_sign_flips_only", bool(wrong) and flips),
            "given_q_transposed_ok": truth("given_q_transposed_ok", transposed),
        }

    def _flipped(self, wrong: list[tuple[int, int]]) -> dict[str, Result]:
        """The other reading when the stated product is W with some signs flipped: W with
        those entries negated (a text that lost its minus signs), which the stated
        decomposition then does decompose, and its n-th power through that decomposition."""
        flipped = self.w.copy()
        for i, j in wrong:
            flipped[i, j] = -flipped[i, j]
        q, lam = self.given_q, self.given_lambda
        power = q * lam**self.n * q.inv()
        return {
            "flipped_W": Result("flipped_W", flipped, sp.Symbol("W'"), value=json_rows(flipped)),
            "flipped_decomposition_ok": truth(
                "flipped_decomposition_ok", q * lam * q.inv() == flipped
            ),
            "flipped_power": Result(
                "flipped_power", power, sp.Symbol(f"W'^{{{self.n}}}"), value=json_rows(power)
            ),
            # The stated eigenvalues, which W' has, against the eigenvalues derived for W.
            "flipped_same_eigenvalues": truth(
                "flipped_same_eigenvalues",
                sorted(lam.diagonal()) == sorted(self.decomposition[1].diagonal()),
            ),
        }

    def _induction(self) -> dict[str, Result]:
        """3. The inductive step as an identity in symbols."""
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

    def _regimes(self) -> dict[str, Result]:
        """4. The regimes: eigenvalues and exact norms of their powers, the plotted norms,
        and the power of the defective matrix in the symbol k."""
        out = {}
        for name, m in self.regimes().items():
            values = sorted(m.eigenvals(multiple=True))
            out[f"regime_{slug(name)}"] = Result(
                f"regime_{slug(name)}",
                sp.Matrix([values]),
                m,
                value={
                    "eigenvalues": values,
                    "norm_powers": [json_float(x) for x in self.regime_norms[name]],
                },
            )
        curves = self.norm_curves
        out["norm_curves"] = Result(
            "norm_curves",
            sp.Matrix([[sp.Float(y) for y in ys] for ys in curves.values()]),
            value={"k": list(self.plot_steps)}
            | {slug(name): [json_float(y) for y in ys] for name, ys in curves.items()},
        )
        defective = self.regimes()[DEFECTIVE]
        power = defective**K
        out["defective_power"] = Result("defective_power", power, sp.Symbol("M^k"), value=power)
        return out

    @property
    def plot_steps(self) -> range:
        return range(1, PLOT_STEPS + 1)

    @cached_property
    def norm_curves(self) -> dict[str, list[Any]]:
        """||M^k||_2 for k = 1 .. PLOT_STEPS, from floating-point powers good to PLOT_TOL
        (float64 where it holds them, else mpmath)."""
        return {
            name: [float_norm(*numeric_power(m, k, PLOT_TOL)) for k in self.plot_steps]
            for name, m in self.regimes().items()
        }

    # -- claims and template data ---------------------------------------------------------------
    def claims(self) -> Iterable[Claim]:
        return claims.claims(self)

    def question_data(self) -> dict[str, Any]:
        return {
            "W": self.w,
            "n": self.n,
            "given_q": self.given_q,
            "given_lambda": self.given_lambda,
        }

    def stated(self) -> dict[str, Any]:
        """The steps k of the norm table, the digits W^n is printed to, the powers at which
        the induction is also multiplied out."""
        return {"norm_steps": self.norm_steps, "printed_digits": PRINTED_DIGITS,
                "induction_n": claims.INDUCTION_N}

    def context(self) -> dict[str, Any]:
        r = self.results
        regimes = [
            (name, m, list(r[f"regime_{slug(name)}"].expr), self.regime_norms[name])
            for name, m in self.regimes().items()
        ]
        curves = r["norm_curves"].expr
        return {
            **super().context(),
            "n": self.n,
            "power_shrinks": r["power_shrinks"].value,
            "power_zero": r["power_zero"].value,
            "lambda_n": r["Lambda_power"].expr,
            "orthogonal": r["Q_orthogonal"].value,
            "terminating": r["terminating"].value,
            "given_q": self.given_q,
            "given_lambda": self.given_lambda,
            "flipped": "flipped_W" in r,
            "given_wrong_entries": [f"({i},{j})" for i, j in r["given_wrong_entries"].value]
            if "given_wrong_entries" in r
            else [],
            "regimes": regimes,
            **self.stated(),
            "curve_k": list(self.plot_steps),
            "curves": {name: curves.row(i) for i, (name, *_) in enumerate(regimes)},
            "defective": self.regimes()[DEFECTIVE],
        }
