"""The compiled C gradient (derive.engine.native) against the NumPy sweep and references.

Tolerances.  The C code and ``ScalarSweep`` evaluate the same equations in float64, but
round differently: the C library's exp/tanh/cosh against NumPy's own (SIMD) versions, and
``sympy.cse`` groups some products differently.  Gradient entries that cancel (dL/dw_gx =
3.8e-4 among entries of 1.3, LSTM, T = 2, seed 15) then differ by one rounding of their
terms, 1e-13 in the mixed relative error: measured over 40 seeds for each of lstm and gru,
T = 1, 2, 37, the two routes differed by at most 1.2e-13 with |w| <= 1 and 2.6e-12 with
|w| <= 10, while both stayed equally far from a 40-digit evaluation of the same equations
(C 4.8e-14 / 1.2e-11, NumPy 8.6e-14 / 1.2e-11).  So the comparison with NumPy allows 5e-13
and 2e-11, and ``test_float64_rounding_is_as_good_as_numpys`` holds C to the house's own
tolerance for float64 against 50 digits (``gradcheck.METHODS``), as NumPy is held.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mpmath
import numpy as np
import pytest
import sympy as sp

from derive.cli import main
from derive.engine import native
from derive.engine.cell import Cell
from derive.engine.functions import sigma
from derive.engine.native import NativeGradient, NativeUnavailable, native_gradient
from derive.engine.numeric import forward, sweep_for
from derive.problems.gru import gru_cell
from derive.problems.lstm import lstm_cell
from derive.verify import rel_error
from derive.verify.gradcheck import METHODS, SATURATED, Case, make_data, probes, reference

pytestmark = pytest.mark.skipif(not native.available(), reason="no C compiler")

#: C against ScalarSweep, by weight scale (see the module docstring).
AGREE = {1.0: 5e-13, 10.0: 2e-11}
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch) -> Path:
    """Compiled libraries go to a directory of this test session, not the user's cache."""
    path = tmp_path_factory.getbasetemp() / "derive-cache"
    monkeypatch.setenv("DERIVE_CACHE", str(path))
    return path


CELLS = {"lstm": lstm_cell(), "gru": gru_cell()}


def minimal_cell() -> Cell:
    """A cell no problem uses: two inputs, the loss on two variables, sech-free."""
    x, y, h, h_prev, f, n = sp.symbols("x y h h_prev f n")
    w = {k: sp.Symbol(k) for k in ("w_fx", "w_fy", "w_fh", "w_nx", "w_nh")}
    return Cell(
        name="minimal",
        inputs=(x, y),
        states=(h,),
        prev={h: h_prev},
        params={s: "weight" for s in w.values()},
        assignments=(
            (f, sigma(w["w_fx"] * x + w["w_fy"] * y + w["w_fh"] * h_prev)),
            (n, sp.tanh(w["w_nx"] * x * y + w["w_nh"] * f * h_prev)),
            (h, f * h_prev + (1 - f) * n),
        ),
        loss_on=(h, f),
    )


def random_data(cell: Cell, steps: int, scale: float, seed: int, batch: int | None = None):
    """Weights uniform in [-scale, scale] (as derive.verify.gradcheck), inputs, initial states and
    loss weights normal; one sequence as lists (what derive grad reads), a batch as (T, B)."""
    rng = np.random.default_rng(seed)
    params = {p.name: float(rng.uniform(-scale, scale)) for p in cell.params}
    shape = (steps,) if batch is None else (steps, batch)
    inputs = {x.name: rng.normal(size=shape) for x in cell.inputs}
    initial = {s.name: rng.normal(scale=0.5, size=shape[1:]) for s in cell.states}
    loss = {v.name: rng.normal(size=shape) for v in cell.loss_on}
    if batch is None:
        inputs = {k: v.tolist() for k, v in inputs.items()}
        loss = {k: v.tolist() for k, v in loss.items()}
        initial = {k: float(v) for k, v in initial.items()}
    return params, inputs, initial, loss


def numpy_route(cell: Cell, params, inputs, initial, loss):
    """forward + ScalarSweep.run on the same data (a batch as arrays over the batch)."""
    traj = forward(cell, params, {k: list(v) for k, v in inputs.items()}, initial)
    return traj, sweep_for(cell).run(traj, params, {k: list(v) for k, v in loss.items()})


def flat(cell: Cell, traj, g, steps: int) -> np.ndarray:
    """Every result in one order: forward values 0..T, adjoints 1..T, gradients, initial."""
    parts = [np.asarray(traj[u.name][: steps + 1], dtype=float) for u in cell.variables]
    parts += [np.asarray(g.bars[n][1 : steps + 1], dtype=float) for n in sorted(g.bars)]
    parts += [np.asarray(g.params[p.name], dtype=float) for p in cell.params]
    parts += [np.asarray(g.initial[s.name], dtype=float) for s in cell.states]
    return np.concatenate([p.ravel() for p in parts])


# -- against the NumPy sweep ---------------------------------------------------------------------
@pytest.mark.parametrize("scale", [1.0, 10.0], ids=["random", "saturated"])
@pytest.mark.parametrize("steps", [1, 2, 37])
@pytest.mark.parametrize("name", list(CELLS))
def test_one_sequence_matches_scalar_sweep(name: str, steps: int, scale: float) -> None:
    cell = CELLS[name]
    for seed in range(3):
        data = random_data(cell, steps, scale, seed)
        got = flat(cell, *native_gradient(cell, *data), steps)
        want = flat(cell, *numpy_route(cell, *data), steps)
        assert rel_error(got, want) <= AGREE[scale], (seed, rel_error(got, want))


@pytest.mark.parametrize("scale", [1.0, 10.0], ids=["random", "saturated"])
@pytest.mark.parametrize("name", list(CELLS))
def test_batch_matches_scalar_sweep_and_single_runs(name: str, scale: float) -> None:
    cell, steps, batch = CELLS[name], 37, 6
    params, inputs, initial, loss = random_data(cell, steps, scale, 7, batch)
    traj, g = native_gradient(cell, params, inputs, initial, loss)
    assert traj["h"].shape == (steps + 1, batch) and g.bars["x"].shape == (steps + 2, batch)
    want = flat(cell, *numpy_route(cell, params, inputs, initial, loss), steps)
    assert rel_error(flat(cell, traj, g, steps), want) <= AGREE[scale]
    # Each column runs the very code a single sequence runs, on its own work array: the
    # same bits, not merely close.
    for j in range(batch):
        one = native_gradient(
            cell,
            params,
            {k: v[:, j].tolist() for k, v in inputs.items()},
            {k: float(v[j]) for k, v in initial.items()},
            {k: v[:, j].tolist() for k, v in loss.items()},
        )
        column = (
            {k: v[:, j] for k, v in traj.items()},
            type(g)(
                {k: v[:, j] for k, v in g.bars.items()},
                {k: v[j] for k, v in g.params.items()},
                {k: v[j] for k, v in g.initial.items()},
            ),
        )
        assert np.array_equal(flat(cell, *column, steps), flat(cell, *one, steps)), j


def test_a_cell_of_ones_own_compiles_and_matches() -> None:
    """Nothing is typed per model: a cell with two inputs and a loss on two variables."""
    cell = minimal_cell()
    data = random_data(cell, 12, 1.0, 3)
    traj, g = native_gradient(cell, *data)
    assert set(g.bars) == {"f", "n", "h", "x", "y"}
    assert rel_error(flat(cell, traj, g, 12), flat(cell, *numpy_route(cell, *data), 12)) <= 5e-13


def test_thread_count_does_not_change_a_bit() -> None:
    cell = CELLS["lstm"]
    data = random_data(cell, 50, 1.0, 11, batch=9)
    runs = [flat(cell, *native_gradient(cell, *data, threads=n), 50) for n in (1, 2, 3)]
    assert np.array_equal(runs[0], runs[1]) and np.array_equal(runs[0], runs[2])


def test_selected_series_only() -> None:
    cell = CELLS["lstm"]
    params, inputs, initial, loss = random_data(cell, 5, 1.0, 2)
    traj, g = native_gradient(cell, params, inputs, initial, loss, values=["h"], bars=["x"])
    assert set(traj) == {"h"} and set(g.bars) == {"x"}
    full_traj, full = native_gradient(cell, params, inputs, initial, loss)
    assert np.array_equal(g.bars["x"], full.bars["x"]) and g.params == full.params
    assert np.array_equal(traj["h"], full_traj["h"])


def test_bad_shapes_are_refused() -> None:
    cell = CELLS["gru"]
    params, inputs, initial, loss = random_data(cell, 4, 1.0, 0, batch=3)
    with pytest.raises(ValueError, match="one shape"):
        native_gradient(cell, params, inputs, initial, {"h": loss["h"][:3]})
    with pytest.raises(ValueError, match=r"initial\['h'\]"):
        native_gradient(cell, params, inputs, {"h": [0.0, 1.0]}, loss)


# -- against independent references -------------------------------------------------------------
@pytest.mark.parametrize("scale", [1.0, 10.0], ids=["random", "saturated"])
@pytest.mark.parametrize("name", list(CELLS))
def test_complex_step_reference(name: str, scale: float) -> None:
    """Every adjoint at every step, the gradients and the initial adjoints against the
    complex-step derivative of the forward pass (derive.verify.gradcheck: no derived equation)."""
    cell, case = CELLS[name], Case(20, scale=scale, seed=41)
    data = make_data(cell, case)
    plist = probes(cell, case, data)
    ref = reference(cell, data, plist, "complex step")
    scalars = [
        {k: [float(a[0, 0]) for a in v] if isinstance(v, list) else float(v[0, 0]) for k, v in d}
        for d in (data.params.items(), data.inputs.items(), data.initial.items())
    ]
    loss = {k: [float(a[0, 0]) for a in v] for k, v in data.loss_grads.items()}
    _, g = native_gradient(cell, *scalars, loss)
    got = [
        g.params[p] if kind == "param" else g.initial[p] if kind == "initial" else g.bars[p][k]
        for _, kind, p, k, _ in plist
    ]
    tol = (SATURATED if scale > 1 else METHODS)["complex step"]
    for claim in dict.fromkeys(p[0] for p in plist):
        mask = np.array([p[0] == claim for p in plist])
        assert rel_error(np.array(got)[mask], ref[mask]) <= tol, claim


@pytest.mark.parametrize("scale", [1.0, 10.0], ids=["random", "saturated"])
@pytest.mark.parametrize("name", list(CELLS))
def test_float64_rounding_is_as_good_as_numpys(name: str, scale: float) -> None:
    """C's float64 result against the same equations evaluated with 50 digits, held to the
    tolerance the house sets for NumPy's (gradcheck: "float64 vs mpmath")."""
    cell, steps = CELLS[name], 37
    data = random_data(cell, steps, scale, 5)
    got = flat(cell, *native_gradient(cell, *data), steps)
    with mpmath.workdps(50):

        def mp(d: dict) -> dict:
            return {
                k: [mpmath.mpf(x) for x in v] if isinstance(v, list) else mpmath.mpf(v)
                for k, v in d.items()
            }

        params, inputs, initial, loss = (mp(d) for d in data)
        traj = forward(cell, params, inputs, initial, "mpmath")
        g = sweep_for(cell, "mpmath").run(traj, params, loss)
        parts = [traj[u.name][: steps + 1] for u in cell.variables]
        parts += [g.bars[n][1 : steps + 1] for n in sorted(g.bars)]
        parts += [[g.params[p.name]] for p in cell.params]
        parts += [[g.initial[s.name]] for s in cell.states]
        ref = np.array([mpmath.mpf(np.asarray(v).item()) for part in parts for v in part])
        err = rel_error(got.astype(object), ref)
    assert err <= (SATURATED if scale > 1 else METHODS)["float64 vs mpmath"]


# -- compiling and the cache -------------------------------------------------------------------
def _no_compiler(*args, **kwargs):
    raise AssertionError(f"the compiler ran: {args[0] if args else kwargs}")


def test_cached_library_loads_without_the_compiler(cache: Path, monkeypatch) -> None:
    cell = CELLS["gru"]
    first = NativeGradient(cell)  # compiles (or finds it from an earlier test)
    assert first.library.parent == cache and first.library.is_file()
    monkeypatch.setattr(native.procs, "run", _no_compiler)
    second = NativeGradient(cell)  # a new instance: generates the source, finds the library
    assert second.library == first.library
    data = random_data(cell, 9, 1.0, 4)
    assert np.array_equal(flat(cell, *first.run(*data), 9), flat(cell, *second.run(*data), 9))


def test_second_process_loads_without_the_compiler(cache: Path, tmp_path: Path) -> None:
    cell = CELLS["lstm"]
    NativeGradient(cell)  # make sure the library is in the cache
    script = (
        "import json\n"
        "from derive import procs\n"
        "def refuse(*a, **k): raise SystemExit('the compiler ran')\n"
        "procs.run = refuse\n"
        "from derive.engine.native import native_gradient\n"
        "from derive.problems.lstm import lstm_cell\n"
        "w = {k: 0.1 * (i + 1) for i, k in enumerate(["
        "'w_ix', 'w_ih', 'w_fx', 'w_fh', 'w_ox', 'w_oh', 'w_gx', 'w_gh'])}\n"
        "_, g = native_gradient(lstm_cell(), w, {'x': [1.0, 2.0]}, {'h': 0.0, 'c': 0.0},"
        " {'h': [1.0, 1.0]})\n"
        "print(json.dumps(g.params))\n"
    )
    env = {"DERIVE_CACHE": str(cache), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=REPO
    )
    assert run.returncode == 0, run.stderr
    weights = {k: 0.1 * (i + 1) for i, k in enumerate(json.loads(run.stdout))}
    _, g = native_gradient(cell, weights, {"x": [1.0, 2.0]}, {"h": 0.0, "c": 0.0}, {"h": [1, 1]})
    assert json.loads(run.stdout) == g.params


def test_two_compilations_give_the_same_bits(tmp_path: Path, monkeypatch) -> None:
    cell = CELLS["lstm"]
    libs = []
    for where in ("one", "two"):
        monkeypatch.setenv("DERIVE_CACHE", str(tmp_path / where))
        libs.append(NativeGradient(cell))
    assert libs[0].library != libs[1].library  # two separate compiles
    data = random_data(cell, 40, 10.0, 8, batch=4)
    first, second = (flat(cell, *lib.run(*data), 40) for lib in libs)
    assert np.array_equal(first, second)


def test_compile_failure_says_why() -> None:
    with pytest.raises(
        NativeUnavailable, match=r"(?s)the C compiler failed:.*error: unknown type name"
    ):
        native.build("this is not C;")


# -- derive grad ---------------------------------------------------------------------------------
SCALAR = {
    "weights": {k: 0.1 * (i + 1) for i, k in enumerate(["w_zx", "w_zh", "w_rx", "w_rh"])}
    | {"w_nx": -0.4, "w_nh": 0.9},
    "x": [1, -2, 0.5],
    "h0": 0.25,
    "dL_dh": [1, 0.5, -1],
}


def _grad(capsys, tmp_path: Path, backend: str, data=SCALAR) -> tuple[int, dict | None, str]:
    path = tmp_path / "in.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    status = main(["grad", "gru", "--input", str(path), "--backend", backend])
    out, err = capsys.readouterr()
    return status, (json.loads(out) if out else None), err


def test_grad_backends_agree(capsys, tmp_path: Path) -> None:
    status, c, err = _grad(capsys, tmp_path, "c")
    assert status == 0 and err == "" and c["backend"] == "c"
    status, auto, _ = _grad(capsys, tmp_path, "auto")
    assert auto["backend"] == "c" and auto == c
    status, ref, _ = _grad(capsys, tmp_path, "numpy")
    assert ref["backend"] == "numpy" and set(ref) == set(c) and set(ref["grad"]) == set(c["grad"])
    for key in ("w_zx", "w_nh", "h0", "x"):
        assert rel_error(np.array(c["grad"][key]), np.array(ref["grad"][key])) <= 5e-13, key
    assert rel_error(np.array(c["h"]), np.array(ref["h"])) <= 5e-13


def test_grad_without_a_compiler(capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert not native.available()
    status, out, err = _grad(capsys, tmp_path, "c")
    assert status == 2 and out is None
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("derive: error: --backend c:") and "no C compiler" in err
    assert "apt-get install gcc libc6-dev" in err
    status, out, err = _grad(capsys, tmp_path, "auto")
    assert status == 0 and err == "" and out["backend"] == "numpy"
    monkeypatch.delenv("CC")
    assert not native.available()  # and no cc on this PATH either


def test_grad_vector_form_refuses_c(capsys, tmp_path: Path) -> None:
    data = {
        "weights": {k: [[0.1]] for k in ("w_zx", "w_zh", "w_rx", "w_rh", "w_nx", "w_nh")},
        "x": [[1.0]],
        "h0": [0.0],
        "dL_dh": [[1.0]],
    }
    status, out, err = _grad(capsys, tmp_path, "c", data)
    assert status == 2 and out is None and "vector form" in err
    status, out, _ = _grad(capsys, tmp_path, "auto", data)
    assert status == 0 and out["backend"] == "numpy"
