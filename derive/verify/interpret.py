"""An mpmath interpreter of a cell's assignments: the independent forward pass.

A worked example is checked against a forward computation that shares no code with the
engine's evaluation (``engine.numeric``'s lambdified sweeps, ``engine.native``'s C): each
assignment's SymPy expression is walked node by node, once, into a tree of closures
(``Add`` a sum, ``Mul`` a product, ``Pow`` a power, a number exact, a symbol a look-up,
an elementwise function its mpmath spelling in ``derive.engine.functions``) and the
closures are run step by step in mpmath, at the working precision.  Numbers may be
``mpf`` or ``mpc``: a complex perturbation gives a complex step.  A function applied
outside its real domain (log of a negative number, a fractional power of one) is an
error, not the complex value mpmath would give: a complex step would read it as a
derivative.

A *bump* adds a number to an assigned variable right after a step computes it, so the
derivative of the loss by that bump is the variable's adjoint at that step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import mpmath
import sympy as sp

from derive.engine.cell import Cell
from derive.engine.functions import REALS, Elementwise, lookup
from derive.errors import InputError

Env = dict[str, Any]
Node = Callable[[Env], Any]


class UninterpretableError(ValueError):
    """An expression holds a node the interpreter has no rule for."""


def compile_expr(expr: sp.Expr) -> Node:
    """``expr`` as a closure of an environment (symbol name -> number)."""
    if isinstance(expr, sp.Symbol):
        name = expr.name
        return lambda env: env[name]
    if isinstance(expr, sp.Rational):  # integers too: exact at any precision
        p, q = int(expr.p), int(expr.q)
        return lambda env: mpmath.mpf(p) / q
    if isinstance(expr, sp.Float):
        value = expr._mpf_  # the binary value the engine computes with, not its decimal print
        return lambda env: mpmath.mpf(value)
    if expr.is_number and not expr.args:  # pi, E, I: no number type of the interpreter
        raise UninterpretableError(
            f"the interpreter has no rule for the constant {expr}: write a cell's constants "
            "as numbers (integers, rationals or floats)"
        )
    args = [compile_expr(a) for a in expr.args]
    if isinstance(expr, sp.Add):
        return lambda env: mpmath.fsum(a(env) for a in args)
    if isinstance(expr, sp.Mul):
        return lambda env: _product(a(env) for a in args)
    if isinstance(expr, sp.Pow):
        return _power(expr, *args)
    entry = lookup(expr) if isinstance(expr, sp.Function) else None
    if entry is not None:
        return _applied(entry, expr, *args)
    raise UninterpretableError(
        f"the interpreter has no rule for {expr.func.__name__} (in {expr}); register the "
        "function, with its mpmath spelling, in derive/engine/functions.py"
    )


def _power(expr: sp.Pow, base: Node, power: Node) -> Node:
    """``base ** power``; a non-integer power of a negative base is an error (mpmath would
    give a complex number)."""
    if expr.exp.is_Integer:
        return lambda env: base(env) ** power(env)

    def node(env: Env) -> Any:
        b, p = base(env), power(env)
        if mpmath.re(b) < 0 and mpmath.re(p) != int(mpmath.re(p)):
            raise InputError(f"{expr}: a non-integer power of the negative number {_real(b)}")
        return b**p

    return node


def _applied(entry: Elementwise, expr: sp.Expr, arg: Node) -> Node:
    """``f(arg)`` by the registry's mpmath spelling; the real part of the argument must lie
    in the function's domain."""
    f, domain = entry.mpmath, entry.domain
    if domain == REALS:
        return lambda env: f(arg(env))
    lo, hi = mpmath.mpf(float(domain.inf)), mpmath.mpf(float(domain.sup))
    lo_open, hi_open = bool(domain.left_open), bool(domain.right_open)

    def node(env: Env) -> Any:
        z = arg(env)
        x = mpmath.re(z)
        if x < lo or x > hi or (lo_open and x == lo) or (hi_open and x == hi):
            raise InputError(f"{expr}: {entry.name} of {_real(x)}, outside its domain {domain}")
        return f(z)

    return node


def _real(x: Any) -> str:
    return mpmath.nstr(mpmath.re(x), 8)


def _product(values) -> Any:
    out = mpmath.mpf(1)
    for v in values:
        out = out * v
    return out


class Interpreter:
    """A cell's assignments compiled once into closures, run on mpmath numbers."""

    def __init__(self, cell: Cell) -> None:
        self.cell = cell
        self.steps = [(u.name, compile_expr(e)) for u, e in cell.assignments]
        self.prev = {p.name: s.name for s, p in cell.prev.items()}

    def run(self, weights: Mapping[str, Any], inputs: Mapping[str, list],
            initial: Mapping[str, Any], bump: Mapping[tuple[int, str], Any] | None = None,
            ) -> list[Env]:
        """Every assigned variable at steps 1..T (one dict a step).

        ``bump`` maps ``(step, variable)`` to a number added right after that step computes
        the variable.
        """
        bump = bump or {}
        if self.cell.interpreted is not None:
            return self._run_text(weights, inputs, initial, bump)
        state = dict(initial)
        rows = []
        for k in range(1, len(next(iter(inputs.values()))) + 1):
            env: Env = {**weights, **{x: seq[k - 1] for x, seq in inputs.items()}}
            env |= {p: state[s] for p, s in self.prev.items()}
            for name, node in self.steps:
                env[name] = node(env) + bump.get((k, name), 0)
            state = {s: env[s] for s in state}
            rows.append({name: env[name] for name, _ in self.steps})
        return rows

    def _run_text(self, weights, inputs, initial, bump) -> list[Env]:
        """``run`` for a cell written as text: its own reading of the text, in mpmath
        (``derive.model.interpret``), so the example is checked apart from SymPy too."""
        cell, step = self.cell, self.cell.interpreted("mpmath", True)
        state = [initial[s.name] for s in cell.prev]
        where = [cell.variables.index(s) for s in cell.prev]
        rows = []
        for k in range(1, len(next(iter(inputs.values()))) + 1):
            deltas = [bump.get((k, u.name), 0) for u in cell.variables]
            vals = step(*[inputs[x.name][k - 1] for x in cell.inputs], *state,
                        *[weights[p.name] for p in cell.params], *deltas)
            vals = [v.item() if hasattr(v, "item") else v for v in vals]  # 0-d object arrays
            state = [vals[i] for i in where]
            rows.append({u.name: v for u, v in zip(cell.variables, vals, strict=True)})
        return rows

    def loss(self, weights: Mapping[str, Any], inputs: Mapping[str, list],
             initial: Mapping[str, Any], loss: Mapping[str, list],
             bump: Mapping[tuple[int, str], Any] | None = None) -> Any:
        """L = sum_t a_t v_t over the interpreted pass (``loss`` maps v to its a_t)."""
        rows = self.run(weights, inputs, initial, bump)
        return mpmath.fsum(
            a * row[v] for v, seq in loss.items() for a, row in zip(seq, rows, strict=True)
        )
