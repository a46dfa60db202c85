"""Moving averages in a map, and whether the map corrects their bias (Adam's m̂, v̂).

A state updated as x' = a·x + (1 − a)·u, with a a constant, is an exponential moving
average of u.  Started at x^(0) = 0 it holds after n steps

    x^(n) = (1 − a) Σ_{i=1}^{n} a^{n−i} u_i,

so for inputs of one mean, E[u_i] = μ, the geometric sum gives E[x^(n)] = (1 − a^n) μ: the
average is biased towards its starting value 0 by the factor 1 − a^n, most in the first
steps.  A map with a step counter t corrects the bias where it reads x' only through
x'/(1 − a^{t'}): substituting x' = (1 − a^{t'}) y for every average leaves updates that no
longer depend on t.  Both facts are derived here, the sum by SymPy's summation and the
correction by that substitution; ``claims`` checks them by unrolling the update exactly and by
running the whole map.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import sympy as sp

from derive.model.maps import Grad, MapSpec, constant, new, old, run
from derive.verify import Claim

#: The symbol of the number of steps an average has taken from zero.
N_STEPS = sp.Symbol("n", positive=True, integer=True)
#: Steps the checks unroll, and the gradient the map is run with in the correction's check.
UNROLLED = 12
#: A count of completed steps at which 1 - a^t is 1 in float64 for any rate a below
#: 1 - 4e-8 (a^t < e^-40 then).
LIMIT_STEPS = 10**9


@dataclass(frozen=True)
class Average:
    """The state ``name`` as a moving average: x' = a x + (1 − a) u."""

    name: str
    rate: sp.Expr
    input: sp.Expr
    #: E[x^(n)] / E[u] after n steps from zero, derived: 1 − a^n.
    factor: sp.Expr


def averages(spec: MapSpec) -> list[Average]:
    """The states of ``spec`` that are moving averages, in the order they are updated."""
    scalars = {constant(c) for c in spec.constants}
    out = []
    for e in spec.equations:
        x = old(e.target)
        rate = sp.diff(e.rhs, x)
        rest = sp.expand(e.rhs - rate * x)
        if not rate.free_symbols or not rate.free_symbols <= scalars or rest.has(x):
            continue
        u = sp.cancel(rest / (1 - rate))
        if sp.fraction(sp.together(u))[1].free_symbols & rate.free_symbols:
            continue  # the weights do not add up to one: no average (momentum's v)
        out.append(Average(e.target, rate, sp.factor(u), bias_factor(rate)))
    return out


def bias_factor(a: sp.Expr) -> sp.Expr:
    """E[x^(n)] / E[u] for x' = a x + (1 − a) u from x^(0) = 0: (1 − a) Σ_{j<n} a^j,
    summed in closed form (the branch a ≠ 1: a rate of 1 never moves the average)."""
    j = sp.Dummy("j", integer=True, nonnegative=True)
    total = sp.summation(a**j, (j, 0, N_STEPS - 1))
    if isinstance(total, sp.Piecewise):
        total = total.args[-1].expr
    return sp.factor(sp.cancel((1 - a) * total))


def corrected(spec: MapSpec, found: list[Average]) -> bool:
    """Whether every update that reads an average reads it only through x'/(1 − a^{t'}):
    the updates, with x' = (1 − a^{t'}) y_x put in, no longer depend on the counter t."""
    if spec.step is None or not found:
        return False
    t = constant(spec.step)
    scaled = {new(a.name): a.factor.subs(N_STEPS, t + 1) * sp.Symbol(f"y_{a.name}")
              for a in found}
    readers = [e.rhs for e in spec.equations if e.rhs.has(*scaled)]
    return bool(readers) and all(
        sp.simplify(sp.diff(rhs.xreplace(scaled), t)) == 0 for rhs in readers)


# -- checks -------------------------------------------------------------------------------------
def average_claims(found: list[Average], values: dict[str, sp.Rational]) -> Iterator[Claim]:
    """Each average unrolled exactly from zero with a constant input against 1 − a^n."""
    at = {constant(c): v for c, v in values.items()}
    for a in found:
        rate = a.rate.xreplace(at)

        def misses(rate=rate, a=a) -> float:
            x, wrong = sp.Integer(0), 0
            for n in range(1, UNROLLED + 1):
                x = rate * x + (1 - rate)  # E[u] = 1
                wrong += x != a.factor.xreplace({**at, N_STEPS: n})
            return float(wrong)

        yield Claim(f"average_{a.name}", "exact: the average unrolled from zero with a "
                    "constant input, against the closed form", f"n = 1, ..., {UNROLLED}",
                    0.0, misses)


def correction_claim(spec: MapSpec, found: list[Average], values: dict[str, float],
                     rng: np.random.Generator, done: bool) -> Claim:
    """The map run from zero averages with one constant gradient, each step against the
    same step taken from the averages' limits (their inputs), with a count so large that a
    correction is 1 in float64.  Corrected (``done``): the two agree from the first step;
    not corrected: some early step differs (the first alone may agree by chance, as
    (1 − β₁)/√(1 − β₂) = 1 for β₁ = 0.9, β₂ = 0.99)."""
    gaps = _gaps(spec, found, values, rng.uniform(0.5, 2.0, 3) * rng.choice([-1.0, 1.0], 3))
    sizes = f"t = 0, ..., {UNROLLED - 1}; D = 3" if spec.step else f"{UNROLLED} steps; D = 3"
    if done:
        return Claim("corrected", "the map run from zero averages with a constant gradient, "
                     "each step against the same step from the averages' limits", sizes,
                     1e-12, lambda: max(gaps()))
    return Claim("corrected", "the map run from zero averages with a constant gradient: "
                 "its early steps differ from the steps from the averages' limits", sizes, 0.0,
                 lambda: float(not max(gaps()) > 1e-6))


def _gaps(spec: MapSpec, found: list[Average], values: dict[str, float], g: np.ndarray):
    """Per step from zero averages, how far the other states' step is from the step taken
    from the averages' limits (relative to its size; inf where a step is not finite)."""
    names, limits = {a.name for a in found}, _limits(spec, found, values, g)
    counter = {spec.step: float(LIMIT_STEPS)} if spec.step else {}

    @np.errstate(all="ignore")  # a map that divides by 1 - a^0 = 0 gives inf: a failure
    def gaps() -> list[float]:
        state = {x: np.zeros(3) if x in names else np.ones(3) for x in spec.states}
        out = []
        for t in range(UNROLLED):
            now = run(spec, state, {**values, **({spec.step: float(t)} if spec.step else {})},
                      lambda u: g)
            at_limit = {**state, **{x: f(state) for x, f in limits.items()}}
            far = run(spec, at_limit, {**values, **counter}, lambda u: g)
            gap = max(float(np.max(np.abs(now[x] - far[x])) / np.max(np.abs(far[x] - state[x])))
                      for x in spec.states if x not in names)
            out.append(gap if np.isfinite(gap) else float("inf"))
            state = now
        return out

    return gaps


def _limits(spec: MapSpec, found: list[Average], values: dict[str, float], g: np.ndarray):
    """Each average's limit under a constant gradient ``g``: its input, as a function of
    the state (the gradient put in for ∇J)."""
    grad = sp.Symbol("g")
    olds = [old(x) for x in spec.states]
    args = [grad, *olds, *(constant(c) for c in values)]
    out = {}
    for a in found:
        u = a.input.replace(lambda e: isinstance(e, Grad), lambda e: grad)
        f = sp.lambdify(args, u, "numpy")
        out[a.name] = (lambda state, f=f: np.broadcast_to(
            f(g, *(state[x] for x in spec.states), *values.values()), g.shape).copy())
    return out


def has_gradient(spec: MapSpec) -> bool:
    """Whether the map reads the objective's gradient (a constant gradient means a run)."""
    return any(e.rhs.has(Grad) for e in spec.equations)
