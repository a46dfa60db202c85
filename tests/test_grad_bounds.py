"""``derive grad`` is bounded: the input's bytes, its kind of file, the sequence length, the
matrix sizes, and memory; each refusal is one line that gives the bound, and comes at once.

Inputs that used to hang (a FIFO) or read without end (/dev/zero) run in a subprocess with a
timeout and an address-space limit, so that a regression fails the test instead of the
machine.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from derive import grad as grad_command
from derive.cli import main
from derive.engine import native
from derive.grad import (
    GRAD_MAX_SERIES,
    GRAD_MAX_SIZE,
    GRAD_MAX_T,
    GRAD_MAX_T_VECTOR,
)
from derive.inputs import MAX_INPUT_BYTES
from derive.problems.lstm import LSTM

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = ["w_ix", "w_ih", "w_fx", "w_fh", "w_ox", "w_oh", "w_gx", "w_gh"]


def scalar(steps: int) -> dict:
    return {
        "weights": {k: 0.1 * (i + 1) for i, k in enumerate(WEIGHTS)},
        "x": [0.5] * steps,
        "h0": 0,
        "c0": 0,
        "dL_dh": [1] * steps,
    }


def vector(steps: int, n_h: int, n_x: int) -> dict:
    def m(rows: int, cols: int) -> list:
        return [[0.01] * cols for _ in range(rows)]

    weights = {k: m(n_h, n_x if k.endswith("x") else n_h) for k in WEIGHTS}
    return {
        "weights": weights,
        "x": [[0.5] * n_x] * steps,
        "h0": [0] * n_h,
        "c0": [0] * n_h,
        "dL_dh": [[1] * n_h] * steps,
    }


def grad(capsys, tmp_path: Path, data: dict, backend: str = "auto") -> tuple[int, str, str]:
    path = tmp_path / "in.json"
    path.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
    status = main(["grad", "lstm", "--input", str(path), "--backend", backend])
    out, err = capsys.readouterr()
    return status, out, err


def refused(status: int, out: str, err: str, *pieces: str) -> bool:
    """One line on standard error, exit status 2, nothing printed, every piece said."""
    one_line = err.count("\n") == 1 and err.startswith("derive: error: ")
    return status == 2 and out == "" and one_line and all(p in err for p in pieces)


def apart(argv: list[str], stdin=subprocess.DEVNULL) -> tuple[subprocess.CompletedProcess, float]:
    """``derive`` in a subprocess: at most 30 s and 1.5 GiB of address space."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3 * 2**29, 3 * 2**29))

    start = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "derive", *argv],
        stdin=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
        preexec_fn=limit,
        check=False,
    )
    return run, time.monotonic() - start


def refused_apart(run: subprocess.CompletedProcess, *pieces: str) -> bool:
    return refused(run.returncode, run.stdout, run.stderr, *pieces)


# -- the input itself --------------------------------------------------------------------------
def test_ten_million_steps_are_refused_at_once(tmp_path: Path) -> None:
    """T = 10^7 printed hundreds of MB (C) or died with a MemoryError traceback (NumPy)."""
    path = tmp_path / "long.json"
    path.write_text(json.dumps(scalar(10**7), separators=(",", ":")), encoding="utf-8")
    assert path.stat().st_size > MAX_INPUT_BYTES
    for backend in ("c", "numpy"):
        run, seconds = apart(["grad", "lstm", "--input", str(path), "--backend", backend])
        assert refused_apart(run, "larger than 32 MiB, the most it may be"), run.stderr[-500:]
        assert seconds < 10


def test_fifo_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    run, seconds = apart(["grad", "lstm", "--input", str(fifo)])
    assert refused_apart(run, "not a regular file", "or - for standard input"), run.stderr
    assert seconds < 10


def test_endless_device_is_refused_at_once() -> None:
    run, seconds = apart(["grad", "lstm", "--input", "/dev/zero"])
    assert refused_apart(run, "cannot read /dev/zero: not a regular file"), run.stderr[-500:]
    assert seconds < 10


def test_endless_standard_input_is_read_only_to_the_bound() -> None:
    with open("/dev/zero", "rb") as zeros:
        run, seconds = apart(["grad", "lstm", "--input", "-"], stdin=zeros)
    assert refused_apart(run, "standard input: larger than", "(32 MiB)"), run.stderr[-500:]
    assert seconds < 15


# -- the sequence and the matrices -------------------------------------------------------------
def test_steps_beyond_the_bound(capsys, tmp_path: Path) -> None:
    status, out, err = grad(capsys, tmp_path, scalar(GRAD_MAX_T + 1), "numpy")
    assert refused(status, out, err, f"x: expected at most {GRAD_MAX_T} steps, got 100001")


@pytest.mark.skipif(not native.available(), reason="no C compiler")
def test_steps_at_the_bound_run(capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DERIVE_CACHE", str(tmp_path / "cache"))
    status, out, err = grad(capsys, tmp_path, scalar(GRAD_MAX_T), "c")
    assert status == 0 and err == ""
    result = json.loads(out)
    assert result["backend"] == "c" and len(result["h"]) == GRAD_MAX_T
    assert len(out) < 20 * 2**20  # the printed result at the bound: about 8 MB


@pytest.mark.skipif(not native.available(), reason="no C compiler")
def test_the_library_is_not_bounded(tmp_path: Path, monkeypatch) -> None:
    """The bounds are derive grad's; the engine takes longer sequences (the benchmarks)."""
    monkeypatch.setenv("DERIVE_CACHE", str(tmp_path / "cache"))
    p, steps = LSTM(), GRAD_MAX_T + 1
    traj, g = native.native_gradient(
        p.cell,
        dict.fromkeys(p.weights, 0.1),
        {"x": np.full(steps, 0.5).tolist()},
        {"h": 0.0, "c": 0.0},
        {"h": np.ones(steps).tolist()},
    )
    assert len(traj["h"]) == steps + 1 and np.isfinite(g.params["w_ix"])


def test_vector_steps_beyond_the_bound(capsys, tmp_path: Path) -> None:
    status, out, err = grad(capsys, tmp_path, vector(GRAD_MAX_T_VECTOR + 1, 1, 1))
    expected = f"x: expected at most {GRAD_MAX_T_VECTOR} steps in the vector form (matrices)"
    assert refused(status, out, err, expected)


def test_matrix_beyond_the_bound(capsys, tmp_path: Path) -> None:
    status, out, err = grad(capsys, tmp_path, vector(2, GRAD_MAX_SIZE + 1, 3))
    expected = f"weights.w_ix: expected at most {GRAD_MAX_SIZE} rows and {GRAD_MAX_SIZE} columns"
    assert refused(status, out, err, expected, "got 257x3")
    status, out, err = grad(capsys, tmp_path, vector(2, 3, GRAD_MAX_SIZE + 1))
    assert refused(status, out, err, "weights.w_ix:", "got 3x257")


def test_vector_sequences_beyond_the_bound(capsys, tmp_path: Path) -> None:
    steps = GRAD_MAX_SERIES // 100 + 1  # 100 numbers a step: 50 inputs, 50 loss weights
    status, out, err = grad(capsys, tmp_path, vector(steps, 50, 50))
    assert refused(status, out, err, f"at most {GRAD_MAX_SERIES} numbers", "x, dL_dh")


def test_out_of_memory_is_one_line(capsys, tmp_path: Path, monkeypatch) -> None:
    def exhausted(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(grad_command, "forward", exhausted)
    status, out, err = grad(capsys, tmp_path, scalar(3), "numpy")
    assert refused(status, out, err, "grad lstm: not enough memory")
    assert "Traceback" not in err
