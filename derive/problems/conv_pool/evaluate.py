"""Evaluation of a ``LinearMap`` (``rules``) on arrays: the derived formulas on numbers.

Every array is zero outside its index range, and so is every term outside its support.
The summed indices that share an index expression with another index (``a`` in
``S i + a``, ``i`` in ``h − S i``) are looped over; for each of their values every other
index runs over the interval on which all the term's entries and supports are in range,
each entry is gathered there, and the product is contracted, so the work is that of the
nonzero terms alone.  The arrays' dtype is kept: integer arrays give exact integers,
arrays of fractions exact fractions (a coefficient 1/4 among them), complex ones complex
results.
"""

from __future__ import annotations

import itertools
import math
import string
from fractions import Fraction

import numpy as np
import sympy as sp

from derive.problems.conv_pool.rules import LinearMap, Term

Affine = tuple[dict[sp.Symbol, int], int]  # coefficients of the indices, and a constant


def evaluate(m: LinearMap, arrays: dict[str, np.ndarray], sizes: dict[sp.Symbol, int]
             ) -> np.ndarray:
    """The map's entries on ``arrays`` (by base name), every size given in ``sizes``.

    Parameters
    ----------
    m
        The map, e.g. a derived adjoint.
    arrays
        Each array the map reads, by its base's name.
    sizes
        A whole number for every size symbol the map's indices and counts use.
    """
    dtype = np.result_type(*(arrays[str(e.base)] for t in m.terms
                             for e in _entries(t.factor)[1]))
    if dtype.kind in "iub" and not all(_number(_entries(t.factor)[0], sizes, dtype) % 1 == 0
                                       for t in m.terms):
        dtype = np.dtype(object)  # whole numbers times a fraction: exact fractions
    out = np.zeros(tuple(_whole(n, sizes) for _, n in m.free), dtype=dtype)
    for term in m.terms:
        _add_term(out, term, [s for s, _ in m.free], arrays, sizes)
    return out


def _whole(e: sp.Expr, sizes: dict[sp.Symbol, int]) -> int:
    value = sp.sympify(e).xreplace({k: sp.Integer(v) for k, v in sizes.items()})
    if not value.is_Integer:
        raise ValueError(f"{e} is not a whole number at the given sizes")
    return int(value)


def _affine(e: sp.Expr, sizes: dict[sp.Symbol, int]) -> Affine:
    e = sp.expand(sp.sympify(e).xreplace({k: sp.Integer(v) for k, v in sizes.items()}))
    coeffs = {s: int(e.coeff(s)) for s in e.free_symbols}
    return coeffs, int(e.xreplace(dict.fromkeys(e.free_symbols, 0)))


def _entries(factor: sp.Expr) -> tuple[sp.Expr, list[sp.Indexed]]:
    parts = sp.Mul.make_args(factor)
    entries = [p for p in parts if isinstance(p, sp.Indexed)]
    return sp.Mul(*(p for p in parts if not isinstance(p, sp.Indexed))), entries


def _add_term(out: np.ndarray, term: Term, free: list[sp.Symbol],
              arrays: dict[str, np.ndarray], sizes: dict[sp.Symbol, int]) -> None:
    coeff, entries = _entries(term.factor)
    counts = {s: out.shape[k] for k, s in enumerate(free)}
    counts |= {s: _whole(n, sizes) for s, n in term.limits}
    axes = [(arrays[str(e.base)], [_affine(x, sizes) for x in e.indices]) for e in entries]
    supports = [(_affine(x, sizes), _whole(n, sizes)) for x, n in term.support]
    every = [a for _, exprs in axes for a in exprs] + [a for a, _ in supports]
    coupled = [s for s, _ in term.limits
               if any(s in a[0] and len(a[0]) > 1 for a in every)]
    for values in itertools.product(*(range(counts[s]) for s in coupled)):
        fixed = dict(zip(coupled, values, strict=True))
        spans = _spans(counts, axes, supports, fixed)
        if spans is not None:
            _contract(out, _number(coeff, sizes, out.dtype), free, axes, spans, fixed)


def _number(c: sp.Expr, sizes: dict[sp.Symbol, int], dtype: np.dtype) -> int | float | Fraction:
    """The coefficient at the sizes: exact (a fraction) on exact arrays, else a float."""
    c = sp.sympify(c).xreplace({k: sp.Integer(v) for k, v in sizes.items()})
    if c.is_Integer:
        return int(c)
    if dtype.kind in "iubO" and c.is_Rational:
        return Fraction(int(c.p), int(c.q))
    return float(c)


def _at(a: Affine, fixed: dict) -> Affine:
    coeffs, const = a
    const += sum(v * fixed[s] for s, v in coeffs.items() if s in fixed)
    rest = {s: v for s, v in coeffs.items() if s not in fixed and v != 0}
    if len(rest) > 1:
        raise ValueError(f"an index reads two open indices {sorted(map(str, rest))}")
    return rest, const


def _spans(counts: dict, axes: list, supports: list, fixed: dict) -> dict | None:
    """Each open index's interval [lo, hi) where every entry and support is in range
    (None: the term vanishes at these fixed values)."""
    spans = {s: (0, n) for s, n in counts.items() if s not in fixed}
    bounds = [(a, arr.shape[k]) for arr, exprs in axes for k, a in enumerate(exprs)]
    for a, dim in bounds + supports:
        rest, const = _at(a, fixed)
        if not rest:
            if not 0 <= const < dim:
                return None
            continue
        ((s, alpha),) = rest.items()
        # 0 <= alpha s + const <= dim - 1, solved for s (alpha of either sign).
        ends = sorted(((-const) / alpha, (dim - 1 - const) / alpha))
        lo, hi = spans[s]
        spans[s] = (max(lo, math.ceil(ends[0])), min(hi, math.floor(ends[1]) + 1))
        if spans[s][0] >= spans[s][1]:
            return None
    return spans


def _contract(out: np.ndarray, coeff, free: list, axes: list, spans: dict,
              fixed: dict) -> None:
    letters = dict(zip(spans, string.ascii_letters, strict=False))
    operands, specs = [], []
    for arr, exprs in axes:
        part, labels = arr, []
        for k in reversed(range(len(exprs))):  # from the last axis: taking one drops it
            rest, const = _at(exprs[k], fixed)
            if not rest:
                part = np.take(part, const, axis=k)
                continue
            ((s, alpha),) = rest.items()
            part = np.take(part, alpha * np.arange(*spans[s]) + const, axis=k)
            labels.insert(0, s)
        operands.append(part)
        specs.append("".join(letters[s] for s in labels))
    present = {s for spec in specs for s in spec}
    kept = [s for s in free if letters[s] in present]
    value = np.einsum(",".join(specs) + "->" + "".join(letters[s] for s in kept), *operands)
    for s in spans:  # an open summed index no entry reads counts its range
        if s not in free and letters[s] not in present:
            value = value * (spans[s][1] - spans[s][0])
    shape = [spans[s][1] - spans[s][0] if s in kept else 1 for s in free]
    out[tuple(slice(*spans[s]) for s in free)] += coeff * value.reshape(shape)
