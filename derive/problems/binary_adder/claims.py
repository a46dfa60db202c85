"""The claims of the binary adder key: exact counts of failures, tolerance 0 throughout.

The exhaustive numpy simulation (``simulate``) checks the derived weights on every pair of
n-bit numbers; the product automaton (``model.wrong_transitions``) on every length;
enumerations (``routes.failures``) check the truth table, the bias intervals, the worked
example's steps and the stated weights' comparison, each against its definition.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

from derive.problems.binary_adder.model import Row, Weights, code, wrong_transitions
from derive.problems.binary_adder.simulate import N_MAX, Simulation, minimal_count, simulate
from derive.verify import Check, Claim
from derive.verify.routes import failures

EXACT = 0.0
KEYS = ("U", "W", "b_h", "V", "b_y")


def sizes(sim: Simulation, n_max: int = N_MAX) -> str:
    """The simulation's sizes column."""
    return f"all pairs of n-bit numbers, n = 1..{n_max} ({sim.sums} sums)"


def sum_claim(sim: Simulation, key: str, label: str, n_max: int = N_MAX) -> Claim:
    """The exhaustive simulation as a claim: error = number of wrong sums."""
    return Claim.measured(
        key,
        f"simulation in exact integers: {label}, wrong sums",
        sizes(sim, n_max),
        sim.wrong_sums,
        EXACT,
    )


def addition_check(weights: Weights, claim: str, label: str, n_max: int = N_MAX) -> Check:
    """The exhaustive check of ``weights`` as one evidence row (error = wrong sums).

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
    c = sum_claim(simulate(weights, n_max), claim, label, n_max)
    return Check(c.key, c.route, c.sizes, float(c.measure()), c.tolerance)


def weight_claims(wt: Weights, bits: int) -> Iterator[Claim]:
    """The derived weights: simulation (sums, states, ties) and the product automaton."""
    sim = simulate(wt, bits)
    wrong, states = wrong_transitions(wt)
    size = sizes(sim, bits)
    yield sum_claim(sim, "U", "derived weights", bits)
    yield Claim.measured(
        "W",
        "simulation: steps whose hidden state is not the code of S (the carry is h2)",
        size,
        sim.state_mismatches,
        EXACT,
    )
    yield Claim.measured(
        "b_h",
        f"simulation: a hidden pre-activation exactly at 0 (min |z| = {sim.min_abs_z})",
        size,
        sim.hidden_ties,
        EXACT,
    )
    yield Claim.measured(
        "b_y",
        f"simulation: the output pre-activation exactly at 0 (min |r| = {sim.min_abs_r})",
        size,
        sim.output_ties,
        EXACT,
    )
    yield Claim.measured(
        "V",
        "exact rationals: product with a true adder, reachable wrong output bits",
        f"{states} reachable (h, carry) states: every length",
        wrong,
        EXACT,
    )


def minimality_claims(
    units: list[tuple[str, list[Row], tuple[int, ...]]], bound: int
) -> Iterator[Claim]:
    """No integer weights with a smaller L1 norm realize a unit (numpy enumeration)."""
    for name, rows, weights in units:
        norm = sum(map(abs, weights))
        smaller, ties = minimal_count(rows, bound, norm)
        method = f"search: weights for {name} with L1 norm < {norm} ({ties} with norm {norm})"
        key = "V" if name == "y" else "U"
        yield Claim.measured(key, method, f"[-{bound}, {bound}]", smaller, EXACT)


def _pre(w: tuple, a: tuple, b: Fraction) -> Fraction:
    return sum(Fraction(wi) * ai for wi, ai in zip(w, a, strict=True)) + b


def _clean(w: tuple, rows: list[Row], b: Fraction) -> bool:
    """Right on every row with no pre-activation exactly at the threshold."""
    return all(_pre(w, a, b) != 0 and (_pre(w, a, b) > 0) == bool(t) for a, t in rows)


def unit_claims(units: list[tuple[str, list[Row], dict[str, Any]]]) -> Iterator[Claim]:
    """Each printed bias interval is exactly the clean biases; each margin the least |z|."""
    cases = []
    for _, rows, u in units:
        w, (low, high) = (
            tuple(u["weights"]),
            (Fraction(u["interval"][0]), Fraction(u["interval"][1])),
        )
        quarter = (high - low) / 4
        cases += [(w, rows, b, False) for b in (low, high)]
        cases += [
            (w, rows, b, True) for b in (low + quarter, Fraction(str(u["bias"])), high - quarter)
        ]
    names = ", ".join(name.replace("_", "") for name, _, _ in units)  # h1, as the method says
    yield Claim(
        "units",
        "exact rationals: the interval's ends fail a row or tie, inside points are clean",
        f"{names}: both ends, midpoint, quarter points",
        EXACT,
        lambda: failures(cases, lambda c: _clean(c[0], c[1], c[2]) == c[3]),
    )
    margins = [
        (tuple(u["weights"]), rows, Fraction(str(u["bias"])), Fraction(str(u["margin"])))
        for _, rows, u in units
    ]
    yield Claim(
        "units",
        "exact rationals: the least |z| over each unit's rows, against its margin",
        f"{names}: every row",
        EXACT,
        lambda: failures(margins, lambda m: min(abs(_pre(m[0], a, m[2])) for a, _ in m[1]) == m[3]),
    )


def table_claims(wt: Weights, table: list[list[int]]) -> Iterator[Claim]:
    """The truth table against the definitions, and the network from every matching state."""

    def defined(row: list[int]) -> bool:
        x1, x2, c, *rest = row
        s = x1 + x2 + c
        return rest == [int(s >= 1), int(s >= 2), int(s >= 3), s % 2, s // 2]

    yield Claim(
        "truth_table",
        "definitions of h, y and the carry, by S",
        "8 rows",
        EXACT,
        lambda: failures(table, defined),
    )

    def network(case: tuple[list[int], int]) -> bool:
        (x1, x2, _, *rest), s_prev = case
        h, y = wt.step(code(s_prev), (x1, x2))
        return rest == [*h, y, h[1]]

    # Every previous state with the same carry gives the same row (carry is the state).
    cases = [(row, s) for row in table for s in (2 * row[2], 2 * row[2] + 1)]
    yield Claim(
        "truth_table",
        "exact rationals: network from each h(t-1) with that carry",
        "8 rows x 2 states",
        EXACT,
        lambda: failures(cases, network),
    )


def sums_claim(table: list[list[int]], sums: list[int]) -> Claim:
    """Each row's S is what the network adds: its output bit and carry, read as 2 c + y."""
    rows = list(zip(table, sums, strict=True))
    return Claim(
        "truth_table_sums",
        "the network's y and carry as the binary number 2 c + y",
        "8 rows",
        EXACT,
        lambda: failures(rows, lambda row: row[1] == 2 * row[0][7] + row[0][6]),
    )


def given_claims(
    given: Weights, verdict: bool, equal: bool, derived: dict[str, Any], bits: int,
    prefix: str = "given", whose: str = "the question's weights",
) -> Iterator[Claim]:
    """The stated weights simulated against the verdict; compared entry by entry.

    ``prefix`` names the results (``given_weights_ok``, ``given_equal``; ``solution_...``
    for an original solution's weights), ``whose`` the weights in the method column."""
    sim = simulate(given, bits)
    # If the verdict is "they add", every wrong sum contradicts it; if it is "they do
    # not", the simulation must find at least one wrong sum.
    error = sim.wrong_sums if verdict else int(sim.wrong_sums == 0)
    yield Claim.measured(
        f"{prefix}_weights_ok",
        f"simulation in exact integers: {whose}, wrong sums = {sim.wrong_sums}",
        sizes(sim, bits),
        error,
        EXACT,
        detects=not verdict,
    )
    pairs = [
        (g, d)
        for k in KEYS
        for g, d in zip(_flat(getattr(given, k)), _flat(derived[k]), strict=True)
    ]
    differ = failures(pairs, lambda p: Fraction(p[0]) == Fraction(str(p[1])))
    yield Claim.measured(
        f"{prefix}_equal",
        f"exact rationals: stated entries that differ from the derived ({differ})",
        "every stated weight and bias",
        int((differ == 0) != equal),
        EXACT,
    )


def _flat(value: Any) -> list:
    if isinstance(value, list | tuple):
        return list(itertools.chain.from_iterable(_flat(v) for v in value))
    return [value]


def example_claims(a: int, b: int, total: int, steps: list[list[int]]) -> Iterator[Claim]:
    """The worked example's sum and every step against integer addition."""
    yield Claim.measured(
        "example_sum",
        f"integers: the network's sum against a + b = {a + b}",
        f"a = {a}, b = {b}",
        abs(total - (a + b)),
        EXACT,
    )

    def step_ok(t: int) -> bool:
        x1, x2, h1, h2, h3, y = steps[t]
        low = (1 << t) - 1
        s = x1 + x2 + (((a & low) + (b & low)) >> t)  # carry in from integer addition
        return (
            [x1, x2] == [(a >> t) & 1, (b >> t) & 1]
            and [h1, h2, h3] == list(code(s))
            and y == ((a + b) >> t) & 1
        )

    yield Claim(
        "example_steps",
        "exact integers: inputs, each hidden state the code of S, each output the bit of a + b",
        f"a = {a}, b = {b}: {len(steps)} steps",
        EXACT,
        lambda: failures(range(len(steps)), step_ok),
    )
