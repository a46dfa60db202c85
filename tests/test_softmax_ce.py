"""The bundled softmax classifier: its Hessian in the scores, the log-sum-exp shift, and
``derive eval softmax_ce`` with the issue's names, each against an independent route
(autograd, mpmath, SymPy)."""

from __future__ import annotations

import json

import autograd.numpy as anp
import numpy as np
import pytest
import sympy as sp
from autograd import grad, hessian

from derive.cli import main
from derive.errors import InputError
from derive.feedforward import numeric, second
from derive.model.graph import graph_problem
from derive.sets import get_set


@pytest.fixture(scope="module")
def problem():
    return get_set("dl_foundations").make_problem("softmax_ce")


def ce(scores, labels):
    n = scores.shape[0]
    z = anp.log(anp.sum(anp.exp(scores), axis=1))
    return anp.mean(z - scores[anp.arange(n), labels])


def test_every_claim_passes(problem) -> None:
    checks = problem.checks
    assert all(c.passed for c in checks)
    assert {c.claim for c in checks} >= {"hessian", "lse_shift"}


def test_the_printed_hessian_is_autograds(problem) -> None:
    rng = np.random.default_rng(5)
    n, c = 4, 3
    scores, labels = rng.normal(size=(n, c)) * 2, rng.integers(0, c, size=n)
    full = hessian(lambda s: ce(s, labels))(scores).reshape(n * c, n * c)
    rule = second.hessian_rule(sp.Symbol("N"), sp.Symbol("C"))
    p = np.exp(scores) / np.sum(np.exp(scores), axis=1, keepdims=True)
    for i in range(n):
        block = numeric.evaluate(rule, {"p_i": p[i][:, None], "N": n, "C": c})
        assert np.max(np.abs(block - full[i * c:(i + 1) * c, i * c:(i + 1) * c])) < 1e-14
        for k in range(n):  # rows do not interact
            if k != i:
                assert np.max(np.abs(full[i * c:(i + 1) * c, k * c:(k + 1) * c])) < 1e-15


def test_the_exact_check_catches_a_wrong_rule() -> None:
    assert second.check_rule(3) == 0
    plus = lambda p, j, k: p[j] * (1 if j == k else 0) + p[j] * p[k]  # noqa: E731
    assert second.check_rule(3, plus) == 9


def test_the_shift_matches_mpmath_where_the_plain_sum_overflows() -> None:
    row = np.array([710.0, 709.0, -3.0])  # exp(710) overflows float64
    assert second.lse_naive(row) == np.inf
    want = 710 + np.log1p(np.exp(-1.0) + np.exp(-713.0))
    assert abs(second.lse_shifted(row) - want) < 1e-12
    assert abs(float(second.lse_reference(row)) - want) < 1e-12
    assert second.lse_identity(4) == 0


def payload(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {"X": rng.normal(size=(5, 4)).tolist(), "y": rng.integers(0, 3, size=5).tolist(),
            "W": rng.normal(size=(4, 3)).tolist(), "b": rng.normal(size=3).tolist(),
            "reg": 0.3}


def test_eval_gives_autograds_loss_and_gradients(capsys, tmp_path) -> None:
    data = payload(8)
    path = tmp_path / "in.json"
    path.write_text(json.dumps(data))
    assert main(["eval", "softmax_ce", "--input", str(path)]) == 0
    got = json.loads(capsys.readouterr().out)
    x, y, w, b = (np.asarray(data[k]) for k in ("X", "y", "W", "b"))

    def loss(w, b):
        return ce(x @ w + b, y) + 0.3 / 2 * anp.sum(w * w)

    assert got["loss"] == pytest.approx(float(loss(w, b)), rel=1e-14)
    assert np.max(np.abs(np.asarray(got["grad"]["W"]) - grad(loss, 0)(w, b))) < 1e-14
    assert np.max(np.abs(np.asarray(got["grad"]["b"]) - grad(loss, 1)(w, b))) < 1e-14


@pytest.mark.parametrize(
    ("hessian_of", "message"),
    [("W", "expected the name of the scores a softmax_ce reads \\(S\\)"),
     (3, "expected the name of the scores")],
)
def test_hessian_names_the_scores(hessian_of, message) -> None:
    table = dict(get_set("dl_foundations").models["softmax_ce"], hessian=hessian_of)
    with pytest.raises(InputError, match=message):
        graph_problem("m", table, "models.m")


def test_hessian_refuses_scores_read_twice() -> None:
    table = dict(get_set("dl_foundations").models["softmax_ce"], hessian="S")
    table["equations"] = ["S = X @ W + b", "L = softmax_ce(S, y) + reg*sum(S)"]
    with pytest.raises(InputError, match="S is read by more than the cross-entropy"):
        graph_problem("m", table, "models.m")
