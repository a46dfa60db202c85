"""The claims of the cnn_params key, checked by the numpy implementation (``numpy_net``).

Exact counts throughout (tolerance 0): layers whose numpy output shape or allocated
``.size`` differs from the parser's, the closed-form rules instantiated at every layer's
numbers (``routes.count_mismatch``) against the ``.size`` numpy allocated, and the numbers
the key draws from the table (largest layer, flattened inputs, untied total, the handout's
other readings) recomputed from numpy's arrays.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import sympy as sp

from derive.cnn_spec import Layer, Network, parse_network, propagate, with_channels
from derive.problems.cnn_params.numpy_net import Trace, numpy_trace, untied_by_numpy
from derive.verify import Claim
from derive.verify.routes import count_mismatch

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
EXACT = 0.0
FORWARD_METHOD = "float64 forward pass on random input: output shapes and parameter counts"

Traced = list[tuple[Network, list[Trace]]]


def shape_text(shape: tuple[int, ...]) -> str:
    """``224x224x3``."""
    return "x".join(map(str, shape))


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


# -- the network as given, full size (shape pass) ------------------------------------------------
#: The method of each full-size claim (``full_size_claims``), by what it measures.
FULL_SIZE_METHODS = {
    "shapes": "shape pass: sliding windows over zero-stride arrays, output shapes",
    "params": "arrays: entries of the weight and bias arrays each layer allocates",
    "total_params": "arrays: entries of all weight and bias arrays",
    "untied_extra": "arrays: entries of a bias array shaped like each biased convolution's "
    "output, less its tied bias",
    "untied_total": "arrays: summed entries plus the untied bias arrays' extra",
    "largest_layer": "arrays: the layer with the most entries and its share of the sum",
    "flat_inputs": "arrays: entries of the array reaching the first fc on a spatial input",
}


def full_size_claims(net: Network, full: list[Trace], results: dict) -> Iterator[Claim]:
    """Every layer, the total, and the numbers drawn from them, against numpy's ``.size``."""
    value = {k: r.value for k, r in results.items()}
    shapes, params = mismatches(net, full)
    total = sum(t.params for t in full)
    untied = untied_by_numpy(net.layers, full)
    errors = [
        ("layers", "shapes", shapes),
        ("layers", "params", params),
        ("total_params", "total_params", abs(total - value["total_params"])),
        ("untied_extra", "untied_extra", abs(untied - value["untied_extra"])),
        ("untied_total", "untied_total", abs(total + untied - value["untied_total"])),
        ("largest_layer", "largest_layer", _largest_mismatch(net, full, value["largest_layer"])),
    ]
    if "flat_inputs" in value:
        error = abs(_flat_inputs(net, full) - value["flat_inputs"])
        errors.append(("flat_inputs", "flat_inputs", error))
    sizes = "the network as given, full size: " + shape_text(net.input_shape)
    for key, method, error in errors:
        yield Claim.measured(key, FULL_SIZE_METHODS[method], sizes, error, EXACT)


def largest(params: list[int], total: int) -> tuple[int, float | None]:
    """(index of the first largest count, its percentage of ``total``; None when 0)."""
    i = max(range(len(params)), key=lambda j: params[j])
    return i, (100 * params[i] / total if total else None)


def _largest_mismatch(net: Network, full: list[Trace], claimed: dict) -> int:
    i, share = largest([t.params for t in full], sum(t.params for t in full))
    got = (net.layers[i].name, full[i].params, share)
    return sum(
        a != b
        for a, b in zip(
            got, (claimed["name"], claimed["params"], claimed["share_percent"]), strict=True
        )
    )


def _flat_inputs(net: Network, full: list[Trace]) -> int:
    first = next(
        t
        for la, t in zip(net.layers, full, strict=True)
        if la.kind == "fc" and len(t.in_shape) == 3
    )
    return int(np.prod(first.in_shape))


# -- real forward passes: a scaled copy and further networks ------------------------------------
def forward_traces(net: Network, rng: np.random.Generator) -> tuple[Traced, Traced]:
    """(the scaled copy, if cheap enough; the further nets), each run forward in float64."""
    small = scaled_copy(net)
    scaled = []
    if forward_cost(small) <= FORWARD_BUDGET:
        scaled = [(small, numpy_trace(small.input_shape, small.layers, rng))]
    further = []
    for shape, specs in OTHER_NETS:
        other = parse_network(shape, specs)  # fixed nets: the handout's defaults
        further.append((other, numpy_trace(other.input_shape, other.layers, rng)))
    return scaled, further


def forward_claims(scaled: Traced, further: Traced) -> Iterator[Claim]:
    """Layers whose shape or ``.size`` differs in the real forward passes."""
    for small, trace in scaled:
        what = (
            f"scaled copy: input {shape_text(small.input_shape)}, channels and units "
            f"divided by {SCALE} (at most {MAX_SCALED_CHANNELS} and {MAX_SCALED_UNITS})"
        )
        yield Claim.measured("layers", FORWARD_METHOD, what, sum(mismatches(small, trace)), EXACT)
    bad = sum(sum(mismatches(net, trace)) for net, trace in further)
    what = (
        f"{len(OTHER_NETS)} further nets: stride 2, no padding, odd and non-square sizes, "
        "avg and padded pools"
    )
    yield Claim.measured("layers", FORWARD_METHOD, what, bad, EXACT)


# -- the closed-form rules, instantiated at every layer ----------------------------------------
def rule_claims(
    rules: dict[str, sp.Expr], symbols: dict[str, sp.Symbol], traced: Traced
) -> Iterator[Claim]:
    """Each rule at every layer it covers (given net and further nets) against numpy."""
    counts = {key: [0, 0] for key in rules}  # key -> [layers checked, mismatches]
    for net, trace in traced:
        for layer, t in zip(net.layers, trace, strict=True):
            for key, values, counted in _instances(layer, t, symbols):
                counts[key][0] += 1
                counts[key][1] += count_mismatch(rules[key], values, counted)
    what = {
        "rule_side": ("each spatial axis of", "the sliding windows' output side"),
        "rule_conv": ("each biased conv layer of", "the arrays' entries"),
        "rule_fc_spatial": ("each biased fc layer on a spatial input of", "the arrays' entries"),
        "rule_fc_flat": ("each biased fc layer on a flat input of", "the arrays' entries"),
    }
    nets = f"the given net and {len(traced) - 1} further nets"
    for key, (checked, bad) in counts.items():
        where, against = what[key]
        yield Claim.measured(
            key,
            f"exact count: the rule at every layer's numbers against {against}",
            f"{checked} instances: {where} {nets}",
            bad,
            EXACT,
        )


def _instances(layer: Layer, t: Trace, sym: dict[str, sp.Symbol]):
    """(rule key, symbol values, numpy's count) for each rule that covers ``layer``."""
    if layer.kind in ("conv", "maxpool", "avgpool"):
        for axis in (0, 1):
            values = {
                sym["n"]: t.in_shape[axis],
                sym["k"]: layer.kernel[axis],
                sym["p"]: layer.padding,
                sym["s"]: layer.stride,
            }
            yield "rule_side", values, t.out_shape[axis]
    if layer.kind == "conv" and layer.bias:
        kh, kw = layer.kernel
        values = {
            sym["k_h"]: kh,
            sym["k_w"]: kw,
            sym["C_in"]: t.in_shape[-1],
            sym["C_out"]: t.out_shape[-1],
        }
        yield "rule_conv", values, t.params
    if layer.kind == "fc" and layer.bias and len(t.in_shape) == 3:
        h, w, c = t.in_shape
        values = {sym["H"]: h, sym["W"]: w, sym["C_in"]: c, sym["n_out"]: t.out_shape[0]}
        yield "rule_fc_spatial", values, t.params
    if layer.kind == "fc" and layer.bias and len(t.in_shape) == 1:
        values = {sym["n_in"]: t.in_shape[0], sym["n_out"]: t.out_shape[0]}
        yield "rule_fc_flat", values, t.params


# -- the handout's reading ----------------------------------------------------------------------
def text_reading(full: list[Trace], convs: int, kernel: tuple[int, int]) -> dict[str, Any]:
    """The handout's text against numpy's arrays: the 4-D weight arrays (out, in, k_h, k_w)
    are the convolutions, their last two axes the kernels; they agree when there are
    ``convs`` of them, all ``kernel``."""
    kernels = [shape[2:] for t in full for shape in t.arrays if len(shape) == 4]
    return {
        "convs": len(kernels),
        "kernels": sorted({shape_text(k) for k in kernels}),
        "agrees": len(kernels) == convs and all(k == tuple(kernel) for k in kernels),
    }


def text_claim(stated: dict[str, Any], full: list[Trace], convs: int,
               kernel: tuple[int, int]) -> Claim:
    """The printed reading of the handout's text (its conv count, kernels, and whether the
    text agrees) against the same read off numpy's arrays (``text_reading``)."""
    counted = text_reading(full, convs, kernel)
    wrong = sum(stated.get(field) != value for field, value in counted.items())
    return Claim.measured(
        "handout_text",
        f"the description: {convs} conv layers, all {shape_text(kernel)}; printed count, "
        "kernels and agreement against the allocated conv weights: entries that differ",
        "the network as given",
        wrong,
        EXACT,
    )


def other_choices_claim(
    other: dict[str, Network], choices: dict[str, int], claimed: dict[str, int]
) -> Claim:
    """The handout's other readings (``choices``, one at a time, giving the ``other``
    networks) through numpy, their first fc layer against ``claimed``."""
    bad = 0
    for field, net in other.items():
        trace = numpy_trace(net.input_shape, net.layers, None)
        bad += sum(mismatches(net, trace))
        first = next(t.params for la, t in zip(net.layers, trace, strict=True) if la.kind == "fc")
        bad += first != claimed[field]
    tried = ", ".join(f"{f} = {v}" for f, v in choices.items())
    return Claim.measured(
        "other_choices",
        "shape pass and entry counts, as above",
        f"the network as given, with {tried} (one at a time)",
        bad,
        EXACT,
    )
