"""Random variables as text (dropout, Gaussian dropout, DropConnect), parsed by a grammar
into a ``MomentsSpec``.

A table declares fixed ``inputs`` (real numbers: every expectation is given them), scalar
``constants``, independent ``random`` variables, each by its distribution::

    bernoulli(q)      1 with probability q, else 0
    normal(mu, var)   mean mu, variance var
    uniform(a, b)     uniform on [a, b]

whose parameters are written in constants and numbers only, then ``equations`` ``y = ...``
in order (numbers, declared names, earlier targets, ``+ - * /``, whole-number powers and
the registry's functions), and the targets whose ``moments`` (mean and variance) the key
derives.  Each such quantity must be a polynomial in the random variables (a function of
one, or a division by one, is refused where it is written): its moments are then finite
and follow from those of the variables, by linearity and independence.

Every mistake is one line naming the model, the field, the column where there is one, what
was found and what is allowed.  The parse trees stay in the spec: the checks evaluate them
apart from SymPy (``derive.model.interpret.Compiler``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import lark
import sympy as sp

from derive.engine.functions import FUNCTIONS
from derive.errors import InputError
from derive.model import moments_terms as terms_
from derive.model.equations import (
    ARITHMETIC,
    MAX_EQUATIONS,
    NAME,
    Arithmetic,
    Written,
    lalr_parser,
    parse_tree,
    unevaluated,
)
from derive.model.moments_solve import Goal, solve_table
from derive.model.naming import table_title

#: What a moments table holds (``kind`` and ``title`` are read by the set, too).
KEYS = ("kind", "title", "inputs", "constants", "random", "equations", "moments", "solve")
#: Most inputs, constants, random variables and quantities in one table: 2^8 outcomes of
#: eight Bernoulli variables are still enumerated at once.
MAX_INPUTS, MAX_CONSTANTS, MAX_RANDOM, MAX_MOMENTS = 8, 16, 8, 8
#: Names the key prints for itself (expectation, variance).
RESERVED = frozenset({"E", "Var", "sum"})
#: Each distribution: its parameters' names, in order.
DISTRIBUTIONS = {"bernoulli": ("q",), "normal": ("mu", "var"), "uniform": ("a", "b")}
ALLOWED_DISTRIBUTIONS = "bernoulli(q), normal(mu, var), uniform(a, b)"

_ATOMS = r"""
    ?atom: NUMBER           -> number
        | NAME              -> name
        | "sum" "(" sum "," sum ")" -> copies
        | NAME "(" sum ")"  -> call
        | "(" sum ")"
"""
_EQUATION = r"""
    equation: NAME "=" sum
""" + _ATOMS + ARITHMETIC
# lalr_parser starts at ``equation``: here that is the whole distribution.
_DISTRIBUTION = r"""
    equation: NAME "(" sum ("," sum)* ")"
    ?atom: NUMBER           -> number
        | NAME              -> name
        | "(" sum ")"
""" + ARITHMETIC
_ALLOWED = "names, numbers, + - * / ^, brackets and the registry's functions"


@cache
def _parser(grammar: str) -> lark.Lark:
    return lalr_parser(grammar)


def symbol(name: str) -> sp.Symbol:
    """The real symbol of a declared name or a target (every name here is a real number)."""
    return sp.Symbol(name, real=True)


@dataclass(frozen=True)
class Random:
    """One random variable: its name, its distribution's family and parameters (SymPy, in
    the constants) and their parse trees."""

    name: str
    family: str
    params: tuple[sp.Expr, ...]
    trees: tuple[Any, ...]
    text: str


#: ``target = rhs``, the random variables in it as plain real symbols.
MomentsEquation = Written


@dataclass(frozen=True)
class MomentsSpec:
    """Random variables, fixed inputs, constants, equations, and the quantities whose mean
    and variance are derived."""

    name: str
    title: str
    inputs: tuple[str, ...]
    constants: tuple[str, ...]
    random: tuple[Random, ...]
    equations: tuple[MomentsEquation, ...]
    moments: tuple[str, ...]
    #: The constants that count a sum's copies (whole numbers in the checks).
    counts: tuple[str, ...] = ()
    #: The constants solved for (``derive.model.moments_solve``).
    goals: tuple[Goal, ...] = ()

    def value(self, target: str) -> sp.Expr:
        """The quantity ``target`` in inputs, constants and random variables alone."""
        values: dict[sp.Symbol, sp.Expr] = {}
        for e in self.equations:
            values[symbol(e.target)] = e.rhs.xreplace(values)
        return values[symbol(target)]

    @property
    def calls(self) -> bool:
        """Whether an equation applies a function (its values are then not rational)."""
        return any(t.data == "call" for e in self.equations for t in e.tree.iter_subtrees())


class _Build(Arithmetic):
    """A right-hand side as SymPy, every name checked against its role; a quantity stays a
    polynomial in the random variables, in sums of their copies and in functions of one
    (``derive.model.moments_terms``)."""

    def __init__(self, roles: dict[str, str], where: str, random_ok: bool = True,
                 noisy: frozenset[str] = frozenset(), terms: terms_.Terms | None = None
                 ) -> None:
        self.roles, self.where, self.random_ok = roles, where, random_ok
        # The random variables, and the earlier quantities that depend on them.
        self.randoms = {symbol(n) for n, r in roles.items() if r == "random" or n in noisy}
        self.noisy, self.terms = noisy, terms

    def atom(self, t) -> sp.Expr:
        if t.data == "copies":
            if self.terms is None:
                raise self._fail(t.meta, "sum(...) is allowed in equations only")
            return self.terms.copies(self, t)
        tok = t.children[0]
        if t.data == "call":
            arg = self.expr(t.children[1])
            if arg.free_symbols & self.randoms:
                if self.terms is None:
                    raise self._fail(tok, f"{tok}(...) of a random variable is allowed in "
                                          "equations only")
                self.terms.check_call(self, tok, arg)
            return self._call(tok, arg)
        name = str(tok)
        role = self.roles.get(name)
        if role is None or (role in ("random", "input", "target") and not self.random_ok):
            allowed = [n for n, r in self.roles.items() if self.random_ok or r == "constant"]
            what = "is not declared" if role is None else f"is {_ARTICLE[role]}"
            listed = ", ".join(allowed) if allowed else "none declared"
            raise self._fail(tok, f"{name!r} {what}; allowed are {listed} and numbers")
        return symbol(name)

    def binary(self, rule: str, a: sp.Expr, b: sp.Expr) -> sp.Expr:
        if rule == "div" and b.free_symbols & self.randoms:
            raise InputError(f"{self.where}: a division by an expression in the random "
                             "variables; a quantity must be a polynomial in them, so that "
                             "its moments follow from theirs")
        return super().binary(rule, a, b)

    def copy(self, **change) -> _Build:
        """The same builder with ``change`` (``random_ok``, ``noisy``) for a sub-tree."""
        out = copy.copy(self)
        for k, v in change.items():
            setattr(out, k, v)
        if "noisy" in change:
            out.randoms = {symbol(n) for n, r in self.roles.items() if r == "random"}
        return out


_ARTICLE = {"random": "a random variable", "input": "an input", "target": "a quantity",
            "constant": "a constant"}


class _Shown(_Build):
    """The same right-hand side as written: nothing combined or reordered."""

    def binary(self, rule: str, a: sp.Expr, b: sp.Expr) -> sp.Expr:
        return unevaluated(rule, a, b)


def moments_spec(name: str, table: dict[str, Any], where: str) -> MomentsSpec:
    """The ``MomentsSpec`` of the table (``inputs``, ``constants``, ``random``,
    ``equations``, ``moments``; ``kind`` and ``title`` are accepted); ``where`` names the
    model in messages (``set.toml: models.dropout_text``)."""
    title = table_title(name, table, KEYS, where)
    roles: dict[str, str] = {}
    inputs = _names(table, "inputs", where, 0, MAX_INPUTS, roles, "input")
    constants = _names(table, "constants", where, 0, MAX_CONSTANTS, roles, "constant")
    randoms = _randoms(table.get("random"), f"{where}.random", roles)
    counts: set[str] = set()
    equations = _equations(table.get("equations"), f"{where}.equations", roles,
                           {r.name: r.family for r in randoms}, counts)
    moments = _moments(table.get("moments"), f"{where}.moments", roles)
    goals = solve_table(table.get("solve", {}), f"{where}.solve", roles, moments, counts)
    spec = MomentsSpec(name, title, inputs, constants, randoms, equations, moments,
                       tuple(c for c in constants if c in counts), goals)
    _check_used(spec, where)
    return spec


def _names(table: dict[str, Any], key: str, where: str, least: int, most: int,
           roles: dict[str, str], role: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(f"{where}.{key}: expected a list of names")
    if not least <= len(value) <= most:
        raise InputError(f"{where}.{key}: expected {least} to {most} names")
    for v in value:
        _declare(v, f"{where}.{key}", roles, role)
    return tuple(value)


def _declare(name: str, where: str, roles: dict[str, str], role: str) -> None:
    """Give ``name`` its one role, or say why it cannot have it."""
    if not NAME.match(name) or name in FUNCTIONS or name in RESERVED:
        raise InputError(f"{where}: {name!r} is not allowed as a name; use a letter then "
                         "letters, digits or _, at most 32, not a function's name nor "
                         f"{' or '.join(sorted(RESERVED))}")
    if name in roles:
        raise InputError(f"{where}: {name!r} is declared already, as {_ARTICLE[roles[name]]};"
                         " a name is declared once, with one role")
    roles[name] = role


def _randoms(value: Any, where: str, roles: dict[str, str]) -> tuple[Random, ...]:
    if not isinstance(value, Mapping) or not 0 < len(value) <= MAX_RANDOM:
        raise InputError(f"{where}: expected a table of 1 to {MAX_RANDOM} random variables, "
                         'each a distribution as text, as in { m = "bernoulli(1 - p)" }')
    out = []
    for name, text in value.items():
        _declare(name, where, roles, "random")
        out.append(_distribution(name, text, f"{where}.{name}", roles))
    return tuple(out)


def _distribution(name: str, text: Any, where: str, roles: dict[str, str]) -> Random:
    if not isinstance(text, str) or not 0 < len(text) <= 200:
        raise InputError(f"{where}: expected a distribution as text of 1 to 200 characters, "
                         f"one of {ALLOWED_DISTRIBUTIONS}")
    tree = parse_tree(_parser(_DISTRIBUTION), text, where, "a distribution's name, numbers, "
                      "constants, + - * / ^, brackets and commas")
    family, *args = tree.children
    wanted = DISTRIBUTIONS.get(str(family))
    if wanted is None:
        raise InputError(f"{where}: unknown distribution {str(family)!r}; allowed are "
                         f"{ALLOWED_DISTRIBUTIONS}")
    if len(args) != len(wanted):
        raise InputError(f"{where}: {family} takes {len(wanted)} parameter"
                         f"{'s' if len(wanted) > 1 else ''} ({', '.join(wanted)}), got "
                         f"{len(args)}")
    build = _Build(roles, where, random_ok=False)
    params = tuple(build.expr(a) for a in args)
    return Random(name, str(family), params, tuple(args), text)


def _equations(texts: Any, where: str, roles: dict[str, str], families: dict[str, str],
               counts: set[str]) -> tuple[MomentsEquation, ...]:
    if not isinstance(texts, list) or not 0 < len(texts) <= MAX_EQUATIONS:
        raise InputError(f"{where}: expected a list of 1 to {MAX_EQUATIONS} equations")
    out, noisy, values = [], set(), {}
    randoms = {symbol(n) for n, r in roles.items() if r == "random"}
    for i, text in enumerate(texts):
        at = f"{where}[{i}]"
        tree = parse_tree(_parser(_EQUATION), text, at, _ALLOWED)
        tok, rhs = tree.children
        # Both readings number their sums alike, so that each sum is one draw in both.
        build, shown = (cls(roles, at, noisy=frozenset(noisy),
                            terms=terms_.Terms(families, counts, 100 * i))
                        for cls in (_Build, _Shown))
        expr = build.expr(rhs)  # before the target is declared: no self-reading
        shown = shown.expr(rhs)
        target = str(tok)
        if target in roles:
            raise InputError(f"{at}: column {tok.column}: {target!r} is declared already, as "
                             f"{_ARTICLE[roles[target]]}; an equation assigns a new name once")
        _declare(target, at, roles, "target")
        values[symbol(target)] = expr.xreplace(values)
        terms_.check_independent(values[symbol(target)], randoms, at)
        if expr.free_symbols & (randoms | {symbol(n) for n in noisy}):
            noisy.add(target)
        out.append(MomentsEquation(target, expr, shown, rhs, text))
    return tuple(out)


def _moments(value: Any, where: str, roles: dict[str, str]) -> tuple[str, ...]:
    if (not isinstance(value, list) or not 0 < len(value) <= MAX_MOMENTS
            or not all(isinstance(v, str) for v in value)):
        raise InputError(f"{where}: expected a list of 1 to {MAX_MOMENTS} names the equations "
                         "assign")
    targets = [n for n, r in roles.items() if r == "target"]
    for v in value:
        if roles.get(v) != "target":
            raise InputError(f"{where}: {v!r} is not assigned by an equation; assigned are "
                             f"{', '.join(targets)}")
    if len(set(value)) != len(value):
        raise InputError(f"{where}: a name may appear only once")
    return tuple(value)


def _check_used(spec: MomentsSpec, where: str) -> None:
    """Refuse a declared name nothing reads and a quantity that reaches no moment: surely a
    slip, and a random variable no quantity reads would be checked for nothing."""
    read: set[sp.Symbol] = set()
    for e in spec.equations:
        read |= e.rhs.free_symbols
    for r in spec.random:
        read |= set().union(*(p.free_symbols for p in r.params))
    read |= {symbol(m) for m in spec.moments}
    for g in spec.goals:
        read |= (g.lhs - g.rhs).free_symbols
    for key, names in (("inputs", spec.inputs), ("constants", spec.constants),
                       ("random", [r.name for r in spec.random]),
                       ("equations", [e.target for e in spec.equations])):
        for n in names:
            if symbol(n) not in read:
                what = "is assigned" if key == "equations" else "is declared"
                raise InputError(f"{where}.{key}: {n!r} {what} but nothing reads it, nor do "
                                 "the moments name it; use it, or remove it")


#: What each result of a moments model is (``{r}``: each random variable, ``{y}``: each
#: quantity the table's ``moments`` names); derive/export.py documents them.
MOMENTS_RESULT_DOCS = {
    "mean_{r}": "E[r] of each random variable r, from its distribution.",
    "square_{r}": "E[r^2] of each random variable r, from its distribution.",
    "mean_{y}": "E[y] given the inputs, for each quantity y the table's moments names.",
    "second_{y}": "E[y^2] given the inputs.",
    "variance_{y}": "Var(y) = E[y^2] - E[y]^2 given the inputs.",
    "mean_{f}_{r}": "E[f(r)] of each function f of a random variable r a quantity reads.",
    "square_{f}_{r}": "E[f(r)^2] of each such function.",
    "solution_{c}": "The positive value of each constant c the table's solve names.",
}


def moments_problem(name: str, table: dict[str, Any], where: str) -> type:
    """The problem class of the table (``kind = "moments"``), keyed ``name``:
    ``derive.problems.moments.problem.moments_problem``."""
    from derive.problems.moments.problem import moments_problem as build  # it imports this

    return build(name, table, where)
