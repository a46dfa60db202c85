"""The structure of a residual block, symbolically: what the skip path passes through.

With S the skip-path term, ∂y/∂x = S + ∂F/∂x, and S is the product of the Jacobians of the
operations after the addition: S = I when the addition comes last, S = D J when BatchNorm
and ReLU follow it (J the batch-mode BN Jacobian, D = diag of ReLU's 0/1 mask).  Along the
skip edges of L stacked blocks the factors multiply.  ``skip_term`` derives these from the
operation lists; ``skip_mismatches`` differentiates explicit symbolic blocks (branch held
fixed; generic weights, BN and ReLU as unspecified functions) with SymPy to check them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import sympy as sp

from derive.instances.bnstack import VJP

#: The two blocks of the handout's figure, in its order, as operations applied to the block
#: input x one after the other; ``add`` adds x itself (the skip connection).
ORDERINGS: dict[int, tuple[str, ...]] = {
    1: ("weight", "bn", "relu", "weight", "bn", "relu", "add"),
    2: ("weight", "bn", "relu", "weight", "add", "bn", "relu"),
}

#: Blocks in the displayed skip-path product.
STACK_BLOCKS = 3
#: Activations in a batch (batch × width): the size of the block Jacobians.
N = sp.Symbol("N", integer=True, positive=True)
#: How the key names each operation.
OP_NAMES = {"weight": "Weight", "bn": "BatchNorm", "relu": "ReLU", "add": "+ x"}
# -- structure ------------------------------------------------------------------------------------
_JACOBIAN_NAMES = {"weight": "W", "bn": "J", "relu": "D"}


def op_jacobian(op: str, block: int | None = None) -> sp.MatrixSymbol:
    """The N×N Jacobian of one operation: W (weight), J (BN), D = diag(ReLU mask)."""
    name = _JACOBIAN_NAMES[op] + ("" if block is None else f"_{block}")
    return sp.MatrixSymbol(name, N, N)


def skip_term(ops: Sequence[str], block: int | None = None) -> sp.MatrixExpr:
    """∂y/∂x along the skip edge alone: the Jacobians of the operations after the addition,
    last one leftmost; the identity when the addition is the block's last operation."""
    after = list(ops[ops.index("add") + 1 :])
    if not after:
        return sp.Identity(N)
    return sp.MatMul(*[op_jacobian(op, block) for op in reversed(after)]).doit()


def skip_stack(ops: Sequence[str], blocks: int) -> sp.MatrixExpr:
    """The skip-only path through ``blocks`` stacked blocks: S_L ... S_1."""
    return sp.MatMul(*[skip_term(ops, b) for b in range(blocks, 0, -1)]).doit()


def generic_function(name: str, nargs: int) -> type[sp.Function]:
    """An unspecified function of ``nargs`` arguments whose partial derivatives are further
    unspecified functions ``d<name>_j`` of the same arguments.

    SymPy's own undefined functions differentiate into ``Subs`` objects that only
    ``simplify`` can compare (seconds per entry); these compare after ``expand``.
    """
    partials = [sp.Function(f"d{name}_{j}") for j in range(nargs)]

    def fdiff(self, argindex=1):
        return partials[argindex - 1](*self.args)

    return type(name, (sp.Function,), {"nargs": nargs, "fdiff": fdiff})


def symbolic_skip_jacobian(
    ops: Sequence[str], n: int, blocks: int, claim: sp.MatrixExpr
) -> tuple[sp.Matrix, sp.Matrix]:
    """SymPy's Jacobian of an explicit stack along the skip edges, and ``claim`` instantiated.

    Each block acts on n activations.  Its branch input is held fixed, so the branch adds a
    constant vector F_b and only the skip edges carry x.  After the addition come the
    block's own operations: generic weights (symbol entries), BN (n unspecified functions of
    all n inputs, as batch statistics mix samples) and ReLU (an unspecified scalar
    function).  ``claim`` (from ``skip_term`` or ``skip_stack``) is evaluated with each J_b,
    D_b, W_b replaced by that operation's explicit Jacobian at the point the forward pass
    reached.
    """
    phi = generic_function("phi", 1)
    x0 = sp.Matrix(sp.symbols(f"x0:{n}"))
    u = sp.Matrix(sp.symbols(f"u0:{n}"))
    h, table, start = x0, {}, list(ops).index("add")
    for b in range(1, blocks + 1):
        h = h + sp.Matrix(sp.symbols(f"F{b}_0:{n}"))
        for count, op in enumerate(ops[start + 1 :], start=1):
            if op == "weight":
                fn = sp.Matrix(n, n, sp.symbols(f"w{b}_{count}_0:{n}(0:{n})")) * u
            elif op == "bn":
                fn = sp.Matrix([generic_function(f"B{b}_{count}_{i}", n)(*u) for i in range(n)])
            else:
                fn = u.applyfunc(phi)
            at = dict(zip(u, h, strict=True))
            table[op_jacobian(op, b if blocks > 1 else None).name] = fn.jacobian(u).subs(
                at, simultaneous=True
            )
            h = fn.subs(at, simultaneous=True)
    return h.jacobian(x0), instantiate(claim, table, n)


def instantiate(expr: sp.MatrixExpr, table: dict[str, sp.Matrix], n: int) -> sp.Matrix:
    """An explicit matrix for a product of I and named Jacobians."""
    if isinstance(expr, sp.Identity):
        return sp.eye(n)
    if isinstance(expr, sp.MatrixSymbol):
        if expr.name not in table:
            raise ValueError(f"{expr.name} names no operation after the addition")
        return table[expr.name]
    if isinstance(expr, sp.MatMul):
        out = sp.eye(n)
        for a in expr.args:
            out = out * instantiate(a, table, n)
        return out
    raise ValueError(f"cannot instantiate {expr}: only I, named Jacobians and products")


def skip_mismatches(ops: Sequence[str], n: int, blocks: int, claim: sp.MatrixExpr) -> int:
    """Entries where SymPy's skip-edge Jacobian and ``claim`` differ (all n² if ``claim``
    names an operation the block does not have after its addition)."""
    try:
        got, want = symbolic_skip_jacobian(ops, n, blocks, claim)
    except ValueError:
        return n * n
    return sum(e != 0 for e in (got - want).applyfunc(lambda e: sp.expand(e, deep=True)))


class BN(sp.Function):
    """BatchNorm as an opaque function, for printing block formulas."""

    def _latex(self, printer) -> str:
        return r"\mathrm{BN}\left(%s\right)" % printer._print(self.args[0])


class ReLU(sp.Function):
    def _latex(self, printer) -> str:
        return r"\mathrm{ReLU}\left(%s\right)" % printer._print(self.args[0])


def block_formula(ops: Sequence[str]) -> sp.Expr:
    """y as a formula in x, built by applying ``ops`` in order (weights W_1, W_2, ...)."""
    x = sp.Symbol("x", commutative=False)
    h, n_weight = x, 0
    for op in ops:
        if op == "weight":
            n_weight += 1
            h = sp.Symbol(f"W_{n_weight}", commutative=False) * h
        elif op == "bn":
            h = BN(h)
        elif op == "relu":
            h = ReLU(h)
        else:
            h = sp.Add(x, h, evaluate=False)
    return h


def apply_transpose(expr: sp.MatrixExpr, tape: list[tuple[str, Any]], g: np.ndarray) -> np.ndarray:
    """Sᵀ g for a skip term S = F_k ... F_1, each F_i applied as the VJP of the matching
    operation after the addition on a block's ``tape`` (F_k, the last, acts first)."""
    factors = [] if isinstance(expr, sp.Identity) else list(sp.MatMul.make_args(expr))
    after = tape[[op for op, _ in tape].index("add") + 1 :]
    if len(factors) != len(after):
        raise ValueError(f"{expr} has {len(factors)} factors; the block has {len(after)}")
    for factor, (op, cache) in zip(factors, reversed(after), strict=True):
        if factor.name.split("_")[0] != _JACOBIAN_NAMES[op]:
            raise ValueError(f"factor {factor} does not match the operation {op!r}")
        g = VJP[op](g, cache)
    return g
