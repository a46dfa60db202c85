"""Timing helpers and the row every benchmark reports.

A figure is the median of ``repeats`` runs; a comparison times both sides in the same
process, interleaved run by run, so a burst of load on a shared machine hits both.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

NO_TARGET = "-"


@dataclass
class Row:
    """One line of the table: a measured value against its target.

    ``met`` is None for a row without a target (context for another row) or one that could
    not be measured (a peer library that is not installed); ``value`` is None for the latter.
    """

    name: str
    value: float | None
    unit: str
    target: str = NO_TARGET
    met: bool | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        value = self.value if self.value is None or math.isfinite(self.value) else None
        return {
            "name": self.name,
            "value": value,
            "unit": self.unit,
            "target": self.target,
            "met": self.met,
            "detail": self.detail,
        }


@dataclass
class Section:
    """A group of rows with the raw measurements behind them (written to the JSON)."""

    key: str
    title: str
    how: str  # how the figures were taken ("median of 5 runs")
    rows: list[Row] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    load: tuple[float, float] = (math.nan, math.nan)
    seconds: float = math.nan

    def as_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "how": self.how,
            "rows": [r.as_dict() for r in self.rows],
            "data": self.data,
            "load_1min": {"before": self.load[0], "after": self.load[1]},
            "seconds": self.seconds,
        }


def at_most(name: str, value: float, limit: float, unit: str, detail: str = "") -> Row:
    """A row whose target is ``value <= limit``."""
    return Row(name, value, unit, f"<= {fmt(limit, unit)}", bool(value <= limit), detail)


def below(name: str, value: float, limit: float, unit: str, detail: str = "") -> Row:
    """A row whose target is ``value < limit`` (a strict "faster than")."""
    return Row(name, value, unit, f"< {fmt(limit, unit)}", bool(value < limit), detail)


def missing(name: str, target: str, reason: str) -> Row:
    """A row that could not be measured here (a peer that is not installed)."""
    return Row(name, None, "", target, None, reason)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds one call of ``fn`` took, and what it returned."""
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[float]]:
    """Times of each function over ``repeats`` rounds, one call of each per round."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            times[k].append(timed(fn)[0])
    return times


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def fmt(value: float | None, unit: str) -> str:
    """A value for the table: seconds in s/ms/us, ratios with x, errors in e-notation."""
    if value is None:
        return "n/a"
    if not math.isfinite(value):
        return str(value)
    if unit == "s":
        for scale, name in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
            if abs(value) >= scale or name == "us":
                return f"{value / scale:.3g} {name}"
    if unit == "x":
        return f"{value:.3g}x"
    if unit == "rel":
        return f"{value:.1e}"
    return f"{value:.4g}{(' ' + unit) if unit else ''}"
