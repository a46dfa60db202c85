"""The softmax cross-entropy beyond its gradient: its Hessian in the scores and the
log-sum-exp shift that keeps it finite.

For one row s of the scores, ℓ(s) = log Σ_j exp(s_j) − s_y and ∇ℓ = p − y with p =
softmax(s).  Its Hessian is the Jacobian of p:

    ∂p_j/∂s_k = p_j (δ_jk − p_k),   so   ∇²ℓ = diag(p) − p pᵀ,

the same for every label; the mean over N rows divides by N, and different rows do not
interact (the Hessian in all of S is block diagonal).  It is positive semidefinite:
vᵀ(diag(p) − p pᵀ)v = Σ p_j v_j² − (Σ p_j v_j)², the variance of v's entries under the
probabilities p.  Its null direction is 1 (a shift of every score leaves p unchanged).

``check_rule`` differentiates the definition twice in SymPy and compares it with the rule
exactly; ``lse_identity`` proves log Σ exp(s_j) = m + log Σ exp(s_j − m) for any m.
"""

from __future__ import annotations

import mpmath
import numpy as np
import sympy as sp


class DiagColumn(sp.MatrixSymbol):
    """diag(p) of a column p (C×1), as a key writes it: named ``diag_p`` so that SymPy can
    rebuild it from its arguments (a substitution does)."""

    @classmethod
    def of(cls, p: sp.MatrixSymbol) -> DiagColumn:
        return cls(f"diag_{p.name}", p.shape[0], p.shape[0])

    @property
    def column(self) -> sp.MatrixSymbol:
        return sp.MatrixSymbol(self.name.removeprefix("diag_"), self.shape[0], 1)

    def _latex(self, printer) -> str:
        return r"\operatorname{diag}(%s)" % printer._print(self.column)


def row_probabilities(classes: sp.Expr) -> sp.MatrixSymbol:
    """p_i, the probabilities of one row of the scores as a column (C×1)."""
    return sp.MatrixSymbol("p_i", classes, 1)


def hessian_rule(rows: sp.Expr, classes: sp.Expr) -> sp.Expr:
    """∂²L/∂s_i∂s_iᵀ of the mean cross-entropy over ``rows`` rows, in the probabilities
    p_i of row i: (diag(p_i) − p_i p_iᵀ)/N."""
    p = row_probabilities(classes)
    return sp.MatMul(sp.S.One / rows, sp.MatAdd(DiagColumn.of(p), sp.MatMul(-1, p, p.T)))


def check_rule(classes: int, rule=None) -> int:
    """The entries where SymPy's second derivatives of one row's cross-entropy (label 0)
    differ from the rule (``rule(p, j, k)``, by default diag(p) − p pᵀ), simplified
    exactly: 0 if the rule holds for ``classes``."""
    rule = rule or (lambda p, j, k: p[j] * (1 if j == k else 0) - p[j] * p[k])
    s = sp.symbols(f"s0:{classes}", real=True)
    z = sum(sp.exp(v) for v in s)
    loss = sp.log(z) - s[0]
    p = [sp.exp(v) / z for v in s]
    bad = 0
    for j in range(classes):
        for k in range(classes):
            if sp.simplify(sp.diff(loss, s[j], s[k]) - rule(p, j, k)) != 0:
                bad += 1
    return bad


def lse_identity(classes: int = 3) -> int:
    """0 if log Σ exp(s_j) − (m + log Σ exp(s_j − m)) simplifies to zero for real
    symbols s and m, else 1: the shift is exact for every m."""
    s = sp.symbols(f"s0:{classes}", real=True)
    m = sp.Symbol("m", real=True)
    lhs = sp.log(sum(sp.exp(v) for v in s))
    rhs = m + sp.log(sum(sp.exp(v - m) for v in s))
    diff = sp.expand_log(sp.logcombine(lhs - rhs, force=True), force=True)
    return 0 if sp.simplify(sp.powsimp(sp.expand(diff), force=True)) == 0 else 1


def lse_shifted(row: np.ndarray) -> float:
    """log Σ exp(row) in float64, shifted by the row's largest entry."""
    m = float(np.max(row))
    return m + float(np.log(np.sum(np.exp(row - m))))


def lse_naive(row: np.ndarray) -> float:
    """log Σ exp(row) in float64 without a shift (inf or -inf where exp over- or
    underflows)."""
    with np.errstate(over="ignore", divide="ignore"):
        return float(np.log(np.sum(np.exp(row))))


def lse_reference(row: np.ndarray, dps: int = 50) -> mpmath.mpf:
    """log Σ exp(row) to ``dps`` digits (mpmath: no overflow)."""
    with mpmath.workdps(dps):
        return mpmath.log(mpmath.fsum(mpmath.exp(mpmath.mpf(float(v))) for v in row))
