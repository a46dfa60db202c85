"""The bundled attention layer: softmax(Q Kᵀ/√d, masked) V, its gradients in Q, K and V,
and ``derive eval attention`` with the issue's names, against loops and autograd."""

from __future__ import annotations

import json
import math
import re

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad
from conftest import eval_json

from derive.errors import InputError
from derive.feedforward import text
from derive.sets import get_set


def attend_by_loops(q, k, v, mask) -> np.ndarray:
    """Each query's weighted average of the values, one weight at a time."""
    n, d = q.shape
    out = np.zeros((n, v.shape[1]))
    for i in range(n):
        scores = [sum(q[i, a] * k[j, a] for a in range(d)) / math.sqrt(d)
                  if mask[i][j] else -math.inf for j in range(k.shape[0])]
        top = max(scores)
        weights = [math.exp(s - top) for s in scores]
        total = sum(weights)
        for j, w in enumerate(weights):
            out[i] += w / total * v[j]
    return out


def loss(q, k, v, dout, mask):
    s = q @ k.T / np.sqrt(q.shape[1])
    s = anp.where(mask, s, -1e300)  # a finite stand-in: autograd's where needs one
    s = s - anp.max(s, axis=1, keepdims=True)
    a = anp.exp(s) / anp.sum(anp.exp(s), axis=1, keepdims=True)
    return anp.sum(dout * (a @ v))


def payload(seed: int, n=4, m=5, d=3, dv=2, masked=True) -> dict:
    rng = np.random.default_rng(seed)
    out = {"Q": rng.normal(size=(n, d)).tolist(), "K": rng.normal(size=(m, d)).tolist(),
           "V": rng.normal(size=(m, dv)).tolist(), "dout": rng.normal(size=(n, dv)).tolist()}
    if masked:  # causal-like: query i sees keys 0..i+1
        out["mask"] = [[j <= i + 1 for j in range(m)] for i in range(n)]
    return out


def run_eval(data, capsys, tmp_path):
    return eval_json("attention", data, capsys, tmp_path)


@pytest.mark.parametrize("masked", [True, False])
@pytest.mark.parametrize("seed", [1, 2])
def test_eval_matches_loops_and_autograd(seed, masked, capsys, tmp_path) -> None:
    data = payload(seed, masked=masked)
    status, out, err = run_eval(data, capsys, tmp_path)
    assert (status, err) == (0, "")
    got = json.loads(out)
    q, k, v, dout = (np.asarray(data[x]) for x in ("Q", "K", "V", "dout"))
    mask = np.asarray(data.get("mask", np.ones((4, 5), dtype=bool)))
    assert np.max(np.abs(np.asarray(got["out"]) - attend_by_loops(q, k, v, mask))) < 1e-14
    for i, name in enumerate(("Q", "K", "V")):
        want = grad(loss, i)(q, k, v, dout, mask)
        assert np.max(np.abs(np.asarray(got["grad"][name]) - want)) < 1e-13, name


def test_a_key_no_query_may_see_gets_no_gradient(capsys, tmp_path) -> None:
    data = payload(3)
    data["mask"] = [[j != 2 for j in range(5)] for _ in range(4)]  # key 2 hidden from all
    status, out, _ = run_eval(data, capsys, tmp_path)
    got = json.loads(out)["grad"]
    assert status == 0
    assert got["K"][2] == [0.0] * 3 and got["V"][2] == [0.0] * 2
    assert max(abs(x) for x in got["K"][0]) > 1e-3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mask": [[False] * 5] + [[True] * 5] * 3},
         r"input.mask\[0\]: the mask keeps no entry of this row"),
        ({"mask": [[1] * 5] * 4}, "input.mask: expected a matrix of true/false"),
        ({"mask": [[True] * 4] * 4}, r"mask: expected 4×5, got \(4, 4\)"),
        ({"K": [[1.0] * 2] * 5}, r"K: expected 5×3, got \(5, 2\) \(d is 3 in Q\)"),
        ({"V": None}, "input: missing key 'V'"),
    ],
)
def test_eval_refuses_bad_arrays(change, message, capsys, tmp_path) -> None:
    data = {x: y for x, y in {**payload(4), **change}.items() if y is not None}
    status, out, err = run_eval(data, capsys, tmp_path)
    assert (status, out) == (2, "")
    assert err.startswith("derive: error: ") and err.count("\n") == 1
    assert re.search(message, err), err


def test_every_claim_passes() -> None:
    checks = get_set("dl_foundations").make_problem("attention").checks
    assert {c.claim for c in checks} == {"out_bar", "A_bar", "S_bar", "Q_bar", "K_bar",
                                         "V_bar"}
    assert all(c.passed for c in checks)


def test_the_key_writes_the_transposes_through() -> None:
    from derive.render.latex import KeyPrinter

    results = get_set("dl_foundations").make_problem("attention").results
    # K̄ = (1/√d) S̄ᵀ Q and Q̄ = (1/√d) S̄ K, not (Qᵀ ((1/√d) S̄))ᵀ and ((1/√d) S̄)(Kᵀ)ᵀ.
    shown = {k: KeyPrinter().doprint(results[k].expr) for k in ("K_bar", "Q_bar")}
    assert shown == {"K_bar": r"\frac{1}{\sqrt{d}} \overline{S}^{\top} Q",
                     "Q_bar": r"\frac{1}{\sqrt{d}} \overline{S} K"}


@pytest.mark.parametrize(
    ("equations", "message"),
    [
        (["A = softmax(masked(S, Q))", "L = sum(A)"], "Q is not declared among the masks"),
        (["L = sum(softmax(S) @ V)"], r"give softmax\(\.\.\.\) an equation of its own"),
        (["A = softmax(masked(transpose(S), mask))", "L = sum(A)"],
         r"equations\[1\].*: A_2: the mask mask is n×m, A_1 is m×n"),
    ],
)
def test_bad_attention_graphs(equations, message) -> None:
    table = {"sizes": ["n", "m"], "inputs": {"Q": ["n", "m"], "V": ["m", "m"]},
             "masks": {"mask": ["n", "m"]}, "params": {"S": ["n", "m"]},
             "equations": equations}
    with pytest.raises(InputError, match=message):
        text.graph_from_table(table, "models.a")
