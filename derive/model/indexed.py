"""Arrays written entry by entry in index notation (a convolution, a pool), parsed by a
grammar into an ``IndexedSpec``.

A table declares ``sizes`` in order, each a whole number (its value in the checks, which a
set's ``[params]`` may change) or an expression in earlier sizes that must come out a whole
number of at least 1; the ``shapes`` of its arrays, one size expression per axis (``"h < H"``
also names the index the key writes for that axis); optionally ``wrt``, the given arrays
whose gradients are derived (default: every given array); and ``equations`` in order::

    xpad[n, c, h, k] = x[n, c, h - P, k - P]
    out[n, f, i, j]  = b[f] + sum(c < C, a < HH, q < WW:
                                  xpad[n, c, S*i + a, S*j + q] * w[f, c, a, q])
    y[n, f, i, j]    = max(a < HP, q < WP: out[n, f, SP*i + a, SP*j + q])

Every array is zero outside its index range, so padding is a shifted read.  A given array
is a shaped array no equation assigns.  An equation's left side names distinct indices, one
per axis of its target; its right side is a sum of terms, each a coefficient (numbers and
sizes, ``/`` by them) times entries, optionally under ``sum(index < count, ...: ...)``.  An
index expression is affine in the indices with whole-number or size coefficients.
``max(index < count, ...: entry)`` may be a whole right side: it is then written
Σ M[free, window] · entry, with M the indicator of the window's first maximum in row-major
order, so that its adjoint routes each gradient to that maximum (a subgradient at a tie).
Sizes begin with a capital letter, arrays and indices with a small one.

Every mistake is one line naming the model, the field, the column where there is one, what
was found and what is allowed.  The parse trees stay in the spec: the checks interpret them
by loops, apart from SymPy (``derive.problems.conv_pool.indexed_loops``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from typing import Any

import lark
import sympy as sp

from derive.errors import InputError
from derive.model.equations import ARITHMETIC, lalr_parser, parse_tree, unevaluated
from derive.model.indexed_terms import Scope, TermBuilder, index_symbol
from derive.model.naming import table_title

KEYS = ("kind", "title", "sizes", "shapes", "wrt", "equations")
#: Most sizes, arrays, equations; the largest given size; the most axes of an array.
MAX_SIZES, MAX_ARRAYS, MAX_EQUATIONS, MAX_SIZE, MAX_AXES = 24, 12, 8, 64, 6
SIZE = re.compile(r"^[A-Z][A-Za-z0-9_]{0,15}$")
SMALL = re.compile(r"^[a-z][a-z0-9_]{0,15}$")
#: Names the grammar or the key uses for itself.
RESERVED = frozenset({"sum", "max", "shapes", "L", "M"})

_SIZE_GRAMMAR = r"""
    equation: sum
    ?atom: NUMBER           -> number
        | NAME              -> name
        | "(" sum ")"
""" + ARITHMETIC
_EQUATION_GRAMMAR = r"""
    equation: entry "=" sum
    entry: NAME "[" sum ("," sum)* "]"
    bound: NAME "<" sum
    ?atom: NUMBER           -> number
        | entry
        | NAME              -> name
        | "sum" "(" bound ("," bound)* ":" sum ")" -> total
        | "max" "(" bound ("," bound)* ":" sum ")" -> pool
        | "(" sum ")"
""" + ARITHMETIC
ALLOWED = ("entries x[i, j], sizes, numbers, + - * /, brackets, sum(i < N: ...) and "
           "max(i < N: ...)")


@cache
def _parser(grammar: str) -> lark.Lark:
    return lalr_parser(grammar)


def size_symbol(name: str) -> sp.Symbol:
    """The symbol of a size (a whole number, never negative)."""
    return sp.Symbol(name, integer=True, nonnegative=True)


@dataclass(frozen=True)
class Size:
    """One size: given (``value``) or an expression in earlier sizes (``tree``, ``shown``)."""

    name: str
    value: int | None
    tree: Any
    shown: sp.Expr | None
    text: str


@dataclass(frozen=True)
class Array:
    """One array: its axes, each the index the key writes for it and its count."""

    name: str
    axes: tuple[tuple[sp.Symbol, sp.Expr], ...]
    trees: tuple[Any, ...]


@dataclass(frozen=True)
class IndexedEquation:
    """``target[free] = Σ terms``; ``terms`` are (factor, limits) pairs, a pool's with its
    selection ``mask`` (``M``) as a factor; ``window`` the pool's limits (else empty)."""

    target: str
    free: tuple[tuple[sp.Symbol, sp.Expr], ...]
    terms: tuple[tuple[sp.Expr, tuple[tuple[sp.Symbol, sp.Expr], ...]], ...]
    window: tuple[tuple[sp.Symbol, sp.Expr], ...]
    mask: str | None
    reads: tuple[tuple[str, sp.Indexed, str, int], ...]  # array, entry, text, column
    tree: Any
    text: str


@dataclass(frozen=True)
class IndexedSpec:
    """Sizes, arrays, the equations in order, and the given arrays differentiated by."""

    name: str
    title: str
    sizes: tuple[Size, ...]
    arrays: dict[str, Array]
    equations: tuple[IndexedEquation, ...]
    wrt: tuple[str, ...]
    where: str

    @property
    def given(self) -> tuple[str, ...]:
        targets = {e.target for e in self.equations}
        return tuple(a for a in self.arrays if a not in targets)

    def values(self, given: dict[str, int], where: str) -> dict[str, int]:
        """Every size's value, the given ones from ``given``; ``where`` names the field a
        size that does not come out whole is reported in."""
        out: dict[str, int] = {}
        for s in self.sizes:
            if s.value is not None:
                out[s.name] = given.get(s.name, s.value)
                continue
            got = whole_value(s.tree, out)
            if got is None or got < 1:
                names = {str(t.children[0]) for t in s.tree.find_data("name")}
                at = ", ".join(f"{k} = {v}" for k, v in out.items() if k in names)
                raise InputError(f"{where}: {s.name} = {s.text} is {_shown(got, s.tree, out)} "
                                 f"at {at}; it must come out a whole number of at least 1")
            out[s.name] = got
        for a in self.arrays.values():
            for k, (_, count) in enumerate(a.axes):
                got = int(count.xreplace({size_symbol(n): v for n, v in out.items()}))
                if got < 1:
                    raise InputError(f"{where}: axis {k} of {a.name} has {got} entries at "
                                     "these sizes; every axis needs at least 1")
        return out


def evaluate_size(t, values: dict[str, int]) -> Fraction:
    """A size expression's exact value at ``values`` (from its tree, nothing eval'd)."""
    rule = t.data
    if rule == "number":
        return Fraction(str(t.children[0]))
    if rule == "name":
        return Fraction(values[str(t.children[0])])
    if rule == "neg":
        return -evaluate_size(t.children[0], values)
    if rule == "pow":
        return evaluate_size(t.children[0], values) ** int(t.children[1])
    if rule == "equation":
        return evaluate_size(t.children[0], values)
    a, b = (evaluate_size(c, values) for c in t.children)
    if rule == "div" and b == 0:
        raise ZeroDivisionError
    return {"add": a + b, "sub": a - b, "mul": a * b, "div": a / b if b else a}[rule]


def whole_value(tree, values: dict[str, int]) -> int | None:
    """The value if it is a whole number, else None (a fraction, a division by zero)."""
    try:
        v = evaluate_size(tree, values)
    except ZeroDivisionError:
        return None
    return int(v) if v.denominator == 1 else None


def _shown(got, tree, values) -> str:
    try:
        return str(evaluate_size(tree, values)) if got is None else str(got)
    except ZeroDivisionError:
        return "a division by zero"


def indexed_spec(name: str, table: dict[str, Any], where: str) -> IndexedSpec:
    """The ``IndexedSpec`` of the table (``sizes``, ``shapes``, ``wrt``, ``equations``;
    ``kind`` and ``title`` are accepted); ``where`` names the model in messages."""
    title = table_title(name, table, KEYS, where)
    sizes = _sizes(table.get("sizes"), f"{where}.sizes")
    values = {s.name: s.value for s in sizes if s.value is not None}
    shapes = _shapes(table.get("shapes"), f"{where}.shapes", [s.name for s in sizes])
    equations, arrays = _equations(table.get("equations"), f"{where}.equations", shapes,
                                   [s.name for s in sizes])
    spec = IndexedSpec(name, title, sizes, arrays, equations, (), where)
    wrt = _wrt(table.get("wrt"), f"{where}.wrt", spec.given)
    spec = IndexedSpec(name, title, sizes, arrays, equations, wrt, where)
    spec.values(values, f"{where}.sizes")
    _check_used(spec, where)
    return spec


def _sizes(value: Any, where: str) -> tuple[Size, ...]:
    if not isinstance(value, Mapping) or not 0 < len(value) <= MAX_SIZES:
        raise InputError(f"{where}: expected a table of 1 to {MAX_SIZES} sizes, each a whole "
                         'number or an expression in earlier sizes, as { N = 2, Ho = "N - 1" }')
    out, known = [], {}
    for name, v in value.items():
        at = f"{where}.{name}"
        if not SIZE.match(name) or name in RESERVED:
            raise InputError(f"{at}: {name!r} is not allowed as a size's name; use a capital "
                             "letter then letters, digits or _, at most 16, not L or M")
        if isinstance(v, int) and not isinstance(v, bool):
            if not 0 <= v <= MAX_SIZE:
                raise InputError(f"{at}: expected a whole number from 0 to {MAX_SIZE}, got {v}")
            out.append(Size(name, v, None, None, str(v)))
            known[name] = v
            continue
        if not isinstance(v, str):
            raise InputError(f"{at}: expected a whole number or an expression in earlier "
                             f"sizes as text, got {v!r}")
        tree = parse_tree(_parser(_SIZE_GRAMMAR), v, at, "sizes, numbers, + - * / and brackets")
        shown = size_expr(tree.children[0], list(known), at)
        out.append(Size(name, None, tree, shown, v))
        known[name] = 0
    return tuple(out)


def size_expr(t, known: list[str], where: str, shown: bool = True) -> sp.Expr:
    """A size expression's tree as SymPy (as written when ``shown``), every name a size
    declared earlier."""
    rule = t.data
    if rule == "number":
        return sp.Integer(str(t.children[0])) if str(t.children[0]).isdigit() else sp.Rational(
            str(t.children[0]))
    if rule == "name":
        tok = t.children[0]
        if str(tok) not in known:
            listed = ", ".join(known) or "none"
            raise InputError(f"{where}: column {tok.column}: {str(tok)!r} is not a size declared "
                             f"before this one; allowed are {listed} and numbers")
        return size_symbol(str(tok))
    if rule == "neg":
        inner = size_expr(t.children[0], known, where, shown)
        return unevaluated("mul", sp.Integer(-1), inner) if shown else -inner
    if rule == "pow":
        base = size_expr(t.children[0], known, where, shown)
        return unevaluated("pow", base, sp.Integer(int(t.children[1]))) if shown else (
            base ** int(t.children[1]))
    if rule not in ("add", "sub", "mul", "div"):
        raise InputError(f"{where}: column {t.meta.column}: only sizes, numbers, + - * / and "
                         "brackets are allowed in a size")
    a, b = (size_expr(c, known, where, shown) for c in t.children)
    if rule == "div" and b == 0:
        raise InputError(f"{where}: column {t.children[1].meta.column}: division by zero")
    if shown:
        return unevaluated(rule, a, b)
    return {"add": a + b, "sub": a - b, "mul": a * b, "div": a / b}[rule]


def _shapes(value: Any, where: str, sizes: list[str]) -> dict[str, list]:
    if not isinstance(value, Mapping) or not 0 < len(value) <= MAX_ARRAYS:
        raise InputError(f"{where}: expected a table of 1 to {MAX_ARRAYS} arrays, each a list "
                         'of size expressions, one per axis, as { x = ["N", "H + 2*P"] }')
    out = {}
    for name, axes in value.items():
        at = f"{where}.{name}"
        if not SMALL.match(name) or name in RESERVED:
            raise InputError(f"{at}: {name!r} is not allowed as an array's name; use a small "
                             "letter then small letters, digits or _, at most 16")
        if (not isinstance(axes, list) or not 0 < len(axes) <= MAX_AXES
                or not all(isinstance(a, str) for a in axes)):
            raise InputError(f"{at}: expected a list of 1 to {MAX_AXES} axes, each a size "
                             'expression as text ("N", "H + 2*P") or an index and one ("h < H")')
        out[name] = [_axis(a, f"{at}[{k}]", sizes) for k, a in enumerate(axes)]
    for name in out:
        if name.startswith("d") and name[1:] in out:
            raise InputError(f"{where}.{name}: {name!r} would read as the gradient of "
                             f"{name[1:]!r}; rename one of them")
    return out


def _axis(text: str, where: str, sizes: list[str]) -> tuple[str | None, sp.Expr, Any]:
    named, _, count = text.rpartition("<")
    index = named.strip() or None
    if index is not None and (not SMALL.match(index) or index in RESERVED):
        raise InputError(f"{where}: {index!r} is not allowed as an index's name; use a small "
                         "letter then small letters, digits or _")
    tree = parse_tree(_parser(_SIZE_GRAMMAR), count.strip() or count, where,
                      "sizes, numbers, + - * / and brackets, after an optional 'index <'")
    return index, size_expr(tree.children[0], sizes, where, shown=False), tree


def _equations(texts: Any, where: str, shapes: dict[str, list], sizes: list[str]
               ) -> tuple[tuple[IndexedEquation, ...], dict[str, Array]]:
    if not isinstance(texts, list) or not 0 < len(texts) <= MAX_EQUATIONS:
        raise InputError(f"{where}: expected a list of 1 to {MAX_EQUATIONS} equations")
    trees = [parse_tree(_parser(_EQUATION_GRAMMAR), text, f"{where}[{k}]", ALLOWED)
             for k, text in enumerate(texts)]
    targets: list[str] = []
    scope = Scope(shapes, sizes, targets, {str(t.children[0].children[0]) for t in trees})
    pools = sum(t.children[1].data == "pool" for t in trees)
    out = []
    for k, (text, tree) in enumerate(zip(texts, trees, strict=True)):
        out.append(TermBuilder(scope, f"{where}[{k}]", text, pools > 1).equation(tree))
        targets.append(out[-1].target)
    return tuple(out), _arrays(shapes, out)


def _arrays(shapes: dict[str, list], equations: list[IndexedEquation]) -> dict[str, Array]:
    """Each array with the index names its gradient is written in: as declared (``h <
    H``), else its equation's left side, else the index its first read puts there alone,
    else a letter of its own; distinct within the array."""
    lhs = {e.target: [s.name for s, _ in e.free] for e in equations}
    out = {}
    for name, axes in shapes.items():
        guess = lhs.get(name) or _from_reads(name, len(axes), equations)
        chosen: list[str] = []
        for k, (declared, _, _) in enumerate(axes):
            pick = declared or guess[k] or "u"
            while pick in chosen:
                pick += "'"
            chosen.append(pick)
        out[name] = Array(name, tuple((index_symbol(i), count) for i, (_, count, _) in
                                      zip(chosen, axes, strict=True)),
                          tuple(t for _, _, t in axes))
    return out


def _from_reads(name: str, rank: int, equations: list[IndexedEquation]) -> list[str | None]:
    for e in equations:
        for array, entry, _, _ in e.reads:
            if array == name:
                return [str(next(iter(x.free_symbols - _sizes_in(x)))) if len(
                    x.free_symbols - _sizes_in(x)) == 1 else None for x in entry.indices]
    return [None] * rank


def _sizes_in(x: sp.Expr) -> set:
    return {s for s in x.free_symbols if s.name[:1].isupper()}


def _wrt(value: Any, where: str, given: tuple[str, ...]) -> tuple[str, ...]:
    if value is None:
        return given
    if (not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value)
            or len(set(value)) != len(value)):
        raise InputError(f"{where}: expected a list of distinct given arrays; given are "
                         f"{', '.join(given)}")
    for v in value:
        if v not in given:
            raise InputError(f"{where}: {v!r} is not a given array (one no equation assigns); "
                             f"given are {', '.join(given)}")
    return tuple(value)


def _check_used(spec: IndexedSpec, where: str) -> None:
    """Refuse an array nothing reads or assigns, and a target only the last may leave
    unread: surely a slip."""
    read = {a for e in spec.equations for a, *_ in e.reads}
    targets = [e.target for e in spec.equations]
    for name in spec.arrays:
        if name not in read and name not in targets:
            raise InputError(f"{where}.shapes.{name}: declared but no equation reads or assigns "
                             "it; use it, or remove it")
    for k, t in enumerate(targets[:-1]):
        if t not in read:
            raise InputError(f"{where}.equations[{k}]: {t!r} is assigned but no later equation "
                             "reads it; only the last equation's target is the output")


#: What each result of an indexed model is (``{t}``: each equation's target, ``{a}``: each
#: array whose gradient is derived); derive/export.py documents them.
INDEXED_RESULT_DOCS = {
    "shapes": "Each array's shape at the sizes, as a list of whole numbers.",
    "{t}": "Each equation's target entry by entry as sums of products (a max-pool as its "
           "selection M of the first maximum).",
    "d{a}": "The gradient of L = sum(d{y} * y) by each given array of wrt and each "
            "intermediate array between them and y, by index substitution.",
}


def indexed_problem(name: str, table: dict[str, Any], where: str) -> type:
    """The problem class of the table (``kind = "indexed"``), keyed ``name``:
    ``derive.problems.conv_pool.indexed.indexed_problem``."""
    from derive.problems.conv_pool.indexed import indexed_problem as build  # it imports this

    return build(name, table, where)
