"""The momentum map, its two Jacobian factors, the determinant rules, and a numeric J.

The map s = (θ, p) ↦ s' on D-dimensional vectors, one update after the other::

    p' = β p − α ∇J(θ)        (first update, F1)
    θ' = θ + p'               (second update, F2)

Jacobian factors with H the Hessian of J at θ, in block form for symbolic D::

    F1 = [[I, 0], [−αH, βI]],   F2 = [[I, I], [0, I]]

The determinant comes from a block-triangular rule (never from expanding a determinant).
The numeric experiments use a non-quadratic J whose gradient and Hessian are below.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from derive.engine.numeric import lambdify

#: Constants of the numeric experiments (the derivation itself is symbolic).
ALPHA_EXACT, BETA_EXACT = sp.Rational(1, 10), sp.Rational(9, 10)
ALPHA, BETA = float(ALPHA_EXACT), float(BETA_EXACT)

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


def solve_inverse() -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    """θ, p in terms of s' (and p with ∇J at the recovered θ), solved in that order."""
    p_update, theta_update = updates()
    # θ' = θ + p' involves only θ among the unknowns: solve it first ...
    (th,) = sp.solve(theta_update, theta, simplify=False, rational=False)
    # ... then ∇J(θ) is known and the momentum update is linear in p.
    (pp_at_theta,) = sp.solve(p_update, p, simplify=False, rational=False)
    pp_at_theta = sp.together(pp_at_theta)  # one fraction over β, as written by hand
    return th, pp_at_theta, pp_at_theta.subs(theta, th)


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


def at(m: sp.BlockMatrix, n: int) -> sp.BlockMatrix:
    """``m`` with D = n (H becomes an n×n MatrixSymbol)."""
    return m.subs(D, n)


def explicit(m: sp.BlockMatrix, n: int, hess, values: dict | None = None, leaf=None):
    """The explicit 2n×2n matrix of a block matrix in I, 0, c·I and H.

    With ``values`` (numbers for α, β) and a numpy ``hess`` the result is a float64 array;
    otherwise a SymPy matrix.  ``explicit_block`` says what ``hess`` and ``leaf`` may be.
    """
    rows = [[explicit_block(x, n, hess, values, leaf) for x in row] for row in m.blocks.tolist()]
    if values is not None:
        return np.block(rows)
    return sp.Matrix.vstack(*[sp.Matrix.hstack(*row) for row in rows])


def explicit_block(x: sp.MatrixExpr, n: int, hess, values: dict | None = None, leaf=None):
    """The explicit n×n matrix of one block: I, 0, sums and products with scalar
    coefficients (numbers at ``values``), and H as ``hess`` (or, with ``hess`` a dict, each
    matrix symbol by its name); ``leaf(x)`` gives any other block (None: none known)."""
    numeric = values is not None
    mats = hess if isinstance(hess, dict) else {H.name: hess}

    def block(x: sp.MatrixExpr):
        if isinstance(x, sp.Identity):
            return np.eye(n) if numeric else sp.eye(n)
        if isinstance(x, sp.ZeroMatrix):
            return np.zeros((n, n)) if numeric else sp.zeros(n, n)
        if isinstance(x, sp.MatrixSymbol) and x.name in mats:
            return mats[x.name]
        if isinstance(x, sp.MatAdd):
            parts = [block(y) for y in x.args]
            return sum(parts[1:], parts[0])
        if isinstance(x, sp.MatMul):
            coeff, factors = x.as_coeff_matrices()
            out = (float(coeff.subs(values)) if numeric else coeff) * block(factors[0])
            for y in factors[1:]:
                out = out @ block(y) if numeric else out * block(y)
            return out
        if isinstance(x, sp.MatPow) and x.exp.is_Integer and x.exp > 0:
            base, out = block(x.base), block(x.base)  # (mu I)^2, from mu v' in an update
            for _ in range(int(x.exp) - 1):
                out = out @ base if numeric else out * base
            return out
        found = leaf(x) if leaf is not None else None
        if found is None:
            raise ValueError(f"cannot instantiate the block {x}")
        return found

    return block(x)


# -- the numeric map (a non-quadratic J) ----------------------------------------------------------
#: The minimum of J sits at θ = (1, ..., 1): a run converges to O(1) values, whose rounding
#: the inverse then amplifies (near θ = 0 the rounding would shrink with the state).
CENTER = 1.0


def grad_j(x: np.ndarray) -> np.ndarray:
    """∇J for J(θ) = Σ log cosh u_i + 0.1 (Σ u_i)^2 + 0.0125 Σ u_i^4, u = θ − 1."""
    u = x - CENTER
    return np.tanh(u) + 0.2 * np.sum(u) + 0.05 * u**3


def hess_j(x: np.ndarray) -> np.ndarray:
    """The Hessian of the same J."""
    u = x - CENTER
    return np.diag(1.0 / np.cosh(u) ** 2 + 0.15 * u**2) + 0.2


def forward(s: np.ndarray, a: float = ALPHA, b: float = BETA) -> np.ndarray:
    """One step of the map on the stacked state s = (θ, p), with the numeric ∇J."""
    th, pp = np.split(s, 2)
    pn = b * pp - a * grad_j(th)
    return np.concatenate([th + pn, pn])


def inverse_map(inverse: tuple[sp.Expr, sp.Expr, sp.Expr]):
    """The derived inverse (``solve_inverse``'s), compiled: s' ↦ s with the numeric ∇J."""
    th, _, pp = inverse
    f = lambdify(
        (theta_next, p_next, alpha, beta), (th, pp), modules=[{"GradJ": grad_j}, "numpy"]
    )

    def inv(s: np.ndarray, a: float = ALPHA, b: float = BETA) -> np.ndarray:
        t, q = f(*np.split(s, 2), a, b)
        return np.concatenate([t, q])

    return inv
