"""PixelCNN against MDRNN as autoregressive image models (CSE 891 homework 3, question 4).

An H×W image, d layers, each layer a unit vector at every pixel; positions (i, j) are
(row, column) from 1, in raster order.

* PixelCNN: k×k filters (k odd) masked in raster order.  The first layer uses mask A (the
  rows above the centre and the centre row left of it), later layers mask B (mask A and the
  centre), so no output sees its own pixel or a later one.  c channels in every layer (c = 1
  is a grey image); the spatial mask is shared by all channels.
* MDRNN: k channels in every layer, input included, with the intended recurrence
  h_l(i,j) = φ(W_in h_{l−1}(i,j) + W_W h_l(i,j−1) + W_N h_l(i−1,j)), h_0 = x.  The
  handout's equation feeds x(i−1,j) and x(i,j−1) instead, which leaves no recurrence.

A connection is one multiplication of an input unit's value by a weight: per edge of the
dependency graph, channels in × channels out, over all positions and layers.  A neighbour
off the image (zero padding, a missing recurrent neighbour) costs none.

Derivation: the four counts are read from instantiated ``GridModel``s and fitted over a
range of sizes (``find_polynomial``); PixelCNN's exact count holds when every row offset of
the filter fits the image, H, W ≥ (k−1)/2, and the fit uses sizes there.  ``big_o`` keeps the
leading monomials with k growing no faster than H and W.  Receptive fields, blind spot and
MDRNN context are ancestor sets in the graphs.

Checks: graph counts at further sizes; SymPy sums over the filters' offsets of the positions
where each offset fits (a closed form by another route); a round-by-round parallel
simulation; NumPy adjoint (backward) propagation through masks built as k×k arrays the usual
way, and through a linear MDRNN, for receptive fields and contexts.
"""

from __future__ import annotations

import itertools
from functools import cache, cached_property
from typing import Any

import numpy as np
import sympy as sp

from derive.engine.graph import (
    Axis,
    BigO,
    GridModel,
    big_o,
    find_polynomial,
    mismatches,
    parallel_rounds,
    polynomial_function,
    same_growth,
)
from derive.errors import InputError
from derive.params import Int, Param, Raw
from derive.problems.base import Problem, Result
from derive.problems.mdrnn import BELOW, NORTH, WEST, readable
from derive.verify import Check

d, k, H, W, c = sp.symbols("d k H W c", integer=True, positive=True)
row, col = sp.symbols("i j", integer=True, positive=True)

#: Bounds of the instantiated figure (drawn as a table) and of the symbolic example.
MAX_IMAGE, MAX_LAYERS, KERNELS = 16, 8, (3, 5, 7)
MAX_EXAMPLE = 10_000
LAYERS, EXAMPLE_SIZE = Int(1, MAX_LAYERS), Int(1, MAX_EXAMPLE)
EXAMPLE = {"H": 32, "W": 32, "d": 5, "k": 3, "c": 1}
#: Sizes of the fits (probes) and of the checks.
PROBE_D = PROBE_C = (1, 2, 3, 4, 5, 6)
PROBE_K = tuple(range(1, 15, 2))
#: PixelCNN's fit stays where its filters fit the image: H, W ≥ (max k − 1)/2.
PROBE_HW = tuple(range(6, 12))
CHECK_HW, CHECK_D, CHECK_K, CHECK_C = range(1, 7), range(1, 5), (1, 3, 5, 7), (1, 2, 3)
FIELD_LAYERS = 6


# -- the models -----------------------------------------------------------------------------------
def mask(size: int, kind: str) -> tuple[tuple[int, int], ...]:
    """Offsets of a size×size filter that precede the centre in raster order (and, for mask
    B, the centre itself)."""
    r = size // 2
    return tuple(
        (a, b)
        for a in range(-r, 1)
        for b in range(-r, r + 1)
        if a < 0 or b < 0 or (kind == "B" and b == 0)
    )


@cache
def pixelcnn(layers: int, size: int, h: int, w: int, kinds: str = "AB") -> GridModel:
    """A stack of masked convolutions: mask ``kinds[0]`` in the first layer and ``kinds[1]``
    in the others (A then B by default).  Shallow stacks are read off one deeper graph."""
    return _stack(max(layers, CHECK_D[-1]), size, h, w, kinds).truncated(layers)


@cache
def _stack(layers: int, size: int, h: int, w: int, kinds: str) -> GridModel:
    first, rest = kinds
    return GridModel(h, w, (mask(size, first),) + (mask(size, rest),) * (layers - 1))


@cache
def mdrnn(layers: int, h: int, w: int, literal: bool = False) -> GridModel:
    """Stacked MDRNN layers; ``literal`` reads the handout's equation (x neighbours)."""
    if literal:
        return GridModel(h, w, ((BELOW, WEST, NORTH),) * layers)
    return GridModel(h, w, ((BELOW,),) * layers, (WEST, NORTH))


def pixelcnn_connections(s: dict[str, int], kinds: str = "AB") -> int:
    model = pixelcnn(s["d"], s["k"], s["H"], s["W"], kinds)
    return model.connections() * s["c"] ** 2


def mdrnn_connections(s: dict[str, int]) -> int:
    return mdrnn(s["d"], s["H"], s["W"]).connections() * s["k"] ** 2


def fits_filter(s: dict[str, int]) -> bool:
    """Every row offset of the filter fits the image: H, W ≥ (k − 1)/2."""
    return 2 * min(s["H"], s["W"]) >= s["k"] - 1


def earlier(pixel: tuple[int, int], h: int, w: int) -> set[tuple[int, int]]:
    """Pixels before ``pixel`` in raster order."""
    cells = itertools.product(range(1, h + 1), range(1, w + 1))
    return {q for q in cells if q < pixel}


def blind_spot(field: set, pixel: tuple[int, int]) -> set[tuple[int, int]]:
    """Earlier pixels inside the field's bounding box that the field misses (pixels beyond
    the box are merely out of reach)."""
    cells = field | {pixel}
    rows = range(min(a for a, _ in cells), pixel[0] + 1)
    cols = range(min(b for _, b in cells), max(b for _, b in cells) + 1)
    return {q for q in itertools.product(rows, cols) if q < pixel and q not in field}


def by_size(expr: sp.Expr, sizes: tuple[sp.Symbol, ...] = (H, W)) -> sp.Expr:
    """``expr`` as a sum over monomials in ``sizes`` (HW, H, W, 1), coefficients factored;
    the order is for print only."""
    poly = sp.Poly(sp.expand(expr), *sizes)
    terms = [
        readable(sp.factor(v)) * sp.Mul(*(x**e for x, e in zip(sizes, m, strict=True)))
        for m, v in poly.terms()  # lexicographic: HW, H, W, 1
    ]
    return sp.Add(*terms, evaluate=False)


def signed_factors(expr: sp.Expr) -> sp.Expr:
    """``expr`` factored, a leading minus absorbed into a factor: (i − 1)(W − j) rather
    than −(i − 1)(j − W).  The order is for print only."""
    coeff, factors = sp.factor_list(expr)
    if coeff < 0:
        odd = next(n for n, (_, e) in enumerate(factors) if e % 2)
        factors[odd] = (sp.expand(-factors[odd][0]), factors[odd][1])
        coeff = -coeff
    parts = [readable(f) ** e for f, e in factors]
    return sp.Mul(*([coeff] if coeff != 1 else []), *parts, evaluate=False)


def _subs(sizes: dict[str, int]) -> dict[sp.Symbol, int]:
    names = {x.name: x for x in (d, k, H, W, c)}
    return {names[n]: v for n, v in sizes.items()}


# -- independent routes ---------------------------------------------------------------------------
def mask_array(size: int, kind: str) -> np.ndarray:
    """The usual PixelCNN mask: ones, then zero the centre row from the centre (A) or right of
    it (B) and every row below."""
    m = np.ones((size, size), dtype=int)
    r = size // 2
    m[r, r + (kind == "B") :] = 0
    m[r + 1 :, :] = 0
    return m


@cache
def offset_sum(kind: str) -> sp.Expr:
    """Σ over a mask's offsets (a, b) of the positions where it fits, (H − |a|)(W − |b|),
    for symbolic k = 2r + 1 (valid for H, W ≥ r)."""
    a, b, r = sp.symbols("a b r", integer=True, positive=True)
    full_row = W + 2 * power_sum(W - b, b, r)  # offsets −r..r of one row
    above = power_sum((H - a) * full_row, a, r)  # the r rows above the centre
    left = H * power_sum(W - b, b, r)  # the centre row, left of the centre
    total = above + left + (H * W if kind == "B" else 0)
    return sp.expand(total.xreplace({r: (k - 1) / 2}))


def power_sum(expr: sp.Expr, var: sp.Symbol, n: sp.Symbol) -> sp.Expr:
    """Σ_{var=1}^{n} expr for a polynomial expr, term by term (SymPy's sums of powers)."""
    poly = sp.Poly(sp.expand(expr), var)
    return sp.expand(sum(v * sp.summation(var**e, (var, 1, n)) for (e,), v in poly.terms()))


def backward_field(masks: list[np.ndarray], h: int, w: int, pixel: tuple[int, int]) -> set:
    """Pixels whose value reaches the top layer at ``pixel``: the adjoint of all-ones
    masked convolutions, run backwards from a unit at ``pixel`` (NumPy shifts)."""
    g = np.zeros((h, w))
    g[pixel[0] - 1, pixel[1] - 1] = 1.0
    for m in reversed(masks):
        r = m.shape[0] // 2
        back = np.zeros((h + 2 * r, w + 2 * r))
        for a, b in zip(*np.nonzero(m), strict=True):
            # Output (i, j) read input (i + a − r, j + b − r): send its adjoint there.
            back[a : a + h, b : b + w] += g
        g = back[r : r + h, r : r + w]
    return {(int(i) + 1, int(j) + 1) for i, j in zip(*np.nonzero(g), strict=True)}


def backward_context(layers: int, h: int, w: int, pixel: tuple[int, int]) -> set:
    """Pixels whose input reaches the top MDRNN state at ``pixel``, by the adjoint recursion
    of a linear MDRNN with unit weights (east and south neighbours feed back)."""
    g = np.zeros((h + 1, w + 1))
    g[pixel[0] - 1, pixel[1] - 1] = 1.0
    for _ in range(layers):
        for i in range(h - 1, -1, -1):
            for j in range(w - 1, -1, -1):
                g[i, j] += g[i, j + 1] + g[i + 1, j]  # h(i, j) feeds east and south
        g[h, :] = 0
        g[:, w] = 0
    return {(int(i) + 1, int(j) + 1) for i, j in zip(*np.nonzero(g[:h, :w]), strict=True)}


def _example(value: Any) -> dict[str, int]:
    """The example sizes at which the closed forms are evaluated (never instantiated)."""
    if not isinstance(value, dict) or set(value) != set(EXAMPLE):
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise InputError(
            f"example: expected a table with exactly the keys {', '.join(EXAMPLE)}, got {shown}"
        )
    out = {key: EXAMPLE_SIZE.parse(value[key], f"example.{key}") for key in EXAMPLE}
    if out["k"] % 2 == 0:
        raise InputError(f"example.k: expected an odd filter size, got {out['k']}")
    if not fits_filter(out):
        raise InputError(
            f"example.k: the filter must fit the image, (k - 1)/2 <= min(H, W); got k = "
            f"{out['k']} with H = {out['H']}, W = {out['W']}"
        )
    return out


# -- the problem ----------------------------------------------------------------------------------
class PixelCNNMDRNN(Problem):
    """Connections and sequential steps of PixelCNN and MDRNN, and their context windows."""

    key = "pixelcnn_mdrnn"
    title = "Autoregressive image models: PixelCNN against MDRNN"
    #: Names the printer spells through the set's notation (``Problem.symbols``).
    SYMBOLS = ("H", "S_A", "S_B", "W", "c", "d", "i", "j", "k")
    LABELS = ("pixelcnn", "mdrnn", "compare")

    PARAMS = (
        Param("image", Raw(list, "a list [H, W]"), [9, 9], "image of the receptive-field figure"),
        Param("layers", LAYERS, 4, "layers d of the figure"),
        Param("kernel", Int(3, max(KERNELS)), 3, f"filter size k of the figure, one of {KERNELS}"),
        Param(
            "pixel",
            Raw(list, "a list [row, column]"),
            None,
            "the pixel whose receptive field is drawn (default: bottom row, middle)",
        ),
        Param(
            "example",
            Raw(dict, "a table {H, W, d, k, c}"),
            EXAMPLE,
            "sizes of the worked comparison",
        ),
    )

    def __init__(
        self,
        image: list[int] = (9, 9),
        layers: int = 4,
        kernel: int = 3,
        pixel: list[int] | None = None,
        example: dict[str, int] = EXAMPLE,
    ) -> None:
        if not isinstance(image, list | tuple) or len(image) != 2:
            raise InputError(f"image: expected [H, W], two whole numbers, got {image!r}")
        side = Int(1, MAX_IMAGE)
        self.height = side.parse(image[0], "image[0] (H)")
        self.width = side.parse(image[1], "image[1] (W)")
        self.layers = LAYERS.parse(layers, "layers")
        if kernel not in KERNELS or isinstance(kernel, bool):
            raise InputError(
                f"kernel: expected an odd filter size, one of {KERNELS}, got {kernel!r}"
            )
        self.kernel = kernel
        if pixel is None:
            pixel = [self.height, (self.width + 1) // 2]
        if not isinstance(pixel, list | tuple) or len(pixel) != 2:
            raise InputError(f"pixel: expected [row, column], two whole numbers, got {pixel!r}")
        self.pixel = (
            Int(1, self.height).parse(pixel[0], "pixel[0] (row)"),
            Int(1, self.width).parse(pixel[1], "pixel[1] (column)"),
        )
        self.example = _example(example)

    # -- derivation ---------------------------------------------------------------------------
    @cached_property
    def fits(self) -> dict[str, sp.Expr]:
        """Closed forms fitted to the instantiated graphs' counts."""
        pix_axes = [
            Axis(d, PROBE_D, 2),
            Axis(k, PROBE_K, 3),
            Axis(H, PROBE_HW, 6),
            Axis(W, PROBE_HW, 7),
            Axis(c, PROBE_C, 2),
        ]
        # The MDRNN count holds on any image: probe from 1.
        rnn_axes = [
            Axis(d, PROBE_D, 2),
            Axis(k, PROBE_C, 3),
            Axis(H, PROBE_C, 2),
            Axis(W, PROBE_C, 3),
        ]
        return {
            "pixelcnn_connections": find_polynomial(pixelcnn_connections, pix_axes),
            # One layer of each mask, per pair of channels.
            "layer_a": find_polynomial(
                lambda s: pixelcnn(1, s["k"], s["H"], s["W"], "AA").connections(), pix_axes[1:4]
            ),
            "layer_b": find_polynomial(
                lambda s: pixelcnn(1, s["k"], s["H"], s["W"], "BB").connections(), pix_axes[1:4]
            ),
            "pixelcnn_steps": find_polynomial(
                lambda s: pixelcnn(s["d"], s["k"], s["H"], s["W"]).steps(), pix_axes[:4]
            ),
            "mdrnn_connections": find_polynomial(mdrnn_connections, rnn_axes),
            "mdrnn_steps": find_polynomial(
                lambda s: mdrnn(s["d"], s["H"], s["W"]).steps(), [rnn_axes[0], *rnn_axes[2:]]
            ),
            "literal_steps": find_polynomial(
                lambda s: mdrnn(s["d"], s["H"], s["W"], literal=True).steps(),
                [rnn_axes[0], *rnn_axes[2:]],
            ),
        }

    @cached_property
    def field_model(self) -> GridModel:
        """A PixelCNN on an image large enough that no field of up to FIELD_LAYERS layers
        reaches a border, for the growth of the receptive field with d."""
        r = self.kernel // 2
        return pixelcnn(FIELD_LAYERS, self.kernel, FIELD_LAYERS * r + 1, 2 * FIELD_LAYERS * r + 1)

    @property
    def field_pixel(self) -> tuple[int, int]:
        r = self.kernel // 2
        return (FIELD_LAYERS * r + 1, FIELD_LAYERS * r + 1)

    @cached_property
    def field_fits(self) -> dict[str, sp.Expr]:
        """Size, height and blind spot of the receptive field as functions of d."""
        model, p = self.field_model, self.field_pixel

        def field(layers: int) -> set:
            return model.receptive_field(*p, layer=layers)

        axis = [Axis(d, PROBE_D, 2)]
        return {
            "size": find_polynomial(lambda s: len(field(s["d"])), axis),
            "rows": find_polynomial(lambda s: p[0] - min(a for a, _ in field(s["d"])), axis),
            "blind": find_polynomial(lambda s: len(blind_spot(field(s["d"]), p)), axis),
        }

    @cached_property
    def context_fits(self) -> dict[str, sp.Expr]:
        """MDRNN context of pixel (i, j) and the earlier pixels it misses, on H = i rows."""

        def context(s: dict[str, int]) -> set:
            return mdrnn(2, s["i"], s["W"]).receptive_field(s["i"], s["j"])

        def missed(s: dict[str, int]) -> int:
            return len(earlier((s["i"], s["j"]), s["i"], s["W"]) - context(s))

        axes = [Axis(row, PROBE_C, 2), Axis(col, PROBE_C, 3), Axis(W, PROBE_HW, 6)]
        return {
            "context": find_polynomial(lambda s: len(context(s)), axes),
            "missed": find_polynomial(missed, axes),
        }

    def derive(self) -> dict[str, Result]:
        f, ff, cf = self.fits, self.field_fits, self.context_fits
        pix, rnn = f["pixelcnn_connections"], f["mdrnn_connections"]
        slower = [(k, H), (k, W)]
        orders = {
            "pixelcnn_connections_order": big_o(pix, [d, k, H, W, c], slower),
            "pixelcnn_steps_order": big_o(f["pixelcnn_steps"], [d, k, H, W]),
            "mdrnn_connections_order": big_o(rnn, [d, k, H, W]),
            "mdrnn_steps_order": big_o(f["mdrnn_steps"], [d, k, H, W]),
        }
        # Layer l costs c² S_A or c² S_B by its mask: a first layer B adds c²(S_B − S_A), and
        # mask A in the d − 1 later layers removes that much from each.
        step = sp.factor(c**2 * (f["layer_b"] - f["layer_a"]))
        change = sp.Tuple(step, sp.factor((d - 1) * step))
        exact = {
            "pixelcnn_connections": self.display_connections(),
            "pixelcnn_steps": f["pixelcnn_steps"],
            "mdrnn_connections": sp.factor(rnn),
            "mdrnn_steps": f["mdrnn_steps"],
            "literal_mdrnn_steps": f["literal_steps"],
        }
        out = {key: Result(key, readable(e), value=str(sp.expand(e))) for key, e in exact.items()}
        out["pixelcnn_connections"] = Result(
            "pixelcnn_connections",
            exact["pixelcnn_connections"],  # already in print order
            value={"exact": str(pix), "valid": "2*min(H, W) >= k - 1"},
        )
        for key, e in orders.items():
            out[key] = Result(key, BigO(readable(e)), value=f"O({e})")
        out["pixelcnn_mask_change"] = Result(
            "pixelcnn_mask_change",
            readable(change),
            value={"first_layer_b": str(change[0]), "all_layers_a": str(-change[1])},
        )
        out["pixelcnn_receptive_field"] = Result(
            "pixelcnn_receptive_field",
            readable(sp.factor(ff["size"])),
            value={
                "kernel": self.kernel,
                "size": str(ff["size"]),
                "rows": str(ff["rows"]),
                "table": self.field_table(),
            },
        )
        blind = sorted(self.figure_blind)
        out["pixelcnn_blind_spot"] = Result(
            "pixelcnn_blind_spot",
            readable(sp.factor(ff["blind"])),
            value={"count": str(ff["blind"]), "pixel": list(self.pixel), "cells": blind},
        )
        ctx = sp.Tuple(cf["context"], cf["missed"])
        out["mdrnn_context"] = Result(
            "mdrnn_context",
            sp.Tuple(readable(ctx[0]), signed_factors(ctx[1])),
            value={
                "context": str(ctx[0]),
                "missed": str(ctx[1]),
                "figure": [len(self.figure_context), len(self.figure_missed)],
            },
        )
        return out

    def display_connections(self) -> sp.Expr:
        """PixelCNN's count as c²(S_A + (d − 1) S_B), per-layer counts of the two masks
        read off the all-A and all-B fits (the identity is asserted)."""
        f = self.fits
        s_a, s_b = self.per_layer
        shown = c**2 * (s_a + (d - 1) * s_b)
        if sp.expand(shown - f["pixelcnn_connections"]) != 0:
            raise ArithmeticError("the fitted count is not c^2 (S_A + (d - 1) S_B)")
        inner = sp.Add(by_size(s_a), (d - 1) * by_size(s_b), evaluate=False)
        return sp.Mul(c**2, inner, evaluate=False)

    @cached_property
    def per_layer(self) -> tuple[sp.Expr, sp.Expr]:
        """Connections of one layer with mask A and with mask B, per channel pair."""
        return self.fits["layer_a"], self.fits["layer_b"]

    # -- the figure ---------------------------------------------------------------------------
    @cached_property
    def figure_model(self) -> GridModel:
        return pixelcnn(self.layers, self.kernel, self.height, self.width)

    @cached_property
    def figure_field(self) -> set:
        return self.figure_model.receptive_field(*self.pixel)

    @cached_property
    def figure_blind(self) -> set:
        return blind_spot(self.figure_field, self.pixel)

    @cached_property
    def figure_context(self) -> set:
        return mdrnn(self.layers, self.height, self.width).receptive_field(*self.pixel)

    @cached_property
    def figure_missed(self) -> set:
        return earlier(self.pixel, self.height, self.width) - self.figure_context

    def field_table(self) -> list[list[int]]:
        """[layers, field size, blind spot, earlier pixels] at the figure's pixel."""
        before = len(earlier(self.pixel, self.height, self.width))
        rows = []
        for layers in range(1, self.layers + 1):
            field = self.figure_model.receptive_field(*self.pixel, layer=layers)
            rows.append([layers, len(field), len(blind_spot(field, self.pixel)), before])
        return rows

    def figure(self) -> list[list[str]]:
        """The image as marks: x the pixel, f in the PixelCNN field, b blind spot, o other
        earlier pixels, . later pixels."""
        return self._marks(self.figure_field, self.figure_blind)

    def context_figure(self) -> list[list[str]]:
        """The same for the MDRNN: f in its context, b an earlier pixel it misses."""
        return self._marks(self.figure_context, self.figure_missed)

    def _marks(self, seen: set, missed: set) -> list[list[str]]:
        def mark(q: tuple[int, int]) -> str:
            if q == self.pixel:
                return "x"
            if q in seen:
                return "f"
            if q in missed:
                return "b"
            return "o" if q < self.pixel else "."

        rows, cols = range(1, self.height + 1), range(1, self.width + 1)
        return [[mark((a, b)) for b in cols] for a in rows]

    # -- verification -------------------------------------------------------------------------
    def verify(self) -> list[Check]:
        return (
            self._count_checks() + self._order_checks() + self._step_checks() + self._field_checks()
        )

    def _count_checks(self) -> list[Check]:
        r = self.results
        # The results as the key states them (PixelCNN's in its c^2 (S_A + (d - 1) S_B) form).
        pix = sp.expand(r["pixelcnn_connections"].expr)
        rnn = sp.expand(r["mdrnn_connections"].expr)
        grid = [
            {"d": a, "k": b, "H": h, "W": w, "c": e}
            for a, b, h, w, e in itertools.product(CHECK_D, CHECK_K, CHECK_HW, CHECK_HW, CHECK_C)
        ]
        inside = [s for s in grid if fits_filter(s)]
        by_offsets = c**2 * (offset_sum("A") + (d - 1) * offset_sum("B"))
        change_b, change_a = (e.doit() for e in r["pixelcnn_mask_change"].expr)
        first_b, later_a = polynomial_function(change_b), polynomial_function(change_a)
        bad_change = sum(
            pixelcnn_connections(s, "BB") - pixelcnn_connections(s) != first_b(s)
            or pixelcnn_connections(s) - pixelcnn_connections(s, "AA") != later_a(s)
            for s in inside
            if s["c"] == 1
        )
        per_layer = offset_sum("B") - offset_sum("A")
        bad_change_sym = (sp.expand(change_b - c**2 * per_layer) != 0) + (
            sp.expand(change_a - (d - 1) * c**2 * per_layer) != 0
        )
        rnn_points = [
            {"d": a, "k": b, "H": h, "W": w}
            for a, b, h, w in itertools.product(CHECK_D, (1, 3, 5), CHECK_HW, CHECK_HW)
        ]
        rnn_sum = d * k**2 * sum((H - abs(a)) * (W - abs(b)) for a, b in (BELOW, WEST, NORTH))
        where = "H, W = 1..6, d = 1..4, k = 1, 3, 5, 7, c = 1..3, where 2 min(H, W) >= k - 1"
        return [
            Check(
                "pixelcnn_connections",
                "instantiated graphs: connections counted edge by edge",
                where,
                float(mismatches(pix, pixelcnn_connections, inside)),
                0.0,
            ),
            Check(
                "pixelcnn_connections",
                "SymPy: sum over the mask offsets of (H - |a|)(W - |b|)",
                "symbolic, k = 2r + 1, H, W >= r",
                float(sp.expand(pix - by_offsets) != 0),
                0.0,
            ),
            Check(
                "pixelcnn_mask_change",
                "instantiated graphs with all-B and all-A stacks",
                where.replace("c = 1..3", "c = 1"),
                float(bad_change),
                0.0,
            ),
            Check(
                "pixelcnn_mask_change",
                "SymPy: mask B minus mask A offset sums",
                "symbolic",
                float(bad_change_sym),
                0.0,
            ),
            Check(
                "mdrnn_connections",
                "instantiated graphs: connections counted edge by edge",
                "H, W = 1..6, d = 1..4, k = 1, 3, 5",
                float(mismatches(rnn, mdrnn_connections, rnn_points)),
                0.0,
            ),
            Check(
                "mdrnn_connections",
                "SymPy: d k^2 times the sum over the three sources of (H - |a|)(W - |b|)",
                "symbolic",
                float(sp.expand(rnn - rnn_sum) != 0),
                0.0,
            ),
        ]

    def _order_checks(self) -> list[Check]:
        r = self.results
        base = {
            d: sp.Rational(3, 2),
            k: sp.Integer(1),
            H: sp.Rational(7, 4),
            W: sp.Rational(9, 5),
            c: sp.Rational(4, 3),
        }
        cases = {
            "pixelcnn_connections_order": (self.fits["pixelcnn_connections"], [d, k, H, W, c]),
            "pixelcnn_steps_order": (self.fits["pixelcnn_steps"], [d, k, H, W]),
            "mdrnn_connections_order": (self.fits["mdrnn_connections"], [d, k, H, W]),
            "mdrnn_steps_order": (self.fits["mdrnn_steps"], [d, k, H, W]),
        }
        rows = []
        for key, (exact, symbols) in cases.items():
            bound = r[key].expr.args[0]
            slower = [(k, H), (k, W)] if key.startswith("pixelcnn_conn") else []
            bad = same_growth(exact, bound, symbols, base, slower)
            rows.append(
                Check(
                    key,
                    "SymPy: exact / bound has a positive finite limit along each growth direction",
                    "rates in {0,1,2}^n" + (", k no faster than H and W" if slower else ""),
                    float(len(bad)),
                    0.0,
                )
            )
        # The key: either other mask choice keeps the order once k > 1 (at k = 1, mask A has
        # no weight and an all-A stack no connection).
        pix = sp.expand(r["pixelcnn_connections"].expr)
        bound = r["pixelcnn_connections_order"].expr.args[0]
        first_b, all_a = (sp.expand(e.doit()) for e in r["pixelcnn_mask_change"].expr)
        wider = {**base, k: sp.Integer(3)}
        bad = sum(
            len(same_growth(e, bound, [d, k, H, W, c], wider, [(k, H), (k, W)]))
            for e in (pix + first_b, pix - all_a)
        )
        bad += self.per_layer[0].xreplace({k: 1}) != 0
        rows.append(
            Check(
                "pixelcnn_mask_change",
                "SymPy: all-B and all-A counts / the bound have positive finite limits; "
                "S_A = 0 at k = 1",
                "rates in {0,1,2}^n, k from 3, no faster than H and W",
                float(bad),
                0.0,
            )
        )
        return rows

    def _step_checks(self) -> list[Check]:
        r = self.results

        def rounds(model: GridModel) -> int:
            return max(parallel_rounds(model.dag, model.inputs).values())

        pix_sizes = [
            {"d": a, "k": b, "H": h, "W": w}
            for a, b, h, w in itertools.product(CHECK_D, (1, 3, 5), CHECK_HW, CHECK_HW)
        ]
        rnn_sizes = [
            {"d": a, "H": h, "W": w}
            for a, h, w in itertools.product(range(1, 6), range(1, 9), range(1, 9))
        ]
        method = "simulation: rounds of a machine computing every ready unit"
        return [
            Check(
                "pixelcnn_steps",
                method,
                "d = 1..4, k = 1, 3, 5, H, W = 1..6",
                float(
                    mismatches(
                        r["pixelcnn_steps"].expr,
                        lambda s: rounds(pixelcnn(s["d"], s["k"], s["H"], s["W"])),
                        pix_sizes,
                    )
                ),
                0.0,
            ),
            Check(
                "mdrnn_steps",
                method,
                "d = 1..5, H, W = 1..8",
                float(
                    mismatches(
                        r["mdrnn_steps"].expr,
                        lambda s: rounds(mdrnn(s["d"], s["H"], s["W"])),
                        rnn_sizes,
                    )
                ),
                0.0,
            ),
            Check(
                "literal_mdrnn_steps",
                method,
                "d = 1..5, H, W = 1..8",
                float(
                    mismatches(
                        r["literal_mdrnn_steps"].expr,
                        lambda s: rounds(mdrnn(s["d"], s["H"], s["W"], literal=True)),
                        rnn_sizes,
                    )
                ),
                0.0,
            ),
        ]

    def _field_checks(self) -> list[Check]:
        ff = self.field_fits
        size, r = self.kernel, self.kernel // 2
        deep = 8
        h, w, p = deep * r + 1, 2 * deep * r + 1, (deep * r + 1, deep * r + 1)
        masks = [mask_array(size, "A")] + [mask_array(size, "B")] * (deep - 1)
        bad_size = bad_rows = bad_blind = 0
        for layers in range(1, deep + 1):
            field = backward_field(masks[:layers], h, w, p)
            at = {d: layers}
            bad_size += len(field) != ff["size"].xreplace(at)
            bad_rows += p[0] - min(a for a, _ in field) != ff["rows"].xreplace(at)
            bad_blind += len(blind_spot(field, p)) != ff["blind"].xreplace(at)
        # The figure, pixel by pixel, and causality over whole images.
        fig_masks = [mask_array(size, "A")] + [mask_array(size, "B")] * (self.layers - 1)
        fig = backward_field(fig_masks, self.height, self.width, self.pixel)
        table = self.results["pixelcnn_receptive_field"].value["table"]
        bad_table = 0
        for n, row_ in zip(range(1, self.layers + 1), table, strict=True):
            field = backward_field(fig_masks[:n], self.height, self.width, self.pixel)
            bad_table += (len(field), len(blind_spot(field, self.pixel))) != tuple(row_[1:3])
        bad_fig = (fig != self.figure_field) + (blind_spot(fig, self.pixel) != self.figure_blind)
        late = blind_self = 0
        for layers, size2 in itertools.product(range(1, 5), (3, 5)):
            ms = [mask_array(size2, "A")] + [mask_array(size2, "B")] * (layers - 1)
            all_b = [mask_array(size2, "B")] * layers
            for q in itertools.product(range(1, 7), repeat=2):
                late += sum(x >= q for x in backward_field(ms, 6, 6, q))
                # Mask B in the first layer too: every pixel would see itself.
                blind_self += q not in backward_field(all_b, 6, 6, q)
        bad_ctx = bad_missed = 0
        cf = self.context_fits
        for layers, hh, ww in itertools.product((1, 3), range(1, 7), range(1, 7)):
            for q in itertools.product(range(1, hh + 1), range(1, ww + 1)):
                ctx = backward_context(layers, hh, ww, q)
                at = {row: q[0], col: q[1], W: ww}
                bad_ctx += len(ctx) != cf["context"].xreplace(at)
                bad_missed += len(earlier(q, hh, ww) - ctx) != cf["missed"].xreplace(at)
        fig_ctx = backward_context(self.layers, self.height, self.width, self.pixel)
        bad_ctx += fig_ctx != self.figure_context
        method = "NumPy adjoint of all-ones masked convolutions, masks as k x k arrays"
        deep_where = f"k = {size}, d = 1..{deep}, no border in reach"
        ctx_method = "adjoint recursion of a linear MDRNN with unit weights"
        return [
            Check("pixelcnn_receptive_field", method, deep_where, float(bad_size + bad_rows), 0.0),
            Check(
                "pixelcnn_receptive_field",
                method,
                f"figure: {self.height} x {self.width}, pixel {self.pixel}, d = 1..{self.layers}",
                float(bad_table + bad_fig),
                0.0,
            ),
            Check(
                "pixelcnn_receptive_field",
                "NumPy adjoint: field pixels at or after the pixel (causality)",
                "6 x 6, every pixel, d = 1..4, k = 3, 5",
                float(late),
                0.0,
            ),
            Check(
                "pixelcnn_mask_change",
                "NumPy adjoint, mask B in every layer: pixels missing from their own field",
                "6 x 6, every pixel, d = 1..4, k = 3, 5",
                float(blind_self),
                0.0,
            ),
            Check("pixelcnn_blind_spot", method, deep_where, float(bad_blind), 0.0),
            Check(
                "mdrnn_context",
                ctx_method,
                "H, W = 1..6, every pixel, d = 1, 3; the figure",
                float(bad_ctx),
                0.0,
            ),
            Check(
                "mdrnn_context",
                ctx_method + ": earlier pixels missed",
                "H, W = 1..6, every pixel, d = 1, 3",
                float(bad_missed),
                0.0,
            ),
        ]

    @cached_property
    def outside(self) -> tuple[int, int]:
        """(sizes of the check range where the filter does not fit, those the formula misses)."""
        pix = self.fits["pixelcnn_connections"]
        out = [
            {"d": a, "k": b, "H": h, "W": w, "c": 1}
            for a, b, h, w in itertools.product(CHECK_D, CHECK_K, CHECK_HW, CHECK_HW)
            if not fits_filter({"k": b, "H": h, "W": w})
        ]
        return len(out), mismatches(pix, pixelcnn_connections, out)

    def context(self) -> dict[str, Any]:
        f, ff, cf = self.fits, self.field_fits, self.context_fits
        at = _subs(self.example)
        s_a, s_b = self.per_layer
        closed = ("pixelcnn_connections", "mdrnn_connections", "pixelcnn_steps", "mdrnn_steps")
        cells = self.height * self.width
        return {
            **super().context(),
            "s_a": by_size(s_a),
            "s_b": by_size(s_b),
            "compact": sp.Mul(
                c**2,
                sp.Add(sp.Symbol("S_A"), readable(d - 1) * sp.Symbol("S_B"), evaluate=False),
                evaluate=False,
            ),
            "context_figure": self.context_figure(),
            "order_one_channel": BigO(
                readable(self.results["pixelcnn_connections_order"].expr.args[0].subs(c, 1))
            ),
            "blind_from": next(
                n for n in range(1, FIELD_LAYERS + 1) if ff["blind"].xreplace({d: n}) > 0
            ),
            "outside": self.outside,
            "example": self.example,
            "at_example": {key: int(f[key].xreplace(at)) for key in closed},
            "image": (self.height, self.width),
            "layers": self.layers,
            "kernel": self.kernel,
            "pixel": self.pixel,
            "figure": self.figure(),
            "field_table": self.field_table(),
            "field_rows": readable(ff["rows"]),
            "field_layers": FIELD_LAYERS,
            "context_size": readable(cf["context"]),
            "counts": {
                "field": len(self.figure_field),
                "blind": len(self.figure_blind),
                "earlier": len(earlier(self.pixel, self.height, self.width)),
                "context": len(self.figure_context),
                "missed": len(self.figure_missed),
            },
            # Activations a forward pass keeps: every non-input unit of the graphs.
            "units": {
                "pixelcnn": len(self.figure_model.dag) - cells,
                "mdrnn": len(mdrnn(self.layers, self.height, self.width).dag) - cells,
            },
        }
