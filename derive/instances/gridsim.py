"""Grid models run by hand: independent routes for what ``GridModel`` graphs count.

Nothing here builds a dependency graph.  A pure-Python MDRNN runs its recurrence by plain
loops and counts every multiplication, addition and φ and every weight it touches; impulse
responses of a linear MDRNN and of NumPy convolutions give receptive fields; adjoints of
masked convolutions (masks built as k×k arrays the usual way) and of a linear MDRNN give
the inputs a unit depends on; connections are counted tap by tap of the mask arrays.

Grid positions are 1-based.  The MDRNN of ``run_mdrnn`` indexes h(i, j) with i the column
and j the row (CSC421's convention); the arrays of the others are (row, column).
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

#: The symbol of φ's cost per element in an operation count.
n_phi = sp.Symbol("n_phi", positive=True)


# -- a pure-Python MDRNN that counts what it does ------------------------------------------------
@dataclass
class Tally:
    """What one forward pass did: operations, weight entries touched, cost per cell and the
    products with each weight matrix (how many, and the operations of one)."""

    mul: int = 0
    add: int = 0
    phi: int = 0
    touched: set = field(default_factory=set)
    params: int = 0
    per_cell: dict = field(default_factory=dict)
    products: Counter = field(default_factory=Counter)
    product_ops: dict = field(default_factory=dict)
    shapes: dict = field(default_factory=dict)

    def ops(self) -> sp.Expr:
        return self.mul + self.add + n_phi * self.phi

    def matvec(self, name: str, w: list[list[float]], v: list[float]) -> list[float]:
        """``w v`` row by row, counting mn multiplications and m(n − 1) additions."""
        before = self.mul + self.add
        out = []
        for r, row in enumerate(w):
            acc = row[0] * v[0]
            self.mul += 1
            for c in range(1, len(v)):
                acc += row[c] * v[c]
                self.mul += 1
                self.add += 1
            self.touched.update((name, r, c) for c in range(len(v)))
            out.append(acc)
        self.products[name] += 1
        self.product_ops[name] = self.mul + self.add - before
        return out


def random_weights(d: int, h: int, rnd: random.Random) -> dict[str, list[list[float]]]:
    """W_in (H×D), W_W and W_N (H×H), entries in (0.1, 1)."""

    def draw(rows: int, cols: int) -> list[list[float]]:
        return [[rnd.uniform(0.1, 1) for _ in range(cols)] for _ in range(rows)]

    return {"W_in": draw(h, d), "W_W": draw(h, h), "W_N": draw(h, h)}


def run_mdrnn(
    g: int, d: int, h: int, x: dict | None = None, phi: Callable = math.tanh, seed: int = 20261122
) -> tuple[dict, Tally]:
    """h(i, j) for every cell of a g×g grid by plain loops, counting each operation.

    Weights are drawn from (0.1, 1): positive, so with a linear φ an input influences h(i, j)
    exactly when a path of connections joins them.  A missing neighbour's term is skipped.
    """
    rnd = random.Random(seed)
    weights = random_weights(d, h, rnd)
    if x is None:
        cells = itertools.product(range(1, g + 1), repeat=2)
        x = {c: [rnd.uniform(-1, 1) for _ in range(d)] for c in cells}
    tally = Tally(params=sum(len(w) * len(w[0]) for w in weights.values()))
    tally.shapes = {name: (len(w), len(w[0])) for name, w in weights.items()}
    hid: dict = {}
    for jj, ii in itertools.product(range(1, g + 1), repeat=2):  # rows north to south
        before = tally.mul + tally.add
        terms = [tally.matvec("W_in", weights["W_in"], x[(ii, jj)])]
        if ii > 1:
            terms.append(tally.matvec("W_W", weights["W_W"], hid[(ii - 1, jj)]))
        if jj > 1:
            terms.append(tally.matvec("W_N", weights["W_N"], hid[(ii, jj - 1)]))
        z = terms[0]
        for term in terms[1:]:
            z = [a + b for a, b in zip(z, term, strict=True)]
            tally.add += h
        hid[(ii, jj)] = [phi(v) for v in z]
        tally.phi += h
        tally.per_cell[(ii, jj)] = tally.mul + tally.add - before + n_phi * h
    return hid, tally


def impulse_field(g: int) -> set[tuple[int, int]]:
    """Cells (i, j) whose input changes h(G, G), with a linear φ (one run per input)."""
    zero = {c: [0.0] for c in itertools.product(range(1, g + 1), repeat=2)}
    seen = set()
    for c in zero:
        hid, _ = run_mdrnn(g, 1, 1, {**zero, c: [1.0]}, phi=lambda v: v)
        if hid[(g, g)][0] != 0:
            seen.add(c)
    return seen


# -- convolutions --------------------------------------------------------------------------------
def conv_impulse(g: int, layers: int, source: tuple[int, int]) -> np.ndarray:
    """Response of a stack of 3×3 all-ones convolutions (zero padding) to a unit impulse."""
    a = np.zeros((g + 2, g + 2))
    a[source[0], source[1]] = 1.0  # 1-based cell in a zero-padded array
    for _ in range(layers):
        out = np.zeros_like(a)
        out[1:-1, 1:-1] = sum(
            a[1 + di : g + 1 + di, 1 + dj : g + 1 + dj] for di in (-1, 0, 1) for dj in (-1, 0, 1)
        )
        a = out
    return a[1:-1, 1:-1]


def conv_impulse_field(g: int, layers: int, target: tuple[int, int] | None = None) -> np.ndarray:
    """Which inputs reach the output at ``target`` (the corner by default): one impulse each."""
    ti, tj = target or (g, g)
    hit = np.zeros((g, g), dtype=bool)
    for a, b in itertools.product(range(1, g + 1), repeat=2):
        hit[a - 1, b - 1] = conv_impulse(g, layers, (a, b))[ti - 1, tj - 1] > 0
    return hit


def conv_params(layers: int, d: int, h: int, size: int = 3) -> int:
    """Entries of the weight arrays of a conv stack D → H → … → H (built, then sized)."""
    arrays = [np.zeros((h, d, size, size))] + [np.zeros((h, h, size, size))] * (layers - 1)
    return sum(w.size for w in arrays)


# -- masked convolutions -------------------------------------------------------------------------
def mask_array(size: int, kind: str) -> np.ndarray:
    """The usual PixelCNN mask: ones, then zero the centre row from the centre (A) or right of
    it (B) and every row below."""
    m = np.ones((size, size), dtype=int)
    r = size // 2
    m[r, r + (kind == "B") :] = 0
    m[r + 1 :, :] = 0
    return m


def mask_stack(size: int, layers: int, kinds: str = "AB") -> list[np.ndarray]:
    """Mask ``kinds[0]`` for the first layer, ``kinds[1]`` for the others."""
    return [mask_array(size, kinds[0])] + [mask_array(size, kinds[1])] * (layers - 1)


def tap_connections(taps: Iterable[tuple[int, int]], h: int, w: int) -> int:
    """Σ over taps (a, b) of the output positions where the tap's source is on the image,
    (H − |a|)₊ (W − |b|)₊: a layer's connections per pair of channels, at any size."""
    return sum(max(0, h - abs(a)) * max(0, w - abs(b)) for a, b in taps)


def mask_taps(m: np.ndarray) -> list[tuple[int, int]]:
    """Offsets (row, column) from the centre of the nonzero entries of a mask array."""
    r = m.shape[0] // 2
    return [(int(a) - r, int(b) - r) for a, b in zip(*np.nonzero(m), strict=True)]


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


def mask_rows(size: int, kind: str) -> list[tuple[int, int, int]]:
    """The usual mask row by row, (row offset, first column offset, last): full rows above
    the centre, the centre row up to the centre (B) or short of it (A); empty rows left out."""
    r = size // 2
    rows = [(a, -r, r) for a in range(-r, 0)]
    last = 0 if kind == "B" else -1
    return rows + ([(0, -r, last)] if last >= -r else [])


def masked_connections(size: int, kind: str, h: int, w: int) -> int:
    """``tap_connections`` of a mask, row by row: cheap for any filter size (a k×k array
    at k in the thousands would not be)."""
    spans: dict[tuple[int, int], int] = {}
    total = 0
    for a, lo, hi in mask_rows(size, kind):
        if (lo, hi) not in spans:
            spans[(lo, hi)] = sum(max(0, w - abs(b)) for b in range(lo, hi + 1))
        total += max(0, h - abs(a)) * spans[(lo, hi)]
    return total
