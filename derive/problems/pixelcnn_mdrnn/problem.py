"""PixelCNN against MDRNN as autoregressive image models (CSE 891 homework 3, question 4).

An H×W image, d layers, each layer a unit vector at every pixel; positions (i, j) are
(row, column) from 1, in raster order (``model``).

A connection is one multiplication of an input unit's value by a weight: per edge of the
dependency graph, channels in × channels out, over all positions and layers.  A neighbour
off the image (zero padding, a missing recurrent neighbour) costs none.

Derivation: the counts are read from instantiated ``GridModel``s and fitted over a range
of sizes (``find_polynomial``); PixelCNN's exact count holds when every row offset of the
filter fits the image, H, W ≥ (k−1)/2, and the fit uses sizes there.  ``big_o`` keeps the
leading monomials with k growing no faster than H and W.  Receptive fields, blind spot and
MDRNN context are ancestor sets in the graphs; the example's numbers are the closed forms
at its sizes.  The claims (``claims``) take other routes.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from typing import Any, ClassVar

import sympy as sp

from derive.engine.graph import Axis, GridModel, find_polynomial
from derive.engine.reading import readable
from derive.errors import InputError
from derive.params import Int, Kind, Param, Quote, Raw
from derive.problems.base import Problem, Result
from derive.problems.pixelcnn_mdrnn import claims as pixel_claims
from derive.problems.pixelcnn_mdrnn import results
from derive.problems.pixelcnn_mdrnn.model import (
    EXAMPLE,
    FIELD_LAYERS,
    KERNELS,
    LAYERS,
    MAX_IMAGE,
    PROBE_C,
    PROBE_D,
    PROBE_HW,
    PROBE_K,
    H,
    W,
    blind_spot,
    c,
    col,
    d,
    earlier,
    k,
    literal_mdrnn,
    mdrnn,
    mdrnn_connections,
    parse_example,
    pixelcnn,
    pixelcnn_connections,
    row,
)
from derive.verify import Claim


class PixelCNNMDRNN(Problem):
    """Connections and sequential steps of PixelCNN and MDRNN, and their context windows."""

    CLAIM_NAMES: ClassVar[dict[str, str]] = {
        "pixelcnn_connections": "PixelCNN connections", "pixelcnn_layer_connections":
        "PixelCNN connections per layer", "pixelcnn_small_images": "PixelCNN on small images",
        "pixelcnn_mask_change": "mask B instead of mask A", "mdrnn_connections":
        "MDRNN connections", "pixelcnn_connections_order": "order of PixelCNN connections",
        "pixelcnn_steps_order": "order of PixelCNN steps", "mdrnn_connections_order":
        "order of MDRNN connections", "mdrnn_steps_order": "order of MDRNN steps",
        "grey_pixelcnn_connections_order": "order, one colour channel", "pixelcnn_steps":
        "PixelCNN steps", "mdrnn_steps": "MDRNN steps", "literal_mdrnn_steps": "MDRNN steps, "
        "equation as printed", "pixelcnn_receptive_field": "PixelCNN receptive field",
        "pixelcnn_field_rows": "rows the field reaches", "pixelcnn_blind_spot":
        "the blind spot", "mdrnn_context": "MDRNN context", "example_comparison":
        "the example's comparison", "activations": "activations",
    }

    key = "pixelcnn_mdrnn"
    title = "Autoregressive image models: PixelCNN against MDRNN"
    MAIN = "pixelcnn_connections_order"
    RESULTS: ClassVar[dict[str, str]] = {
        "pixelcnn_connections": (
            "PixelCNN's connections for an H x W image, d layers, k x k kernels, c channels; "
            "exact holds the polynomial and where it is valid."
        ),
        "pixelcnn_steps": "PixelCNN's sequential steps in training (one per layer).",
        "mdrnn_connections": "The MDRNN's connections for the same sizes.",
        "mdrnn_steps": (
            "The MDRNN's sequential steps (the longest path through the grid and the layers)."
        ),
        "literal_mdrnn_steps": (
            "The MDRNN's steps if every layer waited for the one below to finish."
        ),
        "pixelcnn_layer_connections": "Connections of one layer with mask A and with mask B.",
        "pixelcnn_small_images": (
            "How many checked small images the filter does not fit, and at how many of them the "
            "polynomial count is wrong; text: the sizes checked."
        ),
        "pixelcnn_connections_order": "The order of PixelCNN's connections in big-O.",
        "pixelcnn_steps_order": "The order of PixelCNN's steps.",
        "mdrnn_connections_order": "The order of the MDRNN's connections.",
        "mdrnn_steps_order": "The order of the MDRNN's steps.",
        "grey_pixelcnn_connections_order": (
            "The order of PixelCNN's connections on one channel (c = 1)."
        ),
        "pixelcnn_mask_change": (
            "Connections mask B in the first layer adds, and mask A in every layer removes."
        ),
        "pixelcnn_receptive_field": (
            "PixelCNN's receptive field in d layers of the kernel: its size, the rows it reaches,"
            " and a table by depth."
        ),
        "pixelcnn_field_rows": (
            "The rows above the pixel the receptive field reaches after d layers."
        ),
        "pixelcnn_blind_spot": (
            "The blind spot's size in d layers, the first depth with one, and its cells at the "
            "figure's pixel."
        ),
        "mdrnn_context": (
            "The pixels the MDRNN's output at (i, j) sees, those a raster-order context has that "
            "it misses, and both counted at the figure."
        ),
        "example_comparison": "Connections and steps of both models at the example's sizes.",
        "activations": "Activations a forward pass keeps in each model, at the figure's sizes.",
    }
    LABELS = ("title", "pixelcnn", "mdrnn", "compare")
    OPTIONAL = ("compare",)  # extra credit: the counts of parts 1 and 2 stand without it
    #: What an original handout may print, quoted by a set: its MDRNN equation and the
    #: words of its question on the MDRNN's sequential steps.
    ORIGINAL: ClassVar[dict[str, Kind]] = {
        "equation": Quote("the original's equation of the MDRNN's activations"),
        "steps_question": Quote("the original's question on the MDRNN's sequential steps"),
    }
    #: Names the printer spells through the set's notation (``Problem.symbols``).
    SYMBOLS = ("H", "S_A", "S_B", "W", "c", "d", "i", "j", "k")

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
        self.pixel = self._pixel(pixel)
        self.example = parse_example(example)

    def _pixel(self, pixel: list[int] | None) -> tuple[int, int]:
        if pixel is None:
            pixel = [self.height, (self.width + 1) // 2]
        if not isinstance(pixel, list | tuple) or len(pixel) != 2:
            raise InputError(f"pixel: expected [row, column], two whole numbers, got {pixel!r}")
        return (
            Int(1, self.height).parse(pixel[0], "pixel[0] (row)"),
            Int(1, self.width).parse(pixel[1], "pixel[1] (column)"),
        )

    # -- fits ---------------------------------------------------------------------------------
    @cached_property
    def fits(self) -> dict[str, sp.Expr]:
        """Closed forms fitted to the instantiated graphs' counts."""
        pix = [
            Axis(d, PROBE_D, 2),
            Axis(k, PROBE_K, 3),
            Axis(H, PROBE_HW, 6),
            Axis(W, PROBE_HW, 7),
            Axis(c, PROBE_C, 2),
        ]
        # The MDRNN count holds on any image: probe from 1.
        rnn = [Axis(d, PROBE_D, 2), Axis(k, PROBE_C, 3), Axis(H, PROBE_C, 2), Axis(W, PROBE_C, 3)]
        rnn_steps = [rnn[0], *rnn[2:]]

        def one_layer(kinds: str):
            return lambda s: pixelcnn(1, s["k"], s["H"], s["W"], kinds).connections()

        return {
            "pixelcnn_connections": find_polynomial(pixelcnn_connections, pix),
            # One layer of each mask, per pair of channels.
            "layer_a": find_polynomial(one_layer("AA"), pix[1:4]),
            "layer_b": find_polynomial(one_layer("BB"), pix[1:4]),
            "pixelcnn_steps": find_polynomial(
                lambda s: pixelcnn(s["d"], s["k"], s["H"], s["W"]).steps(), pix[:4]
            ),
            "mdrnn_connections": find_polynomial(mdrnn_connections, rnn),
            "mdrnn_steps": find_polynomial(
                lambda s: mdrnn(s["d"], s["H"], s["W"]).steps(), rnn_steps
            ),
            "literal_steps": find_polynomial(
                lambda s: literal_mdrnn(s["d"], s["H"], s["W"]).steps(), rnn_steps
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

    @cached_property
    def per_layer(self) -> tuple[sp.Expr, sp.Expr]:
        """Connections of one layer with mask A and with mask B, per channel pair."""
        return self.fits["layer_a"], self.fits["layer_b"]

    # -- results ------------------------------------------------------------------------------
    def derive(self) -> dict[str, Result]:
        out = {**results.count_results(self), **results.order_results(self)}
        out["pixelcnn_mask_change"] = results.mask_change_result(self)
        return {**out, **results.field_results(self), **results.example_results(self)}

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

    # -- claims and the key -------------------------------------------------------------------
    def claims(self) -> Iterator[Claim]:
        yield from pixel_claims.count_claims(self)
        yield from pixel_claims.order_claims(self)
        yield from pixel_claims.step_claims(self)
        yield from pixel_claims.field_claims(self)
        yield from pixel_claims.example_claims(self)

    def context(self) -> dict[str, Any]:
        r = self.results
        table = r["pixelcnn_receptive_field"].value["table"]
        context, missed = r["mdrnn_context"].value["figure"]
        s_a, s_b = r["pixelcnn_layer_connections"].expr
        return {
            **super().context(),
            "s_a": s_a,
            "s_b": s_b,
            "compact": sp.Mul(
                c**2,
                sp.Add(sp.Symbol("S_A"), readable(d - 1) * sp.Symbol("S_B"), evaluate=False),
                evaluate=False,
            ),
            "context_figure": self.context_figure(),
            "order_one_channel": r["grey_pixelcnn_connections_order"].expr,
            "blind_from": r["pixelcnn_blind_spot"].value["from_layers"],
            "outside": tuple(r["pixelcnn_small_images"].expr),
            "example": self.example,
            "at_example": r["example_comparison"].value["counts"],
            "image": (self.height, self.width),
            "layers": self.layers,
            "kernel": self.kernel,
            "pixel": self.pixel,
            "figure": self.figure(),
            "field_table": table,
            "field_rows": r["pixelcnn_field_rows"].expr,
            "field_layers": FIELD_LAYERS,
            "context_size": r["mdrnn_context"].expr[0],
            # The figure's pixel at the figure's depth: the last row of the table.
            "counts": dict(zip(("field", "blind", "earlier"), table[-1][1:], strict=True))
            | {"context": context, "missed": missed},
            "units": r["activations"].value,
        }
