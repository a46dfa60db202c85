"""Numbers as answer keys print them (filters handed to the templates).

* ``sig6``: a computed number to six significant digits, as LaTeX math (a worked example's
  forward values, adjoints and gradients).
* ``approx``: a SymPy number or matrix rounded to a number of significant digits, for
  "W^n ≈ ...";
* ``millions``: a count in millions to one decimal ("207.5"), for "about N million";
* ``sig3``: a measured number to three significant digits, as LaTeX math, also beyond
  float64's range (a sampled minimum of 1e-400).
"""

from __future__ import annotations

from typing import Any

import mpmath
import sympy as sp


def sig6(value: float) -> str:
    """``value`` to 6 significant digits as LaTeX math: 0.123457, -2.5, 1.5\\times 10^{-7}."""
    text = f"{value:.6g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        return rf"{mantissa}\times 10^{{{int(exponent)}}}"
    return "0" if text == "-0" else text


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
    text = mpmath.nstr(value, 3, min_fixed=-3, max_fixed=4)
    mantissa, _, exponent = text.partition("e")
    return rf"{mantissa}\times 10^{{{int(exponent)}}}" if exponent else mantissa
