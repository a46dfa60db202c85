"""Geometry shared by the grid models (MDRNN, PixelCNN) and exact counting on instances.

Offsets are (row, column) steps from a unit to a source it reads, as ``GridModel`` takes
them: the input square below it, the west and the north neighbour of a 2-D recurrence.
``count_failures`` is the enumeration route (``derive.verify.routes.failures``) applied to
a closed form against counts of instantiated models, in exact rational arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import cache

import sympy as sp

from derive.engine.graph import GridModel, mismatches, parallel_rounds

#: (row, column) offsets of the sources: the input square below, the west and north cells.
BELOW, WEST, NORTH = (0, 0), (0, -1), (-1, 0)


@cache
def mdrnn_grid(
    height: int, width: int, layers: int = 1, channels: tuple[int, ...] | None = None
) -> GridModel:
    """``layers`` stacked 2-D recurrences: each unit reads the one below, west and north."""
    return GridModel(height, width, ((BELOW,),) * layers, (WEST, NORTH), channels)


def rounds(model: GridModel) -> int:
    """Sequential steps by the round-by-round simulation (not the longest-path schedule)."""
    return max(parallel_rounds(model.dag, model.inputs).values())


def count_failures(
    formula: sp.Expr, count: Callable[[dict[str, int]], int], points: Iterable[dict[str, int]]
) -> int:
    """How many of ``points`` (sizes keyed by symbol name) ``formula`` miscounts.

    Exact: the formula is evaluated in rationals, so a wrong formula that gives a fraction
    at some size is a failure there, not an error.
    """
    return mismatches(sp.expand(formula), count, points)
