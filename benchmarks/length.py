"""2. Deriving and verifying the LSTM adjoints at a short and a long sequence.

The problem is built with one scalar gradient-check case of length T (``LSTM(cases=...)``);
its results (the derivation) and its checks (every verification of the key, including the
fixed-length backward-map and limit checks) are timed separately.  SymPy's cache is cleared
before each run, so a later run does not reuse an earlier one's work.
"""

from __future__ import annotations

from sympy.core.cache import clear_cache

from benchmarks.config import Config
from benchmarks.timing import Row, at_most, median, timed
from derive.problems.lstm import LSTM
from derive.verify.gradcheck import Case

TARGET = 1.2
SEED = 1


def derive_and_verify(steps: int) -> tuple[float, float, bool]:
    """Seconds to derive, seconds to verify, and whether every check passed."""
    clear_cache()
    problem = LSTM(cases=[Case(steps, seed=SEED)])
    derive_s, _ = timed(lambda: problem.results)
    verify_s, checks = timed(lambda: problem.checks)
    return derive_s, verify_s, all(c.passed for c in checks)


def run(cfg: Config) -> tuple[list[Row], dict]:
    short, long = 10, cfg.pick(1000, 30)
    derive_and_verify(short)  # warm-up: imports and first-call costs are not the derivation
    runs: dict[int, list[tuple[float, float]]] = {short: [], long: []}
    for _ in range(cfg.repeats):
        for steps in (short, long):
            d, v, passed = derive_and_verify(steps)
            if not passed:
                raise RuntimeError(f"an LSTM check failed at T={steps}")
            runs[steps].append((d, v))
    der = {k: median([d for d, _ in v]) for k, v in runs.items()}
    tot = {k: median([d + w for d, w in v]) for k, v in runs.items()}
    ver = {k: median([w for _, w in v]) for k, v in runs.items()}
    label = f"T={long} / T={short}"
    rows = [
        at_most(
            f"LSTM derive + verify, {label}",
            tot[long] / tot[short],
            TARGET,
            "x",
            f"{tot[short]:.2f} s vs {tot[long]:.2f} s (verify {ver[short]:.2f} s vs "
            f"{ver[long]:.2f} s)",
        ),
        at_most(
            f"LSTM derive only, {label}",
            der[long] / der[short],
            TARGET,
            "x",
            f"{der[short] * 1e3:.0f} ms vs {der[long] * 1e3:.0f} ms",
        ),
    ]
    data = {
        "T": [short, long],
        "derive_s": {str(k): [d for d, _ in v] for k, v in runs.items()},
        "verify_s": {str(k): [w for _, w in v] for k, v in runs.items()},
    }
    return rows, data
