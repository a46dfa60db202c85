"""The independent route of the binary adder: every pair of n-bit numbers, in numpy.

The weights are scaled by their common denominator to integers, so every comparison with
the threshold is exact; all pairs of one length run at once.  The carry into each bit comes
from integer addition of the low bits, never from the network or the design.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from derive.problems.binary_adder.model import N_HIDDEN, Row, Weights

N_MAX = 8  # exhaustive simulation of all pairs of n-bit numbers, n = 1..N_MAX


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


@dataclass(frozen=True)
class _Ints:
    """The weights times their common denominator ``d``, as int64 arrays."""

    u: np.ndarray
    w: np.ndarray
    b_h: np.ndarray
    v: np.ndarray
    b_y: int
    d: int

    @classmethod
    def of(cls, weights: Weights) -> _Ints:
        params = [*itertools.chain(*weights.U, *weights.W), *weights.b_h, *weights.V, weights.b_y]
        d = math.lcm(*(p.denominator for p in params))

        def ints(m) -> np.ndarray:
            return np.array([[int(x * d) for x in row] for row in np.atleast_2d(m)], dtype=np.int64)

        return cls(
            ints(weights.U),
            ints(weights.W),
            ints([weights.b_h])[0],
            ints([weights.V])[0],
            int(weights.b_y * d),
            d,
        )


def simulate(weights: Weights, n_max: int = N_MAX) -> Simulation:
    """Add every pair of n-bit numbers, n = 1..n_max, with one padding step, all at once."""
    m = _Ints.of(weights)
    totals = [0] * 5  # pairs, wrong sums, state mismatches, hidden ties, output ties
    min_z = min_r = None
    for n in range(1, n_max + 1):
        counts, mz, mr = _length(m, n)
        totals = [x + y for x, y in zip(totals, counts, strict=True)]
        min_z = mz if min_z is None else min(min_z, mz)
        min_r = mr if min_r is None else min(min_r, mr)
    sums, wrong, mismatches, ties_z, ties_r = totals
    return Simulation(
        sums, wrong, mismatches, ties_z, ties_r, Fraction(min_z, m.d), Fraction(min_r, m.d)
    )


def _length(m: _Ints, n: int) -> tuple[list[int], int, int]:
    """([pairs, wrong sums, state mismatches, hidden ties, output ties], min |z|, min |r|)
    over every pair of n-bit numbers, in units of 1/d."""
    pairs = np.arange(4**n, dtype=np.int64)
    a, b = pairs >> n, pairs & ((1 << n) - 1)
    h = np.zeros((pairs.size, N_HIDDEN), dtype=np.int64)
    out = np.zeros(pairs.size, dtype=np.int64)
    mismatches = ties_z = ties_r = 0
    min_z = min_r = None
    for t in range(n + 1):  # step n is the padding step: both input bits are 0
        x = np.stack([(a >> t) & 1, (b >> t) & 1], axis=1)
        z = x @ m.u.T + h @ m.w.T + m.b_h  # d times the true pre-activation
        h = (z > 0).astype(np.int64)
        r = h @ m.v + m.b_y
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
    wrong = int((out != a + b).sum())
    return [pairs.size, wrong, mismatches, ties_z, ties_r], min_z, min_r


def minimal_count(rows: list[Row], bound: int, norm: int) -> tuple[int, int]:
    """(vectors with L1 < norm, vectors with L1 == norm) that realize the unit; numpy."""
    k = len(rows[0][0])
    cand = np.array(list(itertools.product(range(-bound, bound + 1), repeat=k)), dtype=np.int64)
    inputs = np.array([a for a, _ in rows], dtype=np.int64)
    target = np.array([t for _, t in rows], dtype=bool)
    act = cand @ inputs.T
    feasible = act[:, target].min(axis=1) > act[:, ~target].max(axis=1)
    l1 = np.abs(cand).sum(axis=1)
    return int((feasible & (l1 < norm)).sum()), int((feasible & (l1 == norm)).sum())
