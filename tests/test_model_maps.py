"""Maps defined as data (``derive.model.maps``, ``derive.problems.momentum.defined``): the
issue's Nesterov map derives the determinant worked out by hand, momentum written as a map
gives the bundled momentum's results, every check passes, every mistake in a table is one
line, equal tables give classes that behave alike, and the key renders and compiles."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from conftest import key_tex

from derive.errors import InputError
from derive.export import export_problem
from derive.model.maps import MAX_GRADS, Grad, constant, map_spec, new, old
from derive.problems.momentum import Momentum
from derive.problems.momentum import model as mm
from derive.problems.momentum.defined import map_problem
from derive.problems.momentum.mapping import DiagOf, EntryProduct
from derive.verify.routes import complex_step, jacobian

WHERE = "set.toml: models.m"
ROOT = Path(__file__).resolve().parents[1]

NESTEROV = {
    "kind": "map", "title": "Nesterov momentum", "state": ["theta", "p"],
    "constants": ["alpha", "beta"],
    "equations": ["p' = beta*p - alpha*grad(J)(theta + beta*p)", "theta' = theta + p'"],
}
#: The bundled momentum's two updates (momentum/model.py, ``updates``) as a table.
MOMENTUM = {
    "kind": "map", "title": "Momentum", "state": ["theta", "p"],
    "constants": ["alpha", "beta"],
    "equations": ["p' = beta*p - alpha*grad(J)(theta)", "theta' = theta + p'"],
}
#: An additive-affine coupling layer: a flow whose inverse and determinant are explicit.
FLOW = {
    "title": "A coupling layer", "state": ["x", "y"], "constants": ["a"],
    "equations": ["y' = y*exp(tanh(a*x)) + x^2", "x' = x + sigma(y')"],
}

#: An update that forgets the old momentum: no inverse, determinant 0.
FORGETS = dict(MOMENTUM, equations=["p' = -alpha*grad(J)(theta)", "theta' = theta + p'"])


def ONE_STATE(update: str) -> dict:  # noqa: N802 - reads as the tables above
    return {"title": "One update", "state": ["x"], "constants": ["c"], "equations": [update]}


alpha, beta = constant("alpha"), constant("beta")
D, H = mm.D, mm.H


@pytest.fixture(scope="module")
def nesterov():
    return map_problem("nesterov", NESTEROV, WHERE)()


def _passes(p) -> None:
    failed = [(c.claim, c.method, c.max_rel_error) for c in p.checks
              if not c.max_rel_error <= c.tolerance]
    assert p.checks and not failed
    assert {c.claim for c in p.checks} == set(p.results)  # every result checked, no stray


# -- Nesterov: the determinant worked out by hand ----------------------------------------------
def test_nesterov_determinant_is_the_hand_derived_one(nesterov):
    # By hand: F1 = [[I, 0], [-aH, b(I - aH)]] (H at theta + b p), F2 = [[I, I], [0, I]];
    # det F2 = 1 and det F1 = det(b (I - aH)) = b^D det(I - aH): not b^D alone.
    hand = beta**D * sp.Determinant(sp.Identity(D) - alpha * H)
    r = nesterov.results
    assert r["det_jacobian"].expr == hand
    assert r["factor_dets"].expr == sp.Tuple(hand, 1)
    f1 = nesterov.factors[0].blocks
    assert f1[1, 0] == -alpha * H
    assert f1[1, 1] == beta * sp.Identity(D) - alpha * beta * H


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_nesterov_hand_determinant_holds_numerically(rng, n):
    # A Nesterov step written here in NumPy, apart from the grammar: its complex-step
    # Jacobian's determinant against b^D det(I - aH(theta + b p)).
    a, b = 0.1, 0.9

    def step(s):
        th, p = np.split(s, 2)
        p = b * p - a * mm.grad_j(th + b * p)
        return np.concatenate([th + p, p])

    s = rng.uniform(0.2, 1.2, 2 * n)
    th, p = np.split(s, 2)
    hand = b**n * np.linalg.det(np.eye(n) - a * mm.hess_j(th + b * p))
    assert np.linalg.det(jacobian(step, s, route=complex_step)) == pytest.approx(hand, rel=1e-12)


def test_nesterov_passes_every_check_and_its_inverse_stops_at_p(nesterov):
    _passes(nesterov)
    r = nesterov.results
    assert r["inverse_theta"].expr == new("theta") - new("p")
    assert "inverse_p" not in r and nesterov.inverse.stuck == ("p", "inside")


def test_nesterov_exports_every_documented_key(nesterov):
    from derive.render.latex import Notation
    from derive.sets import ProblemSet

    pset = ProblemSet("s", "S", "C", "test", ("nesterov",), Notation())
    out = export_problem(pset, nesterov)["results"]
    # p is never recovered in closed form, whatever the constants: no key for it.
    assert set(out) == set(type(nesterov).result_docs()) == set(nesterov.results)
    assert "inverse_p" not in out and out["inverse_theta"]["sympy"]


# -- momentum as a map: the bundled results ----------------------------------------------------
def _as_bundled(e):
    """A defined map's expression in the bundled momentum's symbols."""
    e = e.replace(Grad, lambda _, u: mm.GradJ(u))
    return e.xreplace({alpha: mm.alpha, beta: mm.beta})


def test_momentum_as_a_map_gives_the_bundled_results():
    got = map_problem("momentum_map", MOMENTUM, WHERE)()
    want = Momentum()
    r, w = got.results, want.results
    assert _as_bundled(r["det_jacobian"].expr) == w["det_jacobian"].expr == mm.beta**D
    assert _as_bundled(r["jacobian"].expr) == w["jacobian"].expr
    assert [_as_bundled(f) for f in got.factors] == [mm.first_factor(), mm.second_factor()]
    assert _as_bundled(r["factor_dets"].expr) == sp.Tuple(*reversed(w["factor_dets"].expr))
    for x in ("theta", "p"):
        assert sp.simplify(_as_bundled(r[f"inverse_{x}"].expr) - w[f"inverse_{x}"].expr) == 0
    _passes(got)


# -- other maps ---------------------------------------------------------------------------------
def test_a_coupling_layer_has_an_explicit_inverse_and_a_diagonal_determinant():
    p = map_problem("flow", FLOW, WHERE)()
    _passes(p)
    assert p.inverse.complete
    x, y, a = old("x"), old("y"), constant("a")
    # det F_1 = det diag(exp(tanh(a x))) = the product of its entries; det F_2 = 1.
    assert p.results["det_jacobian"].expr == EntryProduct(sp.exp(sp.tanh(a * x)))
    assert y not in p.results["inverse_y"].expr.free_symbols


def test_an_update_that_forgets_its_state_has_determinant_zero_and_no_inverse():
    p = map_problem("forgets", FORGETS, WHERE)()
    assert p.results["det_jacobian"].expr == 0 and p.inverse.stuck == ("p", "lost")
    _passes(p)


@pytest.mark.parametrize(("update", "stuck", "positive"), [
    ("x' = sqrt(x)", None, True),         # x = x'^2 where x' > 0
    ("x' = softplus(x)", None, True),     # x = log(exp(x') - 1), x' > 0
    ("x' = x^3/c", None, True),           # x = (c x')^(1/3): a real root where x' > 0
    ("x' = exp(2*x) + c", None, False),   # x = log(x' - c)/2
    ("x' = x^3 + x", ("x", "none"), False),  # a cubic: not solved by undoing operations
    ("x' = c*x^2", ("x", "several"), False),
    ("x' = exp(x) + x", ("x", "none"), False),   # LambertW: not in closed form here
    ("x' = step(x) + x", ("x", "none"), False),  # SymPy's root does not solve it
])
def test_an_inverse_counts_only_once_it_solves_its_update(update, stuck, positive):
    p = map_problem("one", ONE_STATE(update), WHERE)()
    assert p.inverse.stuck == stuck
    assert [s[3] for s in p.inverse.solved] == ([positive] if stuck is None else [])
    _passes(p)


def test_gradients_at_two_points_get_two_hessians():
    table = {"state": ["x"], "constants": ["c"],
             "equations": ["x' = x - c*grad(J)(x - c*grad(J)(x))"]}
    p = map_problem("extra", table, WHERE)()
    assert [h.name for h in p.hessians.values()] == ["H_1", "H_2"]
    _passes(p)


def test_constants_take_the_sets_values():
    cls = map_problem("nesterov", NESTEROV, WHERE)
    p = cls.from_params({"alpha": "0.05", "beta": "1/2"})
    assert p.values == {"alpha": sp.Rational(1, 20), "beta": sp.Rational(1, 2)}
    _passes(p)
    with pytest.raises(InputError, match=r"params\.nesterov\.beta"):
        cls.from_params({"beta": "11"})


# -- the same table, the same class --------------------------------------------------------------
def _fingerprint(p) -> list:
    return ([(k, sp.srepr(r.expr)) for k, r in p.results.items()]
            + [(c.claim, c.method, c.max_rel_error) for c in p.checks])


def test_equal_tables_give_classes_that_behave_alike(nesterov):
    again = map_problem("nesterov", dict(NESTEROV), WHERE)
    assert again is not type(nesterov)
    assert _fingerprint(again()) == _fingerprint(nesterov)
    assert again.TABLE == NESTEROV and again.key == "nesterov"
    assert again.title == "Nesterov momentum"


def test_the_class_is_rebuilt_alike_in_another_process(nesterov):
    code = ("from derive.problems.momentum.defined import map_problem\n"
            f"p = map_problem('nesterov', {NESTEROV!r}, 'w')()\n"
            "import sympy as sp\nprint(repr([(k, sp.srepr(r.expr)) for k, r in "
            "p.results.items()]))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == repr([(k, sp.srepr(r.expr)) for k, r in nesterov.results.items()])


# -- every mistake is one line -------------------------------------------------------------------
E = WHERE + ".equations"
BAD = [
    ({"state": ["x"], "equations": ["x' = x"], "bias": []},
     f"{WHERE}.bias: unknown key; allowed are kind, title, state, constants, step, equations"),
    ({"equations": ["x' = x"]}, f"{WHERE}.state: expected 1 to 8 names"),
    ({"state": "x", "equations": ["x' = x"]}, f"{WHERE}.state: expected a list of names"),
    ({"state": ["x"], "constants": ["x"], "equations": ["x' = x"]},
     f"{WHERE}: 'x' is declared as a state and a constant; a name has one role"),
    ({"state": ["tanh"], "equations": ["x' = x"]},
     f"{WHERE}.state: 'tanh' is not allowed as a name; use a letter then letters, digits or "
     "_, at most 32, not a function's name nor one of D, H, I, grad, k, H_1, H_2, ..., d_1, "
     "d_2, ..."),
    ({"state": ["d_2"], "equations": ["x' = x"]},
     f"{WHERE}.state: 'd_2' is not allowed as a name; use a letter then letters, digits or "
     "_, at most 32, not a function's name nor one of D, H, I, grad, k, H_1, H_2, ..., d_1, "
     "d_2, ..."),
    ({"state": ["x", "x"], "equations": ["x' = x"]},
     f"{WHERE}.state: a name may appear only once"),
    ({"state": ["x"], "equations": []},
     f"{E}: expected a list of 1 to 32 updates"),
    ({"state": ["x"], "title": "", "equations": ["x' = x"]},
     f"{WHERE}.title: expected a text of 1 to 120 characters"),
    ({"state": ["x"], "equations": ["x' = y"]},
     f"{E}[0]: column 6: 'y' is not declared; allowed are x, a state's updated value x' and "
     "grad(J)(...)"),
    ({"state": ["x", "p"], "equations": ["x' = x"]},
     f"{E}: the state 'p' is never updated; write an update p' = ..."),
    ({"state": ["x"], "equations": ["x' = x", "x' = 2*x'"]},
     f"{E}[1]: column 1: the state 'x' is updated twice; each state is updated once"),
    ({"state": ["x", "p"], "equations": ["x' = x + p'", "p' = p"]},
     f"{E}[0]: column 10: p' is read before the update that assigns it; an update may read "
     "only earlier updates' values"),
    ({"state": ["x"], "equations": ["x' = x' + 1"]},
     f"{E}[0]: column 6: x' is read before the update that assigns it; an update may read "
     "only earlier updates' values"),
    ({"state": ["x", "p"], "equations": ["p' = p + x", "x' = x + p"]},
     f"{E}[1]: column 10: 'p' is read after p' is assigned; an update sees the state as "
     "earlier updates left it: write p'"),
    ({"state": ["x"], "constants": ["c"], "equations": ["x' = c + 1"]},
     f"{E}[0]: the update of 'x' reads no state; it must read one of x or an updated value"),
    ({"state": ["x"], "constants": ["c"], "equations": ["c' = x"]},
     f"{E}[0]: column 1: c' = ...: 'c' is not a state; states are x"),
    ({"state": ["x"], "constants": ["c"], "equations": ["x' = c'*x"]},
     f"{E}[0]: column 6: c': only a state has an updated value; states are x"),
    ({"state": ["x"], "equations": ["x' = softmax(x)"]},
     f"{E}[0]: column 6: unknown function 'softmax'; allowed are sigma, tanh, sech, relu, "
     "step, softplus, exp, log, sqrt, identity"),
    ({"state": ["x"], "equations": ["x' = grad(J)(x) + grad(L)(x)"]},
     f"{E}[0]: column 24: grad(L): a map has one objective, here J"),
    ({"state": ["x"], "equations": ["x' = grad(x)(x)"]},
     f"{E}[0]: column 11: grad(x): 'x' is declared as a state or constant; grad takes the "
     "objective's name, as in grad(J)"),
    ({"state": ["x"], "equations": ["x' = x +"]},
     f"{E}[0]: column 8: unexpected end of the equation; expected grad, (, -, a name, a "
     "number"),
    ({"state": ["x"], "equations": ["x' = x $ 2"]},
     f"{E}[0]: column 8: unexpected character '$'; allowed are names, numbers, + - * / ^, "
     "brackets, x' and grad(J)(...)"),
    ({"state": ["x"], "equations": ["x = x"]},
     f"{E}[0]: column 3: unexpected '='; expected '"),
    ({"state": ["x"], "constants": ["c"], "equations": ["x' = c @ x"]},
     f"{E}[0]: column 6: '@' has no meaning here: vectors multiply entry by entry and a "
     "constant scales them; write *"),
    ({"state": ["x"], "equations": ["x' = x^17"]},
     f"{E}[0]: column 8: power 17; at most 16"),
    ({"state": ["x"], "equations": ["x' = x/0"]},
     f"{E}[0]: column 8: division by zero"),
    ({"state": ["x"], "equations": ["x' = " + "(" * 17 + "x" + ")" * 17]},
     f"{E}[0]: brackets nested 17 deep; at most 16"),
    ({"state": ["x"], "equations": ["x' = " + "x + " * 100 + "x"]},
     f"{E}[0]: expected an equation of 1 to 400 characters"),
    ({"state": ["x"], "equations": [3]},
     f"{E}[0]: expected an equation of 1 to 400 characters"),
    ({"state": ["x"], "equations": ["x' = x" + " - grad(J)(x)" * (MAX_GRADS + 1)]},
     f"{E}[0]: column {6 + 13 * MAX_GRADS + 9}: more than {MAX_GRADS} gradients in one map"),
]


@pytest.mark.parametrize(("table", "message"), BAD, ids=[m.split(": ", 1)[-1][:40]
                                                         for _, m in BAD])
def test_every_mistake_is_one_line_naming_where_and_what(table, message):
    with pytest.raises(InputError) as err:
        map_spec("m", table, WHERE)
    assert str(err.value) == message and "\n" not in str(err.value)


def test_a_map_table_that_is_no_table_is_refused():
    with pytest.raises(InputError, match=r"^set\.toml: models\.m: expected a table"):
        map_spec("m", ["x' = x"], WHERE)  # type: ignore[arg-type]


# -- rendering -----------------------------------------------------------------------------------
def test_the_key_prints_the_derivation_and_the_handout_only_the_question(nesterov):
    tex = key_tex(nesterov)
    assert r"\beta p^{(k)} - \alpha \nabla J(\theta^{(k)} + \beta p^{(k)})" in tex
    assert r"\beta^{D} \det(I - \alpha H)" in tex
    assert "inverse function theorem" in tex
    handout = key_tex(nesterov, handout=True)
    assert "Hessian" not in handout and "Solution" not in handout
    assert "Find" in handout


@pytest.mark.pdf
def test_the_key_compiles_without_an_overfull_box():
    from derive.render.document import render
    from derive.render.latex import Notation
    from derive.render.pdf import overfull_boxes, typeset_with_log
    from derive.sets import ProblemSet

    # Every way part (a) ends: explicit, only for positive entries, implicit, lost, several.
    tables = {"nesterov": NESTEROV, "flow": FLOW, "root": ONE_STATE("x' = sqrt(x)"),
              "forgets": FORGETS, "square": ONE_STATE("x' = c*x^2")}
    problems = [map_problem(k, t, WHERE)() for k, t in tables.items()]
    pset = ProblemSet("key", "Key", "Course", "test", tuple(tables), Notation())
    for handout in (False, True):
        pdf, log = typeset_with_log(render(pset, problems, handout=handout))
        assert pdf.startswith(b"%PDF") and overfull_boxes(log, 1.0) == []


@pytest.mark.parametrize("table", [NESTEROV, FLOW], ids=["nesterov", "flow"])
def test_the_key_prints_only_results_and_spells_only_its_symbols(table):
    from test_problems import unbacked_numbers
    from test_texgate import _printed_names

    p = map_problem("m", table, WHERE)()
    assert not unbacked_numbers(p)
    assert _printed_names(p) == type(p).symbols()


def test_a_map_table_in_a_set_builds_through_model_class_and_pickles(nesterov):
    import pickle

    from derive.model.defined import model_class

    cls = model_class("nesterov", NESTEROV, WHERE)
    assert cls is model_class("nesterov", dict(NESTEROV), WHERE)
    back = pickle.loads(pickle.dumps(cls))
    assert back.key == "nesterov" and back.TABLE == NESTEROV
    assert _fingerprint(back()) == _fingerprint(nesterov)


def test_the_exports_sympy_text_reads_back_in_a_fresh_process():
    from derive.export import srepr

    p = map_problem("flow", FLOW, WHERE)()
    texts = {k: srepr(r.expr) for k, r in p.results.items()}
    code = ("import sys, json\nfrom derive.export import from_export, srepr\n"
            "texts = json.loads(sys.stdin.read())\n"
            "print(all(srepr(from_export(t)) == t for t in texts.values()))\n")
    import json

    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, input=json.dumps(texts),
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"


#: Four states, four constants, gradients at two points, long elementwise updates.
LONG = {
    "title": "A long map", "state": ["w", "x", "y", "z"],
    "constants": ["alpha", "beta", "gamma", "delta"],
    "equations": [
        "w' = beta*w - alpha*grad(J)(x + gamma*y - delta*z + beta*w) + tanh(x*y)*sigma(z)",
        "x' = x + w'*exp(-gamma*y) + softplus(z - w')^2",
        "y' = y*exp(tanh(alpha*x' + beta*w')) + delta*grad(J)(x' - y*z)",
        "z' = z + sigma(y' + x'*w')*tanh(gamma*y' - delta*x')",
    ],
}


@pytest.mark.pdf
@pytest.mark.slow
def test_a_long_map_passes_and_stays_in_the_text_block():
    from derive.render.document import render
    from derive.render.latex import Notation
    from derive.render.pdf import overfull_boxes, typeset_with_log
    from derive.sets import ProblemSet

    p = map_problem("long", LONG, WHERE)()
    _passes(p)
    assert sum(isinstance(d, DiagOf) for d in p.diagonals) == 14 and len(p.hessians) == 2
    pset = ProblemSet("key", "Key", "Course", "test", ("long",), Notation())
    for handout in (False, True):
        _, log = typeset_with_log(render(pset, [p], handout=handout))
        assert overfull_boxes(log, 1.0) == []


def test_a_power_of_a_registry_function_prints():
    from derive.engine.functions import sigma, softplus

    z = sp.Symbol("z")
    assert sp.latex(softplus(z) ** 2) == r"\left(\operatorname{softplus}\left(z\right)\right)^{2}"
    assert sp.latex(sigma(z) ** 3) == r"\left(\sigma\left(z\right)\right)^{3}"


def test_the_map_written_out_entry_by_entry_checks_the_blocks_exactly(nesterov):
    from derive.problems.momentum.map_instances import instance_claims

    route = "symbolic: against the map written out entry by entry and differentiated"
    assert {c.claim for c in nesterov.checks if c.method == route} == {
        "jacobian_factors", "jacobian"}
    # A factor that misses the lookahead's -alpha beta H (momentum's, not Nesterov's) fails.
    f2 = nesterov.factors[1]
    wrong = sp.BlockMatrix([[sp.Identity(D), sp.ZeroMatrix(D, D)],
                            [-alpha * H, beta * sp.Identity(D)]])
    r = nesterov.results
    found = {c.key: c.measure() for c in instance_claims(
        nesterov.SPEC, [wrong, f2], r["jacobian"].expr, [beta**D, sp.Integer(1)], beta**D,
        nesterov.hessians)}
    assert found["jacobian_factors"] > 0 and found["det_jacobian"] > 0
    assert found["jacobian"] == 0  # the product given was the right one


def test_a_map_with_a_root_is_checked_by_the_numeric_routes():
    """RMSProp's sqrt(v' + 1): written out entry by entry, its exact zero tests took
    minutes, so the numeric routes alone check it."""
    rmsprop = {"kind": "map", "title": "RMSProp", "state": ["w", "v"],
               "constants": ["lr", "rho"],
               "equations": ["v' = rho*v + (1 - rho)*grad(J)(w)^2",
                             "w' = w - lr*grad(J)(w)/sqrt(v' + 1)"]}
    problem = map_problem("rmsprop", rmsprop, WHERE)()
    _passes(problem)
    assert not any(c.method.startswith("symbolic: against the map") for c in problem.checks)


def test_a_map_without_an_objective_names_none_in_its_evidence():
    problem = map_problem("flow", {"kind": "map", **FLOW}, WHERE)()
    assert problem.checks and all("J" not in c.sizes for c in problem.checks)


def test_a_constant_named_by_a_word_prints_upright():
    """lr is a name, not the product l r: upright; Greek names and single letters are not."""
    from derive.render.latex import KeyPrinter, Notation

    printer = KeyPrinter(Notation())
    # and a thin space keeps it apart from the factor beside it
    assert printer.doprint(sp.Symbol("lr") * sp.Symbol("x")) in (r"\mathrm{lr}\, x",
                                                                    r"x\, \mathrm{lr}")
    assert printer.doprint(sp.Symbol("rho")) == r"\rho"
    assert printer.doprint(sp.Symbol("b1")) == "b_{1}"
