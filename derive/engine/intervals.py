"""Interval arithmetic over a cell's assignments: the range of every variable.

Inputs, previous states and parameters may be any real numbers, so what a variable's
range knows comes from its activations: a sum adds the ends, a product takes the extreme
products of ends (an end that no value reaches stays open), a row of a matrix-vector
product is a sum of any number of such products, and a monotone (increasing or
nondecreasing) function of the registry (``derive.engine.functions``) maps a range inside
its domain to its ends' images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sympy as sp

from derive.engine.cell import Cell
from derive.engine.functions import Elementwise, lookup
from derive.errors import InputError


@dataclass(frozen=True)
class Range:
    """An interval of the extended reals with open or closed ends (exact SymPy numbers)."""

    lo: sp.Expr
    hi: sp.Expr
    lo_open: bool = True
    hi_open: bool = True

    @property
    def positive(self) -> bool:
        """Every value is > 0."""
        return bool(self.lo > 0) or (self.lo == 0 and self.lo_open)

    def as_interval(self) -> sp.Set:
        """The range as a SymPy interval."""
        return sp.Interval(self.lo, self.hi, self.lo_open, self.hi_open)

    def reaches(self, value: Any) -> bool:
        """``value`` lies in the range with its ends included (rounding may reach an end)."""
        return bool(self.lo <= value) and bool(value <= self.hi)


REAL = Range(-sp.oo, sp.oo)


def _add(a: Range, b: Range) -> Range:
    return Range(a.lo + b.lo, a.hi + b.hi, a.lo_open or b.lo_open, a.hi_open or b.hi_open)


def _mul(a: Range, b: Range) -> Range:
    corners = []
    for x, x_open in ((a.lo, a.lo_open), (a.hi, a.hi_open)):
        for y, y_open in ((b.lo, b.lo_open), (b.hi, b.hi_open)):
            if x == 0 or y == 0:  # 0 times anything, even an infinite end, is 0
                # attained if the zero end is attained (the other factor takes some value)
                attained = (x == 0 and not x_open) or (y == 0 and not y_open)
                corners.append((sp.S.Zero, not attained))
            else:
                corners.append((x * y, x_open or y_open))
    lo = min(v for v, _ in corners)
    hi = max(v for v, _ in corners)
    # An end is attained if some corner with that value is (the product of closed ends).
    lo_open = all(o for v, o in corners if v == lo)
    hi_open = all(o for v, o in corners if v == hi)
    return Range(lo, hi, lo_open, hi_open)


def _power(a: Range, n: int) -> Range:
    if n % 2 or a.lo >= 0:  # increasing on the range
        return Range(a.lo**n, a.hi**n, a.lo_open, a.hi_open)
    if a.hi <= 0:  # decreasing: the ends swap
        return Range(a.hi**n, a.lo**n, a.hi_open, a.lo_open)
    # 0 is inside: it is the smallest value, reached; the larger end in size gives the top.
    top = max((-a.lo, a.lo_open), (a.hi, a.hi_open), key=lambda p: p[0])
    tops = [o for v, o in ((-a.lo, a.lo_open), (a.hi, a.hi_open)) if v == top[0]]
    return Range(sp.S.Zero, top[0] ** n, False, all(tops))


def _sum_of_terms(p: Range) -> Range:
    """Range of a sum of n >= 1 terms, each in ``p`` (one row of a matrix-vector product)."""
    lo, lo_open = (p.lo, p.lo_open) if p.lo >= 0 else (-sp.oo, True)
    hi, hi_open = (p.hi, p.hi_open) if p.hi <= 0 else (sp.oo, True)
    return Range(lo, hi, lo_open, hi_open)


def value_range(cell: Cell, e: sp.Expr, known: dict[sp.Symbol, Range]) -> Range:
    """Range of one right-hand side of ``cell``, entry by entry, read as vectors."""
    if e.is_Number:
        return Range(e, e, False, False)
    if e.is_Symbol:
        return known[e]
    if isinstance(e, sp.Add):
        out = value_range(cell, e.args[0], known)
        for a in e.args[1:]:
            out = _add(out, value_range(cell, a, known))
        return out
    if isinstance(e, sp.Mul):
        out = value_range(cell, e.args[0], known)
        for a in e.args[1:]:
            out = _mul(out, value_range(cell, a, known))
        has_weight = any(a.is_Symbol and cell.kind(a) == "weight" for a in e.args)
        return _sum_of_terms(out) if has_weight else out
    if isinstance(e, sp.Pow) and e.exp.is_Integer and e.exp > 0:
        return _power(value_range(cell, e.base, known), int(e.exp))
    f = lookup(e)  # sqrt, a Pow, too
    if f is not None and f.monotone in ("increasing", "nondecreasing"):
        return _image(f, value_range(cell, e.args[0], known), e)
    raise InputError(
        f"no range rule for {type(e).__name__} in {e}: register it (increasing or "
        "nondecreasing) in derive/engine/functions.py or add a rule to value_range in "
        "derive/engine/intervals.py"
    )


def _image(f: Elementwise, z: Range, e: sp.Expr) -> Range:
    """The range of ``f`` on ``z``: the ends' images.  A strictly increasing function keeps
    an open end open; a nondecreasing one may reach the image of an open end (ReLU on
    (-oo, 1) reaches 0), so its ends are closed."""
    if not z.as_interval().is_subset(f.domain):
        raise InputError(
            f"{f.name} may be applied outside its domain {f.domain} in {e}: its argument "
            f"ranges over {z.as_interval()}"
        )
    strict = f.monotone == "increasing"
    return Range(f.exact(z.lo), f.exact(z.hi), z.lo_open and strict, z.hi_open and strict)


def ranges(cell: Cell) -> dict[sp.Symbol, Range]:
    """Range of every assigned variable, from inputs, previous states and parameters in R.

    Weights, biases, inputs and previous states may be any real numbers (an initial state
    is arbitrary), so everything a variable's range knows comes from its activations.
    """
    known = {s: REAL for s in (*cell.inputs, *cell.prev.values(), *cell.params)}
    for u, e in cell.assignments:
        known[u] = value_range(cell, e, known)
    return {u: known[u] for u in cell.variables}
