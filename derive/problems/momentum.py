"""Reversibility of gradient descent with momentum (CSC421 homework 3, question 3).

The map s = (θ, p) ↦ s' on D-dimensional vectors, one update after the other::

    p' = β p − α ∇J(θ)        (first update, F1)
    θ' = θ + p'               (second update, F2)

Inverse, solved by SymPy from the two equations (θ first: ∇J needs the old θ)::

    θ = θ' − p',    p = (p' + α ∇J(θ)) / β

Jacobian ∂s'/∂s = F2 F1 with H the Hessian of J at θ, in block form for symbolic D::

    F1 = [[I, 0], [−αH, βI]],   F2 = [[I, I], [0, I]],   det = det F2 · det F1 = β^D

The determinant comes from a block-triangular rule (never from expanding a determinant);
checks instantiate the blocks for D = 1..4 and differentiate the real map numerically.
"""

from __future__ import annotations

import math
import time
from functools import cached_property
from typing import Any

import mpmath
import numpy as np
import sympy as sp

from derive.params import Exact, Int, Param
from derive.problems.base import Problem, Result
from derive.verify import Check, rel_error

#: Sizes and constants of the numeric experiments.
ALPHA_EXACT, BETA_EXACT = sp.Rational(1, 10), sp.Rational(9, 10)
ALPHA, BETA = float(ALPHA_EXACT), float(BETA_EXACT)
VOLUME_D = 1000
REVERSAL_D = 8
REVERSAL_STEPS = (1, 10, 50, 100, 200, 300)
SEED = 20261122

D = sp.Symbol("D", integer=True, positive=True)
alpha, beta = sp.symbols("alpha beta", positive=True)
H = sp.MatrixSymbol("H", D, D)
theta, p = sp.Symbol("theta^(k)"), sp.Symbol("p^(k)")
theta_next, p_next = sp.Symbol("theta^(k+1)"), sp.Symbol("p^(k+1)")


class GradJ(sp.Function):
    """∇J, an unspecified gradient applied elementwise to a vector argument."""

    def _latex(self, printer):
        return r"\nabla J\left(%s\right)" % printer._print(self.args[0])


# -- the model ------------------------------------------------------------------------------------
def updates() -> list[sp.Eq]:
    """The two update equations in the order the algorithm runs them."""
    return [
        sp.Eq(p_next, beta * p - alpha * GradJ(theta)),
        sp.Eq(theta_next, theta + p_next),
    ]


def first_factor(n=D, hess=H) -> sp.BlockMatrix:
    """∂(θ, p') / ∂(θ, p): the momentum update leaves θ alone."""
    eye = sp.Identity(n)
    return sp.BlockMatrix([[eye, sp.ZeroMatrix(n, n)], [-alpha * hess, beta * eye]])


def second_factor(n=D) -> sp.BlockMatrix:
    """∂(θ', p') / ∂(θ, p'): the position update leaves p' alone."""
    eye = sp.Identity(n)
    return sp.BlockMatrix([[eye, eye], [sp.ZeroMatrix(n, n), eye]])


# -- determinant rules ----------------------------------------------------------------------------
def block_det(m: sp.BlockMatrix) -> sp.Expr:
    """det of a 2×2 block-triangular matrix: the product of its diagonal blocks' dets."""
    (a, b), (c, d) = m.blocks.tolist()
    if not (_is_zero(b) or _is_zero(c)):
        raise ValueError(f"no determinant rule: {m} is not block-triangular")
    return diagonal_block_det(a) * diagonal_block_det(d)


def diagonal_block_det(block: sp.MatrixExpr) -> sp.Expr:
    """det of I (1), of 0 (0) and of c·I (c^n) for an n×n block."""
    n = block.shape[0]
    if isinstance(block, sp.Identity):
        return sp.Integer(1)
    if _is_zero(block):
        return sp.Integer(0)
    if isinstance(block, sp.MatMul):
        coeff, mats = block.as_coeff_matrices()
        if all(isinstance(x, sp.Identity) for x in mats):
            return coeff**n
    raise ValueError(f"no determinant rule for the block {block}; add one for its type")


def _is_zero(block: sp.MatrixExpr) -> bool:
    return isinstance(block, sp.ZeroMatrix)


def explicit(m: sp.BlockMatrix, n: int, hess, values: dict | None = None):
    """The explicit 2n×2n matrix of a block matrix in I, 0, c·I and H.

    With ``values`` (numbers for α, β) and a numpy ``hess`` the result is a float64 array;
    otherwise a SymPy matrix.
    """
    numeric = values is not None

    def block(x: sp.MatrixExpr):
        if isinstance(x, sp.Identity):
            return np.eye(n) if numeric else sp.eye(n)
        if isinstance(x, sp.ZeroMatrix):
            return np.zeros((n, n)) if numeric else sp.zeros(n, n)
        if isinstance(x, sp.MatrixSymbol) and x.name == H.name:
            return hess
        if isinstance(x, sp.MatMul):
            coeff, mats = x.as_coeff_matrices()
            out = (float(coeff.subs(values)) if numeric else coeff) * block(mats[0])
            for y in mats[1:]:
                out = out @ block(y) if numeric else out * block(y)
            return out
        raise ValueError(f"cannot instantiate the block {x}")

    rows = [[block(x) for x in row] for row in m.blocks.tolist()]
    if numeric:
        return np.block(rows)
    return sp.Matrix.vstack(*[sp.Matrix.hstack(*row) for row in rows])


# -- the numeric map (a non-quadratic J) ----------------------------------------------------------
#: The minimum of J sits at θ = (1, ..., 1): a run converges to O(1) values, whose rounding
#: the inverse then amplifies (near θ = 0 the rounding would shrink with the state).
CENTER = 1.0


def grad_j(x: np.ndarray) -> np.ndarray:
    """∇J for J(θ) = Σ log cosh u_i + 0.1 (Σ u_i)^2 + 0.0125 Σ u_i^4, u = θ − 1."""
    u = x - CENTER
    return np.tanh(u) + 0.2 * np.sum(u) + 0.05 * u**3


def hess_j(x: np.ndarray) -> np.ndarray:
    u = x - CENTER
    return np.diag(1.0 / np.cosh(u) ** 2 + 0.15 * u**2) + 0.2


def forward(s: np.ndarray, a: float = ALPHA, b: float = BETA) -> np.ndarray:
    th, pp = np.split(s, 2)
    pn = b * pp - a * grad_j(th)
    return np.concatenate([th + pn, pn])


def fd_jacobian(f, s: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central-difference Jacobian of ``f`` at ``s``, one column per coordinate."""
    cols = []
    for i in range(s.size):
        e = np.zeros_like(s)
        e[i] = h
        cols.append((f(s + e) - f(s - e)) / (2 * h))
    return np.stack(cols, axis=1)


class Momentum(Problem):
    """Inverse and Jacobian determinant of the momentum update, and what β^D means."""

    key = "momentum"
    title = "Reversibility of gradient descent with momentum"
    #: Names the printer spells through the set's notation (``Problem.symbols``).
    SYMBOLS = ("D", "H", "alpha", "beta", "p^(k)", "p^(k+1)", "theta^(k)", "theta^(k+1)")

    PARAMS = (
        # Bounds keep the experiments' trajectories finite in float64 (a larger step diverges
        # on the test function) and the 50-digit reference meaningful.
        Param(
            "alpha",
            Exact(sp.Integer(0), sp.Rational(1, 2)),
            ALPHA_EXACT,
            "learning rate of the numeric experiments (0 <= alpha <= 1/2)",
        ),
        Param(
            "beta",
            Exact(sp.Rational(1, 2), sp.Rational(99, 100)),
            BETA_EXACT,
            "momentum of the numeric experiments (1/2 <= beta <= 99/100)",
        ),
        Param("volume_D", Int(1, 5000), VOLUME_D, "D of the volume factor beta^D"),
    )

    def __init__(
        self,
        alpha: sp.Rational = ALPHA_EXACT,
        beta: sp.Rational = BETA_EXACT,
        volume_D: int = VOLUME_D,  # noqa: N803 - the handout's D
    ) -> None:
        #: The numbers of the experiments (the derivation itself is symbolic).
        self.a, self.b, self.volume_d = float(alpha), float(beta), volume_D
        self.exact_b = sp.Rational(beta)
        #: Seconds spent on the explicit determinants (filled by ``verify``).
        self.timings: dict[str, float] = {}

    # -- derivation ---------------------------------------------------------------------------
    @cached_property
    def inverse(self) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
        """θ, p in terms of s' (and p with ∇J at the recovered θ), solved in that order."""
        p_update, theta_update = updates()
        # θ' = θ + p' involves only θ among the unknowns: solve it first ...
        (th,) = sp.solve(theta_update, theta, simplify=False, rational=False)
        # ... then ∇J(θ) is known and the momentum update is linear in p.
        (pp_at_theta,) = sp.solve(p_update, p, simplify=False, rational=False)
        pp_at_theta = sp.together(pp_at_theta)  # one fraction over β, as written by hand
        return th, pp_at_theta, pp_at_theta.subs(theta, th)

    @property
    def reversal_digits(self) -> int:
        """Reversing k steps amplifies rounding by up to beta^-k: 40 digits beyond that."""
        return 40 + math.ceil(REVERSAL_STEPS[-1] * math.log10(1 / self.b))

    def _beta_mp(self) -> mpmath.mpf:
        """β exactly as given, in the current mpmath precision (not through a float)."""
        return mpmath.mpf(int(self.exact_b.p)) / int(self.exact_b.q)

    @cached_property
    def factors(self) -> tuple[sp.BlockMatrix, sp.BlockMatrix]:
        """(F2, F1): the Jacobian is F2·F1."""
        return second_factor(), first_factor()

    def derive(self) -> dict[str, Result]:
        th, p_chain, p_expr = self.inverse
        f2, f1 = self.factors
        det1, det2 = block_det(f1), block_det(f2)
        det = det2 * det1
        with mpmath.workdps(30):  # beta^D to float64 accuracy (a 53-bit power loses digits)
            shrink = self._beta_mp() ** self.volume_d
        return {
            "inverse_theta": Result("inverse_theta", th, theta),
            "inverse_p": Result("inverse_p", p_expr, p, chain=p_chain),
            "jacobian_factors": Result(
                "jacobian_factors", sp.MatMul(f2, f1, evaluate=False), sp.Symbol("J")
            ),
            "factor_dets": Result(
                "factor_dets", sp.Tuple(det2, det1), value=[str(det2), str(det1)]
            ),
            "det_jacobian": Result("det_jacobian", det, value=str(det)),
            "volume_factor": Result(
                "volume_factor",
                sp.Float(str(shrink), 6),
                value={
                    "beta": self.b,
                    "D": self.volume_d,
                    "shrink": float(shrink),
                    "grow": float(1 / shrink),
                },
            ),
            "reversal_error": Result(
                "reversal_error",
                sp.Matrix(
                    [
                        [k, sp.Float(e, 3)]
                        for k, e in zip(REVERSAL_STEPS, self.reversal[0], strict=True)
                    ]
                ),
                # JSON has no inf: a run that overflowed (nothing recovered) is null.
                value=[
                    [k, e if math.isfinite(e) else None]
                    for k, e in zip(REVERSAL_STEPS, self.reversal[0], strict=True)
                ],
            ),
        }

    @cached_property
    def reversal(self) -> tuple[list[float], list[float]]:
        """Relative error of s after k forward then k inverse steps: float64, mpmath 50 digits."""
        rng = np.random.default_rng(SEED)
        s0 = rng.standard_normal(2 * REVERSAL_D)
        inv = self.inverse_map()
        out64 = []
        for k in REVERSAL_STEPS:
            s = s0.copy()
            # A small beta can amplify rounding past float64's range: that is the finding,
            # reported as an infinite error, not a warning.
            with np.errstate(over="ignore", invalid="ignore"):
                for _ in range(k):
                    s = forward(s, self.a, self.b)
                for _ in range(k):
                    s = inv(s, self.a, self.b)
                err = float(np.linalg.norm(s - s0) / np.linalg.norm(s0))
            out64.append(err if math.isfinite(err) else math.inf)
        # The same experiment in 50 digits: the inverse is exact, so the float64 error is
        # rounding amplified by the inverse, not a wrong formula.
        with mpmath.workdps(self.reversal_digits):
            th0 = [mpmath.mpf(float(x)) for x in s0[:REVERSAL_D]]
            p0 = [mpmath.mpf(float(x)) for x in s0[REVERSAL_D:]]
            a, b = mpmath.mpf(self.a), mpmath.mpf(self.b)

            def g(x):
                u = [v - CENTER for v in x]
                total = mpmath.fsum(u)
                return [mpmath.tanh(v) + total / 5 + v**3 / 20 for v in u]

            k = REVERSAL_STEPS[-1]
            th, pp = th0, p0
            for _ in range(k):
                pp = [b * u - a * v for u, v in zip(pp, g(th), strict=True)]
                th = [u + v for u, v in zip(th, pp, strict=True)]
            for _ in range(k):
                th = [u - v for u, v in zip(th, pp, strict=True)]
                pp = [(u + a * v) / b for u, v in zip(pp, g(th), strict=True)]
            diff = mpmath.sqrt(
                mpmath.fsum((u - v) ** 2 for u, v in zip(th + pp, th0 + p0, strict=True))
            )
            norm = mpmath.sqrt(mpmath.fsum(v**2 for v in th0 + p0))
            out_mp = [float(diff / norm)]
        return out64, out_mp

    def inverse_map(self):
        """The derived inverse, compiled: s' ↦ s with the numeric ∇J."""
        th, _, pp = self.inverse
        f = sp.lambdify(
            (theta_next, p_next, alpha, beta), (th, pp), modules=[{"GradJ": grad_j}, "numpy"]
        )

        def inv(s: np.ndarray, a: float = ALPHA, b: float = BETA) -> np.ndarray:
            t, q = f(*np.split(s, 2), a, b)
            return np.concatenate([t, q])

        return inv

    # -- verification -------------------------------------------------------------------------
    def verify(self) -> list[Check]:
        rows = []
        rng = np.random.default_rng(SEED)
        inv = self.inverse_map()
        # Inverse: compose with the forward map both ways.
        worst_t = worst_p = 0.0
        worst_fi = 0.0
        for n in (1, 3, 17, 50):
            s = rng.standard_normal(2 * n)
            back = inv(forward(s, self.a, self.b), self.a, self.b)
            worst_t = max(worst_t, rel_error(back[:n], s[:n]))
            worst_p = max(worst_p, rel_error(back[n:], s[n:]))
            there = forward(inv(s, self.a, self.b), self.a, self.b)
            worst_fi = max(worst_fi, rel_error(there, s))
        sizes = "D = 1, 3, 17, 50; non-quadratic J"
        rows.append(Check("inverse_theta", "float64: f^-1(f(s)) against s", sizes, worst_t, 1e-12))
        rows.append(Check("inverse_p", "float64: f^-1(f(s)) against s", sizes, worst_p, 1e-12))
        rows.append(Check("inverse_p", "float64: f(f^-1(s)) against s", sizes, worst_fi, 1e-12))
        rows.append(self._symbolic_inverse_check())
        rows += self._explicit_checks()
        rows += self._numeric_jacobian_checks(rng)
        # Volume factor: float power against 50-digit mpmath.
        v = self.results["volume_factor"].value
        with mpmath.workdps(50):
            ref = self._beta_mp() ** (-self.volume_d)
            rows.append(
                Check(
                    "volume_factor",
                    "mpmath 50 digits: beta^-D",
                    f"beta = {self.exact_b}, D = {self.volume_d}",
                    float(abs(mpmath.mpf(v["grow"]) - ref) / ref),
                    1e-14,
                )
            )
        rows.append(
            Check(
                "reversal_error",
                f"mpmath {self.reversal_digits} digits: the same k steps reversed",
                f"D = {REVERSAL_D}, k = {REVERSAL_STEPS[-1]}",
                self.reversal[1][0],
                1e-25,
            )
        )
        return rows

    def _symbolic_inverse_check(self) -> Check:
        """Substituting the inverse into the forward equations gives back s' (symbolically)."""
        th, _, pp = self.inverse
        p_new = beta * pp - alpha * GradJ(th)
        residual = [sp.simplify(p_new - p_next), sp.simplify(th + p_new - theta_next)]
        return Check(
            "inverse_theta",
            "SymPy: forward map of the inverse minus s'",
            "symbolic, any D (elementwise)",
            float(sum(r != 0 for r in residual)),
            0.0,
        )

    def _explicit_checks(self) -> list[Check]:
        """D = 1..4 with symbolic Hessian entries: factors against the map's own Jacobian."""
        f2, f1 = self.factors
        det_expr = self.results["det_jacobian"].expr
        d1, d2 = self.results["factor_dets"].expr.args[1], self.results["factor_dets"].expr.args[0]
        bad_prod = bad_fac = bad_det = 0
        for n in range(1, 5):
            ths = sp.symbols(f"t1:{n + 1}")
            ps = sp.symbols(f"q1:{n + 1}")
            gs = [sp.Function(f"g{i + 1}")(*ths) for i in range(n)]
            hess = sp.Matrix(n, n, lambda i, j: sp.Symbol(f"h_{min(i, j) + 1}{max(i, j) + 1}"))
            derivs = {gs[i].diff(ths[j]): hess[i, j] for i in range(n) for j in range(n)}
            pn = [beta * ps[i] - alpha * gs[i] for i in range(n)]
            image = sp.Matrix([ths[i] + pn[i] for i in range(n)] + pn)
            jac = image.jacobian(list(ths) + list(ps)).xreplace(derivs)
            e1 = explicit(_at(f1, n), n, hess)
            e2 = explicit(_at(f2, n), n, hess)
            bad_prod += not (e2 * e1 - jac).expand().is_zero_matrix
            start = time.perf_counter()
            got1, got2 = e1.det(method="berkowitz"), e2.det(method="berkowitz")
            self.timings[f"factors D={n}"] = time.perf_counter() - start
            bad_fac += sp.expand(got1 - d1.subs(D, n)) != 0 or sp.expand(got2 - d2.subs(D, n)) != 0
            if n <= 3:
                start = time.perf_counter()
                full = jac.det(method="berkowitz")
                self.timings[f"product D={n}"] = time.perf_counter() - start
            else:
                full = got2 * got1
            bad_det += sp.expand(full - det_expr.subs(D, n)) != 0
        sizes = "D = 1..4, symbolic Hessian entries"
        return [
            Check(
                "jacobian_factors",
                "SymPy: F2 F1 against jacobian() of the map",
                sizes,
                float(bad_prod),
                0.0,
            ),
            Check(
                "factor_dets",
                "SymPy: berkowitz det of each explicit factor",
                sizes,
                float(bad_fac),
                0.0,
            ),
            Check(
                "det_jacobian",
                "SymPy: berkowitz det of the Jacobian (D <= 3), of the factors (D = 4)",
                sizes,
                float(bad_det),
                0.0,
            ),
        ]

    def _numeric_jacobian_checks(self, rng: np.random.Generator) -> list[Check]:
        """Central differences of the real map against F2 F1 and slogdet against D log β."""
        f2, f1 = self.factors
        det_expr = self.results["det_jacobian"].expr
        worst_j = worst_det = 0.0
        dims = (1, 2, 5, 13, 50)
        for n in dims:
            s = rng.standard_normal(2 * n)
            jac = fd_jacobian(lambda v: forward(v, self.a, self.b), s)
            hess = hess_j(s[:n])
            values = {alpha: self.a, beta: self.b}
            factors = explicit(_at(f2, n), n, hess, values) @ explicit(_at(f1, n), n, hess, values)
            worst_j = max(worst_j, rel_error(jac, factors))
            sign, logdet = np.linalg.slogdet(jac)
            claim = float(det_expr.subs({D: n, beta: self.b}))
            # |log det - log claim| is the relative error of det; a wrong sign is an error.
            err = abs(logdet - math.log(claim)) if claim > 0 and sign == 1 else math.inf
            worst_det = max(worst_det, err)
        sizes = f"D = {', '.join(map(str, dims))}; non-quadratic J"
        return [
            Check(
                "jacobian_factors", "central difference (h = 1e-6) of the map", sizes, worst_j, 1e-7
            ),
            Check(
                "det_jacobian",
                "slogdet of the central-difference Jacobian against log of the claim",
                sizes,
                worst_det,
                1e-7,
            ),
        ]

    def question_data(self) -> dict[str, Any]:
        """The two updates (the given map), the state and its next value."""

        def tidy(e: sp.Expr) -> sp.Expr:
            # Display order only: α, β before what they scale, θ before p in a sum.
            if isinstance(e, sp.Mul):
                factors = sorted(map(tidy, e.args), key=lambda a: a not in (alpha, beta, -1))
                return sp.Mul(*factors, evaluate=False)
            if isinstance(e, sp.Add):
                return sp.Add(*sorted(map(tidy, e.args), key=lambda a: a != theta), evaluate=False)
            return e

        return {
            "updates": [sp.Eq(u.lhs, tidy(u.rhs), evaluate=False) for u in updates()],
            "theta": theta,
            "p": p,
            "theta_next": theta_next,
            "p_next": p_next,
            "D": D,
        }

    def context(self) -> dict[str, Any]:
        f2, f1 = self.factors
        r = self.results
        v = r["volume_factor"].value
        return {
            **super().context(),
            "f1": f1,
            "f2": f2,
            "product": sp.block_collapse(f2 * f1),
            "det_f1": r["factor_dets"].expr.args[1],
            "det_f2": r["factor_dets"].expr.args[0],
            "volume": v,
            # The result's own numbers (a run that overflowed is an infinite error, printed
            # as such), not its JSON value, where JSON's lack of inf made it null.
            "reversal": list(zip(REVERSAL_STEPS, self.reversal[0], strict=True)),
            "reversal_overflowed": not all(math.isfinite(e) for e in self.reversal[0]),
            "reversal_d": REVERSAL_D,
            "reversal_mp": self.reversal[1][0],
            "alpha_value": self.a,
            "reversal_digits": self.reversal_digits,
        }


def _at(m: sp.BlockMatrix, n: int) -> sp.BlockMatrix:
    """``m`` with D = n (H becomes an n×n MatrixSymbol)."""
    return m.subs(D, n)
