"""An indexed model's equations as ``LinearMap``s, their adjoints by the index-substitution
rule (``rules.adjoint``), and both evaluated on numbers (``evaluate``).

Step by step:

1. each equation is a map ``target[free] = Σ terms`` (a max-pool with its selection M);
2. the loss is L = Σ d<y> ⊙ y for the last target y; for each equation T, backwards, and
   each array A it reads that needs a gradient (an array of ``wrt``, or an intermediate
   target through which one reaches y), ``adjoint`` gives T's part of dA, with L's
   upstream dT;
3. dA is the sum of the parts of the equations that read A, written in A's own indices
   (a summed index of the same name is primed).

``forward`` and ``backward`` evaluate these maps: the derived formulas on numbers, the
pools' M from their windows (1 at the first maximum in row-major order).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import sympy as sp

from derive.errors import InputError
from derive.model.indexed import IndexedEquation, IndexedSpec, size_symbol
from derive.problems.conv_pool.evaluate import evaluate
from derive.problems.conv_pool.rules import DerivationError, LinearMap, Term, adjoint, eliminate


@dataclass(frozen=True)
class Derived:
    """The forward maps by target, each gradient's parts by (array, target), the gradients
    by array, in the order they are evaluated (targets backwards, then given arrays)."""

    forward: dict[str, LinearMap]
    parts: dict[tuple[str, str], LinearMap]
    total: dict[str, LinearMap]
    order: tuple[str, ...]


def operands(e: IndexedEquation) -> list[str]:
    """The declared arrays ``e`` reads, in the order it first reads them."""
    return list(dict.fromkeys(a for a, *_ in e.reads))


def needed(spec: IndexedSpec) -> tuple[str, ...]:
    """The arrays whose gradients are derived, in evaluation order: the intermediate
    targets through which a ``wrt`` array reaches the output (backwards), then ``wrt``."""
    reach: dict[str, set[str]] = {a: {a} for a in spec.given}
    for e in spec.equations:
        reach[e.target] = {e.target}.union(*(reach[a] for a in operands(e)))
    wrt = set(spec.wrt)
    inter = [e.target for e in spec.equations[:-1] if reach[e.target] & wrt]
    return (*reversed(inter), *spec.wrt)


def forward_map(e: IndexedEquation) -> LinearMap:
    return LinearMap(sp.IndexedBase(e.target), e.free,
                     tuple(Term(f, lim) for f, lim in e.terms))


def derive_maps(spec: IndexedSpec) -> Derived:
    """Every forward map and gradient of ``spec`` (see the module's steps)."""
    forward = {e.target: forward_map(e) for e in spec.equations}
    order = needed(spec)
    parts: dict[tuple[str, str], LinearMap] = {}
    for k in reversed(range(len(spec.equations))):
        e = spec.equations[k]
        for a in operands(e):
            if a in order:
                parts[a, e.target] = _part(spec, k, forward[e.target], a)
    total = {}
    for a in order:
        terms = [t for (b, _), m in parts.items() if b == a for t in m.terms]
        total[a] = LinearMap(sp.IndexedBase("d" + a), spec.arrays[a].axes, tuple(terms))
    for k, e in enumerate(spec.equations):
        _evaluable(forward[e.target], f"{spec.where}.equations[{k}]", "this equation")
    for (a, t), m in parts.items():
        k = [e.target for e in spec.equations].index(t)
        _evaluable(m, f"{spec.where}.equations[{k}]", f"the gradient of {a} through it")
    return Derived(forward, parts, total, order)


def _part(spec: IndexedSpec, k: int, m: LinearMap, a: str) -> LinearMap:
    """Equation k's part of da, in a's own indices."""
    e, axes = spec.equations[k], spec.arrays[a].axes
    held = tuple((sp.Symbol(f"_{j}", integer=True), n) for j, (_, n) in enumerate(axes))
    try:
        got = adjoint(m, sp.IndexedBase(a), held, sp.IndexedBase("d" + e.target),
                      sp.IndexedBase("d" + a))
    except DerivationError:
        raise _why(spec, k, a, held) from None
    names = {h: s for (h, _), (s, _) in zip(held, axes, strict=True)}
    return LinearMap(sp.IndexedBase("d" + a), axes,
                     tuple(_renamed(t, names) for t in got.terms))


def _renamed(t: Term, names: dict) -> Term:
    """``t`` with the placeholders as the array's indices, a summed index of one of their
    names primed first."""
    used = {str(s) for s in t.factor.free_symbols} | {str(s) for s, _ in t.limits}
    swap = {}
    for s, _ in t.limits:
        if s in names.values():
            new = s.name + "'"
            while new in used:
                new += "'"
            used.add(new)
            swap[s] = sp.Symbol(new, integer=True)
    swap |= names
    return Term(t.factor.xreplace(swap), tuple((swap.get(s, s), n) for s, n in t.limits),
                tuple((x.xreplace(swap), n) for x, n in t.support))


def _why(spec: IndexedSpec, k: int, a: str, held) -> InputError:
    """The read of ``a`` whose deltas the rule cannot remove, in one line."""
    e = spec.equations[k]
    limits = e.free + tuple(lim for _, ls in e.terms for lim in ls)
    at = f"{spec.where}.equations[{k}]"
    for name, entry, text, column in e.reads:
        if name != a:
            continue
        deltas = sp.Mul(*(sp.KroneckerDelta(x, h) for x, (h, _) in
                          zip(entry.indices, held, strict=True)))
        try:
            eliminate(deltas, limits)
        except DerivationError:
            return InputError(
                f"{at}: column {column}: the gradient of {a} through {text} cannot be found by "
                "index substitution: an index of it holds no left-side or summed index of "
                "coefficient 1 or -1 to solve for (a dilation 2*a, a stride S*i alone); "
                "allowed are reads whose every index has one of its own, as S*i + a")
    return InputError(f"{at}: the gradient of {a} cannot be found by index substitution")


def _evaluable(m: LinearMap, where: str, what: str) -> None:
    """Refuse a map whose index expressions ``evaluate`` cannot gather: after the summed
    indices that share an expression are fixed, each may hold one open index."""
    for t in m.terms:
        entries = [f for f in sp.Mul.make_args(t.factor) if isinstance(f, sp.Indexed)]
        exprs = [x for f in entries for x in f.indices] + [x for x, _ in t.support]
        idx = [{s for s in x.free_symbols if s.name[:1].islower() or s.name[0] == "_"}
               for x in exprs]
        coupled = {s for s, _ in t.limits if any(s in i and len(i) > 1 for i in idx)}
        for x, i in zip(exprs, idx, strict=True):
            if len(i - coupled) > 1:
                names = ", ".join(sorted(map(str, i - coupled)))
                raise InputError(f"{where}: {what} reads the index {x}, which holds the "
                                 f"left-side indices {names} at once; allowed is one, with "
                                 "any summed ones")


# -- on numbers -----------------------------------------------------------------------------
def symbols(sizes: dict[str, int]) -> dict[sp.Symbol, int]:
    return {size_symbol(k): v for k, v in sizes.items()}


def mask(e: IndexedEquation, values: dict[str, np.ndarray], sizes: dict) -> np.ndarray:
    """M of a pool: 1 at the first maximum of each window in row-major order (an entry
    outside its array counts as 0, as it is), 0 elsewhere."""
    (entry,) = [f for f in sp.Mul.make_args(e.terms[0][0]) if not str(f.base).startswith("M")]
    counts = [int(n.xreplace(sizes)) for _, n in e.window]
    # Window by window offset (the offsets are few): each a map of the free indices alone.
    w = np.stack([evaluate(LinearMap(sp.IndexedBase("window"), e.free, (Term(entry.xreplace(
        {s: sp.Integer(v) for (s, _), v in zip(e.window, at, strict=True)})),)), values, sizes)
        for at in itertools.product(*map(range, counts))], axis=-1)
    rank = len(e.free)
    flat = w.reshape(*w.shape[:rank], -1)
    first = np.argmax(flat, axis=-1)  # the first of equal maxima
    out = np.zeros(flat.shape, dtype=w.dtype)
    np.put_along_axis(out, first[..., None], 1, axis=-1)
    return out.reshape(*w.shape[:rank], *counts)


def forward(spec: IndexedSpec, d: Derived, given: dict[str, np.ndarray],
            sizes: dict[str, int]) -> dict[str, np.ndarray]:
    """Every target (and each pool's M) from the given arrays, by the forward maps."""
    s, values = symbols(sizes), dict(given)
    for e in spec.equations:
        if e.mask is not None:
            values[e.mask] = mask(e, values, s)
        values[e.target] = evaluate(d.forward[e.target], values, s)
    return values


def backward(spec: IndexedSpec, d: Derived, values: dict[str, np.ndarray],
             upstream: np.ndarray, sizes: dict[str, int]) -> dict[str, np.ndarray]:
    """Every derived gradient (``d<a>`` by a) from the forward values and d<y>."""
    s = symbols(sizes)
    known = dict(values) | {"d" + spec.equations[-1].target: upstream}
    out = {}
    for a in d.order:
        out[a] = known["d" + a] = evaluate(d.total[a], known, s)
    return out


def part(d: Derived, a: str, target: str, values: dict[str, np.ndarray],
         upstream: np.ndarray, sizes: dict[str, int]) -> np.ndarray:
    """One equation's part of da, with the upstream gradient of its target given."""
    return evaluate(d.parts[a, target], dict(values) | {"d" + target: upstream},
                    symbols(sizes))
