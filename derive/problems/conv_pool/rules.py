"""Adjoints of structured linear maps, by the index-substitution rule.

A map is written entry by entry as sums of products of indexed arrays whose indices are
affine in the loop indices (``LinearMap``)::

    out[n, f, i, j] = b[f] + Σ_{c,a,b'} xpad[n, c, S i + a, S j + b'] w[f, c, a, b']

Every array is zero outside its index range (so sums may run over whole ranges).  The
adjoint with respect to one operand ``u`` takes ``L = Σ_free dout[free] · out[free]`` and,
term by term, differentiates the summand by ``u[t]`` (SymPy's rule ∂u[e]/∂u[t] = Π_k
δ(e_k, t_k)), then removes each Kronecker delta by the index-substitution rule: a summed
index ``s`` with coefficient ±1 in ``e_k − t_k`` is solved for, substituted everywhere and
its sum dropped; the range it had becomes a support condition ``0 ≤ s(t) < count``.  With
δ(S i + a, h) this gives a = h − S i, so the adjoint of the correlation is a sum over
``f, i, j`` of ``dout[n, f, i, j] w[f, c, h − S i, k − S j]``.  Nothing about convolutions
is written here: the same rule gives the padding's adjoint and max-pooling's routing.
``evaluate`` (its own module) computes a map on arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

Limit = tuple[sp.Symbol, sp.Expr]  # an index and its count: it runs over 0 .. count - 1


class DerivationError(RuntimeError):
    """The rule cannot remove a delta: no summed index with coefficient ±1 in it."""


class IndexSum(sp.Sum):
    """A sum over whole index ranges, printed as Σ with its indices alone (the ranges are
    the arrays' own), factors in the written order and indices as ``S i + a``."""

    def _latex(self, printer) -> str:
        names = ",".join(printer._print(v) for v, *_ in self.limits)
        return r"\sum_{%s} %s" % (names, product_tex(self.function, printer))


#: The order the factors of a product are written in (the upstream gradient first).
WRITTEN = ("dy", "dout", "xpad", "x", "dxpad", "w", "M")


def product_tex(expr: sp.Expr, printer) -> str:
    """A product of indexed entries in the written order, each index tidied."""
    factors = sorted(sp.Mul.make_args(expr), key=_written_rank)
    return r"\,".join(entry_tex(f, printer) if isinstance(f, sp.Indexed)
                       else printer._print(f) for f in factors)


def _written_rank(factor: sp.Expr) -> int:
    if not factor.atoms(sp.Indexed):  # a coefficient (1/A^2) leads its product
        return -1
    name = str(factor.base) if isinstance(factor, sp.Indexed) else ""
    return WRITTEN.index(name) if name in WRITTEN else len(WRITTEN)


def entry_tex(entry: sp.Indexed, printer) -> str:
    """``{w}_{f,c,h - S i,k - S j}``: sizes before indices, positive terms first."""
    return "{%s}_{%s}" % (printer._print(entry.base),
                          ",".join(index_tex(e, printer) for e in entry.indices))


def index_tex(e: sp.Expr, printer) -> str:
    """One index expression: products (S i) before plain indices, negative terms last."""
    terms = sorted(sp.Add.make_args(e), key=lambda t: (
        t.could_extract_minus_sign(), not t.is_Mul, t.is_Symbol and not _is_index(t)))
    parts = []
    for k, term in enumerate(terms):
        negative = term.could_extract_minus_sign()
        body = _term_tex(-term if negative else term, printer)
        sign = ("-" if negative else "") if k == 0 else (" - " if negative else " + ")
        parts.append(sign + body)
    return "".join(parts)


def _term_tex(term: sp.Expr, printer) -> str:
    if not term.is_Mul:
        return printer._print(term)
    factors = sorted(term.args, key=lambda f: (not f.is_Number, _is_index(f)))
    # An upright size of several letters (SP) keeps a thin space from its index: SP i.
    printed = [printer._print(f) for f in factors]
    return "".join(p + (r"\," if p.startswith(r"\mathrm") and k < len(printed) - 1 else " ")
                   for k, p in enumerate(printed)).rstrip()


def _is_index(s: sp.Expr) -> bool:
    # Index symbols are lower case (n, f, i, j, c, a, b', h, k); sizes upper case.
    return s.is_Symbol and s.name[:1].islower()


@dataclass(frozen=True)
class Term:
    """``Σ_{limits} factor``, nonzero only where every ``support`` (expr, count) has
    ``0 ≤ expr < count``."""

    factor: sp.Expr
    limits: tuple[Limit, ...] = ()
    support: tuple[tuple[sp.Expr, sp.Expr], ...] = ()

    @property
    def expr(self) -> sp.Expr:
        if not self.limits:
            return self.factor
        return IndexSum(self.factor, *[(s, 0, n - 1) for s, n in self.limits])


@dataclass(frozen=True)
class LinearMap:
    """``base[free] = Σ terms``: one entry of a map, as sums of products of entries."""

    base: sp.IndexedBase
    free: tuple[Limit, ...]
    terms: tuple[Term, ...]

    @property
    def lhs(self) -> sp.Indexed:
        return self.base[tuple(s for s, _ in self.free)]

    @property
    def rhs(self) -> sp.Expr:
        return sp.Add(*(t.expr for t in self.terms))


def adjoint(m: LinearMap, operand: sp.IndexedBase, free: tuple[Limit, ...],
            upstream: sp.IndexedBase, name: sp.IndexedBase) -> LinearMap:
    """``name[free] = ∂L/∂operand[free]`` for ``L = Σ upstream[m's free] · m``.

    Parameters
    ----------
    m
        The map; its entries may read ``operand`` at affine indices.
    operand, free
        The array differentiated by, and its indices (with counts) in the result.
    upstream, name
        The gradient arriving at ``m``'s entries, and the result's array.
    """
    targets = tuple(sp.Dummy(s.name, integer=True) for s, _ in free)
    terms = []
    for term in m.terms:
        summand = upstream[tuple(s for s, _ in m.free)] * term.factor
        d = sp.expand(sp.diff(summand, operand[targets]))
        for product in sp.Add.make_args(d):
            if product != 0:
                terms.append(eliminate(product, m.free + term.limits, term.support))
    names = dict(zip(targets, (s for s, _ in free), strict=True))
    for t in terms:
        clash = {s for s, _ in t.limits} & set(names.values())
        if clash:
            raise DerivationError(f"index {clash.pop()} is both summed and free")
    return LinearMap(name, free, tuple(_renamed(t, names) for t in terms))


def eliminate(product: sp.Expr, limits: tuple[Limit, ...],
              support: tuple = ()) -> Term:
    """``Σ_{limits} product`` with every Kronecker delta removed by solving it for a
    summed index of coefficient ±1 (the index-substitution rule)."""
    factors = sp.Mul.make_args(product)
    deltas = [f for f in factors if isinstance(f, sp.KroneckerDelta)]
    rest = sp.Mul(*(f for f in factors if not isinstance(f, sp.KroneckerDelta)))
    counts, support = dict(limits), list(support)
    while deltas:
        delta = deltas.pop(0)
        gap = sp.expand(delta.args[0] - delta.args[1])
        if gap == 0:
            continue
        s = next((v for v in counts if gap.coeff(v) in (1, -1)
                  and not gap.coeff(v).free_symbols and sp.diff(gap, v, 2) == 0), None)
        if s is None:
            raise DerivationError(f"no summed index of coefficient 1 in {delta}")
        value = sp.expand(s - gap / gap.coeff(s))
        rest = rest.xreplace({s: value})
        deltas = [d.xreplace({s: value}) for d in deltas]
        support = [(e.xreplace({s: value}), n) for e, n in support]
        support.append((value, counts.pop(s)))
    kept = tuple((s, n) for s, n in limits if s in counts)
    return Term(rest, kept, tuple(support))


def _renamed(term: Term, names: dict) -> Term:
    return Term(term.factor.xreplace(names), term.limits,
                tuple((e.xreplace(names), n.xreplace(names)) for e, n in term.support))
