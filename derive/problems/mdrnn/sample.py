"""The sample submission (seed 001): its claims as data, and which of them hold.

Its n_a is our n_φ.  Its listing of the schedule names, per step, the cells h(i, j)
computed in that step; the lines are read with indices from 0 and from 1 and checked on
every g×g grid of ``LISTING_G``, against whatever ``step_of(g, i, j)`` gives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sympy as sp

from derive.engine.graph import BigO
from derive.engine.reading import readable
from derive.problems.mdrnn.model import D, G, H, n_phi

#: The sample solutions whose claims are held here, by the name a set declares
#: (``[original.mdrnn] sample``): the CSC421 2019 submission (seed 001).
SAMPLES = ("csc421_hw3",)

SAMPLE_WEIGHTS = (D + 2 * H) * H
SAMPLE_CELL_OPS = H * (n_phi + 2 * D + 4 * H - 1)
SAMPLE_ORDER = G**2 * H * (D + H)
SAMPLE_STEPS = 2 * G - 1
#: Its listing of the schedule: (step, cells h(i, j) computed in that step).
SAMPLE_LISTING = (
    (1, ((0, 0),)),
    (2, ((1, 0), (0, 1))),
    (3, ((0, 2), (1, 1), (2, 0))),
    (2 * G - 2, ((G - 1, G), (G, G - 1))),
    (2 * G - 1, ((G, G),)),
)
LISTING_G = tuple(range(3, 9))

StepOf = Callable[[int, int, int], "int | None"]


def listings(step_of: StepOf) -> dict[str, list[bool]]:
    """The listing's verdicts with indices read from 0 and from 1."""
    return {
        "listing_zero_based": listing_verdicts(step_of, 1),
        "listing_one_based": listing_verdicts(step_of, 0),
    }


def listing_verdicts(step_of: StepOf, shift: int) -> list[bool]:
    """For each line of the sample's listing: does it hold on every g×g grid of
    ``LISTING_G`` when its indices are read with ``shift`` added (1: from 0, 0: from 1)?"""
    return [
        all(
            step_of(g, _at(a, g) + shift, _at(b, g) + shift) == _at(step, g)
            for g in LISTING_G
            for a, b in cells
        )
        for step, cells in SAMPLE_LISTING
    ]


def symbolic_verdicts(
    weights: sp.Expr, cell_ops: sp.Expr, order: sp.Expr, steps: sp.Expr
) -> dict[str, bool]:
    """The sample's formulas against the derived ones: equal as expressions?"""
    return {
        "weights": sp.expand(SAMPLE_WEIGHTS - weights) == 0,
        "cell_ops": sp.expand(SAMPLE_CELL_OPS - cell_ops) == 0,
        "order": sp.expand(SAMPLE_ORDER - order) == 0,
        "steps": sp.expand(SAMPLE_STEPS - steps) == 0,
    }


def shown() -> dict[str, Any]:
    """The sample's formulas as the key quotes them."""
    return {
        "weights": readable(SAMPLE_WEIGHTS),
        "cell": readable(SAMPLE_CELL_OPS),
        "order": BigO(readable(SAMPLE_ORDER)),
        "steps": readable(SAMPLE_STEPS),
    }


def _at(v: Any, g: int) -> int:
    """An index or step of the sample's listing on a g×g grid."""
    return int(v.xreplace({G: g})) if isinstance(v, sp.Basic) else v
