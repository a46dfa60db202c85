"""The optimizers of dl_foundations as maps of their state: ``derive eval optimizers``
against updates written here by hand, the step counter of the map language, and the bias
of moving averages (Adam's correction) derived and checked."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sympy as sp
from conftest import eval_json

from derive.errors import InputError
from derive.model.maps import map_spec
from derive.problems.momentum import averages
from derive.sets import get_set, parse_set

CONSTANTS = {"lr": 0.05, "momentum": 0.8, "decay_rate": 0.95, "beta1": 0.9,
             "beta2": 0.99, "eps": 1e-8}


def reference(rule: str, w, dw, state: dict, c: dict) -> dict:
    """One step of each update as the textbooks write it, in place of a derivation."""
    if rule == "sgd":
        return {"w": w - c["lr"] * dw}
    if rule == "momentum":
        v = c["momentum"] * state["v"] - c["lr"] * dw
        return {"w": w + v, "v": v}
    if rule == "nesterov":  # w += -mu v_prev + (1 + mu) v
        v = c["momentum"] * state["v"] - c["lr"] * dw
        return {"w": w - c["momentum"] * state["v"] + (1 + c["momentum"]) * v, "v": v}
    if rule == "rmsprop":
        cache = c["decay_rate"] * state["cache"] + (1 - c["decay_rate"]) * dw**2
        return {"w": w - c["lr"] * dw / (np.sqrt(cache) + c["eps"]), "cache": cache}
    t = state["t"] + 1
    m = c["beta1"] * state["m"] + (1 - c["beta1"]) * dw
    v = c["beta2"] * state["v"] + (1 - c["beta2"]) * dw**2
    mt, vt = m / (1 - c["beta1"] ** t), v / (1 - c["beta2"] ** t)
    return {"w": w - c["lr"] * mt / (np.sqrt(vt) + c["eps"]), "m": m, "v": v, "t": t}


NEEDS = {"sgd": ["lr"], "momentum": ["lr", "momentum"], "nesterov": ["lr", "momentum"],
         "rmsprop": ["lr", "decay_rate", "eps"], "adam": ["lr", "beta1", "beta2", "eps"]}
STATES = {"sgd": [], "momentum": ["v"], "nesterov": ["v"], "rmsprop": ["cache"],
          "adam": ["m", "v"]}


@pytest.mark.parametrize("rule", list(NEEDS))
def test_eval_runs_each_rule_for_several_steps(rule, capsys, tmp_path):
    rng = np.random.default_rng(7)
    w = rng.normal(size=(2, 3))
    state = {s: np.zeros((2, 3)) for s in STATES[rule]} | ({"t": 0} if rule == "adam" else {})
    ours = {"w": w, **state}
    for _ in range(4):
        dw = rng.normal(size=(2, 3))
        data = {"rule": rule, "w": ours["w"].tolist(), "dw": dw.tolist(),
                **{k: (v if k == "t" else np.asarray(v).tolist())
                   for k, v in ours.items() if k != "w"},
                **{k: CONSTANTS[k] for k in NEEDS[rule]}}
        status, out, err = eval_json("optimizers", data, capsys, tmp_path)
        assert status == 0, err
        got = json.loads(out)
        want = reference(rule, np.asarray(ours["w"]), dw,
                         {k: np.asarray(v) if k != "t" else v for k, v in ours.items()},
                         CONSTANTS)
        assert set(got) == set(want)
        for k, v in want.items():
            np.testing.assert_allclose(got[k], v, rtol=1e-13, atol=1e-15)
        ours = {k: (np.asarray(v) if k != "t" else v) for k, v in got.items()}
    if rule == "adam":
        assert ours["t"] == 4


def test_adam_first_step_moves_by_the_learning_rate(capsys, tmp_path):
    # With the bias removed, the first step is lr * sign(g) (up to eps), whatever |g|.
    data = {"rule": "adam", "w": [0.0, 0.0], "dw": [3.0, -1e-3], "m": [0, 0], "v": [0, 0],
            "t": 0, **{k: CONSTANTS[k] for k in NEEDS["adam"]}}
    status, out, _ = eval_json("optimizers", data, capsys, tmp_path)
    assert status == 0
    np.testing.assert_allclose(json.loads(out)["w"], [-0.05, 0.05], rtol=1e-4)


@pytest.mark.parametrize(("change", "message"), [
    ({"rule": "adagrad"}, "rule: expected one of 'sgd', 'momentum', 'nesterov', 'rmsprop', "
                          "'adam', got 'adagrad'"),
    ({"dw": [1.0]}, "dw: expected the shape of w, 2, got 1"),
    ({"t": -1}, "t: expected the number of completed steps, a whole number from 0"),
    ({"t": 1.5}, "t: expected the number of completed steps"),
    ({"v": [[1, 2], [3]]}, "v: ragged matrix"),
    ({"lr": "fast"}, 'lr: expected a finite number, got "fast"'),
    ({"beta3": 1}, "input: unknown key 'beta3'"),
])
def test_eval_errors_are_one_line(change, message, capsys, tmp_path):
    data = {"rule": "adam", "w": [1.0, 2.0], "dw": [0.1, 0.2], "m": [0, 0], "v": [0, 0],
            "t": 3, **{k: CONSTANTS[k] for k in NEEDS["adam"]}} | change
    status, out, err = eval_json("optimizers", data, capsys, tmp_path)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and message in err, err


def test_a_missing_field_is_named(capsys, tmp_path):
    data = {"rule": "rmsprop", "w": [1.0], "dw": [0.5], "lr": 0.1, "decay_rate": 0.9,
            "eps": 1e-8}
    status, _, err = eval_json("optimizers", data, capsys, tmp_path)
    assert status == 2 and "missing key 'cache'" in err


# -- the step counter in the map language ------------------------------------------------------
ADAM = {"state": ["w", "m", "v"], "constants": ["lr", "b1", "b2", "eps"], "step": "t",
        "equations": ["t' = t + 1", "m' = b1*m + (1 - b1)*grad(J)(w)",
                      "v' = b2*v + (1 - b2)*grad(J)(w)^2",
                      "w' = w - lr*(m'/(1 - b1^t'))/(sqrt(v'/(1 - b2^t')) + eps)"]}


@pytest.mark.parametrize(("equations", "message"), [
    (["t' = t + 2", "w' = w - a*grad(J)(w)"], "the step counter's update must be t' = t + 1"),
    (["w' = w - a^t'*grad(J)(w)"], "t' is read before t' = t + 1"),
    (["t' = t + 1", "w' = w - a^t*grad(J)(w)"], "'t' is read after t' = t + 1; write t'"),
    (["w' = w - a*grad(J)(w)"], "the step counter 't' is never incremented"),
    (["t' = t + 1", "t' = t + 1", "w' = w"], "incremented twice"),
    (["t' = t + 1", "w' = w - a^w*grad(J)(w)"], "power w: an exponent is a whole number"),
])
def test_step_counter_mistakes(equations, message):
    table = {"state": ["w"], "constants": ["a"], "step": "t", "equations": equations}
    with pytest.raises(InputError) as info:
        map_spec("m", table, "models.m")
    assert message in str(info.value)


def test_step_counter_name_has_one_role():
    with pytest.raises(InputError, match="'a' is declared as a state or constant too"):
        map_spec("m", {**ADAM, "constants": ["a", "b1", "b2", "eps", "lr"], "step": "a"},
                 "models.m")


# -- moving averages and their bias ------------------------------------------------------------
def test_bias_factor_is_the_geometric_sum():
    a, n = sp.Symbol("a"), averages.N_STEPS
    by_hand = 1 - a**n  # (1 - a)(1 + a + ... + a^(n-1))
    assert sp.simplify(averages.bias_factor(a) - by_hand) == 0
    for k in range(1, 6):  # and unrolled: x <- a x + (1 - a) from 0
        x = 0
        for _ in range(k):
            x = a * x + (1 - a)
        assert sp.expand(x - by_hand.subs(n, k)) == 0


def test_averages_are_found_by_their_weights():
    adam = map_spec("adam", ADAM, "models.adam")
    found = averages.averages(adam)
    assert [(f.name, str(f.rate)) for f in found] == [("m", "b1"), ("v", "b2")]
    assert averages.corrected(adam, found)
    momentum = {"state": ["w", "v"], "constants": ["lr", "mu"],
                "equations": ["v' = mu*v - lr*grad(J)(w)", "w' = w + v'"]}
    assert averages.averages(map_spec("mom", momentum, "m")) == []  # weights add to mu + lr


@pytest.mark.parametrize("update", [
    "w' = w - lr*m'/(sqrt(v') + eps)",  # no correction
    "w' = w - lr*(m'/(1 - b1^t))/(sqrt(v'/(1 - b2^t)) + eps)",  # the count not increased yet
])
def test_an_uncorrected_adam_is_not_called_corrected(update):
    equations = [*ADAM["equations"][:3], update]
    if "^t)" in update:  # read t before it is increased: increase it last
        equations = [*ADAM["equations"][1:3], update, "t' = t + 1"]
    spec = map_spec("a", {**ADAM, "equations": equations}, "models.a")
    found = averages.averages(spec)
    assert len(found) == 2 and not averages.corrected(spec, found)
    values = {"lr": 0.01, "b1": 0.9, "b2": 0.99, "eps": 1e-8}
    # The run the key's claim uses tells them apart too: the steps differ.
    claim = averages.correction_claim(spec, found, values, np.random.default_rng(1), True)
    assert claim.measure() > 1e-3
    # and the claim that it is not corrected holds
    assert averages.correction_claim(spec, found, values, np.random.default_rng(1),
                                     False).measure() == 0


def test_bundled_adam_is_corrected_and_rmsprop_is_not():
    fs = get_set("dl_foundations")
    adam, rms = fs.make_problem("adam").results, fs.make_problem("rmsprop").results
    assert adam["corrected"].value is True and rms["corrected"].value is False
    assert str(adam["average_m"].expr) == "1 - beta1**n"


VARIANT = """
id = "adamw_set"
title = "Decoupled weight decay"
course = "Optimisation"
source = "our own"
problems = ["adamw"]

[models.adamw]
kind = "map"
title = "Adam with decoupled weight decay"
state = ["w", "m", "v"]
constants = ["lr", "beta1", "beta2", "eps", "wd"]
step = "t"
equations = [
  "t' = t + 1",
  "m' = beta1*m + (1 - beta1)*grad(J)(w)",
  "v' = beta2*v + (1 - beta2)*grad(J)(w)^2",
  "w' = w - lr*((m'/(1 - beta1^t'))/(sqrt(v'/(1 - beta2^t')) + eps) + wd*w)",
]
"""


def test_a_variant_builds_from_a_set_file_alone(capsys, tmp_path):
    pset = parse_set(VARIANT, "adamw.toml")
    problem = pset.make_problem("adamw")
    assert problem.results["corrected"].value is True
    assert problem.checks and all(c.passed for c in problem.checks)
    path = tmp_path / "adamw.toml"
    path.write_text(VARIANT)
    from derive.cli import main

    data = tmp_path / "in.json"
    data.write_text(json.dumps({"w": [1.0], "dw": [0.5], "m": [0.0], "v": [0.0], "t": 0,
                                "lr": 0.1, "beta1": 0.9, "beta2": 0.999, "eps": 0.0,
                                "wd": 0.5}))
    assert main(["eval", "adamw", "--set", str(path), "--input", str(data)]) == 0
    got = json.loads(capsys.readouterr().out)
    np.testing.assert_allclose(got["w"], [1.0 - 0.1 * (1.0 + 0.5)], rtol=1e-12)
