"""The bundled skip-gram models: derive eval word2vec (full softmax, or with negatives
the negative-sampling loss), against autograd on losses written here."""

from __future__ import annotations

import json
import re

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad
from conftest import eval_json

from derive.errors import InputError
from derive.sets import get_set, parse_set


def naive(center, u, outside):
    s = u @ center
    return anp.log(anp.sum(anp.exp(s - anp.max(s)))) + anp.max(s) - s[outside]


def negative(center, u, outside, negatives):
    def log_sigmoid(z):
        return -anp.log1p(anp.exp(-z))
    loss = -log_sigmoid(anp.dot(u[outside], center))
    for k in negatives:  # a word drawn twice counts twice
        loss = loss - log_sigmoid(-anp.dot(u[k], center))
    return loss


def payload(seed: int, vocab=6, d=3, negatives=None) -> dict:
    rng = np.random.default_rng(seed)
    out = {"center": rng.normal(size=d).tolist(), "outside": 2,
           "U": rng.normal(size=(vocab, d)).tolist()}
    if negatives is not None:
        out["negatives"] = negatives
    return out


def run_eval(data, capsys, tmp_path):
    return eval_json("word2vec", data, capsys, tmp_path)


@pytest.mark.parametrize("negatives", [None, [0, 4, 5], [4, 4, 1, 3]])
@pytest.mark.parametrize("seed", [1, 2])
def test_eval_matches_autograd(seed, negatives, capsys, tmp_path) -> None:
    data = payload(seed, negatives=negatives)
    status, out, err = run_eval(data, capsys, tmp_path)
    assert (status, err) == (0, "")
    got = json.loads(out)
    center, u = np.asarray(data["center"]), np.asarray(data["U"])
    args = (center, u, 2) if negatives is None else (center, u, 2, negatives)
    loss = naive if negatives is None else negative
    assert got["loss"] == pytest.approx(float(loss(*args)), rel=1e-14)
    assert np.max(np.abs(np.asarray(got["grad"]["center"]) - grad(loss, 0)(*args))) < 1e-14
    assert np.max(np.abs(np.asarray(got["grad"]["U"]) - grad(loss, 1)(*args))) < 1e-14


def test_a_word_never_scored_gets_no_gradient(capsys, tmp_path) -> None:
    status, out, _ = run_eval(payload(3, negatives=[0, 0]), capsys, tmp_path)
    u = json.loads(out)["grad"]["U"]
    assert status == 0 and u[5] == [0.0] * 3 and u[1] == [0.0] * 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"outside": 6}, r"input.outside\[0\]: expected a class index 0..5, got 6"),
        ({"negatives": [1, 9]}, r"input.negatives\[1\]: expected a class index 0..5, got 9"),
        ({"center": [1.0, 2.0]}, r"U: expected 6×2, got \(6, 3\) \(D is 2 in center\)"),
        ({"outside": "2"}, "input.outside: expected a non-empty list of whole-number labels"),
    ],
)
def test_eval_refuses_bad_input(change, message, capsys, tmp_path) -> None:
    status, out, err = run_eval({**payload(4), **change}, capsys, tmp_path)
    assert (status, out) == (2, "")
    assert err.startswith("derive: error: ") and err.count("\n") == 1
    assert re.search(message, err), err


@pytest.mark.parametrize("name", ["word2vec", "word2vec_neg"])
def test_every_claim_passes(name) -> None:
    checks = get_set("dl_foundations").make_problem(name).checks
    assert checks and all(c.passed for c in checks)


def test_an_alternative_must_be_another_network_of_the_set() -> None:
    text = """id = "s"
title = "T"
course = "C"
source = "our own"
problems = ["a"]
[models.a]
kind = "graph"
title = "A"
sizes = ["N"]
params = { w = ["N", 1] }
equations = ["L = sumsq(w)"]
alternative = { when = "k", model = "b" }
"""
    with pytest.raises(InputError, match=r"models\.a\.alternative: 'b' is not another network"):
        parse_set(text, "s.toml")
