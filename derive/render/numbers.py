"""Numbers as answer keys print them (filters handed to the templates).

* ``sig6``: a computed number to six significant digits, as LaTeX math (a worked example's
  forward values, adjoints and gradients).
* ``approx``: a SymPy number or matrix rounded to a number of significant digits, for
  "W^n ≈ ...";
* ``millions``: a count in millions to one decimal ("207.5"), for "about N million";
* ``sci``: a measured error or tolerance for the evidence tables (1.2\\times 10^{-12});
* ``sig3``: a measured number to three significant digits, as LaTeX math, also beyond
  float64's range (a sampled minimum of 1e-400);
"""

from __future__ import annotations

import math
from typing import Any

import mpmath
import sympy as sp


def _times_ten(text: str) -> str:
    """A number's text as LaTeX math: ``1.5e-07`` as ``1.5\\times 10^{-7}``, others as is."""
    mantissa, _, exponent = text.partition("e")
    return rf"{mantissa}\times 10^{{{int(exponent)}}}" if exponent else mantissa


def sig6(value: float) -> str:
    """``value`` to 6 significant digits as LaTeX math: 0.123457, -2.5, 1.5\\times 10^{-7}."""
    text = f"{value:.6g}"
    return "0" if text == "-0" else _times_ten(text)


def sci(value: float) -> str:
    """``1.2e-12`` as ``1.2\\times 10^{-12}`` (LaTeX math); plain for 0.001 to 9999.

    ``value`` may also be an mpmath number beyond float64's range (a norm of 10^1200).
    """
    if value == 0:
        return "0"
    if not isinstance(value, float | int) and not 1e-300 < abs(value) < 1e300:
        return _times_ten(mpmath.nstr(value, 2, min_fixed=1, max_fixed=0))
    value = float(value)
    if not math.isfinite(value):
        return r"\infty"
    if 1e-3 <= abs(value) < 1e3:  # plain numbers read better in this range
        return f"{value:.3g}"
    if 1e3 <= abs(value) < 1e4:  # .3g would switch to exponent form here (1.74e+03)
        return f"{value:.0f}"
    return _times_ten(f"{value:.1e}")


def millions(count: int) -> str:
    """``count`` in millions, to one decimal: 207507816 -> "207.5"."""
    return f"{count / 1e6:.1f}"


def approx(value: Any, digits: int) -> Any:
    """``value`` (a SymPy number or matrix) rounded to ``digits`` significant digits."""
    return value.evalf(digits)


def sig3(value: Any) -> str:
    """``value`` (a float, an mpmath or a SymPy number) to 3 significant digits as LaTeX
    math, fixed from 0.01 up to 10^4, else with an exponent: 0.5, -1.0, 3.33\\times 10^{-401}."""
    if isinstance(value, sp.Float):
        value = value._to_mpmath(value._prec)  # every digit it holds, any exponent
    return _times_ten(mpmath.nstr(value, 3, min_fixed=-3, max_fixed=4))
