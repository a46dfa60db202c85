"""Sums in the order a reader expects: terms by falling degree, negative constants last.

SymPy prints a sum in its own canonical order (``-1 + 2*G``); a key reads better as
``2G − 1``.  These helpers rebuild an expression with unevaluated sums whose terms are in
reading order.  Only the printed order changes: any substitution rebuilds the usual
expression, so a result built with them is still the same SymPy value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sympy as sp


def readable(expr: Any) -> Any:
    """``expr`` with every sum's terms by falling degree, negative constants last."""
    if not isinstance(expr, sp.Basic) or expr.is_Atom:
        return expr
    args = [readable(a) for a in expr.args]
    if expr.is_Add:
        return sp.Add(*sorted(args, key=_term_order), evaluate=False)
    return expr.func(*args, evaluate=False)


def _term_order(term: sp.Expr) -> tuple:
    coeff, rest = term.as_coeff_Mul()
    symbols = sorted(term.free_symbols, key=str)
    degree = sp.Poly(term, *symbols).total_degree() if symbols else 0
    return (-degree, bool(coeff.is_negative), str(rest))


def by_monomials(expr: sp.Expr, sizes: Sequence[sp.Symbol]) -> sp.Expr:
    """``expr`` as a sum over monomials in ``sizes`` (for H, W: HW, H, W, 1), each
    coefficient factored and in reading order."""
    poly = sp.Poly(sp.expand(expr), *sizes)
    terms = [
        readable(factor_in_squares(v)) * sp.Mul(*(x**e for x, e in zip(sizes, m, strict=True)))
        for m, v in poly.terms()  # lexicographic: HW, H, W, 1
    ]
    return sp.Add(*terms, evaluate=False)


def factor_in_squares(expr: sp.Expr) -> sp.Expr:
    """``expr`` factored, with a polynomial in one symbol's square kept as one:
    k (k^2 - 1)/8 and (k^2 - 1)^2/32 rather than k (k - 1)(k + 1)/8, as a key writes them."""
    symbols = expr.free_symbols
    if len(symbols) != 1 or not expr.is_polynomial():
        return sp.factor(expr)
    (k,) = symbols
    u = sp.Dummy("u", positive=True)
    poly = sp.Poly(expr, k)
    odd = poly.monoms()[-1][0] % 2  # the lowest power of k, factored out when odd
    if any((e - odd) % 2 for (e,) in poly.monoms()):
        return sp.factor(expr)
    coeff, factors = sp.factor_list(sp.expand(expr / k**odd).subs(k, sp.sqrt(u)))
    parts = [f.subs(u, k**2) ** e for f, e in factors]
    # Unevaluated: SymPy would spread the coefficient over a single sum, (k^2 - 1)/2.
    return sp.Mul(*([coeff] if coeff != 1 else []), *([k] if odd else []), *parts,
                  evaluate=False)


def signed_factors(expr: sp.Expr) -> sp.Expr:
    """``expr`` factored, a leading minus absorbed into a factor: (i − 1)(W − j) rather
    than −(i − 1)(j − W)."""
    coeff, factors = sp.factor_list(expr)
    if coeff < 0:
        odd = next(n for n, (_, e) in enumerate(factors) if e % 2)
        factors[odd] = (sp.expand(-factors[odd][0]), factors[odd][1])
        coeff = -coeff
    parts = [readable(f) ** e for f, e in factors]
    return sp.Mul(*([coeff] if coeff != 1 else []), *parts, evaluate=False)
