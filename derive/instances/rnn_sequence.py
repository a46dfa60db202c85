"""The vanilla RNN h^(t) = σ(W h^(t-1) + U x^(t)) on random sequences, as a reference.

The loss is L = Σ_t a^(t)ᵀ h^(t), so that ∂ℓ^(t)/∂h^(t) = a^(t)ᵀ.  ``loss_gradient`` and
``layer_jacobian`` differentiate the plain forward pass by a route of
``derive.verify.routes``; nothing here knows the derived formulas.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from derive.engine.functions import FUNCTIONS
from derive.verify.routes import (
    COMPLEX_STEP,
    SUMMED_CENTRAL_STEP,
    central_difference,
    complex_step,
    jacobian,
)

#: The step of each route, by the name the evidence prints.  The loss sums T steps, so its
#: central difference takes the summed-output step; σ(Wx) shares it (worst error 9e-9 at
#: 1e-5 against 3e-7 at CENTRAL_STEP over LAYER_CASES), so both are checked alike.
STEPS = {"complex step": COMPLEX_STEP, "central difference": SUMMED_CENTRAL_STEP}
#: The routes a derived derivative is compared with, by the name the evidence prints.
ROUTES = {
    "complex step": partial(complex_step, h=STEPS["complex step"]),
    "central difference": partial(central_difference, h=STEPS["central difference"]),
}

# The engine's numeric sigma: analytic (complex steps pass through) and overflow-free.
logistic = FUNCTIONS["sigma"].numpy


@dataclass(frozen=True)
class SequenceData:
    """One random RNN problem: weights, inputs x^(1..T), h^(0), loss weights a^(1..T)."""

    W: np.ndarray
    U: np.ndarray
    xs: list[np.ndarray]
    h0: np.ndarray
    a: list[np.ndarray]


def random_sequence(
    size_n: int, size_d: int, steps: int, seed: int, scale: float = 1.0
) -> SequenceData:
    """Weights N(0, scale²/n) and N(0, 1/d), inputs N(0, 1), h^(0) N(0, 1/4), a N(0, 1)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(scale=scale / np.sqrt(size_n), size=(size_n, size_n))
    u = rng.normal(scale=1 / np.sqrt(size_d), size=(size_n, size_d))
    xs = [rng.normal(size=(size_d, 1)) for _ in range(steps)]
    h0 = rng.normal(scale=0.5, size=(size_n, 1))
    a = [rng.normal(size=(size_n, 1)) for _ in range(steps)]
    return SequenceData(w, u, xs, h0, a)


def case_data(case: tuple) -> SequenceData:
    """The sequence of a case ``(n, d, T, weight scale, seed)``."""
    size_n, size_d, steps, scale, seed = case
    return random_sequence(size_n, size_d, steps, seed, scale)


def states(seq: SequenceData, w: np.ndarray | None = None) -> list[np.ndarray]:
    """h^(0), ..., h^(T) of the forward pass (``w`` replaces W, real or complex)."""
    w = seq.W if w is None else w
    hs = [seq.h0]
    for x in seq.xs:
        hs.append(logistic(w @ hs[-1] + seq.U @ x))
    return hs


def loss(seq: SequenceData, w: np.ndarray | None = None):
    """L = Σ_t a^(t)ᵀ h^(t), so that ∂ℓ^(t)/∂h^(t) = a^(t)ᵀ."""
    hs = states(seq, w)
    return sum(np.sum(a * h) for a, h in zip(seq.a, hs[1:], strict=True))


def loss_gradient(seq: SequenceData, method: str) -> np.ndarray:
    """dL/dW (n × n) entry by entry from the forward pass alone, by the route ``method``."""
    row = jacobian(lambda w: loss(seq, w), seq.W, ROUTES[method])
    return row.reshape(seq.W.shape)


def layer_jacobian(w: np.ndarray, x: np.ndarray, method: str) -> np.ndarray:
    """∂σ(Wx)/∂x column by column from σ(Wx) alone, by the route ``method``."""
    return jacobian(lambda v: logistic(w @ v), x, ROUTES[method])


def describe(cases) -> str:
    """The sizes, weight scales and seeds of cases ``(n, d, T, scale, seed)``, for evidence."""
    parts = [f"({a},{b},{c})" for a, b, c, *_ in cases]
    scales = sorted({c[3] for c in cases})
    seeds = ",".join(str(c[4]) for c in cases)
    return (
        f"(n, d, T) in {', '.join(parts)}; weight scale "
        f"{','.join(f'{s:g}' for s in scales)}; seeds {seeds}"
    )
