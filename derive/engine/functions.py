"""Elementwise activation functions known to the engine.

``sigma`` is a SymPy function whose derivative is written as ``sigma(z)*(1 - sigma(z))``:
keeping the logistic function opaque keeps results in the form an answer key uses and makes
``diff`` several times faster than differentiating ``1/(1 + exp(-z))``.  ``tanh`` is SymPy's
own, whose derivative is ``1 - tanh(z)**2``.

``NUMERIC`` maps each function to its numeric form for NumPy (real or complex arrays),
mpmath, and plain Python floats (``math``: a univariate sequence, where NumPy's per-call
overhead would dominate); the NumPy and mpmath forms are analytic, so complex-step
differentiation applies.
"""

from __future__ import annotations

import cmath
import math

import mpmath
import numpy as np
import sympy as sp


class sigma(sp.Function):  # noqa: N801 - reads like the math
    """The logistic function 1/(1 + exp(-z))."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        s = sigma(self.args[0])
        return s * (1 - s)

    def _eval_rewrite_as_exp(self, z, **kwargs):
        return 1 / (1 + sp.exp(-z))

    def _latex(self, printer) -> str:
        return r"\sigma\left(%s\right)" % printer._print(self.args[0])


def _np_sigma(z):
    # 1/(1 + e^-z) for Re z >= 0 and e^z/(1 + e^z) below: the exponent's real part is
    # never positive, so nothing overflows, and both halves keep full *relative* accuracy,
    # also for sigma near 0 (a closed gate), where 0.5*(1 + tanh(z/2)) loses digits to
    # cancellation.  Each half is analytic, so complex-step differentiation applies.
    if isinstance(z, float | complex):  # one number: math/cmath, no array overhead
        exp = math.exp if isinstance(z, float) else cmath.exp
        if z.real < 0:
            e = exp(z)
            return e / (1.0 + e)
        return 1.0 / (1.0 + exp(-z))
    z = np.asarray(z)
    if z.size == 0 or z.real.min() > -700:
        # 1/(1 + e^-z) keeps full relative accuracy for either sign; only its overflow far
        # left (inf, and NaN for complex z) needs the two-sided form below.
        return 1.0 / (1.0 + np.exp(-z))
    neg = z.real < 0
    e = np.exp(np.where(neg, z, -z))
    return np.where(neg, e, 1.0) / (1.0 + e)


def _np_sech(z):
    # 1/cosh(z) where cosh cannot overflow, else 2 e / (1 + e^2) with e = exp(-|z|) (the
    # sign taken on the real part: analytic on each half-plane), which never overflows.
    # Not the latter everywhere: under a complex step near z = 0 its derivative cancels.
    if isinstance(z, float | complex):
        if abs(z.real) < 700:
            return 1.0 / (math.cosh(z) if isinstance(z, float) else cmath.cosh(z))
        e = (math.exp if isinstance(z, float) else cmath.exp)(-z if z.real >= 0 else z)
        return 2.0 * e / (1.0 + e * e)
    z = np.asarray(z)
    near = np.abs(z.real) < 700
    out = 1.0 / np.cosh(np.where(near, z, 0))
    if not near.all():
        e = np.exp(np.where(z.real >= 0, -z, z))
        out = np.where(near, out, 2.0 * e / (1.0 + e * e))
    return out


def _math_sigma(z: float) -> float:
    # The NumPy form's scalar branch for plain floats, without its type tests.
    if z < 0:
        e = math.exp(z)
        return e / (1.0 + e)
    return 1.0 / (1.0 + math.exp(-z))


def _math_sech(z: float) -> float:
    if abs(z) < 700:
        return 1.0 / math.cosh(z)
    e = math.exp(-abs(z))
    return 2.0 * e / (1.0 + e * e)


#: Elementwise functions the engine can differentiate, with their numeric forms.
NUMERIC = {
    sigma: {"numpy": _np_sigma, "mpmath": lambda z: 1 / (1 + mpmath.exp(-z)), "math": _math_sigma},
    sp.tanh: {"numpy": np.tanh, "mpmath": mpmath.tanh, "math": math.tanh},
}

#: Functions that appear only in the numeric forms of derivatives (``stable_forms``).
NUMERIC_ONLY = {sp.sech: {"numpy": _np_sech, "mpmath": mpmath.sech, "math": _math_sech}}

ELEMENTWISE = tuple(NUMERIC)
