"""The claims about a moments key's functions of a variable and its solved constants, each
checked apart from the rule that derived it.

* **A function of a normal variable**: E[f(a r + b)^j] as an integral against the density
  at ``DPS`` digits by adaptive quadrature, the line cut at the kink -b/a and at the mean;
  of a Bernoulli variable, the sum over its two outcomes at ``DPS`` digits.
* **A solved constant**: the equation in that constant alone (the other constants at their
  check values, the moments by their formulas), scanned for sign changes on a logarithmic
  grid and each bracketed root refined numerically: there must be one, at the closed form.
  Then the model is drawn with the constant at that value and the equation's two sides
  estimated from the draws in ``BATCHES`` batches; their difference, averaged, must lie
  within ``SAMPLING_SIGMAS`` standard errors (from the spread of the batches) of zero.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction

import mpmath
import numpy as np
import sympy as sp

from derive.engine.functions import FUNCTIONS
from derive.model.moments import MomentsSpec, symbol
from derive.model.moments_solve import Goal, Moment
from derive.model.moments_terms import affine, function_name
from derive.problems.moments import algebra
from derive.problems.moments import claims as mc
from derive.problems.moments.aggregate import in_formulas
from derive.verify import Claim, rel_error
from derive.verify.routes import SAMPLING_SIGMAS

#: The scan for roots: decades either side of 1, points per decade; the batches.
DECADES, PER_DECADE, BATCHES = 8, 10, 20


def call_claims(spec: MomentsSpec, formulas: dict[str, sp.Expr],
                values: dict[str, Fraction]) -> Iterator[Claim]:
    """E[f(r)] and E[f(r)^2] of each function of a variable, by quadrature or outcomes."""
    for key, (g, r) in algebra.calls(spec).items():
        s = symbol(r.name)
        a, b = (mpmath.mpf(sp.Rational(c).p) / sp.Rational(c).q for c in affine(g.args[0], s))
        fn = FUNCTIONS[function_name(g)].mpmath
        with mpmath.workdps(mc.DPS):
            params = mc.parameters(spec, {k: mc._mpf(v) for k, v in values.items()},
                                   mpmath.mpf)[r.name]
            for j, name in ((1, f"mean_{key}"), (2, f"square_{key}")):
                got = _moment(r.family, params, lambda t, f=fn, a=a, b=b, j=j: f(a * t + b) ** j,
                              -b / a)
                want = mpmath.mpf(sp.N(mc.formula_at(formulas[name], values), mc.DPS))
                error = rel_error([want], [got], scale=max(abs(want), mpmath.mpf(1)))
                method = (f"adaptive quadrature against the density at {mc.DPS} digits"
                          if r.family == "normal" else
                          f"the two outcomes at {mc.DPS} digits")
                yield Claim.measured(name, method, mc._sizes(spec, values, f"{r.name} ~ "
                                                           f"{r.text}"), error,
                                     mc.DIGITS_TOLERANCE)


def _moment(family: str, params: tuple, f, kink: mpmath.mpf) -> mpmath.mpf:
    if family == "bernoulli":
        q = params[0]
        return q * f(mpmath.mpf(1)) + (1 - q) * f(mpmath.mpf(0))
    mu, var = params
    sd = mpmath.sqrt(var)

    def density(t):
        return mpmath.exp(-((t - mu) ** 2) / (2 * var)) / (sd * mpmath.sqrt(2 * mpmath.pi))

    cuts = sorted({kink, mu})
    return mpmath.quad(lambda t: f(t) * density(t), [-mpmath.inf, *cuts, mpmath.inf])


def solve_claims(spec: MomentsSpec, formulas: dict[str, sp.Expr],
                 values: dict[str, Fraction]) -> Iterator[Claim]:
    """Each solved constant by a scan for roots and by draws at its value."""
    for goal in spec.goals:
        key = f"solution_{goal.constant}"
        others = {k: v for k, v in values.items() if k != goal.constant}
        others |= mc.points(spec)[0]  # the inputs where the equation is solved, if any
        want = mc.formula_at(formulas[key], others)
        roots = _roots(goal, formulas, others)
        error = (rel_error([float(want)], [float(roots[0])]) if len(roots) == 1
                 else float("inf"))
        sizes = mc._sizes(spec, others, f"{goal.constant} scanned from 1e-{DECADES} to "
                                        f"1e{DECADES}")
        yield Claim.measured(key, "the equation scanned for sign changes, each root refined",
                             sizes, error, 1e-12)
        at = others | {goal.constant: float(want)}
        z, count = _sampled_residual(spec, goal, at)
        yield Claim.measured(key, "draws at the solution: the equation's sides estimated, "
                                  "their gap in standard errors", mc._sizes(
                                      spec, others, f"{count} draws in {BATCHES} batches, "
                                                    f"seed {mc.SEED}"), z, SAMPLING_SIGMAS)


def _roots(goal: Goal, formulas: dict[str, sp.Expr], others: dict) -> list:
    """The positive roots of the goal's equation in its constant, the others fixed."""
    c = symbol(goal.constant)
    f = sp.lambdify(c, mc.formula_at(in_formulas(goal.lhs - goal.rhs, formulas), others), "mpmath")
    grid = [mpmath.mpf(10) ** (mpmath.mpf(k) / PER_DECADE)
            for k in range(-DECADES * PER_DECADE, DECADES * PER_DECADE + 1)]
    roots = []
    with mpmath.workdps(mc.DPS):
        signs = [mpmath.sign(f(x)) for x in grid]
        for x, s, x2, s2 in zip(grid, signs, grid[1:], signs[1:], strict=False):
            if s == 0:
                roots.append(x)
            elif s * s2 < 0:
                roots.append(mpmath.findroot(f, (x, x2), solver="anderson"))
    return roots


def _sampled_residual(spec: MomentsSpec, goal: Goal, at: dict) -> tuple[float, int]:
    """The equation's left minus right side from the draws of each batch: the mean over
    the batches in standard errors of that mean."""
    rng = np.random.default_rng(mc.SEED)
    params = mc.parameters(spec, {k: float(v) for k, v in at.items()}, float)
    count = mc.samples(spec, params)
    run = mc.runner(spec, "numpy", float)
    fixed = {k: float(v) for k, v in at.items()}
    gap = goal.lhs - goal.rhs
    residuals = []
    for _ in range(BATCHES):
        env = run(fixed | mc.draws_of(spec, params, fixed, rng, count // BATCHES))
        moments = {m: float(np.mean(env[m.args[1].name])) if m.args[0] == 1 else
                   float(np.var(env[m.args[1].name], ddof=1)) for m in gap.atoms(Moment)}
        residuals.append(float(gap.xreplace(moments).xreplace(
            {symbol(k): sp.Float(v) for k, v in fixed.items()})))
    spread = float(np.std(residuals, ddof=1)) / np.sqrt(BATCHES)
    return abs(float(np.mean(residuals))) / max(spread, 1e-300), count
