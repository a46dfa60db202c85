"""Running the momentum map k steps forward and k steps back: float64 against mpmath.

The inverse is exact, so whatever the float64 round trip loses is rounding amplified by the
inverse (up to β^-k); the same round trip in enough mpmath digits shows the formula exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import mpmath
import numpy as np

from derive.problems.momentum.model import CENTER, forward

Map = Callable[[np.ndarray, float, float], np.ndarray]


def float_reversal(
    s0: np.ndarray, inv: Map, steps: tuple[int, ...], a: float, b: float
) -> list[float]:
    """Relative error of s0 after k forward then k inverse float64 steps, for each k."""
    out = []
    for k in steps:
        s = s0.copy()
        # A small beta can amplify rounding past float64's range: that is the finding,
        # reported as an infinite error, not a warning.
        with np.errstate(over="ignore", invalid="ignore"):
            for _ in range(k):
                s = forward(s, a, b)
            for _ in range(k):
                s = inv(s, a, b)
            err = float(np.linalg.norm(s - s0) / np.linalg.norm(s0))
        out.append(err if math.isfinite(err) else math.inf)
    return out


def _grad_mp(x: list) -> list:
    """∇J of ``model.grad_j`` in mpmath (the same J, written again for mpf lists)."""
    u = [v - CENTER for v in x]
    total = mpmath.fsum(u)
    return [mpmath.tanh(v) + total / 5 + v**3 / 20 for v in u]


def mp_reversal(s0: np.ndarray, k: int, a: float, b: float, dps: int) -> float:
    """The same round trip of ``k`` steps at ``dps`` digits: the relative error of s0."""
    n = s0.size // 2
    with mpmath.workdps(dps):
        th0 = [mpmath.mpf(float(x)) for x in s0[:n]]
        p0 = [mpmath.mpf(float(x)) for x in s0[n:]]
        a_mp, b_mp = mpmath.mpf(a), mpmath.mpf(b)
        th, pp = th0, p0
        for _ in range(k):
            pp = [b_mp * u - a_mp * v for u, v in zip(pp, _grad_mp(th), strict=True)]
            th = [u + v for u, v in zip(th, pp, strict=True)]
        for _ in range(k):
            th = [u - v for u, v in zip(th, pp, strict=True)]
            pp = [(u + a_mp * v) / b_mp for u, v in zip(pp, _grad_mp(th), strict=True)]
        diff = mpmath.sqrt(
            mpmath.fsum((u - v) ** 2 for u, v in zip(th + pp, th0 + p0, strict=True))
        )
        norm = mpmath.sqrt(mpmath.fsum(v**2 for v in th0 + p0))
        return float(diff / norm)
