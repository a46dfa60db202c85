"""Sums of matrix terms arranged for an answer key, and σ', tanh' as a handout prints them.

The engine returns a Jacobian as a sum of terms ``diag(d) A``; a key prints the terms in
the order of the gates, applies a Jacobian with diagonal factors to a vector (``diag(d) v =
d ∘ v``), and splits a Jacobian or a vector-Jacobian product into its direct term and the
terms that pass through one intermediate state.  None of this changes a value.
"""

from __future__ import annotations

from typing import Any

import sympy as sp

from derive.engine.jacobian import Diag
from derive.engine.vector import apply_elementwise


class SigmaPrime(sp.Function):
    """σ'(z), printed as the handout prints it."""

    nargs = 1

    def _latex(self, printer) -> str:
        return r"\sigma'\left(%s\right)" % printer._print(self.args[0])


class TanhPrime(sp.Function):
    """tanh'(z), printed as the handout prints it."""

    nargs = 1

    def _latex(self, printer) -> str:
        return r"\tanh'\left(%s\right)" % printer._print(self.args[0])


elementwise = apply_elementwise  # the vector form's own rule (derive.engine.vector)


def gate_rank(term: Any, weights: list[str]) -> int:
    """Position of the first of ``weights`` that ``term`` contains (0: none)."""
    names = {m.name for m in term.atoms(sp.MatrixSymbol)}
    return min((weights.index(n) + 1 for n in names if n in weights), default=0)


def ordered(jac: sp.MatrixExpr, weights: list[str]) -> sp.MatrixExpr:
    """The same sum with its terms in the order of ``weights`` (display only)."""
    if isinstance(jac, sp.MatMul):
        return sp.MatMul(*[ordered(a, weights) for a in jac.args])
    if not isinstance(jac, sp.MatAdd):
        return jac
    terms = [ordered(a, weights) for a in jac.args]
    return sp.MatAdd(*sorted(terms, key=lambda a: gate_rank(a, weights)))


def apply_to(jac: sp.MatrixExpr, v: sp.MatrixExpr) -> sp.MatrixExpr:
    """``jac v`` with diagonal factors applied as Hadamard products (diag(d) v = d ∘ v)."""
    if isinstance(jac, sp.MatAdd):
        terms = [apply_to(a, v) for a in jac.args]
        flat = [p for t in terms for p in (t.args if isinstance(t, sp.MatAdd) else (t,))]
        return sp.MatAdd(*flat)
    if isinstance(jac, sp.MatMul):
        for a in reversed(jac.args):
            v = apply_to(a, v)
        return v
    if isinstance(jac, Diag):
        d = jac.args[0]
        return d if isinstance(v, sp.OneMatrix) else sp.HadamardProduct(d, v)
    if isinstance(jac, sp.Identity):
        return v
    return sp.MatMul(jac, v)


def jacobian_parts(jac: sp.MatrixExpr) -> dict[str, Any]:
    """``jac`` = diag(d) + [paths] M split as direct term, paths and the right factor M."""
    direct = [a for a in jac.args if isinstance(a, Diag)]
    through = [a for a in jac.args if isinstance(a, sp.MatMul)]
    if len(direct) != 1 or len(through) != 1 or len(through[0].args) != 2:
        raise ValueError(f"unexpected structure of the Jacobian: {jac}")
    paths, right = through[0].args
    return {"direct": direct[0], "paths": list(paths.args), "through_h": right}


def vjp_parts(vjp: sp.MatrixExpr, gbar: sp.MatrixSymbol, weights: list[str]) -> dict[str, Any]:
    """A VJP ḡ ∘ d + [paths] ∘ (factors) split as direct term, ordered paths and factors."""
    direct = [a for a in vjp.args if gbar in a.args]
    through = [a for a in vjp.args if a not in direct]
    if len(direct) != 1 or len(through) != 1:
        raise ValueError(f"unexpected structure of the VJP: {vjp}")
    paths = [
        a for a in through[0].args if isinstance(a, sp.MatAdd) and gbar in a.atoms(sp.MatrixSymbol)
    ]
    factors = [a for a in through[0].args if a not in paths]
    return {
        "direct": direct[0],
        "paths": sorted(paths[0].args, key=lambda a: gate_rank(a, weights)),
        "through_h": sp.HadamardProduct(*factors),
    }
