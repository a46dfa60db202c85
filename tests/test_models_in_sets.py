"""Cells defined in a set file alone (tests/models): each derives every result the bundled
LSTM's key holds, passes every check, and renders its key and handout; a set's model
shadows a bundled problem of the same name, and two sets may define one name differently."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sympy as sp

from derive.build import make_problems
from derive.engine.cell import timed
from derive.export import export_problem
from derive.problems import REGISTRY
from derive.render.document import render
from derive.sets import get_set, parse_set

MODELS = Path(__file__).resolve().parent / "models"
SETS = sorted(p.stem for p in MODELS.glob("*.toml"))


@pytest.fixture(scope="module")
def built() -> dict:
    """Each set of tests/models with its one problem, derived and checked once."""
    out = {}
    for stem in SETS:
        pset = get_set(str(MODELS / f"{stem}.toml"))
        (problem,) = make_problems(pset, {})
        out[stem] = (pset, problem)
    return out


def test_there_are_the_three_cells_of_the_issue():
    assert SETS == ["coupled", "mgu", "peephole"]


@pytest.mark.parametrize("stem", SETS)
def test_a_defined_cell_passes_every_check(built, stem):
    _, problem = built[stem]
    failed = [f"{c.claim} ({c.method}): {c.max_rel_error:.1e}" for c in problem.checks
              if not c.passed]
    assert not failed
    # Every gradient, both forms, the map: the evidence covers them all.
    claimed = {c.claim for c in problem.checks}
    for w in problem.weights:
        assert {f"{w}_bar", f"vector_{w}_bar"} <= claimed
    assert "backward_map" in claimed


@pytest.mark.parametrize("stem", SETS)
def test_a_defined_cell_exports_under_the_lstms_keys(built, stem):
    pset, problem = built[stem]
    entry = export_problem(pset, problem)
    keys = set(entry["results"])
    lstm = {"h_bar", "c_bar", "x_bar", "h0_bar", "backward_map", "vector_h_bar"}
    states = {s.name for s in problem.cell.states}
    expected = {k for k in lstm if k[0] not in "hc" or k[0] in states}
    assert expected <= keys
    assert {f"{w}_bar" for w in problem.weights} <= keys
    json.dumps(entry)  # plain JSON data


def test_the_coupled_gate_is_no_gate_of_its_own(built):
    """i = 1 - f: the input gate has no weights, and f's adjoint takes ī with the sign of
    di/df = -1 (by hand: f̄ = c̄ c(t-1) - ī, ī = c̄ g)."""
    _, problem = built["coupled"]
    assert not any(w.startswith("w_i") for w in problem.weights)
    r = problem.results
    c_bar, i_bar = r["c_bar"].lhs, r["i_bar"].lhs
    c_prev = r["f_bar"].expr.coeff(c_bar)
    assert sp.expand(r["f_bar"].expr - (c_bar * c_prev - i_bar)) == 0
    assert c_prev == timed("c", -1)
    g = r["i_bar"].expr / c_bar
    assert sp.expand(r["i_bar"].expr - c_bar * g) == 0 and not g.has(c_bar)


@pytest.mark.parametrize("stem", SETS)
def test_a_defined_cell_renders_its_key_and_handout(built, stem):
    pset, problem = built[stem]
    key, handout = render(pset, [problem]), render(pset, [problem], handout=True)
    assert problem.title in key and problem.title in handout
    assert "Solution" in key
    assert "Solution" not in handout
    for w in problem.weights:  # every weight is asked for, and answered
        assert w.split("_")[1] in handout


def test_a_sets_model_shadows_the_bundled_problem_of_that_name(built):
    _, problem = built["mgu"]
    assert type(problem) is not REGISTRY["mgu"]
    assert problem.title == "Minimal gated unit"
    bundled = REGISTRY["mgu"]()
    for key in ("h_bar", "w_fx_bar", "backward_map"):
        assert sp.srepr(problem.results[key].expr) == sp.srepr(bundled.results[key].expr)


def test_two_sets_may_define_one_name_differently():
    text = (MODELS / "mgu.toml").read_text(encoding="utf-8")
    other = text.replace('id = "model_mgu"', 'id = "other"').replace(
        '"h = (1 - f)*h[t-1] + f*n"', '"h = f*h[t-1] + (1 - f)*n"')
    first, second = parse_set(text, "a.toml"), parse_set(other, "b.toml")
    cache: dict = {}
    (one,), (two,) = make_problems(first, cache), make_problems(second, cache)
    assert one is not two
    assert one.results["h_bar"].expr != two.results["h_bar"].expr


def test_parse_model_reads_text_or_a_table():
    import derive

    text = (MODELS / "mgu.toml").read_text(encoding="utf-8")
    cls = derive.parse_model(text[text.index("[models.mgu]"):])
    assert (cls.key, cls.title) == ("mgu", "Minimal gated unit")
    table = get_set(str(MODELS / "mgu.toml")).models["mgu"]
    again = derive.parse_model(table, name="my_mgu")
    assert again.key == "my_mgu"
    assert sp.srepr(again().results["w_fx_bar"].expr) == sp.srepr(
        REGISTRY["mgu"]().results["w_fx_bar"].expr)
    from derive.errors import InputError

    with pytest.raises(InputError, match=r"models\.model\.kind: missing; expected one of"):
        derive.parse_model({"title": "x"})
    with pytest.raises(InputError, match="a model is TOML text or a table, got int"):
        derive.parse_model(3)


def test_a_parsed_model_registered_builds_in_worker_processes(tmp_path, monkeypatch):
    """register(parse_model(...)) names the model for sets and the command line; the class
    reaches workers as its table (a class made at run time has no importable name)."""
    import pickle

    import derive
    from derive import problems as registry
    from derive.cli import main

    saved = [dict(t) for t in (registry.REGISTRY, registry.ADDED)]
    try:
        text = (MODELS / "mgu.toml").read_text(encoding="utf-8")
        cls = derive.register(derive.parse_model(text[text.index("[models.mgu]"):],
                                                 name="my_mgu"))
        assert pickle.loads(pickle.dumps(cls)) is cls
        other = tmp_path / "two.toml"
        other.write_text('id = "two"\ntitle = "T"\ncourse = "C"\nsource = "S"\n'
                         'problems = ["my_mgu", "momentum"]\n', encoding="utf-8")
        out = tmp_path / "b"
        assert main(["build", str(other), "--out", str(out), "--format", "json",
                     "--jobs", "2"]) == 0
        data = json.loads((out / "two" / "derivations.json").read_text())
        assert data["problems"]["my_mgu"]["results"]["w_fx_bar"]["latex"]
        assert all(c["passed"] for c in data["problems"]["my_mgu"]["checks"])
    finally:
        for table, old in zip((registry.REGISTRY, registry.ADDED), saved, strict=True):
            table.clear()
            table.update(old)


def test_the_starter_files_model_uncommented_is_a_cell_that_checks_out():
    from derive.sets import starter

    lines, inside = [], False
    for line in starter("hw").splitlines():
        inside = inside or line == "# [models.my_cell]"
        if inside and not line:
            break
        if inside:
            lines.append(line.removeprefix("# "))
    text = ('id = "s"\ntitle = "T"\ncourse = "C"\nsource = "S"\nproblems = ["my_cell"]\n'
            + "\n".join(lines) + "\n")
    (problem,) = make_problems(parse_set(text, "starter.toml"), {})
    assert problem.title == "Elman network"
    assert problem.checks and all(c.passed for c in problem.checks)


# -- maps ---------------------------------------------------------------------------------------
def test_the_issues_nesterov_map_builds_from_its_set_file(tmp_path):
    """Its determinant is beta^D det(I - alpha H), not beta^D alone (by hand: the first
    factor is [[I, 0], [-alpha H, beta (I - alpha H)]], the second has determinant 1)."""
    from derive.cli import main

    out = tmp_path / "b"
    assert main(["build", str(MODELS / "maps" / "nesterov.toml"), "--out", str(out),
                 "--format", "json"]) == 0
    entry = json.loads((out / "model_nesterov" / "derivations.json").read_text())[
        "problems"]["nesterov"]
    assert all(c["passed"] for c in entry["checks"]) and len(entry["checks"]) >= 8
    (problem,) = make_problems(get_set(str(MODELS / "maps" / "nesterov.toml")), {})
    det = problem.results["det_jacobian"].expr
    alpha, beta = (sp.Symbol(n) for n in ("alpha", "beta"))
    assert det.has(beta) and det.has(alpha) and det != beta ** sp.Symbol("D")


def test_momentum_written_as_a_map_in_a_set_file_has_the_bundled_determinant():
    (problem,) = make_problems(get_set(str(MODELS / "maps" / "momentum.toml")), {})
    bundled = REGISTRY["momentum"]()
    assert str(problem.results["det_jacobian"].expr) == str(
        bundled.results["det_jacobian"].expr)
    assert all(c.passed for c in problem.checks)
