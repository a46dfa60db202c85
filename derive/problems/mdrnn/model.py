"""The MDRNN's sizes, its grid models and the conv net it is compared with.

Symbols: G (grid side), D (input size), H (hidden size), i (column), j (row); n_φ is φ's
cost per element.  Node (1, j, i) of a ``GridModel`` is h(i, j).
"""

from __future__ import annotations

import itertools
from functools import cache
from typing import Any

import sympy as sp

from derive.engine.graph import GridModel, parallel_rounds
from derive.engine.grid import BELOW, NORTH, WEST, mdrnn_grid
from derive.instances.gridsim import n_phi as n_phi  # one of the sizes, re-exported
from derive.params import Int
from derive.verify.routes import nonzero_entries

G, D, H = sp.symbols("G D H", integer=True, positive=True)
i, j = sp.symbols("i j", integer=True, positive=True)

#: The weight matrices by the source they read, and the source's offset.
NAMES = {
    ("input", 1, BELOW): "W_in",
    ("recurrent", 1, WEST): "W_W",
    ("recurrent", 1, NORTH): "W_N",
}
OFFSETS = {"W_in": BELOW, "W_W": WEST, "W_N": NORTH}
#: A k×k convolution with zero padding (k = 3), for the comparison.
KERNEL = 3
CONV3 = tuple(itertools.product(range(-(KERNEL // 2), KERNEL // 2 + 1), repeat=2))
#: Bounds of the figure's grid (it is instantiated and drawn).
MIN_GRID, MAX_GRID = 2, 12
GRID = Int(MIN_GRID, MAX_GRID)
#: Sizes of the fits and checks.
FIT_G = tuple(range(1, 9))
CHECK_G = tuple(range(1, 13))
EVAL_G, EVAL_DH = tuple(range(1, 5)), tuple(range(1, 4))
#: Generic base sizes of the growth directions (t^rate times these).
BASE = {G: sp.Rational(3, 2), D: sp.Rational(5, 4), H: sp.Rational(7, 3)}


def mdrnn_model(g: int, d: int = 1, h: int = 1) -> GridModel:
    """The G×G MDRNN as a dependency graph: node (1, j, i) is h(i, j)."""
    return mdrnn_grid(g, g, 1, (d, h))


@cache
def mdrnn_rounds(g: int) -> dict:
    """Round of every unit of the g×g MDRNN in the parallel simulation (inputs at 0)."""
    m = mdrnn_model(g)
    return parallel_rounds(m.dag, m.inputs)


@cache
def conv_model(g: int, layers: int) -> GridModel:
    return GridModel(g, g, (CONV3,) * layers)


def matvec_ops(rows: Any, cols: Any) -> Any:
    """mn multiplications and m(n − 1) additions."""
    return rows * cols + rows * (cols - 1)


def cells_with(offset: tuple[int, int], g: Any = G) -> sp.Expr:
    """Σ over the grid's cells whose source at ``offset`` is on the grid, of 1."""
    a, b = offset
    return sp.summation(1, (j, 1 + max(0, -a), g - max(0, a)), (i, 1 + max(0, -b), g - max(0, b)))


def cover_layers(g: int) -> int:
    """Fewest 3×3 conv layers whose output at the corner (G, G) sees all G² inputs."""
    layers = 1
    while len(conv_model(g, layers).receptive_field(g, g)) < g * g:
        layers += 1
    return layers


def step_rule_violations(step: sp.Expr) -> int:
    """How many parts of the rule a square's step obeys fail for ``step`` (in i, j): the
    first square at step 1; a square one step after the later of its west and north
    neighbours; on the first row and column, one step after its only neighbour."""
    rule = [
        step.xreplace({i: 1, j: 1}) - 1,
        1 + sp.Max(step.xreplace({i: i - 1}), step.xreplace({j: j - 1})) - step,
        1 + step.xreplace({i: i - 1, j: 1}) - step.xreplace({j: 1}),
        1 + step.xreplace({i: 1, j: j - 1}) - step.xreplace({i: 1}),
    ]
    return nonzero_entries(sp.Matrix(rule))
