"""Vector form of a cell's adjoints, in matrix notation, by reverse-mode rules.

Read as vectors, the cell's assignments mean: a product holding a weight ``W`` is the
matrix-vector product ``W @ (product of the other factors)``; any other product is
elementwise (Hadamard, ``∘``); numbers broadcast; functions apply elementwise.  The rules
below carry a cotangent ``ḡ`` from an expression back to one symbol ``v``:

    v          ->  ḡ                                   (identity)
    a + b      ->  rule(a, ḡ) + rule(b, ḡ)
    c W F      ->  rule(F, c Wᵀ ḡ);   for v = W:  c ḡ Fᵀ   (matrix-vector product)
    F_1 ∘ F_2  ->  rule(F_1, ḡ ∘ F_2) + rule(F_2, ḡ ∘ F_1)  (Hadamard product)
    f(z)       ->  rule(z, ḡ ∘ f'(z))                 (elementwise function)

with ``f'`` written in forward quantities (``u ∘ (1 - u)`` for ``u = σ(z)``).  SymPy's own
matrix-expression derivatives fail or are wrong on gated cells, so they are not used:
SymPy matrix expressions only *hold* the results, which keeps them printable and
comparable.  Setting every size to 1 turns these results into the scalar ones, which the
tests check.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from functools import cached_property, reduce

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from derive.engine.adjoint import Adjoints
from derive.engine.cell import Cell, Role, VectorQuantity, t, vector_quantity
from derive.engine.functions import argument, entry, is_elementwise
from derive.errors import InputError

n_h = sp.Symbol("n_h", integer=True, positive=True)
n_x = sp.Symbol("n_x", integer=True, positive=True)
ONE = sp.OneMatrix(n_h, 1)


class VectorCell:
    """Symbols, shapes and reverse-mode rules of a cell read as vectors.

    Parameters
    ----------
    cell
        The cell.  Inputs have ``n_x`` rows, every assigned variable ``n_h``; a weight has
        ``n_h`` rows and as many columns as the vector it multiplies.
    """

    def __init__(self, cell: Cell) -> None:
        self.cell = cell
        self.weight_cols: dict[sp.Symbol, sp.Expr] = {}
        for u, e in cell.assignments:
            try:  # infers every weight's shape and rejects ill-typed products
                self.rows(e)
            except InputError as exc:
                raise InputError(f"the equation of {u}: {exc} (a weight multiplies the "
                                 "elementwise product of the factors beside it; a scalar "
                                 "rate, as an optimizer's, is no weight: write such an "
                                 'update as a map, kind = "map")') from None

    # -- shapes ---------------------------------------------------------------------------
    def rows(self, e: sp.Expr) -> sp.Expr | None:
        """Row count of a vector expression (None for a plain number)."""
        if e.is_Number:
            return None
        if e.is_Symbol:
            kind = self.cell.kind(e)
            if kind == "weight":
                raise InputError(f"weight {e} must multiply a vector")
            return n_x if kind == "input" else n_h
        if isinstance(e, sp.Mul):
            w, rest = self._split(e)
            inner = [r for r in (self.rows(f) for f in rest) if r is not None]
            if len(set(inner)) > 1:
                raise InputError(f"elementwise product of vectors of different sizes in {e}")
            if w is not None:
                cols = inner[0] if inner else None
                if cols is None or self.weight_cols.setdefault(w, cols) != cols:
                    raise InputError(f"weight {w} multiplies vectors of different sizes")
                return n_h
            return inner[0] if inner else None
        sizes = {r for r in (self.rows(a) for a in e.args) if r is not None}
        if len(sizes) > 1:
            raise InputError(f"sum of vectors of different sizes in {e}")
        return sizes.pop() if sizes else None

    def shape(self, s: sp.Symbol) -> tuple[sp.Expr, sp.Expr]:
        """Shape of a cell symbol in vector form."""
        if self.cell.kind(s) == "weight":
            return (n_h, self.weight_cols[s])
        return (self.rows(s), 1)

    def _split(self, e: sp.Mul) -> tuple[sp.Symbol | None, list[sp.Expr]]:
        weights = [f for f in e.args if f.is_Symbol and self.cell.kind(f) == "weight"]
        if len(weights) > 1:
            raise InputError(f"product of two weights in {e}: not a matrix-vector product")
        w = weights[0] if weights else None
        return w, [f for f in e.args if f is not w]

    # -- symbols at a step ----------------------------------------------------------------
    def sym(self, s: sp.Symbol, k: int = 0, role: Role = "value") -> VectorQuantity:
        """``s`` (a local symbol of the cell) at step t+k, as a vector quantity (a
        parameter has no step); ``role`` makes it its adjoint or the loss's partial."""
        state = self.cell.state_of(s)
        if state is not None:  # h_prev at step k is h at step k-1
            s, k = state, k - 1
        step = None if self.cell.kind(s) in ("weight", "bias") else t + k
        return vector_quantity(s.name, self.shape(s), role, step)

    def bar(self, s: sp.Symbol, k: int = 0) -> VectorQuantity:
        """The adjoint of ``s`` at step t+k (of a parameter: its gradient)."""
        return self.sym(s, k, "adjoint")

    def to_vec(self, e: sp.Expr, k: int) -> sp.MatrixExpr | sp.Expr:
        """A scalar expression of the cell read as a vector expression at step t+k.

        A constant (a number, or ``sqrt(2)`` of ``sqrt(2 p) = sqrt(2) sqrt(p)``) stays a
        scalar: a coefficient in a product, a vector of ones in a sum."""
        if not e.free_symbols:
            return e
        if e.is_Symbol:
            return self.sym(e, k)
        if isinstance(e, sp.Add):
            terms = [self.to_vec(a, k) for a in e.args]
            return sp.MatAdd(*[a if isinstance(a, sp.MatrixExpr) else ONE * a for a in terms])
        if isinstance(e, sp.Mul):
            w, rest = self._split(e)
            coeff = sp.Mul(*[f for f in rest if not f.free_symbols])
            vecs = [self.to_vec(f, k) for f in rest if f.free_symbols]
            inner = _hadamard(vecs)
            return coeff * (self.sym(w, k) * inner if w is not None else inner)
        if isinstance(e, sp.Pow) and e.exp.is_Integer:
            return sp.HadamardPower(self.to_vec(e.base, k), e.exp)
        if is_elementwise(e) or isinstance(e, sp.Pow):  # a power but sqrt: entry says so
            return apply_elementwise(entry(e), self.to_vec(argument(e), k))
        raise InputError(f"no vector form for {type(e).__name__} in {e}")

    # -- reverse-mode rules ---------------------------------------------------------------
    def vjp(self, e: sp.Expr, v: sp.Symbol, gbar: sp.MatrixExpr, k: int, top: sp.Symbol | None):
        """Cotangent of ``v`` from expression ``e`` whose cotangent is ``gbar``, or None.

        ``top`` is the variable ``e`` is assigned to, when ``e`` is a whole right-hand side:
        its derivative is then written through that variable.
        """
        if e == v:
            return gbar
        if v not in e.free_symbols:
            return None
        if isinstance(e, sp.Add):
            return _sum([self.vjp(a, v, gbar, k, None) for a in e.args])
        if isinstance(e, sp.Mul):
            return self._vjp_mul(e, v, gbar, k)
        if isinstance(e, sp.Pow) and e.exp.is_Integer:  # z**n -> rule(z, ḡ ∘ n z**(n-1))
            fprime = as_vector(e.exp * Z ** (e.exp - 1), {Z: self.to_vec(e.base, k)})
            return self.vjp(e.base, v, _hadamard([gbar, fprime]), k, None)
        if is_elementwise(e):
            fprime = self._fprime(e, k, top)
            return self.vjp(argument(e), v, _hadamard([gbar, fprime]), k, None)
        if isinstance(e, sp.Pow):
            entry(e)  # a power that is not sqrt: the error says which have a vector form
        raise InputError(
            f"no reverse-mode rule for {type(e).__name__} in {e}: "
            "add one to VectorCell.vjp in derive/engine/vector.py"
        )

    def _vjp_mul(self, e: sp.Mul, v: sp.Symbol, gbar, k: int):
        w, rest = self._split(e)
        coeff = sp.Mul(*[f for f in rest if not f.free_symbols])  # numbers, sqrt(2)
        factors = [f for f in rest if f.free_symbols]
        if w is not None:
            inner = _hadamard([self.to_vec(f, k) for f in factors])
            if v == w:
                return coeff * gbar * inner.T
            return self.vjp(sp.Mul(*factors), v, coeff * self.sym(w, k).T * gbar, k, None)
        parts = []
        for i, f in enumerate(factors):
            if v in f.free_symbols:
                others = [self.to_vec(o, k) for j, o in enumerate(factors) if j != i]
                parts.append(self.vjp(f, v, coeff * _hadamard([gbar, *others]), k, None))
        return _sum(parts)

    def _fprime(self, e: sp.Expr, k: int, top: sp.Symbol | None) -> sp.MatrixExpr:
        """f'(z) of ``e = f(z)`` from the registry, in forward quantities as vectors."""
        out = self.sym(top, k) if top is not None else self.to_vec(e, k)
        d = entry(e).derivative(U, Z)
        z = self.to_vec(argument(e), k) if Z in d.free_symbols else None
        return as_vector(d, {U: out, Z: z})


def as_vector(e: sp.Expr, sub: dict) -> sp.MatrixExpr | sp.Expr:
    """A scalar formula in the symbols of ``sub`` read elementwise on the vectors they stand
    for: sums and products elementwise (a number in a sum is a vector of ones), powers
    elementwise, functions applied elementwise."""
    if e in sub:
        return sub[e]
    if e.is_Number:
        return e
    if isinstance(e, sp.Add):
        terms = [as_vector(a, sub) for a in e.args]
        return reduce(operator.add, [ONE * a if a.is_Number else a for a in terms])
    if isinstance(e, sp.Mul):
        coeff, factors = e.as_coeff_mul()
        inner = _hadamard([as_vector(f, sub) for f in factors])
        return inner if coeff == 1 else coeff * inner
    if isinstance(e, sp.Pow) and e.exp.is_Integer:
        return sp.HadamardPower(as_vector(e.base, sub), e.exp)
    if is_elementwise(e):
        return apply_elementwise(entry(e), as_vector(argument(e), sub))
    raise InputError(f"no vector form for {type(e).__name__} in {e}")


# Plain symbols, not Dummies: a Dummy gets a new index per process and would make the
# exported srepr strings differ between two builds.  f'(z) in the registry reads u = f(z)
# and z; an elementwise function of a vector is written Lambda(z, f(z)).
U, Z = sp.symbols("u z")


def apply_elementwise(
    fn: Callable[[sp.Expr], sp.Expr], v: sp.MatrixExpr
) -> ElementwiseApplyFunction:
    """``fn`` applied to every entry of the vector ``v``."""
    return ElementwiseApplyFunction(sp.Lambda(Z, fn(Z)), v)


def at_absolute_step(expr, step: int):
    """``expr`` with every vector quantity at t+k moved to the fixed step ``step + k``.

    Used for display only (``bar h(0) = ...``): h at the fixed step 1 prints as ``h^{(1)}``.
    """
    sub = {m: m.xreplace({t: step}) for m in expr.atoms(VectorQuantity) if m.offset is not None}
    return expr.xreplace(sub)


def _hadamard(vecs: list) -> sp.MatrixExpr:
    flat = []
    for v in vecs:  # keep one flat product: a ∘ b ∘ c, not (a ∘ b) ∘ c
        flat.extend(v.args if isinstance(v, sp.HadamardProduct) else [v])
    return sp.HadamardProduct(*flat) if len(flat) > 1 else flat[0]


def _sum(parts: list):
    parts = [p for p in parts if p is not None]
    return sp.MatAdd(*parts) if len(parts) > 1 else (parts[0] if parts else None)


class VectorAdjoints:
    """Adjoint equations of a cell in matrix notation, from the rules above.

    The terms follow the scalar derivation (``Adjoints``): the same consumers, the same
    steps, the same loss terms; only the local derivative is carried out by the vector
    rules.
    """

    def __init__(self, cell: Cell) -> None:
        self.cell = cell
        self.vc = VectorCell(cell)
        self.scalar = Adjoints(cell)

    def _term(self, u: sp.Symbol, step: int, v: sp.Symbol) -> sp.MatrixExpr:
        local = self.cell.prev[v] if step == 1 else v
        return self.vc.vjp(self.cell.rhs(u), local, self.vc.bar(u, step), step, u)

    def _equation(self, adj, v: sp.Symbol, loss: bool) -> sp.MatrixExpr:
        parts = [self._term(term.consumer, term.step, v) for term in adj.terms]
        if loss:
            parts.insert(0, self.vc.sym(v, 0, "loss"))
        found = _sum(parts)
        # Nothing the loss depends on reads v (a state no later step reads): v has no gradient.
        return sp.ZeroMatrix(*self.vc.shape(v)) if found is None else found

    @cached_property
    def variables(self) -> dict[str, sp.MatrixExpr]:
        """``bar v(t)`` of each assigned variable, in backward-sweep order."""
        out = {}
        for name, adj in self.scalar.variables.items():
            v = sp.Symbol(name)
            out[name] = self._equation(adj, v, adj.loss_term is not None)
        return out

    @cached_property
    def inputs(self) -> dict[str, sp.MatrixExpr]:
        return {n: self._equation(a, sp.Symbol(n), False) for n, a in self.scalar.inputs.items()}

    @cached_property
    def params(self) -> dict[str, sp.MatrixExpr]:
        """One step's contribution to each parameter gradient (sum it over t = 1..T)."""
        return {n: self._equation(a, sp.Symbol(n), False) for n, a in self.scalar.params.items()}

    def initial(self, state: str) -> sp.MatrixExpr:
        """The adjoint of a state's initial value: only the step-1 consumers reach it."""
        v = sp.Symbol(state)
        adj = self.scalar.variables[state]
        found = _sum([self._term(term.consumer, 1, v) for term in adj.terms if term.step == 1])
        # A state no step reads back (c = u x, its c_prev unread) leaves c(0) no gradient.
        return sp.ZeroMatrix(*self.vc.shape(v)) if found is None else found

    def shapes(self) -> dict[str, tuple[sp.Expr, sp.Expr]]:
        """Shape of every input, variable and parameter (each adjoint has its quantity's)."""
        syms = [*self.cell.inputs, *self.cell.variables, *self.cell.params]
        return {s.name: self.vc.shape(s) for s in syms}
