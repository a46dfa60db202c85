"""A cell's equations as text (``derive.model.equations``): the grammar's parse maps to the
same ``CellSpec`` as the cells written in Python, a cell the bundle lacks derives and passes
its checks, and every mistake is one line naming the model, the equation and the column."""

from __future__ import annotations

import pytest
import sympy as sp

from derive.errors import InputError
from derive.model.equations import MAX_DEPTH, MAX_EQUATION, MAX_POWER, _parser, cell_spec
from derive.problems.lstm import LSTM
from derive.problems.mgu import MGU
from derive.problems.recurrent import RecurrentProblem

WHERE = "set.toml: models.m"

#: The issue's minimal gated unit, as a set file writes it.
MGU_TABLE = {
    "inputs": ["x"], "states": ["h"], "weights": ["w_fx", "w_fh", "w_nx", "w_nh"],
    "biases": ["b_f", "b_n"], "loss_on": ["h"],
    "equations": [
        "f = sigma(w_fx*x + w_fh*h[t-1] + b_f)",
        "n = tanh(w_nx*x + w_nh*(f*h[t-1]) + b_n)",
        "h = (1 - f)*h[t-1] + f*n",
    ],
}
GATES = ("i", "f", "o", "g")
LSTM_TABLE = {
    "inputs": ["x"], "states": ["h", "c"],
    "weights": [f"w_{g}{s}" for g in GATES for s in ("x", "h")],
    "biases": [f"b_{g}" for g in GATES], "loss_on": ["h"],
    "equations": [
        "i = sigma(w_ix*x + w_ih*h[t-1] + b_i)",
        "f = sigma(w_fx*x + w_fh*h[t-1] + b_f)",
        "o = sigma(w_ox*x + w_oh*h[t-1] + b_o)",
        "g = tanh(w_gx*x + w_gh*h[t-1] + b_g)",
        "c = f*c[t-1] + i*g",
        "h = o*tanh(c)",
    ],
}


def _problem(spec, key: str = "textcell") -> RecurrentProblem:
    """A recurrent problem around ``spec``, as a defined model would get one."""
    cls = type(key, (RecurrentProblem,), {"key": key, "title": key, "MAIN": "h_bar",
                                          "CELL": spec})
    return cls()


@pytest.mark.parametrize("biases", [False, True])
def test_the_mgu_as_text_is_the_bundled_mgu(biases):
    spec = cell_spec("mgu", MGU_TABLE, WHERE)
    got, want = spec.build(biases), MGU.CELL.build(biases)
    assert [(u, sp.srepr(e)) for u, e in got.assignments] == [
        (u, sp.srepr(e)) for u, e in want.assignments]
    assert got.params == want.params and spec.written_order() == MGU.CELL.written_order()


def test_the_lstm_as_text_derives_the_bundled_lstms_adjoints():
    text = _problem(cell_spec("lstm", LSTM_TABLE, WHERE))
    bundled = LSTM()
    adjoints = [k for k in bundled.results if k.endswith("_bar")]  # scalar and vector form
    assert len(adjoints) > 20 and set(adjoints) <= set(text.results)
    for key in adjoints:  # the same equations give the same derivation, term for term
        assert sp.srepr(text.results[key].expr) == sp.srepr(bundled.results[key].expr), key


def test_an_lstm_with_coupled_gates_derives_and_passes_every_check():
    """i = 1 - f: a cell no module writes, from text alone."""
    table = dict(LSTM_TABLE, weights=[w for w in LSTM_TABLE["weights"] if w[2] != "i"],
                 biases=["b_f", "b_o", "b_g"])
    table["equations"] = ["i = 1 - f" if e.startswith("i =") else e for e in table["equations"]]
    table["equations"] = [table["equations"][1], table["equations"][0], *table["equations"][2:]]
    problem = _problem(cell_spec("coupled", table, WHERE))
    failed = [(c.claim, c.method) for c in problem.checks if not c.passed]
    assert problem.checks and failed == []


def test_a_peephole_lstm_reads_the_previous_cell_state():
    table = dict(LSTM_TABLE, weights=[*LSTM_TABLE["weights"], "p_f"])
    table["equations"] = [
        "f = sigma(w_fx*x + w_fh*h[t-1] + p_f*c[t-1] + b_f)" if e.startswith("f =") else e
        for e in LSTM_TABLE["equations"]]
    problem = _problem(cell_spec("peephole", table, WHERE))
    # The peephole weight's gradient sums the forget gate's adjoint times c at t - 1.
    assert "c(t - 1)" in str(problem.results["p_f_bar"].expr)


def test_the_grammar_is_lalr_without_conflicts():
    assert _parser().options.parser == "lalr"  # lark refuses a conflicting grammar when built


def _edit(**changes) -> dict:
    return {**MGU_TABLE, **changes}


def _eqs(*equations: str) -> dict:
    return _edit(equations=list(equations))


#: (table, a fragment the one-line message must hold).
BAD = [
    (_eqs("f = sigma(w_fx*x + w_fh*h + b_f)", "h = f"), "column 25: the state 'h' is read before"),
    (_eqs("f = sigmoid(x)", "h = f"), "unknown function 'sigmoid'; allowed are sigma, tanh"),
    (_eqs("f = (x", "h = f"), "unexpected end of the equation; expected"),
    (_eqs("f = x +", "h = f"), "column 7: unexpected end of the equation"),
    (_eqs("f = x $ 2", "h = f"), "unexpected character '$'"),
    (_eqs("f = x[t-1]", "h = f"), "x[t-1]: only a state has a previous value"),
    (_eqs("f = h[t-2]", "h = f"), "column 9: unexpected '2'; expected 1"),
    (_eqs("f = h[x-1]", "h = f"), "column 7: unexpected 'x'; expected t"),
    (_eqs("f = x)", "h = f"), "unexpected ')'; expected"),
    (_eqs("f = q*x", "h = f"), "'q' is not declared"),
    (_eqs("f = x", "f = x", "h = f"), "equations[1]: 'f' is assigned twice"),
    (_eqs("f = x"), "the state 'h' is never assigned"),
    (_eqs("x = h[t-1]", "h = x"), "'x' is declared as an input, weight or bias"),
    (_eqs("h = n", "n = x"), "'n' is read before the equation that assigns it"),
    (_eqs("f = x ** 1.5", "h = f"), "unexpected"),
    (_eqs("f = x^y", "h = f"), "unexpected"),
    (_eqs("f == x", "h = f"), "unexpected"),
    (_eqs("= x", "h = f"), "unexpected"),
    (_eqs("f = sigma x", "h = f"), "unexpected"),
    (_eqs("f = __import__(x)", "h = f"), "unexpected character '_'"),
    (_eqs("f = x; h = f"), "unexpected character ';'"),
    (_eqs("f = " + "(" * (MAX_DEPTH + 1) + "x" + ")" * (MAX_DEPTH + 1), "h = f"),
     f"nested {MAX_DEPTH + 1} deep"),
    (_eqs("f = " + "x + " * MAX_EQUATION + "x", "h = f"), f"1 to {MAX_EQUATION} characters"),
    (_eqs(), "expected a list of 1 to"),
    (_edit(equations="h = x"), "expected a list of 1 to"),
    (_eqs("h = x", 3), "expected an equation of 1 to"),
    (_edit(loss_on=["z"]), "loss_on: 'z' is not assigned"),
    (_edit(weights=["x"]), "'x' is declared in two roles"),
    (_edit(weights=["w x"]), "weights: 'w x' is not allowed as a name"),
    (_edit(weights=["sigma"]), "weights: 'sigma' is not allowed as a name"),
    (_edit(weights=["t"]), "weights: 't' is not allowed as a name"),
    (_edit(weights=["w", "w"]), "weights: a name may appear only once"),
    (_edit(weights="w"), "weights: expected a list of names"),
    (_edit(states=[]), "states: expected at least one name"),
    (_edit(inputs=[]), "inputs: expected at least one name"),
    (_edit(loss_on=[]), "loss_on: expected at least one name"),
    (_edit(lossOn=["h"]), "lossOn: unknown key; allowed are inputs"),
    (_eqs("f = 2^100000000 * x", "h = f"), f"power 100000000; at most {MAX_POWER}"),
    (_eqs("f = w_fx*x / 0", "h = f"), "column 14: division by zero"),
    (_eqs("f = x / (w_fx - w_fx)", "h = f"), "division by zero"),
    (_eqs("h_prev = w_fx*x", "h = h_prev"), "'h_prev' cannot be assigned"),
    (_eqs("sigma = x", "h = sigma"), "'sigma' cannot be assigned"),
]


@pytest.mark.parametrize("table, fragment", BAD, ids=[str(i) for i in range(len(BAD))])
def test_a_bad_model_is_refused_in_one_line(table, fragment):
    with pytest.raises(InputError) as exc:
        cell_spec("m", table, WHERE)
    message = str(exc.value)
    assert "\n" not in message and message.startswith(WHERE) and fragment in message, message


def test_an_explicit_matrix_product_reads_as_the_vector_forms_product():
    """``w @ v`` is what ``w*v`` means in the vector form: the same cell, both forms."""
    written = dict(MGU_TABLE, equations=[
        "f = sigma(w_fx @ x + w_fh @ h[t-1] + b_f)",
        "n = tanh(w_nx @ x + w_nh @ (f*h[t-1]) + b_n)",
        "h = (1 - f)*h[t-1] + f*n",
    ])
    for biases in (False, True):
        got = cell_spec("m", written, WHERE).build(biases).assignments
        want = cell_spec("m", MGU_TABLE, WHERE).build(biases).assignments
        assert sp.srepr(got) == sp.srepr(want)


@pytest.mark.parametrize("left", ["x @ w_fx", "(2*w_fx) @ x", "f0 @ x"])
def test_an_explicit_matrix_product_needs_a_weight_on_its_left(left):
    table = dict(MGU_TABLE, equations=[f"f = sigma({left} + w_fh*h[t-1] + w_fx*x + b_f)",
                                       *MGU_TABLE["equations"][1:]])
    with pytest.raises(InputError, match=r"equations\[0\]: column \d+: '@' takes one "
                                         r"declared weight on its left"):
        cell_spec("m", table, WHERE)
