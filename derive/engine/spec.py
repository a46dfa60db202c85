"""A recurrent cell as data: its names and its equations, from which ``Cell`` is built.

This is the form a course's own cell takes (and the form a set file will give): the
inputs, the carried states, the weights and biases by name, and the equations in order,
written over a namespace of symbols.  In the equations ``s.h_prev`` is state ``h`` at the
previous step, a bias is zero in the scalar form, and any other name (``s.f``) is the
variable of that name, declared by being assigned.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sympy as sp

from derive.engine.cell import Cell
from derive.errors import InputError


class Names:
    """The symbols an equation may read: ``names.x``, ``names.h_prev``, ``names.b_f``.

    ``read`` lists the names in the order the equations first read them: Python evaluates
    operands left to right, so this is the order the model's author wrote them in
    (``w_ix``, ``x``, ``w_ih``, ``h_prev``, ...), which SymPy's canonical order forgets.
    """

    def __init__(self, zero: frozenset[str] = frozenset()) -> None:
        self._zero = zero
        self.read: dict[str, None] = {}

    def __getattr__(self, name: str) -> sp.Expr:
        if name.startswith("_"):
            raise AttributeError(name)
        self.read.setdefault(name, None)
        return sp.S.Zero if name in self._zero else sp.Symbol(name)


Equations = Callable[[Names], Sequence[tuple[str, sp.Expr]]]


@dataclass(frozen=True)
class CellSpec:
    """A recurrent cell by its names and equations; ``build`` makes the engine's ``Cell``.

    ``equations(s)`` returns ``(variable, expression)`` pairs in evaluation order; every
    state must be assigned, and ``loss_on`` names the variables the loss reads.
    """

    name: str
    inputs: tuple[str, ...]
    states: tuple[str, ...]
    weights: tuple[str, ...]
    biases: tuple[str, ...]
    equations: Equations
    loss_on: tuple[str, ...]
    #: A cell written as text: the forward step read off its parse trees, which every
    #: check runs (``derive.model.interpret.Interpreter``); None for a cell in Python.
    interpreter: Any = None

    def __post_init__(self) -> None:
        if not self.states:  # backprop through time needs something carried across steps
            raise InputError(f"cell {self.name}: a recurrent cell carries at least one state; "
                             "a network without states is a feed-forward graph "
                             '(kind = "graph")')

    def build(self, biases: bool = False) -> Cell:
        """The cell, with bias vectors (the vector form) or without (the scalar form)."""
        zero = frozenset() if biases else frozenset(self.biases)
        pairs = self.equations(Names(zero))
        params: dict[sp.Symbol, str] = {sp.Symbol(w): "weight" for w in self.weights}
        if biases:
            params |= {sp.Symbol(b): "bias" for b in self.biases}
        return Cell(
            name=self.name,
            inputs=_symbols(self.inputs),
            states=_symbols(self.states),
            prev={sp.Symbol(s): sp.Symbol(f"{s}_prev") for s in self.states},
            params=params,
            assignments=tuple((sp.Symbol(u), e) for u, e in pairs),
            loss_on=_symbols(self.loss_on),
            interpreted=None if self.interpreter is None else self.interpreter.bound(biases),
        )


    def written_order(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The order the equations are written in: every name as first read (a previous
        state ``h_prev`` as its state ``h``), and the assigned variables in evaluation
        order.  Printers order terms and factors by these (``render.latex.Ordering``)."""
        names = Names()
        assigned = tuple(u for u, _ in self.equations(names))
        prev = {f"{s}_prev": s for s in self.states}
        read = tuple(dict.fromkeys(prev.get(n, n) for n in names.read))
        return read, assigned


def _symbols(names: Sequence[str]) -> tuple[sp.Symbol, ...]:
    return tuple(sp.Symbol(n) for n in names)
