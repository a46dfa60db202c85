"""The binary adder: derived weights add, the handout's verdict, the table, the key renders."""

from __future__ import annotations

import itertools
import json
from fractions import Fraction

import pytest
from conftest import key_tex

from derive.errors import InputError
from derive.problems.binary_adder import (
    HANDOUT_WEIGHTS,
    BinaryAdder,
    addition_check,
    candidates,
    solve_unit,
)

KEYS = ["U", "W", "b_h", "V", "b_y"]

# Written by hand from S = x1 + x2 + c: h_i = [S >= i], y = S mod 2, c_out = [S >= 2].
#            x1 x2 c  h1 h2 h3 y  c_out
TABLE = [
    [0, 0, 0, 0, 0, 0, 0, 0],
    [0, 0, 1, 1, 0, 0, 1, 0],
    [0, 1, 0, 1, 0, 0, 1, 0],
    [0, 1, 1, 1, 1, 0, 0, 1],
    [1, 0, 0, 1, 0, 0, 1, 0],
    [1, 0, 1, 1, 1, 0, 0, 1],
    [1, 1, 0, 1, 1, 0, 0, 1],
    [1, 1, 1, 1, 1, 1, 1, 1],
]


#: The problem the ``problem`` fixture (tests/conftest.py) gives, derived once per session.
PROBLEM = "binary_adder"


def doubled(value) -> list:
    """2 x a result value as plain ints (every derived weight is a multiple of 1/2)."""
    if isinstance(value, list):
        return [doubled(v) for v in value]
    f = 2 * Fraction(str(value))
    assert f.denominator == 1
    return int(f)


def add_with(values: dict, a: int, b: int, n: int) -> int:
    """Run the network on a + b (n bits, LSB first, one padding step) in plain ints.

    All parameters are doubled, which leaves the sign of every pre-activation unchanged.
    """
    u, w, b_h, v, b_y = (doubled(values[k]) for k in KEYS)
    h, out = [0, 0, 0], 0
    for t in range(n + 1):
        x = [(a >> t) & 1, (b >> t) & 1]
        z = [
            sum(u[i][j] * x[j] for j in range(2)) + sum(w[i][k] * h[k] for k in range(3)) + b_h[i]
            for i in range(3)
        ]
        h = [int(zi > 0) for zi in z]
        out |= int(sum(v[i] * h[i] for i in range(3)) + b_y > 0) << t
    return out


def test_derived_weights_add_every_small_pair(problem):
    values = {k: problem.results[k].value for k in KEYS}
    for n in range(1, 6):
        for a, b in itertools.product(range(2**n), repeat=2):
            assert add_with(values, a, b, n) == a + b, (a, b, n)


def test_derived_weights_add_long_random_numbers(problem, rng):
    values = {k: problem.results[k].value for k in KEYS}
    for _ in range(200):
        a, b = (int.from_bytes(rng.bytes(12), "little") for _ in range(2))
        assert add_with(values, a, b, 96) == a + b


def test_derived_weights_are_the_smallest_design(problem):
    r = problem.results
    assert r["U"].value == [[1, 1], [1, 1], [1, 1]]
    assert r["W"].value == [[0, 1, 0], [0, 1, 0], [0, 1, 0]]
    assert r["b_h"].value == [-0.5, -1.5, -2.5]
    assert r["V"].value == [1, -1, 1]
    assert r["b_y"].value == -0.5
    json.dumps({k: v.value for k, v in r.items()}, allow_nan=False)  # plain JSON values


def test_search_is_deterministic():
    assert BinaryAdder().results["b_h"].value == BinaryAdder().results["b_h"].value
    order = candidates(2, 1)
    assert order[0] == (0, 0)
    assert [sum(map(abs, w)) for w in order] == sorted(sum(map(abs, w)) for w in order)


def test_solve_unit_finds_an_and_gate():
    rows = [((x1, x2), x1 & x2) for x1, x2 in itertools.product((0, 1), repeat=2)]
    sol = solve_unit(rows)
    assert sol.weights == (1, 1)
    assert sol.bias == Fraction(-3, 2) and sol.margin == Fraction(1, 2)


def test_solve_unit_reports_an_impossible_unit():
    xor = [((x1, x2), x1 ^ x2) for x1, x2 in itertools.product((0, 1), repeat=2)]
    with pytest.raises(ValueError, match="no integer weights"):
        solve_unit(xor)


def test_truth_table_matches_the_hand_written_table(problem):
    assert problem.results["truth_table"].value == TABLE


def test_handout_weights_add(problem):
    # Without given weights nothing is checked; the official solutions' weights, given,
    # add correctly and are the derived ones.
    assert "given_weights_ok" not in problem.results
    given = BinaryAdder(given_weights=HANDOUT_WEIGHTS)
    assert given.results["given_weights_ok"].value is True
    assert given.context()["given_equal"] is True
    values = {k: HANDOUT_WEIGHTS[k] for k in KEYS}
    values["b_h"] = [str(Fraction(v)) for v in values["b_h"]]
    values["b_y"] = str(Fraction(values["b_y"]))
    assert all(add_with(values, a, b, 4) == a + b for a in range(16) for b in range(16))


def test_broken_weight_is_caught_by_the_exhaustive_check(problem):
    good = addition_check(problem.weights, "U", "derived")
    assert good.passed and good.max_rel_error == 0
    broken = addition_check(problem.weights.replace(b_y="1/2"), "U", "broken")
    assert not broken.passed and broken.max_rel_error > 0
    # A broken carry (h2 fires at S >= 1) is caught as well.
    carry = problem.weights.replace(b_h=["-1/2", "-1/2", "-5/2"])
    assert not addition_check(carry, "U", "broken carry").passed


def test_broken_handout_gets_the_verdict_false():
    p = BinaryAdder(given_weights=HANDOUT_WEIGHTS | {"b_y": "0.5"})
    assert p.results["given_weights_ok"].value is False
    (row,) = [c for c in p.checks if c.claim == "given_weights_ok"]
    assert row.passed  # the simulation agrees: some sums are wrong
    assert "wrong sums = 0" not in row.method


def test_every_check_passes_and_covers_every_result(problem):
    failed = [(c.claim, c.method, c.max_rel_error) for c in problem.checks if not c.passed]
    assert not failed
    assert set(problem.results) <= {c.claim for c in problem.checks}
    assert all(c.tolerance == 0 for c in problem.checks)


def test_template_renders(problem):
    out = key_tex(problem)
    assert "Binary addition" in out
    assert "U = " in out and "W = " in out and "V = " in out
    assert "CSE" not in out and "Homework" not in out  # no source declared
    assert "\\begin{longtable}" in out
    assert "FAIL" not in out


def test_template_says_when_the_handout_is_wrong():
    p = BinaryAdder(given_weights=HANDOUT_WEIGHTS | {"b_y": "0.5"})
    out = key_tex(p)
    assert "do not add" in out


def test_the_cse891_example_is_added_step_by_step():
    """CSE 891 states 0101101 + 0111010 = 1100111, i.e. 45 + 58 = 103, with output bits
    1, 1, 1, 0, 0, 1, 1 (least significant first); read off the handout by hand."""
    p = BinaryAdder.from_params({"example": [45, 58]})
    assert p.results["example_sum"].value == {"bits": [1, 1, 1, 0, 0, 1, 1], "sum": 103}
    row = next(c for c in p.checks if c.claim == "example_sum")
    assert row.passed and row.max_rel_error == 0
    out = key_tex(p)
    assert "The worked example" in out and "103" in out
    assert "The worked example" not in key_tex(p, handout=True)


def test_bits_sets_the_exhaustive_range():
    p = BinaryAdder.from_params({"bits": 3})
    # Pairs of n-bit numbers for n = 1..3: 4 + 16 + 64 = 84 sums.
    assert any("84 sums" in c.sizes for c in p.checks)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"bits": 0}, r"params\.binary_adder\.bits: expected an integer from 1 to 10"),
        ({"example": [1]}, r"params\.binary_adder\.example: expected a list \[a, b\]"),
        ({"example": [3, -1]}, r"params\.binary_adder\.example\[1\]: expected a whole number"),
        ({"given_weights": {"U": []}}, r"given_weights: expected a table with exactly the keys"),
        (
            {"given_weights": HANDOUT_WEIGHTS | {"V": ["1", "x", "1"]}},
            r"params\.binary_adder\.given_weights\.V\[1\]: expected an exact number",
        ),
    ],
)
def test_bad_parameters_are_refused(given, message):
    with pytest.raises(InputError, match=message):
        BinaryAdder.from_params(given, "set.toml")


def test_a_wrong_bias_interval_is_caught(monkeypatch):
    """The search's table is a result: an interval one too wide fails its claim alone."""
    original = BinaryAdder._units_result

    def wider(self):
        result = original(self)
        result.value[0]["interval"][1] += 1
        return result

    monkeypatch.setattr(BinaryAdder, "_units_result", wider)
    failed = {c.claim for c in BinaryAdder().checks if not c.passed}
    assert failed == {"units"}


def test_a_wrong_example_step_is_caught(monkeypatch):
    """The worked example's printed states are checked against integer addition."""
    original = BinaryAdder._example_results

    def flipped(wt, a, b):
        out = original(wt, a, b)
        out["example_steps"].value[1][3] ^= 1  # h_1 at the second step
        return out

    monkeypatch.setattr(BinaryAdder, "_example_results", staticmethod(flipped))
    failed = {c.claim for c in BinaryAdder(example=[19, 23]).checks if not c.passed}
    assert failed == {"example_steps"}
