"""The dropout and init problems: derivations against hand-written references, claims that
catch wrong formulas, the command line's eval (numbers and one-line errors), and the keys.

References here are written out by hand or computed by brute force in the test; none comes
from the code under test.
"""

from __future__ import annotations

import itertools
import json
import math
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp
from conftest import eval_json, key_tex

from derive.errors import InputError
from derive.problems import REGISTRY
from derive.problems.dropout import claims as dc
from derive.problems.init_variance import algebra as ia
from derive.problems.init_variance import claims as ic

p, x, s = sp.Symbol("p", positive=True), sp.Symbol("x_i", real=True), sp.Symbol("s", positive=True)
m, ybar = sp.Symbol("m_i", nonnegative=True), sp.Symbol("ybar_i", real=True)
n_in, n_out = sp.symbols("n_in n_out", positive=True, integer=True)
sigma = sp.Symbol("sigma", positive=True)


@pytest.fixture(scope="module")
def dropout():
    return REGISTRY["dropout"]()


@pytest.fixture(scope="module")
def init():
    return REGISTRY["init"]()


def _zero(expr) -> bool:
    return sp.simplify(sp.expand(expr)) == 0


# -- dropout: derivation ---------------------------------------------------------------------
def test_dropout_formulas_are_the_textbook_ones(dropout):
    f = {k: r.expr for k, r in dropout.results.items()}
    expected = {
        "mask_mean": 1 - p, "mask_square": 1 - p, "mean_general": s * (1 - p) * x,
        "scale": 1 / (1 - p), "mean": x, "second_moment": x**2 / (1 - p),
        "variance": p * x**2 / (1 - p), "backward": m * ybar / (1 - p),
        "plain_mean": (1 - p) * x, "test_scale": 1 - p,
    }
    for key, want in expected.items():
        assert _zero(f[key] - want), key


def test_dropout_numbers_follow_p():
    problem = REGISTRY["dropout"].from_params({"p": "1/5"})
    assert problem.results["scale_value"].expr == sp.Rational(5, 4)
    assert problem.results["variance_factor"].expr == sp.Rational(1, 4)


def test_dropout_results_are_written_over_the_keep_probability(dropout):
    # 1 - p, never -1 + p or p - 1, in what the key prints.
    from derive.render.latex import KeyPrinter, Notation

    printer = KeyPrinter(Notation())
    assert printer.doprint(dropout.results["variance"].expr) == r"\frac{p x_{i}^{2}}{1 - p}"
    assert "-1 + p" not in printer.doprint(dropout.results["backward"].expr)


def _brute_moments(xs, q, scale):
    """E[y], E[y^2] per entry by summing over every mask (written independently)."""
    n = len(xs)
    ey, ey2 = [Fraction(0)] * n, [Fraction(0)] * n
    for mask in itertools.product((False, True), repeat=n):
        w = Fraction(1)
        for kept in mask:
            w *= (1 - q) if kept else q
        for i, kept in enumerate(mask):
            y = scale * xs[i] if kept else Fraction(0)
            ey[i] += w * y
            ey2[i] += w * y * y
    return ey, ey2


def test_enumeration_agrees_with_a_brute_force_sum():
    xs, q = (Fraction(3, 2), Fraction(-2), Fraction(1, 7)), Fraction(2, 7)
    got = dc.enumerate_moments(xs, q, Fraction(7, 5))
    ey, ey2 = _brute_moments(xs, q, Fraction(7, 5))
    assert got["y"] == ey and got["y2"] == ey2
    assert got["m"] == [Fraction(5, 7)] * 3


def test_every_dropout_claim_passes_and_names_no_library(dropout):
    assert dropout.checks and all(c.passed for c in dropout.checks)
    routes = {c.method.split(":")[0] for c in dropout.checks}
    assert {"exact enumeration over every mask", "sampling", "complex step",
            "central difference"} <= routes
    for c in dropout.checks:
        assert not any(w in (c.method + c.sizes).lower() for w in ("numpy", "sympy", "mpmath"))


def test_a_wrong_dropout_variance_is_caught(dropout):
    # Forgetting to subtract the squared mean: E[y^2] passed off as the variance.
    f = {**dropout.formulas, "variance": x**2 / (1 - p)}
    enum = {c.key: c.measure() for c in dc.enumeration_claims(f, Fraction(1, 2), 4)}
    assert enum["variance"] > 0 and enum["mean"] == 0
    sampled = {c.key: c.measure() for c in dc.sampling_claims(f, Fraction(1, 5), 2)}
    assert sampled["variance"] > dc.SAMPLING_SIGMAS


def test_a_wrong_scale_and_backward_are_caught(dropout):
    f = {**dropout.formulas, "scale": 1 - p}  # scaling by the keep probability instead
    enum = {c.key: c.measure() for c in dc.enumeration_claims(f, Fraction(1, 3), 3)}
    assert enum["scale"] > 0
    wrong = [c.measure() for c in dc.backward_claims(m * ybar, Fraction(1, 2))]  # scale lost
    assert min(wrong) > 0.1


def test_sample_sizes_grow_for_rare_outcomes():
    assert dc.samples(Fraction(1, 2)) == 100_000
    assert dc.samples(Fraction(1, 1000)) == 10**6 and dc.samples(Fraction(999, 1000)) == 10**6


# -- dropout: derive eval --------------------------------------------------------------------
def test_dropout_eval_matches_an_independent_forward_and_backward(capsys, tmp_path):
    xs = [[1.0, -2.0, 3.0], [0.5, 4.0, -1.5]]
    mask = [[True, False, True], [False, True, True]]
    dout = [[1.0, 2.0, -1.0], [3.0, 0.5, 2.0]]
    status, out, err = eval_json("dropout", {"x": xs, "p": 0.25, "mask": mask, "dout": dout},
                                 capsys, tmp_path)
    assert status == 0 and err == ""
    got = json.loads(out)
    keep = np.array(mask, dtype=float)
    assert np.allclose(got["out"], keep * np.array(xs) / 0.75, rtol=1e-15)
    assert np.allclose(got["grad"]["x"], keep * np.array(dout) / 0.75, rtol=1e-15)


def test_dropout_eval_takes_any_shape_and_defaults_dout_to_ones(capsys, tmp_path):
    xs = [[[1.0, 2.0]], [[3.0, 4.0]]]  # 2x1x2
    mask = [[[True, True]], [[False, True]]]
    status, out, _ = eval_json("dropout", {"x": xs, "p": 0, "mask": mask}, capsys, tmp_path)
    got = json.loads(out)
    assert status == 0
    assert got["out"] == [[[1.0, 2.0]], [[0.0, 4.0]]]
    assert got["grad"]["x"] == [[[1.0, 1.0]], [[0.0, 1.0]]]


@pytest.mark.parametrize(("data", "message"), [
    ({"x": [[1, 2, 3], [4, 5, 6]], "p": 0.5, "mask": [[True, False], [True, True], [False, True]]},
     "input.mask: expected the shape of x, 2×3, got 3×2"),
    ({"x": [1, 2], "p": 1, "mask": [True, True]}, "input.p: expected a number in [0, 1), got 1"),
    ({"x": [1, 2], "p": "0.5", "mask": [True, True]}, "input.p: expected a number in [0, 1)"),
    ({"x": [1, 2], "p": -0.1, "mask": [True, True]}, "input.p: expected a number in [0, 1)"),
    ({"x": [[1, 2], [3]], "p": 0.5, "mask": [[True, True], [True]]},
     "input.x[1]: ragged array; expected 2 entries, got 1 entries"),
    ({"x": [1, "2"], "p": 0.5, "mask": [True, True]}, "input.x[1]: expected a finite number"),
    ({"x": [1, 2], "p": 0.5, "mask": [True, 1]}, "input.mask[1]: expected true (kept) or false"),
    ({"x": [1, 2], "p": 0.5, "mask": [True, True], "dout": [1]},
     "input.dout: expected the shape of x, 2, got 1"),
    ({"x": [], "p": 0.5, "mask": []}, "input.x: expected a non-empty list"),
    ({"x": 3, "p": 0.5, "mask": True}, "input.x: expected an array as nested lists"),
    ({"p": 0.5, "mask": [True]}, "input: missing key 'x'"),
    ({"x": [1], "p": 0.5, "mask": [True], "seed": 1}, "input: unknown key 'seed'"),
])
def test_bad_dropout_input_is_one_line_naming_the_field(data, message, capsys, tmp_path):
    status, out, err = eval_json("dropout", data, capsys, tmp_path)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert message in err, err


# -- init: derivation ------------------------------------------------------------------------
def test_init_formulas_are_the_textbook_ones(init):
    f = {k: r.expr for k, r in init.results.items()}
    v, g = sp.Symbol("v", positive=True), sp.Symbol("g", positive=True)
    expected = {
        "forward_variance": n_in * sigma**2 * v, "forward_sigma2": 1 / n_in,
        "backward_variance": n_out * sigma**2 * g, "backward_sigma2": 1 / n_out,
        "xavier_sigma2": 2 / (n_in + n_out), "xavier_bound": sp.sqrt(6 / (n_in + n_out)),
        "relu_ratio": sp.Rational(1, 2), "he_gain": n_in * sigma**2 / 2, "he_sigma2": 2 / n_in,
        "he_bound": sp.sqrt(6 / n_in), "lecun_relu_gain": sp.Rational(1, 2),
        "uniform_variance": sp.Symbol("a", positive=True) ** 2 / 3,
    }
    for key, want in expected.items():
        assert _zero(f[key] - want), key


def test_init_worked_numbers_are_exact(init):
    r = {k: init.results[k].expr for k in init.results if k.endswith("_at")}
    assert r["xavier_at"] == sp.Rational(1, 75) and r["xavier_bound_at"] == sp.Rational(1, 5)
    assert r["he_at"] == sp.Rational(1, 50)
    assert _zero(r["he_bound_at"] - sp.sqrt(6) / 10) and _zero(r["xavier_std_at"] - sp.sqrt(3) / 15)


def test_expectation_of_independent_products_keeps_the_input_mean_out():
    # Var(sum of n terms u w), u with mean mu and E[u^2] = r, w with mean 0: n r sigma^2.
    mu, r = sp.symbols("mu r", positive=True)
    got = ia.sum_variance(n_in, {1: mu, 2: r}, {1: sp.Integer(0), 2: sigma**2})
    assert _zero(got - n_in * r * sigma**2)
    # With a nonzero weight mean c the covariances survive: n(r s^2 - mu^2 c^2) + n^2 mu^2 c^2.
    c = sp.Symbol("c", positive=True)
    got = ia.sum_variance(n_in, {1: mu, 2: r}, {1: c, 2: sigma**2 + c**2})
    assert _zero(got - (n_in * (r * (sigma**2 + c**2) - mu**2 * c**2)
                        + n_in * (n_in - 1) * 0))


def test_every_init_claim_passes(init):
    assert init.checks and all(c.passed for c in init.checks)
    routes = {c.method.split(",")[0].split(":")[0] for c in init.checks}
    assert {"exact enumeration of a layer's output variance", "numerical integration",
            "sampling"} <= routes


def test_a_wrong_init_rule_is_caught(init):
    f = dict(init.formulas)
    wrong = {**f, "forward_variance": n_in * sigma**2 * sp.Symbol("v", positive=True) / 2}
    enum = {c.key: c.measure() for c in ic.enumeration_claims(wrong)}
    assert enum["forward_variance"] > 0 and enum["backward_variance"] == 0
    # He's variance taken as 1/n_in: the ReLU stack's sampled moments leave the claim.
    bad_he = {**f, "he_sigma2": 1 / n_in}
    claims = {c.key: c.measure() for c in ic.stack_claims(bad_he, ic.stack_profiles(bad_he))}
    assert claims["he_sigma2"] > ic.SAMPLING_SIGMAS


def test_the_stacks_halve_per_relu_layer_at_one_over_fan_in(init):
    means = init.results["stack_profile"].value
    for layer, v in zip(means["layer"], means["lecun_relu"], strict=True):
        assert 0.5 < v / 2.0 ** -(layer - 1) < 1.5
    assert all(0.7 < v < 1.3 for v in means["he"] + means["xavier"])


# -- init: derive eval -----------------------------------------------------------------------
@pytest.mark.parametrize(("data", "want"), [
    ({"rule": "xavier", "fan_in": 100, "fan_out": 50}, {"variance": 1 / 75}),
    ({"rule": "xavier_uniform", "fan_in": 100, "fan_out": 50},
     {"variance": 1 / 75, "bound": 0.2}),
    ({"rule": "he", "fan_in": 8}, {"variance": 0.25, "std": 0.5}),
    ({"rule": "he_uniform", "fan_in": 6, "fan_out": 3}, {"variance": 1 / 3, "bound": 1.0}),
])
def test_init_eval(data, want, capsys, tmp_path):
    status, out, _ = eval_json("init", data, capsys, tmp_path)
    got = json.loads(out)
    assert status == 0
    for k, v in want.items():
        assert math.isclose(got[k], v, rel_tol=1e-15), k
    assert math.isclose(got["std"], math.sqrt(got["variance"]), rel_tol=1e-15)
    assert ("bound" in got) == data["rule"].endswith("uniform")


@pytest.mark.parametrize(("data", "message"), [
    ({"rule": "glorot", "fan_in": 3}, "input.rule: expected one of xavier, xavier_uniform, he"),
    ({"rule": "he", "fan_in": 0}, "input.fan_in: expected a whole number from 1 to"),
    ({"rule": "he", "fan_in": 2.5}, "input.fan_in: expected a whole number"),
    ({"rule": "he", "fan_in": True}, "input.fan_in: expected a whole number"),
    ({"rule": "xavier", "fan_in": 3}, "input: missing key 'fan_out'"),
    ({"rule": "xavier", "fan_in": 3, "fan_out": -1}, "input.fan_out: expected a whole number"),
    ({"fan_in": 3}, "input: missing key 'rule'"),
])
def test_bad_init_input_is_one_line_naming_the_field(data, message, capsys, tmp_path):
    status, out, err = eval_json("init", data, capsys, tmp_path)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and message in err, err


def test_init_eval_never_reads_text_as_a_number(init):
    with pytest.raises(InputError, match=r"input\.fan_in"):
        init.eval({"rule": "he", "fan_in": "__import__('os')"})


# -- the keys --------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["dropout", "init"])
def test_key_and_handout_render_and_rebuild_identically(key):
    first, again = REGISTRY[key](), REGISTRY[key]()
    tex = key_tex(first)
    assert tex == key_tex(again)  # seeded: the same evidence, byte for byte
    handout = key_tex(first, handout=True)
    assert "Verification" in tex and "Verification" not in handout
    for word in ("numpy", "sympy", "mpmath", "python", "derive"):
        assert word not in tex.lower().split("\\begin{document}")[1], word


def test_handouts_show_their_parameters():
    assert "p = 0.2" in key_tex(REGISTRY["dropout"].from_params({"p": "1/5"}), handout=True)
    handout = key_tex(REGISTRY["init"].from_params({"n_in": 30, "n_out": 70}), handout=True)
    assert "n_{in} = 30" in handout and "n_{out} = 70" in handout


def test_the_key_prints_the_derived_forms(dropout, init):
    tex = key_tex(dropout)
    assert r"\frac{p x_{i}^{2}}{1 - p}" in tex and r"\frac{\bar{y}_{i} m_{i}}{1 - p}" in tex
    tex = key_tex(init)
    assert r"\frac{2}{n_{in} + n_{out}}" in tex and r"\sqrt{\frac{6}{n_{in}}}" in tex


def test_init_numbers_stay_exact_at_large_prime_sizes():
    problem = REGISTRY["init"].from_params({"n_in": 4093, "n_out": 4091})
    r = {k: problem.results[k].expr for k in problem.results if k.endswith("_at")}
    assert r["he_at"] == sp.Rational(2, 4093) and r["xavier_at"] == sp.Rational(1, 4092)
    assert _zero(r["he_bound_at"] - sp.sqrt(sp.Rational(6, 4093)))
    assert _zero(r["xavier_bound_at"] ** 2 - sp.Rational(6, 8184))


def test_derive_check_passes_for_both(capsys):
    from derive.cli import main

    assert main(["check", "dropout", "init"]) == 0
    out = capsys.readouterr().out
    assert "0 failed" in out and "dropout:variance" in out and "init:he_sigma2" in out
