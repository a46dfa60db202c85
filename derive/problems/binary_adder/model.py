"""The hard-threshold adder as data: exact weights, the design's rows, the search, the verdict.

With S(t) = x1(t) + x2(t) + c(t-1), hidden unit i must fire iff S >= i and the output iff
S is odd.  Each unit is solved on its own: the first integer weight vector (smallest L1
norm first) whose open bias interval

    -min{w·a : target 1} < b < -max{w·a : target 0}

is not empty, with the bias at the interval's midpoint.  ``wrong_transitions`` explores
the product of the network with a true adder (exact, every length).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import sympy as sp

from derive.errors import InputError
from derive.params import exact_number, show

N_HIDDEN = 3
BOUND = 2  # integer weights are searched in [-BOUND, BOUND]

#: The weights printed in the official Homework 7 solutions (question 1), exactly as written.
#: Data to be checked (``given_weights_ok``); nothing is derived from them.
HANDOUT_WEIGHTS: dict[str, Any] = {
    "U": [["1", "1"], ["1", "1"], ["1", "1"]],
    "W": [["0", "1", "0"], ["0", "1", "0"], ["0", "1", "0"]],
    "b_h": ["-0.5", "-1.5", "-2.5"],
    "V": ["1", "-1", "1"],
    "b_y": "-0.5",
}

Row = tuple[tuple[int, ...], int]  # (inputs a unit sees, target bit)


@dataclass(frozen=True)
class Weights:
    """The five parameters of the adder, as exact fractions."""

    U: tuple[tuple[Fraction, ...], ...]  # 3 x 2
    W: tuple[tuple[Fraction, ...], ...]  # 3 x 3
    b_h: tuple[Fraction, ...]  # 3
    V: tuple[Fraction, ...]  # 3
    b_y: Fraction

    @classmethod
    def parse(cls, data: Any, where: str = "given_weights") -> Weights:
        """Weights from integers, decimals or fraction strings ("-1/2"), never through floats.

        ``data`` is untrusted (a set file): keys, shapes and every entry are checked.
        """
        shapes = {"U": (3, 2), "W": (3, 3), "b_h": (3,), "V": (3,), "b_y": ()}
        if not isinstance(data, dict) or set(data) != set(shapes):
            raise InputError(f"{where}: expected a table with exactly the keys {', '.join(shapes)}")
        out = {k: _entries(data[k], shape, f"{where}.{k}") for k, shape in shapes.items()}
        return cls(**out)

    def matrices(self) -> dict[str, Any]:
        """The parameters as exact SymPy matrices (b_y a number), as a question states them."""
        return {
            "U": sp.Matrix(self.U), "W": sp.Matrix(self.W), "b_h": sp.Matrix(self.b_h),
            "V": sp.Matrix([self.V]), "b_y": sp.Rational(self.b_y),
        }

    def replace(self, **changes: Any) -> Weights:
        """A copy with some parameters changed (``b_y="1/2"``), e.g. to break it on purpose."""
        data = {k: getattr(self, k) for k in ("U", "W", "b_h", "V", "b_y")}
        return Weights.parse(data | changes)

    def step(self, h: tuple[int, ...], x: tuple[int, int]) -> tuple[tuple[int, ...], int]:
        """One time step in exact arithmetic: (h(t-1), x(t)) -> (h(t), y(t))."""
        z = [
            sum(u * xi for u, xi in zip(self.U[i], x, strict=True))
            + sum(w * hk for w, hk in zip(self.W[i], h, strict=True))
            + self.b_h[i]
            for i in range(N_HIDDEN)
        ]
        h_new = tuple(int(zi > 0) for zi in z)
        r = sum(v * hi for v, hi in zip(self.V, h_new, strict=True)) + self.b_y
        return h_new, int(r > 0)


# -- the design as rows of threshold inequalities -------------------------------------------
def _entries(value: Any, shape: tuple[int, ...], where: str) -> Any:
    """Exact entries of a scalar, vector or matrix of the given shape (nested tuples)."""
    if not shape:
        if isinstance(value, Fraction):
            return value
        if isinstance(value, float) and math.isfinite(value):
            return Fraction(value)  # a JSON value of ours: the float's exact binary value
        x = exact_number(value, where)
        return Fraction(int(x.p), int(x.q))
    if not isinstance(value, list | tuple) or len(value) != shape[0]:
        size = "x".join(map(str, shape))
        raise InputError(f"{where}: expected {size} numbers (nested lists), got {show(value)}")
    return tuple(_entries(v, shape[1:], f"{where}[{i}]") for i, v in enumerate(value))


def code(s: int) -> tuple[int, ...]:
    """The hidden state that stands for S = s: (s >= 1, s >= 2, s >= 3)."""
    return tuple(int(s >= i) for i in range(1, N_HIDDEN + 1))


def hidden_rows(unit: int) -> list[Row]:
    """Every (x1, x2, h(t-1)) hidden unit ``unit`` (1-based) can see, with its target bit."""
    rows = []
    for s_prev in range(4):
        carry = int(s_prev >= 2)
        for x1, x2 in itertools.product((0, 1), repeat=2):
            rows.append(((x1, x2, *code(s_prev)), int(x1 + x2 + carry >= unit)))
    return rows


def output_rows() -> list[Row]:
    """Every hidden code h(t) the output unit can see, with its target bit [S odd]."""
    return [(code(s), s % 2) for s in range(4)]


@dataclass(frozen=True)
class UnitSolution:
    """One threshold unit: integer weights, the open bias interval, and the bias chosen."""

    weights: tuple[int, ...]
    low: int  # bias must exceed this ...
    high: int  # ... and stay below this
    bias: Fraction

    @property
    def margin(self) -> Fraction:
        """The smallest |pre-activation| over the unit's rows."""
        return Fraction(self.high - self.low, 2)


def bias_interval(w: tuple[int, ...], rows: list[Row]) -> tuple[int, int] | None:
    """The open interval of biases that make ``w`` right on every row, or None if empty."""
    on = [sum(wi * ai for wi, ai in zip(w, a, strict=True)) for a, t in rows if t]
    off = [sum(wi * ai for wi, ai in zip(w, a, strict=True)) for a, t in rows if not t]
    if not on or not off:
        raise ValueError("a unit with a constant target needs no weights; check the design")
    low, high = -min(on), -max(off)
    return (low, high) if low < high else None


def candidates(k: int, bound: int) -> list[tuple[int, ...]]:
    """Integer vectors in [-bound, bound]^k, smallest L1 norm first (a fixed order)."""
    vecs = itertools.product(range(-bound, bound + 1), repeat=k)
    return sorted(vecs, key=lambda w: (sum(map(abs, w)), max(map(abs, w)), w))


def solve_unit(rows: list[Row], bound: int = BOUND) -> UnitSolution:
    """The first integer weight vector (in ``candidates`` order) with a feasible bias.

    Parameters
    ----------
    rows
        The unit's inputs on every row it can see, with the target bit.
    bound
        Weights are searched in [-bound, bound].

    Returns
    -------
    UnitSolution
        Weights, the open bias interval, and the bias at its midpoint.
    """
    k = len(rows[0][0])
    for w in candidates(k, bound):
        interval = bias_interval(w, rows)
        if interval is not None:
            low, high = interval
            return UnitSolution(w, low, high, Fraction(low + high, 2))
    raise ValueError(f"no integer weights in [-{bound}, {bound}] realize this unit; raise bound")


# -- exact verdict: the product of the network and a true adder ------------------------------
def wrong_transitions(weights: Weights) -> tuple[int, int]:
    """Reachable (state, carry, input) triples whose output bit is wrong, and states explored.

    Zero wrong transitions is necessary and sufficient for adding every pair of numbers of
    every length correctly (each output bit depends only on the bits read so far).
    """
    start = ((0,) * N_HIDDEN, 0)
    seen, todo, wrong = {start}, [start], 0
    while todo:
        h, carry = todo.pop()
        for x in itertools.product((0, 1), repeat=2):
            s = x[0] + x[1] + carry
            h_new, y = weights.step(h, x)
            wrong += y != s % 2
            nxt = (h_new, s // 2)
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return wrong, len(seen)


def steps(a: int, b: int) -> int:
    """Steps that feed a and b: their bits, least significant first, and one padding step."""
    return max(a.bit_length(), b.bit_length(), 1) + 1


def run(weights: Weights, a: int, b: int) -> list[tuple[int, int, tuple[int, ...], int]]:
    """The network on a and b, least significant bit first, one padding step at the end.

    Rows (x1, x2, h(t), y(t)), exact arithmetic, one per step.
    """
    h: tuple[int, ...] = (0,) * N_HIDDEN
    rows = []
    for t in range(steps(a, b)):
        x = ((a >> t) & 1, (b >> t) & 1)
        h, y = weights.step(h, x)
        rows.append((*x, h, y))
    return rows
