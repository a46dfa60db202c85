"""Variants of dl_foundations' networks defined in a set file alone
(``tests/models/graphs/variants.toml``): each builds and passes its checks, and
``derive eval`` of each gives autograd's loss and gradients; label smoothing's score
gradient is also the one found by hand."""

from __future__ import annotations

import json
from pathlib import Path

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad

from derive.cli import main

SET = Path(__file__).resolve().parent / "models" / "graphs" / "variants.toml"
RNG = np.random.default_rng(20261202)


def _eval(name: str, data: dict, capsys, tmp_path) -> dict:
    path = tmp_path / "in.json"
    path.write_text(json.dumps(data))
    assert main(["eval", name, "--set", str(SET), "--input", str(path)]) == 0
    return json.loads(capsys.readouterr().out)


def _ce(s, y):
    z = anp.log(anp.sum(anp.exp(s), axis=1))
    return anp.mean(z - s[anp.arange(s.shape[0]), y])


def _softmax(s):
    e = anp.exp(s - anp.max(s, axis=1, keepdims=True))
    return e / anp.sum(e, axis=1, keepdims=True)


def _arrays(**shapes) -> dict:
    return {k: RNG.normal(size=s).tolist() for k, s in shapes.items()}


def test_the_variants_build_and_pass_every_check(tmp_path) -> None:
    assert main(["check", "--set", str(SET)]) == 0
    assert main(["build", str(SET), "--out", str(tmp_path), "--format", "tex"]) == 0
    assert (tmp_path / "graph_variants" / "answer-key.tex").is_file()


def test_label_smoothing_matches_autograd_and_the_hand_rule(capsys, tmp_path) -> None:
    n, d, c, alpha = 6, 4, 3, 0.1
    data = {**_arrays(X=(n, d), W=(d, c), b=(c,)), "y": RNG.integers(0, c, n).tolist(),
            "alpha": alpha}
    got = _eval("softmax_smooth", data, capsys, tmp_path)
    x, y, w, b = (np.asarray(data[k]) for k in ("X", "y", "W", "b"))

    def loss(w, b):
        s = x @ w + b
        return (1 - alpha) * _ce(s, y) - alpha / (n * c) * anp.sum(anp.log(_softmax(s)))

    assert got["loss"] == pytest.approx(float(loss(w, b)), rel=1e-13)
    for k, i in (("W", 0), ("b", 1)):
        assert np.max(np.abs(np.asarray(got["grad"][k]) - grad(loss, i)(w, b))) < 1e-13
    # By hand: dS = (P - (1 - alpha) Y - alpha/C) / N, the smoothed labels' residual.
    p, onehot = _softmax(x @ w + b), np.eye(c)[y]
    by_hand = x.T @ ((p - (1 - alpha) * onehot - alpha / c) / n)
    assert np.max(np.abs(np.asarray(got["grad"]["W"]) - by_hand)) < 1e-13


def test_a_third_layer_matches_autograd(capsys, tmp_path) -> None:
    n, d, h, g, c, reg = 5, 4, 3, 6, 2, 0.05
    data = {**_arrays(X=(n, d), W1=(d, h), b1=(h,), W2=(h, g), b2=(g,), W3=(g, c), b3=(c,)),
            "y": RNG.integers(0, c, n).tolist(), "reg": reg}
    got = _eval("three_layer_net", data, capsys, tmp_path)
    x, y = np.asarray(data["X"]), np.asarray(data["y"])
    names = ("W1", "b1", "W2", "b2", "W3", "b3")

    def loss(*p):
        w1, b1, w2, b2, w3, b3 = p
        h2 = anp.maximum(anp.maximum(x @ w1 + b1, 0) @ w2 + b2, 0)
        return _ce(h2 @ w3 + b3, y) + reg / 2 * sum(anp.sum(w * w) for w in (w1, w2, w3))

    params = [np.asarray(data[k]) for k in names]
    assert got["loss"] == pytest.approx(float(loss(*params)), rel=1e-13)
    for i, k in enumerate(names):
        assert np.max(np.abs(np.asarray(got["grad"][k]) - grad(loss, i)(*params))) < 1e-13


def test_attention_with_a_projection_matches_autograd(capsys, tmp_path) -> None:
    n, m, d, dv, e = 3, 4, 2, 5, 2
    data = _arrays(Q=(n, d), K=(m, d), V=(m, dv), W_o=(dv, e), dout=(n, e))
    got = _eval("attention_proj", data, capsys, tmp_path)
    q, k, v, wo, dout = (np.asarray(data[s]) for s in ("Q", "K", "V", "W_o", "dout"))

    def loss(q, k, v, wo):
        return anp.sum(dout * (_softmax(q @ k.T / np.sqrt(d)) @ v @ wo))

    for i, name in enumerate(("Q", "K", "V", "W_o")):
        want = grad(loss, i)(q, k, v, wo)
        assert np.max(np.abs(np.asarray(got["grad"][name]) - want)) < 1e-13, name


def test_skip_gram_with_a_penalty_matches_autograd(capsys, tmp_path) -> None:
    vocab, d, reg = 6, 3, 0.2
    data = {**_arrays(center=(d,), U=(vocab, d)), "outside": 2, "reg": reg}
    got = _eval("word2vec_l2", data, capsys, tmp_path)
    vc, u = np.asarray(data["center"]), np.asarray(data["U"])

    def loss(vc, u):
        s = (u @ vc)[None, :]
        return _ce(s, np.array([2])) + reg / 2 * (anp.sum(vc * vc) + anp.sum(u * u))

    assert got["loss"] == pytest.approx(float(loss(vc, u)), rel=1e-13)
    assert np.max(np.abs(np.ravel(got["grad"]["center"]) - grad(loss, 0)(vc, u))) < 1e-13
    assert np.max(np.abs(np.asarray(got["grad"]["U"]) - grad(loss, 1)(vc, u))) < 1e-13
