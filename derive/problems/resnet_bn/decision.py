"""The decision rule: which ordering's gradient norm moves least with depth."""

from __future__ import annotations

import math
from collections.abc import Sequence


def log_range(gains: Sequence[float]) -> float:
    """max − min of log10 of the gains: how much the gradient norm moves with depth."""
    logs = [math.log10(g) for g in gains]
    return max(logs) - min(logs)


def easier_ordering(gains: dict[int, Sequence[float]]) -> int:
    """The ordering whose gain changes least with depth (ties go to the lower number)."""
    return min(gains, key=lambda k: (log_range(gains[k]), k))


def growth(depths: Sequence[int], gains: Sequence[float]) -> dict[str, float]:
    """Over the last depth interval: the factor per block and the slope on log-log axes."""
    (d0, d1), (g0, g1) = depths[-2:], gains[-2:]
    ratio = g1 / g0
    return {
        "per_block": ratio ** (1 / (d1 - d0)),
        "loglog_slope": math.log(ratio) / math.log(d1 / d0),
    }
