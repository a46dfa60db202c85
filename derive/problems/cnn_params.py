"""Parameters of a VGG-style CNN (CSE 891 homework 3, question 3.1).

The handout's network on a 224×224×3 input::

    Conv3-64, MaxPool, Conv3-128, MaxPool, Conv3-256, Conv3-256, MaxPool, FC-1024, FC-1000,
    Softmax        (conv 3×3, zero padding 1, stride 1; max-pool 2×2, stride 2)

The layer-specification parser (``derive.cnn_spec``) propagates shapes with ⌊(n + 2p − k)/s⌋ + 1 and
counts k_h·k_w·C_in·C_out + C_out per conv and n_in·n_out + n_out per fc layer.  The checks
never use those formulas: a separate numpy implementation allocates each layer's weight and
bias arrays from the shape of the array that actually reaches it (as a framework's lazy
layers do), counts their ``.size``, and takes output shapes from ``sliding_window_view``
windows — over zero-stride arrays at full size, and as a real float64 forward pass on a
scaled-down copy (fewer channels, same spatial sizes) and on further small networks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import sympy as sp
from numpy.lib.stride_tricks import sliding_window_view

from derive.cnn_spec import (
    Defaults,
    Layer,
    Network,
    conv_weights,
    fc_weights,
    output_side,
    parse_network,
    propagate,
    with_channels,
)
from derive.errors import InputError
from derive.params import Param, Raw
from derive.problems.base import Problem, Result
from derive.verify import Check

HANDOUT_INPUT = [224, 224, 3]
#: The handout's diagram, in its own spelling (the parser is case-insensitive).
HANDOUT_LAYERS = [
    "Conv3-64",
    "Max-Pool",
    "Conv3-128",
    "Max-Pool",
    "Conv3-256",
    "Conv3-256",
    "Max-Pool",
    "FC-1024",
    "FC-1000",
    "Softmax",
]
#: What the handout's text says of its diagram: the number of conv layers and their kernel.
HANDOUT_TEXT_CONVS, HANDOUT_TEXT_KERNEL = 4, (3, 3)
#: Values the handout leaves open, each with another allowed value the key tries instead.
OTHER_CHOICES = {"conv_stride": 2, "pool_padding": 1}
SEED = 20261122
#: The scaled-down copy divides conv channels and fc units by this (rounding up) ...
SCALE = 64
#: ... and caps them, so its forward pass stays cheap; the input keeps at most 3 channels.
MAX_SCALED_CHANNELS, MAX_SCALED_UNITS, MAX_SCALED_INPUT = 4, 16, 3
#: Multiply-adds above which the scaled forward pass is skipped (the full-size shape pass
#: still runs): a few tenths of a second of numpy work.
FORWARD_BUDGET = 5 * 10**7
#: Further networks run through the numpy forward pass: strided conv without padding, odd
#: and non-square sizes, average pooling, padded pooling, a stride that drops a remainder.
OTHER_NETS: list[tuple[list[int], list[Any]]] = [
    ([15, 15, 2], ["conv3-4/p0/s2", "relu", "maxpool3/s2", "fc-5", "softmax"]),
    ([17, 13, 3], ["conv3x5-4/p2/s1", "avgpool2", "conv1-2/p0", "flatten", "fc-3/nobias"]),
    ([9, 9, 1], ["maxpool3/s2/p1", {"kind": "conv", "kernel": [5, 5], "out": 3, "padding": 0}]),
    ([10, 10, 2], ["conv4-3/p1/s3", "relu", "avgpool3/s1", "fc-4", "fc-2", "softmax"]),
    ([11, 7, 1], ["conv2x1-2/p0/s2", "maxpool2x3/p1/s2", "fc-3", "relu", "fc-3"]),
]

# Symbols for the general rules the key states (the engine's own functions, applied to them).
k_h, k_w, c_in, c_out = sp.symbols("k_h k_w C_in C_out", positive=True, integer=True)
n_sym, k_sym, p_sym, s_sym = sp.symbols("n k p s", positive=True, integer=True)
h_sym, w_sym, n_out, n_in = sp.symbols("H W n_out n_in", positive=True, integer=True)


# -- the independent route: a small numpy implementation ----------------------------------------
@dataclass(frozen=True)
class Trace:
    """What the numpy implementation saw at one layer."""

    out_shape: tuple[int, ...]
    params: int  # total .size of the arrays it allocated for the layer


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
        x, arrays = NUMPY_RULES[layer.kind](x, layer, rng)
        out.append(Trace(tuple(x.shape), sum(a.size for a in arrays)))
    return out


def _untied_by_numpy(layers: tuple[Layer, ...], trace: list[Trace]) -> int:
    """Untied biases less tied ones, from the numpy pass: an array per biased convolution
    shaped like its output (height, width, channels), less its channel count."""
    extra = 0
    for layer, t in zip(layers, trace, strict=True):
        if layer.kind == "conv" and layer.bias:
            extra += _blank(t.out_shape).size - t.out_shape[-1]
    return extra


def mismatches(net: Network, trace: list[Trace]) -> tuple[int, int]:
    """(layers whose output shape differs, layers whose parameter count differs)."""
    shapes = sum(r.out_shape != t.out_shape for r, t in zip(net.rows, trace, strict=True))
    params = sum(r.params != t.params for r, t in zip(net.rows, trace, strict=True))
    return shapes, params


def scaled_copy(net: Network) -> Network:
    """``net`` with channels and units divided by ``SCALE`` (capped), spatial sizes kept."""

    def small(layer: Layer) -> Layer:
        if layer.kind not in ("conv", "fc"):
            return layer
        cap = MAX_SCALED_CHANNELS if layer.kind == "conv" else MAX_SCALED_UNITS
        return with_channels(layer, min(cap, -(-layer.out // SCALE)))

    h, w, c = net.input_shape
    shape = (h, w, min(c, MAX_SCALED_INPUT))
    layers = tuple(small(la) for la in net.layers)
    return Network(shape, layers, propagate(shape, layers))


def forward_cost(net: Network) -> int:
    """Multiply-adds (or window reads) of a forward pass; only decides whether to run one."""
    cost = 0
    for r in net.rows:
        if r.layer.kind in ("conv", "maxpool", "avgpool"):
            cost += math.prod(r.out_shape) * math.prod(r.layer.kernel) * r.in_shape[2]
        else:
            cost += r.weights + math.prod(r.out_shape)
    return cost


# -- the problem ----------------------------------------------------------------------------------
class CNNParams(Problem):
    """Output shapes and parameter counts of every layer of a feed-forward CNN, and the total."""

    key = "cnn_params"
    title = "Parameters of a convolutional network"
    #: Names the printer spells through the set's notation (``Problem.symbols``).
    SYMBOLS = ("C_in", "C_out", "H", "N", "W", "k", "k_h", "k_w", "n", "n_in", "n_out", "p", "s")

    PARAMS = (
        Param(
            "input_shape",
            Raw(list, "a list [H, W, C]"),
            HANDOUT_INPUT,
            "input height, width and channels",
        ),
        Param(
            "layers",
            Raw(list, "a list of layers"),
            HANDOUT_LAYERS,
            'layers in order: "conv3-64", "conv5x5-32/p2/s1/nobias", "maxpool2", '
            '"avgpool3/s2", "fc-1024", "relu", "flatten", "softmax", or tables',
        ),
        Param(
            "defaults",
            Raw(dict, "a table"),
            None,
            "conv_padding, conv_stride, pool_kernel, pool_stride, pool_padding",
        ),
    )

    def __init__(
        self,
        input_shape: list[int] = HANDOUT_INPUT,
        layers: list[Any] = HANDOUT_LAYERS,
        defaults: dict[str, int] | None = None,
    ) -> None:
        try:  # the engine names the field (layers[3].kernel); say whose field it is
            self.defaults = Defaults.parse(defaults)
            self.net = parse_network(input_shape, layers, self.defaults)
        except InputError as exc:
            raise InputError(f"params.cnn_params.{exc}") from None

    @cached_property
    def is_handout(self) -> bool:
        handout = parse_network(HANDOUT_INPUT, HANDOUT_LAYERS)
        return (self.net.input_shape, self.net.layers) == (handout.input_shape, handout.layers)

    @cached_property
    def other_choices(self) -> dict[str, Network]:
        """The handout's network under each of ``OTHER_CHOICES`` (empty for other networks)."""
        if not self.is_handout:
            return {}
        return {
            f: parse_network(HANDOUT_INPUT, HANDOUT_LAYERS, Defaults(**{f: v}))
            for f, v in OTHER_CHOICES.items()
        }

    def text_mismatches(self) -> int:
        """Conv layers that the handout's text contradicts (count and kernel), 0 if it agrees."""
        kernels = [r.layer.kernel for r in self.net.rows if r.layer.kind == "conv"]
        wrong = sum(k != HANDOUT_TEXT_KERNEL for k in kernels)
        return wrong + abs(len(kernels) - HANDOUT_TEXT_CONVS)

    # -- derivation ---------------------------------------------------------------------------
    def derive(self) -> dict[str, Result]:
        rows = self.net.rows
        table = [
            {"name": r.layer.name, "output_shape": list(r.out_shape), "params": r.params}
            for r in rows
        ]
        return {
            "layers": Result("layers", sp.Matrix([[r.params] for r in rows]), value=table),
            "total_params": Result(
                "total_params", sp.Integer(self.net.total), sp.Symbol("N"), value=self.net.total
            ),
            "untied_extra": Result(
                "untied_extra", sp.Integer(self.untied_extra), value=self.untied_extra
            ),
        }

    @cached_property
    def untied_extra(self) -> int:
        """Parameters added if every output position of a convolution had its own bias:
        per convolution with a bias, its output size less its channel count."""
        convs = [r for r in self.net.rows if r.layer.kind == "conv" and r.layer.bias]
        return sum(math.prod(r.out_shape) - r.bias for r in convs)

    @cached_property
    def rules(self) -> dict[str, sp.Expr]:
        """The general formulas, from the engine's own functions applied to symbols."""
        return {
            "side": output_side(n_sym, k_sym, p_sym, s_sym),
            "conv": _written(*conv_weights(k_h, k_w, c_in, c_out)),
            "fc_spatial": _written(*fc_weights((h_sym, w_sym, c_in), n_out)),
            "fc_flat": _written(*fc_weights((n_in,), n_out)),
        }

    # -- verification -------------------------------------------------------------------------
    def verify(self) -> list[Check]:
        full = numpy_trace(self.net.input_shape, self.net.layers, None)
        shapes, params = mismatches(self.net, full)
        total = sum(t.params for t in full)
        sizes = "the network as given, full size: " + _shape_text(self.net.input_shape)
        rows = [
            Check(
                "layers",
                "numpy shape pass: sliding_window_view over zero-stride arrays, output shapes",
                sizes,
                float(shapes),
                0.0,
            ),
            Check(
                "layers",
                "numpy: .size of the weight and bias arrays each layer allocates",
                sizes,
                float(params),
                0.0,
            ),
            Check(
                "total_params",
                "numpy: .size summed over all weight and bias arrays",
                sizes,
                float(abs(total - self.net.total)),
                0.0,
            ),
            Check(
                "untied_extra",
                "numpy: .size of a bias array shaped like each biased convolution's output, "
                "less its tied bias",
                sizes,
                float(abs(_untied_by_numpy(self.net.layers, full) - self.untied_extra)),
                0.0,
            ),
        ]
        rng = np.random.default_rng(SEED)
        method = "numpy float64 forward pass on random input: output shapes and parameter .size"
        small = scaled_copy(self.net)
        if forward_cost(small) <= FORWARD_BUDGET:
            bad = sum(mismatches(small, numpy_trace(small.input_shape, small.layers, rng)))
            what = (
                f"scaled copy: input {_shape_text(small.input_shape)}, channels and units "
                f"divided by {SCALE} (at most {MAX_SCALED_CHANNELS} and {MAX_SCALED_UNITS})"
            )
            rows.append(Check("layers", method, what, float(bad), 0.0))
        bad = 0
        for shape, specs in OTHER_NETS:
            other = parse_network(shape, specs)  # fixed nets: the handout's defaults
            bad += sum(mismatches(other, numpy_trace(other.input_shape, other.layers, rng)))
        what = (
            f"{len(OTHER_NETS)} further nets: stride 2, no padding, odd and non-square sizes, "
            "avg and padded pools"
        )
        rows.append(Check("layers", method, what, float(bad), 0.0))
        return rows + self._handout_checks()

    def _handout_checks(self) -> list[Check]:
        """The reading of the handout that the key states: its text, and other defaults."""
        if not self.is_handout:
            return []
        bad = sum(
            sum(mismatches(net, numpy_trace(net.input_shape, net.layers, None)))
            for net in self.other_choices.values()
        )
        tried = ", ".join(f"{f} = {v}" for f, v in OTHER_CHOICES.items())
        return [
            Check(
                "layers",
                f"the handout's text: {HANDOUT_TEXT_CONVS} conv layers, all "
                f"{_shape_text(HANDOUT_TEXT_KERNEL)}; conv layers that differ",
                "the handout's network",
                float(self.text_mismatches()),
                0.0,
            ),
            Check(
                "layers",
                "numpy shape pass and .size, as above",
                f"the handout's network with {tried} (one at a time)",
                float(bad),
                0.0,
            ),
        ]

    # -- rendering ------------------------------------------------------------------------------
    def question_data(self) -> dict[str, Any]:
        return {
            "input_shape": self.net.input_shape,
            "layers": [layer.name for layer in self.net.layers],
        }

    def context(self) -> dict[str, Any]:
        rows = self.net.rows
        total = self.net.total
        biggest = max(rows, key=lambda r: r.params)
        flat = next((r for r in rows if r.layer.kind == "fc" and len(r.in_shape) == 3), None)
        convs = [r for r in rows if r.layer.kind == "conv"]
        untied = self.untied_extra
        kinds = {r.layer.kind for r in rows}
        return {
            **super().context(),
            "net": self.net,
            "rows": rows,
            "input_shape": self.net.input_shape,
            "defaults": self.defaults,
            "rules": self.rules,
            "kinds": kinds,
            "total": total,
            "total_millions": f"{total / 1e6:.1f}",
            "biggest": biggest,
            "biggest_share": f"{100 * biggest.params / total:.1f}" if total else None,
            "flat_row": flat,
            "flat_inputs": math.prod(flat.in_shape) if flat else None,
            "convs": convs,
            "conv_kernels": sorted({"x".join(map(str, r.layer.kernel)) for r in convs}),
            "untied_extra": untied,
            "untied_total": total + untied,
            "floored": [r for r in rows if any(r.remainder)],
            "is_handout": self.is_handout,
            "text_convs": HANDOUT_TEXT_CONVS,
            "text_kernel": _shape_text(HANDOUT_TEXT_KERNEL),
            "text_agrees": self.text_mismatches() == 0,
            "first_fc": _first_fc(self.net),
            "other_choices": {f: _first_fc(n) for f, n in self.other_choices.items()},
            "other_choices_values": OTHER_CHOICES,
        }


def _first_fc(net: Network) -> int | None:
    """Parameters of the first fully connected layer, None without one."""
    return next((r.params for r in net.rows if r.layer.kind == "fc"), None)


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def _written(factors: tuple, bias: Any) -> sp.Expr:
    # Unevaluated, so the key shows the factors in the engine's order (k_h k_w C_in C_out).
    return sp.Add(sp.Mul(*factors, evaluate=False), bias, evaluate=False)
