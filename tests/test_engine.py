"""The engine's rules, each against a route that does not share its code.

* local partials against hand-written derivatives;
* the scalar adjoints against ``sympy.diff`` of the loss unrolled over a few steps (the
  slow route the engine exists to avoid, fine as an oracle for T <= 3);
* the vector form against the scalar form (all sizes 1) and against ``autograd``;
* the engine on a second cell (a GRU, written here as data) with no engine change;
* a deliberately wrong adjoint is caught by the gradient checks.
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
import pytest
import sympy as sp
from autograd import grad as autograd_grad
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

import derive.engine.adjoint as adjoint_module
from derive.engine.adjoint import Adjoints, local_partial
from derive.engine.cell import (
    Cell,
    VectorQuantity,
    bar,
    loss_grad,
    param_bar,
    quantity,
    t,
    timed,
)
from derive.engine.functions import sigma
from derive.engine.numeric import ScalarSweep, VectorSweep, forward
from derive.engine.vector import VectorAdjoints
from derive.errors import InputError
from derive.problems.gru import gru_cell
from derive.problems.lstm import WEIGHTS, lstm_cell
from derive.verify.gradcheck import Case, check_case, gradient_checks

LSTM = lstm_cell()


def sym(name: str) -> sp.Symbol:
    return sp.Symbol(name)


# -- local rules -------------------------------------------------------------------------------
def test_sigma_derivative_is_written_through_the_gate():
    i, w_ih = sym("i"), sym("w_ih")
    got = local_partial(LSTM, i, sym("h_prev"), 1)
    want = timed("i", 1) * (1 - timed("i", 1)) * w_ih  # by hand: sigma' = sigma (1 - sigma)
    assert sp.simplify(got - want) == 0


def test_tanh_derivative_is_written_through_the_gate():
    got = local_partial(LSTM, sym("g"), sym("x"), 0)
    assert sp.simplify(got - (1 - timed("g") ** 2) * sym("w_gx")) == 0


def test_tanh_of_cell_state_stays_explicit():
    # h = o tanh(c): no variable holds tanh(c), so 1 - tanh(c)^2 must remain.
    got = local_partial(LSTM, sym("h"), sym("c"), 0)
    assert sp.simplify(got - timed("o") * (1 - sp.tanh(timed("c")) ** 2)) == 0


def test_adjoint_terms_follow_the_consumers():
    adj = Adjoints(LSTM).variables
    assert adj["h"].loss_term == loss_grad("h")
    assert sorted((term.consumer.name, term.step) for term in adj["h"].terms) == [
        ("f", 1),
        ("g", 1),
        ("i", 1),
        ("o", 1),
    ]
    assert sorted((term.consumer.name, term.step) for term in adj["c"].terms) == [
        ("c", 1),
        ("h", 0),
    ]
    # By hand: bar f(t) = bar c(t) c(t-1).
    assert sp.simplify(adj["f"].expr - bar("c") * timed("c", -1)) == 0


def test_weight_gradient_matches_the_hand_derivation():
    got = Adjoints(LSTM).params["w_ix"].expr
    i = timed("i")
    want = sp.Sum(
        bar("i") * i * (1 - i) * timed("x"), (t, 1, sp.Symbol("T", integer=True, positive=True))
    )
    assert sp.simplify(got.function - want.function) == 0
    assert got.limits == want.limits


def test_limit_of_backward_map_matches_the_hand_argument(problems):
    # By hand: with f = 1, i = 0, o = 0, bar c(t) = bar c(t+1) and bar h(t) gets nothing
    # from step t+1, so the map (bar h, bar c)(t+1) -> (bar h, bar c)(t) is [[0, 0], [0, 1]].
    r = problems["lstm"].results
    assert r["backward_map_limit"].value == [[0, 0], [0, 1]]
    assert sp.simplify(r["c_bar_limit"].expr - bar("c", 1)) == 0
    assert sp.simplify(r["h_bar_limit"].expr - loss_grad("h")) == 0


def test_a_cell_reading_an_unassigned_symbol_is_rejected():
    x, h, hp, w = sp.symbols("x h h_prev w")
    with pytest.raises(InputError, match="reads z before it is assigned"):
        Cell("bad", (x,), (h,), {h: hp}, {w: "weight"}, ((h, sp.tanh(w * x + sym("z"))),), (h,))


# -- scalar adjoints against the unrolled recurrence --------------------------------------------
def unrolled_loss(steps: int):
    """L = sum a_t h_t with the LSTM written out over ``steps`` steps (SymPy)."""
    w = {n: sym(n) for n in WEIGHTS}
    xs = sp.symbols(f"x1:{steps + 1}")
    a = sp.symbols(f"a1:{steps + 1}")
    h, c = sym("h0"), sym("c0")
    total = 0
    for k in range(steps):
        i = sigma(w["w_ix"] * xs[k] + w["w_ih"] * h)
        f = sigma(w["w_fx"] * xs[k] + w["w_fh"] * h)
        o = sigma(w["w_ox"] * xs[k] + w["w_oh"] * h)
        g = sp.tanh(w["w_gx"] * xs[k] + w["w_gh"] * h)
        c = f * c + i * g
        h = o * sp.tanh(c)
        total += a[k] * h
    return total, w, xs, a


@pytest.mark.parametrize("steps", [1, 2, 3])
def test_scalar_adjoints_match_unrolled_diff(steps, rng):
    loss, w, xs, a = unrolled_loss(steps)
    values = {s: float(v) for s, v in zip(w.values(), rng.uniform(-1.5, 1.5, 8), strict=True)}
    values |= {s: float(v) for s, v in zip(xs, rng.normal(size=steps), strict=True)}
    values |= {s: float(v) for s, v in zip(a, rng.normal(size=steps), strict=True)}
    values |= {sym("h0"): 0.3, sym("c0"): -0.4}
    # Differentiate with sigma opaque (fast), then substitute numbers and only then write
    # sigma out: evaluating the numeric tree at 30 digits takes milliseconds.
    logistic = sp.Lambda(sym("z"), 1 / (1 + sp.exp(-sym("z"))))

    def at_values(e):
        return float(e.subs(values).replace(sigma, logistic).evalf(30))

    traj = forward(
        LSTM,
        {k.name: values[k] for k in w.values()},
        {"x": [values[s] for s in xs]},
        {"h": 0.3, "c": -0.4},
    )
    got = ScalarSweep(Adjoints(LSTM)).run(
        traj, {k.name: values[k] for k in w.values()}, {"h": [values[s] for s in a]}
    )
    for name, s in w.items():
        want = at_values(sp.diff(loss, s))
        assert got.params[name] == pytest.approx(want, rel=1e-11, abs=1e-14), name
    for name in ("h0", "c0"):
        want = at_values(sp.diff(loss, sym(name)))
        assert got.initial[name[0]] == pytest.approx(want, rel=1e-11, abs=1e-14), name


# -- the vector form ---------------------------------------------------------------------------
def to_scalar(e):
    """A vector-form expression with every size 1, as a scalar expression."""
    if isinstance(e, VectorQuantity):
        if e.offset is None:  # a parameter, or its gradient
            return param_bar(e.name) if e.role == "adjoint" else sp.Symbol(e.name)
        return quantity(e.name, e.role, e.offset)
    if isinstance(e, sp.OneMatrix):
        return sp.S.One
    if isinstance(e, sp.Transpose):
        return to_scalar(e.arg)
    if isinstance(e, sp.MatMul | sp.HadamardProduct):
        return sp.Mul(*[to_scalar(a) for a in e.args])
    if isinstance(e, sp.MatAdd):
        return sp.Add(*[to_scalar(a) for a in e.args])
    if isinstance(e, sp.HadamardPower):
        return to_scalar(e.base) ** e.exp
    if isinstance(e, ElementwiseApplyFunction):
        return e.function.expr.func(to_scalar(e.expr))
    if e.is_Number:
        return e
    raise TypeError(type(e))


def test_vector_form_reduces_to_scalar_form():
    scalar = Adjoints(LSTM)
    vector = VectorAdjoints(LSTM)
    for name, adj in scalar.variables.items():
        assert sp.simplify(to_scalar(vector.variables[name]) - adj.expr) == 0, name
    for name, adj in scalar.params.items():
        assert sp.simplify(to_scalar(vector.params[name]) - adj.expr.function) == 0, name


def test_vector_shapes_are_stated():
    shapes = VectorAdjoints(lstm_cell(biases=True)).shapes()
    n_h, n_x = (
        sp.Symbol("n_h", integer=True, positive=True),
        sp.Symbol("n_x", integer=True, positive=True),
    )
    assert shapes["w_ix"] == (n_h, n_x)
    assert shapes["w_ih"] == (n_h, n_h)
    assert shapes["b_i"] == (n_h, 1)
    assert shapes["x"] == (n_x, 1)


def autograd_lstm_loss(params, xs, h0, c0, a):
    """The LSTM loss in autograd.numpy, written independently of the engine."""

    def sig(z):
        return 0.5 * (anp.tanh(0.5 * z) + 1.0)

    h, c, total = h0, c0, 0.0
    for x, ak in zip(xs, a, strict=True):
        i = sig(params["w_ix"] @ x + params["w_ih"] @ h + params["b_i"])
        f = sig(params["w_fx"] @ x + params["w_fh"] @ h + params["b_f"])
        o = sig(params["w_ox"] @ x + params["w_oh"] @ h + params["b_o"])
        g = anp.tanh(params["w_gx"] @ x + params["w_gh"] @ h + params["b_g"])
        c = f * c + i * g
        h = o * anp.tanh(c)
        total = total + anp.sum(ak * h)
    return total


@pytest.mark.parametrize("steps,n_h,n_x", [(1, 2, 3), (6, 3, 2), (20, 4, 4)])
def test_vector_adjoints_match_autograd(steps, n_h, n_x, rng):
    cell = lstm_cell(biases=True)
    params = {}
    for p in cell.params:
        cols = (n_x if p.name.endswith("x") else n_h) if p.name.startswith("w_") else 1
        params[p.name] = rng.uniform(-2, 2, (n_h, cols))
    xs = [rng.normal(size=(n_x, 1)) for _ in range(steps)]
    a = [rng.normal(size=(n_h, 1)) for _ in range(steps)]
    h0, c0 = rng.normal(size=(n_h, 1)), rng.normal(size=(n_h, 1))
    want = autograd_grad(autograd_lstm_loss)(params, xs, h0, c0, a)
    traj = forward(cell, params, {"x": xs}, {"h": h0, "c": c0})
    got = VectorSweep(VectorAdjoints(cell)).run(traj, params, {"h": a})
    for name in params:
        np.testing.assert_allclose(got.params[name], want[name], rtol=1e-10, atol=1e-13)
    want_h0 = autograd_grad(autograd_lstm_loss, 2)(params, xs, h0, c0, a)
    np.testing.assert_allclose(got.initial["h"], want_h0, rtol=1e-10, atol=1e-13)


# -- genericity: a GRU as data, no engine change -------------------------------------------------
def test_engine_differentiates_a_gru_written_as_data():
    cases = [
        Case(1, seed=1),
        Case(9, seed=2),
        Case(3, seed=3),
        Case(9, 3, 2, seed=4),
        Case(2, 2, 2, seed=5),
    ]
    rows = gradient_checks(gru_cell(), cases)
    assert {c.method for c in rows} == {
        "complex step",
        "central difference",
        "mpmath 50 digits",
        "float64 vs mpmath",
    }
    failed = [(c.claim, c.method, c.max_rel_error) for c in rows if not c.passed]
    assert not failed


# -- the checks can fail -----------------------------------------------------------------------
def test_gradient_checks_catch_a_wrong_adjoint(monkeypatch):
    real = adjoint_module.local_partial

    def wrong(cell, u, v, step):
        d = real(cell, u, v, step)
        # A classic slip: forgetting the forget gate on the cell-state path.
        return sp.S.One if (u.name, v.name) == ("c", "c_prev") else d

    monkeypatch.setattr(adjoint_module, "local_partial", wrong)
    errors = check_case(LSTM, Case(6, seed=3), ("complex step",))
    assert errors["c_bar", "complex step"] > 1e-3
    assert errors["w_ix_bar", "complex step"] > 1e-3


def test_a_wrong_limit_fails_its_checks(monkeypatch):
    import derive.problems.lstm as lstm_module

    monkeypatch.setattr(lstm_module, "LIMIT", {"f": 0, "i": 0, "o": 0})
    claims = lstm_module.LSTM().limit_claims()
    failed = {c.key for c in claims if not c.measure() <= c.tolerance}
    assert {"backward_map_limit", "c_bar_limit"} <= failed


def test_gru_grad_command_matches_autograd(rng):
    """derive grad gru (the generic parser and the derived vector sweep) against autograd."""
    from derive.problems import get_problem

    n_h, n_x, steps = 3, 2, 5
    shapes = {"w_zx": (n_h, n_x), "w_zh": (n_h, n_h), "w_rx": (n_h, n_x), "w_rh": (n_h, n_h)}
    shapes |= {"w_nx": (n_h, n_x), "w_nh": (n_h, n_h)}
    params = {k: rng.uniform(-1.5, 1.5, s) for k, s in shapes.items()}
    params |= {k: rng.normal(size=(n_h, 1)) for k in ("b_z", "b_r", "b_n")}
    xs = [rng.normal(size=(n_x, 1)) for _ in range(steps)]
    a = [rng.normal(size=(n_h, 1)) for _ in range(steps)]
    h0 = rng.normal(size=(n_h, 1))

    def loss(p, h):
        def sig(z):
            return 0.5 * (anp.tanh(0.5 * z) + 1.0)

        total = 0.0
        for x, ak in zip(xs, a, strict=True):
            z = sig(p["w_zx"] @ x + p["w_zh"] @ h + p["b_z"])
            r = sig(p["w_rx"] @ x + p["w_rh"] @ h + p["b_r"])
            n = anp.tanh(p["w_nx"] @ x + p["w_nh"] @ (r * h) + p["b_n"])
            h = (1 - z) * h + z * n
            total = total + anp.sum(ak * h)
        return total

    data = {
        "weights": {
            k: v.tolist() if k.startswith("w") else v.ravel().tolist() for k, v in params.items()
        },
        "x": [v.ravel().tolist() for v in xs],
        "h0": h0.ravel().tolist(),
        "dL_dh": [v.ravel().tolist() for v in a],
    }
    out = get_problem("gru").grad(data)
    want = autograd_grad(loss)(params, h0)
    for k in params:
        got = np.array(out["grad"][k]).reshape(want[k].shape)
        np.testing.assert_allclose(got, want[k], rtol=1e-10, atol=1e-13)
    want_h0 = autograd_grad(loss, 1)(params, h0)
    np.testing.assert_allclose(np.array(out["grad"]["h0"]), want_h0.ravel(), rtol=1e-10, atol=1e-13)


def test_a_check_with_numpy_numbers_exports_plain_json():
    """Errors computed by numpy must not leak np.float64/np.bool_ into the JSON export."""
    import json

    from derive.verify import Check

    row = Check("x", "m", "s", np.float64(1e-3), np.float64(1e-2)).as_dict()
    assert json.loads(json.dumps(row))["passed"] is True
    assert type(row["passed"]) is bool and type(row["max_rel_error"]) is float
    assert Check("x", "m", "s", np.float64(np.inf), 1.0).as_dict()["max_rel_error"] is None


# -- odd cells: names, constants, powers, edges --------------------------------------------------
def small_cell(rhs, names=("x", "h", "h_prev", "w", "v"), pre=()) -> Cell:
    """One state ``h = rhs`` (after the assignments ``pre``) over weights w, v and input x."""
    x, h, hp, w, v = map(sym, names)
    sub = dict(zip(map(sym, ("x", "h", "h_prev", "w", "v")), (x, h, hp, w, v), strict=True))
    assignments = (*((sym(u), e.xreplace(sub)) for u, e in pre), (h, rhs.xreplace(sub)))
    return Cell("small", (x,), (h,), {h: hp}, {w: "weight", v: "weight"}, assignments, (h,))


def test_a_symbol_named_like_a_function_does_not_hide_it():
    """A weight called ``sigma``, an input called ``exp``: the compiled code calls the
    functions, not the numbers (the forward step, the sweep and the initial adjoints)."""
    x, hp, w, v = map(sym, ("x", "h_prev", "w", "v"))
    rhs = sigma(w * hp + v * sp.exp(x))
    names = ("exp", "h", "h_prev", "sigma", "tanh")
    plain, odd = small_cell(rhs), small_cell(rhs, names)
    runs = []
    for cell, (nx, _, _, nw, nv) in ((plain, ("x", 0, 0, "w", "v")), (odd, names)):
        for wrap in (float, np.float64):  # math (plain floats) and NumPy
            p = {nw: wrap(0.4), nv: wrap(-0.8)}
            traj = forward(cell, p, {nx: [wrap(0.5), wrap(-1.0)]}, {"h": wrap(0.3)})
            g = ScalarSweep(Adjoints(cell)).run(traj, p, {"h": [1.0, -0.5]})
            runs.append([float(traj["h"][2]), float(g.params[nw]), float(g.initial["h"])])
    np.testing.assert_allclose(runs[2:], runs[:2], rtol=1e-15)


def test_the_mpmath_forward_pass_keeps_rational_constants_exact():
    import mpmath

    from derive.verify.interpret import Interpreter

    x, hp, w, v = map(sym, ("x", "h_prev", "w", "v"))
    cell = small_cell(sp.tanh(w * hp + v * x) / 3 + sp.Rational(1, 7))
    with mpmath.workdps(50):
        p = {"w": mpmath.mpf("0.5"), "v": mpmath.mpf("0.25")}
        xs, h0 = {"x": [mpmath.mpf(1), mpmath.mpf(-2)]}, {"h": mpmath.mpf("0.125")}
        traj = forward(cell, p, xs, h0, "mpmath")
        rows = Interpreter(cell).run(p, xs, h0)
        for k in (1, 2):
            assert abs(np.asarray(traj["h"][k]).item() - rows[k - 1]["h"]) < 1e-45


def test_math_on_plain_floats_gives_what_numpy_gives():
    """exp(800), log of a negative number, 1/(2 sqrt(0)): inf and nan as NumPy, not an
    OverflowError, ValueError or ZeroDivisionError of ``math``."""
    from derive.engine.functions import relu

    x, hp, w, v = map(sym, ("x", "h_prev", "w", "v"))
    for rhs, xs in (
        (sp.exp(w * hp + v * x), [800.0, 1.0]),
        (sp.log(w * hp + v * x), [-5.0, 1.0]),
        (sp.sqrt(relu(w * hp + v * x)), [-5.0, 1.0]),
    ):
        cell, got = small_cell(rhs), []
        for wrap in (float, np.float64):
            p = {"w": wrap(0.5), "v": wrap(1.0)}
            with np.errstate(all="ignore"):
                traj = forward(cell, p, {"x": list(map(wrap, xs))}, {"h": wrap(0.5)})
                g = ScalarSweep(Adjoints(cell)).run(traj, p, {"h": [1.0, 1.0]})
            got.append([*map(float, traj["h"]), float(g.params["w"]), float(g.initial["h"])])
        np.testing.assert_equal(got[0], got[1])


def test_a_sqrt_assignment_is_written_through_its_variable():
    """sqrt'(p) of ``r = sqrt(p)`` reads r, in the scalar form as in the vector form."""
    x, hp, w, v, p, r = map(sym, ("x", "h_prev", "w", "v", "p", "r"))
    cell = small_cell(r * hp, pre=(("p", sigma(w * hp + v * x)), ("r", sp.sqrt(p))))
    assert Adjoints(cell).variables["p"].expr == bar("r") / (2 * timed("r"))
    assert not VectorAdjoints(cell).variables["p"].has(sp.sqrt(p))


@pytest.mark.parametrize("power", [sp.sqrt(2), sp.Integer(2)])
def test_a_constant_factor_or_integer_power_has_a_vector_form(power):
    """sqrt(2 p) = sqrt(2) sqrt(p): sqrt(2) is a coefficient; p**2 is a Hadamard power."""
    x, hp, w, v, p = map(sym, ("x", "h_prev", "w", "v", "p"))
    rhs = sp.sqrt(2 * p) * hp if power == sp.sqrt(2) else p**2 + hp
    cell = small_cell(rhs, pre=(("p", sigma(w * hp + v * x)),))
    errors = check_case(cell, Case(3, n_h=3, n_x=2, seed=4), ("complex step",))
    errors |= check_case(cell, Case(3, seed=4), ("complex step",))
    assert max(errors.values()) < 1e-12, errors


@pytest.mark.parametrize("rhs", [sym("p") ** sp.Rational(3, 2), 1 / sp.sqrt(sym("p"))])
def test_a_power_without_a_vector_form_says_so(rhs):
    x, hp, w, v = map(sym, ("x", "h_prev", "w", "v"))
    cell = small_cell(rhs * hp, pre=(("p", sigma(w * hp + v * x)),))
    with pytest.raises(InputError, match=r"no vector form for .*only integer ones and sqrt"):
        _ = VectorAdjoints(cell).variables
    column = np.ones((2, 1))
    with pytest.raises(InputError, match=r"no vector form for .*only integer ones and sqrt"):
        forward(cell, {"w": np.eye(2), "v": np.eye(2)}, {"x": [column]}, {"h": column})


def test_ranges_follow_monotone_functions_inside_their_domains():
    from derive.engine.functions import relu, step
    from derive.engine.intervals import Range, ranges

    x, hp, w, v = map(sym, ("x", "h_prev", "w", "v"))
    z = w * hp + v * x
    pre = (("a", relu(z)), ("b", step(z)), ("s", sp.sqrt(sym("a"))), ("p", sigma(z)))
    got = ranges(small_cell(sp.log(sym("p")) + hp, pre=pre))
    assert got[sym("a")] == Range(0, sp.oo, False, False)  # nondecreasing: ends closed
    assert got[sym("b")] == Range(0, 1, False, False)
    assert got[sym("s")] == Range(0, sp.oo, False, False)
    assert got[sym("h")] == Range(-sp.oo, sp.oo)
    with pytest.raises(InputError, match=r"log may be applied outside its domain"):
        ranges(small_cell(sp.log(w * x)))
    with pytest.raises(InputError, match=r"sqrt may be applied outside its domain"):
        ranges(small_cell(sp.sqrt(z)))


def test_only_saturating_functions_bound_a_worked_example():
    """A ReLU or exp of a large argument is no saturated gate; sigma(z) at |z| > 6 is."""
    from derive.engine.functions import relu
    from derive.example import Example
    from derive.example_run import ExampleRun

    x, hp, w, v = map(sym, ("x", "h_prev", "w", "v"))
    cell = small_cell(sp.exp(v * x) + relu(w * hp + v * x) + sigma(hp))
    given = Example({"w": sp.Integer(1), "v": sp.Integer(9)}, {"x": [sp.Integer(1)]},
                    {"h": sp.Rational(1, 2)}, {"h": [sp.Integer(1)]})
    run = ExampleRun(cell, given)
    assert [(k, name, gate) for k, name, gate, _ in run.arguments] == [(1, "h", False)]
    assert run.steepest == 0.5
    run.refuse_saturated_gates("here")
    gate = ExampleRun(small_cell(sigma(v * x)), given)
    with pytest.raises(InputError, match="the gate h saturates"):
        gate.refuse_saturated_gates("here")


def test_a_worked_example_with_a_third_passes_its_50_digit_check():
    """derived_deep (the derived equations at 50 digits) agrees with the 60-digit
    differences of the interpreted pass: no float64 1/3 in the mpmath forward pass."""
    from derive.example import Example
    from derive.example_run import ExampleRun

    x, hp, w, v = map(sym, ("x", "h_prev", "w", "v"))
    cell = small_cell(sp.tanh(w * hp + v * x) / 3)
    given = Example({"w": sp.Rational(1, 2), "v": sp.Rational(-3, 4)},
                    {"x": [sp.Integer(1), sp.Rational(1, 2)]},
                    {"h": sp.Rational(1, 4)}, {"h": [sp.Integer(1), sp.Integer(-2)]})
    run, probes = ExampleRun(cell, given), [("w", "w"), ("w", "v"), (1, "h")]
    for got, want in zip(run.derived_deep(probes), run.deep_differences(probes), strict=True):
        assert abs(got - want) < 1e-25 * max(1, abs(want)), (got, want)
