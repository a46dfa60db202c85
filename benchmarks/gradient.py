"""3. The derived gradient as code: derive's compiled adjoints against JAX and PyTorch.

derive's side is what ``derive grad lstm`` runs on numbers where a C compiler is: the
forward pass and the backward sweep of the derived scalar equations generated as one C
function and compiled once per cell (``derive.engine.native``; the compile is timed apart,
like JAX's, from a cold cache).  It takes NumPy arrays and returns what the peers return
(dL/dw, dL/dx_t, dL/dh_0, dL/dc_0).  A batch is one call on (T, B) arrays, the sequences
split over the cores; before timing, the batched gradients are compared with
single-sequence runs of the same sequences (the same code on the same numbers: equal to the
bit).  Each peer's gradient is compared with derive's on the same inputs before it is timed.

For reference, one row per T times the NumPy backend (``forward`` + ``ScalarSweep``
compiled by ``lambdify``, what ``derive grad --backend numpy`` runs, one sequence as plain
floats as read from JSON), after checking it against the C backend; without a C compiler
it is derive's side.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable

import numpy as np

from benchmarks.config import Config
from benchmarks.peers import (
    WEIGHTS,
    Sequences,
    jax_gradient,
    make_sequences,
    torch_gradient,
    why_missing,
)
from benchmarks.timing import (
    NO_TARGET,
    Row,
    at_most,
    below,
    fmt,
    median,
    missing,
    timed,
)
from derive.engine.native import NativeGradient, NativeUnavailable
from derive.engine.numeric import Gradients, ScalarSweep, forward
from derive.problems.lstm import LSTM
from derive.verify import rel_error

SEED = 3
#: derive and a peer evaluate the same float64 gradient in a different order of operations;
#: the accuracy section measures both against a 60-digit reference.
AGREE = 1e-9
#: The batched sweep runs the same operations elementwise, so it must agree to round-off.
BATCH_AGREE = 1e-12
#: Targets: faster than JAX on one sequence from T = 1000, within 1.3x batched from T = 100,
#: faster than PyTorch everywhere.
JAX_SINGLE_FROM, JAX_BATCH_FROM, JAX_BATCH_RATIO = 1000, 100, 1.3
#: Untimed wait before each batched call: JAX's thread pool keeps spinning for a few ms after
#: a call (measured: one or two extra runnable threads right after, none 10 ms later), and a
#: call that follows at once finds the cores taken; each side's threads get quiet cores.
#: Not for one sequence (one thread): after any wait a short call took several times as
#: long (T = 10: about 0.2 ms against 0.04 ms, for both derive and JAX).
SETTLE_S = 0.015


class DeriveGradient:
    """derive's gradient of the scalar LSTM: the C backend, or NumPy without a compiler."""

    def __init__(self) -> None:
        self.problem = LSTM()
        self.sweep = ScalarSweep(self.problem.adjoints)
        self.lambdify_s = timed(lambda: self.sweep._compiled)[0]
        self.split: list[tuple[float, float]] = []  # (forward, sweep) seconds of NumPy calls
        self.native: NativeGradient | None = None
        self.why_numpy = ""
        try:
            self.compile_s, self.native = timed(_cold_compile)
        except NativeUnavailable as exc:
            self.why_numpy = " ".join(str(exc).split())
            self.compile_s = self.lambdify_s

    @property
    def backend(self) -> str:
        return "NumPy" if self.native is None else "C"

    def run(self, seq: Sequences) -> Gradients:
        """derive's gradient of ``seq``: the C backend where it runs."""
        if self.native is None:
            return self.run_numpy(seq)
        # Arrays, as JAX gets them: converting a list costs 11 us per 1000 numbers.
        h0c0 = {"h": seq.h0, "c": seq.c0}
        g = self.native.run(seq.weights, {"x": seq.x}, h0c0, {"h": seq.a}, values=(), bars=("x",))
        return g[1]

    def run_numpy(self, seq: Sequences) -> Gradients:
        """``forward`` + ``ScalarSweep``: what ``derive grad --backend numpy`` runs."""
        # One sequence as plain floats (what derive grad reads from JSON), a batch as rows.
        x, a = (v.tolist() if seq.batch is None else list(v) for v in (seq.x, seq.a))
        fwd, traj = timed(
            lambda: forward(self.problem.cell, seq.weights, {"x": x}, {"h": seq.h0, "c": seq.c0})
        )
        back, grads = timed(lambda: self.sweep.run(traj, seq.weights, {"h": a}))
        self.split.append((fwd, back))
        return grads


def _cold_compile() -> NativeGradient:
    """The C backend built from nothing, as on a first run: derive the equations, generate
    the source, compile (into a scratch cache, not the user's)."""
    saved = os.environ.get("DERIVE_CACHE")
    with tempfile.TemporaryDirectory() as cold:
        os.environ["DERIVE_CACHE"] = cold
        try:
            return NativeGradient(LSTM().cell)  # a new cell: nothing derived yet
        finally:
            if saved is None:
                del os.environ["DERIVE_CACHE"]
            else:
                os.environ["DERIVE_CACHE"] = saved


def arrays(g: Gradients, steps: int) -> dict[str, np.ndarray]:
    """derive's gradients in the peers' layout."""
    return {
        "w": np.stack([np.asarray(g.params[k], dtype=float) for k in WEIGHTS]),
        "x": np.array(g.bars["x"][1 : steps + 1], dtype=float),
        "h0": np.asarray(g.initial["h"], dtype=float),
        "c0": np.asarray(g.initial["c"], dtype=float),
    }


def disagreement(a: dict, b: dict) -> float:
    """Worst mixed relative error over the four gradients."""
    return max(rel_error(np.asarray(a[k]), np.asarray(b[k])) for k in ("w", "x", "h0", "c0"))


def batch_error(dg: DeriveGradient, seq: Sequences, batched: dict) -> float:
    """The batched sweep against single-sequence sweeps of its first and last sequences."""
    worst = 0.0
    for j in (0, seq.batch - 1):
        one = Sequences(seq.weights, seq.x[:, j], seq.a[:, j], float(seq.h0[j]), float(seq.c0[j]))
        single = arrays(dg.run(one), len(seq.x))
        column = {k: (v[..., j] if k in ("w", "x") else v[j]) for k, v in batched.items()}
        worst = max(worst, disagreement(column, single))
    return worst


def run(cfg: Config) -> tuple[list[Row], dict]:
    steps_list = cfg.pick((10, 100, 1000, 10000), (10, 100))
    batch = cfg.pick(1000, 10)
    dg = DeriveGradient()
    why = {"JAX": why_missing("jax"), "PyTorch": why_missing("torch")}
    rows: list[Row] = []
    runs = []
    for steps in steps_list:
        pair = [
            measure(dg, make_sequences(steps, size, SEED), why, cfg.repeats)
            for size in (None, batch)
        ]
        for size, run in zip((None, batch), pair, strict=True):
            rows += _rows(dg, steps, size, run)
        if dg.native is not None:
            rows.append(_numpy_row(steps, batch, *pair))
        runs += pair
    kinds = ("batch", "NumPy", "JAX", "PyTorch")
    worst = {k: max(r["errors"].get(k, 0.0) for r in runs) for k in kinds}
    compile_s = [r["jax_compile_s"] for r in runs if "jax_compile_s" in r]
    rows += _summary_rows(dg, why, worst, compile_s)
    data = {
        "batch": batch,
        "backend": dg.backend,
        "derive_compile_s": dg.compile_s,
        "lambdify_s": dg.lambdify_s,
        "missing": why,
        "runs": runs,
        "worst_disagreement": worst,
    }
    return rows, data


def measure(dg: DeriveGradient, seq: Sequences, why: dict, repeats: int) -> dict:
    """Cross-check, then time derive and every installed peer on ``seq``, interleaved; then
    the NumPy backend alone (a reference row, no target)."""
    steps = len(seq.x)
    reference = arrays(dg.run(seq), steps)
    out: dict = {"T": steps, "batch": seq.batch or 1, "errors": {}}
    if seq.batch is not None:
        out["errors"]["batch"] = batch_error(dg, seq, reference)
    fns: dict[str, Callable] = {"derive": lambda: dg.run(seq)}
    if not why["JAX"]:
        fns["JAX"], out["jax_compile_s"] = jax_gradient(seq)
    if not why["PyTorch"]:
        fns["PyTorch"] = torch_gradient(seq)
    if dg.native is not None:
        fns["NumPy"] = lambda: arrays(dg.run_numpy(seq), steps)
    for peer in [p for p in fns if p != "derive"]:
        err = disagreement(reference, fns[peer]())
        if err > AGREE:
            raise AssertionError(f"{peer} and derive disagree by {err:.1e} at T={steps}")
        out["errors"][peer] = err
    numpy = fns.pop("NumPy", None)
    dg.split.clear()
    settle = 0.0 if seq.batch is None else SETTLE_S
    out["seconds"] = interleaved(fns, repeats, settle)
    if numpy is not None:  # slow at long T: timed alone, not in every round of the peers
        out["seconds"]["NumPy"] = interleaved({"NumPy": numpy}, repeats, settle)["NumPy"]
    out["numpy_split_s"] = dg.split[:]
    return out


def interleaved(fns: dict[str, Callable], repeats: int, settle: float) -> dict[str, list[float]]:
    """``benchmarks.timing.interleaved`` with an untimed busy wait of ``settle`` seconds
    before each call (a sleep would let the core slow down)."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            end = time.perf_counter() + settle
            while time.perf_counter() < end:
                pass
            times[k].append(timed(fn)[0])
    return times


def _rows(dg: DeriveGradient, steps: int, size: int | None, run: dict) -> list[Row]:
    times = run["seconds"]
    mine = median(times["derive"])
    label = f"grad T={steps}, " + ("1 sequence" if size is None else f"batch {size}")
    detail = f"derive {fmt(mine, 's')} ({dg.backend})"
    if dg.native is None:
        detail = detail[:-1] + _split(run) + ")"
    out = []
    for peer in ("JAX", "PyTorch"):
        if peer not in times:
            continue
        theirs = median(times[peer])
        text = f"{detail}, {peer} {fmt(theirs, 's')}"
        name = f"{label}: derive / {peer}"
        if peer == "PyTorch":
            out.append(below(name, mine / theirs, 1.0, "x", text))
        elif size is None and steps >= JAX_SINGLE_FROM:
            out.append(below(name, mine / theirs, 1.0, "x", text))
        elif size is not None and steps >= JAX_BATCH_FROM:
            out.append(at_most(name, mine / theirs, JAX_BATCH_RATIO, "x", text))
        else:
            out.append(Row(name, mine / theirs, "x", NO_TARGET, None, text))
    if len(out) == 0:  # no peer here: derive's own time still goes in the table
        out.append(Row(f"{label}: derive", mine, "s", NO_TARGET, None, detail))
    return out


def _split(run: dict) -> str:
    split = run["numpy_split_s"]
    fwd, back = median([f for f, _ in split]), median([b for _, b in split])
    return f": forward {fmt(fwd, 's')} + sweep {fmt(back, 's')}"


def _numpy_row(steps: int, batch: int, one: dict, many: dict) -> Row:
    """The NumPy backend's times at one T: what the C backend gains (no target)."""
    parts = []
    for size, run in ((1, one), (batch, many)):
        t_np, t_c = median(run["seconds"]["NumPy"]), median(run["seconds"]["derive"])
        what = "1 sequence" if size == 1 else f"batch {size}"
        parts.append(f"{what} {fmt(t_np, 's')} = {fmt(t_np / t_c, 'x')} C's{_split(run)}")
    value = median(one["seconds"]["NumPy"])
    return Row(f"grad T={steps}: NumPy backend, 1 sequence", value, "s", detail="; ".join(parts))


def _summary_rows(dg: DeriveGradient, absent: dict, worst: dict, compile_s: list) -> list[Row]:
    rows = [
        at_most(
            "batched gradient vs single sequences",
            worst["batch"],
            BATCH_AGREE,
            "rel",
            "first and last sequence of every batch",
        ),
    ]
    if dg.native is not None:
        rows += [
            at_most(
                "C backend vs NumPy backend",
                worst["NumPy"],
                AGREE,
                "rel",
                "all T and batches (two float64 evaluations of the same equations)",
            ),
            Row(
                "derive compile (C: derive, generate, cc; once per cell)",
                dg.compile_s,
                "s",
                detail=f"cold cache, excluded from the times above; NumPy's lambdify "
                f"{fmt(dg.lambdify_s, 's')}",
            ),
        ]
    else:
        rows.append(
            Row(
                "derive compile (lambdify, once per cell)",
                dg.compile_s,
                "s",
                detail=f"excluded from the times above; no C backend here: {dg.why_numpy}",
            )
        )
    for peer, why in absent.items():
        if why:
            rows.append(missing(f"{peer}: every row", "derive faster", why))
            continue
        rows.append(
            at_most(f"{peer} gradient vs derive's", worst[peer], AGREE, "rel", "all T and batches")
        )
    if compile_s:
        rows.append(
            Row(
                "JAX jit compile (excluded above)",
                median(compile_s),
                "s",
                detail=f"median over {len(compile_s)} shapes, max {max(compile_s):.2f} s",
            )
        )
    return rows
