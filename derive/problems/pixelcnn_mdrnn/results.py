"""The results of ``PixelCNNMDRNN``, built from its fits and figure (``derive`` joins them).

Every number the key prints is here: the closed forms and their orders, the per-layer
counts S_A and S_B, how the exact count fares on images too small for the filter, the
receptive field and blind spot, the MDRNN's context, the units a forward pass keeps and
the closed forms at the example's sizes.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import sympy as sp

from derive.engine.graph import BigO, big_o, polynomial_function
from derive.engine.reading import by_monomials, readable, signed_factors
from derive.problems.base import Result
from derive.problems.pixelcnn_mdrnn.model import (
    CHECK_D,
    CHECK_HW,
    CHECK_K,
    FIELD_LAYERS,
    SLOWER,
    H,
    W,
    at_sizes,
    c,
    d,
    describe,
    fits_filter,
    k,
    mdrnn,
    pixelcnn_connections,
)

if TYPE_CHECKING:
    from derive.problems.pixelcnn_mdrnn.problem import PixelCNNMDRNN

#: The checked sizes where the filter does not fit the image (one channel).
SMALL_IMAGES = describe(fits=False, c=1)


def by_size(expr: sp.Expr) -> sp.Expr:
    """``expr`` by monomials in H and W (HW, H, W, 1), coefficients factored."""
    return by_monomials(expr, (H, W))


def count_results(p: PixelCNNMDRNN) -> dict[str, Result]:
    """Connections and steps of both models, per-layer counts, the count on small images."""
    f = p.fits
    s_a, s_b = p.per_layer
    exact = {
        "pixelcnn_steps": f["pixelcnn_steps"],
        "mdrnn_connections": sp.factor(f["mdrnn_connections"]),
        "mdrnn_steps": f["mdrnn_steps"],
        "literal_mdrnn_steps": f["literal_steps"],
    }
    return {
        "pixelcnn_connections": Result(
            "pixelcnn_connections",
            display_connections(p),  # already in print order
            value={"exact": f["pixelcnn_connections"], "valid": sp.Ge(2 * sp.Min(H, W), k - 1)},
        ),
        **{key: Result(key, readable(e), value=sp.expand(e)) for key, e in exact.items()},
        "pixelcnn_layer_connections": Result(
            "pixelcnn_layer_connections",
            sp.Tuple(by_size(s_a), by_size(s_b)),
            value={"mask_a": s_a, "mask_b": s_b},
        ),
        "pixelcnn_small_images": small_images(p),
    }


def mask_change_result(p: PixelCNNMDRNN) -> Result:
    """What mask B in the first layer adds, and mask A in every layer removes."""
    s_a, s_b = p.per_layer
    # Layer l costs c² S_A or c² S_B by its mask: a first layer B adds c²(S_B − S_A), and
    # mask A in the d − 1 later layers removes that much from each.
    step = sp.factor(c**2 * (s_b - s_a))
    change = sp.Tuple(step, sp.factor((d - 1) * step))
    return Result(
        "pixelcnn_mask_change",
        readable(change),
        value={"first_layer_b": change[0], "all_layers_a": -change[1]},
    )


def display_connections(p: PixelCNNMDRNN) -> sp.Expr:
    """PixelCNN's count as c²(S_A + (d − 1) S_B), per-layer counts of the two masks read
    off the all-A and all-B fits (the identity is asserted)."""
    s_a, s_b = p.per_layer
    if sp.expand(c**2 * (s_a + (d - 1) * s_b) - p.fits["pixelcnn_connections"]) != 0:
        raise ArithmeticError("the fitted count is not c^2 (S_A + (d - 1) S_B)")
    inner = sp.Add(by_size(s_a), (d - 1) * by_size(s_b), evaluate=False)
    return sp.Mul(c**2, inner, evaluate=False)


def small_images(p: PixelCNNMDRNN) -> Result:
    """The checked sizes where the filter does not fit, and at how many the exact count
    (valid where it fits) is wrong."""
    formula = polynomial_function(p.fits["pixelcnn_connections"])
    out = [
        {"d": a, "k": b, "H": h, "W": w, "c": 1}
        for a, b, h, w in itertools.product(CHECK_D, CHECK_K, CHECK_HW, CHECK_HW)
        if not fits_filter({"k": b, "H": h, "W": w})
    ]
    wrong = sum(formula(s) != pixelcnn_connections(s) for s in out)
    return Result(
        "pixelcnn_small_images",
        sp.Tuple(len(out), wrong),
        value={"sizes": len(out), "wrong": wrong, "range": SMALL_IMAGES},
    )


def order_results(p: PixelCNNMDRNN) -> dict[str, Result]:
    """The leading monomials; PixelCNN's with k no faster than H and W, and on one channel."""
    f = p.fits
    orders = {
        "pixelcnn_connections_order": big_o(f["pixelcnn_connections"], [d, k, H, W, c], SLOWER),
        "pixelcnn_steps_order": big_o(f["pixelcnn_steps"], [d, k, H, W]),
        "mdrnn_connections_order": big_o(f["mdrnn_connections"], [d, k, H, W]),
        "mdrnn_steps_order": big_o(f["mdrnn_steps"], [d, k, H, W]),
    }
    grey = orders["pixelcnn_connections_order"].subs(c, 1)
    orders["grey_pixelcnn_connections_order"] = grey
    return {key: Result(key, BigO(readable(e)), value=BigO(e)) for key, e in orders.items()}


def field_results(p: PixelCNNMDRNN) -> dict[str, Result]:
    """Receptive field, blind spot and the MDRNN's context, fitted and at the figure."""
    ff, cf = p.field_fits, p.context_fits
    blind_from = next(
        (n for n in range(1, FIELD_LAYERS + 1) if ff["blind"].xreplace({d: n}) > 0), None
    )
    ctx = sp.Tuple(cf["context"], cf["missed"])
    return {
        "pixelcnn_receptive_field": Result(
            "pixelcnn_receptive_field",
            readable(sp.factor(ff["size"])),
            value={
                "kernel": p.kernel,
                "size": ff["size"],
                "rows": ff["rows"],
                "table": p.field_table(),
            },
        ),
        # The rows above the pixel the field reaches (the key prints it).
        "pixelcnn_field_rows": Result("pixelcnn_field_rows", readable(ff["rows"]),
                                      value=ff["rows"]),
        "pixelcnn_blind_spot": Result(
            "pixelcnn_blind_spot",
            readable(sp.factor(ff["blind"])),
            value={"count": ff["blind"], "from_layers": blind_from,
                   "pixel": list(p.pixel), "cells": sorted(p.figure_blind)},
        ),
        "mdrnn_context": Result(
            "mdrnn_context",
            sp.Tuple(readable(ctx[0]), signed_factors(ctx[1])),
            value={
                "context": ctx[0],
                "missed": ctx[1],
                "figure": [len(p.figure_context), len(p.figure_missed)],
            },
        ),
    }


def example_results(p: PixelCNNMDRNN) -> dict[str, Result]:
    """The closed forms at the example's sizes; the units the figure's graphs keep."""
    at = at_sizes(p.example)
    keys = ("pixelcnn_connections", "mdrnn_connections", "pixelcnn_steps", "mdrnn_steps")
    counts = {key: int(p.fits[key].xreplace(at)) for key in keys}
    cells = p.height * p.width
    # Activations a forward pass keeps: every non-input unit of the graphs.
    units = {
        "pixelcnn": len(p.figure_model.dag) - cells,
        "mdrnn": len(mdrnn(p.layers, p.height, p.width).dag) - cells,
    }
    return {
        "example_comparison": Result(
            "example_comparison",
            sp.Matrix([[counts[keys[0]], counts[keys[1]]], [counts[keys[2]], counts[keys[3]]]]),
            value={"sizes": dict(p.example), "counts": counts},
        ),
        "activations": Result("activations", sp.Tuple(*units.values()), value=units),
    }
