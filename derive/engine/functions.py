"""Elementwise activation functions known to the engine.

``sigma`` is a SymPy function whose derivative is written as ``sigma(z)*(1 - sigma(z))``:
keeping the logistic function opaque keeps results in the form an answer key uses and makes
``diff`` several times faster than differentiating ``1/(1 + exp(-z))``.  ``tanh`` is SymPy's
own, whose derivative is ``1 - tanh(z)**2``.

``NUMERIC`` maps each function to its numeric form for NumPy (real or complex arrays) and
mpmath; both are analytic, so complex-step differentiation applies.
"""

from __future__ import annotations

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
    # 0.5*(1 + tanh(z/2)) equals 1/(1 + exp(-z)) but never overflows for large |z|,
    # and it is analytic, so it serves complex-step differentiation as well.
    return 0.5 * (1.0 + np.tanh(0.5 * z))


#: Elementwise functions the engine can differentiate, with their numeric forms.
NUMERIC = {
    sigma: {"numpy": _np_sigma, "mpmath": lambda z: 1 / (1 + mpmath.exp(-z))},
    sp.tanh: {"numpy": np.tanh, "mpmath": mpmath.tanh},
}

ELEMENTWISE = tuple(NUMERIC)
