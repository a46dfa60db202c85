"""Random variables defined in a set file (``[models.<name>]`` with ``kind = "moments"``):
the mean and variance of the quantities the table names, given its inputs.

``moments_problem(name, table, where)`` parses the table (``derive.model.moments``) and
returns a ``MomentsProblem`` subclass keyed ``name``: the variables' first two moments and
each quantity's E[y], E[y^2] and Var(y), derived from the distributions (``algebra``),
each checked by enumeration or integration and by sampling of the parse trees (``claims``)
at the constants' check values (``PARAMS``) and two points of the inputs.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from fractions import Fraction
from typing import Any, ClassVar

import sympy as sp

from derive.errors import InputError
from derive.model.moments import MomentsSpec, moments_spec, symbol
from derive.model.moments_terms import Copies
from derive.params import Exact, Int, Param
from derive.problems.base import Problem, Result
from derive.problems.moments import algebra
from derive.problems.moments import claims as mc
from derive.problems.moments import claims_terms as ct
from derive.verify import Claim
from derive.verify.routes import SAMPLING_SIGMAS

#: The bounds of a constant's check value.
VALUE_BOUND = sp.Integer(10)
#: A count of copies in the checks unless a set gives one, and the most it may be: the
#: copies of Bernoulli variables are enumerated, 2^(variables x count) outcomes.
DEFAULT_COUNT, MAX_COUNT = 3, 6


def default_values(constants: tuple[str, ...], counts: tuple[str, ...] = ()
                   ) -> dict[str, sp.Rational]:
    """The constants' check values unless a set gives them: k/(n + 2) for the k-th of n,
    all in (0, 1) (a probability, a variance) and none 1/2, where the variance of dropout's
    output has no spread to sample; a count of copies ``DEFAULT_COUNT``."""
    n = len(constants)
    return {c: sp.Integer(DEFAULT_COUNT) if c in counts else sp.Rational(k, n + 2)
            for k, c in enumerate(constants, 1)}


def check_values(spec: MomentsSpec, values: dict[str, sp.Rational], key: str) -> None:
    """Refuse check values at which a distribution is not one: a probability outside
    (0, 1), a variance not positive, an interval empty."""
    got = mc.parameters(spec, {c: Fraction(str(v)) for c, v in values.items()}, Fraction)
    at = ", ".join(f"{c} = {v}" for c, v in values.items()) or "no constants"
    for r in spec.random:
        why = _invalid(r.family, got[r.name])
        if why:
            raise InputError(f"params.{key}: at {at}, {r.name} ~ {r.text}: {why}; give "
                             "constants that make it a distribution")


def _invalid(family: str, p: tuple[Fraction, ...]) -> str | None:
    """Why a distribution's parameters ``p`` make none, or None."""
    if family == "bernoulli" and not 0 < p[0] < 1:
        return f"its probability is {p[0]}, not in (0, 1)"
    if family == "normal" and not p[1] > 0:
        return f"its variance is {p[1]}, not positive"
    if family == "uniform" and not p[0] < p[1]:
        return f"its interval [{p[0]}, {p[1]}] is empty"
    return None


class MomentsProblem(Problem):
    """Mean and variance of quantities built from independent random variables."""

    SPEC: ClassVar[MomentsSpec]
    TABLE: ClassVar[dict[str, Any]]
    WHERE: ClassVar[str]
    TEMPLATE: ClassVar[str | None] = "moments"
    LABELS = ("mean", "variance")

    def __init__(self, **values: sp.Rational) -> None:
        given = {p.name: p.default for p in self.PARAMS} | values
        self.values = {c: sp.Rational(given[c]) for c in self.SPEC.constants}
        try:
            check_values(self.SPEC, self.values, self.key)
        except ZeroDivisionError:
            raise InputError(f"params.{self.key}: a distribution's parameter divides by zero "
                             "at these values") from None

    # -- derivation ---------------------------------------------------------------------------
    def derive(self) -> dict[str, Result]:
        """Every moment, symbolic in the inputs and constants (``algebra.derivation``)."""
        return {k: Result(k, e, value=e) for k, e in algebra.derivation(self.SPEC).items()}

    # -- claims -------------------------------------------------------------------------------
    def claims(self) -> Iterator[Claim]:
        spec = self.SPEC
        formulas = {k: r.expr for k, r in self.results.items()}
        values = {c: Fraction(str(v)) for c, v in self.values.items()}
        route = self.route()
        if route == "enumeration":
            yield from mc.enumeration_claims(spec, formulas, values)
        elif route == "integration":
            yield from mc.integration_claims(spec, formulas, values)
        yield from mc.sampling_claims(spec, formulas, values)
        yield from ct.call_claims(spec, formulas, values)
        yield from ct.solve_claims(spec, formulas, values)

    def route(self) -> str:
        """The checks' exact or high-precision route: ``enumeration`` where every variable
        is Bernoulli, ``integration`` where a Gauss rule over at most ``MAX_CONTINUOUS``
        continuous variables is exact for the squares of the quantities, else
        ``sampling`` (which runs in every case)."""
        continuous = [r for r in self.SPEC.random if r.family != "bernoulli"]
        if not continuous:
            fits = mc.outcomes(self.SPEC, self.values) <= mc.MAX_OUTCOMES
            return "enumeration" if fits else "sampling"
        if algebra.aggregated(self.SPEC):  # a kink, or copies beyond the product rule
            return "sampling"
        if (len(continuous) <= mc.MAX_CONTINUOUS
                and algebra.degree(self.SPEC, continuous) <= mc.MAX_DEGREE):
            return "integration"
        return "sampling"

    # -- rendering ----------------------------------------------------------------------------
    def question_data(self) -> dict[str, Any]:
        """The variables and their distributions, the inputs, constants and equations, and
        the quantities asked about."""
        spec = self.SPEC
        return {
            "random": [(symbol(r.name), r.family, list(r.params)) for r in spec.random],
            "inputs": [symbol(x) for x in spec.inputs],
            "constants": [symbol(c) for c in spec.constants],
            "equations": [sp.Eq(symbol(e.target), e.shown, evaluate=False)
                          for e in spec.equations],
            "moments": [symbol(y) for y in spec.moments],
            "sums": [{"sum": g, "count": g.count, "body": g.body, "letter": g.letter,
                      "copies": [sp.Symbol(f"{r.name}_{g.letter}", real=True)
                                 for r in g.args[4]], "plain": list(g.args[4])}
                     for e in spec.equations for g in sorted(e.shown.atoms(Copies),
                                                             key=sp.default_sort_key)],
            "goals": [{"constant": symbol(g.constant), "lhs": g.lhs, "rhs": g.rhs}
                      for g in spec.goals],
        }

    def context(self) -> dict[str, Any]:
        r, spec = self.results, self.SPEC
        return {
            **super().context(),
            "variables": [{"symbol": symbol(v.name), "family": v.family,
                           "mean": r[f"mean_{v.name}"].expr,
                           "square": r[f"square_{v.name}"].expr} for v in spec.random],
            "quantities": [self._quantity(y) for y in spec.moments],
            "calls": [{"expr": g, "mean": r[f"mean_{k}"].expr, "square": r[f"square_{k}"].expr,
                       "family": v.family} for k, (g, v) in algebra.calls(spec).items()],
            "goals": [{"constant": symbol(g.constant), "lhs": g.lhs, "rhs": g.rhs,
                       "solution": r[f"solution_{g.constant}"].expr} for g in spec.goals],
            **self.stated(),
        }

    def _quantity(self, y: str) -> dict[str, Any]:
        r, spec = self.results, self.SPEC
        return {"symbol": symbol(y), "value": algebra.expanded(spec, y, 1),
                "square": algebra.expanded(spec, y, 2),
                "multilinear": algebra.multilinear(spec, y),
                "mean": r[f"mean_{y}"].expr, "second": r[f"second_{y}"].expr,
                "variance": r[f"variance_{y}"].expr, "sums": self._sums(y)}

    def _sums(self, y: str) -> list[dict[str, Any]]:
        """Each sum of copies in ``y``: one copy's mean and second moment."""
        spec = self.SPEC
        gens = algebra.generators(spec.value(y), spec)
        return [{"sum": g, "one": g.indexed(), "count": g.count,
                 "mean": algebra.readable(algebra.expectation(g.body, spec), spec),
                 "square": algebra.readable(algebra.expectation(g.body, spec, 2), spec)}
                for g in gens if isinstance(g, Copies)]

    def stated(self) -> dict[str, Any]:
        """The checks' settings: constants' values, the inputs' points, draws, seed."""
        spec = self.SPEC
        params = mc.parameters(spec, {c: float(v) for c, v in self.values.items()}, float)
        return {
            "values": [(symbol(c), v) for c, v in self.values.items()],
            "check_points": [[(symbol(x), sp.Rational(str(p[x]))) for x in spec.inputs]
                       for p in mc.points(spec)],
            "route": self.route(),
            "exact": not spec.calls, "outcomes": mc.outcomes(spec, self.values), "dps": mc.DPS,
            "samples": mc.samples(spec, params), "seed": mc.SEED, "sigmas": SAMPLING_SIGMAS,
        }


def _claim_names(spec: MomentsSpec) -> dict[str, str]:
    """Each result as the evidence table names it."""
    out = {}
    for v in spec.random:
        t = sp.latex(symbol(v.name))
        out[f"mean_{v.name}"], out[f"square_{v.name}"] = f"$E[{t}]$", f"$E[{t}^2]$"
    for y in spec.moments:
        t = sp.latex(symbol(y))
        out |= {f"mean_{y}": f"$E[{t}]$", f"second_{y}": f"$E[{t}^2]$",
                f"variance_{y}": f"$\\operatorname{{Var}}({t})$"}
    for key, (g, _) in algebra.calls(spec).items():
        t = sp.latex(g)
        out[f"mean_{key}"], out[f"square_{key}"] = f"$E[{t}]$", f"$E[{t}^2]$"
    for g in spec.goals:
        out[f"solution_{g.constant}"] = f"${sp.latex(symbol(g.constant))}$ solved"
    return out


def _results(spec: MomentsSpec) -> dict[str, str]:
    out = {}
    for v in spec.random:
        out[f"mean_{v.name}"] = f"E[{v.name}] for {v.name} ~ {v.text}."
        out[f"square_{v.name}"] = f"E[{v.name}^2] for {v.name} ~ {v.text}."
    for y in spec.moments:
        out[f"mean_{y}"] = f"E[{y}] given the inputs."
        out[f"second_{y}"] = f"E[{y}^2] given the inputs."
        out[f"variance_{y}"] = f"Var({y}) = E[{y}^2] - E[{y}]^2 given the inputs."
    for key, (g, v) in algebra.calls(spec).items():
        out[f"mean_{key}"] = f"E[{g}] for {v.name} ~ {v.text}."
        out[f"square_{key}"] = f"E[{g}^2] for {v.name} ~ {v.text}."
    for g in spec.goals:
        out[f"solution_{g.constant}"] = f"The positive {g.constant} with {g.text}."
    return out


def moments_problem(name: str, table: dict[str, Any], where: str) -> type[Problem]:
    """The problem class of the table (``kind = "moments"``), keyed ``name``; ``where``
    names the table in messages.  Equal tables give classes that behave alike."""
    spec = moments_spec(name, table, where)
    defaults = default_values(spec.constants, spec.counts)
    params = tuple(
        Param(c, Int(1, MAX_COUNT), int(defaults[c]), f"copies {c} counts in the numeric "
              f"checks (1 <= {c} <= {MAX_COUNT})") if c in spec.counts else
        Param(c, Exact(-VALUE_BOUND, VALUE_BOUND), defaults[c],
              f"value of {c} in the numeric checks (-{VALUE_BOUND} <= {c} <= {VALUE_BOUND})")
        for c in spec.constants)
    names = (*spec.inputs, *spec.constants, *(r.name for r in spec.random),
             *(e.target for e in spec.equations))
    attrs = {
        "__module__": __name__, "__doc__": f"{spec.title}: {MomentsProblem.__doc__}",
        "key": name, "title": spec.title, "SPEC": spec, "TABLE": copy.deepcopy(dict(table)),
        "WHERE": where, "PARAMS": params, "SYMBOLS": names,
        "MAIN": (f"solution_{spec.goals[0].constant}" if spec.goals
                 else f"variance_{spec.moments[0]}"), "RESULTS": _results(spec),
        "LABELS": ("mean", "variance", *(("solve",) if spec.goals else ())),
        "CLAIM_NAMES": _claim_names(spec),
    }
    return type(f"Moments_{name}", (MomentsProblem,), attrs)
