"""An indexed model by naive loops over its parse trees: the reference every claim of an
indexed key is checked against.

Each equation's right side is read from the tree the grammar built, never from the SymPy
the derivation used: for every entry of the target, one scalar at a time, a ``sum(...)``
loops over its indices and adds, a ``max(...)`` scans its window in row-major order, an
entry outside its array reads 0.  Leading axes before an array's own are carried along,
so one call runs a batch of probes (a complex step per input entry, say).
``pool_backward`` replays a pool's loops and adds each window's upstream gradient at its
first maximum: routing by loops, with no derived formula.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from fractions import Fraction

import numpy as np

from derive.model.indexed import IndexedEquation, IndexedSpec, evaluate_size

Code = Callable[[dict], object]


def shape(spec: IndexedSpec, name: str, sizes: dict[str, int]) -> tuple[int, ...]:
    """An array's shape at the sizes, from its shape's trees."""
    return tuple(int(evaluate_size(t, sizes)) for t in spec.arrays[name].trees)


class _Compiler:
    """A tree as closures over ``env`` (indices and sizes by name, arrays by name)."""

    def __init__(self, sizes: dict[str, int], arrays: dict, number: Callable,
                 exact: bool = False) -> None:
        self.sizes, self.arrays, self.number, self.exact = sizes, arrays, number, exact

    def __call__(self, t) -> Code:
        rule = t.data
        if rule == "number":
            c = self.number(str(t.children[0]))
            return lambda env: c
        if rule == "name":
            v = self.number(self.sizes[str(t.children[0])])
            return lambda env: v
        if rule == "entry":
            return self.entry(t)
        if rule in ("total", "pool"):
            return self.loop(t, rule)
        if rule == "neg":
            inner = self(t.children[0])
            return lambda env: -inner(env)
        if rule == "pow":
            base, n = self(t.children[0]), int(t.children[1])
            return lambda env: base(env) ** n
        a, b = (self(c) for c in t.children)
        if rule == "div" and self.exact:  # a whole number divides as a fraction
            return lambda env: a(env) * Fraction(1, 1) / Fraction(b(env))
        return {"add": lambda env: a(env) + b(env), "sub": lambda env: a(env) - b(env),
                "mul": lambda env: a(env) * b(env), "div": lambda env: a(env) / b(env)}[rule]

    def index(self, t) -> Callable[[dict], int]:
        rule = t.data
        if rule == "number":
            c = int(str(t.children[0]))
            return lambda env: c
        if rule == "name":
            name = str(t.children[0])
            return lambda env: env[name]
        if rule == "neg":
            inner = self.index(t.children[0])
            return lambda env: -inner(env)
        a, b = (self.index(c) for c in t.children)
        return {"add": lambda env: a(env) + b(env), "sub": lambda env: a(env) - b(env),
                "mul": lambda env: a(env) * b(env)}[rule]

    def entry(self, t) -> Code:
        tok, *idx = t.children
        arr = self.arrays[str(tok)]
        dims = arr.shape[arr.ndim - len(idx):]
        codes = [self.index(x) for x in idx]
        zero = self.number(0)

        def read(env):
            at = tuple(c(env) for c in codes)
            if all(0 <= v < n for v, n in zip(at, dims, strict=True)):
                return arr[(Ellipsis, *at)]
            return zero

        return read

    def loop(self, t, rule: str) -> Code:
        *bounds, body = t.children
        names = [str(b.children[0]) for b in bounds]
        ranges = [range(int(evaluate_size(b.children[1], self.sizes))) for b in bounds]
        inner = self(body)
        zero = self.number(0)

        def run(env):
            acc = None
            for values in itertools.product(*ranges):
                env.update(zip(names, values, strict=True))
                v = inner(env)
                if acc is None:
                    acc = v
                else:
                    acc = acc + v if rule == "total" else np.maximum(acc, v)
            return zero if acc is None else acc

        return run


def number_of(exact: bool) -> Callable:
    """Numbers as the loops compute: whole numbers and fractions exactly, or floats."""
    if not exact:
        return float
    return lambda v: int(f) if (f := Fraction(v)).denominator == 1 else f


def divides(e: IndexedEquation) -> bool:
    """Whether ``e`` divides (its exact values are then fractions)."""
    return any(t.data == "div" for t in e.tree.iter_subtrees())


def equation(spec: IndexedSpec, e: IndexedEquation, values: dict, sizes: dict[str, int],
             exact: bool = False) -> np.ndarray:
    """``e``'s target from ``values`` by loops over every entry (leading axes kept)."""
    code = _Compiler(sizes, values, number_of(exact), exact)(e.tree)
    dims = shape(spec, e.target, sizes)
    reads = [values[a] for a, *_ in e.reads]
    lead = np.broadcast_shapes(*(v.shape[:v.ndim - len(spec.arrays[a].axes)]
                                 for v, (a, *_) in zip(reads, e.reads, strict=True)))
    dtype = (object if exact and (divides(e) or any(v.dtype == object for v in reads))
             else np.result_type(*reads) if exact else np.result_type(*reads, float))
    out = np.zeros((*lead, *dims), dtype=dtype)
    names = [str(s) for s, _ in e.free]
    env = dict(sizes)
    for at in itertools.product(*(range(n) for n in dims)):
        env.update(zip(names, at, strict=True))
        out[(Ellipsis, *at)] = code(env)
    return out


def run(spec: IndexedSpec, values: dict, sizes: dict[str, int], start: int = 0,
        exact: bool = False) -> dict:
    """Every target from equation ``start`` on, each from the values before it."""
    values = dict(values)
    for e in spec.equations[start:]:
        values[e.target] = equation(spec, e, values, sizes, exact)
    return values


def pool_backward(spec: IndexedSpec, e: IndexedEquation, values: dict, upstream: np.ndarray,
                  sizes: dict[str, int]) -> np.ndarray:
    """The gradient of the array a pool reads: each window's upstream entry added at the
    window's first maximum in row-major order (where that lies inside the array)."""
    *bounds, body = e.tree.children
    compiler = _Compiler(sizes, values, lambda v: v)
    name = str(body.children[0])
    arr = values[name]
    codes = [compiler.index(x) for x in body.children[1:]]
    ranges = [range(int(evaluate_size(b.children[1], sizes))) for b in bounds]
    window = [str(b.children[0]) for b in bounds]
    grad = np.zeros(arr.shape, dtype=np.result_type(arr, upstream))
    env = dict(sizes)
    for at in itertools.product(*(range(n) for n in upstream.shape)):
        env.update(zip((str(s) for s, _ in e.free), at, strict=True))
        best, best_at = None, None
        for offsets in itertools.product(*ranges):
            env.update(zip(window, offsets, strict=True))
            where = tuple(c(env) for c in codes)
            inside = all(0 <= v < n for v, n in zip(where, arr.shape, strict=True))
            v = arr[where] if inside else 0
            if best is None or v > best:
                best, best_at = v, (where if inside else None)
        if best_at is not None:
            grad[best_at] += upstream[at]
    return grad
