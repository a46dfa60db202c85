"""The claims of the dropout key, each checked without its derivation.

* **Exact enumeration**: every one of the 2^n masks of an n-entry input, weighted by its
  exact rational probability (1 - p)^kept p^dropped, gives the moments of the mask and of
  the output; the derived formulas at the same rationals must equal them exactly.  Run at
  the given p and at further ones (``OTHER_P``), and at other scales (``SCALES``).
* **Sampling**: masks drawn with a seeded generator; a sample mean must lie within
  ``SAMPLING_SIGMAS`` standard errors of the formula (the error printed is in standard
  errors).  Enough masks are drawn that each outcome of a unit occurs about ``OUTCOMES``
  times, so the mean's distribution is close to normal and the bound means what it says.
* **Complex step and central differences** of the forward pass at a fixed mask give dL/dx
  for L = sum(ybar * y), against the backward rule.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterator
from fractions import Fraction

import numpy as np
import sympy as sp

from derive.problems.dropout import algebra as a
from derive.verify import Claim, rel_error
from derive.verify.routes import (
    SAMPLING_SIGMAS,
    TOLERANCE,
    central_difference,
    complex_step,
    jacobian,
    sampled,
)

#: The input the enumeration and the sampling use: its first n entries (none is zero).
EXAMPLE_X = tuple(Fraction(v) for v in
                  ("3/2", "-2", "1/2", "1", "-3/4", "5/2", "-1", "2", "1/4", "-5/2", "3", "-1/2"))
#: Further drop probabilities and training scales the enumeration runs at.
OTHER_P = (Fraction(1, 10), Fraction(1, 3), Fraction(9, 10))
SCALES = (Fraction(2), Fraction(1, 3))
#: Sampling: the seed, the fewest masks, and how often each outcome should occur.
SEED, MIN_SAMPLES, OUTCOMES = 20261202, 100_000, 1000
#: Entries sampled (each moment is linear in x or x^2: a few values of x show it).
SAMPLED_ENTRIES = 4
#: A standard error below this fraction of the value is rounding (a draw without spread).
ROUNDING = 1e-12
#: The backward check's input, fixed: a 2×3 array, a seeded mask and upstream gradient.
GRAD_X = np.array([[0.5, -1.25, 2.0], [1.5, 0.75, -3.0]])
GRAD_YBAR = np.array([[1.0, -2.0, 0.5], [3.0, 1.0, -1.5]])
EXACT = 0.0


def samples(p: Fraction) -> int:
    """Masks drawn per entry: at least ``MIN_SAMPLES``, and enough for ``OUTCOMES`` of the
    rarer outcome (p = 1/1000 needs 10^6)."""
    return max(MIN_SAMPLES, math.ceil(OUTCOMES / min(p, 1 - p)))


def enumerate_moments(x: tuple[Fraction, ...], p: Fraction, s: Fraction) -> dict[str, list]:
    """Exact moments over all 2^n masks: per entry E[m], E[m^2], E[s m x], E[(s m x)^2].

    Each mask's probability is an integer over the common denominator b^n (p = a/b), so
    the masks are summed in integers: per entry, the total weight of the masks that keep
    it and of those that drop it; the moments follow from those two totals.
    """
    a, b, n = p.numerator, p.denominator, len(x)
    kept_weight, dropped_weight = [0] * n, [0] * n
    for mask in itertools.product((0, 1), repeat=n):
        kept = sum(mask)
        weight = (b - a) ** kept * a ** (n - kept)
        for i, m in enumerate(mask):
            if m:
                kept_weight[i] += weight
            else:
                dropped_weight[i] += weight
    out: dict[str, list] = {k: [] for k in ("m", "m2", "y", "y2")}
    for xi, on, off in zip(x, kept_weight, dropped_weight, strict=True):
        prob = {1: Fraction(on, b**n), 0: Fraction(off, b**n)}
        out["m"].append(sum(m * w for m, w in prob.items()))
        out["m2"].append(sum(m * m * w for m, w in prob.items()))
        out["y"].append(sum(s * m * xi * w for m, w in prob.items()))
        out["y2"].append(sum((s * m * xi) ** 2 * w for m, w in prob.items()))
    return out


def _exact(expr: sp.Expr, p: Fraction, x: Fraction, s: Fraction | None = None) -> Fraction:
    """``expr`` at rationals, in rational arithmetic (a float would show as a mismatch)."""
    value = _rational_code(expr)(p, x, Fraction(1) if s is None else s)
    return value if isinstance(value, Fraction) else Fraction(value)


@functools.cache
def _rational_code(expr: sp.Expr):
    # The formulas hold integers only, so their Python code keeps Fractions exact.
    return sp.lambdify((a.P, a.X, a.S), expr, modules=[{}])


def enumeration_claims(f: dict[str, sp.Expr], p: Fraction, n: int) -> Iterator[Claim]:
    """The symbolic results against exact enumeration at every p, entry and scale."""
    x, bad = EXAMPLE_X[:n], dict.fromkeys(
        ("mask_mean", "mask_square", "mean_general", "scale", "mean", "second_moment",
         "variance", "plain_mean", "test_scale"), 0)
    for q in (p, *OTHER_P):
        scale = _exact(f["scale"], q, Fraction(1))
        inverted, plain = enumerate_moments(x, q, scale), enumerate_moments(x, q, Fraction(1))
        for i, xi in enumerate(x):
            e = {k: v[i] for k, v in inverted.items()}
            bad["mask_mean"] += e["m"] != _exact(f["mask_mean"], q, xi)
            bad["mask_square"] += e["m2"] != _exact(f["mask_square"], q, xi)
            bad["scale"] += e["y"] != xi  # the scale's defining property
            bad["mean"] += e["y"] != _exact(f["mean"], q, xi)
            bad["second_moment"] += e["y2"] != _exact(f["second_moment"], q, xi)
            bad["variance"] += e["y2"] - e["y"] ** 2 != _exact(f["variance"], q, xi)
            bad["plain_mean"] += plain["y"][i] != _exact(f["plain_mean"], q, xi)
            bad["test_scale"] += _exact(f["test_scale"], q, xi) * xi != plain["y"][i]
            for s in SCALES:
                got = enumerate_moments((xi,), q, s)["y"][0]
                bad["mean_general"] += got != _exact(f["mean_general"], q, xi, s)
    tried = ", ".join(str(q) for q in (p, *OTHER_P))
    scales = ", ".join(map(str, SCALES))
    sizes = f"all {2**n} masks of n = {n} entries; p = {tried}; other scales s = {scales}"
    for key, count in bad.items():
        yield Claim.measured(key, "exact enumeration over every mask", sizes, count, EXACT)


def number_claims(values: dict[str, sp.Expr], p: Fraction, n: int) -> Iterator[Claim]:
    """The numbers at the given p: the scale as 1/E[m] and the variance's factor as
    Var(y)/x^2, both enumerated."""
    x = EXAMPLE_X[:n]
    plain = enumerate_moments(x, p, Fraction(1))
    scale = 1 / plain["m"][0]
    inverted = enumerate_moments(x, p, scale)
    factors = {(inverted["y2"][i] - inverted["y"][i] ** 2) / xi**2 for i, xi in enumerate(x)}
    got = {"scale_value": {scale}, "variance_factor": factors}
    sizes = f"all {2**n} masks of n = {n} entries, p = {p}"
    for key, found in got.items():
        want = Fraction(str(values[key]))
        method = "exact enumeration: the reciprocal of E[m], and Var(y) over x squared"
        yield Claim.measured(key, method, sizes, sum(v != want for v in found), EXACT)


def sampling_claims(f: dict[str, sp.Expr], p: Fraction, n: int) -> Iterator[Claim]:
    """E[m], E[y] and Var(y) per entry from sampled masks: the worst |mean - formula| in
    standard errors."""
    rng, count, q = np.random.default_rng(SEED), samples(p), float(1 - p)
    worst = dict.fromkeys(("mask_mean", "mean", "second_moment", "variance"), 0.0)
    for xi in EXAMPLE_X[: min(n, SAMPLED_ENTRIES)]:
        xf = float(xi)
        draws = {  # fresh masks for each moment: four independent samples
            "mask_mean": lambda g, k: g.random(k) >= float(p),
            "mean": lambda g, k, xf=xf: (g.random(k) >= float(p)) * xf / q,
            "second_moment": lambda g, k, xf=xf: ((g.random(k) >= float(p)) * xf / q) ** 2,
            # E[y] = x, so the mean of (y - x)^2 is the variance.
            "variance": lambda g, k, xf=xf: ((g.random(k) >= float(p)) * xf / q - xf) ** 2,
        }
        for key, draw in draws.items():
            mean, err = sampled(draw, count, rng)
            exact = float(_exact(f[key], p, xi))
            # At p = 1/2, (y - x)^2 = x^2 whatever the mask: no spread, only rounding.
            worst[key] = max(worst[key], abs(mean - exact) / max(err, ROUNDING * abs(exact)))
    sizes = (f"{count} masks for each of the first {min(n, SAMPLED_ENTRIES)} entries, "
             f"p = {p}, seed {SEED}")
    method = f"sampling: |sample mean - formula| in standard errors (at most {SAMPLING_SIGMAS:g})"
    for key, z in worst.items():
        yield Claim.measured(key, method, sizes, z, SAMPLING_SIGMAS)


def backward_claims(backward: sp.Expr, p: Fraction) -> Iterator[Claim]:
    """The backward rule against complex step and central differences of the forward
    pass y = mask * x / (1 - p), L = sum(ybar * y), at a seeded mask."""
    rng = np.random.default_rng(SEED)
    mask = rng.random(GRAD_X.shape) >= float(p)
    mask[0, 0], mask[0, 1] = True, False  # both outcomes, whatever the draw
    rule = sp.lambdify((a.M, a.YBAR, a.P), backward, "numpy")
    derived = np.broadcast_to(rule(mask.astype(float), GRAD_YBAR, float(p)), GRAD_X.shape)

    def loss(x: np.ndarray) -> np.ndarray:
        return np.sum(GRAD_YBAR * np.where(mask, x / float(1 - p), 0.0))

    sizes = f"x and the gradient of y, 2x3, a mask drawn with seed {SEED}, p = {p}"
    for name, route in (("complex step", complex_step), ("central difference",
                                                         central_difference)):
        ref = jacobian(loss, GRAD_X, route).reshape(GRAD_X.shape)
        yield Claim.measured("backward", name, sizes, rel_error(derived, ref), TOLERANCE[name])
