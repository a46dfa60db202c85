"""An independent numpy implementation of a feed-forward CNN: the route of the cnn_params claims.

It never uses the parser's shape or count formulas: each layer allocates its weight and bias
arrays from the shape of the array that actually reaches it (as a framework's lazy layers
do), parameters are their ``.size``, and output shapes come from ``sliding_window_view``
windows, either over zero-stride arrays (shapes only, no memory) or in a real float64
forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from derive.cnn_spec import Layer


@dataclass(frozen=True)
class Trace:
    """What the numpy implementation saw at one layer."""

    in_shape: tuple[int, ...]  # the array that reached the layer
    out_shape: tuple[int, ...]
    params: int  # total .size of the arrays it allocated for the layer
    arrays: tuple[tuple[int, ...], ...] = ()  # the shapes of those arrays


def _alloc(shape: tuple[int, ...], rng: np.random.Generator | None) -> np.ndarray:
    # Shape-only runs must not allocate (fc weights reach 10^8 numbers and more): a
    # zero-stride view has the same shape and .size and needs no memory.
    if rng is None:
        return np.broadcast_to(np.empty((), np.float32), shape)
    return rng.standard_normal(shape)


def _blank(shape: tuple[int, ...]) -> np.ndarray:
    """A placeholder output of a shape-only run."""
    return _alloc(shape, None)


def _windows(x: np.ndarray, layer: Layer, fill: float, compute: bool) -> np.ndarray:
    """(H', W', C, k_h, k_w) windows of the padded input, every ``stride``-th one."""
    p, s = layer.padding, layer.stride
    if compute:
        xp = np.pad(x, ((p, p), (p, p), (0, 0)), constant_values=fill)
    else:
        xp = np.broadcast_to(
            np.empty((), np.float32), (x.shape[0] + 2 * p, x.shape[1] + 2 * p, x.shape[2])
        )
    return sliding_window_view(xp, layer.kernel, axis=(0, 1))[::s, ::s]


def _np_conv(x: np.ndarray, layer: Layer, rng: np.random.Generator | None):
    weight = _alloc((layer.out, x.shape[2], *layer.kernel), rng)  # (out, in, kh, kw)
    arrays = [weight] + ([_alloc((layer.out,), rng)] if layer.bias else [])
    win = _windows(x, layer, 0.0, rng is not None)
    if rng is None:
        return _blank((*win.shape[:2], weight.shape[0])), arrays
    y = np.einsum("hwcij,ocij->hwo", win, weight)
    return (y + arrays[1] if layer.bias else y), arrays


def _np_pool(x: np.ndarray, layer: Layer, rng: np.random.Generator | None):
    # Max pooling pads with -inf so that padding never wins; average pooling pads with 0.
    win = _windows(x, layer, -np.inf if layer.kind == "maxpool" else 0.0, rng is not None)
    if rng is None:
        return _blank(win.shape[:3]), []
    return (win.max(axis=(3, 4)) if layer.kind == "maxpool" else win.mean(axis=(3, 4))), []


def _np_fc(x: np.ndarray, layer: Layer, rng: np.random.Generator | None):
    weight = _alloc((layer.out, x.size), rng)  # (out, in) on the flattened input
    arrays = [weight] + ([_alloc((layer.out,), rng)] if layer.bias else [])
    if rng is None:
        return _blank((weight.shape[0],)), arrays
    y = weight @ x.reshape(-1)
    return (y + arrays[1] if layer.bias else y), arrays


def _np_softmax(x: np.ndarray, layer: Layer, rng: np.random.Generator | None):
    if rng is None:
        return x, []
    e = np.exp(x - x.max())
    return e / e.sum(), []


#: One numpy rule per layer kind: (input, layer, rng or None) -> (output, allocated arrays).
NUMPY_RULES = {
    "conv": _np_conv,
    "maxpool": _np_pool,
    "avgpool": _np_pool,
    "fc": _np_fc,
    "relu": lambda x, layer, rng: (x if rng is None else np.maximum(x, 0.0), []),
    "flatten": lambda x, layer, rng: (_blank((x.size,)) if rng is None else x.reshape(-1), []),
    "softmax": _np_softmax,
}


def numpy_trace(
    input_shape: tuple[int, ...], layers: tuple[Layer, ...], rng: np.random.Generator | None
) -> list[Trace]:
    """Run ``layers`` in numpy: a float64 forward pass with ``rng``, shapes only without."""
    x = rng.standard_normal(input_shape) if rng is not None else _alloc(input_shape, None)
    out = []
    for layer in layers:
        if layer.kind not in NUMPY_RULES:
            raise ValueError(f"the numpy implementation has no rule for {layer.kind!r}; add one")
        shape = tuple(x.shape)
        x, arrays = NUMPY_RULES[layer.kind](x, layer, rng)
        sizes = sum(a.size for a in arrays)
        out.append(Trace(shape, tuple(x.shape), sizes, tuple(a.shape for a in arrays)))
    return out


def untied_by_numpy(layers: tuple[Layer, ...], trace: list[Trace]) -> int:
    """Untied biases less tied ones, from the numpy pass: an array per biased convolution
    shaped like its output (height, width, channels), less its channel count."""
    extra = 0
    for layer, t in zip(layers, trace, strict=True):
        if layer.kind == "conv" and layer.bias:
            extra += _blank(t.out_shape).size - t.out_shape[-1]
    return extra
