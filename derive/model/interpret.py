"""A defined cell's forward step read straight off its equations' parse trees.

This is the forward pass every check of a cell written as text runs on (``Cell.interpreted``,
read by ``derive.engine.numeric.forward``): the lark trees are walked with the registry's
numeric functions, so the reference values never pass through SymPy or through the code
generated for the derived sweep.  A slip in turning the text into SymPy therefore shows up
as a disagreement between the derived gradients and the differences of this pass.

It reads products as the vector form does (``derive.engine.vector``): a product chain with
a weight among its factors is that weight (a matrix) times the elementwise product of the
other factors; every other product is elementwise; ``w @ v`` is the matrix product.  In
the scalar form the weights are numbers and the biases zero.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import mpmath

from derive.engine.numeric import _by_name, _matvec


class Interpreter:
    """The equations ``parsed`` as one forward step of a cell (``step`` makes it).

    Parameters
    ----------
    parsed
        The parsed equations in order (``derive.model.equations.Equation``).
    inputs, states, weights, biases
        The cell's declared names, in the order ``CellSpec.build`` gives its ``Cell``.
    """

    def __init__(self, parsed: Sequence[Any], inputs: Sequence[str], states: Sequence[str],
                 weights: Sequence[str], biases: Sequence[str]) -> None:
        self.parsed = tuple(parsed)
        self.inputs, self.states = tuple(inputs), tuple(states)
        self.weights, self.biases = tuple(weights), tuple(biases)

    def bound(self, with_biases: bool, shifts: dict[str, float] | None = None) -> Reading:
        """This reading for the scalar form (``with_biases`` False) or the vector form,
        with ``shifts`` added to the argument of named variables' outermost function."""
        return Reading(self, with_biases, dict(shifts or {}))

    def step(self, with_biases: bool, backend: str, perturbed: bool,
             shifts: dict[str, float] | None = None) -> Callable:
        """``step(*inputs, *previous states, *parameters[, *deltas])`` -> every assigned
        variable, the signature of the engine's compiled steps; ``backend`` is ``numpy``
        (real or complex arrays) or ``mpmath`` (object arrays of mpf)."""
        fns = _by_name(backend)
        number = mpmath.mpf if backend == "mpmath" else float
        params = (*self.weights, *(self.biases if with_biases else ()))
        zero = {} if with_biases else dict.fromkeys(self.biases, 0)
        moves = shifts or {}
        leading = (*self.inputs, *(f"{s}[t-1]" for s in self.states), *params)

        def step(*args):
            env = dict(zero)
            env.update(zip(leading, args, strict=False))
            deltas = args[len(leading):] if perturbed else ()
            out = []
            for i, e in enumerate(self.parsed):
                walk = Walk(env, fns, number, self.weights)
                if e.target in moves:  # validated: an outermost call of the registry
                    name, arg = e.tree.children
                    value = fns[str(name)](walk.value(arg) + moves[e.target])
                else:
                    value = walk.value(e.tree)
                if deltas:
                    value = value + deltas[i]
                env[e.target] = value
                out.append(value)
            return tuple(out)

        return step


class Reading:
    """An ``Interpreter`` bound to one form of the cell: what ``Cell.interpreted`` holds.
    ``reading(backend, perturbed)`` is a forward step; ``shifted`` moves gate arguments."""

    def __init__(self, interpreter: Interpreter, with_biases: bool,
                 shifts: dict[str, float]) -> None:
        self.interpreter, self.with_biases, self.shifts = interpreter, with_biases, shifts

    def __call__(self, backend: str, perturbed: bool) -> Callable:
        return self.interpreter.step(self.with_biases, backend, perturbed, self.shifts)

    def shifted(self, moves: dict[str, float]) -> Reading:
        """The same reading with ``moves`` added to those variables' arguments."""
        return Reading(self.interpreter, self.with_biases, {**self.shifts, **moves})


class Walk:
    """One right-hand side's value, node by node: the arithmetic both grammars share
    (``derive.model.equations.ARITHMETIC``), names looked up in ``env``, functions in
    ``fns``; ``rules`` evaluates a grammar's own nodes (a map's ``grad``)."""

    def __init__(self, env: dict, fns: dict, number: Callable, weights: Sequence[str] = (),
                 rules: dict[str, Callable] | None = None) -> None:
        self.env, self.fns, self.number, self.weights = env, fns, number, set(weights)
        self.rules = rules or {}

    def value(self, t) -> Any:
        rule, kids = t.data, t.children
        if rule in self.rules:
            return self.rules[rule](self, t)
        if rule == "add":
            return self.value(kids[0]) + self.value(kids[1])
        if rule == "sub":
            return self.value(kids[0]) - self.value(kids[1])
        if rule in ("mul", "div", "neg"):
            return self._product(t)
        if rule == "matmul":
            return _matvec(self.value(kids[0]), self.value(kids[1]))
        if rule == "pow":
            return self.value(kids[0]) ** int(kids[1])
        if rule == "number":
            return self.number(str(kids[0]))
        if rule == "call":
            return self.fns[str(kids[0])](self.value(kids[1]))
        if rule == "previous":
            return self.env[f"{kids[0]}[t-1]"]
        return self.env[str(kids[0])]

    def _product(self, t) -> Any:
        """A chain of products, quotients and signs: a weight among its factors multiplies
        the elementwise product of the others as a matrix (at most one is allowed)."""
        factors: list[tuple[Any, int]] = []
        _factors(t, 1, factors)
        weight = [f for f, _ in factors if f.data == "name" and str(f.children[0]) in
                  self.weights]
        rest = 1
        for f, power in factors:
            if weight and f is weight[0]:
                continue
            v = self.value(f) if f.data != "sign" else -1
            rest = rest * v if power == 1 else rest / v
        return _matvec(self.value(weight[0]), rest) if weight else rest


class _Sign:
    """A factor -1 (a unary minus) in a product chain."""

    data = "sign"


def _factors(t, power: int, out: list) -> None:
    """The factors of a product chain rooted at ``t``, each with its power (1 or -1)."""
    if t.data == "mul":
        _factors(t.children[0], power, out)
        _factors(t.children[1], power, out)
    elif t.data == "div":
        _factors(t.children[0], power, out)
        _factors(t.children[1], -power, out)
    elif t.data == "neg":
        out.append((_Sign(), 1))
        _factors(t.children[0], power, out)
    else:
        out.append((t, power))
