"""Tests for the ``derive`` command line (derive.cli.main).

``derive grad lstm`` is checked against an independent reference written here: a plain
numpy LSTM forward pass differentiated by complex step.  Bad input must give exit status
2, one ``derive: error: ...`` line naming the field, no traceback and no output.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from derive.cli import main
from derive.problems import REGISTRY
from derive.sets import bundled

# Registered problems, then the models derive's own sets define (dl_foundations').
KNOWN = ", ".join([*REGISTRY, "softmax_ce", "two_layer_net", "batchnorm", "layernorm",
                   "attention", "word2vec", "word2vec_neg", "sgd", "sgd_momentum", "nesterov",
                   "rmsprop", "adam"])

REPO = Path(__file__).resolve().parents[1]
GATES = ("i", "f", "o", "g")
WEIGHTS = tuple(f"w_{g}{s}" for g in GATES for s in ("x", "h"))
BIASES = tuple(f"b_{g}" for g in GATES)
STEP = 1e-30
OLD = b"% previous answer key, must survive a failed build\n"


# -- an independent reference: numpy forward pass + complex step --------------------------------
def _sigma(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def lstm_forward(p: dict[str, np.ndarray], xs: list, h0: np.ndarray, c0: np.ndarray):
    """The LSTM of the handout on column vectors (a scalar LSTM is the 1x1 case).

    ``p`` holds the weight matrices and, optionally, bias columns.  Returns the lists of
    hidden and cell states for t = 1..T.
    """
    h, c = h0, c0
    hs, cs = [], []
    for x in xs:

        def pre(gate: str, x=x, h=h) -> np.ndarray:
            z = p[f"w_{gate}x"] @ x + p[f"w_{gate}h"] @ h
            return z + p[f"b_{gate}"] if f"b_{gate}" in p else z

        i, f, o, g = _sigma(pre("i")), _sigma(pre("f")), _sigma(pre("o")), np.tanh(pre("g"))
        c = f * c + i * g
        h = o * np.tanh(c)
        hs.append(h)
        cs.append(c)
    return hs, cs


def lstm_loss(p, xs, h0, c0, a) -> complex:
    """L = sum_t a_t . h_t."""
    hs, _ = lstm_forward(p, xs, h0, c0)
    return sum(np.sum(at * ht) for at, ht in zip(a, hs, strict=True))


def complex_step_grad(p, xs, h0, c0, a) -> dict[str, Any]:
    """dL/d(every entry) of the weights, biases, x_t, h0 and c0 by complex step."""
    p = {k: np.asarray(v, dtype=complex) for k, v in p.items()}
    xs = [np.asarray(x, dtype=complex) for x in xs]
    h0, c0 = np.asarray(h0, dtype=complex), np.asarray(c0, dtype=complex)

    def entrywise(arr: np.ndarray, loss) -> np.ndarray:
        out = np.zeros(arr.shape)
        for idx in np.ndindex(arr.shape):
            arr[idx] += 1j * STEP
            out[idx] = np.imag(loss()) / STEP
            arr[idx] -= 1j * STEP
        return out

    def loss() -> complex:
        return lstm_loss(p, xs, h0, c0, a)

    grads = {k: entrywise(v, loss) for k, v in p.items()}
    grads["h0"] = entrywise(h0, loss)
    grads["c0"] = entrywise(c0, loss)
    grads["x"] = [entrywise(x, loss) for x in xs]
    return grads


def assert_rel_close(got: Any, ref: Any, rtol: float) -> None:
    """Entrywise |got - ref| <= rtol |ref| (shapes must agree)."""
    got, ref = np.asarray(got, dtype=float), np.asarray(ref, dtype=float)
    assert got.shape == ref.shape
    assert np.all(np.isfinite(got))
    err = np.abs(got - ref)
    assert np.all(err <= rtol * np.abs(ref) + 1e-300), (got, ref, np.max(err / np.abs(ref)))


# -- inputs --------------------------------------------------------------------------------------
SCALAR = {
    "weights": {
        "w_ix": 0.31,
        "w_ih": -0.72,
        "w_fx": 1.13,
        "w_fh": 0.45,
        "w_ox": -0.58,
        "w_oh": 0.94,
        "w_gx": 0.77,
        "w_gh": -1.21,
    },
    "x": [0.5, -1.25, 2.0, 0.125, -0.75],
    "h0": 0.2,
    "c0": -0.4,
    "dL_dh": [1.0, -0.5, 0.25, 2.0, -1.5],
}
N_H, N_X, T_STEPS = 3, 2, 4


def vector_input(biases: tuple[str, ...] = BIASES, seed: int = 421) -> dict:
    """A vector-form input, n_h = 3, n_x = 2, T = 4, with the given biases."""
    rng = np.random.default_rng(seed)

    def mat(rows: int, cols: int) -> list:
        return rng.uniform(-1.0, 1.0, (rows, cols)).tolist()

    def vec(n: int) -> list:
        return rng.uniform(-1.0, 1.0, n).tolist()

    weights = {k: mat(N_H, N_X if k.endswith("x") else N_H) for k in WEIGHTS}
    weights |= {k: vec(N_H) for k in biases}
    return {
        "weights": weights,
        "x": [vec(N_X) for _ in range(T_STEPS)],
        "h0": vec(N_H),
        "c0": vec(N_H),
        "dL_dh": [vec(N_H) for _ in range(T_STEPS)],
    }


def reference_scalar(data: dict) -> tuple[list, list, dict]:
    p = {k: np.array([[v]]) for k, v in data["weights"].items()}
    xs = [np.array([[v]]) for v in data["x"]]
    h0, c0 = np.array([[data["h0"]]]), np.array([[data["c0"]]])
    a = [np.array([[v]]) for v in data["dL_dh"]]
    hs, cs = lstm_forward(p, xs, h0, c0)
    g = complex_step_grad(p, xs, h0, c0, a)
    grad = {k: float(g[k][0, 0]) for k in p}
    grad |= {"h0": float(g["h0"][0, 0]), "c0": float(g["c0"][0, 0])}
    grad["x"] = [float(v[0, 0]) for v in g["x"]]
    return [float(v[0, 0]) for v in hs], [float(v[0, 0]) for v in cs], grad


def reference_vector(data: dict) -> tuple[list, list, dict]:
    w = data["weights"]
    p = {k: np.array(v) for k, v in w.items() if k in WEIGHTS}
    p |= {k: np.array(v).reshape(-1, 1) for k, v in w.items() if k in BIASES}
    col = lambda v: np.array(v, dtype=float).reshape(-1, 1)  # noqa: E731
    xs = [col(v) for v in data["x"]]
    h0, c0 = col(data["h0"]), col(data["c0"])
    a = [col(v) for v in data["dL_dh"]]
    hs, cs = lstm_forward(p, xs, h0, c0)
    g = complex_step_grad(p, xs, h0, c0, a)
    grad = {k: g[k] for k in WEIGHTS} | {k: g[k].ravel() for k in BIASES if k in p}
    grad |= {"h0": g["h0"].ravel(), "c0": g["c0"].ravel(), "x": [v.ravel() for v in g["x"]]}
    return [v.ravel() for v in hs], [v.ravel() for v in cs], grad


def write_json(tmp_path: Path, data: Any, name: str = "input.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def run_grad(capsys, path: Path | str) -> dict:
    status = main(["grad", "lstm", "--input", str(path)])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert err == ""
    return json.loads(out)


# -- list ----------------------------------------------------------------------------------------
def test_list_shows_bundled_set_and_problem(capsys) -> None:
    assert main(["list"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert re.search(r"^set\s+csc421_hw3\s.*\[lstm(, [a-z_]+)*\]$", out, re.M), out
    assert re.search(r"^problem\s+lstm\s+LSTM", out, re.M), out


# -- grad: values ----------------------------------------------------------------------------------
def test_grad_scalar_matches_complex_step(tmp_path: Path, capsys) -> None:
    out = run_grad(capsys, write_json(tmp_path, SCALAR))
    assert set(out) == {"h", "c", "grad", "backend"}
    assert out["backend"] in ("c", "numpy")  # auto: C where a compiler is (tests/test_native.py)
    assert set(out["grad"]) == {*WEIGHTS, "h0", "c0", "x"}
    hs, cs, ref = reference_scalar(SCALAR)
    assert_rel_close(out["h"], hs, 1e-12)
    assert_rel_close(out["c"], cs, 1e-12)
    for key, value in ref.items():
        assert isinstance(out["grad"][key], float | list), key
        assert_rel_close(out["grad"][key], value, 1e-10)


def test_grad_scalar_reference_is_sensitive(tmp_path: Path, capsys) -> None:
    """The reference is not vacuous: a changed weight changes every weight gradient."""
    out = run_grad(capsys, write_json(tmp_path, SCALAR))
    changed = json.loads(json.dumps(SCALAR))
    changed["weights"]["w_fh"] += 1e-6
    _, _, ref = reference_scalar(changed)
    with pytest.raises(AssertionError):
        assert_rel_close(out["grad"]["w_fh"], ref["w_fh"], 1e-10)


def test_grad_vector_with_biases_matches_complex_step(tmp_path: Path, capsys) -> None:
    data = vector_input()
    out = run_grad(capsys, write_json(tmp_path, data))
    assert set(out) == {"h", "c", "grad", "backend"}
    assert out["backend"] == "numpy"  # the vector form has no C backend
    assert set(out["grad"]) == {*WEIGHTS, *BIASES, "h0", "c0", "x"}
    hs, cs, ref = reference_vector(data)
    assert_rel_close(out["h"], hs, 1e-12)
    assert_rel_close(out["c"], cs, 1e-12)
    assert np.shape(out["h"]) == (T_STEPS, N_H)
    for key in WEIGHTS:
        want = (N_H, N_X) if key.endswith("x") else (N_H, N_H)
        assert np.shape(out["grad"][key]) == want, key
    for key in (*BIASES, "h0", "c0"):
        assert np.shape(out["grad"][key]) == (N_H,), key
    assert np.shape(out["grad"]["x"]) == (T_STEPS, N_X)
    for key, value in ref.items():
        assert_rel_close(out["grad"][key], value, 1e-10)


@pytest.mark.parametrize("biases", [(), ("b_f",)], ids=["no-biases", "only-b_f"])
def test_grad_vector_reports_only_given_biases(tmp_path: Path, capsys, biases) -> None:
    data = vector_input(biases, seed=7)
    out = run_grad(capsys, write_json(tmp_path, data))
    assert set(out["grad"]) == {*WEIGHTS, *biases, "h0", "c0", "x"}
    hs, _, ref = reference_vector(data)  # absent biases are zero in the reference too
    assert_rel_close(out["h"], hs, 1e-12)
    for key, value in ref.items():
        assert_rel_close(out["grad"][key], value, 1e-10)


def test_grad_reads_stdin(tmp_path: Path, capsys, monkeypatch) -> None:
    from_file = run_grad(capsys, write_json(tmp_path, SCALAR))
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(SCALAR)))
    from_stdin = run_grad(capsys, "-")
    assert from_stdin == from_file
    _, _, ref = reference_scalar(SCALAR)
    assert_rel_close(from_stdin["grad"]["w_gh"], ref["w_gh"], 1e-10)


def test_grad_stdin_subprocess_end_to_end() -> None:
    """``python -m derive grad lstm --input -`` as a user runs it."""
    proc = subprocess.run(
        [sys.executable, "-m", "derive", "grad", "lstm", "--input", "-"],
        input=json.dumps(vector_input()),
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    _, _, ref = reference_vector(vector_input())
    assert_rel_close(out["grad"]["b_g"], ref["b_g"], 1e-10)


# -- grad: bad input -----------------------------------------------------------------------------
def _with(base: dict, path: tuple, value: Any) -> str:
    """JSON text of ``base`` with the entry at ``path`` replaced, or removed for ``...``."""
    data = json.loads(json.dumps(base))
    node = data
    for key in path[:-1]:
        node = node[key]
    if value is ...:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return json.dumps(data)


VEC = vector_input()
ALLOWED_WEIGHTS = ", ".join([*WEIGHTS, *BIASES])
TOP = "weights, x, h0, c0, dL_dh"
SCALAR_TEXT = json.dumps(SCALAR)

BAD_INPUT = [
    pytest.param("{'weights': 1}", "is not valid JSON: Expecting property name", id="not-json"),
    pytest.param("", "is not valid JSON: Expecting value at line 1", id="empty-file"),
    pytest.param("[1, 2]", "input: expected an object, got [1, 2]", id="top-level-array"),
    pytest.param(
        _with(SCALAR, ("c0",), ...),
        f"input: missing key 'c0'; required are {TOP}",
        id="missing-c0",
    ),
    pytest.param(
        _with(SCALAR, ("weights", "w_gh"), ...),
        "weights: missing key 'w_gh'; required are w_ix,",
        id="missing-weight",
    ),
    pytest.param(
        _with(SCALAR, ("y",), [1.0]),
        f"input: unknown key 'y'; allowed are {TOP}",
        id="unknown-top-key",
    ),
    pytest.param(
        _with(SCALAR, ("weights", "w_zx"), 1.0),
        f"weights: unknown key 'w_zx'; allowed are {ALLOWED_WEIGHTS}",
        id="unknown-weight",
    ),
    pytest.param(
        _with(SCALAR, ("dL_dh",), [1.0, 2.0]),
        "dL_dh: expected 5 numbers (one per step of x), got 2",
        id="dL_dh-shorter-than-x",
    ),
    pytest.param(
        _with(VEC, ("dL_dh",), VEC["dL_dh"][:3]),
        "dL_dh: expected 4 vectors (one per step of x), got 3",
        id="vector-dL_dh-shorter-than-x",
    ),
    pytest.param(
        _with(SCALAR, ("x",), []),
        "x: expected a non-empty list with one entry per step",
        id="empty-x",
    ),
    pytest.param(
        SCALAR_TEXT.replace('"h0": 0.2', '"h0": NaN'),
        "non-finite number NaN in the input; only finite numbers are allowed",
        id="nan-literal",
    ),
    pytest.param(
        SCALAR_TEXT.replace('"c0": -0.4', '"c0": -Infinity'),
        "non-finite number -Infinity in the input; only finite numbers are allowed",
        id="minus-infinity-literal",
    ),
    pytest.param(
        SCALAR_TEXT.replace("[0.5, -1.25,", "[0.5, 1e999,"),
        "x[1]: expected a finite number, got inf",
        id="overflowing-1e999",
    ),
    pytest.param(
        _with(SCALAR, ("weights", "w_fh"), "0.45"),
        'weights.w_fh: expected a finite number, got "0.45"',
        id="string-number",
    ),
    pytest.param(
        _with(SCALAR, ("h0",), True),
        "h0: expected a finite number, got true",
        id="boolean-true",
    ),
    pytest.param(
        _with(SCALAR, ("dL_dh",), [1.0, None, 1.0, 1.0, 1.0]),
        "dL_dh[1]: expected a finite number, got null",
        id="null-in-dL_dh",
    ),
    pytest.param(
        _with(SCALAR, ("weights", "w_ox"), [[1.0]]),
        "weights.w_ox: expected a finite number, got [[1.0]]",
        id="matrix-in-scalar-form",
    ),
    pytest.param(
        _with(VEC, ("weights", "w_fh"), [[1.0, 2.0, 3.0], [1.0, 2.0], [1.0, 2.0, 3.0]]),
        "weights.w_fh: ragged matrix; every row needs the same, nonzero length",
        id="ragged-matrix",
    ),
    pytest.param(
        _with(VEC, ("weights", "w_ix"), [[]]),
        "weights.w_ix: ragged matrix; every row needs the same, nonzero length",
        id="empty-row-matrix",
    ),
    pytest.param(
        _with(VEC, ("weights", "w_ih"), VEC["weights"]["w_ix"]),
        "weights.w_ih: expected a 3x3 matrix, got 3x2",
        id="w_ih-wrong-shape",
    ),
    pytest.param(
        _with(VEC, ("weights", "w_gx"), [[1.0, 2.0]] * 2),
        "weights.w_gx: expected a 3x2 matrix, got 2x2",
        id="w_gx-wrong-rows",
    ),
    pytest.param(
        _with(VEC, ("weights", "w_oh", 2, 1), "x"),
        'weights.w_oh[2][1]: expected a finite number, got "x"',
        id="string-inside-matrix",
    ),
    pytest.param(
        _with(VEC, ("x", 2), [1.0, 2.0, 3.0]),
        "x[2]: expected 2 numbers, got 3",
        id="vector-x-entry-wrong-size",
    ),
    pytest.param(
        _with(VEC, ("x",), [1.0, 2.0, 3.0, 4.0]),
        "x[0]: expected a non-empty list of numbers, got 1.0",
        id="vector-x-entries-not-lists",
    ),
    pytest.param(
        _with(VEC, ("h0",), [0.0, 0.0]),
        "h0: expected 3 numbers, got 2",
        id="vector-h0-wrong-size",
    ),
    pytest.param(
        _with(VEC, ("weights", "b_f"), [0.0, 0.0]),
        "weights.b_f: expected 3 numbers, got 2",
        id="bias-wrong-size",
    ),
    pytest.param(
        _with(SCALAR, ("weights", "b_i"), 0.5),
        "weights: biases b_i, b_f, b_o, b_g need the vector form (matrices)",
        id="bias-in-scalar-form",
    ),
    # Known bugs (see the report): these escape as tracebacks instead of exit status 2.
    pytest.param(
        SCALAR_TEXT.replace('"h0": 0.2', '"h0": 1' + "0" * 400),
        "h0: expected a finite number",
        id="huge-integer",
    ),
    pytest.param(
        SCALAR_TEXT.replace('"h0": 0.2', '"h0": ' + "9" * 5000),
        "h0",
        id="integer-over-4300-digits",
    ),
    pytest.param(
        "[" * 100_000 + "]" * 100_000,
        "input",
        id="deeply-nested-json",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD_INPUT)
def test_grad_bad_input(tmp_path: Path, capsys, text: str, message: str) -> None:
    path = tmp_path / "input.json"
    path.write_text(text, encoding="utf-8")
    status = main(["grad", "lstm", "--input", str(path)])
    out, err = capsys.readouterr()
    assert status == 2
    assert out == ""
    assert "Traceback" not in err
    assert err.startswith("derive: error: ") and err.endswith("\n")
    assert message in err, err


def test_grad_bad_input_on_stdin_names_standard_input(capsys, monkeypatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("{not json"))
    status = main(["grad", "lstm", "--input", "-"])
    out, err = capsys.readouterr()
    assert (status, out) == (2, "")
    assert "derive: error: standard input is not valid JSON" in err


def test_grad_unknown_problem(tmp_path: Path, capsys) -> None:
    status = main(["grad", "nosuch", "--input", str(write_json(tmp_path, SCALAR))])
    out, err = capsys.readouterr()
    assert (status, out) == (2, "")
    tail = " (a set's own model needs --set FILE)"
    assert err == f"derive: error: unknown problem 'nosuch'; known problems: {KNOWN}{tail}\n"


def test_grad_nonexistent_input_file(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "no" / "such.json"
    status = main(["grad", "lstm", "--input", str(missing)])
    out, err = capsys.readouterr()
    assert (status, out) == (2, "")
    assert err == f"derive: error: cannot read {missing}: No such file or directory\n"


def test_grad_input_is_a_directory(tmp_path: Path, capsys) -> None:
    status = main(["grad", "lstm", "--input", str(tmp_path)])
    out, err = capsys.readouterr()
    assert (status, out) == (2, "")
    assert f"cannot read {tmp_path}: Is a directory" in err


def test_grad_input_file_not_utf8(tmp_path: Path, capsys) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"x": "\xe9"}')
    status = main(["grad", "lstm", "--input", str(path)])
    out, err = capsys.readouterr()
    assert (status, out) == (2, "")
    assert f"cannot read {path}" in err


def test_grad_output_is_finite_json_or_an_error(tmp_path: Path, capsys) -> None:
    """Finite but extreme inputs must not print NaN (which is not JSON) with status 0."""
    data = json.loads(SCALAR_TEXT)
    data |= {"x": [1e200, -1e200], "h0": 1e200, "c0": 1e300, "dL_dh": [1e300, 1e300]}
    status = main(["grad", "lstm", "--input", str(write_json(tmp_path, data))])
    out, err = capsys.readouterr()
    if status == 0:
        json.loads(out, parse_constant=lambda name: pytest.fail(f"{name} in output"))
    else:
        assert (status, out) == (2, "")
        assert err.startswith("derive: error: ")


def test_error_through_python_m_has_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "input.json"
    path.write_text(_with(SCALAR, ("weights", "b_i"), 0.5), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "derive", "grad", "lstm", "--input", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == (
        "derive: error: weights: biases b_i, b_f, b_o, b_g need the vector form (matrices)\n"
    )


# -- build: usage errors leave earlier outputs alone ---------------------------------------------
@pytest.fixture
def previous(tmp_path: Path) -> Path:
    """An output directory holding a previous build's files (known bytes)."""
    out = tmp_path / "out"
    key = out / "csc421_hw3"
    key.mkdir(parents=True)
    for name in ("answer-key.tex", "answer-key.pdf", "derivations.json"):
        (key / name).write_bytes(OLD + name.encode())
    return out


def unchanged(out: Path) -> bool:
    key = out / "csc421_hw3"
    names = sorted(p.name for p in key.iterdir())
    same = all(
        (key / n).read_bytes() == OLD + n.encode()
        for n in ("answer-key.tex", "answer-key.pdf", "derivations.json")
    )
    return same and names == ["answer-key.pdf", "answer-key.tex", "derivations.json"]


@pytest.mark.parametrize("fmt", ["pdf", "tex", "json"])
def test_build_unknown_set(previous: Path, capsys, fmt: str) -> None:
    # The good set comes first: every name is checked before anything is built.
    argv = ["build", "csc421_hw3", "nosuchset", "--out", str(previous), "--format", fmt]
    status = main(argv)
    out, err = capsys.readouterr()
    assert (status, out) == (2, "")
    sets = ", ".join(bundled())
    hint = "(or a set file NAME.toml)"
    assert err == f"derive: error: unknown set 'nosuchset'; bundled sets: {sets} {hint}\n"
    assert unchanged(previous)


def test_build_unknown_format(previous: Path, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["build", "csc421_hw3", "--out", str(previous), "--format", "docx"])
    assert info.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "argument --format: invalid choice: 'docx'" in err
    assert "Traceback" not in err
    assert unchanged(previous)


@pytest.mark.parametrize("fmt", ["pdf", "tex", "json"])
def test_build_out_below_a_regular_file(tmp_path: Path, capsys, fmt: str) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_bytes(OLD)
    out_dir = blocker / "sub"
    status = main(["build", "csc421_hw3", "--out", str(out_dir), "--format", fmt])
    out, err = capsys.readouterr()
    assert (status, out) == (2, "")
    assert err == f"derive: error: cannot create {out_dir}: {blocker} is not a directory\n"
    assert blocker.read_bytes() == OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]


def test_build_out_is_a_regular_file(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_bytes(OLD)
    status = main(["build", "csc421_hw3", "--out", str(blocker), "--format", "tex"])
    out, err = capsys.readouterr()
    assert (status, out) == (2, "")
    assert err == f"derive: error: output directory {blocker} is not a directory\n"
    assert blocker.read_bytes() == OLD


# -- check ---------------------------------------------------------------------------------------
def test_check_lstm_passes(capsys) -> None:
    assert main(["check", "lstm"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["claim", "method", "worst"]
    match = re.fullmatch(r"(\d+) passed, 0 failed", lines[-1])
    assert match, lines[-1]
    assert int(match.group(1)) > 100
    assert int(match.group(1)) == len(lines) - 2  # one row per check
    assert not any(" FAIL " in line for line in lines)


def test_check_unknown_problem(capsys) -> None:
    status = main(["check", "nosuch"])
    out, err = capsys.readouterr()
    assert (status, out) == (2, "")
    tail = " (a set's own model needs --set FILE)"
    assert err == f"derive: error: unknown problem 'nosuch'; known problems: {KNOWN}{tail}\n"


def test_check_runs_a_sets_own_models(tmp_path, capsys) -> None:
    models = Path(__file__).resolve().parent / "models"
    assert main(["check", "--set", str(models / "coupled.toml")]) == 0
    out = capsys.readouterr().out
    assert "coupled_lstm:w_fx_bar" in out and out.rstrip().endswith(" passed, 0 failed")
    # The set's parameters count: its worked example is checked too.
    example = ('\n[params.mgu.example]\nx = [1, -0.5]\nh0 = 0.1\ndL_dh = [1, -2]\n'
               '[params.mgu.example.weights]\nw_fx = 0.5\nw_fh = -0.3\nw_nx = 0.8\n'
               'w_nh = "1/4"\n')
    path = tmp_path / "mgu.toml"
    path.write_text((models / "mgu.toml").read_text(encoding="utf-8") + example)
    assert main(["check", "mgu", "--set", str(path)]) == 0
    assert "mgu:example_forward" in capsys.readouterr().out


# -- no TeX engine ---------------------------------------------------------------------------------
@pytest.fixture
def no_tex(tmp_path: Path, monkeypatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def test_pdf_without_tex_engine(no_tex, previous: Path, capsys) -> None:
    status = main(["build", "csc421_hw3", "--out", str(previous), "--format", "pdf"])
    out, err = capsys.readouterr()
    assert (status, out) == (3, "")
    assert err.startswith("derive: error: no LaTeX engine found")
    assert "apt-get install" in err and "pdflatex" in err
    assert len(err.splitlines()) == 1
    assert unchanged(previous)


@pytest.mark.parametrize(("fmt", "name"), [("tex", "answer-key.tex"), ("json", "derivations.json")])
def test_tex_and_json_without_tex_engine(no_tex, tmp_path: Path, capsys, fmt, name) -> None:
    out_dir = tmp_path / "out"
    status = main(["build", "csc421_hw3", "--out", str(out_dir), "--format", fmt])
    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    path = out_dir / "csc421_hw3" / name
    assert out == f"{path}\n"
    assert path.stat().st_size > 1000
    assert sorted(p.name for p in path.parent.iterdir()) == [name]


def test_build_with_a_failing_check_exits_1_and_writes_valid_json(tmp_path, capsys, monkeypatch):
    from derive.problems.lstm import LSTM
    from derive.verify import Check

    bad = Check("h_bar", "planted failure", "none", float("inf"), 1e-12)
    monkeypatch.setattr(LSTM, "verify", lambda self: [bad])
    # --jobs 1: the planted failure lives in this process (workers import LSTM afresh).
    args = ["build", "csc421_hw3", "--out", str(tmp_path), "--format", "json", "--jobs", "1"]
    status = main(args)
    _, err = capsys.readouterr()
    assert status == 1
    assert "1 check(s) failed" in err and "lstm:h_bar (planted failure)" in err
    text = (tmp_path / "csc421_hw3" / "derivations.json").read_text()
    data = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))
    assert data["problems"]["lstm"]["checks"][0]["max_rel_error"] is None
    assert data["problems"]["lstm"]["checks"][0]["passed"] is False
