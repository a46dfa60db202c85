"""The two models as instantiated graphs, their sizes, and the raster order they obey.

An H×W image, d layers, positions (i, j) = (row, column) from 1.  PixelCNN: k×k filters
masked in raster order, mask A in the first layer and mask B (A and the centre) after it,
c channels per layer.  MDRNN: k channels per layer; each unit reads the unit below and its
own layer's west and north neighbours.  The handout's equation, read literally, feeds the
neighbours' inputs instead (``literal_mdrnn``).
"""

from __future__ import annotations

import itertools
from functools import cache
from typing import Any

import sympy as sp

from derive.engine.graph import GridModel
from derive.engine.grid import BELOW, NORTH, WEST, mdrnn_grid
from derive.errors import InputError
from derive.params import Int
from derive.verify.evidence import describe_sizes

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
#: Generic base sizes of the growth directions (t^rate times these).
BASE = {
    d: sp.Rational(3, 2),
    k: sp.Integer(1),
    H: sp.Rational(7, 4),
    W: sp.Rational(9, 5),
    c: sp.Rational(4, 3),
}
#: PixelCNN's filter fits the image: k grows no faster than H and W.
SLOWER = [(k, H), (k, W)]


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


def mdrnn(layers: int, h: int, w: int) -> GridModel:
    """Stacked MDRNN layers with the intended recurrence."""
    return mdrnn_grid(h, w, layers)


@cache
def literal_mdrnn(layers: int, h: int, w: int) -> GridModel:
    """The handout's equation read literally: the neighbours' inputs, no recurrence."""
    return GridModel(h, w, ((BELOW, WEST, NORTH),) * layers)


def pixelcnn_connections(s: dict[str, int], kinds: str = "AB") -> int:
    model = pixelcnn(s["d"], s["k"], s["H"], s["W"], kinds)
    return model.connections() * s["c"] ** 2


def mdrnn_connections(s: dict[str, int]) -> int:
    return mdrnn(s["d"], s["H"], s["W"]).connections() * s["k"] ** 2


def describe(fits: bool = True, **fixed: int) -> str:
    """The checked sizes (``CHECK_*``) as rows print them, those named in ``fixed`` held at
    one value, where the filter fits the image (``fits_filter``) or, if not ``fits``, not."""
    ranges = {"HW": CHECK_HW, "d": CHECK_D, "k": CHECK_K, "c": CHECK_C} | fixed
    return describe_sizes(**ranges) + f", where 2 min(H, W) {'>=' if fits else '<'} k - 1"


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


def at_sizes(sizes: dict[str, int]) -> dict[sp.Symbol, int]:
    """Sizes keyed by name as a substitution of the size symbols."""
    names = {x.name: x for x in (d, k, H, W, c)}
    return {names[n]: v for n, v in sizes.items()}


def parse_example(value: Any) -> dict[str, int]:
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
