"""Moments of a quantity's generators beyond its plain variables, by rules (no result typed
in), and the constants a table solves for.

* A function of one variable, f(a r + b): for a Bernoulli r, E[f^j] = q f(a + b)^j +
  (1 - q) f(b)^j; for a normal r, f is a polynomial on each piece of the line, and
  E[f^j] is the sum over the pieces of the integral of that polynomial against r's
  density (the line cut where the pieces change: each integral a closed form).
* A sum S of n independent copies of T: cumulants add over independent summands, so
  kappa_m(S) = n kappa_m(T), with the cumulants from the raw moments of T and back by

      kappa_m = mu_m - sum_{i=1}^{m-1} C(m-1, i-1) kappa_i mu_{m-i}

  (E[S] = n E[T], Var(S) = n Var(T)).
* A goal ``lhs = rhs``: the derived E(y) and Var(y) put in, solved for the constant; the
  positive root must be the only one.
"""

from __future__ import annotations

import itertools
from functools import cache

import sympy as sp

from derive.engine.functions import lookup
from derive.errors import InputError
from derive.model.moments import MomentsSpec, Random, symbol
from derive.model.moments_solve import Goal, Moment
from derive.model.moments_terms import Copies


def raw(g: sp.Expr, j: int, spec: MomentsSpec) -> sp.Expr:
    """E[g^j] for a generator ``g`` of a quantity of ``spec``."""
    from derive.problems.moments import algebra

    if isinstance(g, sp.Symbol):
        return algebra.power(_random(spec, g), j)
    if isinstance(g, Copies):
        return copies_moment(g, j, spec)
    (s,) = g.free_symbols & {symbol(r.name) for r in spec.random}
    return call_moment(g, j, _random(spec, s))


def _random(spec: MomentsSpec, s: sp.Symbol) -> Random:
    return next(r for r in spec.random if r.name == s.name)


@cache
def call_moment(g: sp.Expr, j: int, r: Random) -> sp.Expr:
    """E[f(a r + b)^j] for ``g`` = f(a r + b) (see the module doc)."""
    s, entry, arg = symbol(r.name), lookup(g), g.args[0]  # sqrt(m) is a power: args[0] is m
    exact = lambda v: entry.exact(arg.xreplace({s: v})) ** j  # noqa: E731
    if r.family == "bernoulli":
        q = r.params[0]
        return sp.simplify(q * exact(1) + (1 - q) * exact(0))
    mu, var = r.params
    sd, t = sp.Dummy("sd", positive=True), sp.Dummy("t", real=True)
    density = sp.exp(-(t - mu) ** 2 / (2 * sd**2)) / (sd * sp.sqrt(2 * sp.pi))
    total = sp.Add(*(sp.integrate(piece * density, (t, lo, hi))
                     for piece, lo, hi in _pieces(exact(t), t)))
    return sp.simplify(total).xreplace({sd: sp.sqrt(var)})


def _pieces(form: sp.Expr, t: sp.Symbol) -> list[tuple[sp.Expr, sp.Expr, sp.Expr]]:
    """``form`` as (polynomial, from, to) on the intervals where it is one polynomial."""
    form = sp.piecewise_fold(form.rewrite(sp.Piecewise))
    if not isinstance(form, sp.Piecewise):
        return [(form, -sp.oo, sp.oo)]
    cuts: set[sp.Expr] = set()
    for _, cond in form.args:
        for rel in cond.atoms(sp.core.relational.Relational):
            cuts |= set(sp.solve(rel.lhs - rel.rhs, t))
    points = [-sp.oo, *sorted(cuts), sp.oo]
    out = []
    for lo, hi in itertools.pairwise(points):
        inside = (lo + hi) / 2 if lo.is_finite and hi.is_finite else (
            hi - 1 if hi.is_finite else (lo + 1 if lo.is_finite else sp.Integer(0)))
        out.append((_at(form, t, inside), lo, hi))
    return out


def _at(form: sp.Piecewise, t: sp.Symbol, inside: sp.Expr) -> sp.Expr:
    """The piece of ``form`` that holds at the point ``inside``."""
    for expr, cond in form.args:
        if bool(cond.xreplace({t: inside})):
            return expr
    raise AssertionError("a piecewise form without a piece at a point")


def copies_moment(g: Copies, j: int, spec: MomentsSpec) -> sp.Expr:
    """E[S^j] for S a sum of n independent copies of T, by cumulants."""
    from derive.problems.moments.algebra import expectation

    mu = [sp.Integer(1)] + [expectation(g.body, spec, k) for k in range(1, j + 1)]
    kappa = cumulants(mu)
    n = g.count
    scaled = [sp.Integer(0)] + [n * k for k in kappa[1:]]
    return sp.expand(moments_of(scaled, j)[j])


def cumulants(mu: list[sp.Expr]) -> list[sp.Expr]:
    """kappa_1 .. kappa_J from raw moments mu_0 = 1, mu_1 .. mu_J (kappa_0 unused)."""
    kappa = [sp.Integer(0)] * len(mu)
    for m in range(1, len(mu)):
        kappa[m] = sp.expand(mu[m] - sum(sp.binomial(m - 1, i - 1) * kappa[i] * mu[m - i]
                                         for i in range(1, m)))
    return kappa


def moments_of(kappa: list[sp.Expr], j: int) -> list[sp.Expr]:
    """Raw moments mu_0 .. mu_j from cumulants kappa_1 .. kappa_j."""
    mu = [sp.Integer(1)] + [sp.Integer(0)] * j
    for m in range(1, j + 1):
        mu[m] = sp.expand(sum(sp.binomial(m - 1, i - 1) * kappa[i] * mu[m - i]
                              for i in range(1, m + 1)))
    return mu


def in_formulas(expr: sp.Expr, formulas: dict[str, sp.Expr]) -> sp.Expr:
    """``expr`` (a goal's side) with each E(y) and Var(y) replaced by its formula."""
    return expr.replace(
        Moment, lambda kind, y: formulas[("mean_" if kind == 1 else "variance_") + y.name])


def solved(goal: Goal, formulas: dict[str, sp.Expr], spec: MomentsSpec, where: str
           ) -> sp.Expr:
    """The positive value of the goal's constant at which its equation holds (a count of
    copies is a positive whole number meanwhile)."""
    c = symbol(goal.constant)
    stand = {c: sp.Dummy(goal.constant, positive=True)} | {
        symbol(n): sp.Dummy(n, positive=True, integer=True) for n in spec.counts}
    equation = in_formulas(goal.lhs - goal.rhs, formulas)
    back = {v: k for k, v in stand.items()}
    roots = [z.xreplace(back) for z in sp.solve(sp.together(equation.xreplace(stand)),
                                                 stand[c])
             if z.is_positive is not False]
    if len(roots) != 1:
        raise InputError(f"{where}: the equation {goal.text!r} has "
                         f"{'no' if not roots else len(roots)} positive solution"
                         f"{'s' if len(roots) != 1 else ''} for {goal.constant}; it needs "
                         "exactly one")
    return sp.factor(roots[0])
