"""Sums of independent copies, functions of a variable and solved constants in a moments
table (``derive.model.moments_terms``, ``moments_solve``, ``derive.problems.moments.
aggregate``): Xavier's and He's initialisations restated in set files give the bundled
init problem's variances, a uniform variant builds from its file alone, each check fails on
a wrong formula, and every mistake is one line naming its field."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
import sympy as sp

from derive.errors import InputError
from derive.model.moments import symbol
from derive.problems.init_variance import algebra as init
from derive.problems.moments import aggregate
from derive.problems.moments import claims as mc
from derive.problems.moments import claims_terms as ct
from derive.problems.moments.problem import moments_problem
from derive.sets import parse_set

MODELS = Path(__file__).resolve().parent / "models" / "moments"
WHERE = "set.toml: models.h"
HE = {"kind": "moments", "constants": ["n", "s", "v"],
      "random": {"z": "normal(0, v)", "w": "normal(0, s)"},
      "equations": ["y = sum(n, relu(z)*w)"], "moments": ["y"], "solve": {"s": "Var(y) = v"}}


def _problem(stem: str):
    path = MODELS / f"{stem}.toml"
    pset = parse_set(path.read_text(), path.name)
    (name,) = pset.problems
    return pset.make_problem(name)


@pytest.fixture(scope="module")
def he():
    return _problem("he")


def test_he_restated_gives_the_bundled_variance(he):
    n = symbol("n")
    want = init.derivation()["he_sigma2"].subs(init.N_IN, n)
    assert sp.simplify(he.results["solution_s"].expr - want) == 0
    # By hand: Var(y) = n s E[relu(z)^2] = n s v / 2.
    assert sp.simplify(he.results["variance_y"].expr - n * symbol("s") * symbol("v") / 2) == 0
    assert sp.simplify(he.results["square_relu_z"].expr - symbol("v") / 2) == 0


def test_xavier_restated_gives_the_bundled_variance():
    p = _problem("xavier")
    want = init.derivation()["xavier_sigma2"].subs({init.N_IN: symbol("n_in"),
                                                    init.N_OUT: symbol("n_out")})
    assert sp.simplify(p.results["solution_s"].expr - want) == 0
    assert p.values["n_out"] == 5  # the set's check value, not the default


def test_the_uniform_variant_gives_the_he_bound():
    p = _problem("he_uniform")
    want = init.derivation()["he_bound"].subs(init.N_IN, symbol("n"))
    assert sp.simplify(p.results["solution_a"].expr ** 2 - want**2) == 0
    assert p.results["solution_a"].expr.subs(symbol("n"), 6) == 1


@pytest.mark.parametrize("stem", ["he", "xavier", "he_uniform"])
def test_every_claim_passes(stem):
    p = _problem(stem)
    claims = list(p.claims())
    keys = {c.key for c in claims}
    assert {k for k in p.results if k.startswith(("solution_", "variance_"))} <= keys
    for c in claims:
        assert c.measure() <= c.tolerance, (c.key, c.route)


def test_a_wrong_solution_fails_both_routes(he):
    formulas = {k: r.expr for k, r in he.results.items()}
    formulas["solution_s"] = 1 / symbol("n")  # LeCun's, where He's is asked
    values = {c: Fraction(str(v)) for c, v in he.values.items()}
    failed = [c for c in ct.solve_claims(he.SPEC, formulas, values)
              if c.measure() > c.tolerance]
    assert len(failed) == 2


def test_a_wrong_function_moment_fails_the_quadrature(he):
    formulas = {k: r.expr for k, r in he.results.items()}
    formulas["square_relu_z"] = symbol("v")  # the whole line, not the half
    values = {c: Fraction(str(v)) for c, v in he.values.items()}
    bad = [c.key for c in ct.call_claims(he.SPEC, formulas, values)
           if c.measure() > c.tolerance]
    assert bad == ["square_relu_z"]


def test_a_wrong_sum_rule_fails_the_sampling():
    """Var of n copies taken as n^2 Var (the copies wrongly one draw) fails the draws."""

    p = moments_problem("h", HE, WHERE)()
    formulas = {k: r.expr for k, r in p.results.items()}
    n = symbol("n")
    formulas["variance_y"] = formulas["variance_y"] * n
    values = {c: Fraction(str(v)) for c, v in p.values.items()}
    bad = {c.key for c in mc.sampling_claims(p.SPEC, formulas, values)
           if c.measure() > c.tolerance}
    assert bad == {"variance_y"}


def test_cumulants_round_trip_and_add():
    mu = [sp.Integer(1), *sp.symbols("m1:5")]
    kappa = aggregate.cumulants(mu)
    assert [sp.expand(a - b) for a, b in zip(aggregate.moments_of(kappa, 4), mu,
                                             strict=True)] == [0] * 5
    # Var of a sum of n copies: n Var(T); its second moment n E[T^2] + n(n - 1) E[T]^2.
    n = sp.Symbol("n")
    second = aggregate.moments_of([0, n * kappa[1], n * kappa[2]], 2)[2]
    assert sp.expand(second - (n * mu[2] + n * (n - 1) * mu[1] ** 2)) == 0


def test_a_bernoulli_sum_is_enumerated_exactly():
    table = {"kind": "moments", "constants": ["n", "q"], "inputs": ["x"],
             "random": {"m": "bernoulli(q)"}, "equations": ["y = sum(n, m*x)"],
             "moments": ["y"]}
    p = moments_problem("b", table, WHERE)()
    assert p.route() == "enumeration"
    q, n, x = symbol("q"), symbol("n"), symbol("x")
    assert sp.simplify(p.results["variance_y"].expr - n * q * (1 - q) * x**2) == 0
    assert all(c.measure() <= c.tolerance for c in p.claims())


def _he(**change) -> dict:
    return {**HE, **change}


BAD = [
    (_he(equations=["y = sum(n, relu(z)*w) + z"]), "'z' is read both in"),
    (_he(equations=["y = sum(n, relu(z + w))"]), "a function may read one random variable"),
    (_he(equations=["y = sum(n, tanh(z)*w)"]), "tanh(...) of the normal variable z"),
    (_he(equations=["y = sum(n, relu(2*z*z)*w)"]), "its argument must be a r + b"),
    (_he(equations=["y = sum(2*n, relu(z)*w)"]), "sum(n, ...) counts its copies"),
    (_he(equations=["y = sum(n, s)"]), "sum(n, ...) of no random variable"),
    (_he(equations=["u = relu(z)", "y = sum(n, u*w)"]), "'u' depends on random variables"),
    (_he(solve={"s": "Var(q) = v"}), "'q' is not among the moments"),
    (_he(solve={"n": "Var(y) = v"}), "models.h.solve.n: only a declared constant"),
    (_he(solve={"s": "v = 1"}), "the equation names no moment"),
    (_he(solve={"s": "Var(y) = -v"}), "has no positive solution"),
]


@pytest.mark.parametrize(("table", "message"), BAD, ids=[m[:30] for _, m in BAD])
def test_each_mistake_is_one_line_naming_its_field(table, message):
    with pytest.raises(InputError) as e:
        _ = moments_problem("h", table, WHERE)().results
    text = str(e.value)
    assert "\n" not in text and message in text, text
    assert text.startswith(WHERE) or text.startswith("models.h.solve"), text
