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
explores that product automaton (at most 8 x 2 states) exactly.  The claims simulate every
pair of n-bit numbers for n = 1..8 independently, with numpy on exact integers.

``model`` holds the network and the search, ``simulate`` the numpy route, ``claims`` the
claims; this module the problem (parameters, results, what the template formats).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from fractions import Fraction
from typing import Any, ClassVar

import sympy as sp

from derive.errors import InputError
from derive.params import Custom, Int, Kind, Param, Quote, Raw, show
from derive.problems.base import Problem, Result, json_number, json_rows, truth
from derive.problems.binary_adder import claims as bc
from derive.problems.binary_adder.claims import addition_check
from derive.problems.binary_adder.model import (
    BOUND,
    HANDOUT_WEIGHTS,
    N_HIDDEN,
    UnitSolution,
    Weights,
    candidates,
    code,
    hidden_rows,
    output_rows,
    run,
    solve_unit,
    steps,
    wrong_transitions,
)
from derive.problems.binary_adder.simulate import N_MAX
from derive.verify import Claim

__all__ = ["HANDOUT_WEIGHTS", "BinaryAdder", "addition_check", "candidates", "solve_unit"]

MAX_BITS = 10  # 4^10 pairs of 10-bit numbers: about a second of numpy
MAX_EXAMPLE_BITS = 32


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


class BinaryAdder(Problem):
    """Weights of a threshold RNN that adds binary numbers, found by an exact search."""

    CLAIM_NAMES: ClassVar[dict[str, str]] = {
        "U": "$U$", "W": "$W$", "b_h": "$b_h$", "b_y": "$b_y$", "V": "$V$",
        "units": "each unit's weight intervals", "truth_table": "the truth table",
        "truth_table_sums": "the truth table as sums $2c + y$",
        "given_weights_ok": "the stated weights add", "given_equal": "the stated weights "
        "equal the derived", "example_sum": "the example's sum",
        "example_steps": "the example step by step",
    }

    key = "binary_adder"
    title = "Binary addition with a hard-threshold RNN"
    MAIN = "W"
    RESULTS: ClassVar[dict[str, str]] = {
        "U": "Input-to-hidden weights of the threshold RNN.",
        "W": "Hidden-to-hidden weights.",
        "b_h": "Hidden biases.",
        "V": "Hidden-to-output weights.",
        "b_y": "The output bias.",
        "truth_table": (
            "Every input pair and carry, run through the weights: x1, x2, carry in, h1, h2, h3, "
            "y, carry out."
        ),
        "truth_table_sums": "x1 + x2 + carry of each row of the truth table.",
        "units": (
            "Each hidden unit: its name (text), its weights, the interval its pre-activation lies"
            " in, its bias and its margin."
        ),
        "given_weights_ok": "Whether the given weights add every pair correctly.",
        "given_equal": "Whether the given weights are the derived ones.",
        "example_sum": "The example's sum: its bits and its value; null unless `example` is given.",
        "example_steps": (
            "The example step by step: inputs, hidden units and output bit; null unless `example`"
            " is given."
        ),
    }
    #: One part: the design.  A set may also give a hint to print with the question
    #: (``[labels.binary_adder] hint = "..."``, hw7's handout gives one).
    SOURCE_RESULTS: ClassVar[dict[str, str]] = {
        "solution_weights_ok": "Whether the declared original solution's weights add every pair.",
        "solution_equal": "Whether those weights are the derived ones.",
    }
    LABELS = ("title", "design", "hint")
    WHOLE = "design"  # the whole problem: its points head it
    ORIGINAL: ClassVar[dict[str, Kind]] = {
        "notation": Quote("the original handout's names of the five parameters"),
        "solution_weights": Custom(
            lambda value, where: Weights.parse(value, where),
            "a table U, W, b_h, V, b_y: the weights the original solution gives",
        ),
    }
    ORIGINAL_DERIVES = ("solution_weights",)

    # bits only sizes the checks; given weights are printed, but a version with other
    # weights to check would be another question, so they stay fixed in a set.
    SHOWN = ("example",)
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
            None,
            "weights the question states and asks to check (checked, not trusted)",
        ),
    )

    def __init__(
        self,
        bits: int = N_MAX,
        example: list[int] | None = None,
        given_weights: dict[str, Any] | None = None,
        bound: int = BOUND,
    ) -> None:
        self.bits = bits
        self.example = None if example is None else _example(example)
        self.bound = bound
        self.given = None if given_weights is None else Weights.parse(given_weights)
        self.hidden = [solve_unit(hidden_rows(i), bound) for i in range(1, N_HIDDEN + 1)]
        self.output = solve_unit(output_rows(), bound)

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
        out = self._weight_results(wt)
        table = self.truth_table(wt)
        out["truth_table"] = Result("truth_table", sp.Matrix(table), value=table)
        # S = x1 + x2 + c of each row, the column the table prints beside the inputs.
        sums = [x1 + x2 + c for x1, x2, c, *_ in table]
        out["truth_table_sums"] = Result("truth_table_sums", sp.Matrix(sums), value=sums)
        out["units"] = self._units_result()
        for prefix, weights in self._stated().items():
            ok = wrong_transitions(weights)[0] == 0
            out[f"{prefix}_weights_ok"] = truth(f"{prefix}_weights_ok", ok)
            out[f"{prefix}_equal"] = truth(f"{prefix}_equal", weights == wt)
        if self.example is not None:
            out.update(self._example_results(wt, *self.example))
        return out

    def _stated(self) -> dict[str, Weights]:
        """Weights stated somewhere, to be checked: the question's (``given_weights``) and an
        original solution's (``[original.binary_adder] solution_weights``), by prefix."""
        out = {"given": self.given, "solution": self.original.get("solution_weights")}
        return {k: v for k, v in out.items() if v is not None}

    @staticmethod
    def _weight_results(wt: Weights) -> dict[str, Result]:
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
        return out

    def _units(self) -> list[tuple[str, UnitSolution]]:
        return [(f"h_{i + 1}", s) for i, s in enumerate(self.hidden)] + [("y", self.output)]

    def _units_result(self) -> Result:
        """Each unit's weights, open bias interval, bias and margin (the search's table)."""
        rows, value = [], []
        for name, s in self._units():
            bias, margin = sp.Rational(s.bias), sp.Rational(s.margin)
            rows.append([s.low, s.high, bias, margin])
            value.append(
                {
                    "unit": name,
                    "weights": list(s.weights),
                    "interval": [s.low, s.high],
                    "bias": json_number(bias),
                    "margin": json_number(margin),
                }
            )
        return Result("units", sp.Matrix(rows), value=value)

    @staticmethod
    def _example_results(wt: Weights, a: int, b: int) -> dict[str, Result]:
        rows = [[x1, x2, *h, y] for x1, x2, h, y in run(wt, a, b)]
        bits = [row[-1] for row in rows]
        total = sum(y << t for t, y in enumerate(bits))
        return {
            "example_sum": Result(
                "example_sum", sp.Integer(total), sp.Symbol("y"), value={"bits": bits, "sum": total}
            ),
            "example_steps": Result("example_steps", sp.Matrix(rows), value=rows),
        }

    # -- claims -------------------------------------------------------------------------------
    def claims(self) -> Iterator[Claim]:
        r = self.results
        # Check what the results say, not the solver's internals.
        wt = Weights.parse({k: r[k].value for k in bc.KEYS})
        yield from bc.weight_claims(wt, self.bits)
        units = [(f"h{i + 1}", hidden_rows(i + 1), s.weights) for i, s in enumerate(self.hidden)]
        yield from bc.minimality_claims(
            [*units, ("y", output_rows(), self.output.weights)], self.bound
        )
        rows = [hidden_rows(i) for i in range(1, N_HIDDEN + 1)] + [output_rows()]
        stated = r["units"].value
        yield from bc.unit_claims([(u["unit"], rs, u) for u, rs in zip(stated, rows, strict=True)])
        yield from bc.table_claims(wt, r["truth_table"].value)
        yield bc.sums_claim(r["truth_table"].value, r["truth_table_sums"].value)
        derived = {k: r[k].value for k in bc.KEYS}
        whose = {"given": "the question's weights", "solution": "the original solution's"}
        for prefix, weights in self._stated().items():
            yield from bc.given_claims(
                weights,
                bool(r[f"{prefix}_weights_ok"].value),
                bool(r[f"{prefix}_equal"].value),
                derived,
                self.bits,
                prefix,
                whose[prefix],
            )
        if self.example is not None:
            total = r["example_sum"].value["sum"]
            yield from bc.example_claims(*self.example, total, r["example_steps"].value)

    # -- rendering ----------------------------------------------------------------------------
    def question_data(self) -> dict[str, Any]:
        given = None if self.given is None else self.given.matrices()
        if self.example is None:
            return {"example": None, "given": given}
        a, b = self.example
        n = steps(a, b)
        return {
            "example": (a, b, a + b),
            "given": given,
            "steps": n,
            # Integer addition, not the network: the target the question states.
            "bits": [[(v >> t) & 1 for t in range(n)] for v in (a, b, a + b)],
        }

    def stated(self) -> dict[str, Any]:
        """The range the integer weights are searched in."""
        return {"bound": self.bound}

    def context(self) -> dict[str, Any]:
        r = self.results
        units = [
            (u["unit"], sp.Matrix([u["weights"]]), *row)
            for u, row in zip(r["units"].value, r["units"].expr.tolist(), strict=True)
        ]
        example = r.get("example_steps")
        return {
            **super().context(),
            **self.stated(),
            "units": units,
            "table_rows": list(
                zip(r["truth_table"].value, r["truth_table_sums"].value, strict=True)
            ),
            "given_equal": r["given_equal"].value if "given_equal" in r else None,
            "solution": None if "solution_equal" not in r else {
                **self.original["solution_weights"].matrices(),
                "ok": r["solution_weights_ok"].value, "equal": r["solution_equal"].value,
            },
            "n_max": self.bits,
            "example": self.example,
            "example_rows": None
            if example is None
            else [(x1, x2, (h1, h2, h3), y) for x1, x2, h1, h2, h3, y in example.value],
        }
