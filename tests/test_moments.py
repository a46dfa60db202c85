"""Random variables defined as data (``kind = "moments"``: ``derive.model.moments``,
``derive.problems.moments``): dropout restated in a table gives the mean and variance the
bundled dropout derives, Gaussian dropout builds from a set file's text alone and passes
every check, every mistake in a table is one line naming its field, a check fails on a
wrong formula, and the key renders and compiles without overfull boxes."""

from __future__ import annotations

import re
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest
import sympy as sp
from conftest import key_tex

from derive.errors import InputError
from derive.model.defined import model_class
from derive.model.moments import moments_spec, symbol
from derive.problems.moments import claims as mc
from derive.sets import parse_set

ROOT = Path(__file__).resolve().parents[1]
WHERE = "set.toml: models.d"

DROPOUT = {
    "kind": "moments", "title": "Inverted dropout", "inputs": ["x"], "constants": ["p"],
    "random": {"m": "bernoulli(1 - p)"}, "equations": ["y = m*x/(1 - p)"], "moments": ["y"],
}
HEAD = 'id = "mine"\ntitle = "Homework 2"\ncourse = "DL 101"\nsource = "mine"\n'
GAUSSIAN_SET = HEAD + '''problems = ["gaussian_dropout"]

[models.gaussian_dropout]
kind = "moments"
title = "Gaussian dropout"
inputs = ["x"]
constants = ["alpha"]
random = { m = "normal(1, alpha)" }
equations = ["y = m*x"]
moments = ["y"]
'''
#: A masked weight with uniform jitter and additive noise: two continuous variables, one
#: Bernoulli, an intermediate quantity, two moments.
MIXED = {
    "kind": "moments", "title": "A masked, jittered weight", "inputs": ["x", "w"],
    "constants": ["p", "a"],
    "random": {"m": "bernoulli(1 - p)", "u": "uniform(-a, a)", "z": "normal(0, 1)"},
    "equations": ["h = m*(w + u)*x/(1 - p)", "y = h + a*z"], "moments": ["h", "y"],
}

x, p, alpha = symbol("x"), symbol("p"), symbol("alpha")


@pytest.fixture(scope="module")
def dropout():
    return model_class("d", DROPOUT, WHERE)()


def _by_outcomes(q: sp.Expr, y) -> tuple[sp.Expr, sp.Expr]:
    """E[y] and E[y^2] summed over the mask's two outcomes (m = 1 with probability q)."""
    mean = q * y(1) + (1 - q) * y(0)
    second = q * y(1) ** 2 + (1 - q) * y(0) ** 2
    return mean, second


def test_dropout_restated_gives_the_dropout_moments(dropout):
    r = dropout.results
    mean, second = _by_outcomes(1 - p, lambda m: m * x / (1 - p))
    assert sp.simplify(r["mean_y"].expr - mean) == 0
    assert sp.simplify(r["variance_y"].expr - (second - mean**2)) == 0
    assert sp.simplify(r["mean_y"].expr - x) == 0
    assert sp.simplify(r["variance_y"].expr - p * x**2 / (1 - p)) == 0
    assert r["mean_m"].expr == 1 - p and r["square_m"].expr == 1 - p


def test_dropout_is_written_over_the_keep_probability(dropout):
    """The variance reads p x^2/(1 - p), as dropout's in_keep writes it, not over p - 1."""
    v = dropout.results["variance_y"].expr
    assert sp.fraction(v) == (p * x**2, 1 - p)


def test_dropout_checks_pass_by_every_route(dropout):
    checks = dropout.checks
    assert checks and all(c.passed for c in checks), [c for c in checks if not c.passed]
    methods = {c.method for c in checks}
    assert "exact enumeration over every outcome" in methods
    assert any(m.startswith("sampling") for m in methods)
    exact = [c for c in checks if c.tolerance == 0]
    assert {c.claim for c in exact} == set(dropout.results)


def test_a_wrong_formula_fails_each_route(dropout):
    """The routes measure the formulas: a variance off by x^2 fails exactly and by draws."""
    spec = dropout.SPEC
    formulas = {k: r.expr for k, r in dropout.results.items()}
    formulas["variance_y"] = formulas["variance_y"] + x**2 / 10
    values = {"p": Fraction(1, 3)}
    exact = {c.key: c for c in mc.enumeration_claims(spec, formulas, values)}
    sampled = {c.key: c for c in mc.sampling_claims(spec, formulas, values)}
    assert exact["variance_y"].measure() > 0 and exact["mean_y"].measure() == 0
    assert sampled["variance_y"].measure() > mc.SAMPLING_SIGMAS


def test_a_wrong_formula_fails_the_integration():
    problem = model_class("mixed", MIXED, "set.toml: models.mixed")()
    formulas = {k: r.expr for k, r in problem.results.items()}
    formulas["square_u"] = formulas["square_u"] * (1 + sp.Rational(1, 10**12))
    got = {c.key: c.measure() for c in mc.integration_claims(
        problem.SPEC, formulas, {"p": Fraction(1, 4), "a": Fraction(1, 2)})}
    assert got["square_u"] > mc.DIGITS_TOLERANCE and got["mean_y"] < mc.DIGITS_TOLERANCE


def test_a_function_of_the_constants_is_enumerated_in_digits():
    table = _table(constants=["p", "c"], equations=["y = exp(c)*m*x/(1 - p)"])
    problem = model_class("e", table, "set.toml: models.e")()
    assert sp.simplify(problem.results["mean_y"].expr - sp.exp(symbol("c")) * x) == 0
    methods = {c.method for c in problem.checks}
    assert "enumeration over every outcome at 30 digits" in methods
    assert all(c.passed for c in problem.checks)


def test_gaussian_dropout_builds_from_a_set_file_alone():
    pset = parse_set(GAUSSIAN_SET, "set.toml")
    problem = pset.make_problem("gaussian_dropout")
    r = problem.results
    assert sp.simplify(r["mean_y"].expr - x) == 0
    assert sp.simplify(r["variance_y"].expr - alpha * x**2) == 0
    checks = problem.checks
    assert checks and all(c.passed for c in checks)
    assert any(c.method == "Gauss quadrature at 30 digits" for c in checks)


def test_two_continuous_variables_and_an_intermediate_quantity():
    problem = model_class("mixed", MIXED, "set.toml: models.mixed")()
    r, w, a = problem.results, symbol("w"), symbol("a")
    assert sp.simplify(r["mean_y"].expr - w * x) == 0
    want = (x**2 * (w**2 + a**2 / 3)) / (1 - p) - (w * x) ** 2 + a**2
    assert sp.simplify(r["variance_y"].expr - want) == 0
    assert all(c.passed for c in problem.checks)


def test_check_values_must_make_distributions():
    cls = model_class("d", DROPOUT, WHERE)
    with pytest.raises(InputError) as e:
        cls.from_params({"p": 1}, "set.toml")
    assert str(e.value).startswith("set.toml: params.d: at p = 1, m ~ bernoulli(1 - p)")
    assert "not in (0, 1)" in str(e.value)


def _table(**change) -> dict:
    return {**DROPOUT, **change}


BAD = [
    (_table(random={"m": "bernouli(1 - p)"}),
     "set.toml: models.d.random.m: unknown distribution 'bernouli'; allowed are "
     "bernoulli(q), normal(mu, var), uniform(a, b)"),
    (_table(random={"m": "normal(1)"}), "models.d.random.m: normal takes 2 parameters"),
    (_table(random={"m": "bernoulli(1 - x)"}), "models.d.random.m: column 15: 'x' is an input"),
    (_table(random={"m": "bernoulli(1 - q)"}), "column 15: 'q' is not declared"),
    (_table(equations=["y = m*z/(1 - p)"]),
     "models.d.equations[0]: column 7: 'z' is not declared; allowed are x, p, m"),
    (_table(constants=["p", "x"]), "models.d.constants: 'x' is declared already, as an input"),
    (_table(equations=["x = m*x"]), "models.d.equations[0]: column 1: 'x' is declared"),
    (_table(equations=["y = x/m"]), "models.d.equations[0]: a division by an expression in "
                                    "the random variables"),
    (_table(equations=["y = m*x +"]), "models.d.equations[0]: column"),
    (_table(moments=["q"]), "models.d.moments: 'q' is not assigned by an equation"),
    (_table(inputs=["x", "w"]), "models.d.inputs: 'w' is declared but nothing reads it"),
    (_table(shape=2), "models.d.shape: unknown key"),
    (_table(random={}), "models.d.random: expected a table of 1 to 8 random variables"),
    (_table(random={"E": "bernoulli(p)"}), "models.d.random: 'E' is not allowed as a name"),
]


@pytest.mark.parametrize(("table", "message"), BAD, ids=[m[:40] for _, m in BAD])
def test_each_mistake_is_one_line_naming_its_field(table, message):
    with pytest.raises(InputError) as e:
        moments_spec("d", table, WHERE)
    text = str(e.value)
    assert "\n" not in text and text.startswith(WHERE)
    assert message in text, text


def test_the_key_renders_its_moments(dropout):
    tex = key_tex(dropout)
    assert r"\operatorname{Bernoulli}" in tex and r"\operatorname{Var}" in tex
    assert r"\frac{p x^{2}}{1 - p}" in tex
    # The evidence speaks of mathematics, never of the library that ran it.
    assert not re.findall(r"(?i)\b(numpy|sympy|mpmath|python|fractions)\b", tex)


@pytest.mark.pdf
def test_a_key_builds_without_overfull_boxes(tmp_path):
    from derive.render.pdf import overfull_boxes, typeset_with_log

    text = GAUSSIAN_SET.replace('problems = ["gaussian_dropout"]',
                                'problems = ["gaussian_dropout", "mixed"]')
    text += "\n[models.mixed]\n" + "\n".join(
        f"{k} = {_toml(v)}" for k, v in MIXED.items()) + "\n"
    (tmp_path / "set.toml").write_text(text)
    subprocess.run([str(ROOT / ".venv/bin/derive"), "build", str(tmp_path / "set.toml"),
                    "--out", str(tmp_path / "out"), "--format", "tex"], check=True,
                   capture_output=True, timeout=600)
    tex = (tmp_path / "out" / "mine" / "answer-key.tex").read_text()
    _, log = typeset_with_log(tex)
    assert overfull_boxes(log) == []


def _toml(v) -> str:
    if isinstance(v, dict):
        return "{ " + ", ".join(f'{k} = "{s}"' for k, s in v.items()) + " }"
    if isinstance(v, list):
        return "[" + ", ".join(f'"{s}"' for s in v) + "]"
    return f'"{v}"'


MODEL_FILES = Path(__file__).resolve().parent / "models" / "moments"


@pytest.mark.parametrize("stem", ["dropout", "gaussian_dropout"])
def test_the_set_files_build_alone(stem, tmp_path):
    from derive.cli import main

    path = MODEL_FILES / f"{stem}.toml"
    assert main(["check", "--set", str(path)]) == 0
    assert main(["build", str(path), "--out", str(tmp_path), "--format", "tex"]) == 0
    (tex,) = tmp_path.glob("*/answer-key.tex")
    assert r"\operatorname{Var}" in tex.read_text() or "Var" in tex.read_text()
