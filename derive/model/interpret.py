"""A defined cell's forward step read straight off its equations' parse trees.

This is the forward pass every check of a cell written as text runs on (``Cell.interpreted``,
read by ``derive.engine.numeric.forward``): the lark trees become closures (``Compiler``)
over the registry's numeric functions, so the reference values never pass through SymPy or
through the code generated for the derived sweep.  A slip in turning the text into SymPy
therefore shows up as a disagreement between the derived gradients and the differences of
this pass.

It reads products as the vector form does (``derive.engine.vector``): a product chain with
a weight among its factors is that weight (a matrix) times the elementwise product of the
other factors; every other product is elementwise; ``w @ v`` is the matrix product.  In
the scalar form the weights are numbers and the biases zero.
"""

from __future__ import annotations

import operator
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
        leading = (*self.inputs, *(f"{s}[t-1]" for s in self.states), *params)
        compile_rhs = Compiler(fns, number, self.weights)
        codes = [(e.target, _code(e, compile_rhs, shifts or {})) for e in self.parsed]

        def step(*args):
            env = dict(zero)
            env.update(zip(leading, args, strict=False))
            deltas = args[len(leading):] if perturbed else ()
            out = []
            for i, (target, code) in enumerate(codes):
                value = code(env)
                if deltas:
                    value = value + deltas[i]
                env[target] = value
                out.append(value)
            return tuple(out)

        return step


def _code(e: Any, compile_rhs: Compiler, moves: dict[str, float]) -> Callable[[dict], Any]:
    """The equation ``e``'s right-hand side as a closure over the step's values, with
    ``moves[e.target]`` added to the argument of its outermost function if given."""
    if e.target not in moves:
        return compile_rhs(e.tree)
    name, arg = e.tree.children  # validated: an outermost call of the registry
    fn, inner, move = compile_rhs.fns[str(name)], compile_rhs(arg), moves[e.target]
    return lambda env: fn(inner(env) + move)


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


class Compiler:
    """Right-hand sides turned into closures once, each then evaluated on a step's values
    (``code(env)``): the arithmetic both grammars share (``derive.model.equations.
    ARITHMETIC``), names looked up in ``env``, functions in ``fns``; ``rules`` compile a
    grammar's own nodes (a map's ``grad``), given the node and this compiler."""

    def __init__(self, fns: dict, number: Callable, weights: Sequence[str] = (),
                 rules: dict[str, Callable] | None = None) -> None:
        self.fns, self.number, self.weights = fns, number, set(weights)
        self.rules = rules or {}

    def __call__(self, t) -> Callable[[dict], Any]:
        rule, kids = t.data, t.children
        if rule in self.rules:
            return self.rules[rule](t, self)
        if rule in ("mul", "div", "neg"):
            return self._product(t)
        if rule in _BINARY:
            op, a, b = _BINARY[rule], self(kids[0]), self(kids[1])
            return lambda env: op(a(env), b(env))
        if rule == "pow":
            base, k = self(kids[0]), int(kids[1])
            return lambda env: base(env) ** k
        if rule == "call":
            fn, arg = self.fns[str(kids[0])], self(kids[1])
            return lambda env: fn(arg(env))
        if rule == "number":
            return self._number(str(kids[0]))
        key = f"{kids[0]}[t-1]" if rule == "previous" else str(kids[0])
        return lambda env: env[key]

    def _number(self, text: str) -> Callable[[dict], Any]:
        if self.number is float:
            value = float(text)
            return lambda env: value
        # An mpf is rounded to the precision at hand: make it where the value is needed.
        number = self.number
        return lambda env: number(text)

    def _product(self, t) -> Callable[[dict], Any]:
        """A chain of products, quotients and signs: a weight among its factors multiplies
        the elementwise product of the others as a matrix (at most one is allowed)."""
        factors: list[tuple[Any, int]] = []
        _factors(t, 1, factors)
        weight = next((f for f, _ in factors if f.data == "name" and str(f.children[0]) in
                       self.weights), None)
        parts = [(_minus_one if f.data == "sign" else self(f), power)
                 for f, power in factors if f is not weight]
        matrix = None if weight is None else self(weight)

        def value(env):
            rest = 1
            for part, power in parts:
                rest = rest * part(env) if power == 1 else rest / part(env)
            return rest if matrix is None else _matvec(matrix(env), rest)

        return value


_BINARY = {"add": operator.add, "sub": operator.sub, "matmul": _matvec}


def _minus_one(env: dict) -> int:
    return -1


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
