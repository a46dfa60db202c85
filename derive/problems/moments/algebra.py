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

from derive.model.moments import MomentsSpec, Random, symbol


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
def _power(r: Random, j: int) -> sp.Expr:
    """E[r^j], from the distribution."""
    rv, back = variable(r)
    return sp.expand(st.E(rv**j)).xreplace(back)


def expectation(expr: sp.Expr, spec: MomentsSpec) -> sp.Expr:
    """E[expr] for a polynomial ``expr`` in the spec's random variables (as plain symbols):
    each monomial's coefficient times the product of its factors' moments."""
    gens = [symbol(r.name) for r in spec.random]
    poly = sp.Poly(sp.expand(expr), *gens)
    total = sp.Integer(0)
    for powers, coeff in poly.terms():
        total += coeff * sp.Mul(*(_power(r, j) for r, j in zip(spec.random, powers,
                                                                 strict=True) if j))
    return total


def derivation(spec: MomentsSpec) -> dict[str, sp.Expr]:
    """Every result by key: E[r] and E[r^2] of each random variable, E[y], E[y^2] and
    Var(y) of each quantity the spec names."""
    out: dict[str, sp.Expr] = {}
    for r in spec.random:
        out[f"mean_{r.name}"] = _power(r, 1)
        out[f"square_{r.name}"] = _power(r, 2)
    for y in spec.moments:
        value = spec.value(y)
        mean, second = expectation(value, spec), expectation(value**2, spec)
        out[f"mean_{y}"], out[f"second_{y}"] = mean, second
        out[f"variance_{y}"] = second - mean**2
    return {k: readable(v, spec) for k, v in out.items()}


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
    """Whether each random variable enters ``y`` at most to the first power: then E[y] is y
    with each variable replaced by its mean, and E[y^2] needs only E[r] and E[r^2]."""
    gens = [symbol(r.name) for r in spec.random]
    poly = sp.Poly(sp.expand(spec.value(y)), *gens)
    return all(max(p) <= 1 for p in poly.monoms()) if poly.monoms() else True


def expanded(spec: MomentsSpec, y: str, power: int) -> sp.Expr:
    """``y`` (or y^2) written as a sum over products of the random variables, each with its
    coefficient gathered and written as the results are (``readable``): the form the
    linearity step reads."""
    gens = [symbol(r.name) for r in spec.random]
    poly = sp.Poly(sp.expand(spec.value(y) ** power), *gens)
    return sp.Add(*(readable(coeff, spec) * sp.Mul(*(g**j for g, j in zip(gens, powers,
                                                                        strict=True)))
                    for powers, coeff in poly.terms()))


def degree(spec: MomentsSpec, variables: list[Random]) -> int:
    """The highest degree any quantity's square has in one of ``variables``."""
    gens = [symbol(r.name) for r in variables]
    return max(sp.Poly(sp.expand(spec.value(y) ** 2), *gens).degree(g)
               for y in spec.moments for g in gens)
