"""3. The derived gradient as code: derive's compiled adjoints against JAX and PyTorch.

derive's side is what ``derive grad lstm`` runs on numbers: the forward pass
(``engine.numeric.forward``) and the backward sweep of the derived scalar equations compiled
once by ``lambdify`` (``ScalarSweep``; the compile is timed apart, like JAX's).  A batch is
one call on arrays of shape (B,) per step: ``ScalarSweep`` works elementwise, and before
timing the batched gradients are compared with single-sequence runs of the same sequences.
Each peer's gradient is compared with derive's on the same inputs before it is timed.
"""

from __future__ import annotations

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
    interleaved,
    median,
    missing,
    timed,
)
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


class DeriveGradient:
    """derive's forward pass and compiled backward sweep for the scalar LSTM."""

    def __init__(self) -> None:
        self.problem = LSTM()
        self.sweep = ScalarSweep(self.problem.adjoints)
        self.compile_s = timed(lambda: self.sweep._compiled)[0]
        self.split: list[tuple[float, float]] = []  # (forward, sweep) seconds of each call

    def run(self, seq: Sequences) -> Gradients:
        # One sequence as plain floats (what derive grad reads from JSON); a batch as rows.
        x = seq.x.tolist() if seq.batch is None else list(seq.x)
        a = seq.a.tolist() if seq.batch is None else list(seq.a)
        fwd, traj = timed(
            lambda: forward(self.problem.cell, seq.weights, {"x": x}, {"h": seq.h0, "c": seq.c0})
        )
        back, grads = timed(lambda: self.sweep.run(traj, seq.weights, {"h": a}))
        self.split.append((fwd, back))
        return grads


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
        for size in (None, batch):
            run = measure(dg, make_sequences(steps, size, SEED), why, cfg.repeats)
            rows += _rows(steps, size, run["seconds"], run["derive_split_s"])
            runs.append(run)
    worst = {k: max(r["errors"].get(k, 0.0) for r in runs) for k in ("batch", "JAX", "PyTorch")}
    compile_s = [r["jax_compile_s"] for r in runs if "jax_compile_s" in r]
    rows += _summary_rows(why, worst, compile_s, dg.compile_s)
    data = {
        "batch": batch,
        "derive_compile_s": dg.compile_s,
        "missing": why,
        "runs": runs,
        "worst_disagreement": worst,
    }
    return rows, data


def measure(dg: DeriveGradient, seq: Sequences, why: dict, repeats: int) -> dict:
    """Cross-check, then time derive and every installed peer on ``seq``, interleaved."""
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
    for peer in [p for p in fns if p != "derive"]:
        err = disagreement(reference, fns[peer]())
        if err > AGREE:
            raise AssertionError(f"{peer} and derive disagree by {err:.1e} at T={steps}")
        out["errors"][peer] = err
    dg.split.clear()
    out["seconds"] = interleaved(fns, repeats)
    out["derive_split_s"] = dg.split[:]
    return out


def _rows(steps: int, size: int | None, times: dict, split: list) -> list[Row]:
    mine = median(times["derive"])
    fwd = median([f for f, _ in split])
    back = median([b for _, b in split])
    label = f"grad T={steps}, " + ("1 sequence" if size is None else f"batch {size}")
    detail = f"derive {fmt(mine, 's')} (forward {fmt(fwd, 's')} + sweep {fmt(back, 's')})"
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


def _summary_rows(absent: dict, worst: dict, compile_s: list, derive_compile: float) -> list[Row]:
    rows = [
        at_most(
            "batched sweep vs single sequences",
            worst["batch"],
            BATCH_AGREE,
            "rel",
            "first and last sequence of every batch",
        ),
        Row(
            "derive compile (lambdify, once per cell)",
            derive_compile,
            "s",
            detail="excluded from the times above",
        ),
    ]
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
