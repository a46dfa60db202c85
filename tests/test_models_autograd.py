"""``derive grad`` of the cells the set files in ``tests/models/`` define, against autograd.

Each cell's step is written here by hand in ``autograd.numpy``, from its equations as a
reader of the set file understands them (a weight times a vector is a matrix-vector
product, any other product elementwise), not from the parsed equations.  The loss is
L = sum_t dL_dh[t] . h[t]; ``autograd.grad`` of it gives every weight's and bias's gradient
and the adjoints of the initial states and of the inputs, which must agree with the
command's output to 1e-12 relative (both are float64).  The scalar form runs on the C
backend (where a compiler is) and on NumPy; the vector form with biases on NumPy.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable
from pathlib import Path

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad

from derive.cli import main
from derive.engine import native

MODELS = Path(__file__).resolve().parent / "models"
RTOL = 1e-12


# -- the cells, by hand ------------------------------------------------------------------------
def _sigma(z):
    return 1.0 / (1.0 + anp.exp(-z))


def mgu_step(p: dict, x, s: dict) -> dict:
    """The minimal gated unit: a forget gate f mixes h[t-1] with a candidate n."""
    h = s["h"]
    f = _sigma(p["w_fx"] @ x + p["w_fh"] @ h + p["b_f"])
    n = anp.tanh(p["w_nx"] @ x + p["w_nh"] @ (f * h) + p["b_n"])
    return {"h": (1 - f) * h + f * n}


def peephole_step(p: dict, x, s: dict) -> dict:
    """An LSTM whose three gates also see the previous cell state c[t-1]."""
    h, c = s["h"], s["c"]

    def gate(g: str):
        return _sigma(p[f"w_{g}x"] @ x + p[f"w_{g}h"] @ h + p[f"w_{g}c"] @ c + p[f"b_{g}"])

    i, f, o = gate("i"), gate("f"), gate("o")
    g = anp.tanh(p["w_gx"] @ x + p["w_gh"] @ h + p["b_g"])
    c = f * c + i * g
    return {"h": o * anp.tanh(c), "c": c}


def coupled_step(p: dict, x, s: dict) -> dict:
    """An LSTM with no input gate of its own: what is forgotten is replaced, i = 1 - f."""
    h, c = s["h"], s["c"]
    f = _sigma(p["w_fx"] @ x + p["w_fh"] @ h + p["b_f"])
    o = _sigma(p["w_ox"] @ x + p["w_oh"] @ h + p["b_o"])
    g = anp.tanh(p["w_gx"] @ x + p["w_gh"] @ h + p["b_g"])
    c = f * c + (1 - f) * g
    return {"h": o * anp.tanh(c), "c": c}


#: Per set file: its model, its step, its weights (with the vector each multiplies), biases
#: and states.  The lists are typed here, not read from the set files.
CELLS: dict[str, tuple[str, Callable, dict[str, str], tuple[str, ...], tuple[str, ...]]] = {
    "mgu": ("mgu", mgu_step,
            {"w_fx": "x", "w_fh": "h", "w_nx": "x", "w_nh": "h"}, ("b_f", "b_n"), ("h",)),
    "peephole": ("peephole_lstm", peephole_step,
                 {f"w_{g}{v}": v for g in "ifo" for v in "xhc"} | {"w_gx": "x", "w_gh": "h"},
                 ("b_i", "b_f", "b_o", "b_g"), ("h", "c")),
    "coupled": ("coupled_lstm", coupled_step,
                {f"w_{g}{v}": v for g in "fog" for v in "xh"},
                ("b_f", "b_o", "b_g"), ("h", "c")),
}


def run(step: Callable, p: dict, xs: list, init: dict) -> list[dict]:
    """The states after each step t = 1..T."""
    s, out = init, []
    for x in xs:
        s = step(p, x, s)
        out.append(s)
    return out


def loss(args: dict, step: Callable) -> float:
    """L = sum_t dL_dh[t] . h[t], of the parameters, inputs and initial states in ``args``."""
    traj = run(step, args["p"], args["x"], args["init"])
    return sum(anp.sum(a * s["h"]) for a, s in zip(args["a"], traj, strict=True))


# -- inputs ------------------------------------------------------------------------------------
def draw(f: str, steps: int, rng: np.random.Generator, n_h: int = 0, n_x: int = 0) -> dict:
    """A ``derive grad`` input for the cell of ``f``: scalars when ``n_h`` is 0, else the
    vector form with biases, n_h x n_x weights on x and n_h x n_h on the states."""
    _, _, weights, biases, states = CELLS[f]

    def value(rows: int, cols: int = 0):
        if not n_h:
            return float(rng.uniform(-1.0, 1.0))
        shape = (rows, cols) if cols else (rows,)
        return rng.uniform(-1.0, 1.0, shape).tolist()

    data = {"weights": {w: value(n_h, n_x if v == "x" else n_h) for w, v in weights.items()}}
    if n_h:
        data["weights"] |= {b: value(n_h) for b in biases}
    data["x"] = [value(n_x) for _ in range(steps)]
    data |= {f"{s}0": value(n_h) for s in states}
    data["dL_dh"] = [value(n_h) for _ in range(steps)]
    return data


def reference(f: str, data: dict) -> tuple[dict, dict]:
    """The states per step and autograd's gradients, shaped as ``derive grad`` prints them
    (a scalar input as a 1 x 1 matrix and 1-vectors, squeezed back at the end)."""
    _, step, weights, biases, states = CELLS[f]
    scalar = not isinstance(data["x"][0], list)

    def col(v):
        return np.array(v, dtype=float).reshape(-1, 1)

    w = data["weights"]
    p = {k: np.array(w[k], dtype=float).reshape(np.shape(w[k]) or (1, 1)) for k in weights}
    p |= {k: col(w.get(k, 0.0)) for k in biases}  # zero in the scalar form
    args = {"p": p, "x": [col(v) for v in data["x"]],
            "init": {s: col(data[f"{s}0"]) for s in states}, "a": [col(v) for v in data["dL_dh"]]}
    g = grad(loss)(args, step)
    traj = run(step, p, args["x"], args["init"])

    def shown(v):
        return float(v.item()) if scalar else v.ravel()

    values = {s: [shown(t[s]) for t in traj] for s in states}
    want = {k: float(g["p"][k].item()) if scalar else g["p"][k] for k in weights}
    if not scalar:
        want |= {k: g["p"][k].ravel() for k in biases}
    want |= {f"{s}0": shown(g["init"][s]) for s in states}
    want["x"] = [shown(v) for v in g["x"]]
    return values, want


# -- the command -------------------------------------------------------------------------------
def derive_grad(f: str, data: dict, backend: str, capsys, monkeypatch) -> dict:
    """``derive grad <model> --set tests/models/<f>.toml --input - --backend B``."""
    model = CELLS[f][0]
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(data)))
    status = main(["grad", model, "--set", str(MODELS / f"{f}.toml"), "--input", "-",
                   "--backend", backend])
    out, err = capsys.readouterr()
    assert status == 0 and err == "", err
    result = json.loads(out)
    assert result.pop("backend") == backend
    return result


def assert_close(got, want, what: str) -> None:
    """Entrywise |got - want| <= RTOL |want|, shapes equal."""
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    err = np.abs(got - want)
    worst = float(np.max(err / np.maximum(np.abs(want), 1e-300)))
    assert np.all(err <= RTOL * np.abs(want)), f"{what}: relative error {worst:.1e}"


def assert_agrees(f: str, data: dict, out: dict) -> None:
    values, want = reference(f, data)
    assert set(out) == {*values, "grad"} and set(out["grad"]) == set(want)
    for s, v in values.items():
        assert_close(out[s], v, s)
    for k, v in want.items():
        assert_close(out["grad"][k], v, f"grad.{k}")


BACKENDS = [
    pytest.param("c", marks=pytest.mark.skipif(not native.available(), reason="no C compiler")),
    "numpy",
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("steps", [1, 3, 8])
@pytest.mark.parametrize("f", list(CELLS))
def test_scalar_grad_agrees_with_autograd(f, steps, backend, capsys, monkeypatch):
    data = draw(f, steps, np.random.default_rng([steps, len(f)]))
    assert_agrees(f, data, derive_grad(f, data, backend, capsys, monkeypatch))


@pytest.mark.parametrize("f", list(CELLS))
def test_vector_grad_with_biases_agrees_with_autograd(f, capsys, monkeypatch):
    data = draw(f, 3, np.random.default_rng([7, len(f)]), n_h=3, n_x=2)
    assert_agrees(f, data, derive_grad(f, data, "numpy", capsys, monkeypatch))


def test_the_reference_is_sensitive(capsys, monkeypatch):
    """A cell that differs from the set file's by one sign is caught: the MGU with its
    forget gate's roles swapped, h = f*h[t-1] + (1 - f)*n."""
    data = draw("mgu", 3, np.random.default_rng(5))
    out = derive_grad("mgu", data, "numpy", capsys, monkeypatch)

    def swapped(p, x, s):
        h = s["h"]
        f = _sigma(p["w_fx"] @ x + p["w_fh"] @ h + p["b_f"])
        n = anp.tanh(p["w_nx"] @ x + p["w_nh"] @ (f * h) + p["b_n"])
        return {"h": f * h + (1 - f) * n}

    monkeypatch.setitem(CELLS, "mgu", (*CELLS["mgu"][:1], swapped, *CELLS["mgu"][2:]))
    with pytest.raises(AssertionError, match="relative error"):
        assert_agrees("mgu", data, out)
