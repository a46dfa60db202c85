"""LMU exercise 5-3 (``lstm_cell``): dC_t/dC_{t-1}, the f = 1, i = 0 limit, the signs.

* the derived Jacobian against ``autograd.jacobian`` of an LSTM step written here;
* the interval arithmetic on small cases (the VJP-to-Jacobian rules: test_jacobian.py);
* a Jacobian without the h_{t-1} path is caught by the problem's own checks;
* the template renders in the LMU notation and without it, and the PDF compiles.
"""

from __future__ import annotations

from pathlib import Path

import autograd.numpy as anp
import numpy as np
import pytest
import sympy as sp
from autograd import jacobian
from conftest import key_pdf_text, key_tex

from derive.engine.cell import Cell
from derive.engine.functions import sigma
from derive.engine.intervals import Range, _power, ranges
from derive.engine.jacobian import Diag
from derive.engine.matrix_terms import jacobian_parts
from derive.engine.vector import n_h
from derive.errors import InputError
from derive.instances.lstm_step import StepData, evaluate, step_env
from derive.problems.lstm_cell import LSTMCell
from derive.render.latex import Notation
from derive.render.numbers import sig3
from derive.verify import Check

LMU = Notation(symbols={"c": "C", "g": "\\tilde{C}"}, time="subscript")


@pytest.fixture(scope="module")
def problem() -> LSTMCell:
    p = LSTMCell()
    _ = p.results, p.checks  # derive and verify once for the module
    return p


def autograd_c(c_prev, weights, biases, o_prev, x):
    """C_t of one LSTM step in autograd.numpy, gates on [h_{t-1}, x_t], h_{t-1} from C_{t-1}."""

    def sig(z):
        return 1.0 / (1.0 + anp.exp(-z))

    hx = anp.concatenate([o_prev * anp.tanh(c_prev), x])
    f = sig(anp.dot(weights["f"], hx) + biases["f"])
    i = sig(anp.dot(weights["i"], hx) + biases["i"])
    c_tilde = anp.tanh(anp.dot(weights["c"], hx) + biases["c"])
    return f * c_prev + i * c_tilde


def _random(rng, nh: int, nx: int, scale: float = 1.5):
    weights = {k: rng.uniform(-scale, scale, (nh, nh + nx)) for k in "fioc"}
    biases = {k: rng.normal(size=nh) for k in "fioc"}
    return weights, biases, rng.normal(size=nh), rng.uniform(0, 1, nh), rng.normal(size=nx)


def _env(weights, biases, c_prev, o_prev, x) -> dict:
    data = StepData(weights, {k: b[:, None] for k, b in biases.items()})
    return step_env(data, c_prev[:, None], o_prev[:, None], x[:, None])


def evidence(claims) -> list[Check]:
    """The claims measured now, as their evidence rows."""
    return [Check(c.key, c.route, c.sizes, c.measure(), c.tolerance) for c in claims]


# -- (d) the Jacobian ---------------------------------------------------------------------------
@pytest.mark.parametrize(("nh", "nx"), [(1, 1), (3, 2), (6, 4), (2, 7)])
def test_jacobian_matches_autograd(problem, rng, nh, nx):
    weights, biases, c_prev, o_prev, x = _random(rng, nh, nx)
    want = jacobian(autograd_c)(c_prev, weights, biases, o_prev, x)
    got = evaluate(problem.results["dC_dCprev"].expr, _env(weights, biases, c_prev, o_prev, x))
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)


def test_jacobian_has_the_direct_and_the_hidden_state_paths(problem):
    parts = jacobian_parts(problem.jacobian)
    f = problem.sym("f")
    assert parts["direct"] == Diag(f)
    weights = [
        sorted(m.name for m in p.atoms(sp.MatrixSymbol) if m.name.startswith("W_"))
        for p in parts["paths"]
    ]
    assert weights == [["W_fh"], ["W_ih"], ["W_ch"]]  # no output gate, no input blocks
    o_prev, c_prev = problem.sym("o", -1), problem.sym("c", -1)
    assert {o_prev, c_prev} <= parts["through_h"].atoms(sp.MatrixSymbol)


def test_row_sums_equal_the_jacobian_for_one_unit(problem, rng):
    # For n_h = 1 the handout's elementwise reading (corrected) is the Jacobian itself.
    weights, biases, c_prev, o_prev, x = _random(rng, 1, 2)
    env = _env(weights, biases, c_prev, o_prev, x)
    j = evaluate(problem.results["dC_dCprev"].expr, env)
    np.testing.assert_allclose(evaluate(problem.handout["row_sums"], env), j, rtol=1e-14)


def test_handout_formula_as_printed_is_flagged(problem):
    assert problem.row_sum_errors["row_sums"] < 1e-12
    assert problem.row_sum_errors["printed_least"] > 0.1
    assert {c.method for c in problem.checks if c.claim == "J_ones"} == {
        "J 1 (derived) against the row sums of the complex-step Jacobian",
        "exact: the handout's formula off by more than 0.1 in every case",
    }


def test_a_jacobian_without_the_hidden_state_path_is_caught(problem):
    parts = jacobian_parts(problem.jacobian)
    wrong = parts["direct"]  # diag(f_t) alone: drops everything through h_{t-1}
    checks = evidence(problem.jacobian_claims(wrong))
    assert checks and all(not c.passed for c in checks)
    assert min(c.max_rel_error for c in checks) > 1e-2
    # The same checks pass the derived Jacobian.
    derived = problem.results["dC_dCprev"].expr
    assert all(c.passed for c in evidence(problem.jacobian_claims(derived)))


# -- (c) the limit ------------------------------------------------------------------------------
def test_limit_is_the_identity(problem):
    r = problem.results["dC_dCk_f1_i0"]
    assert r.expr == sp.Identity(n_h)
    assert r.value is True
    run = problem.saturated_run
    assert 0 < problem.results["gate_gap"].value < 1e-9  # saturated, not rounded to 1 and 0
    assert run["complex_step"] < 1e-9 and run["derived_product"] < 1e-9


# -- (b) the signs ------------------------------------------------------------------------------
def test_only_the_gates_are_always_positive(problem):
    assert problem.results["positive"].value == ["f", "i", "o"]
    got = {u.name: r.as_interval() for u, r in problem.ranges.items()}
    assert got["f"] == got["i"] == got["o"] == sp.Interval.open(0, 1)
    assert got["g"] == got["h"] == sp.Interval.open(-1, 1)
    assert got["c"] == sp.S.Reals
    for kind in ("float64", "mpmath"):
        seen = {n: positive for n, (positive, _) in problem.samples[kind].items()}
        assert seen == {"f": True, "i": True, "o": True, "g": False, "c": False, "h": False}


def test_sign_table_is_a_result_the_key_prints(problem):
    # The table's ranges, decisions and minima are the result's; the minima print as numbers
    # (an mpmath gate far below float64's smallest number keeps its exponent).
    table = problem.results["sign_table"]
    assert [row["positive"] for row in table.value.values()] == [True] * 3 + [False] * 3
    gate = table.expr[0][3]
    assert 0 < gate < sp.Float("1e-400")
    out = _render_problem(problem, LMU)
    assert sig3(gate) in out and "\\times 10^{-" in sig3(gate)


def test_interval_arithmetic_on_a_small_cell():
    x, s, s_prev, w = sp.symbols("x s s_prev w")
    a, b, d, e = sp.symbols("a b d e")
    cell = Cell(
        name="toy",
        inputs=(x,),
        states=(s,),
        prev={s: s_prev},
        params={w: "weight"},
        assignments=(
            (a, sigma(w * x)),
            (b, a * sp.tanh(x)),
            (d, a * a),
            (e, a - 1),
            (s, a + 1),
        ),
        loss_on=(s,),
    )
    r = ranges(cell)
    assert r[a].as_interval() == sp.Interval.open(0, 1) and r[a].positive
    assert r[b].as_interval() == sp.Interval.open(-1, 1) and not r[b].positive
    assert r[d].positive  # (0, 1) times (0, 1): 0 is still not reached
    assert r[e].as_interval() == sp.Interval.open(-1, 0) and not r[e].positive
    assert r[s].as_interval() == sp.Interval.open(1, 2) and r[s].positive


def test_interval_arithmetic_names_a_missing_rule():
    x, s, s_prev = sp.symbols("x s s_prev")
    cell = Cell("toy", (x,), (s,), {s: s_prev}, {}, ((s, sp.sech(x)),), (s,))
    with pytest.raises(InputError, match="no range rule for sech"):
        ranges(cell)


# -- every claim checked ------------------------------------------------------------------------
def test_every_check_passes_and_every_result_has_one(problem):
    failed = [(c.claim, c.method, c.max_rel_error) for c in problem.checks if not c.passed]
    assert not failed
    assert set(problem.results) == {
        "dC_dCprev", "J_ones", "dC_dCk_f1_i0", "positive", "sign_table", "gate_gap",
        "printed_formula_error",
    }
    assert set(problem.results) <= {c.claim for c in problem.checks}
    tolerances = {c.method.split(":")[0]: c.tolerance for c in problem.checks}
    assert tolerances["complex step"] == 1e-12 and tolerances["central difference"] == 1e-6


# -- rendering ----------------------------------------------------------------------------------
def _render_problem(problem, notation: Notation) -> str:
    return key_tex(problem, notation)


def test_template_renders_in_the_lmu_notation(problem):
    out = _render_problem(problem, LMU)
    assert "LSTM" in out and "\\begin{longtable}" in out
    for part in ("(a)", "(b)", "(c)", "(d)"):
        assert f"\\paragraph{{{part}" in out
    assert "C_{t - 1}" in out and "\\tilde{C}_{t}" in out
    assert "\\operatorname{diag}\\left(f_{t}\\right)" in out


def test_template_takes_its_spellings_from_the_notation(problem):
    out = _render_problem(problem, Notation())
    assert "c^{(t - 1)}" in out and "g^{(t)}" in out
    assert "\\tilde{C}" not in out and "C_{t" not in out


def test_pdf_compiles_and_every_check_passes(problem, tmp_path: Path):
    text = key_pdf_text(problem, tmp_path, LMU)
    assert "Problem 1" in text and "LSTM cell" in text
    assert "pass" in text
    assert "FAIL" not in text


def test_interval_powers():
    assert _power(Range(sp.Integer(-1), sp.Integer(1)), 2) == Range(0, 1, False, True)
    assert _power(Range(sp.Integer(-2), sp.Integer(-1)), 2) == Range(1, 4, True, True)
    assert _power(Range(sp.Integer(-2), sp.Integer(1), False, True), 3) == Range(-8, 1, False, True)
