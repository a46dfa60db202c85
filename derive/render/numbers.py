"""Numbers as answer keys print them (filters handed to the templates).

* ``sig6``: a computed number to six significant digits, as LaTeX math (a worked example's
  forward values, adjoints and gradients).
* ``approx``: a SymPy number or matrix rounded to a number of significant digits, for
  "W^n ≈ ...";
* ``millions``: a count in millions to one decimal ("207.5"), for "about N million".
"""

from __future__ import annotations

from typing import Any


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
