"""Claims about receptive fields, blind spots and contexts, by NumPy adjoints: masks built
as k×k arrays (``derive.instances.gridsim``), run backwards from one pixel, share no code
with the graphs' ancestor sets the results come from."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING

from derive.instances.gridsim import backward_context, backward_field, mask_stack
from derive.problems.pixelcnn_mdrnn.model import W, blind_spot, col, d, earlier, row
from derive.verify import Claim
from derive.verify.evidence import describe_sizes
from derive.verify.routes import count_mismatch, failures

if TYPE_CHECKING:
    from derive.problems.pixelcnn_mdrnn.problem import PixelCNNMDRNN

ADJOINT = "adjoint of all-ones masked convolutions, masks as k x k arrays"
CONTEXT = "adjoint recursion of a linear MDRNN with unit weights"
#: Depth of the field checks (beyond the fit's), on an image no field of it reaches across.
DEEP = 8
#: The causality checks: every pixel of one small image, these depths and filters.
SMALL_SIDE, SMALL_D, SMALL_K = 6, range(1, 5), (3, 5)
SMALL = f"{SMALL_SIDE} x {SMALL_SIDE}, every pixel, " + describe_sizes(d=SMALL_D, k=SMALL_K)
#: The context checks: every pixel of every image of these sides, these depths.
CONTEXT_HW, CONTEXT_D = range(1, 7), (1, 3)
CONTEXT_SIZES = describe_sizes(HW=CONTEXT_HW) + ", every pixel, " + describe_sizes(d=CONTEXT_D)


def field_claims(p: PixelCNNMDRNN) -> Iterator[Claim]:
    """Every field claim, in the key's order."""
    size, rows, blind = _deep_errors(p)
    deep = f"k = {p.kernel}, d = 1..{DEEP}, no border in reach"
    yield Claim.measured("pixelcnn_receptive_field", ADJOINT, deep, size, 0.0)
    yield Claim(
        "pixelcnn_receptive_field",
        ADJOINT,
        f"figure: {p.height} x {p.width}, pixel {p.pixel}, d = 1..{p.layers}",
        0.0,
        lambda: _figure_errors(p),
    )
    yield Claim(
        "pixelcnn_receptive_field",
        "adjoint: field pixels at or after the pixel (causality)",
        SMALL,
        0.0,
        lambda: sum(_small_fields("AB", lambda f, q: sum(x >= q for x in f))),
    )
    yield Claim.measured("pixelcnn_field_rows", ADJOINT + ": rows above the pixel reached",
                         deep, rows, 0.0)
    # Mask B in the first layer too: every pixel would see itself.
    yield Claim(
        "pixelcnn_mask_change",
        "adjoint, mask B in every layer: pixels missing from their own field",
        SMALL,
        0.0,
        lambda: sum(_small_fields("BB", lambda f, q: q not in f)),
    )
    yield Claim.measured("pixelcnn_blind_spot", ADJOINT, deep, blind, 0.0)
    yield from _context_claims(p)


def _context_claims(p: PixelCNNMDRNN) -> Iterator[Claim]:
    """The MDRNN's context and the earlier pixels it misses, by the adjoint recursion."""
    ctx, missed = _context_errors(p)
    yield Claim.measured(
        "mdrnn_context", CONTEXT, CONTEXT_SIZES + "; the figure", ctx, 0.0
    )
    yield Claim.measured(
        "mdrnn_context",
        CONTEXT + ": earlier pixels missed",
        CONTEXT_SIZES,
        missed,
        0.0,
    )


def _deep_errors(p: PixelCNNMDRNN) -> tuple[int, int, int]:
    """(size misses, height misses, blind-spot misses incl. the depth it starts at) of the
    results, d = 1..``DEEP``."""
    r, k = p.results, p.kernel // 2
    h, w, q = DEEP * k + 1, 2 * DEEP * k + 1, (DEEP * k + 1, DEEP * k + 1)
    masks = mask_stack(p.kernel, DEEP)
    size = rows = blind = 0
    blinds = []
    for layers in range(1, DEEP + 1):
        field = backward_field(masks[:layers], h, w, q)
        at = {d: layers}
        size += count_mismatch(r["pixelcnn_receptive_field"].expr, at, len(field)) != 0
        reached = q[0] - min(a for a, _ in field)
        rows += count_mismatch(r["pixelcnn_field_rows"].expr, at, reached) != 0
        blinds.append(len(blind_spot(field, q)))
        blind += count_mismatch(r["pixelcnn_blind_spot"].expr, at, blinds[-1]) != 0
    start = next((n for n, b in enumerate(blinds, 1) if b), None)
    blind += start != r["pixelcnn_blind_spot"].value["from_layers"]
    return size, rows, blind


def _figure_errors(p: PixelCNNMDRNN) -> int:
    """The figure's table row by row, its field and blind spot, against the adjoint."""
    masks = mask_stack(p.kernel, p.layers)
    table = p.results["pixelcnn_receptive_field"].value["table"]

    def row_holds(n_row: tuple[int, list[int]]) -> bool:
        field = backward_field(masks[: n_row[0]], p.height, p.width, p.pixel)
        return (len(field), len(blind_spot(field, p.pixel))) == tuple(n_row[1][1:3])

    fig = backward_field(masks, p.height, p.width, p.pixel)
    bad = failures(zip(range(1, p.layers + 1), table, strict=True), row_holds)
    return bad + (fig != p.figure_field) + (blind_spot(fig, p.pixel) != p.figure_blind)


def _small_fields(kinds: str, misses) -> Iterator[int]:
    """``misses(field, pixel)`` for every pixel and size of ``SMALL``."""
    for layers, size in itertools.product(SMALL_D, SMALL_K):
        masks = mask_stack(size, layers, kinds)
        for q in itertools.product(range(1, SMALL_SIDE + 1), repeat=2):
            yield misses(backward_field(masks, SMALL_SIDE, SMALL_SIDE, q), q)


def _context_errors(p: PixelCNNMDRNN) -> tuple[int, int]:
    """(context misses incl. the figure's, missed-pixel misses) at ``CONTEXT_SIZES``."""
    cf = p.context_fits
    bad_ctx = bad_missed = 0
    for layers, hh, ww in itertools.product(CONTEXT_D, CONTEXT_HW, CONTEXT_HW):
        for q in itertools.product(range(1, hh + 1), range(1, ww + 1)):
            ctx = backward_context(layers, hh, ww, q)
            at = {row: q[0], col: q[1], W: ww}
            bad_ctx += count_mismatch(cf["context"], at, len(ctx)) != 0
            bad_missed += count_mismatch(cf["missed"], at, len(earlier(q, hh, ww) - ctx)) != 0
    fig_ctx = backward_context(p.layers, p.height, p.width, p.pixel)
    return bad_ctx + (fig_ctx != p.figure_context), bad_missed
