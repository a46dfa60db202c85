"""A map's updates as text (an optimizer step, a flow layer), parsed by a grammar into a
``MapSpec``.

A map acts on a state of vectors in R^D, one update after the other, each written
``x' = expression``: ``x`` is the state's value before the step and ``x'`` its updated
value, which later updates may read (``theta' = theta + p'``).  An expression holds
numbers, states, scalar constants, ``+ - * /`` (elementwise between vectors, scaling by a
scalar), powers with a whole-number exponent, the registry's elementwise functions
(``derive.engine.functions``) and ``grad(J)(expression)``: the gradient of an unspecified
objective ``J`` at that point, whose Jacobian is J's Hessian there.

Each update overwrites one state, so an update sees the state as the earlier ones left it:
once ``p'`` is assigned, ``p`` may no longer be read.  The map is then the composition of
its updates, and its Jacobian the product of one factor per update.

Every mistake is one line naming the model, the equation, the column, what was found and
what is allowed.  ``run`` evaluates the parse tree on arrays, apart from SymPy: the
independent forward pass the checks differentiate.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import lark
import numpy as np
import sympy as sp

from derive.engine.functions import FUNCTIONS, powered
from derive.errors import InputError
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
from derive.model.interpret import Compiler
from derive.model.naming import table_title

#: What a map's table holds (``kind`` and ``title`` are read by the set, not here).
KEYS = ("kind", "title", "state", "constants", "step", "equations")
#: Most states, most constants, most gradient evaluations in one map.
MAX_STATES, MAX_CONSTANTS, MAX_GRADS = 8, 16, 8
#: Names a map may not declare: the grammar's keyword, and the dimension, Hessian, identity
#: and step index the key prints.
RESERVED = frozenset({"grad", "D", "H", "I", "k"})
#: The names the key gives Hessians where ∇J is taken at several points (H_1, H_2, ...)
#: and the diagonals of its Jacobian blocks (d_1, d_2, ...).
KEY_NAMES = re.compile(r"^[Hd]_[0-9]+$")

_GRAMMAR = r"""
    equation: NAME "'" "=" sum
    ?atom: NUMBER           -> number
        | NAME              -> name
        | NAME "'"          -> updated
        | NAME "(" sum ")"  -> call
        | "grad" "(" NAME ")" "(" sum ")" -> grad
        | "(" sum ")"
""" + ARITHMETIC + r"""
    %extend power: atom ("^" | "**") NAME -> pow_name
        | atom ("^" | "**") NAME "'" -> pow_updated
"""
_ALLOWED = "names, numbers, + - * / ^, brackets, x' and grad(J)(...)"


@cache
def _parser() -> lark.Lark:
    return lalr_parser(_GRAMMAR)


class Grad(sp.Function):
    """∇J(u): the gradient of the objective ``J`` (first argument) at the vector ``u``."""

    def _latex(self, printer, exp=None):
        objective, point = self.args
        return powered(r"\nabla %s\left(%s\right)" % (printer._print(objective),
                                                       printer._print(point)), exp)


def old(x: str) -> sp.Symbol:
    """The state ``x`` before the step, x^(k)."""
    return sp.Symbol(f"{x}^(k)")


def new(x: str) -> sp.Symbol:
    """The state ``x`` after the step, x^(k+1)."""
    return sp.Symbol(f"{x}^(k+1)")


def constant(c: str) -> sp.Symbol:
    """The scalar constant ``c``."""
    return sp.Symbol(c)


#: One update: the state it assigns and its right-hand side, in x^(k) and x^(k+1).
MapEquation = Written


@dataclass(frozen=True)
class MapSpec:
    """A map as data: its states (vectors in R^D), scalar constants, objective and updates."""

    name: str
    title: str
    states: tuple[str, ...]
    constants: tuple[str, ...]
    objective: str | None
    equations: tuple[MapEquation, ...]
    #: The counter of completed steps (Adam's t), a scalar the step increments before
    #: update ``step_at`` runs; the derivation treats it as a constant, one of ``constants``.
    step: str | None = None
    step_at: int = 0

    def updates(self) -> list[sp.Eq]:
        """The updates as equations x^(k+1) = ..., as written, in the order they run."""
        return [sp.Eq(new(e.target), e.shown, evaluate=False) for e in self.equations]


class _MapBuild(Arithmetic):
    """A map update's right-hand side as SymPy, checking every name against its role."""

    def __init__(self, spec: dict[str, Any], done: set[str], where: str) -> None:
        self.spec, self.done, self.where = spec, done, where
        self.mentions = False

    def atom(self, t) -> sp.Expr:
        tok = t.children[0]
        if t.data == "call":
            return self._call(tok, self.expr(t.children[1]))
        if t.data == "grad":
            return self._grad(tok, self.expr(t.children[1]))
        if t.data in ("pow_name", "pow_updated"):
            return self._power(t)
        name, states = str(tok), self.spec["states"]
        if name == self.spec.get("step"):
            return self._step(tok, t.data == "updated")
        if t.data == "updated":
            if name not in states:
                raise self._fail(tok, f"{name}': only a state has an updated value; states "
                                      f"are {', '.join(states)}")
            if name not in self.done:
                raise self._fail(tok, f"{name}' is read before the update that assigns it; "
                                      "an update may read only earlier updates' values")
            self.mentions = True
            return new(name)
        if name in states:
            if name in self.done:
                raise self._fail(tok, f"{name!r} is read after {name}' is assigned; an update "
                                      f"sees the state as earlier updates left it: write {name}'")
            self.mentions = True
            return old(name)
        if name in self.spec["constants"]:
            return constant(name)
        allowed = ", ".join([*states, *self.spec["constants"]])
        raise self._fail(tok, f"{name!r} is not declared; allowed are {allowed}, a state's "
                              "updated value x' and grad(J)(...)")

    def _step(self, tok, updated: bool) -> sp.Expr:
        """The step counter t before its increment, or t' = t + 1 after it."""
        name, stepped = str(tok), self.spec.get("stepped", False)
        if updated != stepped:
            why = (f"{name}' is read before {name}' = {name} + 1" if updated else
                   f"{name!r} is read after {name}' = {name} + 1; write {name}'")
            raise self._fail(tok, why)
        t = constant(name)
        return self.binary("add", t, sp.Integer(1)) if updated else t

    def _power(self, t) -> sp.Expr:
        """``a ^ c`` with c a constant or the step counter (Adam's beta1^t')."""
        base, tok = self.expr(t.children[0]), t.children[1]
        name, updated = str(tok), t.data == "pow_updated"
        if name == self.spec.get("step"):
            return self.binary("pow", base, self._step(tok, updated))
        if name in self.spec["constants"] and not updated:
            return self.binary("pow", base, constant(name))
        prime = "'" if updated else ""
        raise self._fail(tok, f"power {name}{prime}: an exponent is a whole number, a "
                              "constant or the step counter")

    def _grad(self, tok, point: sp.Expr) -> sp.Expr:
        name = str(tok)
        if name in self.spec["states"] or name in self.spec["constants"]:
            raise self._fail(tok, f"grad({name}): {name!r} is declared as a state or constant;"
                                  " grad takes the objective's name, as in grad(J)")
        objective = self.spec.setdefault("objective", name)
        if name != objective:
            raise self._fail(tok, f"grad({name}): a map has one objective, here {objective}")
        self.spec["grads"] = self.spec.get("grads", 0) + 1
        if self.spec["grads"] > MAX_GRADS:
            raise self._fail(tok, f"more than {MAX_GRADS} gradients in one map")
        return Grad(sp.Symbol(name), point)


class _Shown(_MapBuild):
    """The same right-hand side as written: nothing combined or reordered."""

    def binary(self, rule: str, a: sp.Expr, b: sp.Expr) -> sp.Expr:
        return unevaluated(rule, a, b)


def map_spec(name: str, table: dict[str, Any], where: str) -> MapSpec:
    """The ``MapSpec`` of the map ``table`` declares (``state``, ``constants``,
    ``equations``; ``kind`` and ``title`` are accepted); ``where`` names the model in
    messages (``set.toml: models.nesterov``)."""
    title = table_title(name, table, KEYS, where)
    states = _names(table, "state", where, 1, MAX_STATES)
    constants = _names(table, "constants", where, 0, MAX_CONSTANTS)
    both = sorted(set(states) & set(constants))
    if both:
        raise InputError(f"{where}: {both[0]!r} is declared as a state and a constant; "
                         "a name has one role")
    texts = table.get("equations")
    if not isinstance(texts, list) or not 0 < len(texts) <= MAX_EQUATIONS:
        raise InputError(f"{where}.equations: expected a list of 1 to {MAX_EQUATIONS} updates")
    step = _step_name(table, where, {*states, *constants})
    roles: dict[str, Any] = {"states": states, "constants": constants, "step": step}
    done: set[str] = set()
    parsed = [_equation(t, f"{where}.equations[{i}]", roles, done)
              for i, t in enumerate(texts)]
    for s in states:
        if s not in done:
            raise InputError(f"{where}.equations: the state {s!r} is never updated; write "
                             f"an update {s}' = ...")
    if step and not roles.get("stepped"):
        raise InputError(f"{where}.equations: the step counter {step!r} is never "
                         f"incremented; write {step}' = {step} + 1")
    equations = tuple(e for e in parsed if e is not None)
    return MapSpec(name, title, states, (*constants, *([step] if step else [])),
                   roles.get("objective"), equations, step, roles.get("step_at", 0))


def _step_name(table: dict[str, Any], where: str, taken: set[str]) -> str | None:
    """The declared step counter (``step = "t"``), or None."""
    step = table.get("step")
    if step is None:
        return None
    if not isinstance(step, str) or not _allowed(step):
        raise InputError(f"{where}.step: expected the name of the step counter, a letter "
                         "then letters, digits or _, not a function's name")
    if step in taken:
        raise InputError(f"{where}.step: {step!r} is declared as a state or constant too; "
                         "a name has one role")
    return step


def _equation(text: Any, where: str, roles: dict[str, Any], done: set[str]) -> MapEquation:
    tree = parse_tree(_parser(), text, where, _ALLOWED)
    tok, rhs = tree.children
    target = str(tok)
    if target == roles["step"]:
        return _increment(tok, rhs, where, roles, done)
    if target not in roles["states"]:
        raise InputError(f"{where}: column {tok.column}: {target}' = ...: {target!r} is not "
                         f"a state; states are {', '.join(roles['states'])}")
    if target in done:
        raise InputError(f"{where}: column {tok.column}: the state {target!r} is updated "
                         "twice; each state is updated once")
    build = _MapBuild(roles, done, where)
    expr = build.expr(rhs)
    if not build.mentions:
        raise InputError(f"{where}: the update of {target!r} reads no state; it must read "
                         f"one of {', '.join(roles['states'])} or an updated value")
    shown = _Shown(dict(roles, grads=0), done, where).expr(rhs)
    done.add(target)
    return MapEquation(target, expr, shown, rhs, text)


def _increment(tok, rhs, where: str, roles: dict[str, Any], done: set[str]) -> None:
    """The step counter's update, which must be ``t' = t + 1``; later updates read t'."""
    t = str(tok)
    if roles.get("stepped"):
        raise InputError(f"{where}: column {tok.column}: the step counter {t!r} is "
                         "incremented twice; it is incremented once")
    if _MapBuild(roles, done, where).expr(rhs) != constant(t) + 1:
        raise InputError(f"{where}: column {tok.column}: the step counter's update must be "
                         f"{t}' = {t} + 1")
    roles["stepped"], roles["step_at"] = True, len(done)


def _allowed(name: str) -> bool:
    """A name a map may declare: no function's, no reserved one, none the key prints."""
    return bool(NAME.match(name)) and name not in FUNCTIONS and name not in RESERVED \
        and not KEY_NAMES.match(name)


def _names(table: dict[str, Any], key: str, where: str, least: int, most: int
           ) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(f"{where}.{key}: expected a list of names")
    if not least <= len(value) <= most:
        raise InputError(f"{where}.{key}: expected {least} to {most} names")
    for v in value:
        if not _allowed(v):
            raise InputError(f"{where}.{key}: {v!r} is not allowed as a name; use a letter "
                             "then letters, digits or _, at most 32, not a function's name "
                             f"nor one of {', '.join(sorted(RESERVED))}, H_1, H_2, ..., "
                             "d_1, d_2, ...")
    if len(set(value)) != len(value):
        raise InputError(f"{where}.{key}: a name may appear only once")
    return tuple(value)


# -- the independent forward pass ----------------------------------------------------------------
def run(spec: MapSpec, state: Mapping[str, np.ndarray], constants: Mapping[str, float],
        grad: Callable[[np.ndarray], np.ndarray]) -> dict[str, np.ndarray]:
    """One step of the map on arrays: the parse trees evaluated in order (the reading a cell
    written as text runs too), with ``grad`` as the objective's gradient; never through
    SymPy."""
    fns = {name: f.numpy for name, f in FUNCTIONS.items()}

    def gradient(t, compile_rhs: Compiler) -> Callable:
        at = compile_rhs(t.children[1])
        return lambda env: grad(at(env))

    def power(t, compile_rhs: Compiler) -> Callable:
        base, name = compile_rhs(t.children[0]), str(t.children[1])
        return lambda env: base(env) ** env[name]  # t' once the counter is incremented

    rules = {"grad": gradient, "pow_name": power, "pow_updated": power}
    compile_rhs = Compiler(fns, float, rules=rules)
    current = {**constants, **state}  # a state is no constant's name (roles are apart)
    for i, e in enumerate(spec.equations):
        if spec.step and i == spec.step_at:
            current[spec.step] = current[spec.step] + 1
        current[e.target] = compile_rhs(e.tree)(current)
    return {k: v for k, v in current.items() if k not in constants}


def map_problem(name: str, table: dict[str, Any], where: str) -> type:
    """The problem class of the map ``table`` defines (``kind = "map"``), keyed ``name``:
    ``derive.problems.momentum.defined.map_problem``, which derives as momentum does."""
    from derive.problems.momentum.defined import map_problem as build  # it imports this

    return build(name, table, where)
