"""A Jacobian read off a vector-Jacobian product (VJP) of the engine's reverse-mode rules.

``vjp_of(cell, out, wrt)`` carries a cotangent ``ḡ`` of ``out`` back to ``wrt`` by a reverse
sweep of ``VectorCell.vjp`` over the cell's assignments (every path, through intermediate
variables too).  The result is ``Jᵀ ḡ``, linear in ``ḡ``, with ``J`` the Jacobian of ``out``
by ``wrt`` in numerator layout: one row per entry of ``out``, one column per entry of ``wrt``
(a matrix ``wrt`` counts entry by entry, row by row).

``jacobian_from_vjp(vjp, gbar)`` reads ``J`` back.  With ``K`` the Jacobian read off the part
``f`` that holds ``ḡ``:

    ḡ           ->  I
    f + g       ->  K + K_g          (term by term; every term must hold ḡ)
    c f         ->  c K              (a number c)
    Aᵀ f        ->  K A              (a matrix applied to f)
    f ∘ v       ->  K diag(v)        (so Aᵀ(ḡ ∘ v) -> diag(v) A)
    f rᵀ        ->  K ⊗ rᵀ           (an outer product: the cotangent of a matrix M, whose
                                      entries count row by row, vec(M) = f ⊗ r)

Anything else is not linear in ``ḡ`` or has no rule; both are errors.  Products are kept
flat and identity factors dropped, so ``Aᵀ(ḡ ∘ v)`` reads exactly ``diag(v) A``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy as sp
from sympy.matrices.expressions.diagonal import DiagMatrix

from derive.engine.cell import Cell
from derive.engine.vector import VectorCell
from derive.errors import InputError


class Diag(DiagMatrix):
    """diag(v): the square matrix with the column vector v on its diagonal."""

    def _latex(self, printer) -> str:
        return r"\operatorname{diag}\left(%s\right)" % printer._print(self.args[0])

    def doit(self, **hints) -> sp.MatrixExpr:
        # diag(1) = I and diag(0) = 0, so a limit substituted into a Jacobian simplifies.
        v = self.args[0].doit(**hints)
        if isinstance(v, sp.OneMatrix):
            return sp.Identity(v.shape[0])
        if isinstance(v, sp.ZeroMatrix):
            return sp.ZeroMatrix(v.shape[0], v.shape[0])
        return Diag(v)


def vjp_of(
    cell: Cell, out: str | sp.Symbol, wrt: str | sp.Symbol, gbar: str | None = None
) -> tuple[sp.MatrixExpr, sp.MatrixSymbol]:
    """The cotangent of ``wrt`` at step t when ``out``'s is ``ḡ``, and ``ḡ`` itself.

    Parameters
    ----------
    cell
        The cell; ``out`` is one of its assigned variables.
    out, wrt
        Names or symbols of the cell: ``wrt`` may be a variable, an input, a previous state
        or a parameter.
    gbar
        Name of the matrix symbol standing for ``ḡ``; by default the adjoint of ``out`` at
        step t (``vc.bar(out)``, a ``VectorQuantity``).

    Returns
    -------
    (vjp, gbar)
        ``vjp = Jᵀ ḡ``, the sum over every path from ``wrt`` to ``out``.

    Raises
    ------
    InputError
        If ``out`` does not depend on ``wrt``.
    """
    out = sp.Symbol(out) if isinstance(out, str) else out
    wrt = sp.Symbol(wrt) if isinstance(wrt, str) else wrt
    vc = VectorCell(cell)
    g = vc.bar(out, 0) if gbar is None else sp.MatrixSymbol(gbar, *vc.shape(out))
    cot = _reverse_sweep(cell, vc, out, wrt, g)
    if wrt not in cot:
        raise InputError(f"{out} does not depend on {wrt}")
    return _add(cot[wrt]), g


def _reverse_sweep(cell: Cell, vc: VectorCell, out, wrt, g) -> dict[sp.Symbol, list]:
    """The cotangent terms of every variable (and ``wrt``) reached back from ``out``."""
    cot: dict[sp.Symbol, list] = {out: [g]}
    targets = dict.fromkeys((*cell.variables, wrt))  # wrt may itself be a variable
    for u, e in reversed(cell.assignments):
        if u not in cot:
            continue
        g_u = _add(cot[u])
        for v in targets:
            if v != u and v in e.free_symbols:
                part = vc.vjp(e, v, g_u, 0, u)
                if part is not None:
                    cot.setdefault(v, []).append(part)
    return cot


def jacobian_from_vjp(vjp: sp.MatrixExpr, gbar: sp.MatrixSymbol) -> sp.MatrixExpr:
    """The Jacobian ``J`` of a map whose VJP is ``vjp = Jᵀ ḡ``, by the module's rules.

    Parameters
    ----------
    vjp
        A matrix expression linear in ``gbar``.
    gbar
        The cotangent symbol ``ḡ`` (a column vector).

    Raises
    ------
    InputError
        If ``vjp`` is not linear in ``gbar`` or has a form no rule reads.
    """
    if vjp == gbar:
        return sp.Identity(gbar.rows)
    if not vjp.has(gbar):
        raise InputError(f"the VJP is not linear in {gbar}: a term does not hold it: {vjp}")
    if isinstance(vjp, sp.MatAdd):
        return sp.MatAdd(*[jacobian_from_vjp(a, gbar) for a in vjp.args])
    if isinstance(vjp, sp.HadamardProduct):
        i = _holder(vjp.args, gbar)
        rest = [a for m, a in enumerate(vjp.args) if m != i]
        v = rest[0] if len(rest) == 1 else sp.HadamardProduct(*rest)
        return matmul(jacobian_from_vjp(vjp.args[i], gbar), Diag(v))
    if isinstance(vjp, sp.MatMul):
        return _jacobian_of_product(vjp, gbar)
    raise InputError(
        f"no Jacobian rule for {type(vjp).__name__} in {vjp}: "
        "add one to jacobian_from_vjp in derive/engine/jacobian.py"
    )


def _jacobian_of_product(vjp: sp.MatMul, gbar: sp.MatrixSymbol) -> sp.MatrixExpr:
    """``Aᵀ f`` reads as ``J_f A`` and ``f rᵀ`` (a weight's VJP) as ``J_f ⊗ rᵀ``."""
    coeff, factors = vjp.as_coeff_matrices()
    i = _holder(factors, gbar)
    left, f, right = factors[:i], factors[i], factors[i + 1 :]
    jac = jacobian_from_vjp(f, gbar)
    if right:
        r = right[0] if len(right) == 1 else sp.MatMul(*right)
        if left or f.cols != 1 or r.rows != 1:
            raise InputError(f"no Jacobian rule for the product {vjp}: not Aᵀ f nor f rᵀ")
        jac = sp.KroneckerProduct(jac, r)
    if left:
        jac = matmul(jac, (left[0] if len(left) == 1 else sp.MatMul(*left)).T)
    return jac if coeff == 1 else coeff * jac


def _holder(args: Sequence[sp.Basic], gbar: sp.MatrixSymbol) -> int:
    held = [i for i, a in enumerate(args) if a.has(gbar)]
    if len(held) != 1:
        raise InputError(f"the VJP is not linear in {gbar}: {len(held)} factors hold it")
    return held[0]


def _add(parts: list) -> sp.MatrixExpr:
    return parts[0] if len(parts) == 1 else sp.MatAdd(*parts)


def matmul(*factors: sp.MatrixExpr) -> sp.MatrixExpr:
    """The product of ``factors`` kept flat, without identity factors.

    SymPy's ``MatMul`` nests products and keeps ``I``; this one reads ``A B C``.

    Raises
    ------
    ValueError
        If every factor is an identity (the size of the product is unknown here).
    """
    flat = []
    for f in factors:
        if isinstance(f, sp.Identity):
            continue
        flat.extend(f.args if isinstance(f, sp.MatMul) else [f])
    if not flat:
        raise ValueError("empty product: its size is unknown here")
    return flat[0] if len(flat) == 1 else sp.MatMul(*flat)
