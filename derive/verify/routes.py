"""Independent routes to a derived result, each written once with its step and precision.

A route never reuses the derivation it checks: it perturbs a forward computation and
watches the output (complex step, central differences, the same in high precision),
enumerates every case, instantiates a symbolic count and counts, reduces a difference to
an exact zero, or samples.  Problems pass a *probe*: a function of one perturbation
``δ`` (a number, or an array of numbers for a batch of probes evaluated at once) that
returns the perturbed output.  Steps and digits are named here and nowhere else.

Why each step:

* complex step ``Im g(ih) / h``, ``h = COMPLEX_STEP = 1e-30``: no subtraction, so it is
  accurate to round-off for any h far below the scale of the function (analytic
  functions only; every registered elementwise function is analytic where it is used);
* central difference ``(g(h) - g(-h)) / 2h``, ``h = CENTRAL_STEP = 1e-6``: truncation
  ``O(h²)`` and round-off ``O(ε/h)`` balance near here for float64;
* the same with ``h = SUMMED_CENTRAL_STEP = 1e-5`` where the output is a float64 sum of
  many terms (a loss summed over T steps): its round-off is ``~ε|L|/h``, larger than the
  derivative's scale suggests, so a larger step balances the truncation better (measured
  on the vanilla RNN's cases, worst errors at h = 1e-4 / 1e-5 / 1e-6: 6e-8 / 3e-8 / 3e-7);
* high precision: the central difference at ``REFERENCE_DPS`` = 60 digits with step
  ``REFERENCE_STEP`` = 1e-25 (truncation ~1e-50), against derived equations evaluated at
  ``DERIVED_DPS`` = 50 digits.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import mpmath
import numpy as np
import sympy as sp

#: The complex step: far below any scale of the functions, and well above underflow.
COMPLEX_STEP = 1e-30
def step_text(h: float) -> str:
    """A step as a key prints it: ``1e-6`` for 1e-06, ``1e-30``; any other value as is."""
    return f"{h:g}".replace("e-0", "e-")


#: The float64 central-difference step.
CENTRAL_STEP = 1e-6
#: The float64 central-difference step for a summed output, whose round-off ~ε|L|/h is
#: large: a larger step than CENTRAL_STEP balances truncation O(h²) against it better.
SUMMED_CENTRAL_STEP = 1e-5
#: High precision: derived equations at DERIVED_DPS digits, references at REFERENCE_DPS.
DERIVED_DPS, REFERENCE_DPS = 50, 60
#: The high-precision central-difference step (a string: exact in any precision).
REFERENCE_STEP = "1e-25"

#: Default tolerance of each route (mixed relative error, see ``evidence.rel_error``); a
#: claim may state its own with the reason beside it.
TOLERANCE = {
    "complex step": 1e-12,
    "central difference": 1e-6,
    "high precision": 1e-25,
    "exact": 0.0,
}

Probe = Callable[[Any], Any]


def complex_step(g: Probe, h: float = COMPLEX_STEP) -> np.ndarray:
    """Derivative at ``δ = 0`` of the analytic ``g(δ)``: ``Im g(ih) / h``.

    Parameters
    ----------
    g : callable
        The perturbed output as a function of a complex perturbation.
    h : float
        The step; the default is the route's ``COMPLEX_STEP``.
    """
    return np.imag(g(1j * h)) / h


def central_difference(g: Probe, h: float = CENTRAL_STEP) -> np.ndarray:
    """Derivative at ``δ = 0`` of ``g(δ)`` by ``(g(h) - g(-h)) / 2h``."""
    return (np.asarray(g(h)) - np.asarray(g(-h))) / (2 * h)


def high_precision_difference(g: Probe, dps: int = REFERENCE_DPS,
                              h: str = REFERENCE_STEP) -> Any:
    """Central difference of ``g`` at ``dps`` digits (``g`` computes in mpmath)."""
    with mpmath.workdps(dps):
        step = mpmath.mpf(h)
        return (g(step) - g(-step)) / (2 * step)


def jacobian(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
             route: Callable[[Probe], np.ndarray] = complex_step) -> np.ndarray:
    """The Jacobian of ``f`` at ``x``, one column per entry of ``x``, by ``route``."""
    x = np.asarray(x)
    basis = np.eye(x.size).reshape(x.size, *x.shape)
    cols = [np.ravel(route(lambda d, e=e: f(x + d * e))) for e in basis]
    return np.stack(cols, axis=-1)


def failures(cases: Iterable[Any], holds: Callable[[Any], bool]) -> int:
    """Exhaustive enumeration: how many of ``cases`` break the claim ``holds``."""
    return sum(1 for case in cases if not holds(case))


def count_mismatch(formula: sp.Expr, values: dict[sp.Symbol, int], counted: int) -> int:
    """Exact counting by instantiation: |formula at ``values`` - the count of an instance|."""
    got = sp.sympify(formula).xreplace({k: sp.Integer(v) for k, v in values.items()})
    if not got.is_Integer:
        raise ValueError(f"{formula} at {values} is {got}, not an integer count")
    return abs(int(got) - int(counted))


def nonzero_entries(difference: Any) -> int:
    """Symbolic zero: how many entries of ``difference`` do not simplify to exactly 0."""
    entries = difference if isinstance(difference, sp.MatrixBase) else [difference]
    return sum(1 for e in entries if sp.simplify(sp.expand(e)) != 0)


def sampled(draw: Callable[[np.random.Generator, int], np.ndarray], n: int,
            rng: np.random.Generator) -> tuple[float, float]:
    """Sampling: the mean of ``n`` draws and its standard error."""
    values = np.asarray(draw(rng, n), dtype=float)
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(n))


#: Sampling claims hold when the sample mean is within this many standard errors.
SAMPLING_SIGMAS = 5.0


#: The gradient checks' method names (``gradcheck.METHODS``) as an evidence table heads
#: its columns: what each compares, in words.
ROUTE_WORDS = {
    "central difference": "central differences",
    "mpmath 50 digits": f"{DERIVED_DPS} digits vs {REFERENCE_DPS}-digit differences",
    "float64 vs mpmath": f"float64 vs {DERIVED_DPS} digits",
}
_DIGITS = re.compile(r"(\d+)[ -]digits?\b")


def route_words(method: str) -> str:
    """``method`` as a table prints it: a gradient check's name in words
    (``ROUTE_WORDS``, keeping any tail such as ", saturated"), others as they are."""
    head, sep, tail = method.partition(",")
    return ROUTE_WORDS.get(head, head) + sep + tail


def route_family(method: str, tolerance: float) -> str:
    """The route a check's ``method`` belongs to, for a one-line summary: ``"exact"``
    (tolerance 0), ``"complex step"``, ``"float64 evaluation"`` (of derived equations,
    against high precision), ``"N-digit arithmetic"``, ``"central differences"``,
    ``"sampling"``, else ``"float64 recomputation"`` (an independent float64 route)."""
    m = method.lower()
    if tolerance == 0:
        return "exact"
    if "complex step" in m:
        return "complex step"
    if "float64 vs" in m:
        return "float64 evaluation"
    if digits := _DIGITS.search(m):
        return f"{digits.group(1)}-digit arithmetic"
    for family in ("central difference", "sampling"):
        if family in m:
            return family + ("s" if family.endswith("difference") else "")
    return "float64 recomputation"
