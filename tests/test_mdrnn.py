"""mdrnn: weights, operations, steps, the conv-net comparison, the sample, the rendered key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import sympy as sp
from conftest import key_pdf_text, key_tex

from derive.errors import InputError
from derive.instances.gridsim import run_mdrnn
from derive.problems.base import Result
from derive.problems.mdrnn import MDRNN, D, G, H, i, j, n_phi
from derive.render.document import render
from derive.sets import bundled


@pytest.fixture(scope="module")
def problem() -> MDRNN:
    return MDRNN()


def same(a, b) -> bool:
    return sp.expand(sp.sympify(a) - b) == 0


def test_closed_forms(problem):
    r = problem.results
    # By hand: W_in is H x D, W_W and W_N are H x H.
    assert same(r["num_weights"].expr, H * (D + 2 * H))
    # By hand: a square with both neighbours costs H(2D - 1) + 2 H(2H - 1) + 2H + n_phi H;
    # the G - 1 squares of the first row and of the first column lack one H(2H - 1) + H,
    # the corner both: G^2 H (2D + n_phi - 1) + 4 G (G - 1) H^2.
    assert same(r["num_ops"].expr, G**2 * H * (2 * D + n_phi - 1) + 4 * G * (G - 1) * H**2)
    assert same(r["num_ops_order"].expr.args[0], G**2 * H * (D + H))
    assert same(r["num_steps"].expr, 2 * G - 1)
    assert same(r["schedule"].expr, i + j - 1)
    assert same(r["receptive_field"].expr, G**2)
    # A 3x3 stack widens the corner's view by one square per layer: G - 1 layers.
    assert same(r["conv_comparison"].expr, G - 1)


def test_evaluator_counts_by_hand():
    # G = 2, D = H = 1.  Corner: 1 multiplication, phi.  Two edge squares: 2 multiplications,
    # 1 addition, phi.  Last square: 3 multiplications, 2 additions, phi.
    _, tally = run_mdrnn(2, 1, 1)
    assert (tally.mul, tally.add, tally.phi) == (8, 4, 4)
    assert tally.params == 3
    assert same(tally.ops(), 12 + 4 * n_phi)


def test_figure_table_and_comparison(problem):
    table = problem.results["schedule"].value["table"]
    assert len(table) == 5
    assert table[0] == [1, 2, 3, 4, 5]
    assert table[4][4] == 9
    v = problem.results["conv_comparison"].value
    assert (v["mdrnn_steps"], v["mdrnn_field"]) == (9, 25)
    assert (v["conv_field_corner"], v["conv_field_centre"]) == (4, 9)
    assert (v["cover_layers"], v["cover_steps"]) == (4, 4)
    # By hand: 9 D H for the first layer, 9 H^2 for each of the 3 others.
    assert same(sp.sympify(v["cover_weights"], locals={"D": D, "H": H}), 9 * D * H + 27 * H**2)


@pytest.fixture(scope="module")
def declared():
    """The problem as csc421_hw3 makes it: with the sample solution it declares."""
    return bundled()["csc421_hw3"].make_problem("mdrnn")


def _declared_key(problem) -> str:
    pset = dataclasses.replace(bundled()["csc421_hw3"], problems=("mdrnn",))
    return render(pset, [problem])


def test_sample_solution_verdicts(declared, problem):
    assert "sample_solution" not in problem.results  # only where a set declares it
    v = declared.results["sample_solution"].value
    assert v["weights"] and v["cell_ops"] and v["order"] and v["steps"]
    # Its first three lines count from 0, its last two from 1.
    assert v["listing_zero_based"] == [True, True, True, False, False]
    assert v["listing_one_based"] == [False, False, False, True, True]
    assert declared.results["sample_solution"].expr == sp.false


def test_every_check_passes(problem):
    assert all(c.passed for c in problem.checks)
    assert set(problem.results) <= {c.claim for c in problem.checks}


class SampleCount(MDRNN):
    """The sample's count: every square at full cost (zero states at the border)."""

    def num_ops(self):
        return G**2 * H * (n_phi + 2 * D + 4 * H - 1)


class OneStepShort(MDRNN):
    @property
    def steps_fit(self):
        return 2 * G - 2


class NoPhiInterior(MDRNN):
    """A square with both neighbours costed without its phi (the total stays right)."""

    def interior_cell_ops(self):
        return super().interior_cell_ops() - n_phi * H


class ConvInOneStep(MDRNN):
    """Claims the covering conv stack runs in one step."""

    @property
    def comparison(self):
        return {**super().comparison, "cover_steps": 1}


class NorthEverywhere(MDRNN):
    """Claims the north product is made at every square, the first row included."""

    @property
    def cell_costs(self):
        costs = super().cell_costs
        return {**costs, "W_N": (costs["W_N"][0], G**2)}


class ZeroBasedOffByOne(MDRNN):
    """Reads the schedule from 0 as i + j (one step early)."""

    def _step_results(self):
        out = super()._step_results()
        return {**out, "zero_based_schedule": Result("zero_based_schedule", i + j)}


class NeighboursSwapped(MDRNN):
    """Writes the neighbours' steps as the square's own, and the last square from 1."""

    def _step_results(self):
        out = super()._step_results()
        return {
            **out,
            "neighbour_steps": Result("neighbour_steps", sp.Tuple(i + j - 1, i + j - 1)),
            "last_zero_square": Result("last_zero_square", sp.Tuple(G, G)),
        }


def test_wrong_claims_are_caught():
    failed = {c.claim for c in SampleCount().checks if not c.passed}
    assert "num_ops" in failed
    failed = {c.claim for c in OneStepShort().checks if not c.passed}
    assert "num_steps" in failed
    failed = {c.method for c in NoPhiInterior().checks if not c.passed}
    assert any("both neighbours" in m for m in failed)
    failed = {c.method for c in ConvInOneStep().checks if not c.passed}
    assert any("rounds of the MDRNN and the conv stacks" in m for m in failed)
    failed = {c.claim for c in NorthEverywhere().checks if not c.passed}
    assert {"weight_terms", "num_ops"} <= failed
    failed = {c.claim for c in ZeroBasedOffByOne().checks if not c.passed}
    assert failed == {"zero_based_schedule"}
    failed = {c.claim for c in NeighboursSwapped().checks if not c.passed}
    assert failed == {"neighbour_steps", "last_zero_square"}


def test_zero_based_schedule_and_terms(problem):
    r = problem.results
    # By hand: counted from 0, square (i, j) is at step i + j + 1, the last is (G-1, G-1);
    # the west and north neighbours of (i, j) are at step i + j - 2.
    assert same(r["zero_based_schedule"].expr, i + j + 1)
    assert all(same(e, G - 1) for e in r["last_zero_square"].expr)
    assert all(same(e, i + j - 2) for e in r["neighbour_steps"].expr)
    rows = dict(zip(("W_in", "W_W", "W_N"), r["weight_terms"].expr, strict=True))
    # By hand: W_W (H x H) costs H(2H - 1) and is used by the G(G - 1) squares off column 1.
    assert tuple(rows["W_W"][:2]) == (H, H)
    assert same(rows["W_W"][2], H * (2 * H - 1))
    assert same(rows["W_W"][3], G * (G - 1))
    assert same(rows["W_in"][3], G**2)
    # By hand: a missing term saves H(2H - 1) + H = 2H^2; G - 1 squares of the first row
    # and of the first column miss one, the corner two: 2 (G - 1) 2H^2 + 4H^2.
    assert same(r["boundary_saving"].expr, 4 * G * H**2)
    assert same(r["interior_cell_ops"].expr, H * (2 * D + 4 * H + n_phi - 1))


@pytest.mark.parametrize("bad", [0, -3, 1, 13, 10**6, 2.5, True, "5", None, [5]])
def test_bad_grid_is_refused(bad):
    with pytest.raises(InputError, match=r"grid: expected an integer from 2 to 12"):
        MDRNN(grid=bad)


def test_other_grid_sizes():
    p = MDRNN(grid=3)
    assert p.results["schedule"].value["table"][-1] == [3, 4, 5]
    assert p.results["conv_comparison"].value["cover_layers"] == 2


def test_template_renders(problem, declared):
    out = key_tex(problem)
    assert r"\mathcal{O}" in out
    assert "sample" not in out and "instructors" not in out
    assert "FAIL" not in out
    noted = _declared_key(declared)
    assert "mixes two indexings" in noted
    assert "lines 1, 2, 3" in noted and "lines 4, 5" in noted
    assert "Step 1: h(0,0)" in noted  # the declared listing, quoted


def test_pdf_contains_the_answers(problem, tmp_path: Path):
    text = key_pdf_text(problem, tmp_path)
    flat = " ".join(text.split())
    assert "Multidimensional RNN" in flat
    assert "T = 2G − 1" in flat
    assert "H(D + 2H)" in flat
    assert "pass" in flat
    assert "FAIL" not in flat
