"""One equation of an indexed model (``derive.model.indexed``), its parse tree read into
sums of products: ``Σ_{limits} coefficient · entry · entry ...`` per term.

The right side's arithmetic distributes: a product of two sums is the sum of the products
of their terms, ``sum(a < A: ...)`` adds ``a`` to each term's limits, and a division or a
power applies to a coefficient alone (numbers and sizes).  An index expression must be
affine in the indices in scope, with whole-number or size coefficients.  Every refusal is
one line naming the equation, the column, what was found and what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive.errors import InputError

Limit = tuple[sp.Symbol, sp.Expr]
#: One term: its coefficient, its entries, its summed indices with their counts.
Lin = list[tuple[sp.Expr, tuple[sp.Indexed, ...], tuple[Limit, ...]]]


def index_symbol(name: str) -> sp.Symbol:
    """The symbol of an index (a whole number)."""
    return sp.Symbol(name, integer=True)


@dataclass
class Scope:
    """What an equation may name: the shaped arrays, the sizes, the targets so far."""

    shapes: dict[str, list]
    sizes: list[str]
    targets: list[str]
    assigned: set[str]


class TermBuilder:
    """Reads one equation's tree (``equation``) in its ``Scope``."""

    def __init__(self, scope: Scope, where: str, text: str, many_pools: bool) -> None:
        self.scope, self.where, self.text, self.many_pools = scope, where, text, many_pools
        self.indices: dict[str, sp.Symbol] = {}
        self.reads: list = []

    def fail(self, column: int, why: str) -> InputError:
        return InputError(f"{self.where}: column {column}: {why}")

    # -- the equation ------------------------------------------------------------------------
    def equation(self, tree):
        from derive.model.indexed import IndexedEquation

        lhs, rhs = tree.children
        target, free = self._lhs(lhs)
        window: tuple[Limit, ...] = ()
        mask = None
        if rhs.data == "pool":
            mask = f"M_{target}" if self.many_pools else "M"
            terms, window = self._pool(rhs, target, free, mask)
        else:
            terms = [(sp.Mul(c, *e), lim) for c, e, lim in self.lin(rhs) if c != 0]
        if not terms:
            raise self.fail(rhs.meta.column, "the right side is zero; write a term")
        return IndexedEquation(target, free, tuple(terms), window, mask, tuple(self.reads),
                               rhs, self.text)

    def _axes(self, name: str, idx: list, tok) -> list:
        """``name``'s declared axes, once its entry ``name[idx]`` names one index per axis."""
        axes = self.scope.shapes[name]
        if len(idx) != len(axes):
            raise self.fail(tok.column, f"{name}[...] has {len(idx)} indices; {name} has "
                                        f"{len(axes)} axes ({_counts(axes)})")
        return axes

    def _lhs(self, lhs) -> tuple[str, tuple[Limit, ...]]:
        tok, *idx = lhs.children
        target, shapes = str(tok), self.scope.shapes
        if target not in shapes:
            raise self.fail(tok.column, f"{target!r} has no shape; declared are "
                                        f"{', '.join(shapes)}")
        if target in self.scope.targets:
            raise self.fail(tok.column, f"{target!r} is assigned already; an equation assigns a "
                                        "new array once")
        axes = self._axes(target, idx, tok)
        free = []
        for t, (_, count, _) in zip(idx, axes, strict=True):
            if t.data != "name":
                raise self.fail(t.meta.column, "the left side's indices must be plain index "
                                               f"names, one per axis, as {target}[i, j]")
            free.append((self._new_index(t.children[0]), count))
        return target, tuple(free)

    def _new_index(self, tok) -> sp.Symbol:
        name = str(tok)
        if name in self.indices:
            raise self.fail(tok.column, f"index {name!r} is used already in this equation; each "
                                        "left-side and summed index has a name of its own")
        if name in self.scope.shapes or name in self.scope.sizes or not name[:1].islower():
            raise self.fail(tok.column, f"{name!r} cannot be an index: an index's name begins "
                                        "with a small letter and is no array's or size's")
        self.indices[name] = index_symbol(name)
        return self.indices[name]

    def _pool(self, t, target: str, free, mask: str):
        *bounds, body = t.children
        window = tuple(self._bound(b) for b in bounds)
        if body.data != "entry":
            raise self.fail(body.meta.column, "max(...) takes one entry after ':', as "
                                              "max(a < K: u[S*i + a])")
        entry = self._entry(body)
        selector = sp.IndexedBase(mask)[tuple(s for s, _ in free) + tuple(s for s, _ in window)]
        return [(selector * entry, window)], window

    def _bound(self, t) -> Limit:
        tok, count = t.children
        symbol = self._new_index(tok)
        return symbol, self._count(count)

    def _count(self, t) -> sp.Expr:
        from derive.model.indexed import size_expr

        return size_expr(t, self.scope.sizes, self.where, shown=False)

    # -- the right side ----------------------------------------------------------------------
    def lin(self, t) -> Lin:
        rule = t.data
        if rule == "number":
            return [(sp.Rational(str(t.children[0])), (), ())]
        if rule == "name":
            return [(self._size(t.children[0]), (), ())]
        if rule == "entry":
            return [(sp.Integer(1), (self._entry(t),), ())]
        if rule == "total":
            *bounds, body = t.children
            limits = tuple(self._bound(b) for b in bounds)
            return [(c, e, lim + limits) for c, e, lim in self.lin(body)]
        if rule == "pool":
            raise self.fail(t.meta.column, "max(...) must be the whole right side, as "
                                           "y[i] = max(a < K: u[S*i + a])")
        if rule == "neg":
            return [(-c, e, lim) for c, e, lim in self.lin(t.children[0])]
        if rule == "pow":
            base = self._coefficient(t.children[0], "a power")
            return [(base ** int(t.children[1]), (), ())]
        if rule == "matmul":
            raise self.fail(t.meta.column, "'@' has no meaning here; write the sum out with "
                                           "sum(...) and *")
        a = self.lin(t.children[0])
        if rule in ("add", "sub"):
            sign = -1 if rule == "sub" else 1
            return a + [(sign * c, e, lim) for c, e, lim in self.lin(t.children[1])]
        if rule == "div":
            d = self._coefficient(t.children[1], "a division")
            if d == 0:
                raise self.fail(t.children[1].meta.column, "division by zero")
            return [(c / d, e, lim) for c, e, lim in a]
        b = self.lin(t.children[1])
        return [(ca * cb, ea + eb, la + lb) for ca, ea, la in a for cb, eb, lb in b]

    def _coefficient(self, t, what: str) -> sp.Expr:
        got = self.lin(t)
        if len(got) != 1 or got[0][1] or got[0][2]:
            raise self.fail(t.meta.column, f"{what} of an entry or a sum; only numbers and "
                                           "sizes may be divided by or raised to a power")
        return got[0][0]

    def _size(self, tok) -> sp.Symbol:
        from derive.model.indexed import size_symbol

        name = str(tok)
        if name in self.scope.sizes:
            return size_symbol(name)
        if name in self.indices:
            raise self.fail(tok.column, f"index {name!r} stands outside an entry's brackets; an "
                                        "index may appear only inside [...]")
        if name in self.scope.shapes:
            raise self.fail(tok.column, f"array {name!r} needs its indices, as {name}[...]")
        raise self.fail(tok.column, f"{name!r} is not declared; allowed are the sizes "
                                    f"{', '.join(self.scope.sizes)}, entries and numbers")

    def _entry(self, t) -> sp.Indexed:
        tok, *idx = t.children
        name, shapes = str(tok), self.scope.shapes
        if name not in shapes:
            raise self.fail(tok.column, f"{name!r} is not a declared array; declared are "
                                        f"{', '.join(shapes)}")
        targets = self.scope.targets
        if name not in targets and name in self.scope.assigned:
            raise self.fail(tok.column, f"{name!r} is assigned by this or a later equation; an "
                                        "equation reads given arrays and earlier targets")
        self._axes(name, idx, tok)
        entry = sp.IndexedBase(name)[tuple(self._index(x) for x in idx)]
        text = self.text[t.meta.start_pos:t.meta.end_pos]
        self.reads.append((name, entry, text, tok.column))
        return entry

    def _index(self, t) -> sp.Expr:
        e = sp.expand(self._index_expr(t))
        idx = [s for s in e.free_symbols if s.name in self.indices]
        poly = sp.Poly(e, *idx) if idx else None
        if poly is not None and poly.total_degree() > 1:
            raise self.fail(t.meta.column, f"the index {e} is not affine in the indices; allowed "
                                           "are sums of indices times whole numbers or sizes")
        coeffs = poly.coeffs() if poly is not None else [e]
        for c in coeffs:
            if not _whole_polynomial(c):
                raise self.fail(t.meta.column, f"the index {e} has the coefficient {c}; allowed "
                                               "are whole numbers and sizes (no fractions)")
        return e

    def _index_expr(self, t) -> sp.Expr:
        from derive.model.indexed import size_symbol

        rule = t.data
        if rule == "number":
            return sp.Rational(str(t.children[0]))
        if rule == "name":
            tok = t.children[0]
            name = str(tok)
            if name in self.indices:
                return self.indices[name]
            if name in self.scope.sizes:
                return size_symbol(name)
            named = ", ".join(self.indices) or "none"
            raise self.fail(tok.column, f"{name!r} is not an index of this equation nor a size; "
                                        f"its indices are {named} (left side or summed)")
        if rule == "neg":
            return -self._index_expr(t.children[0])
        if rule in ("add", "sub", "mul"):
            a, b = (self._index_expr(c) for c in t.children)
            return {"add": a + b, "sub": a - b, "mul": a * b}[rule]
        raise self.fail(t.meta.column, "an index is a sum of indices, sizes and whole numbers "
                                       "with + - *; no entries, / or powers")


def _whole_polynomial(c: sp.Expr) -> bool:
    sizes = sorted(c.free_symbols, key=str)
    if not sizes:
        return c.is_Integer
    return all(k.is_Integer for k in sp.Poly(c, *sizes).coeffs())


def _counts(axes: list) -> str:
    return ", ".join(str(count) for _, count, _ in axes)
