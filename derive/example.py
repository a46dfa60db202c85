"""A recurrent problem's worked numeric example: its given numbers, read from a set file.

Given scalar weights, an input sequence, initial states and the weights a_t of a linear
loss L = sum_t a_t v_t, ``parse_example`` checks every field (exact numbers, bounded
magnitudes and lengths) and returns an ``Example``, exact as stated, which also arranges
its numbers for the question and the key.  What the example computes and how it is
checked is ``derive.example_run``'s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mpmath
import sympy as sp

from derive.engine.cell import Cell, bar, loss_grad, param_bar, t, timed
from derive.errors import InputError
from derive.inputs import cell_keys
from derive.params import exact_number, show

#: A worked example's longest sequence.
EXAMPLE_MAX_T = 20
#: The largest magnitude of any number of a worked example.
EXAMPLE_MAX_ABS = 10


@dataclass(frozen=True)
class Example:
    """A worked example's given numbers, exact as stated (SymPy rationals).

    ``inputs`` and ``loss`` hold one number per step: each input's sequence and, for each
    variable the loss reads, the weights a_t of L = sum_t a_t v_t.
    """

    weights: dict[str, sp.Rational]
    inputs: dict[str, list[sp.Rational]]
    initial: dict[str, sp.Rational]
    loss: dict[str, list[sp.Rational]]

    @property
    def steps(self) -> int:
        return len(next(iter(self.inputs.values())))

    def question(self) -> dict[str, Any]:
        """The given numbers, exact, as a question states them."""
        given = {**self.inputs, **self.loss}
        return {
            "T": self.steps,
            "weights": [(sp.Symbol(w), v) for w, v in self.weights.items()],
            "initial": [(timed(s, -t), v) for s, v in self.initial.items()],
            "head": [timed(x) for x in self.inputs] + [loss_grad(v) for v in self.loss],
            "rows": [(k + 1, [s[k] for s in given.values()]) for k in range(self.steps)],
            "loss_on": [timed(v) for v in self.loss],
        }

    def tables(self, fwd: dict, adj: dict, grad: dict) -> dict[str, Any]:
        """The question's numbers with the computed forward values ``fwd`` and adjoints
        ``adj`` per step and the weights' gradients ``grad``, arranged as the key's tables
        (given numbers exact, computed ones as floats)."""
        steps = range(self.steps)
        return {
            **self.question(),
            "forward_head": [timed(x) for x in self.inputs] + [timed(v) for v in fwd],
            "forward_rows": [
                (k + 1, [s[k] for s in self.inputs.values()], [s[k] for s in fwd.values()])
                for k in steps
            ],
            "adjoint_head": [loss_grad(v) for v in self.loss] + [bar(v) for v in adj],
            "adjoint_rows": [
                (k + 1, [s[k] for s in self.loss.values()], [s[k] for s in adj.values()])
                for k in steps
            ],
            "grad": [(param_bar(w), v) for w, v in grad.items()],
        }

    def _convert(self, number: Callable) -> tuple[dict, dict, dict, dict]:
        def each(d: dict) -> dict:
            return {
                k: [number(v) for v in x] if isinstance(x, list) else number(x)
                for k, x in d.items()
            }

        return each(self.weights), each(self.inputs), each(self.initial), each(self.loss)

    def floats(self) -> tuple[dict, dict, dict, dict]:
        """Weights, inputs, initial states and loss weights in float64."""
        return self._convert(float)

    def mp(self) -> tuple[dict, dict, dict, dict]:
        """The same as mpmath numbers at the working precision (exact rationals divided)."""
        return self._convert(lambda v: mpmath.mpf(int(v.p)) / int(v.q))


def parse_example(cell: Cell, raw: Any, where: str) -> Example:
    """A worked example from untrusted data (a set file), every field checked.

    ``raw`` has the keys of a ``derive grad`` input for the scalar cell: ``weights`` (each
    weight by name), each input's sequence, each state's initial value as ``<state>0`` and
    ``dL_d<variable>`` for each variable the loss reads.  Numbers are exact (integers,
    decimals, fractions as text) with |v| <= EXAMPLE_MAX_ABS; sequences have 1 to
    EXAMPLE_MAX_T entries, all the same length.
    """
    inputs, states, losses = cell_keys(cell)
    _keys(raw, ["weights", *inputs, *states, *losses], where, "key")
    weights = [p.name for p in cell.weights]
    _keys(raw["weights"], weights, f"{where}.weights", "weight")
    seqs = {k: _sequence(raw[k], f"{where}.{k}") for k in (*inputs, *losses)}
    first = next(iter(seqs))
    for k, v in seqs.items():
        if len(v) != len(seqs[first]):
            raise InputError(
                f"{where}.{k}: expected {len(seqs[first])} numbers, one per step as "
                f"{first} has, got {len(v)}"
            )
    return Example(
        {k: _number(raw["weights"][k], f"{where}.weights.{k}") for k in weights},
        {k: seqs[k] for k in inputs},
        {k[:-1]: _number(raw[k], f"{where}.{k}") for k in states},
        {k[len("dL_d") :]: seqs[k] for k in losses},
    )


def _keys(table: Any, required: list[str], where: str, noun: str) -> None:
    if not isinstance(table, dict):
        raise InputError(
            f"{where}: expected a table with the {noun}s {', '.join(required)}, got {show(table)}"
        )
    for k in required:
        if k not in table:
            raise InputError(f"{where}.{k}: missing; required are {', '.join(required)}")
    for k in table:
        if k not in required:
            # A bias is a natural guess; say why it is refused.
            why = " (the worked example uses the scalar cell, without biases)"
            why = why if noun == "weight" and str(k).startswith("b_") else ""
            raise InputError(f"{where}.{k}: unknown {noun}{why}; allowed are {', '.join(required)}")


def _sequence(value: Any, where: str) -> list[sp.Rational]:
    if not isinstance(value, list) or not 1 <= len(value) <= EXAMPLE_MAX_T:
        got = f"a list of {len(value)}" if isinstance(value, list) else show(value)
        raise InputError(
            f"{where}: expected a list of 1 to {EXAMPLE_MAX_T} numbers (one per step), got {got}"
        )
    return [_number(v, f"{where}[{i}]") for i, v in enumerate(value)]


def _number(value: Any, where: str) -> sp.Rational:
    x = exact_number(value, where)
    if abs(x) > EXAMPLE_MAX_ABS:
        raise InputError(
            f"{where}: {show(value)} is out of range; allowed is |x| <= {EXAMPLE_MAX_ABS}"
        )
    return x
