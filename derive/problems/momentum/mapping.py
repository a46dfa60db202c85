"""The derivation for a map given as data (``derive.model.maps.MapSpec``), as for momentum.

State s = (x_1, ..., x_m) of vectors in R^D; update i overwrites x_i with
x_i' = e_i(current state), the state as the earlier updates left it.  Then:

* **factors**: update i has the Jacobian F_i, the identity but in block row i, which holds
  ∂e_i/∂x_j.  For an elementwise e and a gradient g = ∇J(u) in it,
  ∂e/∂x = diag(∂e/∂x) + diag(∂e/∂g) H_u ∂u/∂x with H_u the Hessian of J at u; a scalar
  diagonal is c·I.  The Jacobian of the map is F_m ⋯ F_1;
* **determinants**: a matrix that is the identity but in one block row has the determinant
  of that row's diagonal block; det(c·I) = c^D, det diag(u) = ∏_j u_j, det(c·M) = c^D det M,
  det(AB) = det A det B, anything else stays det(M) for symbolic D;
* **inverse**: the updates solved in reverse order, each for its state's old value, which is
  explicit unless that value is lost, sits inside ∇J, or has several solutions.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive.engine.functions import lookup, sigma, softplus
from derive.model.maps import Grad, MapSpec, constant, new, old
from derive.problems.momentum.model import D, H, diagonal_block_det
from derive.verify.routes import nonzero_entries


class DiagOf(sp.MatrixExpr):
    """diag(u): the D×D diagonal matrix holding the entries of the elementwise vector u."""

    def __new__(cls, entry, n=D):
        return sp.Basic.__new__(cls, sp.sympify(entry), sp.sympify(n))

    @property
    def shape(self):
        return (self.args[1], self.args[1])

    def _latex(self, printer):
        return r"\operatorname{diag}\left(%s\right)" % printer._print(self.args[0])


class EntryProduct(sp.Expr):
    """∏_{j=1}^{D} u_j: the product of the entries of the elementwise vector u, which is
    det diag(u)."""

    def __new__(cls, entry, n=D):
        return sp.Expr.__new__(cls, sp.sympify(entry), sp.sympify(n))

    def _latex(self, printer, exp=None):
        text = r"\prod_{j=1}^{%s} \left[%s\right]_{j}" % (printer._print(self.args[1]),
                                                        printer._print(self.args[0]))
        return text if exp is None else r"\left(%s\right)^{%s}" % (text, exp)


def current(spec: MapSpec, i: int) -> list[sp.Symbol]:
    """The state update ``i`` reads: the new values of the states updated before it."""
    done = {e.target for e in spec.equations[:i]}
    return [new(x) if x in done else old(x) for x in spec.states]


def hessians(spec: MapSpec) -> dict[sp.Expr, sp.MatrixSymbol]:
    """The Hessian of J at each point ∇J is taken at: H alone, or H_1, H_2, ... in order."""
    points: list[sp.Expr] = []
    for e in spec.equations:
        for g in sp.preorder_traversal(e.rhs):
            if isinstance(g, Grad) and g.args[1] not in points:
                points.append(g.args[1])
    if len(points) == 1:
        return {points[0]: H}
    return {u: sp.MatrixSymbol(f"H_{k}", D, D) for k, u in enumerate(points, 1)}


def derivative(e: sp.Expr, v: sp.Symbol, spec: MapSpec, hess: dict) -> sp.MatrixExpr:
    """∂e/∂v as a D×D block for an elementwise ``e`` and a state vector ``v``."""
    grads = e.atoms(Grad)
    outer = sorted((g for g in grads if not any(h != g and h.args[1].has(g) for h in grads)),
                   key=sp.default_sort_key)
    dummies = {g: sp.Dummy(f"g{k}") for k, g in enumerate(outer)}
    back = {d: g for g, d in dummies.items()}
    flat = e.xreplace(dummies)
    terms = [_scaled(sp.diff(flat, v).xreplace(back), spec)]
    for g, d in dummies.items():
        c = sp.diff(flat, d).xreplace(back)
        inner = derivative(g.args[1], v, spec, hess)
        if c != 0 and not isinstance(inner, sp.ZeroMatrix):
            terms.append(_scaled(c, spec) * hess[g.args[1]] * inner)
    terms = [t for t in terms if not isinstance(t, sp.ZeroMatrix)]
    return sp.MatAdd(*terms).doit() if terms else sp.ZeroMatrix(D, D)


def _scaled(c: sp.Expr, spec: MapSpec) -> sp.MatrixExpr:
    """c·I for a scalar c (numbers and constants), diag(c) for a vector, 0 for zero."""
    if c == 0:
        return sp.ZeroMatrix(D, D)
    if c.free_symbols <= {constant(k) for k in spec.constants}:
        return sp.MatMul(c, sp.Identity(D)).doit() if c != 1 else sp.Identity(D)
    return DiagOf(c)


def factors(spec: MapSpec) -> list[sp.BlockMatrix]:
    """F_1, ..., F_m: the Jacobian of each update, in the order the map runs them."""
    hess, m, out = hessians(spec), len(spec.states), []
    for i, e in enumerate(spec.equations):
        row = spec.states.index(e.target)
        reads = current(spec, i)
        blocks = [[sp.Identity(D) if r == c else sp.ZeroMatrix(D, D) for c in range(m)]
                  for r in range(m)]
        blocks[row] = [derivative(e.rhs, v, spec, hess) for v in reads]
        out.append(sp.BlockMatrix(blocks))
    return out


def product(fs: list[sp.BlockMatrix]) -> sp.BlockMatrix:
    """The Jacobian F_m ⋯ F_1 block by block, each block tidied (``tidy``)."""
    if len(fs) == 1:
        return fs[0]
    blocks = sp.block_collapse(sp.MatMul(*reversed(fs))).blocks
    return sp.BlockMatrix(blocks.applyfunc(tidy))


def tidy(block: sp.MatrixExpr) -> sp.MatrixExpr:
    """A block as a key writes it: (c I)^n as c^n I, and each term's scalar factored, so
    that (−η − ημ) H reads −η (μ + 1) H."""
    if isinstance(block, sp.MatAdd):
        return sp.MatAdd(*(tidy(t) for t in block.args))
    if isinstance(block, sp.MatPow) and block.exp.is_Integer:
        coeff, mats = block.base.as_coeff_mmul()
        if all(isinstance(m, sp.Identity) for m in mats.args):
            return sp.MatMul(coeff**block.exp, sp.Identity(block.shape[0]))
        return block
    if isinstance(block, sp.MatMul):
        coeff, mats = block.as_coeff_mmul()
        return sp.MatMul(sp.factor(coeff), *mats.args) if coeff != 1 else block
    return block


def diagonals(fs: list[sp.BlockMatrix]) -> list[DiagOf]:
    """Every diag(u) of the factors, once, in the order the factors hold them (the product's
    blocks multiply these and no others)."""
    out: list[DiagOf] = []
    for f in fs:
        for b in f.blocks:
            out += [d for d in sp.preorder_traversal(b) if isinstance(d, DiagOf) and d not in out]
    return out


def factor_det(f: sp.BlockMatrix) -> sp.Expr:
    """det of a block matrix that is the identity but in one block row: that row's diagonal
    block's determinant."""
    blocks = f.blocks.tolist()
    m = len(blocks)
    eye = [[sp.Identity(D) if r == c else sp.ZeroMatrix(D, D) for c in range(m)]
           for r in range(m)]
    rows = [r for r in range(m) if blocks[r] != eye[r]]
    if len(rows) > 1:
        raise ValueError(f"no determinant rule: {f} differs from I in more than one block row")
    return block_det(blocks[rows[0]][rows[0]]) if rows else sp.Integer(1)


def block_det(b: sp.MatrixExpr) -> sp.Expr:
    """det of a D×D block for symbolic D: I, 0 and c·I by momentum's rules, diag(u) the
    product of u's entries, a common scalar factored out (c^D), a product factor by factor;
    otherwise det(b) unevaluated."""
    try:
        return diagonal_block_det(b)
    except ValueError:
        pass
    if isinstance(b, DiagOf):
        return EntryProduct(b.args[0])
    if isinstance(b, sp.MatMul):
        coeff, mats = b.as_coeff_matrices()
        if coeff != 1:
            return coeff**D * block_det(sp.MatMul(*mats).doit())
        return sp.Mul(*(block_det(x) for x in mats))
    if isinstance(b, sp.MatAdd):
        coeffs = [t.as_coeff_matrices()[0] if isinstance(t, sp.MatMul) else sp.Integer(1)
                  for t in b.args]
        common = sp.gcd_list(coeffs)
        if common not in (0, 1, -1):
            return common**D * block_det(sp.MatAdd(*(t / common for t in b.args)).doit())
    return sp.Determinant(b)


@dataclass(frozen=True)
class Inverse:
    """The updates solved in reverse order: each solved state's old value (``chain`` in the
    values recovered before it, ``expr`` in s' alone, ``positive``: it solves the update
    only where the entries are positive, as x = x'^2 solves x' = sqrt(x)), and where
    solving stopped, if it did: the state and why (``lost``: the update does not read it;
    ``inside``: it sits inside ∇J; ``several``: more than one solution; ``none``: no
    closed form)."""

    solved: tuple[tuple[str, sp.Expr, sp.Expr, bool], ...]
    stuck: tuple[str, str] | None

    @property
    def complete(self) -> bool:
        return self.stuck is None


#: Each registry function's inverse where it has one (None: it has none, as ReLU; "two":
#: each value has two preimages, as sech).
INVERSES = {
    "exp": sp.log, "log": sp.exp, "tanh": sp.atanh, "sqrt": lambda t: t**2,
    "sigma": lambda t: sp.log(t / (1 - t)), "softplus": lambda t: sp.log(sp.exp(t) - 1),
    "sech": "two", "relu": None, "step": None,
}


def solve_inverse(spec: MapSpec) -> Inverse:
    """Each update solved for its state's old value, last update first; a solution counts
    only once put back into its update it gives the new value exactly."""
    known: dict[sp.Symbol, sp.Expr] = {}
    solved = []
    for e in reversed(spec.equations):
        x = old(e.target)
        why = _unsolvable(e.rhs, x)
        roots = [] if why else solve_update(e.rhs, x, new(e.target))
        checked = [(r, p) for r in roots or ()
                   for p in (residual_positive(e.rhs, x, r, new(e.target)),) if p is not None]
        if why or len(checked) != 1:
            why = why or ("several" if len(roots or ()) > 1 else "none")
            return Inverse(tuple(solved), (e.target, why))
        chain = sp.together(checked[0][0])
        known[x] = chain.xreplace(known)
        solved.append((e.target, chain, known[x], checked[0][1]))
    return Inverse(tuple(solved), None)


def solve_update(rhs: sp.Expr, x: sp.Symbol, y: sp.Symbol) -> list[sp.Expr] | None:
    """The solutions x of y = rhs: linear in x, or with x read once and undone operation by
    operation; None where neither holds (solving would take more than closed forms)."""
    slope = sp.diff(rhs, x)
    if not slope.has(x):
        return [(y - rhs.xreplace({x: sp.Integer(0)})) / slope]
    if sum(1 for a in sp.preorder_traversal(rhs) if a == x) != 1:
        return None
    return _peel(rhs, x, y)


def _peel(e: sp.Expr, x: sp.Symbol, t: sp.Expr) -> list[sp.Expr] | None:
    """The x with e(x) = t, for an e that reads x once: each operation around x undone."""
    if e == x:
        return [t]
    inner = next(a for a in e.args if a.has(x))
    rest = [a for a in e.args if a is not inner]
    if isinstance(e, sp.Add):
        return _peel(inner, x, t - sp.Add(*rest))
    if isinstance(e, sp.Mul):
        return _peel(inner, x, t / sp.Mul(*rest))
    if isinstance(e, sp.Pow) and inner is e.base:
        n = sp.Rational(e.exp)
        if n.p % 2 == 0:  # an even power: two preimages
            return [t, -t]
        return _peel(inner, x, t ** (1 / n))
    entry = lookup(e)
    undo = INVERSES.get(entry.name) if entry is not None else None
    if undo == "two":
        return [t, -t]
    return None if undo is None else _peel(inner, x, undo(t))


def residual(rhs: sp.Expr, x: sp.Symbol, root: sp.Expr, target: sp.Symbol,
             positive: bool = False) -> sp.Expr:
    """The update at ``x = root`` minus its new value, the registry's functions written in
    exponentials (so that SymPy can cancel them); with ``positive``, every state's entries
    taken positive."""
    out = (rhs.xreplace({x: root}) - target).rewrite([sigma, softplus], sp.exp)
    if positive:
        out = out.xreplace({s: sp.Symbol(s.name, positive=True) for s in out.free_symbols})
    return out


def residual_positive(rhs, x, root, target) -> bool | None:
    """False if ``root`` solves the update for any entries, True if for positive ones only,
    None if for neither."""
    # A fractional power is SymPy's principal root: real only for positive entries.
    roots = any(isinstance(p, sp.Pow) and not p.exp.is_integer for p in sp.preorder_traversal(root))
    for positive in (roots, True):
        if nonzero_entries(residual(rhs, x, root, target, positive)) == 0:
            return positive
    return None


def _unsolvable(rhs: sp.Expr, x: sp.Symbol) -> str:
    if not rhs.has(x):
        return "lost"
    if any(g.args[1].has(x) for g in rhs.atoms(Grad)):
        return "inside"
    return ""
