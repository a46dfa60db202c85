"""The constants a moments table solves for (``solve``): the weight variance that keeps a
layer's variance, the scale that keeps a mean.

``solve = { s2 = "Var(z) = v" }`` asks for the positive value of the constant ``s2`` at
which the equation holds; each side is arithmetic in numbers, constants and the moments
``E(y)`` and ``Var(y)`` of quantities the table's ``moments`` names.  The derivation
(``derive.problems.moments.aggregate.solved``) puts the derived moments in and solves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import lark
import sympy as sp

from derive.errors import InputError
from derive.model.equations import ARITHMETIC, Arithmetic, lalr_parser, parse_tree

#: Most constants one table solves for.
MAX_GOALS = 4
_GOAL = r"""
    equation: sum "=" sum
    ?atom: NUMBER                -> number
        | NAME                   -> name
        | NAME "(" NAME ")"      -> moment
        | "(" sum ")"
""" + ARITHMETIC
_ALLOWED = "numbers, constants, E(y) and Var(y), + - * / ^ and brackets, one ="


@cache
def _parser() -> lark.Lark:
    return lalr_parser(_GOAL)


class Moment(sp.Function):
    """``Moment(kind, y)``: E[y] for kind 1, Var(y) for kind 2, until the derived formula
    is put in."""

    nargs = 2
    is_real = True

    def _latex(self, printer, exp=None) -> str:
        y = printer._print(self.args[1])
        inner = (r"E[%s]" % y if self.args[0] == 1 else r"\operatorname{Var}(%s)" % y)
        return inner if exp is None else r"%s^{%s}" % (inner, exp)


@dataclass(frozen=True)
class Goal:
    """Solve ``lhs = rhs`` for the positive value of ``constant``."""

    constant: str
    lhs: sp.Expr
    rhs: sp.Expr
    text: str


class _Side(Arithmetic):
    def __init__(self, roles: dict[str, str], moments: tuple[str, ...], where: str) -> None:
        self.roles, self.moments, self.where = roles, moments, where

    def atom(self, t) -> sp.Expr:
        tok = t.children[0]
        if t.data == "moment":
            which = {"E": 1, "Var": 2}.get(str(tok))
            y = str(t.children[1])
            if which is None:
                raise self._fail(tok, f"{tok!s}(...); allowed are E(y) and Var(y)")
            if y not in self.moments:
                raise self._fail(t.children[1], f"{y!r} is not among the moments; allowed "
                                                f"are {', '.join(self.moments)}")
            return Moment(sp.Integer(which), sp.Symbol(y, real=True))
        if self.roles.get(str(tok)) != "constant":
            constants = [n for n, r in self.roles.items() if r == "constant"]
            raise self._fail(tok, f"{str(tok)!r} is not a constant; allowed are "
                                  f"{', '.join(constants)}, numbers, E(y) and Var(y)")
        return sp.Symbol(str(tok), real=True)


def solve_table(value: Any, where: str, roles: dict[str, str], moments: tuple[str, ...],
                counts: set[str]) -> tuple[Goal, ...]:
    """The goals of a ``solve`` table: each key a constant (not one counting copies), each
    value an equation as text."""
    if not isinstance(value, Mapping) or len(value) > MAX_GOALS:
        raise InputError(f"{where}: expected a table of at most {MAX_GOALS} constants, each "
                         'an equation as text, as in { s2 = "Var(z) = v" }')
    out = []
    for name, text in value.items():
        at = f"{where}.{name}"
        if roles.get(name) != "constant" or name in counts:
            raise InputError(f"{at}: only a declared constant that counts no copies may be "
                             "solved for")
        if not isinstance(text, str) or not 0 < len(text) <= 200:
            raise InputError(f"{at}: expected an equation as text of 1 to 200 characters")
        tree = parse_tree(_parser(), text, at, _ALLOWED)
        side = _Side(roles, moments, at)
        lhs, rhs = (side.expr(c) for c in tree.children)
        if not (lhs - rhs).atoms(Moment):
            raise InputError(f"{at}: the equation names no moment; write E(y) or Var(y) of "
                             "a quantity in it")
        out.append(Goal(name, lhs, rhs, text))
    return tuple(out)
