"""Tests for derive.feedforward: feed-forward graphs over matrices and their derived adjoints.

Every gradient is checked against two routes that share nothing with the rules: a complex
step through the graph's forward pass, and autograd on the loss written out by hand.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import autograd.numpy as anp
import numpy as np
import pytest
import sympy as sp
from autograd import grad

from derive.cli import main
from derive.errors import InputError
from derive.feedforward import Graph, adjoints, numeric, text
from derive.model.defined import model_class
from derive.render.document import render
from derive.sets import get_set

N, D, H, C = sp.symbols("N D H C", positive=True, integer=True)
PARAMS = ("W1", "b1", "W2", "b2")


def two_layer(fn: str = "relu") -> Graph:
    """affine -> fn -> affine -> softmax cross-entropy, plus (reg/2)(|W1|^2 + |W2|^2)."""
    g = Graph()
    g.input("X", N, D)
    g.labels("y", N)
    for name, rows, cols in (("W1", D, H), ("b1", 1, H), ("W2", H, C), ("b2", 1, C)):
        g.param(name, rows, cols)
    g.const("reg")
    g.matmul("Z1", "X", "W1")
    g.add("A1", "Z1", "b1")
    g.fn("H1", fn, "A1")
    g.matmul("Z2", "H1", "W2")
    g.add("S", "Z2", "b2")
    g.softmax_ce("data", "S", "y")
    g.sumsq("R1", "W1")
    g.sumsq("R2", "W2")
    g.add("R", "R1", "R2")
    g.scale("halfR", sp.Rational(1, 2), "R")
    g.scale("penalty", "reg", "halfR")
    g.add("L", "data", "penalty")
    return g


def data(seed: int, n: int = 6, d: int = 4, h: int = 5, c: int = 3, scale: float = 1.0):
    rng = np.random.default_rng(seed)
    return {
        "X": rng.normal(size=(n, d)) * scale,
        "y": rng.integers(0, c, size=n),
        "W1": rng.normal(size=(d, h)), "b1": rng.normal(size=(1, h)),
        "W2": rng.normal(size=(h, c)), "b2": rng.normal(size=(1, c)),
        "reg": 0.3,
    }  # fmt: skip


def complex_step(g: Graph, given: dict, name: str, step: float = 1e-20) -> np.ndarray:
    out = np.zeros(np.shape(given[name]))
    for idx in np.ndindex(out.shape):
        moved = np.array(given[name], dtype=complex)
        moved[idx] += step * 1j
        out[idx] = numeric.forward(g, {**given, name: moved})[g.loss.name].imag / step
    return out


def by_hand(fn):
    """The same loss written out in autograd's NumPy, from the definitions alone."""
    act = {"relu": lambda z: anp.maximum(z, 0.0), "tanh": anp.tanh,
           "sigma": lambda z: 1 / (1 + anp.exp(-z))}[fn]  # fmt: skip

    def loss(w1, b1, w2, b2, x, y, reg):
        s = act(x @ w1 + b1) @ w2 + b2
        m = anp.max(s, axis=1, keepdims=True)
        logp = s - m - anp.log(anp.sum(anp.exp(s - m), axis=1, keepdims=True))
        n = x.shape[0]
        data = -anp.sum(logp[np.arange(n), y]) / n
        return data + 0.5 * reg * (anp.sum(w1 * w1) + anp.sum(w2 * w2))

    return loss


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


@pytest.mark.parametrize("fn", ["relu", "tanh", "sigma"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_two_layer_gradients_match_complex_step_and_autograd(fn: str, seed: int) -> None:
    g, given = two_layer(fn), data(seed)
    derived = numeric.gradients(g, given)
    loss = by_hand(fn)
    args = [given[k] for k in (*PARAMS, "X", "y", "reg")]
    for i, name in enumerate(PARAMS):
        assert derived[name].shape == np.shape(given[name])
        assert rel(derived[name], complex_step(g, given, name)) < 1e-13, name
        assert rel(derived[name], grad(loss, i)(*args)) < 1e-12, name


def test_the_loss_is_the_definition() -> None:
    g, given = two_layer(), data(4)
    args = [given[k] for k in (*PARAMS, "X", "y", "reg")]
    assert numeric.forward(g, given)["L"] == pytest.approx(by_hand("relu")(*args), rel=1e-14)


def test_large_scores_do_not_overflow() -> None:
    g, given = two_layer("tanh"), data(5, scale=1.0)
    given["W2"] = given["W2"] * 400  # scores near ±2000: exp would overflow unshifted
    values = numeric.forward(g, given)
    assert np.isfinite(values["L"])
    derived = numeric.gradients(g, given)
    assert all(np.all(np.isfinite(derived[k])) for k in PARAMS)
    assert rel(derived["b2"], complex_step(g, given, "b2")) < 1e-12


def test_rules_give_the_forms_a_key_writes() -> None:
    g = two_layer()
    adj = adjoints(g)
    s, data_loss = g.nodes["S"], g.nodes["data"]
    p, y = sp.MatrixSymbol("P_S", N, C), sp.MatrixSymbol("Y_S", N, C)
    # The softmax rule: (P - Y)/N, the loss's adjoint a factor.
    assert sp.simplify(adj["S"] - data_loss.bar * (p - y) / N) == sp.ZeroMatrix(N, C)
    # A product's rules: H1ᵀ Z̄2 for W2, Z̄2 W2ᵀ for H1; the penalty adds 2 R̄2 W2.
    w2, h1, z2 = (g.nodes[k] for k in ("W2", "H1", "Z2"))
    expected = h1.symbol.T * z2.bar + 2 * g.nodes["R2"].bar * w2.symbol
    assert sp.simplify(adj["W2"] - expected) == sp.ZeroMatrix(H, C)
    assert adj["H1"] == z2.bar * w2.symbol.T
    # A bias row gets the column sums of its sum's adjoint: 1ᵀ Ā1.
    assert adj["b1"] == sp.OneMatrix(1, N) * g.nodes["A1"].bar
    assert s.shape == (N, C) and adj["b1"].shape == (1, H)
    # Every adjoint has its node's shape, and reads only adjoints derived before it.
    done = set()
    for name, formula in adj.items():
        node = g.nodes[name]
        assert sp.shape(formula) == node.shape if node.shape != (1, 1) else True
        read = {a.name for a in sp.preorder_traversal(formula)
                if getattr(a, "name", "").startswith("bar_")}  # fmt: skip
        assert read <= done, name
        done.add(node.bar.name)


def test_a_derivative_in_the_value_reads_the_node() -> None:
    # tanh' = 1 - u^2 in terms of u = tanh(z): the formula reads H1, not A1.
    adj = adjoints(two_layer("tanh"))
    atoms = {a.name for a in sp.preorder_traversal(adj["A1"]) if isinstance(a, sp.MatrixSymbol)}
    assert atoms == {"bar_H1", "H1"}


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda g: g.matmul("Z", "X", "X"), "X has D columns, X has N rows"),
        (lambda g: g.add("Z", "X", "W1"), "shapes N×D and D×H do not add"),
        (lambda g: g.fn("Z", "gelu", "X"), "'gelu' is not a registered function"),
        (lambda g: g.scale("Z", "W1", "X"), "W1 is not a constant"),
        (lambda g: g.scale("Z", sp.Symbol("W1") / 2, "X"), "the factor W1/2 reads something"),
        (lambda g: g.hadamard("Z", "X", "W1"), "an entrywise product needs equal shapes"),
        (lambda g: g.sub("Z", "X", "W1"), r"Z = X - W1: shapes N×D and D×H do not add"),
        (lambda g: g.matmul("X", "X", "W1"), "'X' is defined twice"),
        (lambda g: g.matmul("Z", "Q", "W1"), "'Q' is used before it is defined"),
        (lambda g: g.softmax_ce("L", "X", "W1"), "W1 is not a node of labels"),
        (lambda g: g.softmax_ce("L", "W1", "y"), "W1 and y have different numbers of rows"),
    ],
)
def test_ill_formed_graphs_are_one_line_errors(build, message: str) -> None:
    g = Graph()
    g.input("X", N, D)
    g.labels("y", N)
    g.param("W1", D, H)
    with pytest.raises(InputError, match=message) as info:
        build(g)
    assert "\n" not in str(info.value)


def test_the_loss_must_be_a_scalar() -> None:
    g = Graph()
    g.input("X", N, D)
    g.param("W", D, H)
    g.matmul("Z", "X", "W")
    with pytest.raises(InputError, match="the last node Z is the loss and must be a scalar"):
        adjoints(g)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"W1": np.ones((5, 5))}, r"W1: expected 4×H, got \(5, 5\) \(D is 4 in X\)"),
        ({"b1": np.ones(5)}, r"b1: expected 1×5, got an array of shape \(5,\)"),
        ({"b1": np.ones((2, 5))}, r"b1: expected 1×5, got \(2, 5\) \(it has 1 row\)"),
        ({"y": np.zeros((6, 1))}, r"y: expected 6 labels, got an array of shape \(6, 1\)"),
        ({"reg": [0.1, 0.2]}, r"reg: expected a number, got an array of shape \(2,\)"),
    ],
)
def test_mis_shaped_arrays_are_named_with_their_shape(change: dict, message: str) -> None:
    g, given = two_layer(), {**data(6), **change}
    with pytest.raises(InputError, match=message):
        numeric.gradients(g, given)


def test_a_missing_array_is_named() -> None:
    g, given = two_layer(), data(6)
    del given["W2"]
    with pytest.raises(InputError, match="missing W2: expected 5×C"):
        numeric.forward(g, given)


# -- the graph language (derive.feedforward.text) ------------------------------------------------
TWO_LAYER = {
    "sizes": ["N", "D", "H", "C"],
    "inputs": {"X": ["N", "D"]},
    "labels": {"y": "N"},
    "params": {"W1": ["D", "H"], "b1": [1, "H"], "W2": ["H", "C"], "b2": [1, "C"]},
    "constants": ["reg"],
    "equations": [
        "H1 = relu(X @ W1 + b1)",
        "S = H1 @ W2 + b2",
        "L = softmax_ce(S, y) + reg/2*(sumsq(W1) + sumsq(W2))",
    ],
}


def test_the_two_layer_net_as_text_is_the_graph() -> None:
    g, given = text.graph_from_table(TWO_LAYER, "models.net"), data(7)
    assert [n.name for n in g.params()] == list(PARAMS)
    assert g.nodes["S"].shape == (N, C) and g.loss.name == "L"
    derived, built = numeric.gradients(g, given), numeric.gradients(two_layer(), given)
    args = [given[k] for k in (*PARAMS, "X", "y", "reg")]
    for i, name in enumerate(PARAMS):
        assert rel(derived[name], built[name]) < 1e-14, name
        assert rel(derived[name], grad(by_hand("relu"), i)(*args)) < 1e-12, name


def test_differences_entrywise_products_and_numbers() -> None:
    # A gated layer (tanh ∘ σ) and half a squared error: sub, hadamard and scaling.
    table = {
        "sizes": ["N", "D", "H"],
        "inputs": {"X": ["N", "D"], "T": ["N", "H"]},
        "params": {"W": ["D", "H"], "V": ["D", "H"], "c": [1, "H"]},
        "equations": ["G = tanh(X @ W) * sigma(X @ V + c)",
                      "L = 0.5*sumsq(G - T) - sumsq(-c)/4"],
    }  # fmt: skip
    g = text.graph_from_table(table, "models.gate")
    rng = np.random.default_rng(8)
    given = {"X": rng.normal(size=(5, 3)), "T": rng.normal(size=(5, 4)),
             "W": rng.normal(size=(3, 4)), "V": rng.normal(size=(3, 4)),
             "c": rng.normal(size=(1, 4))}  # fmt: skip
    derived = numeric.gradients(g, given)

    def loss(w, v, c, x, t):
        gate = anp.tanh(x @ w) * (1 / (1 + anp.exp(-(x @ v + c))))
        return 0.5 * anp.sum((gate - t) ** 2) - anp.sum(c * c) / 4

    args = [given[k] for k in ("W", "V", "c", "X", "T")]
    for i, name in enumerate(("W", "V", "c")):
        assert rel(derived[name], complex_step(g, given, name)) < 1e-13, name
        assert rel(derived[name], grad(loss, i)(*args)) < 1e-12, name


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"equations": ["L = relu(Q)"]}, "'Q' is not declared nor assigned before"),
        ({"equations": ["L = gelu(X)"]}, "'gelu' is not a function; known:"),
        ({"equations": ["L = softmax_ce(X)"]}, "softmax_ce takes 2 argument"),
        ({"equations": ["L = sum(2 / X)"]}, "a number or constant divided by a matrix"),
        ({"equations": ["L = sum(X @ 2)"]}, "or in a matrix product"),
        ({"equations": ["L = X ^ 2"]}, "a power of a matrix; write A\\*A"),
        ({"equations": ["L = reg*2"]}, "only numbers and constants"),
        ({"equations": ["L = X @ W1"]}, "the last node L is the loss and must be a scalar"),
        ({"equations": ["L = sumsq(X) +"]}, "column 14: unexpected end of the equation"),
        ({"equations": ["L = sumsq(X) $ 1"]}, "unexpected character '\\$'"),
        ({"equations": []}, "expected 1 to 32 equations"),
        ({"params": {"W1": ["D", "K"]}}, r"expected \[rows, columns\], each a declared size"),
        ({"params": {"sigma": ["D", "H"]}}, "'sigma' is not allowed as a name"),
        ({"sizes": ["N", 3]}, "expected a list of size names"),
    ],
)
def test_bad_graph_tables_are_one_line_errors(change: dict, message: str) -> None:
    table = {**TWO_LAYER, **change}
    with pytest.raises(InputError, match=message) as info:
        text.graph_from_table(table, "models.net")
    assert "\n" not in str(info.value) and str(info.value).startswith("models.net")


# -- a network as a problem of a set file (kind = "graph") -----------------------------------------
GRAPH_SET = Path(__file__).resolve().parent / "models" / "graphs" / "two_layer.toml"


@pytest.fixture(scope="module")
def net():
    return get_set(str(GRAPH_SET)).make_problem("two_layer_net")


def test_every_claim_of_the_network_passes(net) -> None:
    claims = {(c.claim, c.method) for c in net.checks}
    assert all(c.passed for c in net.checks)
    names = ("S", "H1", "W1", "b1", "W2", "b2")
    assert claims == {(f"{n}_bar", f"{m} on the forward pass") for n in names
                      for m in ("complex step", "central difference")}  # fmt: skip


def test_the_printed_formulas_are_autograds_gradients(net) -> None:
    # The key's formulas (hidden steps inlined) on fresh data, against autograd.
    sizes = net.check_sizes()
    given = net.data(sizes, np.random.default_rng(99))
    derived = net.evaluated(given, sizes)
    args = [given[k] for k in (*PARAMS, "X", "y", "reg")]
    for i, name in enumerate(PARAMS):
        assert rel(derived[name], grad(by_hand("relu"), i)(*args)) < 1e-12, name


def test_the_key_writes_the_forms_of_a_key(net) -> None:
    tex = render(get_set(str(GRAPH_SET)), [net])
    assert r"\overline{S} &= \frac{1}{N} (P - Y)" in tex
    assert r"\overline{H_{1}} &= \overline{S} W_{2}^{\top}" in tex
    assert r"\overline{b_{2}} &= \mathbf{1}^{\top} \overline{S}" in tex
    assert r"\operatorname{step}(X W_{1} + \mathbf{1} b_{1})" in tex
    assert "Bar" not in tex and "bar_" not in tex


def test_the_network_exports_to_json(tmp_path) -> None:
    assert main(["build", str(GRAPH_SET), "--format", "json", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "graph_two_layer" / "derivations.json").read_text())
    results = data["problems"]["two_layer_net"]["results"]
    assert {"W1_bar", "b1_bar", "W2_bar", "b2_bar", "S_bar", "H1_bar"} <= set(results)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"params": {}}, "expected at least one parameter"),
        ({"colour": "red"}, "models.two_layer_net.colour: unknown key"),
        ({"title": ""}, "models.two_layer_net.title: expected a non-empty string"),
    ],
)
def test_bad_network_models_are_one_line_errors(tmp_path, change, message) -> None:
    text_ = GRAPH_SET.read_text()
    table = tomllib.loads(text_)
    model = {**table["models"]["two_layer_net"], **change}
    if change == {"params": {}}:
        model["equations"] = ["L = sumsq(X)"]
    with pytest.raises(InputError, match=message):
        model_class("two_layer_net", model, "models.two_layer_net")


@pytest.mark.parametrize(("reduce", "axis"), [("mean", 0), ("rowmean", 1)],
                         ids=["batch norm", "layer norm"])
def test_normalization_by_reductions_and_spread_values(reduce: str, axis: int) -> None:
    # Batch norm: the mean of the rows (a row), taken from and dividing every row; layer
    # norm: each row's mean (a column), over every column.  Besides: entrywise squares, a
    # constant added to every entry, a row multiplying every row, the sum of all entries.
    table = {
        "sizes": ["N", "D"],
        "inputs": {"G": ["N", "D"]},
        "params": {"X": ["N", "D"], "gamma": [1, "D"], "beta": [1, "D"]},
        "constants": ["eps"],
        "equations": [f"mu = {reduce}(X)", "Xc = X - mu", f"v = {reduce}(Xc*Xc)",
                      "Xh = Xc / sqrt(v + eps)", "out = gamma*Xh + beta", "L = sum(G*out)"],
    }  # fmt: skip
    g = text.graph_from_table(table, "models.norm")
    n, d = (sp.Symbol(k, positive=True, integer=True) for k in ("N", "D"))
    assert g.nodes["mu"].shape == ((1, d) if axis == 0 else (n, 1))
    rng = np.random.default_rng(31 + axis)
    given = {"X": rng.normal(size=(6, 3)) * 2 + 1, "G": rng.normal(size=(6, 3)),
             "gamma": rng.normal(size=(1, 3)), "beta": rng.normal(size=(1, 3)), "eps": 1e-5}
    derived = numeric.gradients(g, given)

    def loss(x, gamma, beta, dout):
        xc = x - anp.mean(x, axis=axis, keepdims=True)
        xh = xc / anp.sqrt(anp.mean(xc * xc, axis=axis, keepdims=True) + 1e-5)
        return anp.sum(dout * (gamma * xh + beta))

    args = [given[k] for k in ("X", "gamma", "beta", "G")]
    for i, name in enumerate(("X", "gamma", "beta")):
        assert rel(derived[name], complex_step(g, given, name)) < 1e-12, name
        assert rel(derived[name], grad(loss, i)(*args)) < 1e-12, name


# -- derive eval ---------------------------------------------------------------------------------
def eval_input(seed: int = 21) -> dict:
    given = data(seed, n=4)
    out = {k: np.asarray(v).tolist() for k, v in given.items()}
    out["b1"], out["b2"] = out["b1"][0], out["b2"][0]  # rows as flat lists (H), (C)
    return out


def run_eval(payload, capsys, tmp_path) -> tuple[int, str, str]:
    path = tmp_path / "in.json"
    path.write_text(json.dumps(payload))
    status = main(["eval", "two_layer_net", "--set", str(GRAPH_SET), "--input", str(path)])
    out, err = capsys.readouterr()
    return status, out, err


def test_eval_gives_the_loss_and_autograds_gradients(capsys, tmp_path) -> None:
    payload = eval_input()
    status, out, err = run_eval(payload, capsys, tmp_path)
    assert (status, err) == (0, "")
    got = json.loads(out)
    given = {k: np.asarray(v) for k, v in payload.items()}
    given["b1"], given["b2"] = given["b1"][None, :], given["b2"][None, :]
    args = [given[k] for k in (*PARAMS, "X", "y", "reg")]
    assert got["loss"] == pytest.approx(by_hand("relu")(*args), rel=1e-14)
    for i, name in enumerate(PARAMS):
        want = grad(by_hand("relu"), i)(*args)
        assert rel(np.asarray(got["grad"][name]).reshape(want.shape), want) < 1e-12, name
    assert np.ndim(got["grad"]["b1"]) == 1  # a row comes back as it was given


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"W2": None}, "input: missing key 'W2'"),
        ({"W1": [[1.0, 2.0], [3.0]]}, "input.W1: ragged matrix"),
        ({"W1": [[1.0] * 6] * 4}, r"b1: expected 1×6, got \(1, 5\) \(H is 6 in W1\)"),
        ({"X": [[1.0] * 4] * 3}, r"y: expected 3 labels, got \(4,\) \(N is 3 in X\)"),
        ({"y": [0, 1, 7, 0]}, r"input.y\[2\]: expected a class index 0..2, got 7"),
        ({"y": [0, 1.5, 0, 0]}, "input.y: expected a non-empty list of whole-number labels"),
        ({"reg": "0.1"}, "input.reg: expected a finite number"),
        ({"extra": 1}, "input: unknown key 'extra'"),
    ],
)
def test_eval_refuses_bad_arrays_in_one_line(capsys, tmp_path, change, message) -> None:
    payload = {**eval_input(), **change}
    payload = {k: v for k, v in payload.items() if v is not None}
    status, out, err = run_eval(payload, capsys, tmp_path)
    assert (status, out) == (2, "")
    assert err.startswith("derive: error: ") and err.count("\n") == 1
    assert re.search(message, err), err
