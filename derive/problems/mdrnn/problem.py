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
   ``weight_terms``: each matrix's shape, the cost of one product and the cells using it;
2. ``num_ops``: each term's mat-vec cost times the number of cells where its source exists
   (a SymPy double sum over the grid), plus every cell's vector additions and φ;
   ``interior_cell_ops`` and ``boundary_saving`` split it; ``num_ops_order`` keeps the
   leading monomials (``big_o``);
3. ``num_steps``: the critical path of instantiated grids, fitted in G (``find_polynomial``);
   ``schedule``: the step of every cell, fitted in (i, j), and tabulated for the figure;
   ``neighbour_steps``: that step at the west and north neighbours (the induction's);
   ``zero_based_schedule``: the same step with indices read from 0, and
   ``last_zero_square``: the last square's indices read so;
4. ``receptive_field`` (inputs h(G,G) depends on) and ``conv_comparison`` (stacks of 3×3
   convolutions on the same grid), from instantiated graphs, fitted in G;
5. ``sample_solution`` (only where a set declares ``[original.mdrnn] sample``): the sample
   submission's claims (seed 001) against 1–4.

The claims (``derive.problems.mdrnn.claims``) take other routes: a pure-Python evaluator
that counts what it does, impulse responses, a round-by-round parallel simulation.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from typing import Any, ClassVar

import sympy as sp

from derive.engine.graph import (
    Axis,
    BigO,
    big_o,
    find_polynomial,
    parameter_shapes,
)
from derive.engine.grid import BELOW, NORTH, WEST
from derive.engine.reading import readable
from derive.params import Choice, Kind, Param, Quote
from derive.problems.base import Problem, Result
from derive.problems.mdrnn import claims as mdrnn_claims
from derive.problems.mdrnn import sample
from derive.problems.mdrnn.model import (
    CONV3,
    FIT_G,
    GRID,
    KERNEL,
    MAX_GRID,
    NAMES,
    OFFSETS,
    D,
    G,
    H,
    cells_with,
    conv_model,
    cover_layers,
    i,
    j,
    matvec_ops,
    mdrnn_model,
    n_phi,
)
from derive.verify import Claim


class MDRNN(Problem):
    """Weights, arithmetic and parallel steps of a 2-D RNN, and how it compares to a conv net."""

    CLAIM_NAMES: ClassVar[dict[str, str]] = {
        "num_weights": "number of weights", "num_ops": "number of operations",
        "weight_terms": "the weight arrays' terms", "num_ops_order": "order of the "
        "operation count", "num_steps": "number of steps", "interior_cell_ops": "cost of an "
        "interior square", "boundary_saving": "saving on the first row and column",
        "schedule": "step of each cell", "zero_based_schedule": "steps, indices from 0",
        "neighbour_steps": "steps of the neighbours", "last_zero_square": "the last cell",
        "receptive_field": "the last cell's field", "conv_comparison": "comparison with "
        "a conv net", "sample_solution": "the sample solution's claims",
    }

    key = "mdrnn"
    title = "Multidimensional RNN: weights, operations and parallel steps"
    MAIN = "num_weights"
    RESULTS: ClassVar[dict[str, str]] = {
        "num_weights": "The MDRNN's weights in D, H.",
        "weight_terms": (
            "Per weight matrix: its rows, columns, operations per use and uses on the grid."
        ),
        "num_ops": "The exact operation count of a forward pass on a G x G grid.",
        "interior_cell_ops": "The operations of one interior cell.",
        "boundary_saving": "The operations the boundary cells save (they have fewer neighbours).",
        "num_ops_order": "The operation count's order in big-O.",
        "num_steps": "The parallel steps of a forward pass, 2G - 1.",
        "schedule": (
            "The step at which cell (i, j) is computed, and the table of steps on the grid."
        ),
        "neighbour_steps": "The steps of the west and north neighbours of cell (i, j).",
        "zero_based_schedule": "The schedule with indices counted from 0.",
        "last_zero_square": "The last cell's indices counted from 0.",
        "receptive_field": "The cells the last output sees.",
        "conv_comparison": (
            "A 3x3 convolutional net against the MDRNN on the grid: receptive fields, steps, "
            "layers and weights to cover it."
        ),
    }
    SOURCE_RESULTS: ClassVar[dict[str, str]] = {
        "sample_solution": (
            "Whether each claim of the declared sample solution agrees with the derived results."
        ),
    }
    LABELS = ("weights", "steps", "compare")
    #: What a set may declare of its source: the original handout's equation as its text
    #: reads (a reconstruction is flagged for instructors), and a sample solution whose
    #: claims this problem knows (``sample = "csc421_hw3"``: seed 001, ``sample.py``) with
    #: its words on the weights and on the schedule, quoted.  ``sample_solution`` is a
    #: result only where a set declares the sample.
    ORIGINAL: ClassVar[dict[str, Kind]] = {
        "equation": Quote("the original handout's equation of the hidden state, as its text reads"),
        "sample": Choice(sample.SAMPLES),
        "sample_weights": Quote("the sample solution's count of weights, as written"),
        "sample_listing": Quote("the sample solution's listing of the steps, as written"),
    }
    ORIGINAL_DERIVES = ("sample",)
    #: Names the printer spells through the set's notation (``Problem.symbols``).
    SYMBOLS = ("D", "G", "H", "i", "j", "n_phi")

    SHOWN = ("grid",)
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
    def cell_costs(self) -> dict[str, tuple[sp.Expr, sp.Expr]]:
        """Operations of one term's mat-vec, and the cells where the term exists."""
        return {
            name: (matvec_ops(*self.shapes[name]), cells_with(OFFSETS[name]))
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
        return {**self._count_results(), **self._step_results(), **self._compare_results()}

    def _count_results(self) -> dict[str, Result]:
        """1–2: weights, the table of terms, operations and their split."""
        weights = sp.factor(sum(r * c for r, c in self.shapes.values()))
        ops, interior, saving = self.num_ops(), self.interior_cell_ops(), self.boundary_saving()
        order = big_o(ops, [G, D, H])
        terms = {
            name: (*self.shapes[name], sp.factor(o), c) for name, (o, c) in self.cell_costs.items()
        }
        r = readable
        return {
            "num_weights": Result("num_weights", r(weights), sp.Symbol("N_w"), value=weights),
            "weight_terms": Result(
                "weight_terms",
                sp.Tuple(*(sp.Tuple(*map(r, row)) for row in terms.values())),
                value={name: list(row) for name, row in terms.items()},
            ),
            "num_ops": Result("num_ops", r(ops), sp.Symbol("N_ops"), value=ops),
            "interior_cell_ops": Result(
                "interior_cell_ops", r(sp.factor(interior)), value=sp.factor(interior)
            ),
            "boundary_saving": Result("boundary_saving", r(saving), value=saving),
            "num_ops_order": Result("num_ops_order", BigO(r(order)), value=BigO(order)),
        }

    def _step_results(self) -> dict[str, Result]:
        """3: steps, the schedule and its table, the schedule counted from 0."""
        steps, step = self.steps_fit, self.schedule_fit
        zero = sp.expand(step.xreplace({i: i + 1, j: j + 1}))
        # The induction's step, written with the neighbours' steps; the last square's
        # indices when they count from 0.
        west, north = step.xreplace({i: i - 1}), step.xreplace({j: j - 1})
        last = sp.Tuple(G - 1, G - 1)
        return {
            "num_steps": Result("num_steps", readable(steps), sp.Symbol("T"), value=steps),
            "schedule": Result(
                "schedule", readable(step), value={"step": step, "table": self.table()}
            ),
            "neighbour_steps": Result(
                "neighbour_steps",
                sp.Tuple(readable(west), readable(north)),
                value={"west": west, "north": north},
            ),
            "zero_based_schedule": Result("zero_based_schedule", readable(zero), value=zero),
            "last_zero_square": Result(
                "last_zero_square", readable(last), value=list(last)
            ),
        }

    def _compare_results(self) -> dict[str, Result]:
        """4–5: the receptive field, the conv comparison and the sample's verdicts."""
        out = {
            "receptive_field": Result(
                "receptive_field", readable(self.field_fit), value=self.field_fit
            ),
            "conv_comparison": Result(
                "conv_comparison",
                readable(self.cover_fit),
                value=dict(self.comparison),
            ),
        }
        if self.original.get("sample"):
            verdicts = self.sample_verdicts()
            holds = all(v if isinstance(v, bool) else all(v) for v in verdicts.values())
            out["sample_solution"] = Result(
                "sample_solution", sp.true if holds else sp.false, value=verdicts
            )
        return out

    def table(self) -> list[list[int]]:
        """The figure: rows j, columns i, each cell's step from the computed schedule."""
        sched = mdrnn_model(self.grid).schedule
        cells = range(1, self.grid + 1)
        return [[sched[(1, jj, ii)] for ii in cells] for jj in cells]

    @cached_property
    def comparison(self) -> dict[str, Any]:
        """Numbers for the advantage and the disadvantage, on the figure's grid."""
        g = self.grid
        centre = (g + 1) // 2
        one = conv_model(g, 1)
        layers = cover_layers(g)
        shapes = parameter_shapes([CONV3] * layers, [], [D] + [H] * layers)
        return {
            "G": g,
            "mdrnn_steps": mdrnn_model(g).steps(),
            "mdrnn_field": len(mdrnn_model(g).receptive_field(g, g)),
            "conv_field_corner": len(one.receptive_field(g, g)),
            "conv_field_centre": len(one.receptive_field(centre, centre)),
            "conv_steps_one_layer": one.steps(),
            "cover_layers": layers,
            "cover_steps": conv_model(g, layers).steps(),
            "cover_weights": sp.factor(sum(r * c for r, c in shapes.values())),
        }

    def sample_verdicts(self) -> dict[str, Any]:
        """Which of the sample's claims agree with the derived results (the listing's lines
        against the computed schedule)."""
        weights = sp.factor(sum(r * c for r, c in self.shapes.values()))
        order = big_o(self.num_ops(), [G, D, H])
        return {
            **sample.symbolic_verdicts(weights, self.interior_cell_ops(), order, self.steps_fit),
            **sample.listings(lambda g, ii, jj: mdrnn_model(g).schedule.get((1, jj, ii))),
        }

    # -- claims -------------------------------------------------------------------------------
    def claims(self) -> Iterator[Claim]:
        yield from mdrnn_claims.count_claims(self)
        yield from mdrnn_claims.step_claims(self)
        yield from mdrnn_claims.field_claims(self)
        if "sample_solution" in self.results:
            yield mdrnn_claims.sample_claim(self)

    # -- the key ------------------------------------------------------------------------------
    def stated(self) -> dict[str, Any]:
        """The largest grid the tables are checked on, the convolution's kernel, the grids a
        sample's listing is read on."""
        grids = sample.LISTING_G
        return {"max_grid": MAX_GRID, "kernel": KERNEL, "listing_g": (grids[0], grids[-1])}

    def question_data(self) -> dict[str, Any]:
        """The grid whose steps part (b) asks for (the question is otherwise symbolic)."""
        return {"grid": self.grid}

    def context(self) -> dict[str, Any]:
        r = self.results
        rows = dict(zip(self.shapes, r["weight_terms"].expr, strict=True))
        return {
            **super().context(),
            "shapes": {name: row[:2] for name, row in rows.items()},
            "cell_costs": {name: row[2:] for name, row in rows.items()},
            "terms": [
                ("W_in", r"W_{\mathrm{in}}", "all"),
                ("W_W", "W_W", "all but the first column"),
                ("W_N", "W_N", "all but the first row"),
            ],
            **self.stated(),
            "comparison": {k: readable(v) for k, v in self.comparison.items()},
            "table": r["schedule"].value["table"],
            "grid": self.grid,
            **self._sample_context(),
            "west_step": r["neighbour_steps"].expr[0],
            "north_step": r["neighbour_steps"].expr[1],
            "last_zero": r["last_zero_square"].expr,
        }

    def _sample_context(self) -> dict[str, Any]:
        """The declared sample's verdicts and formulas (empty when no sample is declared)."""
        if "sample_solution" not in self.results:
            return {"verdicts": None}
        verdicts = self.results["sample_solution"].value
        return {
            "verdicts": verdicts,
            "sample": sample.shown(),
            "zero_lines": [k for k, ok in enumerate(verdicts["listing_zero_based"], 1) if ok],
            "one_lines": [k for k, ok in enumerate(verdicts["listing_one_based"], 1) if ok],
        }
