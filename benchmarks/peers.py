"""The scalar LSTM's gradient written for JAX and PyTorch: the peers derive is timed against.

The cell is the handouts' univariate LSTM (``derive.problems.lstm``), written out by hand
here, with the loss L = sum_t a_t h_t.  Each peer returns the same gradients ``derive grad``
gives: dL/dw for the eight weights, dL/dx_t at every step and dL/dh_0, dL/dc_0; a batch
holds independent sequences sharing the weights, with per-sequence gradients.  Everything
is float64.  Neither library is a dependency of derive: ``why_missing`` says why one is
missing, and the harness prints a "not installed" row for it.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: The weights in the order the arrays below hold them.
WEIGHTS = ("w_ix", "w_ih", "w_fx", "w_fh", "w_ox", "w_oh", "w_gx", "w_gh")
TORCH_WHY = (
    "PyTorch's PyPI wheel for Linux (555 MB) needs the CUDA 13 toolkit, cuDNN, NCCL and "
    "Triton wheels (GBs more; without them import fails on libcudnn.so.9), and the "
    "CPU-only wheel is not on PyPI"
)


@dataclass
class Sequences:
    """One sequence (1-D arrays over steps, scalar states) or a batch ((T, B) arrays)."""

    weights: dict[str, float]
    x: np.ndarray  # inputs, (T,) or (T, B)
    a: np.ndarray  # loss weights dL/dh_t, same shape
    h0: np.ndarray | float
    c0: np.ndarray | float

    @property
    def batch(self) -> int | None:
        return None if self.x.ndim == 1 else self.x.shape[1]


def make_sequences(steps: int, batch: int | None, seed: int) -> Sequences:
    """Weights uniform in [-1, 1] (as derive's gradient checks), inputs and a normal."""
    rng = np.random.default_rng(seed)
    shape = (steps,) if batch is None else (steps, batch)
    weights = {w: float(v) for w, v in zip(WEIGHTS, rng.uniform(-1, 1, 8), strict=True)}
    states = rng.normal(scale=0.5, size=(2,) if batch is None else (2, batch))
    h0, c0 = (float(s) for s in states) if batch is None else states
    return Sequences(weights, rng.normal(size=shape), rng.normal(size=shape), h0, c0)


def why_missing(name: str) -> str:
    """Empty if library ``name`` imports here, else why it does not."""
    if importlib.util.find_spec(name) is None:
        why = TORCH_WHY if name == "torch" else "pip install -e '.[bench]'"
        return f"not installed: {why}"
    try:
        __import__(name)
    except Exception as exc:  # a broken install (missing shared libraries) is also absent
        return f"not importable: {exc}"
    return ""


# -- JAX ------------------------------------------------------------------------------------------
def jax_gradient(seq: Sequences) -> tuple[Callable[[], dict], float]:
    """A call of the jitted gradient on ``seq`` (compiled already), and the compile seconds."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)

    # The weights as one array: dL/dw of eight separate scalars ran about 20x slower at T = 10000
    # (measured with JAX 0.10 on this machine), and the peer should get its best form.
    index = {k: j for j, k in enumerate(WEIGHTS)}

    def loss(w, x, a, h0, c0):
        def pre(gate, xt, h):
            return w[index[f"w_{gate}x"]] * xt + w[index[f"w_{gate}h"]] * h

        def step(carry, xa):
            h, c = carry
            xt, at = xa
            i = jax.nn.sigmoid(pre("i", xt, h))
            f = jax.nn.sigmoid(pre("f", xt, h))
            o = jax.nn.sigmoid(pre("o", xt, h))
            g = jnp.tanh(pre("g", xt, h))
            c = f * c + i * g
            h = o * jnp.tanh(c)
            return (h, c), at * h

        _, terms = jax.lax.scan(step, (h0, c0), (x, a))
        return jnp.sum(terms)

    grad = jax.grad(loss, argnums=(0, 1, 3, 4))
    if seq.batch is not None:  # per-sequence gradients; the batch is axis 1 of x and a
        grad = jax.vmap(grad, in_axes=(None, 1, 1, 0, 0), out_axes=(1, 1, 0, 0))
    args = (
        jnp.array([seq.weights[k] for k in WEIGHTS]),
        jnp.asarray(seq.x),
        jnp.asarray(seq.a),
        jnp.asarray(seq.h0),
        jnp.asarray(seq.c0),
    )
    start = time.perf_counter()
    compiled = jax.jit(grad).lower(*args).compile()
    compile_s = time.perf_counter() - start

    def call() -> dict:
        w, x, h0, c0 = jax.block_until_ready(compiled(*args))
        return {"w": w, "x": x, "h0": h0, "c0": c0}

    return call, compile_s


# -- PyTorch --------------------------------------------------------------------------------------
def torch_gradient(seq: Sequences) -> Callable[[], dict]:
    """A call of PyTorch autograd on ``seq``: the graph is recorded step by step, as usual."""
    import torch

    def leaf(v) -> torch.Tensor:
        return torch.tensor(v, dtype=torch.float64).requires_grad_()

    def call() -> dict:
        shape = () if seq.batch is None else (seq.batch,)
        # One weight copy per sequence: its gradient is that sequence's own.
        w = {k: leaf(np.full(shape, v)) for k, v in seq.weights.items()}
        x, h0, c0 = leaf(seq.x), leaf(seq.h0), leaf(seq.c0)
        a = torch.tensor(seq.a, dtype=torch.float64)
        h, c, total = h0, c0, 0.0
        for k in range(len(seq.x)):
            i = torch.sigmoid(w["w_ix"] * x[k] + w["w_ih"] * h)
            f = torch.sigmoid(w["w_fx"] * x[k] + w["w_fh"] * h)
            o = torch.sigmoid(w["w_ox"] * x[k] + w["w_oh"] * h)
            g = torch.tanh(w["w_gx"] * x[k] + w["w_gh"] * h)
            c = f * c + i * g
            h = o * torch.tanh(c)
            total = total + (a[k] * h).sum()
        total.backward()
        grads = np.stack([w[k].grad.numpy() for k in WEIGHTS])
        return {"w": grads, "x": x.grad.numpy(), "h0": h0.grad.numpy(), "c0": c0.grad.numpy()}

    return call
