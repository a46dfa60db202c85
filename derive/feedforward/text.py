"""A feed-forward graph written as equations in a set file (``kind = "graph"``).

The table declares every name with its role and shape, and the equations compute the
loss, the last one assigned::

    sizes = ["N", "D", "H", "C"]
    inputs = { X = ["N", "D"] }
    labels = { y = "N" }
    params = { W1 = ["D", "H"], b1 = [1, "H"], W2 = ["H", "C"], b2 = [1, "C"] }
    constants = ["reg"]
    equations = [
      "H1 = relu(X @ W1 + b1)",
      "S = H1 @ W2 + b2",
      "L = softmax_ce(S, y) + reg/2*(sumsq(W1) + sumsq(W2))",
    ]

``@`` is the matrix product; ``*`` and ``/`` between matrices are entrywise (the second
may be a row, for every row), and a factor made of numbers and constants scales or is
added to every entry; ``+`` and ``-`` add equal shapes or a row to every row.  Functions
are the registry's (entrywise), ``softmax_ce(scores, labels)`` (the mean cross-entropy),
``sumsq(A)`` (‖A‖²), ``mean(A)`` (the mean of the rows, a row), ``rowmean(A)`` (each
row's mean, a column), ``sum(A)`` (of all entries) and ``normalize(A, eps)`` (each column
centred and divided by its standard deviation over the rows, with ``eps`` added to the
variance; ``rownormalize`` each row over its columns).  ``wrt`` lists inputs whose
gradient the key gives besides the parameters'.  The arithmetic is the grammar every model
shares (``derive.model.equations.ARITHMETIC``), parsed by lark, never evaluated.
"""

from __future__ import annotations

import dataclasses
from functools import cache
from typing import Any

import lark
import sympy as sp

from derive.engine.functions import FUNCTIONS
from derive.errors import InputError
from derive.feedforward.graph import Graph
from derive.model.equations import ARITHMETIC, MAX_EQUATIONS, NAME, lalr_parser, parse_tree

KEYS = ("sizes", "inputs", "labels", "masks", "params", "constants", "equations", "wrt",
        "spelled")
#: Functions of the graph language besides the registry's, with their argument counts.
OWN = {"softmax_ce": 2, "sumsq": 1, "mean": 1, "rowmean": 1, "sum": 1, "normalize": 2,
       "rownormalize": 2, "softmax": 1, "transpose": 1, "masked": 2, "rows": 2}
#: The graph operation of each of those functions.
_OWN_OPS = {"softmax_ce": "softmax_ce", "sumsq": "sumsq", "mean": "mean",
            "rowmean": "rowmean", "sum": "total", "softmax": "softmax",
            "transpose": "transpose", "masked": "masked", "rows": "rows"}
#: Functions whose second argument is a factor of numbers and constants (ε).
_WITH_FACTOR = {"normalize": "rows", "rownormalize": "columns"}

_GRAMMAR = r"""
    equation: NAME "=" sum
    ?atom: NUMBER                      -> number
        | NAME                         -> name
        | NAME "(" sum ("," sum)* ")"  -> call
        | "(" sum ")"
""" + ARITHMETIC
_ALLOWED = "names, numbers, + - * / @ ^, brackets and calls f(a) or f(a, b)"


@cache
def _parser() -> lark.Lark:
    return lalr_parser(_GRAMMAR)


def graph_from_table(table: dict[str, Any], where: str) -> Graph:
    """The graph the model ``table`` declares; ``where`` names it in messages."""
    g = Graph()
    sizes = _sizes(table.get("sizes", []), f"{where}.sizes")
    for role in ("inputs", "params"):
        for name, dims in _table(table, role, where).items():
            rows, cols = _dims(dims, sizes, f"{where}.{role}.{name}")
            (g.input if role == "inputs" else g.param)(_name(name, where, role), rows, cols)
    for name, rows in _table(table, "labels", where).items():
        g.labels(_name(name, where, "labels"), _dims([rows, 1], sizes, f"{where}.labels")[0])
    for name, dims in _table(table, "masks", where).items():
        rows, cols = _dims(dims, sizes, f"{where}.masks.{name}")
        g.mask(_name(name, where, "masks"), rows, cols)
    for name in _list(table, "constants", where):
        g.const(_name(name, where, "constants"))
    g.sizes = dict(sizes)
    for name in _list(table, "wrt", where):
        if name not in g.nodes or g.nodes[name].op != "input":
            raise InputError(f"{where}.wrt: {name!r} is not a declared input (wrt names the "
                             "inputs the key differentiates in, besides the parameters)")
        g.wrt.append(name)
    equations = _list(table, "equations", where)
    if not 0 < len(equations) <= MAX_EQUATIONS:
        raise InputError(f"{where}.equations: expected 1 to {MAX_EQUATIONS} equations")
    for i, text in enumerate(equations, start=1):
        _Compile(g, f"{where}.equations[{i}] {text!r}").equation(text)
    g.spelled = _spelled(table.get("spelled", {}), g, f"{where}.spelled")
    for name in g.hidden:
        if g.nodes[name].op in ("normalize", "rownormalize", "softmax"):
            raise InputError(f"{where}.equations: give {g.nodes[name].op}(...) an equation of "
                             "its own (its gradient reads its value by name)")
    try:
        g.loss  # noqa: B018 - the last node must be the scalar loss
    except InputError as exc:
        raise InputError(f"{where}.equations: {exc}") from None
    return g


class _Compile:
    """One equation's tree turned into nodes of ``graph`` (intermediates named after the
    target: ``S_1``, ``S_2``, ...)."""

    def __init__(self, graph: Graph, where: str) -> None:
        self.g, self.where, self.count = graph, where, 0

    def equation(self, text: str) -> None:
        tree = parse_tree(_parser(), text, self.where, _ALLOWED)
        self.target = str(tree.children[0])
        if not NAME.match(self.target) or self.target in self.g.nodes:
            raise InputError(f"{self.where}: {self.target!r} is taken or not a name")
        kind, value = self.value(tree.children[1])
        if kind == "coeff":
            raise InputError(f"{self.where}: the right-hand side is only numbers and constants")
        if value.startswith(self.target + "_"):  # a node this equation made: it is named
            self._rename(value)
        else:  # an existing name: the target is a copy of it
            self.g.scale(self.target, sp.S.One, value)

    def value(self, t) -> tuple[str, Any]:
        """("coeff", a SymPy factor of numbers and constants) or ("node", a node's name)."""
        rule, kids = t.data, t.children
        if rule == "number":
            return "coeff", sp.Rational(str(kids[0]))
        if rule == "name":
            return self._name(str(kids[0]))
        if rule == "call":
            return self._call(str(kids[0]), kids[1:])
        if rule == "neg":
            kind, v = self.value(kids[0])
            return ("coeff", -v) if kind == "coeff" else self._node("scale", -1, v)
        if rule == "pow":
            kind, v = self.value(kids[0])
            if kind != "coeff":
                raise InputError(f"{self.where}: a power of a matrix; write A*A for A ∘ A")
            return "coeff", v ** int(kids[1])
        return self._binary(rule, self.value(kids[0]), self.value(kids[1]))

    def _binary(self, rule: str, a: tuple, b: tuple) -> tuple[str, Any]:
        (ka, va), (kb, vb) = a, b
        if ka == kb == "coeff":
            ops = {"add": sp.Add, "sub": lambda x, y: x - y, "mul": sp.Mul,
                   "div": lambda x, y: x / y}
            if rule == "matmul":
                raise InputError(f"{self.where}: @ between numbers or constants")
            return "coeff", ops[rule](va, vb)
        if rule == "mul" and "coeff" in (ka, kb):
            return self._node("scale", va if ka == "coeff" else vb, vb if ka == "coeff" else va)
        if rule == "div" and kb == "coeff":
            return self._node("scale", 1 / vb, va)
        if rule in ("add", "sub") and "coeff" in (ka, kb):  # a number in every entry
            if ka == "coeff":
                node = vb if rule == "add" else self._node("scale", -1, vb)[1]
                return self._node("shift", va, node)
            return self._node("shift", vb if rule == "add" else -vb, va)
        if "coeff" in (ka, kb):
            raise InputError(f"{self.where}: a number or constant divided by a matrix, or "
                             "in a matrix product; it may multiply, divide or be added")
        op = {"add": "add", "sub": "sub", "mul": "hadamard", "div": "divide",
              "matmul": "matmul"}[rule]
        return self._node(op, va, vb)

    def _call(self, fn: str, args: list) -> tuple[str, str]:
        want = OWN.get(fn, 1 if fn in FUNCTIONS else None)
        if want is None:
            known = ", ".join(sorted({*FUNCTIONS, *OWN}))
            raise InputError(f"{self.where}: {fn!r} is not a function; known: {known}")
        if len(args) != want:
            raise InputError(f"{self.where}: {fn} takes {want} argument(s), got {len(args)}")
        values = [self.value(a) for a in args]
        if fn in FUNCTIONS and values[0][0] == "coeff":  # sqrt(d): a factor
            return "coeff", FUNCTIONS[fn](values[0][1])
        if fn in _WITH_FACTOR:
            (ka, a), (ke, eps) = values
            if ka == "coeff" or ke != "coeff":
                raise InputError(f"{self.where}: {fn}(A, eps) takes a matrix and a factor "
                                 "of numbers and constants (eps)")
            return self._node("normalize", a, eps, _WITH_FACTOR[fn])
        if any(k == "coeff" for k, _ in values):
            raise InputError(f"{self.where}: {fn} of a number or constant")
        names = [v for _, v in values]
        if fn in FUNCTIONS:
            return self._node("fn", fn, names[0])
        return self._node(_OWN_OPS[fn], *names)

    def _name(self, name: str) -> tuple[str, Any]:
        if name in self.g.sizes:  # a size is a number in a factor (1/sqrt(d))
            return "coeff", self.g.sizes[name]
        node = self.g.nodes.get(name)
        if node is None:
            raise InputError(f"{self.where}: {name!r} is not declared nor assigned before")
        return ("coeff", node.symbol) if node.op == "const" else ("node", name)

    def _node(self, op: str, *args) -> tuple[str, str]:
        self.count += 1
        name = f"{self.target}_{self.count}"
        try:
            getattr(self.g, op)(name, *args)
        except InputError as exc:  # say which equation (its steps are named S_1, S_2, ...)
            raise InputError(f"{self.where}: {exc}") from None
        self.g.hidden.add(name)
        return "node", name

    def _rename(self, name: str) -> None:
        # The equation's last node takes the target's name (it is the one others read).
        node = self.g.nodes.pop(name)
        self.g.hidden.discard(name)
        self.g.nodes[self.target] = dataclasses.replace(node, name=self.target)


def _spelled(value: Any, g: Graph, where: str) -> dict[str, str]:
    """How the key spells declared names: each a name the key prints as a symbol
    (``epsilon``, ``M``, ``v_c``)."""
    if not isinstance(value, dict):
        raise InputError(f"{where}: expected a table of declared names to their spelling")
    for name, shown in value.items():
        if name not in g.nodes or g.nodes[name].op not in ("input", "labels", "mask",
                                                           "param", "const"):
            raise InputError(f"{where}.{name}: not a declared name")
        if not isinstance(shown, str) or not NAME.match(shown):
            raise InputError(f"{where}.{name}: expected a name such as epsilon, M or v_c")
    return dict(value)


def _sizes(value: Any, where: str) -> dict[str, sp.Symbol]:
    if not isinstance(value, list) or not all(isinstance(v, str) and NAME.match(v)
                                              for v in value):
        raise InputError(f"{where}: expected a list of size names (N, D, ...)")
    return {v: sp.Symbol(v, positive=True, integer=True) for v in value}


def _dims(dims: Any, sizes: dict[str, sp.Symbol], where: str) -> tuple[sp.Expr, sp.Expr]:
    ok = isinstance(dims, list) and len(dims) == 2 and all(
        (isinstance(d, int) and not isinstance(d, bool) and 0 < d <= 4096) or d in sizes
        for d in dims)
    if not ok:
        raise InputError(f"{where}: expected [rows, columns], each a declared size "
                         f"({', '.join(sizes) or 'none declared'}) or a whole number 1..4096")
    return tuple(sizes[d] if isinstance(d, str) else sp.Integer(d) for d in dims)


def _table(table: dict, key: str, where: str) -> dict:
    value = table.get(key, {})
    if not isinstance(value, dict):
        raise InputError(f"{where}.{key}: expected a table of names")
    return value


def _list(table: dict, key: str, where: str) -> list:
    value = table.get(key, [])
    if not isinstance(value, list):
        raise InputError(f"{where}.{key}: expected a list")
    return value


def _name(name: str, where: str, key: str) -> str:
    if not NAME.match(name) or name in FUNCTIONS or name in OWN:
        raise InputError(f"{where}.{key}: {name!r} is not allowed as a name (a letter, then "
                         "letters, digits or _, at most 32; not a function's name)")
    return name
