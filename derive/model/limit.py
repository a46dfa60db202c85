"""A regime a model's author names: ``limit = { f = 0 }`` in a set file's model table.

Each key is an assigned variable of the cell that is neither a state nor an input, whose
assignment applies a saturating function of the registry (``Elementwise.saturates``: σ,
tanh) outermost, ``f = σ(z)``; each value is an end of that function's range (σ: 0 or 1,
tanh: -1 or 1), which the variable approaches as its argument goes to -oo or +oo.  In the
limit the variable's derivative factors (σ' = f(1 - f), tanh' = 1 - n^2) vanish.
"""

from __future__ import annotations

from typing import Any

import sympy as sp

from derive.engine.cell import Cell
from derive.engine.functions import FUNCTIONS, Elementwise, lookup
from derive.engine.spec import CellSpec
from derive.errors import InputError
from derive.params import show

#: Most variables a regime may name (a cell has at most a few dozen).
MAX_LIMITED = 32


def saturating(cell: Cell) -> dict[str, Elementwise]:
    """The variables a regime may name, each with the saturating function assigned to it."""
    states = set(cell.states)
    out = {}
    for u, e in cell.assignments:
        f = lookup(e)
        if u not in states and f is not None and f.saturates:
            out[u.name] = f
    return out


def ends(f: Elementwise) -> tuple[int, int]:
    """The two ends of a saturating function's range (σ: 0 and 1)."""
    return int(f.range.inf), int(f.range.sup)


def parse_limit(spec: CellSpec, value: Any, where: str) -> dict[str, int]:
    """The regime ``value`` (a set file's ``limit`` table) names for the cell ``spec``:
    variable name -> the end of its function's range it tends to.  ``where`` names the
    table in messages (``set.toml: models.mgu.limit``); any mistake is one line."""
    cell = spec.build()
    allowed = saturating(cell)
    names = ", ".join(allowed) or "none (no variable is a saturating function of its input)"
    if not isinstance(value, dict) or not 0 < len(value) <= MAX_LIMITED:
        raise InputError(f"{where}: expected a table such as {{ f = 0 }} naming 1 to "
                         f"{MAX_LIMITED} variables; allowed are {names}")
    out = {}
    for name, v in value.items():
        here = f"{where}.{name}" if isinstance(name, str) and name.isidentifier() else where
        f = allowed.get(name)
        if f is None:
            raise InputError(f"{here}: {show(name)} {_why(cell, name)}; allowed are {names}")
        low, high = ends(f)
        if isinstance(v, bool) or not isinstance(v, int) or v not in (low, high):
            raise InputError(f"{here}: expected {low} or {high} (the ends of the range of "
                             f"{f.name}, which {name} applies), got {show(v)}")
        if not _written_as_call(spec, name):
            raise InputError(f"{here}: {name} must be written as the function applied "
                             f"outermost, as in {name} = {f.name}(...), to be shifted into "
                             "its regime")
        out[name] = v
    return out


def _written_as_call(spec: CellSpec, name: str) -> bool:
    """Whether a cell written as text assigns ``name`` a function call at the root of its
    tree (``1*sigma(z)`` is sigma(z) in SymPy, but the text's own reading shifts z only in
    a call); True for a cell written in Python."""
    if spec.interpreter is None:
        return True
    return any(e.target == name and e.tree.data == "call" for e in spec.interpreter.parsed)


def _why(cell: Cell, name: Any) -> str:
    """Why a name cannot be limited, in a few words."""
    symbol = sp.Symbol(name) if isinstance(name, str) and name else None
    if symbol in cell.states:
        return "is a state; the regime names a gate or other variable computed within a step"
    if symbol in cell.inputs:
        return "is an input, which the regime does not set"
    if symbol in cell.variables:
        kinds = ", ".join(n for n, f in FUNCTIONS.items() if f.saturates)
        return f"is not a saturating function ({kinds}) applied outermost"
    return "is not a variable the cell assigns"
