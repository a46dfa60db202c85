"""A residual stack with BatchNorm, simulated in NumPy: forward rules, their vector-Jacobian
products, and the directional derivatives that check them.

A block is data: a sequence of operations applied to the block input x one after the
other, ``"weight"`` (a fully connected layer), ``"bn"`` (BatchNorm in training mode, batch
statistics, γ = 1, β = 0), ``"relu"`` and ``"add"`` (adds x itself: the skip connection).
Activations are batch × width arrays (the batch axis second last).  A stack of such blocks
runs forward on one batch X_0; ``input_gradient`` is the hand-written reverse pass for the
loss ℓ = Σ R ⊙ X_L.  The directional derivatives of ℓ (complex step, central difference,
and the complex step "pinned" to the real trajectory) go through ``derive.verify.routes``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from derive.verify import routes

EPS = 1e-5  # BN's variance floor, the usual framework default


# -- forward rules and their vector-Jacobian products ---------------------------------------------
# Activations are batch × width arrays (the batch axis second last).  Every rule also runs on
# complex arrays (complex step): nothing below takes an absolute value or a conjugate.


def weight_fwd(h: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if np.iscomplexobj(h):  # w is real: two real products, not one promoted to complex
        return h.real @ w + 1j * (h.imag @ w), w
    return h @ w, w


def weight_vjp(g: np.ndarray, w: np.ndarray) -> np.ndarray:
    return g @ w.T


def bn_fwd(h: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Training mode: each feature (column) normalised by its batch mean and variance."""
    centred = h - h.mean(axis=-2, keepdims=True)
    std = np.sqrt((centred * centred).mean(axis=-2, keepdims=True) + EPS)
    xhat = centred / std
    return xhat, (xhat, std)


def bn_vjp(g: np.ndarray, cache: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    xhat, std = cache
    # The mean and the variance depend on every sample: two batch averages leave.
    mean_g = g.mean(axis=-2, keepdims=True)
    return (g - mean_g - xhat * (g * xhat).mean(axis=-2, keepdims=True)) / std


def relu_fwd(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mask = h.real > 0
    return np.where(mask, h, 0), mask


def relu_vjp(g: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return g * mask


VJP = {"weight": weight_vjp, "bn": bn_vjp, "relu": relu_vjp}
FORWARD = {"weight": weight_fwd, "bn": bn_fwd, "relu": relu_fwd}


# -- blocks and stacks ----------------------------------------------------------------------------
def block_forward(
    ops: Sequence[str], x: np.ndarray, weights: Sequence[np.ndarray], skip: np.ndarray | None = None
) -> tuple[np.ndarray, list[tuple[str, Any]]]:
    """One block on the batch ``x``; ``skip``, if given, replaces x on the skip edge only.

    Returns the output and the tape (operation, cache) for ``block_vjp``.
    """
    h, tape, ws = x, [], iter(weights)
    for op in ops:
        if op == "add":
            h, cache = h + (x if skip is None else skip), None
        else:
            h, cache = FORWARD[op](h, *((next(ws),) if op == "weight" else ()))
        tape.append((op, cache))
    return h, tape


def block_vjp(tape: list[tuple[str, Any]], g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cotangent of the input through the skip edge, cotangent through the branch)."""
    skip = np.zeros_like(g)
    for op, cache in reversed(tape):
        if op == "add":
            skip = g  # the sum hands its cotangent to both of its inputs
        else:
            g = VJP[op](g, cache)
    return skip, g


@dataclass(frozen=True)
class Instance:
    """One batch, one loss projection and the weights of a stack, all from one seed."""

    x: np.ndarray
    r: np.ndarray
    weights: list[tuple[np.ndarray, np.ndarray]]


def make_instance(width: int, batch: int, depth: int, seed: int) -> Instance:
    """Standard normal X_0 and R; He-initialised weights (variance 2/width) for each block."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, width))
    r = rng.standard_normal((batch, width))
    scale = math.sqrt(2.0 / width)
    weights = [
        (scale * rng.standard_normal((width, width)), scale * rng.standard_normal((width, width)))
        for _ in range(depth)
    ]
    return Instance(x, r, weights)


def stack_forward(
    ops: Sequence[str], inst: Instance, depth: int, x: np.ndarray | None = None
) -> tuple[list[np.ndarray], list[list[tuple[str, Any]]]]:
    """Outputs after each block (X_1 ... X_depth) and the blocks' tapes."""
    h = inst.x if x is None else x
    outs, tapes = [], []
    for w in inst.weights[:depth]:
        h, tape = block_forward(ops, h, w)
        outs.append(h)
        tapes.append(tape)
    return outs, tapes


def input_gradient(tapes: list[list[tuple[str, Any]]], g: np.ndarray) -> np.ndarray:
    """∂ℓ/∂X_0 from ∂ℓ/∂X_L = g by the reverse pass through ``tapes`` (blocks 1..L)."""
    for tape in reversed(tapes):
        skip, branch = block_vjp(tape, g)
        g = skip + branch
    return g


def loss(ops: Sequence[str], inst: Instance, depth: int, x: np.ndarray) -> Any:
    """ℓ = Σ R ⊙ X_depth for the input batch ``x`` (real or complex)."""
    outs, _ = stack_forward(ops, inst, depth, x)
    return np.sum(inst.r * outs[-1])


def complex_step(ops: Sequence[str], inst: Instance, depth: int, v: np.ndarray) -> float:
    """Directional derivative of ℓ along ``v`` at X_0 by a complex step (no cancellation)."""
    return float(routes.complex_step(lambda d: loss(ops, inst, depth, inst.x + d * v)))


def pinned_complex_step(ops: Sequence[str], inst: Instance, depth: int, v: np.ndarray) -> float:
    """The same derivative by complex steps taken operation by operation on the real forward
    pass's own trajectory: each operation maps the tangent t at its real input h to the
    complex step of the operation at h along t, and its real output is the real
    operation's.  Plain complex arithmetic rounds the real parts differently (complex sqrt
    and division), and an exploding stack amplifies those last bits along the way; pinned,
    the derivative is taken exactly where the reverse pass took it."""
    x, t = inst.x, v
    for w in inst.weights[:depth]:
        h, ht, ws = x, t, iter(w)
        for op in ops:
            if op == "add":
                h, ht = h + x, ht + t
                continue
            args = (next(ws),) if op == "weight" else ()
            h, ht = _pinned(FORWARD[op], h, ht, args)
        x, t = h, ht
    return float(np.sum(inst.r * t))


def _pinned(fwd: Any, h: np.ndarray, t: np.ndarray, args: tuple) -> tuple[np.ndarray, np.ndarray]:
    """One operation's real output at h and its tangent along t (by a complex step)."""
    return fwd(h, *args)[0], routes.complex_step(lambda d: fwd(h + d * t, *args)[0])


def central_difference(ops: Sequence[str], inst: Instance, depth: int, v: np.ndarray) -> float:
    """The same derivative by a central difference (``routes.CENTRAL_STEP``)."""
    return float(routes.central_difference(lambda d: loss(ops, inst, depth, inst.x + d * v)))


def measure(
    ops: Sequence[str], inst: Instance, depths: Sequence[int]
) -> tuple[list[float], list[np.ndarray]]:
    """Gains G(L) for each depth and the input gradients they come from."""
    _, tapes = stack_forward(ops, inst, max(depths))
    # One reverse pass per depth: stacking them into one pass would save calls but make
    # each product big enough for OpenBLAS to thread it, which is far slower on a busy machine.
    grads = [input_gradient(tapes[:d], inst.r) for d in depths]
    ref = float(np.linalg.norm(inst.r))
    return [float(np.linalg.norm(g)) / ref for g in grads], grads
