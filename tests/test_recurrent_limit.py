"""A regime a model's author names (``RecurrentProblem.LIMIT``), for any recurrent cell.

The expected answers are worked by hand from the cells' equations (the MGU's
h = (1 - f) h(t-1) + f n passes h unchanged at f = 0; a GRU's z = 1 makes h = n), or taken
from the LSTM's own, hand-built analysis of its limit (``derive.problems.lstm``); the
regime's claims run a forward pass with the limited arguments shifted, and a wrong result
fails them (mutation tests).  Bad ``limit`` tables are refused in one line.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import ClassVar

import pytest
import sympy as sp
from test_problems import unbacked_numbers
from test_texgate import _printed_names

from derive.engine.cell import bar, loss_grad
from derive.engine.functions import sigma
from derive.engine.spec import CellSpec
from derive.errors import InputError
from derive.export import export_problem
from derive.model.equations import cell_spec
from derive.model.limit import parse_limit
from derive.problems import REGISTRY
from derive.problems.gru import GRU
from derive.problems.lstm import LSTM
from derive.problems.mgu import MGU
from derive.problems.recurrent import RecurrentProblem
from derive.problems.recurrent_limit import K, regime
from derive.render.document import render
from derive.render.latex import Notation
from derive.render.pdf import find_engine, overfull_boxes, typeset_with_log
from derive.sets import ProblemSet, parse_set


class MGUForget(MGU):
    LIMIT: ClassVar[dict[str, int]] = {"f": 0}


class GRUKeep(GRU):
    LIMIT: ClassVar[dict[str, int]] = {"z": 0}


class GRUCopy(GRU):
    LIMIT: ClassVar[dict[str, int]] = {"z": 1}


class LSTMLimit(RecurrentProblem):
    """The bundled LSTM's cell with its optional part's regime, through the generic part."""

    key, title, MAIN = "lstm_limit", "LSTM in the regime", "w_ix_bar"
    CELL = LSTM.CELL
    LIMIT: ClassVar[dict[str, int]] = {"f": 1, "i": 0, "o": 0}


@pytest.fixture(scope="module")
def mgu() -> MGUForget:
    return MGUForget()


def _passes(problem) -> dict[str, bool]:
    """Every claim of the regime, by key: whether all its checks pass."""
    out: dict[str, bool] = {}
    for c in problem.checks:
        if "limit" in c.claim:
            out[c.claim] = out.get(c.claim, True) and c.passed
    return out


# -- derived against hand-worked answers ---------------------------------------------------
def test_mgu_at_f_0_passes_the_hidden_state_unchanged(mgu):
    r = mgu.results
    assert r["backward_map_limit"].expr == sp.Matrix([[1]])  # dh(t+1)/dh(t) = 1 - f = 1
    assert r["h_bar_limit"].expr == loss_grad("h") + bar("h", 1)
    assert r["backward_map_limit_constant"].value is True
    assert r["backward_map_limit_eigenvalues"].value == [1]
    assert r["backward_map_limit_idempotent"].value is True
    assert r["backward_map_limit_powers"].value == "unchanged"
    # Every summand holds f(t) (w_f*: f(1 - f); w_n*: bar n = bar h f): all vanish.
    assert r["weights_bar_limit"].value == dict.fromkeys(MGU.CELL.weights, True)


def test_mgu_with_its_regime_passes_every_check(mgu):
    assert all(c.passed for c in mgu.checks)
    keys = {"backward_map_limit", "h_bar_limit", "backward_map_limit_constant",
            "backward_map_limit_eigenvalues", "backward_map_limit_idempotent",
            "backward_map_limit_powers", "weights_bar_limit"}
    assert set(_passes(mgu)) == keys


def test_gru_at_z_0_keeps_the_state_and_passes_every_check():
    p = GRUKeep()
    assert p.results["backward_map_limit"].expr == sp.Matrix([[1]])
    assert p.results["backward_map_limit_powers"].value == "unchanged"
    assert all(c.passed for c in p.checks)


def test_gru_at_z_1_depends_on_the_forward_values():
    """h = n at z = 1: J = dn(t+1)/dh(t), no fixed matrix; only w_z*'s summands, with
    z(1 - z), vanish."""
    p = GRUCopy()
    r = p.results
    assert r["backward_map_limit_constant"].value is False
    assert "backward_map_limit_powers" not in r
    assert r["weights_bar_limit"].value == {"w_zx": True, "w_zh": True, "w_rx": False,
                                            "w_rh": False, "w_nx": False, "w_nh": False}
    assert all(c.passed for c in p.checks)


def test_the_generic_regime_of_the_lstm_agrees_with_its_own_analysis(problems):
    lstm, generic = problems["lstm"].results, LSTMLimit().results
    assert generic["backward_map_limit"].expr == lstm["backward_map_limit"].expr
    for key in ("h_bar_limit", "c_bar_limit"):
        assert sp.expand(generic[key].expr - lstm[key].expr) == 0
    assert generic["backward_map_limit_idempotent"].value is True
    assert generic["backward_map_limit_powers"].value == "fixed"
    assert all(generic["weights_bar_limit"].value.values())


@pytest.mark.parametrize(("rows", "label"), [
    ([[1]], "unchanged"), ([[0, 0], [0, 1]], "fixed"), ([["1/2"]], "vanish"), ([[0]], "vanish"),
    ([[2]], "explode"), ([[-1]], "bounded"), ([[0, 1], [-1, 0]], "bounded"),
    ([[1, 0], [1, 1]], "grow"), ([[-1, 0], [1, -1]], "grow"),
])
def test_what_the_powers_do(rows, label):
    m = sp.Matrix(rows).applyfunc(sp.Rational)
    assert regime(m, m.eigenvals(multiple=True)) == label


def _toy(h: str, c: str | None = None) -> type[RecurrentProblem]:
    """A problem on a cell with a gate f and the states' update at f = 0 given as text.

    The gate reads x alone: where the states grow (the Jordan block's h), a gate that read
    them would leave the regime's neighbourhood in a run of 16 steps."""
    states = ["h"] if c is None else ["h", "c"]
    equations = ["f = sigma(w_f*x)", f"h = {h}"] + ([f"c = {c}"] if c else [])
    spec = cell_spec("toy", {"inputs": ["x"], "states": states, "weights": ["w_f", "w_x"],
                             "loss_on": ["h"], "equations": equations}, "toy")
    return type("Toy", (RecurrentProblem,), {"key": "toy", "title": "Toy", "MAIN": "w_f_bar",
                                             "CELL": spec, "LIMIT": {"f": 0}})


@pytest.mark.parametrize(("h", "c", "label", "jac"), [
    ("(1 - f)*h[t-1]/2 + f*tanh(w_x*x)", None, "vanish", [["1/2"]]),
    ("2*(1 - f)*h[t-1] + f*tanh(w_x*x)", None, "explode", [[2]]),
    # h(t+1) = h + c, c(t+1) = c: J = [[1, 0], [1, 1]], a Jordan block at 1.
    ("(1 - f)*(h[t-1] + c[t-1]) + f*tanh(w_x*x)", "(1 - f)*c[t-1] + f*tanh(w_x*x)", "grow",
     [[1, 0], [1, 1]]),
    # h(t+1) = -c, c(t+1) = h: a rotation, eigenvalues i and -i.
    ("-(1 - f)*c[t-1] + f*tanh(w_x*x)", "(1 - f)*h[t-1] + f*tanh(w_x*x)", "bounded",
     [[0, 1], [-1, 0]]),
])
def test_constant_regimes_of_every_kind_pass_their_checks(h, c, label, jac):
    p = _toy(h, c)()
    r = p.results
    assert r["backward_map_limit"].expr == sp.Matrix(jac).applyfunc(sp.Rational)
    assert r["backward_map_limit_powers"].value == label
    assert all(c.passed for c in p.checks), [c for c in p.checks if not c.passed]


# -- a wrong result fails its claim ---------------------------------------------------------
def _mutated(problem, key: str, **change):
    p = copy.copy(problem)
    for name in ("checks", "claim_groups"):
        p.__dict__.pop(name, None)
    p.__dict__["results"] = {**problem.results,
                             key: dataclasses.replace(problem.results[key], **change)}
    return p


@pytest.mark.parametrize(("key", "change"), [
    ("backward_map_limit", {"expr": sp.Matrix([[sp.Rational(1, 2)]]), "value": [[0.5]]}),
    ("h_bar_limit", {"expr": bar("h", 1)}),  # the loss's term lost
    ("backward_map_limit_constant", {"value": False}),
    ("backward_map_limit_eigenvalues", {"expr": sp.Tuple(sp.Rational(1, 2))}),
    ("backward_map_limit_idempotent", {"value": False}),
    ("backward_map_limit_powers", {"expr": sp.Matrix([[2**K]])}),
])
def test_a_wrong_result_of_the_regime_fails(mgu, key, change):
    assert not _passes(_mutated(mgu, key, **change))[key]
    assert all(c.passed for c in mgu.checks)  # the shared instance is untouched


def test_a_weight_gradient_said_to_vanish_that_does_not_fails():
    p = GRUCopy()
    rows = p.results["weights_bar_limit"].expr
    wrong = sp.Tuple(*[sp.Tuple(*row[:2], sp.S.Zero, row[3]) for row in rows])
    assert not _passes(_mutated(p, "weights_bar_limit", expr=wrong))["weights_bar_limit"]


# -- bad limit tables -----------------------------------------------------------------------
WHERE = "set.toml: models.mgu.limit"


@pytest.mark.parametrize(("value", "message"), [
    ({"h": 0}, "limit.h: 'h' is a state"),
    ({"x": 0}, "limit.x: 'x' is an input"),
    ({"w_fx": 0}, "limit.w_fx: 'w_fx' is not a variable the cell assigns; allowed are f, n"),
    ({"q": 1}, "limit.q: 'q' is not a variable the cell assigns"),
    ({"f": 2}, "limit.f: expected 0 or 1 (the ends of the range of sigma"),
    ({"f": -1}, "limit.f: expected 0 or 1"),
    ({"f": True}, "limit.f: expected 0 or 1"),
    ({"f": "0"}, "limit.f: expected 0 or 1"),
    ({"n": 0}, "limit.n: expected -1 or 1 (the ends of the range of tanh"),
    ({}, "limit: expected a table such as { f = 0 }"),
    ([0], "limit: expected a table such as { f = 0 }"),
    ({"f\nx": 0}, "limit: 'f\\nx' is not a variable"),
])
def test_a_bad_limit_is_refused_in_one_line(value, message):
    with pytest.raises(InputError) as exc:
        parse_limit(MGU.CELL, value, WHERE)
    text = str(exc.value)
    assert message in text and "\n" not in text and text.startswith(WHERE)


def test_a_variable_that_is_no_saturating_function_outermost_is_refused():
    spec = CellSpec("c", ("x",), ("h",), ("w",), (), lambda s: (
        ("g", 2 * sigma(s.w * s.x)), ("h", s.g * s.h_prev)), ("h",))
    with pytest.raises(InputError, match=r"limit\.g: 'g' is not a saturating function "
                                         r"\(sigma, tanh\) applied outermost; allowed are none"):
        parse_limit(spec, {"g": 0}, WHERE)


def test_a_regime_without_a_finite_backward_map_is_refused():
    # h(t-1)/f: its derivative by h(t-1) holds 1/f, unbounded at f = 0.
    spec = cell_spec("logs", {"inputs": ["x"], "states": ["h"], "weights": ["w"],
                              "loss_on": ["h"], "equations": [
                                  "f = sigma(w*x + h[t-1])", "h = h[t-1]/f"]}, "logs")
    cls = type("Logs", (RecurrentProblem,), {"key": "logs", "title": "L", "MAIN": "w_bar",
                                             "CELL": spec, "LIMIT": {"f": 0}})
    with pytest.raises(InputError, match=r"^limit: the backward map of logs has no finite"):
        cls().results  # noqa: B018 - deriving is the point


def test_a_class_with_a_bad_limit_is_refused_when_defined():
    with pytest.raises(InputError, match=r"^Bad\.LIMIT\.h: 'h' is a state"):
        type("Bad", (MGU,), {"LIMIT": {"h": 0}})


# -- labels, points, documentation, export ---------------------------------------------------
def test_the_part_limit_is_one_only_where_a_regime_is(monkeypatch):
    assert MGUForget.LABELS == ("adjoints", "weight", "map", "limit", "example")
    assert "limit" not in MGU.LABELS and "limit" not in LSTM.LABELS
    body = ('id = "s"\ntitle = "T"\ncourse = "C"\nsource = "S"\nproblems = ["mgu"]\n'
            '[labels.mgu]\nlimit = "(e) Saturation"\n[points.mgu]\nlimit = 3\n')
    with pytest.raises(InputError, match=r"labels\.mgu\.limit: allowed are"):
        parse_set(body, "s.toml")
    monkeypatch.setitem(REGISTRY, "mgu", MGUForget)
    pset = parse_set(body, "s.toml")
    assert pset.points["mgu"]["limit"] == 3
    assert r"\paragraph{(e) Saturation\quad\textup{[3 pts]} $f^{(t)} = 0$.}" in render(
        pset, [MGUForget()], handout=True)


def test_the_regime_keys_are_documented_and_exported_only_with_a_regime(mgu):
    regime_keys = {k for k in MGUForget.result_docs() if "limit" in k}
    assert regime_keys == {k for k in mgu.results if "limit" in k}
    assert not any("limit" in k for k in MGU.result_docs())
    pset = ProblemSet("s", "S", "C", "test", ("gru",), Notation())
    results = export_problem(pset, GRUCopy())["results"]
    assert results["backward_map_limit"]["latex"] and results["weights_bar_limit"]["value"]
    assert results["backward_map_limit_powers"]["value"] is None  # no fixed matrix: null


@pytest.mark.parametrize("cls", [MGUForget, GRUCopy, LSTMLimit], ids=lambda c: c.__name__)
def test_the_regime_prints_only_results(cls):
    assert not unbacked_numbers(cls())


@pytest.mark.parametrize("cls", [MGUForget, GRUCopy], ids=lambda c: c.__name__)
def test_the_names_the_regime_prints_are_the_problems_symbols(cls):
    assert _printed_names(cls()) == cls.symbols()


def test_the_handout_asks_for_the_regime_only_where_one_is(mgu):
    pset = ProblemSet("s", "S", "C", "test", ("mgu",), Notation())
    assert "(d) The regime $f^{(t)} = 0$" in render(pset, [mgu], handout=True)
    assert "The regime" not in render(pset, [MGU()], handout=True)


@pytest.mark.pdf
def test_the_key_with_a_regime_typesets_within_the_text_block(mgu):
    if find_engine() is None:
        pytest.skip("no LaTeX engine (latexmk and pdflatex)")
    pset = ProblemSet("s", "S", "C", "test", ("mgu",), Notation())
    tex = render(pset, [mgu])
    assert "J^{k} = 1" in tex and "the gradient passes back unchanged" in tex
    _, log = typeset_with_log(tex)
    assert overfull_boxes(log, 1.0) == []
