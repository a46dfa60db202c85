"""Arrays written in index notation in a set file (``[models.<name>]`` with ``kind =
"indexed"``): each array's shape, and the gradient of L = Σ d<y> ⊙ y by every array of
``wrt`` and every intermediate array on the way, by the index-substitution rule.

``indexed_problem(name, table, where)`` parses the table (``derive.model.indexed``) and
returns an ``IndexedProblem`` subclass keyed ``name``: the maps and their adjoints
(``indexed_maps``), each checked against naive loops over the parse trees, complex steps,
central differences and explicit matrices (``indexed_claims``) at the table's sizes, which
a set's ``[params.<name>]`` may change (the given ones).

``derive eval <name>`` reads a JSON object holding each given array by name (nested lists
of the shape at the sizes) and optionally ``d<y>``, the gradient of the loss with respect
to the last target y (default all ones); it prints ``out`` (y) and ``grad`` with each
array of ``wrt``, by the derived formulas.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import sympy as sp

from derive import inputs
from derive.errors import InputError
from derive.model.indexed import MAX_SIZE, IndexedSpec, indexed_spec, size_symbol
from derive.params import Int, Param
from derive.problems.base import Problem, Result
from derive.problems.conv_pool import given as gv
from derive.problems.conv_pool import indexed_claims as ic
from derive.problems.conv_pool import indexed_loops as lp
from derive.problems.conv_pool import indexed_maps as im
from derive.problems.conv_pool.rules import entry_tex, index_tex
from derive.verify import Claim

#: Loop steps of one pass over every equation, and entries of one array, at most: the
#: checks run the loops once per probe batch, a batch as wide as an array.
MAX_WORK, MAX_ENTRIES = 40_000, 1024


class WindowMax(sp.Expr):
    """``max`` over a pool's window, printed as written: ``\\max_{a,q} u_{S i + a}``."""

    def _latex(self, printer) -> str:
        entry, *names = self.args
        return r"\max_{%s} %s" % (",".join(printer._print(n) for n in names),
                                  entry_tex(entry, printer))


class IndexRange(sp.Expr):
    """``0 \\le e < n`` with the index expression tidied (``h - S i``)."""

    def _latex(self, printer) -> str:
        e, n = self.args
        return r"0 \le %s < %s" % (index_tex(e, printer), printer._print(n))


class AxisCount(sp.Expr):
    """An axis's count as a factor of a shape: ``(H + 2P)`` in brackets when a sum."""

    def _latex(self, printer) -> str:
        n = printer._print(self.args[0])
        return f"({n})" if self.args[0].is_Add else n


def work(spec: IndexedSpec, sizes: dict[str, int]) -> int:
    """Loop steps of one pass: per equation, its entries times each term's summed steps."""
    s = im.symbols(sizes)
    total = 0
    for e in spec.equations:
        entries = math.prod(int(n.xreplace(s)) for _, n in e.free)
        total += entries * sum(math.prod(int(n.xreplace(s)) for _, n in lim) or 1
                               for _, lim in e.terms)
    return total


def check_sizes(spec: IndexedSpec, sizes: dict[str, int], where: str) -> None:
    """Refuse sizes whose arrays or loops would make the checks slow."""
    for a in spec.arrays:
        n = math.prod(lp.shape(spec, a, sizes))
        if n > MAX_ENTRIES:
            raise InputError(f"{where}: {a} has {n} entries at these sizes; at most "
                             f"{MAX_ENTRIES}, so that the checks' naive loops stay quick")
    steps = work(spec, sizes)
    if steps > MAX_WORK:
        raise InputError(f"{where}: the equations take {steps} loop steps at these sizes; at "
                         f"most {MAX_WORK}, so that the checks' naive loops stay quick")


class IndexedProblem(Problem):
    """Shapes and gradients of arrays written entry by entry in index notation."""

    SPEC: ClassVar[IndexedSpec]
    DERIVED: ClassVar[im.Derived]
    TABLE: ClassVar[dict[str, Any]]
    WHERE: ClassVar[str]
    TEMPLATE: ClassVar[str | None] = "indexed"
    LABELS = ("title", "shapes", "backward")
    CLAIM_NAMES: ClassVar[dict[str, str]] = {"shapes": "the arrays' shapes"}

    def __init__(self, **values: int) -> None:
        given = {p.name: p.default for p in self.PARAMS} | values
        self.sizes = self.SPEC.values(given, f"params.{self.key}")
        check_sizes(self.SPEC, self.sizes, f"params.{self.key}")

    # -- derivation ---------------------------------------------------------------------------
    def shapes(self) -> dict[str, list[int]]:
        """Each array's shape at the sizes."""
        return {a: list(lp.shape(self.SPEC, a, self.sizes)) for a in self.SPEC.arrays}

    def derive(self) -> dict[str, Result]:
        """The shapes, each equation's map and each gradient (``indexed_maps``)."""
        shapes = self.shapes()
        out = {"shapes": Result("shapes", sp.Tuple(*(sp.Tuple(*s) for s in shapes.values())),
                                value=shapes)}
        d = self.DERIVED
        for t, m in d.forward.items():
            out[t] = Result(t, m.rhs, m.lhs)
        for a in d.order:
            out["d" + a] = Result("d" + a, d.total[a].rhs, d.total[a].lhs)
        return out

    # -- claims -------------------------------------------------------------------------------
    def claims(self) -> Iterator[Claim]:
        rng = np.random.default_rng(ic.SEED)
        spec, d, sizes = self.SPEC, self.DERIVED, self.sizes
        yield from ic.forward_claims(spec, d, sizes, rng)
        yield from ic.step_claims(spec, d, sizes, rng)
        yield from ic.gradient_claims(spec, d, sizes, rng, self.results["shapes"].value)

    # -- numbers in and out (derive eval) -----------------------------------------------------
    def eval(self, data: Any) -> dict[str, Any]:
        """The last target and the gradient of each ``wrt`` array on ``data`` (see the
        module), by the derived formulas."""
        spec, shapes = self.SPEC, self.shapes()
        last = spec.equations[-1].target
        inputs.mapping(data, "input", list(spec.given), ["d" + last])
        arrays = {a: self._array(data, a, a, shapes[a]) for a in spec.given}
        dy = (self._array(data, "d" + last, last, shapes[last]) if "d" + last in data
              else np.ones(shapes[last]))
        values = im.forward(spec, self.DERIVED, arrays, self.sizes)
        grads = im.backward(spec, self.DERIVED, values, dy, self.sizes)
        out = values[last]
        inputs.finite_output(np.concatenate([out.ravel(), *(grads[a].ravel() for a in spec.wrt)]),
                             "the gradient")
        return {"out": out.tolist(), "grad": {a: grads[a].tolist() for a in spec.wrt}}

    def _array(self, data: dict, field: str, like: str, shape: list[int]) -> np.ndarray:
        names = "×".join(str(n) for _, n in self.SPEC.arrays[like].axes)
        got = gv.tensor(data[field], f"input.{field}", names)
        if list(got.shape) != shape:
            raise InputError(f"input.{field}: expected shape {names} = "
                             f"{'×'.join(map(str, shape))} at the model's sizes, got "
                             f"{'×'.join(map(str, got.shape))}")
        return got

    # -- rendering ----------------------------------------------------------------------------
    def question_data(self) -> dict[str, Any]:
        """The sizes, the arrays and their shapes, the equations as written."""
        spec = self.SPEC
        return {
            "given_sizes": [(size_symbol(s.name), self.sizes[s.name]) for s in spec.sizes
                            if s.value is not None],
            "derived_sizes": [(size_symbol(s.name), s.shown) for s in spec.sizes
                              if s.value is None],
            "arrays": [(sp.IndexedBase(a), [(i, AxisCount(n)) for i, n in x.axes], a in spec.given)
                       for a, x in spec.arrays.items()],
            "equations": [self._written(e) for e in spec.equations],
            "asked": [sp.IndexedBase("d" + a) for a in self.DERIVED.order],
            "output": sp.IndexedBase(spec.equations[-1].target),
            "upstream": sp.IndexedBase("d" + spec.equations[-1].target),
            "pooled": any(e.mask is not None for e in spec.equations),
        }

    def _written(self, e) -> dict[str, Any]:
        m = self.DERIVED.forward[e.target]
        if e.mask is None:
            rhs = m.rhs
        else:
            (entry,) = [f for f in sp.Mul.make_args(e.terms[0][0])
                        if str(f.base) != e.mask]
            rhs = WindowMax(entry, *(s for s, _ in e.window))
        ranges = [IndexRange(s, n) for _, lim in e.terms for s, n in lim]
        return {"lhs": m.lhs, "rhs": rhs, "ranges": list(dict.fromkeys(ranges))}

    def context(self) -> dict[str, Any]:
        d = self.DERIVED
        steps = []
        for e in reversed(self.SPEC.equations):
            parts = [(a, d.parts[a, e.target]) for a in im.operands(e) if (a, e.target) in d.parts]
            steps.append({"target": sp.IndexedBase(e.target), "mask": e.mask and
                          sp.IndexedBase(e.mask), "map": d.forward[e.target],
                          "window": [s for s, _ in e.window],
                          "parts": [self._part(a, m) for a, m in parts]})
        sums = [(sp.IndexedBase("d" + a), d.total[a]) for a in d.order
                if len([1 for (b, _) in d.parts if b == a]) > 1]
        return {**super().context(), **self.question_data(), "shapes": self.shapes(),
                "steps": steps, "sums": sums, **self.stated()}

    def _part(self, a: str, m) -> dict[str, Any]:
        axes = dict(self.SPEC.arrays[a].axes)
        support = [IndexRange(x, n) for t in m.terms for x, n in t.support
                   if not (x.is_Symbol and axes.get(x) == n)]
        return {"array": sp.IndexedBase(a), "map": m, "support": list(dict.fromkeys(support)),
                "summed": [IndexRange(s, n) for t in m.terms for s, n in t.limits]}

    def stated(self) -> dict[str, Any]:
        """The checks' seed and the gap between pool inputs."""
        return {"seed": ic.SEED, "gap": ic.GAP}


def _symbols(spec: IndexedSpec, d: im.Derived) -> tuple[str, ...]:
    names: set[str] = {s.name for s in spec.sizes} | set(spec.arrays)
    for m in [*d.forward.values(), *d.parts.values()]:
        names |= {str(b.label) for b in m.rhs.atoms(sp.IndexedBase)} | {str(m.base.label)}
        names |= {str(s) for s in m.rhs.free_symbols if isinstance(s, sp.Symbol)}
        names |= {str(s) for s, _ in m.free}
    return tuple(sorted(names))


def indexed_problem(name: str, table: dict[str, Any], where: str) -> type[Problem]:
    """The problem class of the table (``kind = "indexed"``), keyed ``name``; ``where``
    names the table in messages.  Equal tables give classes that behave alike."""
    spec = indexed_spec(name, table, where)
    derived = im.derive_maps(spec)
    defaults = {s.name: s.value for s in spec.sizes if s.value is not None}
    check_sizes(spec, spec.values(defaults, f"{where}.sizes"), f"{where}.sizes")
    params = tuple(Param(n, Int(0, MAX_SIZE), v, f"the size {n} in the checks (0 to "
                         f"{MAX_SIZE})") for n, v in defaults.items())
    results = {"shapes": "Each array's shape at the sizes."}
    results |= {t: f"{t} entry by entry as a sum of products." for t in derived.forward}
    results |= {"d" + a: f"The gradient of L by {a}, by index substitution." for a in
                derived.order}
    attrs = {
        "__module__": __name__, "__doc__": f"{spec.title}: {IndexedProblem.__doc__}",
        "key": name, "title": spec.title, "SPEC": spec, "DERIVED": derived,
        "TABLE": copy.deepcopy(dict(table)), "WHERE": where, "PARAMS": params,
        "SYMBOLS": _symbols(spec, derived), "MAIN": "d" + derived.order[-1],
        "RESULTS": results,
    }
    return type(f"Indexed_{name}", (IndexedProblem,), attrs)
