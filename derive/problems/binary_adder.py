"""A hard-threshold RNN that adds two binary numbers (Homework 7 q1, CSE 891 hw3 q1).

The network has two inputs, three hidden units and one output:

    z(t) = U x(t) + W h(t-1) + b_h,   h(t) = φ(z(t)),   y(t) = φ(V h(t) + b_y),
    φ(z) = 1 if z > 0 else 0,         h(0) = 0.

CSE 891 calls the same parameters W_xh = U, W_hh = W, W_hy = V, b_h and b_y.  The numbers
arrive least significant bit first; one extra step with inputs (0, 0) emits the final carry.

**Design.**  With S(t) = x1(t) + x2(t) + c(t-1) in {0, 1, 2, 3}, the hidden units hold the
thermometer code of S: h_i(t) = [S(t) >= i].  The carry out is c(t) = [S(t) >= 2] = h2(t),
so the carry in is h2(t-1), and the output bit is y(t) = [S(t) odd].

**How the weights are found.**  Each unit is a linear threshold unit w·a + b on its own
inputs a, so each is solved on its own.  The design lists the rows a unit can ever see:
a hidden unit sees (x1, x2, h(t-1)) for the 4 input pairs and the 4 reachable states
h(t-1) in {000, 100, 110, 111} (16 rows); the output unit sees the 4 codes h(t).  For
integer weights w the unit is right on every row, with no pre-activation exactly at the
threshold, iff its bias lies in the open interval

    -min{w·a : target 1} < b < -max{w·a : target 0}.

The engine enumerates integer weight vectors in [-bound, bound]^k in a fixed order
(smallest L1 norm first, then smallest largest entry, then Python's tuple order), takes the
first whose interval is not empty, and sets b to the interval's midpoint, which maximizes
the smallest |pre-activation|.  All arithmetic is exact (``fractions.Fraction``), so the
biases come out as rationals such as -1/2.

**Verdict on given weights.**  A network of threshold units with a finite state adds
correctly for every length iff no reachable pair (network state h, true carry c), entered
from (0, 0), has an input whose output bit differs from (x1 + x2 + c) mod 2; the engine
explores that product automaton (at most 8 x 2 states) exactly.  The checks simulate every
pair of n-bit numbers for n = 1..8 independently, with numpy on exact integers.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import sympy as sp

from derive.errors import InputError
from derive.params import Int, Param, Raw, exact_number, show
from derive.problems.base import Problem, Result, json_number, json_rows
from derive.verify import Check

N_HIDDEN = 3
N_MAX = 8  # exhaustive simulation of all pairs of n-bit numbers, n = 1..N_MAX
MAX_BITS = 10  # 4^10 pairs of 10-bit numbers: about a second of numpy
MAX_EXAMPLE_BITS = 32
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


def hiddenjson_rows(unit: int) -> list[Row]:
    """Every (x1, x2, h(t-1)) hidden unit ``unit`` (1-based) can see, with its target bit."""
    rows = []
    for s_prev in range(4):
        carry = int(s_prev >= 2)
        for x1, x2 in itertools.product((0, 1), repeat=2):
            rows.append(((x1, x2, *code(s_prev)), int(x1 + x2 + carry >= unit)))
    return rows


def outputjson_rows() -> list[Row]:
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


# -- independent route: exhaustive simulation with numpy on exact integers -------------------
@dataclass(frozen=True)
class Simulation:
    """What running every pair of n-bit numbers (n = 1..n_max) through the network found."""

    sums: int  # pairs simulated
    wrong_sums: int  # output bits, read as a number, differ from a + b
    state_mismatches: int  # steps where h(t) is not the code of S(t) computed from a, b
    hidden_ties: int  # hidden pre-activations exactly 0
    output_ties: int  # output pre-activations exactly 0
    min_abs_z: Fraction  # smallest |hidden pre-activation| met
    min_abs_r: Fraction  # smallest |output pre-activation| met


def simulate(weights: Weights, n_max: int = N_MAX) -> Simulation:
    """Add every pair of n-bit numbers, n = 1..n_max, with one padding step, all at once.

    The weights are scaled by the common denominator to integers, so every comparison with
    the threshold is exact.
    """
    params = [*itertools.chain(*weights.U, *weights.W), *weights.b_h, *weights.V, weights.b_y]
    d = math.lcm(*(p.denominator for p in params))

    def ints(m: Any) -> np.ndarray:
        return np.array([[int(v * d) for v in row] for row in np.atleast_2d(m)], dtype=np.int64)

    u = ints(weights.U)
    w = ints(weights.W)
    b_h = ints([weights.b_h])[0]
    v = ints([weights.V])[0]
    b_y = int(weights.b_y * d)
    sums = wrong = mismatches = ties_z = ties_r = 0
    min_z = min_r = None
    for n in range(1, n_max + 1):
        pairs = np.arange(4**n, dtype=np.int64)
        a, b = pairs >> n, pairs & ((1 << n) - 1)
        h = np.zeros((pairs.size, N_HIDDEN), dtype=np.int64)
        out = np.zeros(pairs.size, dtype=np.int64)
        for t in range(n + 1):  # step n is the padding step: both input bits are 0
            x = np.stack([(a >> t) & 1, (b >> t) & 1], axis=1)
            z = x @ u.T + h @ w.T + b_h  # d times the true pre-activation
            h = (z > 0).astype(np.int64)
            r = h @ v + b_y
            out |= (r > 0).astype(np.int64) << t
            # The carry into bit t, from integer addition of the low t bits.
            low = (1 << t) - 1
            s = x.sum(axis=1) + (((a & low) + (b & low)) >> t)
            thermometer = np.stack([s >= i for i in range(1, N_HIDDEN + 1)], axis=1)
            mismatches += int(np.any(h != thermometer, axis=1).sum())
            ties_z += int((z == 0).sum())
            ties_r += int((r == 0).sum())
            mz, mr = int(np.abs(z).min()), int(np.abs(r).min())
            min_z = mz if min_z is None else min(min_z, mz)
            min_r = mr if min_r is None else min(min_r, mr)
        sums += pairs.size
        wrong += int((out != a + b).sum())
    return Simulation(
        sums, wrong, mismatches, ties_z, ties_r, Fraction(min_z, d), Fraction(min_r, d)
    )


def addition_check(weights: Weights, claim: str, label: str, n_max: int = N_MAX) -> Check:
    """The exhaustive check as one evidence row: error = number of wrong sums.

    Parameters
    ----------
    weights
        The network to test.
    claim
        The result key the row supports.
    label
        Whose weights these are, for the method column.
    n_max
        Every pair of n-bit numbers for n = 1..n_max is added.
    """
    return _sum_check(simulate(weights, n_max), claim, label, n_max)


def _sum_check(sim: Simulation, claim: str, label: str, n_max: int = N_MAX) -> Check:
    return Check(
        claim,
        f"numpy, exact integers: {label}, wrong sums",
        _sizes(sim, n_max),
        float(sim.wrong_sums),
        0.0,
    )


def _sizes(sim: Simulation, n_max: int = N_MAX) -> str:
    return f"all pairs of n-bit numbers, n = 1..{n_max} ({sim.sums} sums)"


def _minimal_count(rows: list[Row], bound: int, norm: int) -> tuple[int, int]:
    """(vectors with L1 < norm, vectors with L1 == norm) that realize the unit; numpy."""
    k = len(rows[0][0])
    cand = np.array(list(itertools.product(range(-bound, bound + 1), repeat=k)), dtype=np.int64)
    inputs = np.array([a for a, _ in rows], dtype=np.int64)
    target = np.array([t for _, t in rows], dtype=bool)
    act = cand @ inputs.T
    feasible = act[:, target].min(axis=1) > act[:, ~target].max(axis=1)
    l1 = np.abs(cand).sum(axis=1)
    return int((feasible & (l1 < norm)).sum()), int((feasible & (l1 == norm)).sum())


def _example(value: list) -> tuple[int, int]:
    where = "params.binary_adder.example"
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise InputError(f"{where}: expected a list [a, b] of two whole numbers, got {show(value)}")
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**MAX_EXAMPLE_BITS:
            raise InputError(
                f"{where}[{i}]: expected a whole number from 0 to 2^{MAX_EXAMPLE_BITS} - 1, "
                f"got {show(v)}"
            )
    return value[0], value[1]


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


# -- the problem ------------------------------------------------------------------------------
class BinaryAdder(Problem):
    """Weights of a threshold RNN that adds binary numbers, found by an exact search."""

    key = "binary_adder"
    title = "Binary addition with a hard-threshold RNN"

    PARAMS = (
        Param(
            "bits",
            Int(1, MAX_BITS),
            N_MAX,
            "every pair of n-bit numbers, n = 1..bits, is added in the checks",
        ),
        Param(
            "example",
            Raw(list, "a list [a, b] of two whole numbers"),
            None,
            f"a worked example: add a and b (0 <= a, b < 2^{MAX_EXAMPLE_BITS}) step by step",
        ),
        Param(
            "given_weights",
            Raw(dict, "a table U, W, b_h, V, b_y"),
            HANDOUT_WEIGHTS,
            "weights stated with the question, checked (not trusted)",
        ),
    )

    def __init__(
        self,
        bits: int = N_MAX,
        example: list[int] | None = None,
        given_weights: dict[str, Any] = HANDOUT_WEIGHTS,
        bound: int = BOUND,
    ) -> None:
        self.bits = bits
        self.example = None if example is None else _example(example)
        self.bound = bound
        self.given = Weights.parse(given_weights)
        self.hidden = [solve_unit(hiddenjson_rows(i), bound) for i in range(1, N_HIDDEN + 1)]
        self.output = solve_unit(outputjson_rows(), bound)

    @property
    def weights(self) -> Weights:
        """The derived weights."""
        return Weights(
            tuple(tuple(Fraction(c) for c in s.weights[:2]) for s in self.hidden),
            tuple(tuple(Fraction(c) for c in s.weights[2:]) for s in self.hidden),
            tuple(s.bias for s in self.hidden),
            tuple(Fraction(c) for c in self.output.weights),
            self.output.bias,
        )

    def truth_table(self, weights: Weights) -> list[list[int]]:
        """Rows [x1, x2, c_in, h1, h2, h3, y, c_out], run through ``weights``.

        The previous state is the code of S(t-1) = 2 c_in (any state with that carry will
        do; the checks try both).
        """
        table = []
        for x1, x2, c in itertools.product((0, 1), repeat=3):
            h, y = weights.step(code(2 * c), (x1, x2))
            table.append([x1, x2, c, *h, y, h[1]])
        return table

    # -- derivation ---------------------------------------------------------------------------
    def derive(self) -> dict[str, Result]:
        wt = self.weights
        mats = {
            "U": sp.Matrix(wt.U),
            "W": sp.Matrix(wt.W),
            "b_h": sp.Matrix(wt.b_h),
            "V": sp.Matrix([wt.V]),
        }
        out = {
            k: Result(
                k,
                m,
                sp.Symbol(k),
                value=[json_number(v) for v in m] if k in ("b_h", "V") else json_rows(m),
            )
            for k, m in mats.items()
        }
        out["b_y"] = Result("b_y", sp.Rational(wt.b_y), sp.Symbol("b_y"), value=json_number(wt.b_y))
        table = self.truth_table(wt)
        out["truth_table"] = Result("truth_table", sp.Matrix(table), value=table)
        ok = wrong_transitions(self.given)[0] == 0
        out["given_weights_ok"] = Result("given_weights_ok", sp.true if ok else sp.false, value=ok)
        if self.example is not None:
            bits = [y for *_, y in run(wt, *self.example)]
            total = sum(y << t for t, y in enumerate(bits))
            out["example_sum"] = Result(
                "example_sum", sp.Integer(total), sp.Symbol("y"), value={"bits": bits, "sum": total}
            )
        return out

    # -- verification -------------------------------------------------------------------------
    def verify(self) -> list[Check]:
        r = self.results
        # Check what the results say, not the solver's internals.
        wt = Weights.parse({k: r[k].value for k in ("U", "W", "b_h", "V", "b_y")})
        sim = simulate(wt, self.bits)
        wrong, states = wrong_transitions(wt)
        rows = [
            _sum_check(sim, "U", "derived weights", self.bits),
            Check(
                "W",
                "numpy: steps where h(t) is not the code of S(t) (h2 = carry)",
                _sizes(sim, self.bits),
                float(sim.state_mismatches),
                0.0,
            ),
            Check(
                "b_h",
                f"numpy: hidden z exactly at 0 (min |z| = {sim.min_abs_z})",
                _sizes(sim, self.bits),
                float(sim.hidden_ties),
                0.0,
            ),
            Check(
                "b_y",
                f"numpy: output r exactly at 0 (min |r| = {sim.min_abs_r})",
                _sizes(sim, self.bits),
                float(sim.output_ties),
                0.0,
            ),
            Check(
                "V",
                "Fractions: product with a true adder, reachable wrong output bits",
                f"{states} reachable (h, carry) states: every length",
                float(wrong),
                0.0,
            ),
        ]
        rows.extend(self._minimality())
        rows.extend(self._table_checks(wt, r["truth_table"].value))
        rows.append(self._given_check(bool(r["given_weights_ok"].value)))
        if self.example is not None:
            a, b = self.example
            got = r["example_sum"].value["sum"]
            rows.append(
                Check(
                    "example_sum",
                    f"Python integers: |network - (a + b)|, a + b = {a + b}",
                    f"a = {a}, b = {b}",
                    float(abs(got - (a + b))),
                    0.0,
                )
            )
        return rows

    def _minimality(self) -> list[Check]:
        """No integer weights with a smaller L1 norm realize a unit (numpy enumeration)."""
        units = [(f"h{i + 1}", hiddenjson_rows(i + 1), s) for i, s in enumerate(self.hidden)]
        units.append(("y", outputjson_rows(), self.output))
        out = []
        for name, rows, sol in units:
            norm = sum(map(abs, sol.weights))
            smaller, ties = _minimal_count(rows, self.bound, norm)
            claim = "V" if name == "y" else "U"
            method = f"numpy: weights for {name} with L1 norm < {norm} ({ties} with norm {norm})"
            out.append(Check(claim, method, f"[-{self.bound}, {self.bound}]", float(smaller), 0.0))
        return out

    def _table_checks(self, wt: Weights, table: list[list[int]]) -> list[Check]:
        # The definitions: h_i = [S >= i], y = [S odd], c_out = [S >= 2].
        bad = 0
        for x1, x2, c, h1, h2, h3, y, c_out in table:
            s = x1 + x2 + c
            want = [int(s >= 1), int(s >= 2), int(s >= 3), s % 2, s // 2]
            bad += sum(g != e for g, e in zip([h1, h2, h3, y, c_out], want, strict=True))
        rows = [
            Check(
                "truth_table", "definitions of h, y and the carry, by S", "8 rows", float(bad), 0.0
            )
        ]
        # Every previous state with the same carry gives the same row (carry is the state).
        diff = 0
        for x1, x2, c, *rest in table:
            for s_prev in (2 * c, 2 * c + 1):
                h, y = wt.step(code(s_prev), (x1, x2))
                diff += sum(g != e for g, e in zip(rest, [*h, y, h[1]], strict=True))
        rows.append(
            Check(
                "truth_table",
                "Fractions: network from each h(t-1) with that carry",
                "8 rows x 2 states",
                float(diff),
                0.0,
            )
        )
        return rows

    def _given_check(self, verdict: bool) -> Check:
        """The handout's weights simulated; error = sums that contradict the verdict."""
        sim = simulate(self.given, self.bits)
        # If the verdict is "they add", every wrong sum contradicts it; if it is "they do
        # not", the simulation must find at least one wrong sum.
        error = sim.wrong_sums if verdict else int(sim.wrong_sums == 0)
        return Check(
            "given_weights_ok",
            f"numpy, exact integers: handout's weights, wrong sums = {sim.wrong_sums}",
            _sizes(sim, self.bits),
            float(error),
            0.0,
        )

    def question_data(self) -> dict[str, Any]:
        if self.example is None:
            return {"example": None}
        a, b = self.example
        n = steps(a, b)
        return {
            "example": (a, b, a + b),
            "steps": n,
            # Integer addition, not the network: the target the question states.
            "bits": [[(v >> t) & 1 for t in range(n)] for v in (a, b, a + b)],
        }

    def context(self) -> dict[str, Any]:
        r = self.results
        units = [(f"h_{i + 1}", s) for i, s in enumerate(self.hidden)] + [("y", self.output)]
        return {
            **super().context(),
            "bound": self.bound,
            "units": [
                (
                    name,
                    sp.Matrix([s.weights]),
                    s.low,
                    s.high,
                    sp.Rational(s.bias),
                    sp.Rational(s.margin),
                )
                for name, s in units
            ],
            "table_rows": [(row, row[0] + row[1] + row[2]) for row in r["truth_table"].value],
            "given_equal": self.given == self.weights,
            "n_max": self.bits,
            "example": self.example,
            "example_rows": None if self.example is None else run(self.weights, *self.example),
        }
