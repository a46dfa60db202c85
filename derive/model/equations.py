"""A recurrent cell's equations as text, parsed by a grammar into the engine's ``CellSpec``.

An equation reads ``name = expression``: numbers, declared names, ``h[t-1]`` for a state's
value at the previous step, ``+ - * /``, powers ``^`` (or ``**``) with a whole-number
exponent, brackets, and the functions of the registry (``derive.engine.functions``).  The
grammar is LALR (lark builds it once and reports any conflict then); the parse tree maps to
SymPy through the names ``CellSpec`` hands its equations, so nothing is ever evaluated.

Every mistake is one line naming the model, the equation, the column, what was found and
what is allowed: an undeclared name, a variable read before it is assigned, a state never
assigned, a name assigned twice, a function outside the registry.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import lark
import sympy as sp

from derive.engine import native
from derive.engine.functions import FUNCTIONS
from derive.engine.spec import CellSpec, Names
from derive.errors import InputError
from derive.model.interpret import Interpreter, _factors

#: Longest equation, most equations, deepest bracket nesting: beyond these a model is surely
#: a mistake, and the bounds keep parsing and building cheap.
MAX_EQUATION, MAX_EQUATIONS, MAX_DEPTH, MAX_POWER = 400, 32, 16, 16
#: What a recurrent model's table holds.
KEYS = ("inputs", "states", "weights", "biases", "loss_on", "equations")
#: A name as a model may declare it.
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")

#: The arithmetic every model's equations share: sums, products, a unary minus, powers with
#: a whole-number exponent; each grammar adds its ``equation`` and its ``atom`` rules.
ARITHMETIC = r"""
    ?sum: product
        | sum "+" product   -> add
        | sum "-" product   -> sub
    ?product: unary
        | product "*" unary -> mul
        | product "/" unary -> div
        | product "@" unary -> matmul
    ?unary: power
        | "-" unary         -> neg
    ?power: atom
        | atom ("^" | "**") INT -> pow
    NAME: /[A-Za-z][A-Za-z0-9_]*/
    INT: /[0-9]+/
    NUMBER: /[0-9]+(\.[0-9]+)?/
    %ignore " "
"""

_GRAMMAR = r"""
    equation: NAME "=" sum
    ?atom: NUMBER           -> number
        | NAME              -> name
        | NAME "[" "t" "-" "1" "]" -> previous
        | NAME "(" sum ")"  -> call
        | "(" sum ")"
""" + ARITHMETIC


@cache
def _parser() -> lark.Lark:
    return lalr_parser(_GRAMMAR)


def lalr_parser(grammar: str) -> lark.Lark:
    """lark's LALR parser of ``grammar`` (start ``equation``), kept built in derive's cache
    folder (``derive.engine.native.store_signed``): building one takes about 25 ms of a
    command, loading it under 1 ms.  The name hashes the grammar and lark's version."""
    options = {"start": "equation", "parser": "lalr", "propagate_positions": True}
    tag = f"{lark.__version__}\0{sorted(options.items())}\0{grammar}".encode()
    name = f"grammar-{hashlib.sha256(tag).hexdigest()[:40]}.lark"
    stored = native.load_signed(name, MAX_PARSER_BYTES)
    if stored is not None:
        with contextlib.suppress(Exception):  # a parser another lark cannot read: build it
            return lark.Lark.load(io.BytesIO(stored))
    built = lark.Lark(grammar, **options)
    out = io.BytesIO()
    built.save(out)
    native.store_signed(name, out.getvalue())
    return built


#: The largest saved parser read back (derive's are about 9 KB).
MAX_PARSER_BYTES = 2**20


@dataclass(frozen=True)
class Equation:
    """One parsed equation: the variable it assigns and its right-hand side's tree."""

    target: str
    tree: Any
    text: str
    where: str


def parse(text: str, where: str) -> Equation:
    """``text`` parsed as ``name = expression``; ``where`` names it in messages."""
    tree = parse_tree(_parser(), text, where,
                      "names, numbers, + - * / @ ^, brackets and h[t-1]")
    return Equation(str(tree.children[0]), tree.children[1], text, where)


def parse_tree(parser: lark.Lark, text: str, where: str, allowed: str) -> lark.Tree:
    """``text`` parsed by ``parser`` (bounded in length and nesting first); ``allowed`` says
    in a message what may be written where a character is unexpected."""
    if not isinstance(text, str) or not 0 < len(text) <= MAX_EQUATION:
        raise InputError(f"{where}: expected an equation of 1 to {MAX_EQUATION} characters")
    depth = max_depth(text)
    if depth > MAX_DEPTH:
        raise InputError(f"{where}: brackets nested {depth} deep; at most {MAX_DEPTH}")
    try:
        return parser.parse(text)
    except lark.UnexpectedCharacters as exc:
        raise InputError(
            f"{where}: column {exc.column}: unexpected character {text[exc.pos_in_stream]!r}; "
            f"allowed are {allowed}"
        ) from None
    except lark.UnexpectedInput as exc:
        raise InputError(f"{where}: column {exc.column}: {_unexpected(parser, exc)}") from None


def _unexpected(parser: lark.Lark, exc: lark.UnexpectedInput) -> str:
    token = getattr(exc, "token", None)
    found = "end of the equation" if token is None or token.type == "$END" else repr(
        str(token))
    expected = sorted(getattr(exc, "expected", ()) or ())
    words = _words(parser)
    shown = ", ".join(words.get(e, e) for e in expected[:6])
    return f"unexpected {found}" + (f"; expected {shown}" if shown else "")


@cache
def _words(parser: lark.Lark) -> dict[str, str]:
    """Each terminal of the grammar as a message names it: a literal as it is written (lark
    knows it), a pattern by what it stands for, the end of input in words."""
    words = {"NAME": "a name", "NUMBER": "a number", "INT": "a whole number",
             "$END": "the end of the equation"}
    literal = {t.name: t.pattern.value for t in parser.terminals if t.pattern.type == "str"}
    return literal | words


def max_depth(text: str) -> int:
    """How deeply the brackets of ``text`` nest (before parsing, so a deep text is refused
    cheaply and never reaches a recursive walk)."""
    depth = deepest = 0
    for ch in text:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        deepest = max(deepest, depth)
    return deepest


@dataclass(frozen=True)
class Declared:
    """A cell's declared names by role."""

    inputs: tuple[str, ...]
    states: tuple[str, ...]
    weights: tuple[str, ...]
    biases: tuple[str, ...]

    @property
    def leaves(self) -> set[str]:
        return {*self.inputs, *self.weights, *self.biases}


@dataclass(frozen=True)
class Written:
    """One equation of a model given as text: the quantity it assigns, its right-hand side
    in SymPy, the same as written (unevaluated, for display), its parse tree and text."""

    target: str
    rhs: sp.Expr
    shown: sp.Expr
    tree: Any
    text: str


def unevaluated(rule: str, a: sp.Expr, b: sp.Expr) -> sp.Expr:
    """``a`` and ``b`` combined by ``rule`` as written: nothing combined or reordered (the
    form a question shows)."""
    if rule == "add":
        return sp.Add(a, b, evaluate=False)
    if rule == "sub":
        return sp.Add(a, sp.Mul(-1, b, evaluate=False), evaluate=False)
    if rule == "mul":
        return sp.Mul(a, b, evaluate=False)
    if rule == "div":
        return sp.Mul(a, sp.Pow(b, -1, evaluate=False), evaluate=False)
    return sp.Pow(a, b, evaluate=False)


class Arithmetic:
    """A right-hand side's tree as SymPy: the arithmetic shared by every grammar here; a
    subclass reads the grammar's own atoms (``atom``) and says where it is (``where``)."""

    where: str

    def expr(self, t) -> sp.Expr:
        rule = t.data
        if rule == "matmul":
            return self.matmul(t)
        if rule in ("add", "sub", "mul", "div"):
            a, b = (self.expr(c) for c in t.children)
            if rule == "div" and b.is_zero:
                raise self._fail(t.children[1].meta, "division by zero")
            return self.binary(rule, a, b)
        if rule == "neg":
            return self.binary("mul", sp.Integer(-1), self.expr(t.children[0]))
        if rule == "pow":  # bounded, so no model builds a huge number
            n = int(t.children[1])
            if n > MAX_POWER:
                raise self._fail(t.children[1], f"power {n}; at most {MAX_POWER}")
            return self.binary("pow", self.expr(t.children[0]), sp.Integer(n))
        if rule == "number":
            return sp.Rational(str(t.children[0]))
        return self.atom(t)

    def binary(self, rule: str, a: sp.Expr, b: sp.Expr) -> sp.Expr:
        """``a`` and ``b`` combined by ``rule`` (add, sub, mul, div, pow)."""
        return {"add": a + b, "sub": a - b, "mul": a * b, "div": a / b, "pow": a**b}[rule]

    def atom(self, t) -> sp.Expr:
        raise NotImplementedError

    def matmul(self, t) -> sp.Expr:
        """``a @ b``: a grammar whose models give it a meaning overrides this."""
        raise self._fail(t.meta, "'@' has no meaning here: vectors multiply entry by entry "
                                 "and a constant scales them; write *")

    def _call(self, tok, arg: sp.Expr) -> sp.Expr:
        entry = FUNCTIONS.get(str(tok))
        if entry is None:
            raise self._fail(tok, f"unknown function {str(tok)!r}; allowed are "
                                  f"{', '.join(FUNCTIONS)}")
        return entry.sympy(arg)

    def _fail(self, tok, why: str) -> InputError:
        return InputError(f"{self.where}: column {tok.column}: {why}")


class _Build(Arithmetic):
    """A cell's right-hand side as SymPy, reading names through the engine's ``Names``."""

    def __init__(self, s: Names, known: set[str], later: set[str], declared: Declared,
                 where: str) -> None:
        self.s, self.known, self.later, self.declared = s, known, later, declared
        self.where = where

    def matmul(self, t) -> sp.Expr:
        # The vector form's reading of a weight's product, made explicit.
        left = t.children[0]
        if not (left.data == "name" and str(left.children[0]) in self.declared.weights):
            raise self._fail(t.meta, "'@' takes one declared weight on its left (a "
                             "matrix times a vector), as in w_fx @ x")
        return self.expr(left) * self.expr(t.children[1])

    def atom(self, t) -> sp.Expr:
        if t.data == "previous":
            return self._previous(t.children[0])
        if t.data == "call":
            return self._call(t.children[0], self.expr(t.children[1]))
        return self._name(t.children[0])

    def _name(self, tok) -> sp.Expr:
        name = str(tok)
        if name in self.declared.states and name not in self.known:
            raise self._fail(tok, f"the state {name!r} is read before it is assigned at this "
                                  f"step; its previous value is {name}[t-1]")
        if name in self.later:
            raise self._fail(tok, f"{name!r} is read before the equation that assigns it; "
                                  "order the equations so that each uses earlier ones")
        if name not in self.known and name not in self.declared.leaves:
            raise self._fail(tok, f"{name!r} is not declared; allowed are "
                                  f"{', '.join(sorted(self.declared.leaves | self.known))}")
        return getattr(self.s, name)

    def _previous(self, tok) -> sp.Expr:
        name = str(tok)
        if name not in self.declared.states:
            raise self._fail(tok, f"{name}[t-1]: only a state has a previous value; states "
                                  f"are {', '.join(self.declared.states)}")
        return getattr(self.s, f"{name}_prev")


def cell_spec(name: str, table: dict[str, Any], where: str) -> CellSpec:
    """The ``CellSpec`` of the recurrent cell ``table`` declares (its ``inputs``,
    ``states``, ``weights``, ``biases``, ``loss_on`` and ``equations``); ``where`` names the
    model in messages (``set.toml: models.mgu``)."""
    unknown = sorted(set(table) - set(KEYS))
    if unknown:
        raise InputError(f"{where}.{unknown[0]}: unknown key; allowed are {', '.join(KEYS)}")
    declared = Declared(*(_names(table, key, where) for key in
                          ("inputs", "states", "weights", "biases")))
    roles = [*declared.inputs, *declared.states, *declared.weights, *declared.biases]
    twice = sorted({n for n in roles if roles.count(n) > 1})
    if twice:
        raise InputError(f"{where}: {twice[0]!r} is declared in two roles; a name has one")
    texts = table.get("equations")
    if not isinstance(texts, list) or not 0 < len(texts) <= MAX_EQUATIONS:
        raise InputError(f"{where}.equations: expected a list of 1 to {MAX_EQUATIONS} equations")
    parsed = [parse(t, f"{where}.equations[{i}]") for i, t in enumerate(texts)]
    _check_targets(parsed, declared, where)
    _check_cycles(parsed, declared.states)
    loss_on = _names(table, "loss_on", where)
    assigned = {e.target for e in parsed}
    for v in loss_on:
        if v not in assigned:
            raise InputError(f"{where}.loss_on: {v!r} is not assigned; assigned are "
                             f"{', '.join(sorted(assigned))}")
    equations = _equations(parsed, declared)
    equations(Names())  # every name and function is checked now, before any derivation
    _check_dependence(parsed, declared)
    _check_used(parsed, declared, where)
    for e in parsed:
        _check_weights(e.tree, False, set(declared.weights), e.where)
    _check_read(parsed, declared.states, loss_on)
    reading = Interpreter(parsed, declared.inputs, declared.states, declared.weights,
                          declared.biases)
    return CellSpec(name, declared.inputs, declared.states, declared.weights,
                    declared.biases, equations, loss_on, reading)


def _equations(parsed: Sequence[Equation], declared: Declared):
    def equations(s: Names) -> tuple[tuple[str, sp.Expr], ...]:
        known: set[str] = set()
        later = {e.target for e in parsed} - set(declared.states)
        out = []
        for e in parsed:
            out.append((e.target, _Build(s, known, later, declared, e.where).expr(e.tree)))
            known.add(e.target)
            later.discard(e.target)
        return tuple(out)

    return equations


def _check_targets(parsed: Sequence[Equation], declared: Declared, where: str) -> None:
    seen: set[str] = set()
    previous = {f"{s}_prev" for s in declared.states}  # the engine's name for s[t-1]
    for e in parsed:
        if not NAME.match(e.target) or e.target in FUNCTIONS or e.target in {"t", *previous}:
            raise InputError(f"{e.where}: {e.target!r} cannot be assigned; use a letter then "
                             "letters, digits or _, at most 32, not a function's name")
        if e.target in seen:
            raise InputError(f"{e.where}: {e.target!r} is assigned twice")
        if e.target in declared.leaves:
            raise InputError(f"{e.where}: {e.target!r} is declared as an input, weight or "
                             "bias and cannot be assigned")
        seen.add(e.target)
    for s in declared.states:
        if s not in seen:
            raise InputError(f"{where}.equations: the state {s!r} is never assigned")


def _reads(e: Equation) -> set[str]:
    """The names ``e`` reads at the current step (every atom is a tree of its own)."""
    return {str(t.children[0]) for t in e.tree.iter_subtrees() if t.data == "name"}


def _check_cycles(parsed: Sequence[Equation], states: Sequence[str]) -> None:
    """Refuse equations that depend on each other (``f`` reads ``n``, which reads ``f``):
    no order of the equations computes them.  (A name merely read before its equation is
    refused when the equations are built, with the advice to reorder.)"""
    # A state read at its own step is refused with its own advice (use h[t-1]).
    assigns = {e.target: e for e in parsed if e.target not in states}
    for e in assigns.values():
        path = _path_to(e.target, e, assigns, set())
        if path:
            steps = ", ".join(f"{a} reads {b}" for a, b in itertools.pairwise(path))
            raise InputError(f"{e.where}: the equations form a cycle ({steps}); each "
                             "variable must be computable from earlier ones and h[t-1]")


def _path_to(goal: str, e: Equation, assigns: dict[str, Equation],
             seen: set[str]) -> list[str]:
    """A chain of reads from ``e``'s target back to ``goal``, or [] if there is none."""
    for name in _reads(e):
        if name == goal:
            return [e.target, goal]
        if name in assigns and name not in seen:
            seen.add(name)
            rest = _path_to(goal, assigns[name], assigns, seen)
            if rest:
                return [e.target, *rest]
    return []


def _check_dependence(parsed: Sequence[Equation], declared: Declared) -> None:
    """Refuse a variable that depends on no input and no state (only on weights, biases
    and numbers): it is a constant of the cell, not a step of it."""
    live: set[str] = set(declared.inputs)
    for e in parsed:
        previous = any(t.data == "previous" for t in e.tree.iter_subtrees())
        if previous or live & set(_reads(e)):
            live.add(e.target)
            continue
        raise InputError(f"{e.where}: {e.target!r} depends on no input and no state; an "
                         "equation must read an input, a state's h[t-1] or a variable that does")


def _check_weights(t, allowed: bool, weights: set[str], where: str) -> None:
    """Refuse a weight anywhere but as a factor of a product (``w_fx*x``) or left of
    ``@``, and a matrix product beside other vector factors: the vector form reads a
    product chain with a weight as the weight times the rest, so ``w^1*h[t-1]``,
    ``identity(w)*h[t-1]`` or ``(w @ h[t-1])*h[t-1]`` would mean another thing than it
    says."""
    if t.data == "name":
        if str(t.children[0]) in weights and not allowed:
            raise InputError(f"{where}: column {t.children[0].column}: the weight "
                             f"{str(t.children[0])!r} may stand only as a factor of a "
                             "product, as in w_fx*x (or left of @)")
        return
    if t.data in ("mul", "div", "neg"):
        factors: list = []
        _factors(t, 1, factors)
        vectors = [f for f, _ in factors if f.data not in ("sign", "number")]
        for f, power in factors:
            if f.data == "matmul" and len(vectors) > 1:
                raise InputError(f"{where}: column {f.meta.column}: a product with @ may "
                                 "not be a factor of a larger product; write w @ (a*b), "
                                 "or give it an equation of its own")
            if f.data != "sign":
                _check_weights(f, power == 1 and f.data == "name", weights, where)
        return
    kids = [c for c in t.children if isinstance(c, lark.Tree)]
    for i, c in enumerate(kids):  # the left of @ is a weight (checked when built)
        _check_weights(c, t.data == "matmul" and i == 0, weights, where)


def _check_used(parsed: Sequence[Equation], declared: Declared, where: str) -> None:
    """Refuse a declared name no equation reads: an unused weight has no gradient to
    derive, and a state never read as s[t-1] carries nothing to the next step."""
    read = set().union(*(_reads(e) for e in parsed))
    previous = {str(t.children[0]) for e in parsed for t in e.tree.iter_subtrees()
                if t.data == "previous"}
    for role, names in (("inputs", declared.inputs), ("weights", declared.weights),
                        ("biases", declared.biases)):
        for name in names:
            if name not in read:
                raise InputError(f"{where}.{role}: {name!r} is declared but no equation "
                                 "reads it")
    for name in declared.states:
        if name not in previous:
            raise InputError(f"{where}.states: {name!r} is never read as {name}[t-1]; a "
                             "state carries its value to the next step (a variable that "
                             "does not is declared by being assigned)")


def _check_read(parsed: Sequence[Equation], states: Sequence[str], loss_on: Sequence[str]
                ) -> None:
    """Refuse a variable nothing reads (no later equation, not the loss): it cannot change
    the loss, so its adjoint and its weights' gradients are zero, surely not what was
    meant.  (A state is read at the next step, as s[t-1].)"""
    read = set().union(*(_reads(e) for e in parsed)) | set(loss_on) | set(states)
    for e in parsed:
        if e.target not in read:
            raise InputError(f"{e.where}: {e.target!r} is assigned but no equation reads it "
                             "and the loss is not on it (loss_on); use it, or remove it")


def _names(table: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(f"{where}.{key}: expected a list of names")
    for v in value:
        if not NAME.match(v) or v in FUNCTIONS or v == "t":
            raise InputError(f"{where}.{key}: {v!r} is not allowed as a name; use a letter "
                             "then letters, digits or _, at most 32, not a function's name")
    if len(set(value)) != len(value):
        raise InputError(f"{where}.{key}: a name may appear only once")
    if key in ("inputs", "states", "loss_on") and not value:
        raise InputError(f"{where}.{key}: expected at least one name")
    return tuple(value)
