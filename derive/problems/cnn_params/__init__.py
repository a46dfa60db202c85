"""Parameters of a VGG-style CNN (CSE 891 homework 3, question 3.1).

The handout's network on a 224×224×3 input::

    Conv3-64, MaxPool, Conv3-128, MaxPool, Conv3-256, Conv3-256, MaxPool, FC-1024, FC-1000,
    Softmax        (conv 3×3, zero padding 1, stride 1; max-pool 2×2, stride 2)

The layer-specification parser (``derive.cnn_spec``) propagates shapes with
⌊(n + 2p − k)/s⌋ + 1 and counts k_h·k_w·C_in·C_out + C_out per conv and n_in·n_out + n_out
per fc layer.  The claims never use those formulas: a separate numpy implementation
(``numpy_net``) allocates each layer's weight and bias arrays from the shape of the array
that actually reaches it (as a framework's lazy layers do), counts their ``.size``, and
takes output shapes from ``sliding_window_view`` windows — over zero-stride arrays at full
size, and as a real float64 forward pass on a scaled-down copy (fewer channels, same
spatial sizes) and on further small networks (``claims``).  The closed-form rules the key
states are results too, instantiated at every layer against numpy's counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import sympy as sp

from derive.cnn_spec import (
    Defaults,
    Network,
    conv_weights,
    fc_weights,
    output_side,
    parse_network,
)
from derive.errors import InputError
from derive.params import Custom, Int, Kind, Param, Quote, Raw, show
from derive.problems.base import Problem, Result
from derive.problems.cnn_params import claims as cc
from derive.problems.cnn_params.claims import OTHER_NETS, scaled_copy
from derive.problems.cnn_params.numpy_net import NUMPY_RULES, numpy_trace
from derive.verify import Claim

__all__ = [
    "HANDOUT_INPUT",
    "HANDOUT_LAYERS",
    "NUMPY_RULES",
    "OTHER_NETS",
    "CNNParams",
    "numpy_trace",
    "scaled_copy",
]

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
#: Values the handout leaves open, each with another allowed value the key tries instead.
OTHER_CHOICES = {"conv_stride": 2, "pool_padding": 1}
SEED = 20261122

# Symbols for the general rules the key states (the parser's own functions, applied to them).
k_h, k_w, c_in, c_out = sp.symbols("k_h k_w C_in C_out", positive=True, integer=True)
n_sym, k_sym, p_sym, s_sym = sp.symbols("n k p s", positive=True, integer=True)
h_sym, w_sym, n_out, n_in = sp.symbols("H W n_out n_in", positive=True, integer=True)
#: The same symbols by name, for instantiating the rules.
RULE_SYMBOLS = {
    str(s): s
    for s in (k_h, k_w, c_in, c_out, n_sym, k_sym, p_sym, s_sym, h_sym, w_sym, n_out, n_in)
}


def _kernel(value: Any, where: str) -> tuple[int, int]:
    """A kernel [k_h, k_w] as a description states it."""
    if not (isinstance(value, list) and len(value) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 1000 for v in value)):
        raise InputError(f"{where}: expected a kernel [k_h, k_w] of whole numbers from 1 to "
                         f"1000, got {show(value)}")
    return (value[0], value[1])


class CNNParams(Problem):
    """Output shapes and parameter counts of every layer of a feed-forward CNN, and the total."""

    CLAIM_NAMES: ClassVar[dict[str, str]] = {
        "layers": "each layer's output and parameters", "total_params": "total parameters",
        "untied_extra": "extra parameters of untied biases",
        "untied_total": "total with untied biases", "largest_layer": "the largest layer",
        "flat_inputs": "inputs of the first fully connected layer",
        "rule_side": "the output-side rule", "rule_conv": "a convolution's parameters",
        "rule_fc_spatial": "a fully connected layer's, spatial input",
        "rule_fc_flat": "a fully connected layer's, flat input",
        "handout_text": "the handout's stated network", "other_choices": "other strides "
        "and paddings",
    }

    key = "cnn_params"
    title = "Parameters of a convolutional network"
    MAIN = "total_params"
    RESULTS: ClassVar[dict[str, str]] = {
        "layers": "Every layer: its name (text), its output shape and its parameter count.",
        "total_params": "The number of parameters of the network.",
        "untied_extra": (
            "Parameters added if every output position of a convolution had its own bias."
        ),
        "untied_total": "The total with untied biases.",
        "largest_layer": (
            "The layer with the most parameters: its name (text), its count and its share of the "
            "total in percent."
        ),
        "rule_side": "The rule for an output side: 1 + floor((n - k + 2p)/s).",
        "rule_conv": "The rule for a convolution's parameters: weights and biases.",
        "rule_fc_spatial": "The rule for a fully connected layer on a spatial input.",
        "rule_fc_flat": "The rule for a fully connected layer on a flat input.",
        "flat_inputs": (
            "The inputs of the first fully connected layer after a spatial one; null when there "
            "is none."
        ),
        "other_choices": (
            "The first fully connected layer's parameters under other readings of the handout "
            "(stride, pool padding); null unless the network is the handout's."
        ),
    }
    #: Names the printer spells through the set's notation (``Problem.symbols``).
    SYMBOLS = ("C_in", "C_out", "H", "N", "W", "k", "k_h", "k_w", "n", "n_in", "n_out", "p", "s")
    #: The heading, and the one part (the count).
    LABELS = ("title", "count")
    WHOLE = "count"
    #: What an original may print: its description of the network, and the number of
    #: convolutions and the kernel that description states (compared with its layer list).
    ORIGINAL: ClassVar[dict[str, Kind]] = {
        "text": Quote("the original's description of the network"),
        "text_convs": Int(1, 1000),
        "text_kernel": Custom(_kernel, "a kernel [k_h, k_w] of whole numbers from 1 to 1000"),
    }
    ORIGINAL_DERIVES = ("text_convs", "text_kernel")
    SOURCE_RESULTS: ClassVar[dict[str, str]] = {
        "handout_text": (
            "The declared description's count of convolutions and their kernels against the "
            "network's (kernel sizes as text), and whether they agree."
        ),
    }

    SHOWN = ("input_shape", "layers", "defaults")  # defaults print in the layer names
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

    @property
    def text_stated(self) -> tuple[int, tuple[int, int]] | None:
        """The conv count and kernel the declared description states (None: not declared)."""
        convs, kernel = self.original.get("text_convs"), self.original.get("text_kernel")
        return None if convs is None or kernel is None else (convs, kernel)

    def text_mismatches(self) -> int:
        """Conv layers the declared description contradicts (count and kernel), 0 if none."""
        convs, kernel = self.text_stated
        kernels = [r.layer.kernel for r in self.net.rows if r.layer.kind == "conv"]
        return sum(k != kernel for k in kernels) + abs(len(kernels) - convs)

    # -- derivation ---------------------------------------------------------------------------
    def derive(self) -> dict[str, Result]:
        rows, total = self.net.rows, self.net.total
        table = [
            {"name": r.layer.name, "output_shape": list(r.out_shape), "params": r.params}
            for r in rows
        ]
        out = {
            "layers": Result("layers", sp.Matrix([[r.params] for r in rows]), value=table),
            "total_params": Result("total_params", sp.Integer(total), sp.Symbol("N"), value=total),
            "untied_extra": _count("untied_extra", self.untied_extra),
            "untied_total": _count("untied_total", total + self.untied_extra),
            "largest_layer": self._largest_layer(),
            **{key: Result(key, expr) for key, expr in self.rules.items()},
        }
        flat = _flat_row(self.net)
        if flat is not None:
            out["flat_inputs"] = _count("flat_inputs", math.prod(flat.in_shape))
        if self.is_handout:
            out.update(self._handout_results())
        return out

    def _largest_layer(self) -> Result:
        """The layer with the most parameters (the first of equals) and its share."""
        i, share = cc.largest([r.params for r in self.net.rows], self.net.total)
        row = self.net.rows[i]
        value = {"name": row.layer.name, "params": row.params, "share_percent": share}
        return Result("largest_layer", sp.Integer(row.params), value=value)

    def _handout_results(self) -> dict[str, Result]:
        """What the key says of the handout's reading: other defaults, and a declared
        description of the network compared with its layers."""
        other = {f: _first_fc(n) for f, n in self.other_choices.items()}
        out = {"other_choices": Result("other_choices", sp.Tuple(*other.values()), value=other)}
        if self.text_stated is not None:
            kernels = [r.layer.kernel for r in self.net.rows if r.layer.kind == "conv"]
            text = {"convs": len(kernels), "kernels": sorted({cc.shape_text(k) for k in kernels}),
                    "agrees": self.text_mismatches() == 0}
            out["handout_text"] = Result("handout_text", sp.Integer(len(kernels)), value=text)
        return out

    @cached_property
    def untied_extra(self) -> int:
        """Parameters added if every output position of a convolution had its own bias:
        per convolution with a bias, its output size less its channel count."""
        convs = [r for r in self.net.rows if r.layer.kind == "conv" and r.layer.bias]
        return sum(math.prod(r.out_shape) - r.bias for r in convs)

    @cached_property
    def rules(self) -> dict[str, sp.Expr]:
        """The general formulas (result keys), from the parser's own functions on symbols."""
        return {
            "rule_side": output_side(n_sym, k_sym, p_sym, s_sym),
            "rule_conv": _written(*conv_weights(k_h, k_w, c_in, c_out)),
            "rule_fc_spatial": _written(*fc_weights((h_sym, w_sym, c_in), n_out)),
            "rule_fc_flat": _written(*fc_weights((n_in,), n_out)),
        }

    # -- claims -------------------------------------------------------------------------------
    def claims(self) -> Iterator[Claim]:
        r = self.results
        full = numpy_trace(self.net.input_shape, self.net.layers, None)
        yield from cc.full_size_claims(self.net, full, r)
        scaled, further = cc.forward_traces(self.net, np.random.default_rng(SEED))
        yield from cc.forward_claims(scaled, further)
        rules = {key: r[key].expr for key in self.rules}
        yield from cc.rule_claims(rules, RULE_SYMBOLS, [(self.net, full), *further])
        if self.is_handout:
            if "handout_text" in r:
                yield cc.text_claim(r["handout_text"].value, full, *self.text_stated)
            yield cc.other_choices_claim(
                self.other_choices, OTHER_CHOICES, r["other_choices"].value
            )

    # -- rendering ------------------------------------------------------------------------------
    def question_data(self) -> dict[str, Any]:
        return {
            "input_shape": self.net.input_shape,
            "layers": [layer.name for layer in self.net.layers],
        }

    def context(self) -> dict[str, Any]:
        r, rows = self.results, self.net.rows
        value = {k: res.value for k, res in r.items()}
        total, largest = value["total_params"], value["largest_layer"]
        return {
            **super().context(),
            "net": self.net,
            "rows": rows,
            "input_shape": self.net.input_shape,
            "defaults": self.defaults,
            "rules": {key.removeprefix("rule_"): r[key].expr for key in self.rules},
            "kinds": {row.layer.kind for row in rows},
            "total": total,
            "biggest": largest,
            "flat_row": _flat_row(self.net),
            "flat_inputs": value.get("flat_inputs"),
            "untied_extra": value["untied_extra"],
            "untied_total": value["untied_total"],
            "floored": [row for row in rows if any(row.remainder)],
            **self._handout_context(value),
        }

    def _handout_context(self, value: dict[str, Any]) -> dict[str, Any]:
        text = value.get("handout_text", {})
        return {
            "text_convs": None if self.text_stated is None else self.text_stated[0],
            "text_kernel": None if self.text_stated is None else cc.shape_text(self.text_stated[1]),
            "parsed_convs": text.get("convs"),
            "conv_kernels": text.get("kernels"),
            "text_agrees": text.get("agrees"),
            "first_fc": _first_fc(self.net),
            "other_choices": value.get("other_choices", {}),
            **self.stated(),
        }

    def stated(self) -> dict[str, Any]:
        """The settings of the other choices the key counts (a stride, a padding)."""
        return {"other_choices_values": OTHER_CHOICES}


def _count(key: str, n: int) -> Result:
    return Result(key, sp.Integer(n), value=n)


def _flat_row(net: Network):
    """The first fc layer on a spatial input (where the flattening costs), None without."""
    return next((r for r in net.rows if r.layer.kind == "fc" and len(r.in_shape) == 3), None)


def _first_fc(net: Network) -> int | None:
    """Parameters of the first fully connected layer, None without one."""
    return next((r.params for r in net.rows if r.layer.kind == "fc"), None)


def _written(factors: tuple, bias: Any) -> sp.Expr:
    # Unevaluated, so the key shows the factors in the engine's order (k_h k_w C_in C_out).
    return sp.Add(sp.Mul(*factors, evaluate=False), bias, evaluate=False)
