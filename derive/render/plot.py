"""Plots as data for LaTeX's own ``picture`` environment (no TikZ, no extra packages).

``log_plot`` maps computed series to picture coordinates on a log-scaled y axis; the
template macro ``log_plot`` only places the marks.  Keeping the mapping here keeps
arithmetic out of templates, and plot geometry out of problems: a problem exports the
numbers as results, and its template calls ``curve_plot`` (a Jinja global) on them.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import mpmath
import sympy as sp

#: Magnitudes float64 holds to full precision (2^-1022 to its largest finite number).
FLOAT_RANGE = (sys.float_info.min, sys.float_info.max)
#: Marks for successive series: LaTeX code placed at each point.
MARKS = (
    r"\circle*{1.6}",
    r"\circle{2.2}",
    r"\makebox(0,0){\tiny$\times$}",
    r"\makebox(0,0){\rule{1.3mm}{1.3mm}}",
)


@dataclass(frozen=True)
class Plot:
    r"""A plot in picture units (1 unit = 1 mm), every position a ready "(x,y)" string.

    Positions are strings because the template writes ``\put (x,y)``: computing them
    here keeps arithmetic out of the template.
    """

    box: str  # "(width,height)(x0,y0)" of the picture environment
    axes: tuple[str, str]  # "\put" positions and line specs of the two axes
    series: list[tuple[str, str, list[str]]]  # (label, mark, positions)
    xticks: list[tuple[str, str, str]]  # (tick position, label position, label)
    yticks: list[tuple[str, str, str]]
    xlabel: tuple[str, str]  # (position, text)
    ylabel: tuple[str, str]


def log_plot(
    series: dict[str, list[tuple[float, float]]],
    xlabel: str,
    ylabel: str,
    width: int = 110,
    height: int = 60,
) -> Plot:
    """Place ``series`` {label: [(x, y >= 0), ...]} on a linear x and a log10 y axis.

    y may be a float or an mpmath number of any size (10^1200 has a place on a log axis).
    A y of 0 has none: that point is left out, and the caller's label should say so.
    """
    xs = [x for pts in series.values() for x, _ in pts]
    logs = [_log10(y) for pts in series.values() for _, y in pts if y != 0]
    x0, x1 = min(xs), max(xs)
    lo, hi = (math.floor(min(logs)), math.ceil(max(logs))) if logs else (0, 1)
    hi = hi if hi > lo else lo + 1

    def px(x: float) -> float:
        return round((x - x0) / (x1 - x0) * width, 2)

    def py(log: float) -> float:
        return round((log - lo) / (hi - lo) * height, 2)

    placed = [
        (label, MARKS[i % len(MARKS)], [_at(px(x), py(_log10(y))) for x, y in pts if y != 0])
        for i, (label, pts) in enumerate(series.items())
    ]
    return Plot(
        box=f"({width + 16},{height + 14})(-14,-10)",
        axes=(f"{{\\line(1,0){{{width}}}}}", f"{{\\line(0,1){{{height}}}}}"),
        series=placed,
        xticks=_xticks(x0, x1, px),
        yticks=_yticks(lo, hi, py),
        xlabel=(_at(width / 2, -9), xlabel),
        ylabel=(_at(-13, height + 4), ylabel),
    )


def curve_plot(
    xs: Sequence[float],
    curves: dict[str, Sequence[Any]],
    xlabel: str,
    ylabel: str,
    vanished: str = "every value is 0, which a log axis cannot show",
) -> Plot:
    """``log_plot`` of curves sharing the abscissae ``xs`` (a template's entry point).

    A problem exports the numbers (a result's values); the key's template calls this to
    place them.  y may be a float, an mpmath number or a SymPy Float of any size.  A curve
    that is 0 everywhere has no point on a log axis: its label gets ``vanished``.
    """
    series = {}
    for label, ys in curves.items():
        ys = [_plain(y) for y in ys]
        if all(y == 0 for y in ys):
            label = f"{label}: {vanished}"
        series[label] = list(zip(xs, ys, strict=True))
    return log_plot(series, xlabel, ylabel)


def _plain(y: Any) -> Any:
    """A SymPy Float as a float where float64 holds it, else as an mpmath number."""
    if not isinstance(y, sp.Float):
        return y
    big = mpmath.mpf(y._mpf_)
    return float(big) if y == 0 or FLOAT_RANGE[0] <= abs(big) <= FLOAT_RANGE[1] else big


def _yticks(lo: int, hi: int, py: Callable[[float], float]) -> list[tuple[str, str, str]]:
    step = max(1, (hi - lo) // 6)
    return [(_at(0, py(e)), _at(-1.5, py(e)), f"$10^{{{e}}}$") for e in range(lo, hi + 1, step)]


def _xticks(x0: float, x1: float, px: Callable[[float], float]) -> list[tuple[str, str, str]]:
    xstep = _nice_step(x1 - x0)
    return [(_at(px(x), 0), _at(px(x), -3), f"{x:g}") for x in _range(x0, x1, xstep)]


def _log10(y: Any) -> float:
    """log10 of a positive float, or of an mpmath number beyond float64's range."""
    if y < 0:
        raise ValueError(f"a log axis takes y >= 0, got {y}")
    if isinstance(y, float | int):
        return math.log10(y)
    return float(mpmath.log10(y))


def _at(x: float, y: float) -> str:
    return f"({x:g},{y:g})"


def _nice_step(span: float) -> float:
    raw = span / 5
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)


def _range(a: float, b: float, step: float) -> list[float]:
    start = math.ceil(a / step) * step
    out = []
    while start <= b + 1e-9:
        out.append(start)
        start += step
    return out
