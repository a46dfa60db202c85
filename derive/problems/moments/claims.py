"""The claims of a moments key, each checked on the equations' parse trees, apart from the
SymPy that derived them (``derive.model.interpret.Compiler`` evaluates the trees).

* **Exact enumeration** where every random variable is Bernoulli: each of the 2^k outcomes,
  weighted by its exact rational probability at the constants' check values, gives every
  moment at each check point of the inputs; the derived formulas must equal them exactly.
  (With a function in the equations the values are irrational: then the same enumeration
  runs at ``DPS`` digits.)
* **Numerical integration** where some are normal or uniform (at most ``MAX_CONTINUOUS``):
  the moments as integrals against the densities by a product Gauss rule (Hermite for a
  normal, Legendre for a uniform, whose nodes come from the eigenvalues of a small
  matrix, not from any moment), at ``DPS`` digits, the Bernoulli variables summed over
  their outcomes.  Every quantity is a polynomial in the variables, so the rule is exact
  up to rounding where its degree allows (``MAX_DEGREE``); beyond, sampling alone.
* **Sampling**: the variables drawn with a seeded generator; a sample mean must lie within
  ``SAMPLING_SIGMAS`` standard errors of its formula (the error printed is in standard
  errors), the variance as the mean of (y - E[y])^2 with the derived E[y].
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any

import lark
import mpmath
import numpy as np
import sympy as sp

from derive.engine.functions import FUNCTIONS
from derive.model.interpret import Compiler
from derive.model.moments import MomentsSpec, Random, symbol
from derive.verify import Claim, rel_error
from derive.verify.routes import SAMPLING_SIGMAS, sampled

#: Sampling: the seed, the fewest and most draws, how often a Bernoulli variable's rarer
#: outcome should occur (so that the mean's distribution is close to normal).
SEED, MIN_SAMPLES, MAX_SAMPLES, OUTCOMES = 20261203, 100_000, 1_000_000, 1000
#: Digits of the integration (and of an enumeration through functions), its tolerance.
DPS, DIGITS_TOLERANCE = 30, 1e-20
#: Gauss nodes per continuous variable (exact to degree 2 NODES - 1 in it), the digits
#: their rule is computed with beyond the working ones, and the highest degree a quantity's
#: square may have in one variable for the rule to be exact; the product rule over more
#: than MAX_CONTINUOUS variables would take NODES^3 passes per point: sampling alone then.
NODES, GUARD, MAX_CONTINUOUS = 20, 10, 2
MAX_DEGREE = 2 * NODES - 1
#: The most outcomes an enumeration runs over (beyond, sampling alone).
MAX_OUTCOMES = 2**14
#: A standard error below this fraction of the value is rounding (a draw without spread).
ROUNDING = 1e-12
#: The inputs' two check points: input i takes entry i of each row.
POINTS = (("3/2", "-1/2", "5/4", "2", "-3/4", "1", "-5/2", "1/4"),
          ("-2", "3/4", "-1", "1/2", "5/2", "-3/2", "3", "-1/4"))


def points(spec: MomentsSpec) -> list[dict[str, Fraction]]:
    """The inputs' values at each check point."""
    return [{x: Fraction(row[i]) for i, x in enumerate(spec.inputs)} for row in POINTS]


def quantities(spec: MomentsSpec) -> dict[str, Callable[[dict], Any]]:
    """Each claim about a raw moment, as the value whose mean it is (from an outcome's
    values); a variance is claimed from the mean and the second moment."""
    out: dict[str, Callable[[dict], Any]] = {}
    for name in [r.name for r in spec.random] + list(spec.moments):
        one, two = (("mean", "square") if name not in spec.moments else ("mean", "second"))
        out[f"{one}_{name}"] = lambda env, n=name: env[n]
        out[f"{two}_{name}"] = lambda env, n=name: env[n] ** 2
    return out


def runner(spec: MomentsSpec, backend: str, number: Callable) -> Callable[[dict], dict]:
    """The equations as one pass over an outcome's values (``env``: inputs, constants and
    random variables by name, the k-th copy of ``w`` in a sum as ``w@k``), from their parse
    trees; ``backend`` names the registry's numeric functions (``numpy``, ``mpmath``; none
    for exact fractions)."""
    fns = {} if backend == "fraction" else {n: f.spelling(backend) for n, f in
                                            FUNCTIONS.items()}
    compile_rhs = Compiler(fns, number, rules={"copies": _copies})
    codes = [(e.target, compile_rhs(e.tree)) for e in spec.equations]

    def run(env: dict) -> dict:
        env = dict(env)
        for target, code in codes:
            env[target] = code(env)
        return env

    return run


def _copies(t, compile_rhs: Compiler) -> Callable[[dict], Any]:
    """``sum(n, body)``: the body at each copy k, its random variables read as ``r@k``."""
    count, body = (compile_rhs(c) for c in t.children)

    def value(env: dict) -> Any:
        total = 0
        for k in range(1, int(count(env)) + 1):
            total = total + body(_copy(env, f"@{k}"))
        return total

    return value


def _copy(env: dict, mark: str) -> dict:
    """``env`` with each ``r@k...`` read as ``r...`` (one level of copies peeled)."""
    out = dict(env)
    for key, v in env.items():
        base, at, rest = key.partition("@")
        tail = at + rest
        if tail.startswith(mark) and tail[len(mark):len(mark) + 1] in ("", "@"):
            out[base + tail[len(mark):]] = v
    return out


def names(spec: MomentsSpec, values: dict) -> list[tuple[str, Random]]:
    """Every draw an outcome holds: each variable by its name, and each copy a sum makes
    of it (``w@2``, ``w@2@1`` in a sum inside a sum), with the counts at ``values``."""
    found: dict[str, Random] = {r.name: r for r in spec.random}
    by_name = dict(found)

    def walk(t, mark: str) -> None:
        if t.data == "copies":
            count, body = t.children
            n = int(values[str(count.children[0])]) if count.data == "name" else int(
                str(count.children[0]))
            for k in range(1, n + 1):
                walk(body, f"{mark}@{k}")
            return
        for c in t.children:
            if isinstance(c, lark.Tree):
                walk(c, mark)
            elif t.data == "name" and str(c) in by_name and mark:
                found[str(c) + mark] = by_name[str(c)]

    for e in spec.equations:
        walk(e.tree, "")
    return list(found.items())


def parameters(spec: MomentsSpec, values: dict[str, Any], number: Callable) -> dict:
    """Each variable's distribution parameters at the constants' ``values``, from their
    parse trees."""
    compile_rhs = Compiler({}, number)
    return {r.name: tuple(compile_rhs(t)(values) for t in r.trees) for r in spec.random}


def formula_at(expr: sp.Expr, at: dict[str, Fraction]) -> sp.Expr:
    """A derived formula at exact values of its names."""
    return sp.sympify(expr.xreplace({symbol(k): sp.Rational(v.numerator, v.denominator)
                                       for k, v in at.items()}))


def _variances(spec: MomentsSpec, got: dict[str, Any]) -> dict[str, Any]:
    return got | {f"variance_{y}": got[f"second_{y}"] - got[f"mean_{y}"] ** 2
                  for y in spec.moments}


# -- exact enumeration --------------------------------------------------------------------------
def enumerated(spec: MomentsSpec, probs: dict, fixed: dict, number: Callable,
               backend: str) -> dict[str, Any]:
    """Every moment as the sum over all outcomes of the Bernoulli variables, each weighted
    by its probability (products of q and 1 - q)."""
    run, values = runner(spec, backend, number), quantities(spec)
    drawn = names(spec, fixed)
    total = dict.fromkeys(values, number(0))
    for outcome in itertools.product((0, 1), repeat=len(drawn)):
        weight = number(1)
        for (_, r), o in zip(drawn, outcome, strict=True):
            weight *= probs[r.name][0] if o else 1 - probs[r.name][0]
        env = run({**fixed, **{n: number(o) for (n, _), o in zip(drawn, outcome,
                                                                 strict=True)}})
        for key, value in values.items():
            total[key] += weight * value(env)
    return _variances(spec, total)


def enumeration_claims(spec: MomentsSpec, formulas: dict[str, sp.Expr],
                       values: dict[str, Fraction]) -> Iterator[Claim]:
    """Every moment by enumeration, exactly (or at ``DPS`` digits through functions)."""
    exact = not spec.calls
    number, backend = (Fraction, "fraction") if exact else (mpmath.mpf, "mpmath")
    bad: dict[str, float] = {}
    with mpmath.workdps(DPS):
        probs = parameters(spec, values if exact else {k: _mpf(v) for k, v in values.items()},
                           number)
        for point in points(spec):
            fixed = {k: number(v) if exact else _mpf(v) for k, v in {**values, **point}.items()}
            got = enumerated(spec, probs, fixed, number, backend)
            for key, ref in got.items():
                want = formula_at(formulas[key], {**values, **point})
                err = (float(want != sp.Rational(ref.numerator, ref.denominator)) if exact
                       else rel_error([mpmath.mpf(sp.N(want, DPS))], [ref],
                                      scale=_scale(key, got)))
                bad[key] = bad.get(key, 0.0) + err if exact else max(bad.get(key, 0), err)
    method = ("exact enumeration over every outcome" if exact else
              f"enumeration over every outcome at {DPS} digits")
    for key, error in bad.items():
        yield Claim.measured(key, method, _sizes(spec, values, f"all {outcomes(spec, values)} "
                                                 "outcomes"), error,
                             0.0 if exact else DIGITS_TOLERANCE)


def _scale(key: str, got: dict[str, Any]) -> float:
    """The size a moment's error is judged against where it is near zero (a mean of 0 in
    rounding): the root mean square of its quantity (E[y^2] for a variance)."""
    kind, name = key.split("_", 1)
    second = got.get(f"square_{name}", got.get(f"second_{name}"))
    return float(abs(second) if kind != "mean" else mpmath.sqrt(abs(second)))


def _mpf(v: Fraction) -> mpmath.mpf:
    return mpmath.mpf(v.numerator) / v.denominator


def _sizes(spec: MomentsSpec, values: dict[str, Fraction], head: str) -> str:
    """A claim's sizes: what ran, the constants' values and the inputs' points."""
    parts = [head, *(f"{c} = {v}" for c, v in values.items())]
    for x in spec.inputs:
        parts.append(f"{x} = {' and '.join(str(p[x]) for p in points(spec))}")
    return ", ".join(parts)


# -- numerical integration ----------------------------------------------------------------------
@functools.cache
def _rule(family: str, dps: int) -> tuple[tuple[mpmath.mpf, mpmath.mpf], ...]:
    """The ``NODES``-point Gauss rule of a standard normal (Hermite) or of the uniform on
    [-1, 1] (Legendre), as probability weights: the eigenvalues and the squared first
    entries of the eigenvectors of the family's Jacobi matrix (Golub and Welsch), computed
    with ``GUARD`` digits to spare."""
    with mpmath.workdps(dps + GUARD):
        jacobi = mpmath.zeros(NODES)
        for k in range(1, NODES):
            off = mpmath.sqrt(k) if family == "normal" else k / mpmath.sqrt(4 * k**2 - 1)
            jacobi[k, k - 1] = jacobi[k - 1, k] = off
        nodes, vectors = mpmath.eigsy(jacobi)
        return tuple((nodes[i], vectors[0, i] ** 2) for i in range(NODES))


def _nodes(family: str, params: tuple) -> list[tuple[mpmath.mpf, mpmath.mpf]]:
    """A continuous variable's Gauss nodes and weights: the standard rule moved and
    scaled to its distribution."""
    if family == "normal":
        mu, var = params
        centre, half = mu, mpmath.sqrt(var)
    else:
        a, b = params
        centre, half = (a + b) / 2, (b - a) / 2
    return [(centre + half * t, w) for t, w in _rule(family, mpmath.mp.dps)]


def integrated(spec: MomentsSpec, params: dict, fixed: dict) -> dict[str, Any]:
    """Every moment as a sum over the Bernoulli outcomes of the product Gauss rule over the
    continuous variables, at the working precision: exact for a polynomial of degree below
    2 ``NODES`` in each, as every quantity of the grammar is."""
    run, values = runner(spec, "mpmath", mpmath.mpf), quantities(spec)
    discrete = [r.name for r in spec.random if r.family == "bernoulli"]
    continuous = [r for r in spec.random if r.family != "bernoulli"]
    grids = [_nodes(r.family, params[r.name]) for r in continuous]
    total = dict.fromkeys(values, mpmath.mpf(0))
    for outcome in itertools.product((0, 1), repeat=len(discrete)):
        weight = mpmath.mpf(1)
        for n, o in zip(discrete, outcome, strict=True):
            weight *= params[n][0] if o else 1 - params[n][0]
        base = {**fixed, **{n: mpmath.mpf(o) for n, o in zip(discrete, outcome, strict=True)}}
        for point in itertools.product(*grids):
            env = run(base | {r.name: t for r, (t, _) in zip(continuous, point, strict=True)})
            w = weight * mpmath.fprod(w for _, w in point)
            for key, value in values.items():
                total[key] += w * value(env)
    return _variances(spec, total)


def integration_claims(spec: MomentsSpec, formulas: dict[str, sp.Expr],
                       values: dict[str, Fraction]) -> Iterator[Claim]:
    """Every moment by integration against the densities at ``DPS`` digits."""
    worst: dict[str, float] = {}
    with mpmath.workdps(DPS):
        params = parameters(spec, {k: _mpf(v) for k, v in values.items()}, mpmath.mpf)
        for point in points(spec):
            fixed = {k: _mpf(v) for k, v in {**values, **point}.items()}
            got = integrated(spec, params, fixed)
            for key, ref in got.items():
                want = mpmath.mpf(sp.N(formula_at(formulas[key], {**values, **point}), DPS))
                worst[key] = max(worst.get(key, 0.0), rel_error([want], [ref],
                                                                  scale=_scale(key, got)))
    continuous = ", ".join(r.name for r in spec.random if r.family != "bernoulli")
    sizes = _sizes(spec, values, f"{NODES} nodes for each of {continuous}")
    for key, error in worst.items():
        yield Claim.measured(key, f"Gauss quadrature at {DPS} digits", sizes, error,
                             DIGITS_TOLERANCE)


# -- sampling ------------------------------------------------------------------------------------
def samples(spec: MomentsSpec, params: dict) -> int:
    """Draws per moment: at least ``MIN_SAMPLES``, enough for ``OUTCOMES`` of a Bernoulli
    variable's rarer outcome, at most ``MAX_SAMPLES``."""
    rare = [min(params[r.name][0], 1 - params[r.name][0]) for r in spec.random
            if r.family == "bernoulli"]
    need = math.ceil(OUTCOMES / min(rare)) if rare else MIN_SAMPLES
    return min(MAX_SAMPLES, max(MIN_SAMPLES, need))


def outcomes(spec: MomentsSpec, values: dict) -> int:
    """How many outcomes an enumeration runs over, the copies of sums counted."""
    return 2 ** len(names(spec, values))


def draws_of(spec: MomentsSpec, params: dict, values: dict, g: np.random.Generator, k: int
         ) -> dict:
    """``k`` draws of every variable and of each copy a sum makes of one."""
    out = {}
    for name, r in names(spec, values):
        a = params[r.name]
        if r.family == "bernoulli":
            out[name] = (g.random(k) < a[0]).astype(float)
        elif r.family == "normal":
            out[name] = g.normal(a[0], math.sqrt(a[1]), k)
        else:
            out[name] = g.uniform(a[0], a[1], k)
    return out


def sampling_claims(spec: MomentsSpec, formulas: dict[str, sp.Expr],
                    values: dict[str, Fraction]) -> Iterator[Claim]:
    """Every moment from draws: the worst |sample mean - formula| in standard errors."""
    rng = np.random.default_rng(SEED)
    params = parameters(spec, {k: float(v) for k, v in values.items()}, float)
    count, run = samples(spec, params), runner(spec, "numpy", float)
    worst: dict[str, float] = {}
    for point in points(spec):
        at = {**values, **point}
        fixed = {k: float(v) for k, v in at.items()}
        means = {y: float(formula_at(formulas[f"mean_{y}"], at)) for y in spec.moments}
        draws = dict(quantities(spec)) | {
            f"variance_{y}": lambda env, y=y, mu=means[y]: (env[y] - mu) ** 2 for y in spec.moments}
        for key, value in draws.items():
            def draw(g, k, v=value, base=fixed):
                return v(run(base | draws_of(spec, params, base, g, k)))
            mean, err = sampled(draw, count, rng)
            exact = float(formula_at(formulas[key], at))
            # A quantity without spread (y - E[y] the same for every draw): only rounding.
            scale = max(err, ROUNDING * abs(exact), 1e-300)
            worst[key] = max(worst.get(key, 0.0), abs(mean - exact) / scale)
    method = (f"sampling: |sample mean - formula| in standard errors (at most "
              f"{SAMPLING_SIGMAS:g})")
    sizes = _sizes(spec, values, f"{count} draws for each moment and point, seed {SEED}")
    for key, z in worst.items():
        yield Claim.measured(key, method, sizes, z, SAMPLING_SIGMAS)
