"""Numeric evaluation of the derived equations: accuracy near saturation, and checks that
stay linear in the sequence length.

* sigma and sech in float64 against mpmath at 50 digits, over the whole float range;
* the stable forms of sigma' and tanh' against the printed forms, on saturated weights,
  both measured against a 60-digit mpmath reference (the printed forms lose digits there,
  the stable ones must not);
* the compiled univariate forward pass against the same cell evaluated at 50 digits;
* direction probes of long sequences: they agree with entry probes where both run, and
  they catch an adjoint that is wrong at one step of 200.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import sympy as sp
from sympy.core.function import AppliedUndef

import derive.engine.numeric as numeric
from derive.engine.cell import Cell
from derive.engine.functions import FUNCTIONS, sigma
from derive.engine.numeric import ScalarSweep, forward, loss, stable_forms
from derive.errors import InputError
from derive.problems.gru import gru_cell
from derive.problems.lstm import lstm_cell
from derive.verify import rel_error
from derive.verify.gradcheck import (
    EXHAUSTIVE_T,
    Case,
    _error,
    _scalars,
    check_case,
    derived,
    make_data,
    probes,
    reference,
)

LSTM = lstm_cell()
GRU = gru_cell()
np_sigma = FUNCTIONS["sigma"].numpy
np_sech = FUNCTIONS["sech"].numpy


# -- the elementwise functions -------------------------------------------------------------
ZS = [-745.0, -700.0, -60.0, -30.0, -10.0, -1.0, -1e-8, 0.0, 1e-8, 1.0, 10.0, 30.0, 700.0]


def _exact(fn, z: float) -> float:
    with mpmath.workdps(50):
        return float(fn(mpmath.mpf(z)))


@pytest.mark.parametrize("form", ["scalar", "array"])
def test_sigma_keeps_relative_accuracy_on_both_sides(form):
    """A closed gate (sigma near 0) keeps every digit: 0.5*(1 + tanh(z/2)) would lose them."""
    want = [_exact(lambda z: 1 / (1 + mpmath.exp(-z)), z) for z in ZS]
    got = [np_sigma(z) for z in ZS] if form == "scalar" else list(np_sigma(np.array(ZS)))
    assert rel_error(got, want, floor=0.0) <= 2.5e-16
    # The old form, for contrast: sigma(-30) loses about 3 of 16 digits.
    old = 0.5 * (1.0 + np.tanh(0.5 * np.array(ZS)))
    assert rel_error(old, want, floor=0.0) > 1e-4


@pytest.mark.parametrize("form", ["scalar", "array"])
def test_sech_has_no_overflow_and_full_accuracy(form):
    zs = [z for z in ZS if abs(z) < 700]  # beyond, sech is subnormal: no relative accuracy
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        got = [np_sech(z) for z in ZS] if form == "scalar" else list(np_sech(np.array(ZS)))
    want = [_exact(mpmath.sech, z) for z in zs]
    assert (
        rel_error([g for g, z in zip(got, ZS, strict=True) if abs(z) < 700], want, 0.0) <= 4.5e-16
    )
    assert got[0] <= 1e-300 and got[-1] <= 1e-300


@pytest.mark.parametrize(
    "fn,exact", [(np_sigma, lambda z: 1 / (1 + mpmath.exp(-z))), (np_sech, mpmath.sech)]
)
def test_complex_step_through_the_functions(fn, exact):
    """Both halves of each function are analytic: a complex step gives the derivative."""
    for z in (-40.0, -3.0, 0.5, 25.0):
        for value in (fn(complex(z, 1e-30)), fn(np.array([complex(z, 1e-30)]))[0]):
            with mpmath.workdps(50):
                slope = float(mpmath.diff(exact, mpmath.mpf(z)))
            assert abs(value.imag / 1e-30 - slope) <= 1e-14 * abs(slope)


def test_far_left_complex_sigma_is_finite():
    z = np.array([-800 + 1e-30j, -20 + 1e-30j])
    got = np_sigma(z)
    assert np.all(np.isfinite(got)) and got[0] == 0


# -- stable forms ------------------------------------------------------------------------------
def test_stable_forms_leave_no_cancelling_factor():
    """Every 1 - u (u a sigma gate) and 1 - g^2 (tanh) is rewritten; nothing else changes."""
    adj = numeric.Adjoints(LSTM)
    outs = numeric.sweep_outputs(adj)
    gates = {u.name for u, e in LSTM.assignments if isinstance(e, sigma | sp.tanh)}
    for e in outs.values():
        for add in e.atoms(sp.Add):
            for a in add.atoms(AppliedUndef):
                assert not (a.func.__name__ in gates and add in (1 - a, 1 - a**2)), add
            for th in add.atoms(sp.tanh):
                assert add != 1 - th**2
    # Equal as formulas: with every gate replaced by its definition, both forms agree at
    # random points to 40 digits.
    rng = np.random.default_rng(3)
    for a in [*adj.variables.values(), *adj.params.values()]:
        e = a.expr.function if isinstance(a.expr, sp.Sum) else a.expr
        diff = _defined(stable_forms(LSTM, e)) - _defined(e)
        atoms = diff.atoms(AppliedUndef) | (diff.free_symbols - {numeric.t})
        point = {s: sp.Float(rng.uniform(-2, 2), 50) for s in atoms}
        assert abs(diff.xreplace(point).rewrite(sp.exp).evalf(50)) < 1e-40


def _defined(e: sp.Expr) -> sp.Expr:
    """``e`` with every gate u(t+k) replaced by its right-hand side at step t+k."""
    sub = {}
    for a in e.atoms(AppliedUndef):
        u = sp.Symbol(a.func.__name__)
        if u in LSTM.variables and isinstance(LSTM.rhs(u), sigma | sp.tanh):
            sub[a] = LSTM.rhs(u).xreplace(LSTM.at_step(int(a.args[0] - numeric.t)))
    return e.xreplace(sub)


def _mp_reference(cell, case):
    """dL/d(every claim) at 50 digits by the derived equations (shown accurate to 1e-30 by
    derive check), rounded to float64 only at the end."""
    data = make_data(cell, case)
    with mpmath.workdps(50):
        got = derived(cell, case, data, "mpmath")
        return data, {k: np.array([float(x) for x in np.ravel(v)]) for k, v in got.items()}


@pytest.mark.parametrize("cell", [LSTM, GRU], ids=["lstm", "gru"])
@pytest.mark.parametrize("n_h", [None, 3])
def test_saturated_gradients_keep_float64_accuracy(cell, n_h):
    """Weights up to 10, three seeds: every adjoint and gradient within 5e-13 of its value
    at 50 digits (measured worst 1.9e-13: what the float64 trajectory itself carries; the
    printed forms with the old sigma gave 2.6e-12 on seed 57)."""
    worst = 0.0
    for seed in (57, 58, 59):
        case = Case(20, n_h, 2 if n_h else None, scale=10, seed=seed)
        data, want = _mp_reference(cell, case)
        got = derived(cell, case, data)
        worst = max(worst, *(rel_error(got[k], want[k]) for k in want))
    assert worst <= 5e-13


#: Scalar LSTM weights that open the input gate and the candidate wide (z = 14 at x = 2):
#: 1 - i and 1 - g^2 are then about 1e-6 and 3e-12, far below the rounding of i and g.
OPEN = {"w_ix": 7.0, "w_ih": 0.1, "w_gx": 7.0, "w_gh": 0.1}
OPEN_CLAIMS = ("w_ix_bar", "w_gx_bar", "w_ih_bar", "w_gh_bar")


def _open_case():
    case = Case(3, seed=1)
    data = make_data(LSTM, case)
    data.params.update({k: np.array([[v]]) for k, v in OPEN.items()})
    data.inputs["x"] = [np.array([[2.0]])] * case.T
    with mpmath.workdps(50):
        mp = derived(LSTM, case, data, "mpmath")
        want = {k: np.array([float(x) for x in np.ravel(mp[k])]) for k in OPEN_CLAIMS}
    return case, data, want


def test_stable_forms_keep_the_digits_of_a_wide_open_gate():
    case, data, want = _open_case()
    got = derived(LSTM, case, data)
    assert max(rel_error(got[k], want[k]) for k in OPEN_CLAIMS) <= 1e-14


def test_printed_forms_would_lose_them(monkeypatch):
    """The same numbers through the printed forms (u(1 - u), 1 - g^2): digits are lost."""
    case, data, want = _open_case()
    cell = lstm_cell()  # a fresh cell: its compiled sweep is made with the patch in place
    monkeypatch.setattr(numeric, "stable_forms", lambda c, e: e)
    got = derived(cell, case, data)
    assert max(rel_error(got[k], want[k]) for k in OPEN_CLAIMS) > 1e-11


# -- the compiled forward pass -----------------------------------------------------------------
@pytest.mark.parametrize("cell", [LSTM, GRU], ids=["lstm", "gru"])
def test_compiled_forward_matches_fifty_digits(cell):
    case = Case(40, scale=3, seed=11)
    d = {k: _scalars(getattr(make_data(cell, case), k)) for k in ("params", "inputs", "initial")}
    fast = forward(cell, d["params"], d["inputs"], d["initial"])
    with mpmath.workdps(50):
        mp = {k: numeric_to_mp(v) for k, v in d.items()}
        slow = forward(cell, mp["params"], mp["inputs"], mp["initial"], "mpmath")
        for u in cell.variables:
            want = [float(np.asarray(v).item()) for v in slow[u.name]]
            assert rel_error(fast[u.name], want) <= 1e-13


def numeric_to_mp(v):
    if isinstance(v, dict):
        return {k: numeric_to_mp(x) for k, x in v.items()}
    if isinstance(v, list):
        return [mpmath.mpf(x) for x in v]
    return mpmath.mpf(v)


def test_perturbed_forward_adds_the_delta_after_the_assignment():
    """A perturbation of c at step 2 changes c(2) by exactly delta and nothing before it."""
    case = Case(4, seed=2)
    d = {k: _scalars(getattr(make_data(LSTM, case), k)) for k in ("params", "inputs", "initial")}
    base = forward(LSTM, d["params"], d["inputs"], d["initial"])
    moved = forward(LSTM, d["params"], d["inputs"], d["initial"], perturb={("c", 2): 0.25})
    assert moved["c"][2] == base["c"][2] + 0.25
    assert moved["h"][1] == base["h"][1] and moved["c"][1] == base["c"][1]
    assert moved["h"][2] != base["h"][2]


def test_loss_sums_steps_and_entries_but_keeps_the_batch():
    rng = np.random.default_rng(0)
    traj = {"h": [None, *[rng.normal(size=(5, 3, 1)) for _ in range(4)]]}
    a = [rng.normal(size=(3, 1)) for _ in range(4)]
    want = sum(np.sum(a[k] * traj["h"][k + 1], axis=(-2, -1)) for k in range(4))
    np.testing.assert_allclose(loss(traj, {"h": a}), want, rtol=1e-14)
    assert loss(traj, {"h": a}).shape == (5,)


# -- direction probes --------------------------------------------------------------------------
def test_direction_probes_only_beyond_the_exhaustive_length():
    short = Case(EXHAUSTIVE_T, seed=1)
    long = Case(EXHAUSTIVE_T + 1, seed=1)
    kinds_short = {p[1] for p in probes(LSTM, short, make_data(LSTM, short))}
    kinds_long = {p[1] for p in probes(LSTM, long, make_data(LSTM, long))}
    assert kinds_short == {"var", "input", "param", "initial"}
    assert kinds_long == {"var dir", "input dir", "param", "initial"}


def test_direction_probes_agree_with_entry_probes():
    """The projection of the entry-probed adjoints equals the direction probe's reference."""
    case = Case(20, seed=4)
    data = make_data(LSTM, case)
    entries = probes(LSTM, case, data)
    ref = reference(LSTM, data, entries, "complex step")
    r = np.random.default_rng(9).normal(size=(case.T, 1))
    direction = [("c_bar", "var dir", "c", 0, r)]
    by_direction = reference(LSTM, data, direction, "complex step")
    by_entries = r[:, 0] @ ref[[p[0] == "c_bar" for p in entries]]
    assert abs(by_direction[0] - by_entries) <= 1e-13 * np.abs(r[:, 0]) @ np.abs(
        ref[[p[0] == "c_bar" for p in entries]]
    )


def test_long_sequence_checks_pass_and_stay_tight():
    errors = check_case(LSTM, Case(300, seed=5), ("complex step", "central difference"))
    assert max(v for (_, m), v in errors.items() if m == "complex step") <= 1e-13
    assert max(v for (_, m), v in errors.items() if m == "central difference") <= 1e-6


def test_direction_probes_catch_one_wrong_step():
    """An adjoint off by 1e-9 (relative) at one step of 200 fails the complex-step row."""
    case = Case(200, seed=6)
    data = make_data(LSTM, case)
    plist = probes(LSTM, case, data)
    mine = [p for p in plist if p[0] == "g_bar"]
    ref = reference(LSTM, data, plist, "complex step")[[p[0] == "g_bar" for p in plist]]
    got = derived(LSTM, case, data)["g_bar"].copy()
    assert _error(got, ref, mine) <= 1e-13
    got[123] *= 1 + 1e-9
    assert _error(got, ref, mine) > 1e-12


# -- review findings: each once a silent wrong answer or a crash -----------------------------
def test_a_complex_entry_late_in_a_sequence_keeps_its_imaginary_part():
    """Complex-stepping x at step 3 through forward: the math fast path must not take it."""
    params = {p.name: 0.5 for p in LSTM.params}
    xs = list(np.linspace(0.1, 0.5, 5))
    base = forward(LSTM, params, {"x": xs}, {"h": 0.1, "c": 0.2})
    xs_c = list(xs)
    xs_c[2] += 1e-20j  # one NumPy complex among floats
    moved = forward(LSTM, params, {"x": xs_c}, {"h": 0.1, "c": 0.2})
    slope = np.imag(moved["h"][5]) / 1e-20
    # The derived sweep with the loss reading h(5) only gives the same derivative.
    loss_grads = {"h": [0.0, 0.0, 0.0, 0.0, 1.0]}
    g = ScalarSweep(numeric.Adjoints(LSTM)).run(base, params, loss_grads)
    assert slope != 0 and abs(slope - g.bars["x"][3]) <= 1e-14 * abs(slope)


def test_loss_of_plain_numbers_against_column_weights():
    traj = {"h": [0.0, 1.0, 2.0, 3.0]}
    weights = [np.ones((1, 1))] * 3
    assert loss(traj, {"h": weights}) == 6.0


def test_a_cell_symbol_named_like_a_perturbation_is_fine():
    x, h, hp, w, d = sp.symbols("delta_h h h_prev w v")
    cell = Cell("odd", (x,), (h,), {h: hp}, {w: "weight", d: "weight"},
                        ((h, sp.tanh(w * hp + d * x)),), (h,))  # fmt: skip
    params, xs = {"w": 0.3, "v": 0.7}, [0.1, 0.2]
    base = forward(cell, params, {"delta_h": xs}, {"h": 0.5})
    moved = forward(cell, params, {"delta_h": xs}, {"h": 0.5}, perturb={("h", 1): 0.25})
    assert moved["h"][1] == base["h"][1] + 0.25


def test_sech_complex_step_is_accurate_near_zero():
    for z in (0.0, 1e-8, -1e-3, 0.5):
        for value in (np_sech(complex(z, 1e-30)), np_sech(np.array([complex(z, 1e-30)]))[0]):
            slope = -float(mpmath.sech(z) * mpmath.tanh(z))
            assert abs(value.imag / 1e-30 - slope) <= 1e-15 + 1e-14 * abs(slope)


def test_grad_overflow_on_plain_floats_is_a_clear_error():
    """Python floats raise OverflowError where arrays give inf: the same clear error."""
    from derive.problems.gru import GRU

    p = GRU()
    data = {"weights": dict.fromkeys(p.weights, 0.5), "x": [1, 2], "h0": 1e200, "dL_dh": [1, 1]}
    with pytest.raises(InputError, match="overflows float64"):
        p.grad(data, backend="numpy")


def test_grad_auto_falls_back_to_numpy_when_c_has_no_form(monkeypatch):
    """A cell the C printer cannot print (ValueError) runs on NumPy under auto; c refuses."""
    import derive.grad as grad_command
    from derive.problems.lstm import LSTM

    def no_form(*args, **kwargs):
        raise ValueError("no C form for this cell")

    monkeypatch.setattr(grad_command, "native_gradient", no_form)
    p = LSTM()
    data = {"weights": dict.fromkeys(p.weights, 0.5), "x": [1, 2], "h0": 0, "c0": 0}
    data["dL_dh"] = [1, 1]
    assert p.grad(data)["backend"] == "numpy"
    with pytest.raises(InputError, match="--backend c"):
        p.grad(data, backend="c")
