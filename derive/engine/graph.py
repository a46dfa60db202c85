"""Dependency graphs of instantiated models, and closed forms fitted to what they count.

A model instantiated at concrete sizes is a DAG, ``dict[node, tuple[predecessor, ...]]``
(every predecessor is itself a key).  Nodes listed as ``inputs`` are given (step 0); any
other node is computed one step after the last of its predecessors, so a step may hold any
number of independent computations.  From the DAG come:

* ``schedule`` / ``critical_path``: the step at which each node can be computed, and the
  number of sequential steps (longest path); ``parallel_rounds`` gets both by simulating a
  machine that computes every ready node each round (an independent route);
* ``ancestors``: which inputs a node depends on (its receptive field);
* ``count_edges``: connections, each edge weighted (e.g. by channels in times channels out).

``GridModel`` builds such DAGs for layers of units on an H×W grid (convolutions, masked
convolutions, 2-D recurrences).  ``find_polynomial`` turns counts over a range of sizes into
a closed form: the degree in each size by finite differences, exact rational coefficients
by interpolation on a grid of sizes; callers then verify it on further sizes
(``mismatches``, exact).  ``big_o`` keeps the monomials that lead along some direction of
growth; ``same_growth`` checks a bound against the exact count along every direction.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property

import sympy as sp

Node = Hashable
Dag = dict[Node, tuple[Node, ...]]
Offset = tuple[int, int]


# -- the graph ------------------------------------------------------------------------------------
def topological_order(dag: Dag) -> list[Node]:
    """Nodes with every predecessor before its successors (Kahn); a cycle is an error."""
    missing = {p for preds in dag.values() for p in preds if p not in dag}
    if missing:
        raise ValueError(f"predecessors missing from the graph: {sorted(map(str, missing))[:3]}")
    waiting = {n: len(preds) for n, preds in dag.items()}
    succs: dict[Node, list[Node]] = {n: [] for n in dag}
    for n, preds in dag.items():
        for p in preds:
            succs[p].append(n)
    ready = [n for n, k in waiting.items() if k == 0]
    order = []
    while ready:
        n = ready.pop()
        order.append(n)
        for s in succs[n]:
            waiting[s] -= 1
            if waiting[s] == 0:
                ready.append(s)
    if len(order) != len(dag):
        raise ValueError("the graph has a cycle: no step order exists")
    return order


def schedule(dag: Dag, inputs: Iterable[Node] = ()) -> dict[Node, int]:
    """The earliest step of every node: 0 for inputs, else 1 + the latest predecessor's."""
    given = set(inputs)
    step: dict[Node, int] = {}
    for n in topological_order(dag):
        step[n] = 0 if n in given else 1 + max((step[p] for p in dag[n]), default=0)
    return step


def critical_path(dag: Dag, inputs: Iterable[Node] = ()) -> int:
    """Sequential steps needed with unlimited parallelism: the longest chain of computations."""
    return max(schedule(dag, inputs).values(), default=0)


def parallel_rounds(dag: Dag, inputs: Iterable[Node] = ()) -> dict[Node, int]:
    """The round in which a machine that computes, each round, every node whose predecessors
    are done, computes each node (0 for inputs); the last round is the number of steps."""
    done = dict.fromkeys(inputs, 0)
    # Round by round, as the machine would: a node is ready once its count of unfinished
    # predecessors reaches zero, so each round looks only at the successors of the last
    # round's nodes (linear in the graph, not rounds x nodes).
    waiting = {n: sum(p not in done for p in preds) for n, preds in dag.items() if n not in done}
    succs: dict[Node, list[Node]] = {}
    for n in waiting:
        for p in dag[n]:
            if p not in done:
                succs.setdefault(p, []).append(n)
    ready = [n for n, k in waiting.items() if k == 0]
    rounds = 0
    while ready:
        rounds += 1
        done.update(dict.fromkeys(ready, rounds))
        nxt = []
        for n in ready:
            for s in succs.get(n, ()):
                waiting[s] -= 1
                if waiting[s] == 0:
                    nxt.append(s)
        ready = nxt
    if len(done) < len(dag.keys() | done.keys()):
        raise ValueError("the graph has a cycle: no step order exists")
    return done


def ancestors(dag: Dag, node: Node) -> set[Node]:
    """Every node that ``node`` depends on, directly or not."""
    seen: set[Node] = set()
    stack = list(dag[node])
    while stack:
        n = stack.pop()
        if n not in seen:
            seen.add(n)
            stack.extend(dag[n])
    return seen


def count_edges(dag: Dag, weight: Callable[[Node, Node], int] | None = None) -> int:
    """Σ over edges p → n of ``weight(p, n)`` (1 per edge by default)."""
    if weight is None:
        return sum(len(preds) for preds in dag.values())
    return sum(weight(p, n) for n, preds in dag.items() for p in preds)


# -- layered grids --------------------------------------------------------------------------------
@dataclass(frozen=True)
class GridModel:
    """Layers of units on an H×W grid; node ``(l, i, j)``, rows i and columns j from 1.

    Layer 0 holds the inputs.  Unit ``(l, i, j)`` reads layer l − 1 at ``(i + di, j + dj)``
    for each offset of ``stencils[l - 1]`` and its own layer at each ``recurrent`` offset,
    whenever that position is on the grid: an off-grid neighbour is skipped (zero padding,
    zero initial state), so it costs no connection.  ``channels`` are c_0 (input) … c_d.
    """

    height: int
    width: int
    stencils: tuple[tuple[Offset, ...], ...]
    recurrent: tuple[Offset, ...] = ()
    channels: tuple[int, ...] | None = None

    @property
    def depth(self) -> int:
        return len(self.stencils)

    @cached_property
    def dag(self) -> Dag:
        """The instantiated dependency graph."""
        h, w = self.height, self.width
        cells = list(itertools.product(range(1, h + 1), range(1, w + 1)))
        dag: Dag = {(0, i, j): () for i, j in cells}
        for layer, stencil in enumerate(self.stencils, start=1):
            # (layer read, di, dj) for every offset, the layer below first: one list per layer.
            reads = [(layer - 1, a, b) for a, b in stencil]
            reads += [(layer, a, b) for a, b in self.recurrent]
            for i, j in cells:
                dag[(layer, i, j)] = tuple(
                    (lr, i + a, j + b) for lr, a, b in reads if 0 < i + a <= h and 0 < j + b <= w
                )
        return dag

    def truncated(self, layers: int) -> GridModel:
        """The first ``layers`` layers, sharing this model's graph (no rebuild)."""
        if layers == self.depth:
            return self
        channels = None if self.channels is None else self.channels[: layers + 1]
        out = GridModel(self.height, self.width, self.stencils[:layers], self.recurrent, channels)
        # Units of the first layers depend only on those layers: filter, do not rebuild.
        out.__dict__["dag"] = {n: p for n, p in self.dag.items() if n[0] <= layers}
        return out

    @property
    def inputs(self) -> list[Node]:
        return [(0, i, j) for i in range(1, self.height + 1) for j in range(1, self.width + 1)]

    def connections(self) -> int:
        """Σ over edges of c_source · c_target: one use of a weight each (1 per edge when the
        model has no channels)."""
        if self.channels is None:
            return count_edges(self.dag)
        c = self.channels
        return count_edges(self.dag, lambda p, n: c[p[0]] * c[n[0]])

    @cached_property
    def schedule(self) -> dict[Node, int]:
        """The earliest step of every unit (inputs at 0)."""
        return schedule(self.dag, self.inputs)

    def steps(self) -> int:
        return max(self.schedule.values())

    def receptive_field(self, i: int, j: int, layer: int | None = None) -> set[tuple[int, int]]:
        """Input positions that unit (layer, i, j) depends on (the top layer by default)."""
        node = (self.depth if layer is None else layer, i, j)
        return {(a, b) for lay, a, b in ancestors(self.dag, node) if lay == 0}


def parameter_shapes(
    stencils: Sequence[Sequence[Offset]], recurrent: Sequence[Offset], channels: Sequence
) -> dict[tuple, tuple]:
    """One weight matrix per (layer, offset), shared by all positions: its (rows, columns).

    ``channels`` may be SymPy symbols: the shapes, and the sum of their sizes, are then
    symbolic.
    """
    shapes: dict[tuple, tuple] = {}
    for layer, stencil in enumerate(stencils, start=1):
        for off in stencil:
            shapes[("input", layer, off)] = (channels[layer], channels[layer - 1])
        for off in recurrent:
            shapes[("recurrent", layer, off)] = (channels[layer], channels[layer])
    return shapes


# -- closed forms from counts ---------------------------------------------------------------------
@dataclass(frozen=True)
class Axis:
    """A size that a count depends on: its symbol, equally spaced probe values, a base value.

    Probes vary one size at a time, the others at their base values; the fit uses the first
    degree + 1 probe values of every size.
    """

    symbol: sp.Symbol
    values: tuple[int, ...]
    base: int


def difference_degree(values: Sequence[int], confirm: int = 2) -> int | None:
    """Degree of the polynomial through equally spaced samples, or None if not determined.

    Degree m means that the (m+1)-th differences all vanish; at least ``confirm`` of them are
    required, so that a coincidence of few points is not taken for a polynomial.
    """
    diffs = list(values)
    for m in range(len(values)):
        nxt = [b - a for a, b in itertools.pairwise(diffs)]
        if len(nxt) < confirm:
            return None
        if all(v == 0 for v in nxt):
            return m
        diffs = nxt
    return None


def find_polynomial(count: Callable[[dict[str, int]], int], axes: Sequence[Axis]) -> sp.Expr:
    """A polynomial in the axes' symbols through ``count(sizes)``, sizes keyed by name.

    The degree in each size comes from finite differences along its probe values; the
    coefficients from interpolating, in exact rationals, on the grid of the first
    degree + 1 values of each size.  Raises ``ValueError`` when a degree cannot be
    determined from the probes.
    """
    base = {a.symbol.name: a.base for a in axes}
    nodes = []
    for ax in axes:
        samples = [count({**base, ax.symbol.name: v}) for v in ax.values]
        deg = difference_degree(samples)
        if deg is None:
            raise ValueError(f"no polynomial in {ax.symbol} fits the probes {samples}")
        nodes.append(ax.values[: deg + 1])
    names = [ax.symbol.name for ax in axes]
    values = {
        idx: Fraction(
            count(dict(zip(names, (xs[a] for xs, a in zip(nodes, idx, strict=True)), strict=True)))
        )
        for idx in itertools.product(*(range(len(xs)) for xs in nodes))
    }
    return _interpolate(values, nodes, [ax.symbol for ax in axes])


def _interpolate(values: dict, nodes: list, symbols: list[sp.Symbol]) -> sp.Expr:
    """The polynomial through ``values`` (by index on the grid of ``nodes``), exactly."""
    # Tensor-product interpolation: along each axis in turn, node values become
    # coefficients of the powers of that size.
    for axis, xs in enumerate(nodes):
        inv = _inverse_vandermonde(xs)
        new: dict[tuple[int, ...], Fraction] = {}
        for idx, v in values.items():
            for power, row in enumerate(inv):
                key = (*idx[:axis], power, *idx[axis + 1 :])
                new[key] = new.get(key, Fraction(0)) + row[idx[axis]] * v
        values = new
    return sp.Add(
        *(
            sp.Rational(v.numerator, v.denominator)
            * math.prod(x**e for x, e in zip(symbols, m, strict=True))
            for m, v in values.items()
            if v
        )
    )


def _inverse_vandermonde(xs: Sequence[int]) -> list[list[Fraction]]:
    """inv[p][a]: the weight of the value at node a in the coefficient of x^p."""
    n = len(xs)
    # Gauss-Jordan on [V | I] with V[a][p] = xs[a]^p, in exact fractions.
    rows = [
        [Fraction(x) ** p for p in range(n)] + [Fraction(a == b) for b in range(n)]
        for a, x in enumerate(xs)
    ]
    for col_ in range(n):
        pivot = next(r for r in range(col_, n) if rows[r][col_] != 0)
        rows[col_], rows[pivot] = rows[pivot], rows[col_]
        lead = rows[col_][col_]
        rows[col_] = [v / lead for v in rows[col_]]
        for r in range(n):
            if r != col_ and rows[r][col_] != 0:
                f = rows[r][col_]
                rows[r] = [v - f * w for v, w in zip(rows[r], rows[col_], strict=True)]
    return [row[n:] for row in rows]


def polynomial_function(expr: sp.Expr) -> Callable[[dict[str, int]], Fraction]:
    """``expr`` (a polynomial) as an exact evaluator of sizes keyed by symbol name."""
    symbols = sorted(expr.free_symbols, key=str)
    if not symbols:
        value = sp.Rational(expr)
        return lambda sizes: Fraction(int(value.p), int(value.q))
    terms = [
        (m, Fraction(int(v.p), int(v.q))) for m, v in sp.Poly(sp.expand(expr), *symbols).terms()
    ]
    names = [x.name for x in symbols]

    def evaluate(sizes: dict[str, int]) -> Fraction:
        xs = [sizes[n] for n in names]
        return sum(
            (v * math.prod(x**e for x, e in zip(xs, m, strict=True)) for m, v in terms), Fraction(0)
        )

    return evaluate


def mismatches(
    expr: sp.Expr, count: Callable[[dict[str, int]], int], points: Iterable[dict[str, int]]
) -> int:
    """How many of ``points`` (sizes keyed by name) ``expr`` gets wrong, in exact arithmetic."""
    f = polynomial_function(expr)
    return sum(f(sizes) != count(sizes) for sizes in points)


# -- growth ---------------------------------------------------------------------------------------
class BigO(sp.Function):
    """O(expr): printed as a bound, never evaluated."""

    def _latex(self, printer):
        return r"\mathcal{O}\left(%s\right)" % printer._print(self.args[0])


def directions(
    symbols: Sequence[sp.Symbol], slower: Sequence[tuple[sp.Symbol, sp.Symbol]] = ()
) -> list[tuple[int, ...]]:
    """Growth rates (exponents of t) in {0, 1, 2}^n, not all 0, with x no faster than y for
    each pair (x, y) in ``slower``.  These include the rays that generate the cone of
    allowed growth, so a monomial dominated along them is dominated along every direction."""
    index = {s: k for k, s in enumerate(symbols)}
    out = []
    for rates in itertools.product((0, 1, 2), repeat=len(symbols)):
        if any(rates) and all(rates[index[x]] <= rates[index[y]] for x, y in slower):
            out.append(rates)
    return out


def big_o(
    expr: sp.Expr,
    symbols: Sequence[sp.Symbol],
    slower: Sequence[tuple[sp.Symbol, sp.Symbol]] = (),
) -> sp.Expr:
    """The monomials of ``expr`` (a polynomial in ``symbols``; other symbols are constants)
    that no other monomial dominates along every allowed direction, summed with coefficient
    1 and factored."""
    monoms = sp.Poly(sp.expand(expr), *symbols).monoms()
    rays = directions(symbols, slower)

    def dominated(m: tuple[int, ...], by: tuple[int, ...]) -> bool:
        return all(_dot(r, m) <= _dot(r, by) for r in rays)

    kept: list[tuple[int, ...]] = []
    for m in sorted(monoms, reverse=True):
        if not any(dominated(m, o) for o in monoms if o != m and not dominated(o, m)):
            if not any(dominated(m, k) for k in kept):  # equal growth: keep one
                kept.append(m)
    bound = sum(math.prod(s**e for s, e in zip(symbols, m, strict=True)) for m in kept)
    return sp.factor(bound)


def same_growth(
    expr: sp.Expr,
    bound: sp.Expr,
    symbols: Sequence[sp.Symbol],
    base: dict[sp.Symbol, sp.Rational],
    slower: Sequence[tuple[sp.Symbol, sp.Symbol]] = (),
) -> list[tuple[int, ...]]:
    """The directions along which expr / bound does NOT tend to a positive finite limit.

    Along rates r each size is ``base[x] · t^r``; the limit is read from the leading terms in
    t of both polynomials (a cancellation of leading terms shows up as a lower degree).
    """
    num, den = _terms(expr, symbols, base), _terms(bound, symbols, base)
    bad = []
    for rates in directions(symbols, slower):
        (dn, cn), (dd, cd) = _leading(num, rates), _leading(den, rates)
        if dn != dd or not cn / cd > 0:
            bad.append(rates)
    return bad


def _terms(expr: sp.Expr, symbols: Sequence[sp.Symbol], base: dict) -> list:
    """(exponents, coefficient · Π base^exponent) of each monomial, in exact fractions."""
    out = []
    for m, v in sp.Poly(sp.expand(expr), *symbols).terms():
        scale = math.prod(
            Fraction(int(base[x].p), int(base[x].q)) ** e for x, e in zip(symbols, m, strict=True)
        )
        out.append((m, Fraction(int(v.p), int(v.q)) * scale))
    return out


def _leading(terms: list, rates: Sequence[int]) -> tuple[int, Fraction]:
    """Degree in t and leading coefficient of Σ coefficient · t^(rates · exponents)."""
    by_degree: dict[int, Fraction] = {}
    for m, v in terms:
        deg = _dot(rates, m)
        by_degree[deg] = by_degree.get(deg, Fraction(0)) + v
    nonzero = {deg: v for deg, v in by_degree.items() if v != 0}
    if not nonzero:
        return -1, Fraction(0)
    top = max(nonzero)
    return top, nonzero[top]


def _dot(a: Sequence[int], b: Sequence[int]) -> int:
    return sum(x * y for x, y in zip(a, b, strict=True))
