"""Multidimensional RNN on a G×G grid (CSC421 homework 3, question 2).

    h(i,j) = φ(W_in x(i,j) + W_W h(i−1,j) + W_N h(i,j−1)),   x ∈ R^D, h ∈ R^H, no biases.

W_W reads the west neighbour h(i−1,j) and W_N the north one h(i,j−1): i counts columns and
j rows, both from 1.  Conventions of the counts (the key states them):

* boundary: a cell in the first column has no west term, one in the first row no north
  term; the term is skipped, not multiplied by a zero initial state;
* arithmetic: an m×n matrix times a vector costs mn multiplications and m(n−1) additions,
  adding two H-vectors costs H additions, φ costs n_φ operations per element.

Derivation, symbolic in G, D, H:

1. ``num_weights``: the weight matrices' shapes (``parameter_shapes``), sizes summed;
2. ``num_ops``: each term's mat-vec cost times the number of cells where its source exists
   (a SymPy double sum over the grid), plus every cell's vector additions and φ;
   ``num_ops_order`` keeps the leading monomials (``big_o``);
3. ``num_steps``: the critical path of instantiated grids, fitted in G (``find_polynomial``);
   ``schedule``: the step of every cell, fitted in (i, j), and tabulated for the figure;
4. ``receptive_field`` (inputs h(G,G) depends on) and ``conv_comparison`` (stacks of 3×3
   convolutions on the same grid), from instantiated graphs, fitted in G;
5. ``sample_solution``: the sample submission's claims (seed 001) against 1–4.

Checks take other routes: a pure-Python evaluator runs the recurrence counting every
multiplication, addition and φ and the weight entries it touches; impulse responses of a
numeric linear MDRNN and of a NumPy convolution; a round-by-round parallel simulation.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import Any

import numpy as np
import sympy as sp

from derive.engine.graph import (
    Axis,
    BigO,
    GridModel,
    big_o,
    find_polynomial,
    mismatches,
    parallel_rounds,
    parameter_shapes,
    same_growth,
)
from derive.params import Int, Param
from derive.problems.base import Problem, Result
from derive.verify import Check

G, D, H = sp.symbols("G D H", integer=True, positive=True)
i, j = sp.symbols("i j", integer=True, positive=True)
n_phi = sp.Symbol("n_phi", positive=True)

#: (row, column) offsets of the sources: the input square below, the west and north cells.
BELOW, WEST, NORTH = (0, 0), (0, -1), (-1, 0)
NAMES = {
    ("input", 1, BELOW): "W_in",
    ("recurrent", 1, WEST): "W_W",
    ("recurrent", 1, NORTH): "W_N",
}
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
SEED = 20261122
#: Generic base sizes of the growth directions (t^rate times these).
BASE = {G: sp.Rational(3, 2), D: sp.Rational(5, 4), H: sp.Rational(7, 3)}

# The sample submission's claims (seed 001), as data to check: n_a is its cost of φ.
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


# -- the model ------------------------------------------------------------------------------------
@cache
def mdrnn_model(g: int, d: int = 1, h: int = 1) -> GridModel:
    """The G×G MDRNN as a dependency graph: node (1, j, i) is h(i, j)."""
    return GridModel(g, g, ((BELOW,),), (WEST, NORTH), (d, h))


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


# -- an independent route: run the recurrence and count ------------------------------------------
@dataclass
class Tally:
    """What one forward pass did."""

    mul: int = 0
    add: int = 0
    phi: int = 0
    touched: set = field(default_factory=set)
    params: int = 0
    per_cell: dict = field(default_factory=dict)

    def ops(self) -> sp.Expr:
        return self.mul + self.add + n_phi * self.phi


def run_mdrnn(
    g: int, d: int, h: int, x: dict | None = None, phi=math.tanh, seed: int = SEED
) -> tuple[dict, Tally]:
    """h(i, j) for every cell, by plain loops, counting each arithmetic operation.

    Weights are drawn from (0.1, 1): positive, so with a linear φ an input influences h(i, j)
    exactly when a path of connections joins them.
    """
    rnd = random.Random(seed)
    weights = {
        "W_in": [[rnd.uniform(0.1, 1) for _ in range(d)] for _ in range(h)],
        "W_W": [[rnd.uniform(0.1, 1) for _ in range(h)] for _ in range(h)],
        "W_N": [[rnd.uniform(0.1, 1) for _ in range(h)] for _ in range(h)],
    }
    if x is None:
        x = {
            c: [rnd.uniform(-1, 1) for _ in range(d)]
            for c in itertools.product(range(1, g + 1), repeat=2)
        }
    tally = Tally(params=sum(len(w) * len(w[0]) for w in weights.values()))

    def matvec(name: str, v: list[float]) -> list[float]:
        out = []
        for r, row in enumerate(weights[name]):
            acc = row[0] * v[0]
            tally.mul += 1
            for c in range(1, len(v)):
                acc += row[c] * v[c]
                tally.mul += 1
                tally.add += 1
            tally.touched.update((name, r, c) for c in range(len(v)))
            out.append(acc)
        return out

    hid: dict = {}
    for jj in range(1, g + 1):  # rows, north to south
        for ii in range(1, g + 1):  # columns, west to east
            before = tally.mul + tally.add
            terms = [matvec("W_in", x[(ii, jj)])]
            if ii > 1:
                terms.append(matvec("W_W", hid[(ii - 1, jj)]))
            if jj > 1:
                terms.append(matvec("W_N", hid[(ii, jj - 1)]))
            z = terms[0]
            for term in terms[1:]:
                z = [a + b for a, b in zip(z, term, strict=True)]
                tally.add += h
            hid[(ii, jj)] = [phi(v) for v in z]
            tally.phi += h
            tally.per_cell[(ii, jj)] = tally.mul + tally.add - before + n_phi * h
    return hid, tally


def impulse_field(g: int) -> set[tuple[int, int]]:
    """Cells (i, j) whose input changes h(G, G), with a linear φ (one run per input)."""
    zero = {c: [0.0] for c in itertools.product(range(1, g + 1), repeat=2)}
    seen = set()
    for c in zero:
        hid, _ = run_mdrnn(g, 1, 1, {**zero, c: [1.0]}, phi=lambda v: v)
        if hid[(g, g)][0] != 0:
            seen.add(c)
    return seen


def conv_impulse(g: int, layers: int, source: tuple[int, int]) -> np.ndarray:
    """Response of a stack of 3×3 all-ones convolutions (zero padding) to a unit impulse."""
    a = np.zeros((g + 2, g + 2))
    a[source[0], source[1]] = 1.0  # 1-based cell in a zero-padded array
    for _ in range(layers):
        out = np.zeros_like(a)
        out[1:-1, 1:-1] = sum(
            a[1 + di : g + 1 + di, 1 + dj : g + 1 + dj] for di in (-1, 0, 1) for dj in (-1, 0, 1)
        )
        a = out
    return a[1:-1, 1:-1]


def conv_params(layers: int, d: int, h: int) -> int:
    """Entries of the weight arrays of a 3×3 conv stack D → H → … → H (built, then sized)."""
    arrays = [np.zeros((h, d, 3, 3))] + [np.zeros((h, h, 3, 3)) for _ in range(layers - 1)]
    return sum(w.size for w in arrays)


# -- the problem ----------------------------------------------------------------------------------
class MDRNN(Problem):
    """Weights, arithmetic and parallel steps of a 2-D RNN, and how it compares to a conv net."""

    key = "mdrnn"
    title = "Multidimensional RNN: weights, operations and parallel steps"
    #: Names the printer spells through the set's notation (``Problem.symbols``).
    SYMBOLS = ("D", "G", "H", "i", "j", "n_phi")
    LABELS = ("weights", "steps", "compare")

    PARAMS = (Param("grid", GRID, 5, "G of the step figure and the conv comparison"),)

    def __init__(self, grid: int = 5) -> None:
        #: G of the figure and of the comparison's numbers (instantiated, hence bounded).
        self.grid = GRID.parse(grid, "grid")

    # -- derivation ---------------------------------------------------------------------------
    @cached_property
    def shapes(self) -> dict[str, tuple]:
        """Weight name -> (rows, columns), symbolic."""
        raw = parameter_shapes([[BELOW]], [WEST, NORTH], [D, H])
        return {NAMES[label]: shape for label, shape in raw.items()}

    @cached_property
    def cell_costs(self) -> dict[str, sp.Expr]:
        """Operations of one term's mat-vec, and the cells where the term exists."""
        offsets = {"W_in": BELOW, "W_W": WEST, "W_N": NORTH}
        return {
            name: (matvec_ops(*self.shapes[name]), cells_with(offsets[name]))
            for name in self.shapes
        }

    def num_ops(self) -> sp.Expr:
        costs = self.cell_costs.values()
        products = sum(ops * cells for ops, cells in costs)
        # A cell with m terms adds them with m − 1 vector additions of length H.
        additions = H * (sum(cells for _, cells in costs) - G**2)
        # Grouped as a reader would: the per-cell part, then the recurrent terms.
        return sp.collect(sp.expand(products + additions + n_phi * H * G**2), H**2, sp.factor)

    def interior_cell_ops(self) -> sp.Expr:
        costs = self.cell_costs.values()
        return sp.expand(sum(ops for ops, _ in costs) + (len(costs) - 1) * H + n_phi * H)

    def boundary_saving(self) -> sp.Expr:
        """What the first row and column save against G² squares at the full cost."""
        return sp.factor(sp.expand(G**2 * self.interior_cell_ops() - self.num_ops()))

    @cached_property
    def steps_fit(self) -> sp.Expr:
        def steps(s: dict[str, int]) -> int:
            return mdrnn_model(s["G"], s["D"], s["H"]).steps()

        return find_polynomial(
            steps, [Axis(G, FIT_G, 3), Axis(D, (1, 2, 3, 4), 2), Axis(H, (1, 2, 3, 4), 3)]
        )

    @cached_property
    def schedule_fit(self) -> sp.Expr:
        """Step of cell h(i, j), fitted on the largest checked grid."""
        sched = mdrnn_model(MAX_GRID).schedule
        cells = tuple(range(1, MAX_GRID + 1))
        return find_polynomial(
            lambda s: sched[(1, s["j"], s["i"])], [Axis(i, cells, 2), Axis(j, cells, 3)]
        )

    @cached_property
    def field_fit(self) -> sp.Expr:
        def field_size(s: dict[str, int]) -> int:
            return len(mdrnn_model(s["G"]).receptive_field(s["G"], s["G"]))

        return find_polynomial(field_size, [Axis(G, FIT_G, 3)])

    @cached_property
    def cover_fit(self) -> sp.Expr:
        """Layers of 3×3 convolutions the corner output needs to see the whole grid (G ≥ 2)."""
        return find_polynomial(lambda s: cover_layers(s["G"]), [Axis(G, tuple(range(2, 9)), 3)])

    def derive(self) -> dict[str, Result]:
        weights = sp.factor(sum(r * c for r, c in self.shapes.values()))
        ops = self.num_ops()
        order = big_o(ops, [G, D, H])
        verdicts = self.sample_verdicts(weights, order)
        holds = all(v if isinstance(v, bool) else all(v) for v in verdicts.values())
        steps = self.steps_fit
        r = readable
        return {
            "num_weights": Result("num_weights", r(weights), sp.Symbol("N_w"), value=str(weights)),
            "num_ops": Result("num_ops", r(ops), sp.Symbol("N_ops"), value=str(ops)),
            "num_ops_order": Result("num_ops_order", BigO(r(order)), value=f"O({order})"),
            "num_steps": Result("num_steps", r(steps), sp.Symbol("T"), value=str(steps)),
            "schedule": Result(
                "schedule",
                r(self.schedule_fit),
                value={"step": str(self.schedule_fit), "table": self.table()},
            ),
            "receptive_field": Result(
                "receptive_field", r(self.field_fit), value=str(self.field_fit)
            ),
            "conv_comparison": Result(
                "conv_comparison",
                r(self.cover_fit),
                value={k: _plain(v) for k, v in self.comparison.items()},
            ),
            "sample_solution": Result(
                "sample_solution", sp.true if holds else sp.false, value=verdicts
            ),
        }

    def table(self) -> list[list[int]]:
        """The figure: rows j, columns i, each cell's step from the computed schedule."""
        sched = mdrnn_model(self.grid).schedule
        return [
            [sched[(1, jj, ii)] for ii in range(1, self.grid + 1)] for jj in range(1, self.grid + 1)
        ]

    @cached_property
    def comparison(self) -> dict[str, Any]:
        """Numbers for the advantage and the disadvantage, on the figure's grid."""
        g = self.grid
        centre = (g + 1) // 2
        one = conv_model(g, 1)
        layers = cover_layers(g)
        shapes = parameter_shapes([CONV3] * layers, [], [D] + [H] * layers)
        conv_weights = sp.factor(sum(r * c for r, c in shapes.values()))
        return {
            "G": g,
            "mdrnn_steps": mdrnn_model(g).steps(),
            "mdrnn_field": len(mdrnn_model(g).receptive_field(g, g)),
            "conv_field_corner": len(one.receptive_field(g, g)),
            "conv_field_centre": len(one.receptive_field(centre, centre)),
            "conv_steps_one_layer": one.steps(),
            "cover_layers": layers,
            "cover_steps": conv_model(g, layers).steps(),
            "cover_weights": conv_weights,
        }

    def sample_verdicts(self, weights: sp.Expr, order: sp.Expr) -> dict[str, Any]:
        """Which of the sample's claims agree with the derived results (the listing's lines
        against the computed schedule)."""

        def step_of(g: int, ii: int, jj: int) -> int | None:
            return mdrnn_model(g).schedule.get((1, jj, ii))

        return {
            "weights": sp.expand(SAMPLE_WEIGHTS - weights) == 0,
            "cell_ops": sp.expand(SAMPLE_CELL_OPS - self.interior_cell_ops()) == 0,
            "order": sp.expand(SAMPLE_ORDER - order) == 0,
            "steps": sp.expand(SAMPLE_STEPS - self.steps_fit) == 0,
            **listings(step_of),
        }

    # -- verification -------------------------------------------------------------------------
    def verify(self) -> list[Check]:
        rows = self._evaluator_checks()
        r = self.results
        exact, bound = r["num_ops"].expr, r["num_ops_order"].expr.args[0]
        bad = [same_growth(exact.subs(n_phi, c), bound, [G, D, H], BASE) for c in (1, 10)]
        rows.append(
            Check(
                "num_ops_order",
                "SymPy: exact / bound has a positive finite limit along each growth direction",
                "rates in {0,1,2}^3 of (G, D, H); n_phi = 1, 10",
                float(sum(len(x) for x in bad)),
                0.0,
            )
        )
        rows += self._step_checks()
        rows += self._field_checks()
        rows.append(self._sample_check())
        return rows

    def _evaluator_checks(self) -> list[Check]:
        """Weights and operations against a forward pass that counts what it does."""
        r = self.results
        interior, saving = self.interior_cell_ops(), self.boundary_saving()
        bad_params = bad_touched = bad_ops = bad_cells = 0
        for g, d, h in itertools.product(EVAL_G, EVAL_DH, EVAL_DH):
            _, tally = run_mdrnn(g, d, h)
            sizes = {G: g, D: d, H: h}
            bad_params += r["num_weights"].expr.xreplace(sizes) != tally.params
            # On a 1×1 grid no recurrent weight is ever used; from G = 2 on, all are.
            if g >= 2:
                bad_touched += r["num_weights"].expr.xreplace(sizes) != len(tally.touched)
            bad_ops += sp.expand(r["num_ops"].expr.xreplace(sizes) - tally.ops()) != 0
            # The key's split: squares with both neighbours at the full cost, the others'
            # shortfall summed.
            full = interior.xreplace(sizes)
            bad_cells += sum(
                sp.expand(full - cost) != 0
                for (ii, jj), cost in tally.per_cell.items()
                if ii > 1 and jj > 1
            )
            short = sum(full - cost for cost in tally.per_cell.values())
            bad_cells += sp.expand(saving.xreplace(sizes) - short) != 0
        sizes = "G = 1..4, D, H = 1..3"
        return [
            Check(
                "num_weights",
                "pure-Python MDRNN: entries of its weight arrays",
                sizes,
                float(bad_params),
                0.0,
            ),
            Check(
                "num_weights",
                "pure-Python MDRNN: weight entries a forward pass touches",
                "G = 2..4, D, H = 1..3",
                float(bad_touched),
                0.0,
            ),
            Check(
                "num_ops",
                "pure-Python MDRNN counting every multiplication, addition and phi",
                sizes,
                float(bad_ops),
                0.0,
            ),
            Check(
                "num_ops",
                "pure-Python MDRNN: cost of each square with both neighbours, and what the "
                "first row and column save",
                sizes,
                float(bad_cells),
                0.0,
            ),
        ]

    def _step_checks(self) -> list[Check]:
        r = self.results
        steps = r["num_steps"].expr
        bad_rounds = sum(steps.xreplace({G: g}) != max(mdrnn_rounds(g).values()) for g in CHECK_G)
        beyond = tuple(range(FIT_G[-1] + 1, 17))
        bad_path = mismatches(
            steps,
            lambda s: mdrnn_model(s["G"], s["D"], s["H"]).steps(),
            ({"G": g, "D": 2, "H": 3} for g in beyond),
        )
        # Every cell's step: the fitted formula and the figure against the simulation.
        bad_cells = bad_table = 0
        sched = r["schedule"].expr
        for g in CHECK_G:
            rounds = mdrnn_rounds(g)
            bad_cells += sum(
                sched.xreplace({i: ii, j: jj}) != rounds[(1, jj, ii)]
                for ii, jj in itertools.product(range(1, g + 1), repeat=2)
            )
            if g == self.grid:
                table = r["schedule"].value["table"]
                bad_table = sum(
                    table[jj - 1][ii - 1] != rounds[(1, jj, ii)]
                    for ii, jj in itertools.product(range(1, g + 1), repeat=2)
                )
        return [
            Check(
                "num_steps",
                "simulation: rounds of a machine computing every ready cell",
                f"G = 1..{CHECK_G[-1]}, D and H do not change the graph",
                float(bad_rounds),
                0.0,
            ),
            Check(
                "num_steps",
                "longest path on grids larger than the fit's",
                f"G = {beyond[0]}..{beyond[-1]}",
                float(bad_path),
                0.0,
            ),
            Check(
                "schedule",
                "symbolic: the step satisfies step(1,1) = 1 and step = 1 + max(west, north), "
                "on the first row and column 1 + its one neighbour's",
                "any i, j >= 1",
                float(step_rule_violations(sched)),
                0.0,
            ),
            Check(
                "schedule",
                "simulation: round of each cell against the fitted step",
                f"every cell, G = 1..{CHECK_G[-1]}",
                float(bad_cells),
                0.0,
            ),
            Check(
                "schedule",
                "simulation: round of each cell against the figure",
                f"G = {self.grid}",
                float(bad_table),
                0.0,
            ),
        ]

    def _field_checks(self) -> list[Check]:
        r = self.results
        bad_field = sum(
            len(impulse_field(g)) != r["receptive_field"].expr.xreplace({G: g}) for g in range(1, 6)
        )
        cover = r["conv_comparison"].expr
        bad_cover = 0
        cover_sizes = sorted({*range(2, 8), self.grid})
        for g in cover_sizes:
            layers = int(cover.xreplace({G: g}))
            sees = np.count_nonzero(conv_impulse_field(g, layers))
            fewer = np.count_nonzero(conv_impulse_field(g, layers - 1)) if layers > 1 else 0
            bad_cover += sees != g * g or fewer == g * g
        v = r["conv_comparison"].value
        g, centre = self.grid, (self.grid + 1) // 2
        bad_one = (np.count_nonzero(conv_impulse_field(g, 1)) != v["conv_field_corner"]) + (
            np.count_nonzero(conv_impulse_field(g, 1, (centre, centre))) != v["conv_field_centre"]
        )
        # The steps and the MDRNN's field the comparison quotes, by other routes.
        bad_steps = (
            (v["mdrnn_steps"] != max(mdrnn_rounds(g).values()))
            + (v["mdrnn_field"] != len(impulse_field(g)))
            + sum(
                v[key] != max(parallel_rounds(m.dag, m.inputs).values())
                for key, m in (
                    ("conv_steps_one_layer", conv_model(g, 1)),
                    ("cover_steps", conv_model(g, v["cover_layers"])),
                )
            )
        )
        weights = self.comparison["cover_weights"]
        bad_weights = sum(
            weights.xreplace({D: d, H: h}) != conv_params(v["cover_layers"], d, h)
            for d, h in itertools.product(EVAL_DH, EVAL_DH)
        )
        return [
            Check(
                "receptive_field",
                "linear MDRNN, positive weights: inputs whose impulse reaches h(G,G)",
                "G = 1..5",
                float(bad_field),
                0.0,
            ),
            Check(
                "conv_comparison",
                "NumPy 3x3 convolutions: impulses reaching the corner output",
                f"G = {', '.join(map(str, cover_sizes))}; cover layers and one fewer",
                float(bad_cover),
                0.0,
            ),
            Check(
                "conv_comparison",
                "NumPy 3x3 convolution: one layer's field at corner and centre",
                f"G = {g}",
                float(bad_one),
                0.0,
            ),
            Check(
                "conv_comparison",
                "simulation: rounds of the MDRNN and the conv stacks; the MDRNN's field by "
                "impulses",
                f"G = {g}",
                float(bad_steps),
                0.0,
            ),
            Check(
                "conv_comparison",
                "NumPy weight arrays of the covering conv stack",
                f"G = {g}; D, H = 1..3",
                float(bad_weights),
                0.0,
            ),
        ]

    def _sample_check(self) -> Check:
        """The verdicts again, from the evaluator and the round simulation."""

        def step_of(g: int, ii: int, jj: int) -> int | None:
            return mdrnn_rounds(g).get((1, jj, ii))

        derived = self.results["sample_solution"].value
        _, tally = run_mdrnn(3, 2, 3)
        numeric = {
            "weights": SAMPLE_WEIGHTS.xreplace({D: 2, H: 3}) == tally.params,
            "cell_ops": sp.expand(SAMPLE_CELL_OPS.xreplace({D: 2, H: 3}) - tally.per_cell[(2, 2)])
            == 0,
            # Same growth as the exact count along every direction: the same big-O.
            "order": not same_growth(
                self.results["num_ops"].expr.subs(n_phi, 1), SAMPLE_ORDER, [G, D, H], BASE
            ),
            "steps": SAMPLE_STEPS.xreplace({G: 3})
            == max(step_of(3, a, b) for a, b in itertools.product((1, 2, 3), repeat=2)),
        }
        recomputed = {**numeric, **listings(step_of)}
        differ = sum(recomputed[k] != derived[k] for k in derived)
        return Check(
            "sample_solution",
            "the sample's claims against the evaluator and the simulation",
            "weights and cell cost at D = 2, H = 3; steps and listing G = 3..8",
            float(differ),
            0.0,
        )

    def context(self) -> dict[str, Any]:
        r = self.results
        verdicts = r["sample_solution"].value
        step = r["schedule"].expr
        return {
            **super().context(),
            "shapes": self.shapes,
            "cell_costs": {
                k: (readable(sp.factor(o)), readable(c)) for k, (o, c) in self.cell_costs.items()
            },
            "terms": [
                ("W_in", r"W_{\mathrm{in}}", "all"),
                ("W_W", "W_W", "all but the first column"),
                ("W_N", "W_N", "all but the first row"),
            ],
            "interior": readable(sp.factor(self.interior_cell_ops())),
            "boundary_saving": readable(self.boundary_saving()),
            "max_grid": MAX_GRID,
            "kernel": KERNEL,
            "comparison": {k: readable(v) for k, v in self.comparison.items()},
            "table": r["schedule"].value["table"],
            "grid": self.grid,
            "verdicts": verdicts,
            "sample": {
                "weights": readable(SAMPLE_WEIGHTS),
                "cell": readable(SAMPLE_CELL_OPS),
                "order": BigO(readable(SAMPLE_ORDER)),
                "steps": readable(SAMPLE_STEPS),
            },
            "zero_lines": [k for k, ok in enumerate(verdicts["listing_zero_based"], 1) if ok],
            "one_lines": [k for k, ok in enumerate(verdicts["listing_one_based"], 1) if ok],
            # The schedule read with indices from 0, and the last square in that reading.
            "west_step": readable(step.xreplace({i: i - 1})),
            "north_step": readable(step.xreplace({j: j - 1})),
            "zero_step": readable(sp.expand(step.xreplace({i: i + 1, j: j + 1}))),
            "last_zero": readable(sp.Tuple(G - 1, G - 1)),
            "last_zero_step": readable(step.xreplace({i: G, j: G})),
        }


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
    return sum(sp.simplify(e) != 0 for e in rule)


def listings(step_of) -> dict[str, list[bool]]:
    """The listing's verdicts with indices read from 0 and from 1."""
    return {
        "listing_zero_based": listing_verdicts(step_of, 1),
        "listing_one_based": listing_verdicts(step_of, 0),
    }


def listing_verdicts(
    step_of, shift: int, sizes: tuple[int, ...] = tuple(range(3, 9))
) -> list[bool]:
    """For each line of the sample's listing: does it hold on every g×g grid of ``sizes``
    when its indices are read with ``shift`` added (1: from 0, 0: from 1)?"""
    out = []
    for step, cells in SAMPLE_LISTING:
        ok = True
        for g in sizes:
            s = _at(step, g)
            for a, b in cells:
                ok &= step_of(g, _at(a, g) + shift, _at(b, g) + shift) == s
        out.append(bool(ok))
    return out


def conv_impulse_field(g: int, layers: int, target: tuple[int, int] | None = None) -> np.ndarray:
    """Which inputs reach the output at ``target`` (the corner by default): one impulse each."""
    ti, tj = target or (g, g)
    hit = np.zeros((g, g), dtype=bool)
    for a, b in itertools.product(range(1, g + 1), repeat=2):
        hit[a - 1, b - 1] = conv_impulse(g, layers, (a, b))[ti - 1, tj - 1] > 0
    return hit


def readable(expr: Any) -> Any:
    """``expr`` with every sum's terms by falling degree, negative constants last.

    Only the printed order changes (the sums stay unevaluated); any substitution rebuilds the
    usual expression.
    """
    if not isinstance(expr, sp.Basic) or expr.is_Atom:
        return expr
    args = [readable(a) for a in expr.args]
    if expr.is_Add:
        return sp.Add(*sorted(args, key=_term_order), evaluate=False)
    return expr.func(*args, evaluate=False)


def _term_order(term: sp.Expr) -> tuple:
    coeff, rest = term.as_coeff_Mul()
    symbols = sorted(term.free_symbols, key=str)
    degree = sp.Poly(term, *symbols).total_degree() if symbols else 0
    return (-degree, bool(coeff.is_negative), str(rest))


def _at(v: Any, g: int) -> int:
    """An index or step of the sample's listing on a g×g grid."""
    return int(v.xreplace({G: g})) if isinstance(v, sp.Basic) else v


def _plain(v: Any) -> Any:
    return str(v) if isinstance(v, sp.Basic) else v
