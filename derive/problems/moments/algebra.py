"""The moments of a ``MomentsSpec``, by rules applied to its distributions (no result typed
in).

Each quantity y is a polynomial in the independent random variables r_1, ..., r_k (the
grammar allows nothing else), with coefficients in the inputs and constants::

    E[r^j]                    from r's distribution (its expectation, in closed form)
    E[y]   = sum_a c_a prod_i E[r_i^(a_i)]     linearity, then independence
    E[y^2]   the same for the expansion of y^2
    Var(y) = E[y^2] - E[y]^2

A normal variable's standard deviation is a positive symbol while its moments are taken
(they hold only its even powers, which are then written in the variance as given).  Every
result is brought to one written form (``readable``): fractions over a Bernoulli
variable's probability where it is ``1 - p`` or another first-degree expression in one
constant, as dropout writes over the keep probability ``1 - p``.
"""

from __future__ import annotations

from functools import cache

import sympy as sp
import sympy.stats as st

from derive.model import moments_terms as terms
from derive.model.moments import MomentsSpec, Random, symbol
from derive.problems.moments import aggregate


def variable(r: Random) -> tuple[sp.Expr, dict[sp.Symbol, sp.Expr]]:
    """``r`` as a random symbol of its distribution, and what to put for any symbol the
    distribution needed in place of a parameter (a normal's standard deviation)."""
    if r.family == "bernoulli":
        return st.Bernoulli(r.name, r.params[0]), {}
    if r.family == "normal":
        mu, var = r.params
        sd = sp.Dummy(f"sigma_{r.name}", positive=True)
        return st.Normal(r.name, mu, sd), {sd: sp.sqrt(var)}
    a, b = r.params
    return st.Uniform(r.name, a, b), {}


@cache
def power(r: Random, j: int) -> sp.Expr:
    """E[r^j], from the distribution."""
    rv, back = variable(r)
    return sp.expand(st.E(rv**j)).xreplace(back)


def generators(expr: sp.Expr, spec: MomentsSpec) -> list[sp.Expr]:
    """What ``expr`` is a polynomial in: its plain random variables, sums of copies and
    functions of one variable (``derive.model.moments_terms``)."""
    return terms.generators(expr, {symbol(r.name) for r in spec.random})


def polynomial(expr: sp.Expr, power: int, spec: MomentsSpec) -> tuple[sp.Poly, list]:
    """``expr^power`` as a polynomial in the generators of ``expr``, and those generators
    (each stands for a symbol meanwhile, so that exp(m)^2 is not merged into exp(2 m))."""
    gens = generators(expr, spec)
    stand = [sp.Dummy(f"g{i}") for i in range(len(gens))]
    held = expr.xreplace(dict(zip(gens, stand, strict=True)))
    return sp.Poly(sp.expand(held**power), *stand) if gens else sp.Poly(held**power,
                                                                          sp.Dummy()), gens


def expectation(expr: sp.Expr, spec: MomentsSpec, power: int = 1) -> sp.Expr:
    """E[expr^power] for ``expr`` a polynomial in independent generators: each
    monomial's coefficient times the product of its factors' moments."""
    poly, gens = polynomial(expr, power, spec)
    total = sp.Integer(0)
    for powers, coeff in poly.terms():
        total += coeff * sp.Mul(*(aggregate.raw(g, j, spec) for g, j in zip(gens, powers,
                                                                           strict=False) if j))
    return total


def derivation(spec: MomentsSpec) -> dict[str, sp.Expr]:
    """Every result by key: E[r] and E[r^2] of each random variable, E[y], E[y^2] and
    Var(y) of each quantity the spec names."""
    out: dict[str, sp.Expr] = {}
    for r in spec.random:
        out[f"mean_{r.name}"] = power(r, 1)
        out[f"square_{r.name}"] = power(r, 2)
    for y in spec.moments:
        value = spec.value(y)
        mean, second = expectation(value, spec), expectation(value, spec, 2)
        out[f"mean_{y}"], out[f"second_{y}"] = mean, second
        out[f"variance_{y}"] = second - mean**2
    for key, (g, r) in calls(spec).items():
        out[f"mean_{key}"] = aggregate.call_moment(g, 1, r)
        out[f"square_{key}"] = aggregate.call_moment(g, 2, r)
    out = {k: readable(v, spec) for k, v in out.items()}
    for goal in spec.goals:
        out[f"solution_{goal.constant}"] = readable(
            aggregate.solved(goal, out, spec, f"models.{spec.name}.solve.{goal.constant}"), spec)
    return out


def calls(spec: MomentsSpec) -> dict[str, tuple[sp.Expr, Random]]:
    """Each function of a random variable the quantities read (in sums, too), by its
    results' key ``relu_z``, with its variable."""
    randoms = {symbol(r.name): r for r in spec.random}
    out: dict[str, tuple[sp.Expr, Random]] = {}
    todo = [spec.value(y) for y in spec.moments]
    while todo:
        for g in generators(todo.pop(), spec):
            if isinstance(g, terms.Copies):
                todo.append(g.body)
            elif not isinstance(g, sp.Symbol):
                (s,) = g.free_symbols & set(randoms)
                out[f"{terms.function_name(g)}_{s.name}"] = (g, randoms[s])
    return dict(sorted(out.items()))


def keep_forms(spec: MomentsSpec) -> dict[sp.Symbol, tuple[sp.Expr, sp.Dummy, sp.Expr]]:
    """For each constant some Bernoulli probability q is a first-degree expression of (as
    ``1 - p``): that constant written through q, c = (q - a)/b, the positive symbol that
    stands for q meanwhile, and q."""
    out: dict[sp.Symbol, tuple[sp.Expr, sp.Dummy, sp.Expr]] = {}
    for r in spec.random:
        q = r.params[0]
        if r.family != "bernoulli" or q.is_Symbol or len(q.free_symbols) != 1:
            continue
        (c,) = q.free_symbols
        if c in out or not q.is_polynomial(c) or sp.degree(q, c) != 1:
            continue
        stand = sp.Dummy(f"q_{r.name}", positive=True)
        out[c] = (sp.solve(sp.Eq(q, stand), c)[0], stand, q)
    return out


def readable(expr: sp.Expr, spec: MomentsSpec) -> sp.Expr:
    """``expr`` simplified, over each Bernoulli probability that ``keep_forms`` writes a
    constant through, with a numerator in the constants themselves (the same value): the
    variance of dropout reads p x^2/(1 - p)."""
    forms = keep_forms(spec)
    moved = sp.factor(sp.simplify(expr.subs({c: f for c, (f, _, _) in forms.items()})))
    back = {stand: q for _, stand, q in forms.values()}
    num, den = sp.fraction(moved)
    num = num.xreplace(back)
    # The shorter of the numerator as it came and factored in the constants themselves.
    num = _positive(min((num, sp.factor(sp.expand(num))), key=sp.count_ops))
    number, rest = den.as_coeff_Mul()
    rest = rest.xreplace(back)
    if number == 1:
        return num / rest
    if not num.is_Add:  # the number moves up: 3 (1 - p) would print as 3 - 3p
        return num / number / rest
    # A sum over 3 (1 - p): kept as written, or SymPy spreads the 3 (or the 1/3) out.
    return sp.Mul(num, sp.Pow(sp.Mul(number, rest, evaluate=False), -1, evaluate=False),
                  evaluate=False)


def _positive(expr: sp.Expr) -> sp.Expr:
    """A product with a negative sign and a sum among its factors, the sign moved into the
    sum: -p (p - 1) reads p (1 - p)."""
    if not expr.is_Mul or not expr.could_extract_minus_sign():
        return expr
    for f in expr.args:
        if f.is_Add:
            rest = [g for g in expr.args if g is not f]
            return sp.Mul(*rest) * -1 * (-f)
    return expr


def multilinear(spec: MomentsSpec, y: str) -> bool:
    """Whether each generator enters ``y`` at most to the first power: then E[y] is y with
    each replaced by its mean, and E[y^2] needs only first and second moments."""
    poly, _ = polynomial(spec.value(y), 1, spec)
    return all(max(p) <= 1 for p in poly.monoms()) if poly.monoms() else True


def expanded(spec: MomentsSpec, y: str, power: int) -> sp.Expr:
    """``y`` (or y^2) written as a sum over products of its generators, each with its
    coefficient gathered and written as the results are (``readable``): the form the
    linearity step reads."""
    poly, gens = polynomial(spec.value(y), power, spec)
    return sp.Add(*(readable(coeff, spec) * sp.Mul(*(
        sp.Pow(g, j, evaluate=False) if j > 1 else g
        for g, j in zip(gens, powers, strict=False) if j))
        for powers, coeff in poly.terms()))


def degree(spec: MomentsSpec, variables: list[Random]) -> int:
    """The highest degree any quantity's square has in one of ``variables``."""
    gens = [symbol(r.name) for r in variables]
    return max(sp.Poly(sp.expand(spec.value(y) ** 2), *gens).degree(g)
               for y in spec.moments for g in gens)


def aggregated(spec: MomentsSpec) -> bool:
    """Whether a quantity holds a sum of copies or a function of a random variable."""
    return any(not isinstance(g, sp.Symbol) for y in spec.moments
               for g in generators(spec.value(y), spec))
