"""The MDRNN's claims, each checked by a route that shares no step with its derivation.

* counts: a pure-Python forward pass (``derive.instances.gridsim.run_mdrnn``) counting every
  multiplication, addition and φ, the weight entries it touches and its products with each
  matrix; growth by SymPy limits along every direction;
* steps and schedule: a round-by-round parallel simulation, the longest path beyond the
  fit's sizes, and the step rule checked symbolically;
* fields: impulses through a linear MDRNN and NumPy convolutions, NumPy weight arrays;
* the sample: its verdicts recomputed from the evaluator and the simulation.

Every route is exact (tolerance 0): its error is a count of failures.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from functools import cache
from typing import TYPE_CHECKING

import numpy as np
import sympy as sp

from derive.engine.graph import same_growth
from derive.engine.grid import count_failures, rounds
from derive.instances.gridsim import (
    Tally,
    conv_impulse_field,
    conv_params,
    impulse_field,
    run_mdrnn,
)
from derive.problems.mdrnn import sample
from derive.problems.mdrnn.model import (
    BASE,
    CHECK_G,
    EVAL_DH,
    EVAL_G,
    FIT_G,
    OFFSETS,
    D,
    G,
    H,
    conv_model,
    i,
    j,
    mdrnn_model,
    mdrnn_rounds,
    n_phi,
    step_rule_violations,
)
from derive.verify import Claim
from derive.verify.evidence import describe_sizes
from derive.verify.routes import count_mismatch, failures, nonzero_entries

if TYPE_CHECKING:
    from derive.problems.mdrnn.problem import MDRNN

EVAL_SIZES = describe_sizes(G=EVAL_G, DH=EVAL_DH)
#: Grid sides of the receptive-field impulses.
FIELD_G = tuple(range(1, 6))
#: The sizes of the sample's numeric checks (D, H; one G×G grid).
SAMPLE_AT = {"G": 3, "D": 2, "H": 3}


@cache
def evaluator_runs() -> tuple[tuple[dict, Tally], ...]:
    """One counting forward pass per size (G, D, H) of ``EVAL_SIZES``."""
    runs = []
    for g, d, h in itertools.product(EVAL_G, EVAL_DH, EVAL_DH):
        runs.append(({G: g, D: d, H: h}, run_mdrnn(g, d, h)[1]))
    return tuple(runs)


def _weight_claims(p: MDRNN) -> Iterator[Claim]:
    weights = p.results["num_weights"].expr
    runs = evaluator_runs()
    yield Claim(
        "num_weights",
        "a simulated MDRNN: entries of its weight arrays",
        EVAL_SIZES,
        0.0,
        lambda: failures(runs, lambda r: count_mismatch(weights, r[0], r[1].params) == 0),
    )
    # On a 1×1 grid no recurrent weight is ever used; from G = 2 on, all are.
    used = [r for r in runs if r[0][G] >= 2]
    yield Claim(
        "num_weights",
        "a simulated MDRNN: weight entries a forward pass touches",
        describe_sizes(G=sorted({r[0][G] for r in used}), DH=EVAL_DH),
        0.0,
        lambda: failures(used, lambda r: count_mismatch(weights, r[0], len(r[1].touched)) == 0),
    )
    yield Claim(
        "weight_terms",
        "a simulated MDRNN: each weight array's shape, the cost of one product with it and "
        "the products made",
        EVAL_SIZES,
        0.0,
        lambda: failures(runs, lambda r: _terms_agree(p, *r)),
    )


def _terms_agree(p: MDRNN, sizes: dict, tally: Tally) -> bool:
    """The table of terms against what one pass did with each weight matrix."""
    ok = True
    for name, (rows, cols, ops, cells) in zip(OFFSETS, p.results["weight_terms"].expr, strict=True):
        shape = tuple(int(v.xreplace(sizes)) for v in (rows, cols))
        ok &= shape == tally.shapes[name]
        ok &= count_mismatch(cells, sizes, tally.products[name]) == 0
        if tally.products[name]:
            ok &= count_mismatch(ops, sizes, tally.product_ops[name]) == 0
    return bool(ok)


def _ops_claims(p: MDRNN) -> Iterator[Claim]:
    r, runs = p.results, evaluator_runs()
    ops, interior = r["num_ops"].expr, r["interior_cell_ops"].expr
    saving = r["boundary_saving"].expr

    def interior_misses(sizes: dict, tally: Tally) -> int:
        full = interior.xreplace(sizes)
        costs = [c for (ii, jj), c in tally.per_cell.items() if ii > 1 and jj > 1]
        return nonzero_entries(sp.Matrix([full - c for c in costs])) if costs else 0

    def saved(sizes: dict, tally: Tally) -> sp.Expr:
        full = interior.xreplace(sizes)
        return sum(full - cost for cost in tally.per_cell.values())

    yield Claim(
        "num_ops",
        "a simulated MDRNN counting every multiplication, addition and activation",
        EVAL_SIZES,
        0.0,
        lambda: nonzero_entries(sp.Matrix([ops.xreplace(s) - t.ops() for s, t in runs])),
    )
    yield Claim(
        "interior_cell_ops",
        "a simulated MDRNN: cost of each square with both neighbours",
        EVAL_SIZES,
        0.0,
        lambda: sum(interior_misses(s, t) for s, t in runs),
    )
    yield Claim(
        "boundary_saving",
        "a simulated MDRNN: what the first row and column save against squares at the full cost",
        EVAL_SIZES,
        0.0,
        lambda: nonzero_entries(sp.Matrix([saving.xreplace(s) - saved(s, t) for s, t in runs])),
    )


def count_claims(p: MDRNN) -> Iterator[Claim]:
    """Weights and operations against a forward pass that counts what it does; the order."""
    yield from _weight_claims(p)
    yield from _ops_claims(p)
    exact, bound = p.results["num_ops"].expr, p.results["num_ops_order"].expr.args[0]
    yield Claim(
        "num_ops_order",
        "symbolic: exact / bound has a positive finite limit along each growth direction",
        "G, D and H each growing at rate 0, 1 or 2; 1 or 10 operations per phi",
        0.0,
        lambda: sum(
            len(same_growth(exact.subs(n_phi, c), bound, [G, D, H], BASE)) for c in (1, 10)
        ),
    )


def step_claims(p: MDRNN) -> Iterator[Claim]:
    """Steps and the schedule against the round-by-round simulation."""
    steps = p.results["num_steps"].expr
    yield Claim(
        "num_steps",
        "simulation: rounds of a machine computing every ready cell",
        describe_sizes(G=CHECK_G) + ", D and H do not change the graph",
        0.0,
        lambda: failures(
            CHECK_G, lambda g: count_mismatch(steps, {G: g}, rounds(mdrnn_model(g))) == 0
        ),
    )
    beyond = tuple(range(FIT_G[-1] + 1, 17))
    yield Claim(
        "num_steps",
        "longest path on grids larger than the fit's",
        describe_sizes(G=beyond),
        0.0,
        lambda: count_failures(
            steps,
            lambda s: mdrnn_model(s["G"], s["D"], s["H"]).steps(),
            ({"G": g, "D": 2, "H": 3} for g in beyond),
        ),
    )
    yield Claim(
        "schedule",
        "symbolic: the step satisfies step(1,1) = 1 and step = 1 + max(west, north), "
        "on the first row and column 1 + its one neighbour's",
        "any i, j >= 1",
        0.0,
        lambda: step_rule_violations(p.results["schedule"].expr),
    )
    yield from _schedule_claims(p)


def _cells(g: int, start: int = 1) -> Iterator[tuple[int, int]]:
    return itertools.product(range(start, g + start), repeat=2)


def _schedule_claims(p: MDRNN) -> Iterator[Claim]:
    r = p.results
    sched, zero, table = r["schedule"].expr, r["zero_based_schedule"].expr, r["schedule"].value

    def at(step: sp.Expr, g: int, start: int) -> Iterator[bool]:
        rnd = mdrnn_rounds(g)  # node (1, j, i) is h(i, j), from 1
        return (
            count_mismatch(step, {i: a, j: b}, rnd[(1, b + 1 - start, a + 1 - start)]) == 0
            for a, b in _cells(g, start)
        )

    yield Claim(
        "schedule",
        "simulation: round of each cell against the derived step",
        "every cell, " + describe_sizes(G=CHECK_G),
        0.0,
        lambda: failures((ok for g in CHECK_G for ok in at(sched, g, 1)), bool),
    )
    yield Claim(
        "schedule",
        "simulation: round of each cell against the figure",
        f"G = {p.grid}",
        0.0,
        lambda: failures(
            _cells(p.grid),
            lambda c: table["table"][c[1] - 1][c[0] - 1] == mdrnn_rounds(p.grid)[(1, c[1], c[0])],
        ),
    )
    yield Claim(
        "zero_based_schedule",
        "simulation: round of each cell, indices read from 0",
        "every cell, " + describe_sizes(G=CHECK_G),
        0.0,
        lambda: failures((ok for g in CHECK_G for ok in at(zero, g, 0)), bool),
    )
    yield from _neighbour_claims(p)


def _neighbour_claims(p: MDRNN) -> Iterator[Claim]:
    """The neighbours' steps and the last square (from 0) against the simulation."""
    west, north = p.results["neighbour_steps"].expr
    last = p.results["last_zero_square"].expr

    def neighbours_hold(g: int) -> Iterator[bool]:
        rnd = mdrnn_rounds(g)  # node (1, j, i) is h(i, j), from 1
        for a, b in _cells(g):
            if a > 1:
                yield count_mismatch(west, {i: a, j: b}, rnd[(1, b, a - 1)]) == 0
            if b > 1:
                yield count_mismatch(north, {i: a, j: b}, rnd[(1, b - 1, a)]) == 0

    def last_holds(g: int) -> bool:
        rnd = {n: r for n, r in mdrnn_rounds(g).items() if n[0] == 1}
        final = [(ii - 1, jj - 1) for (_, jj, ii), r in rnd.items() if r == max(rnd.values())]
        return final == [tuple(int(v.xreplace({G: g})) for v in last)]

    yield Claim(
        "neighbour_steps",
        "simulation: round of each cell's west and north neighbour",
        "every cell, " + describe_sizes(G=CHECK_G),
        0.0,
        lambda: failures((ok for g in CHECK_G for ok in neighbours_hold(g)), bool),
    )
    yield Claim(
        "last_zero_square",
        "simulation: the one cell of the last round, indices read from 0",
        describe_sizes(G=CHECK_G),
        0.0,
        lambda: failures(CHECK_G, last_holds),
    )


def field_claims(p: MDRNN) -> Iterator[Claim]:
    """The MDRNN's field by impulses; the conv comparison by NumPy and the simulation."""
    field = p.results["receptive_field"].expr
    yield Claim(
        "receptive_field",
        "linear MDRNN, positive weights: inputs whose impulse reaches h(G,G)",
        describe_sizes(G=FIELD_G),
        0.0,
        lambda: failures(
            FIELD_G, lambda g: count_mismatch(field, {G: g}, len(impulse_field(g))) == 0
        ),
    )
    cover = p.results["conv_comparison"].expr
    sizes = sorted({*range(2, 8), p.grid})

    def covers(g: int) -> bool:
        layers = int(cover.xreplace({G: g}))
        fewer = np.count_nonzero(conv_impulse_field(g, layers - 1)) if layers > 1 else 0
        return np.count_nonzero(conv_impulse_field(g, layers)) == g * g and fewer < g * g

    yield Claim(
        "conv_comparison",
        "direct 3x3 convolutions: impulses reaching the corner output",
        f"G = {', '.join(map(str, sizes))}; cover layers and one fewer",
        0.0,
        lambda: failures(sizes, covers),
    )
    yield from _comparison_claims(p)


def _comparison_claims(p: MDRNN) -> Iterator[Claim]:
    g, centre, v = p.grid, (p.grid + 1) // 2, p.results["conv_comparison"].value
    one = (
        (v["conv_field_corner"], conv_impulse_field(g, 1)),
        (v["conv_field_centre"], conv_impulse_field(g, 1, (centre, centre))),
    )
    # The steps and the MDRNN's field the comparison quotes, by other routes.
    quoted = (
        (v["mdrnn_steps"], lambda: rounds(mdrnn_model(g))),
        (v["mdrnn_field"], lambda: len(impulse_field(g))),
        (v["conv_steps_one_layer"], lambda: rounds(conv_model(g, 1))),
        (v["cover_steps"], lambda: rounds(conv_model(g, v["cover_layers"]))),
    )
    weights = p.comparison["cover_weights"]
    yield Claim(
        "conv_comparison",
        "a direct 3x3 convolution: one layer's field at corner and centre",
        f"G = {g}",
        0.0,
        lambda: failures(one, lambda c: c[0] == np.count_nonzero(c[1])),
    )
    yield Claim(
        "conv_comparison",
        "simulation: rounds of the MDRNN and the conv stacks; the MDRNN's field by impulses",
        f"G = {g}",
        0.0,
        lambda: failures(quoted, lambda q: q[0] == q[1]()),
    )
    yield Claim(
        "conv_comparison",
        "weight arrays of the covering conv stack",
        f"G = {g}; " + describe_sizes(DH=EVAL_DH),
        0.0,
        lambda: failures(
            itertools.product(EVAL_DH, EVAL_DH),
            lambda s: (
                count_mismatch(weights, {D: s[0], H: s[1]}, conv_params(v["cover_layers"], *s)) == 0
            ),
        ),
    )


def sample_claim(p: MDRNN) -> Claim:
    """The sample's verdicts again, from the evaluator and the round simulation."""
    return Claim(
        "sample_solution",
        "the sample's claims against the evaluator and the simulation",
        f"weights and cell cost at D = {SAMPLE_AT['D']}, H = {SAMPLE_AT['H']}; steps at "
        f"G = {SAMPLE_AT['G']}; listing " + describe_sizes(G=sample.LISTING_G),
        0.0,
        lambda: _sample_differences(p),
    )


def _sample_differences(p: MDRNN) -> int:
    def step_of(g: int, ii: int, jj: int) -> int | None:
        return mdrnn_rounds(g).get((1, jj, ii))

    derived = p.results["sample_solution"].value
    g, d, h = SAMPLE_AT["G"], SAMPLE_AT["D"], SAMPLE_AT["H"]
    _, tally = run_mdrnn(g, d, h)
    numeric = {
        "weights": sample.SAMPLE_WEIGHTS.xreplace({D: d, H: h}) == tally.params,
        "cell_ops": nonzero_entries(
            sample.SAMPLE_CELL_OPS.xreplace({D: d, H: h}) - tally.per_cell[(2, 2)]
        )
        == 0,
        # Same growth as the exact count along every direction: the same big-O.
        "order": not same_growth(
            p.results["num_ops"].expr.subs(n_phi, 1), sample.SAMPLE_ORDER, [G, D, H], BASE
        ),
        "steps": sample.SAMPLE_STEPS.xreplace({G: g})
        == max(step_of(g, a, b) for a, b in _cells(g)),
    }
    recomputed = {**numeric, **sample.listings(step_of)}
    return failures(derived, lambda k: recomputed[k] == derived[k])
