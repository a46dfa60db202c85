"""Batch and layer normalisation (``normalize``/``rownormalize``) in the graph language.

The rule's simplified formula is checked against autograd on a forward pass written with
loops here, and against the chain through the normalisation's parts; ``derive eval``
gives the bundled ``batchnorm`` and ``layernorm`` with the issue's names.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad
from conftest import eval_json

from derive.errors import InputError
from derive.feedforward import numeric, text
from derive.sets import get_set

MODELS = Path(__file__).parent / "models" / "graphs"


def normalised(x, axis: int, eps: float):
    """x standardised along ``axis`` with ε in the variance, entry by entry (autograd)."""
    n = x.shape[axis]
    mu = anp.sum(x, axis=axis, keepdims=True) / n
    var = anp.sum((x - mu) ** 2, axis=axis, keepdims=True) / n
    return (x - mu) / anp.sqrt(var + eps)


def loss(axis: int):
    def f(x, gamma, beta, eps, dout):
        return anp.sum(dout * (gamma * normalised(x, axis, eps) + beta))
    return f


def forward_by_loops(x, gamma, beta, eps, axis: int) -> np.ndarray:
    """The layer's output, one column (axis 0) or one row (axis 1) at a time."""
    out = np.zeros_like(x)
    lines = x.T if axis == 0 else x
    for j, u in enumerate(lines):
        mu = sum(u) / len(u)
        sd = (sum((v - mu) ** 2 for v in u) / len(u) + eps) ** 0.5
        for i, v in enumerate(u):
            r, c = (i, j) if axis == 0 else (j, i)
            out[r, c] = gamma[c] * (v - mu) / sd + beta[c]
    return out


def payload(seed: int, n: int = 5, d: int = 4, dout: bool = True) -> dict:
    rng = np.random.default_rng(seed)
    out = {"x": (rng.normal(size=(n, d)) * 3 + 1).tolist(),
           "gamma": rng.normal(size=d).tolist(), "beta": rng.normal(size=d).tolist(),
           "eps": 1e-5}
    if dout:
        out["dout"] = rng.normal(size=(n, d)).tolist()
    return out


def run_eval(problem: str, data, capsys, tmp_path) -> tuple[int, str, str]:
    return eval_json(problem, data, capsys, tmp_path)


def rel(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


@pytest.mark.parametrize(("problem", "axis"), [("batchnorm", 0), ("layernorm", 1)])
@pytest.mark.parametrize("seed", [1, 2])
def test_eval_matches_loops_and_autograd(problem, axis, seed, capsys, tmp_path) -> None:
    data = payload(seed)
    status, out, err = run_eval(problem, data, capsys, tmp_path)
    assert (status, err) == (0, "")
    got = json.loads(out)
    assert set(got) == {"out", "grad"} and set(got["grad"]) == {"x", "gamma", "beta"}
    x, gamma, beta, dout = (np.asarray(data[k]) for k in ("x", "gamma", "beta", "dout"))
    assert rel(got["out"], forward_by_loops(x, gamma, beta, 1e-5, axis)) < 1e-13
    args = (x, gamma[None, :], beta[None, :], 1e-5, dout)
    for i, name in enumerate(("x", "gamma", "beta")):
        want = grad(loss(axis), i)(*args)
        assert rel(np.reshape(got["grad"][name], want.shape), want) < 1e-12, name


@pytest.mark.parametrize("problem", ["batchnorm", "layernorm"])
def test_dout_defaults_to_ones(problem, capsys, tmp_path) -> None:
    status, out, _ = run_eval(problem, payload(3, dout=False), capsys, tmp_path)
    assert status == 0
    got = json.loads(out)["grad"]
    # With dout = 1 the loss is N Σ β + γ · (column sums of x̂); β's gradient is N each, and
    # batch norm's x̂ sums to zero down every column, so x's gradient vanishes.
    assert got["beta"] == pytest.approx([5.0] * 4, rel=1e-15)
    if problem == "batchnorm":
        assert np.max(np.abs(got["x"])) < 1e-12 and np.max(np.abs(got["gamma"])) < 1e-12


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"x": None}, "input: missing key 'x'"),
        ({"gamma": [1.0, 2.0]}, r"gamma: expected 1×4, got \(1, 2\) \(D is 4 in x\)"),
        ({"dout": [[1.0] * 4] * 3}, r"dout: expected 5×4, got \(3, 4\) \(N is 5 in x\)"),
        ({"x": [[1.0, 2.0], [3.0]]}, "input.x: ragged matrix"),
        ({"eps": [1.0]}, "input.eps: expected a finite number"),
    ],
)
def test_eval_refuses_bad_arrays(change, message, capsys, tmp_path) -> None:
    data = {k: v for k, v in {**payload(4), **change}.items() if v is not None}
    status, out, err = run_eval("batchnorm", data, capsys, tmp_path)
    assert (status, out) == (2, "")
    assert err.startswith("derive: error: ") and err.count("\n") == 1
    assert re.search(message, err), err


def bundled(name: str):
    return get_set("dl_foundations").make_problem(name)


@pytest.mark.parametrize("problem", ["batchnorm", "layernorm"])
def test_every_claim_passes_and_the_chain_is_a_route(problem) -> None:
    checks = bundled(problem).checks
    assert checks and all(c.passed for c in checks)
    # The chain through the parts differs from the rule only where the rule is used.
    assert [c.claim for c in checks if "chain rule" in c.method] == ["x_bar"]


def test_the_rule_is_the_chain_of_its_parts_on_other_data() -> None:
    # Large offsets and a tiny spread: the rule and the chain still agree to rounding.
    g = bundled("batchnorm").GRAPH
    rng = np.random.default_rng(7)
    given = {"x": 1e3 + 1e-2 * rng.normal(size=(6, 3)), "dout": rng.normal(size=(6, 3)),
             "gamma": rng.normal(size=(1, 3)), "beta": rng.normal(size=(1, 3)), "eps": 1e-8}
    ours, chain = numeric.gradients(g, given), numeric.gradients(g.expanded(), given)
    assert rel(ours["x"], chain["x"]) < 1e-8


@pytest.mark.parametrize(
    ("equations", "message"),
    [
        (["out = gamma*normalize(x, eps) + beta", "L = sum(dout*out)"],
         r"give normalize\(\.\.\.\) an equation of its own"),
        (["xhat = normalize(x, x)", "L = sum(dout*xhat)"], r"normalize\(A, eps\) takes a matrix"),
        (["xhat = normalize(x)", "L = sum(dout*xhat)"], "normalize takes 2 argument"),
    ],
)
def test_bad_normalisations_are_one_line_errors(equations, message) -> None:
    table = {"sizes": ["N", "D"], "inputs": {"x": ["N", "D"], "dout": ["N", "D"]},
             "params": {"gamma": [1, "D"], "beta": [1, "D"]}, "constants": ["eps"],
             "equations": equations}
    with pytest.raises(InputError, match=message):
        text.graph_from_table(table, "models.bn")


def test_wrt_names_only_inputs() -> None:
    table = {"sizes": ["N"], "inputs": {"x": ["N", 1]}, "params": {"w": [1, 1]},
             "wrt": ["w"], "equations": ["L = sum(x*w)"]}
    with pytest.raises(InputError, match=r"models.m.wrt: 'w' is not a declared input"):
        text.graph_from_table(table, "models.m")


def test_a_variant_builds_from_a_set_file_alone() -> None:
    pset = get_set(str(MODELS / "batchnorm_relu.toml"))
    problem = pset.make_problem("bn_relu")
    checks = problem.checks
    assert len(checks) == 2 * 5 + 1 and all(c.passed for c in checks)
    assert {c.claim for c in checks} == {"h_bar", "xhat_bar", "x_bar", "gamma_bar",
                                         "beta_bar"}
