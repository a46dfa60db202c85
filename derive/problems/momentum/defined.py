"""A map defined as data in a set file (``[models.<name>]`` with ``kind = "map"``), derived
as the bundled momentum map is.

``map_problem(name, table, where)`` parses the table (``derive.model.maps.map_spec``) and
returns a ``MapProblem`` subclass whose key is ``name``: the inverse, solved update by
update in reverse order where each update can be solved for its state; the Jacobian as one
factor per update and block by block; each factor's determinant and the map's, for
symbolic D (``mapping``); every claim checked on the map run from its parse tree with a
non-quadratic J for D = 1..4 (``map_claims``).  The class holds everything it is built
from (``TABLE``), so the same table gives, in any process, a class that behaves the same.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import sympy as sp

from derive.model.maps import MapSpec, constant, map_spec, new, old
from derive.params import Exact, Int, Param
from derive.problems.base import Problem, Result
from derive.problems.momentum import averages, map_eval, map_instances, mapping
from derive.problems.momentum import map_claims as mc
from derive.problems.momentum.averages import has_gradient
from derive.problems.momentum.model import D
from derive.verify import Claim

SEED = 20261201
#: The bounds of a constant's value in the numeric checks.
VALUE_BOUND = sp.Integer(10)
#: The most completed steps a step counter may be given in the numeric checks.
STEP_BOUND = 10**6

#: What each result of a defined map is (``{x}``: each state's name).
MAP_RESULT_DOCS = {
    "inverse_{x}": "x_k from the next step's state, for each state whose update is undone in "
                   "closed form.",
    "jacobian_factors": "The Jacobian of one step as a product of one factor per update.",
    "jacobian": "The Jacobian of one step, block by block.",
    "factor_dets": "The determinants of the factors, in the order the updates run.",
    "det_jacobian": "The determinant of the Jacobian, for symbolic D.",
    "average_{x}": "For each state that is a moving average x' = a x + (1 - a) u: E[x] over "
                   "E[u] after n steps from x = 0, 1 - a^n.",
    "corrected": "Whether the map divides each moving average by that factor (Adam's bias "
                 "correction); only for a map with moving averages.",
}


def default_values(constants: tuple[str, ...]) -> dict[str, sp.Rational]:
    """The constants' values in the numeric checks unless a set gives them: evenly spaced
    from 1/10 to 9/10, in the order declared (momentum's alpha = 1/10, beta = 9/10)."""
    m = len(constants)
    step = sp.Rational(8, 10 * (m - 1)) if m > 1 else 0
    return {c: sp.Rational(1, 10) + k * step for k, c in enumerate(constants)}


class MapProblem(Problem):
    """Inverse, factored Jacobian and determinant of a map given as data."""

    SPEC: ClassVar[MapSpec]
    #: The table the class was built from (a copy) and where it was written, to build it
    #: again anywhere.
    TABLE: ClassVar[dict[str, Any]]
    WHERE: ClassVar[str]
    #: How many diagonals the Jacobian's blocks hold (set on first use of ``symbols``), and
    #: the states the inverse recovers (on first use of ``result_docs``).
    DIAGONALS: ClassVar[int]
    SOLVED: ClassVar[tuple[str, ...]]
    AVERAGED: ClassVar[tuple[str, ...]]
    TEMPLATE: ClassVar[str | None] = "map"
    MAIN = "det_jacobian"
    LABELS = ("inverse", "det")
    CLAIM_NAMES: ClassVar[dict[str, str]] = {
        "jacobian_factors": "the factors of the Jacobian",
        "jacobian": "the Jacobian as one block matrix",
        "factor_dets": "determinants of the factors",
        "det_jacobian": "determinant of the Jacobian",
        "corrected": "whether the averages' bias is divided out",
    }

    def __init__(self, **values: sp.Rational) -> None:
        #: The constants' values in the numeric checks (the derivation is symbolic).
        given = {p.name: p.default for p in self.PARAMS} | values
        self.values = {c: sp.Rational(given[c]) for c in self.SPEC.constants}

    # -- derivation ---------------------------------------------------------------------------
    @cached_property
    def hessians(self) -> dict[sp.Expr, sp.MatrixSymbol]:
        return mapping.hessians(self.SPEC)

    @cached_property
    def factors(self) -> list[sp.BlockMatrix]:
        """F_1, ..., F_m in the order the updates run (the Jacobian is F_m ⋯ F_1)."""
        return mapping.factors(self.SPEC)

    @cached_property
    def inverse(self) -> mapping.Inverse:
        return mapping.solve_inverse(self.SPEC)

    def derive(self) -> dict[str, Result]:
        fs = self.factors
        dets = [mapping.factor_det(f) for f in fs]
        det = sp.Mul(*dets)
        out = {f"inverse_{x}": Result(f"inverse_{x}", expr, old(x), chain=chain)
               for x, chain, expr, _ in self.inverse.solved}
        shown = sp.MatMul(*reversed(fs), evaluate=False) if len(fs) > 1 else fs[0]
        return out | self.derive_averages() | {
            "jacobian_factors": Result("jacobian_factors", shown, sp.Symbol("J")),
            "jacobian": Result("jacobian", mapping.product(fs), sp.Symbol("J")),
            "factor_dets": Result("factor_dets", sp.Tuple(*dets), value=list(dets)),
            "det_jacobian": Result("det_jacobian", det, value=det),
        }

    @cached_property
    def moving(self) -> list[averages.Average]:
        """The states that are moving averages (Adam's m and v)."""
        return averages.averages(self.SPEC)

    def derive_averages(self) -> dict[str, Result]:
        """Each moving average's bias from zero, and whether the map corrects it."""
        out = {f"average_{a.name}": Result(f"average_{a.name}", a.factor,
                                           sp.Symbol(f"{a.name}^(n)"), value=a.factor)
               for a in self.moving}
        if self.moving:
            done = averages.corrected(self.SPEC, self.moving)
            out["corrected"] = Result("corrected", done, value=done)
        return out

    # -- claims -------------------------------------------------------------------------------
    def claims(self) -> Iterator[Claim]:
        r, spec = self.results, self.SPEC
        values = {c: float(v) for c, v in self.values.items()}
        points = mc.points(spec, values, np.random.default_rng(SEED))
        yield from mc.inverse_claims(spec, self.inverse, points)
        yield from mc.symbolic_inverse_claims(spec, self.inverse)
        derived = (self.factors, r["jacobian"].expr, list(r["factor_dets"].expr),
                   r["det_jacobian"].expr, self.hessians)
        yield from mc.jacobian_claims(*derived, points)
        if map_instances.small(spec, self.factors):
            yield from map_instances.instance_claims(spec, *derived)
        yield from averages.average_claims(self.moving, self.values)
        if "corrected" in r and has_gradient(spec):
            yield averages.correction_claim(spec, self.moving, values,
                                            np.random.default_rng(SEED), r["corrected"].value)

    def eval(self, data: Any) -> dict[str, Any]:
        """One step of the map on numbers: the states, the gradient at each state the map
        reads it at (``dw``), the constants and the step counter in; the next state out."""
        return map_eval.evaluate(self.SPEC, data, self.WHERE)

    # -- rendering ----------------------------------------------------------------------------
    def question_data(self) -> dict[str, Any]:
        """The updates (the given map), the state before and after a step, the constants."""
        spec = self.SPEC
        return {
            "updates": spec.updates(),
            "olds": [old(x) for x in spec.states],
            "news": [new(x) for x in spec.states],
            "constants": [constant(c) for c in spec.constants if c != spec.step],
            "step": constant(spec.step) if spec.step else None,
            "averages": [sp.Symbol(a.name) for a in self.moving],
            "objective": sp.Symbol(spec.objective) if spec.objective else None,
            "D": D,
        }

    @cached_property
    def diagonals(self) -> dict[sp.Basic, sp.Basic]:
        """Each diag(u) of the Jacobian as the key names it, diag(d_1), diag(d_2), ...: a
        long u then prints once, on lines of its own."""
        names = {d: sp.Symbol(f"d_{k}")
                 for k, d in enumerate(mapping.diagonals(self.factors), 1)}
        # det diag(u) is the product of u's entries: named alike.
        return {**{d: mapping.DiagOf(n) for d, n in names.items()},
                **{mapping.EntryProduct(d.args[0]): mapping.EntryProduct(n)
                   for d, n in names.items()}}

    @classmethod
    def result_docs(cls) -> dict[str, str]:
        """Besides the Jacobian's keys, ``inverse_<x>`` for each state the inverse recovers
        (the same whatever the parameters: solving the updates is symbolic)."""
        if "SOLVED" not in cls.__dict__:  # once per class, from its own table alone
            cls.SOLVED = tuple(x for x, *_ in mapping.solve_inverse(cls.SPEC).solved)
        docs = {f"inverse_{x}": f"{x}_k from the next step's state." for x in cls.SOLVED}
        docs |= {f"average_{x}": f"E[{x}] over E[its input] after n steps from {x} = 0."
                 for x in cls.AVERAGED}
        if cls.AVERAGED:
            docs["corrected"] = MAP_RESULT_DOCS["corrected"]
        return docs | super().result_docs()

    @classmethod
    def symbols(cls) -> frozenset[str]:
        """The names the key prints: besides the map's own, the names of the Jacobian's
        diagonals, which take deriving the factors (not the checks)."""
        if "DIAGONALS" not in cls.__dict__:  # once per class, from its own table alone
            cls.DIAGONALS = len(mapping.diagonals(mapping.factors(cls.SPEC)))
        return super().symbols() | {f"d_{k}" for k in range(1, cls.DIAGONALS + 1)}

    def context(self) -> dict[str, Any]:
        r, stuck = self.results, self.inverse.stuck

        def named(e):
            return e.xreplace(self.diagonals)

        return {
            **super().context(),
            "inverses": [r[f"inverse_{x}"] for x, *_ in self.inverse.solved],
            # The states whose recovery holds only where their entries are positive.
            "positive": [old(x) for x, *_, positive in self.inverse.solved if positive],
            "stuck": None if stuck is None else {"old": old(stuck[0]), "new": new(stuck[0]),
                                                 "why": stuck[1]},
            # Block by block, so that a factor too wide for a line prints one block a line.
            "factors": [(named(f.blocks), named(d)) for f, d in
                        zip(self.factors, r["factor_dets"].expr, strict=True)],
            "diagonals": [(n.args[0], d.args[0]) for d, n in self.diagonals.items()
                          if isinstance(d, mapping.DiagOf)],
            "hessians": [(h, u) for u, h in self.hessians.items()],
            "product": named(r["jacobian"].expr.blocks),
            # The input at no particular step (w, not w^(k)): its mean is the same at all.
            "averages": [(sp.Symbol(f"{a.name}^(n)"), a.rate,
                          a.input.xreplace({old(x): sp.Symbol(x) for x in self.SPEC.states}),
                          a.factor) for a in self.moving],
            "readers": [new(e.target) for e in self.SPEC.equations
                        if e.rhs.has(*(new(a.name) for a in self.moving))],
            "first": [(a.rate, a.factor.xreplace({averages.N_STEPS: 1, **self.at()}))
                      for a in self.moving],
            "det": named(r["det_jacobian"].expr),
            **self.stated(),
        }

    def at(self) -> dict[sp.Symbol, sp.Rational]:
        """The constants' values in the checks, by symbol."""
        return {constant(c): v for c, v in self.values.items()}

    def stated(self) -> dict[str, Any]:
        """The constants' values and the sizes of the numeric checks."""
        return {"values": [(constant(c), v) for c, v in self.values.items()],
                "dims": list(mc.MAP_DIMS), "objective": bool(self.hessians)}


def map_problem(name: str, table: dict[str, Any], where: str) -> type[Problem]:
    """The problem class of the map ``table`` defines (``kind = "map"``), keyed ``name``;
    ``where`` names the table in messages.  Equal tables give classes that behave alike."""
    spec = map_spec(name, table, where)
    scalars = tuple(c for c in spec.constants if c != spec.step)
    defaults = default_values(scalars)
    params = tuple(
        Param(c, Exact(-VALUE_BOUND, VALUE_BOUND), defaults[c],
              f"value of {c} in the numeric checks (-{VALUE_BOUND} <= {c} <= {VALUE_BOUND})")
        for c in scalars)
    if spec.step:  # steps completed before this one: 2, so that t' = 3 and powers show
        params += (Param(spec.step, Int(0, STEP_BOUND), 2,
                         f"steps completed before the step the checks take "
                         f"(0 <= {spec.step} <= {STEP_BOUND})"),)
    hess = [h.name for h in mapping.hessians(spec).values()]
    symbols = ("D", *hess, *spec.constants, *([spec.objective] if spec.objective else []),
               *(f"{x}^(k)" for x in spec.states), *(f"{x}^(k+1)" for x in spec.states))
    docs = {k: v for k, v in MAP_RESULT_DOCS.items() if "{x}" not in k and k != "corrected"}
    attrs = {
        "__module__": __name__, "__doc__": f"{spec.title}: {MapProblem.__doc__}",
        "key": name, "title": spec.title, "SPEC": spec, "TABLE": copy.deepcopy(dict(table)),
        "WHERE": where,
        "PARAMS": params, "SYMBOLS": symbols, "RESULTS": docs,
    }
    # The moving averages, found once per class: their docs and a part on their bias.
    attrs["AVERAGED"] = tuple(a.name for a in averages.averages(spec))
    if attrs["AVERAGED"]:
        attrs["LABELS"] = (*MapProblem.LABELS, "bias")
    return type(f"Map_{name}", (MapProblem,), attrs)
