"""The claims of an indexed key, each against the naive loops over the parse trees
(``indexed_loops``), never against the SymPy that derived the formulas:

* every target, evaluated from its map, against the loops, exactly on whole numbers
  (fractions where an equation divides);
* each equation's part of each gradient against a complex step of that equation alone
  (one probe per entry) and, where it is linear in the array, against its explicit matrix
  built column by column from unit arrays in exact arithmetic: the transpose times the
  upstream gradient entry by entry, and the adjoint identity;
* a pool's part against routing by loops and central differences where no window holds a
  tie (entries ``GAP`` apart), and exactly on windows full of ties, where it must pick the
  first maximum in row-major order;
* each whole gradient, through every equation after its array, against central
  differences of L, and a complex step of L where no pool lies on the way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import sympy as sp

from derive.model.indexed import IndexedEquation, IndexedSpec
from derive.problems.conv_pool import indexed_loops as lp
from derive.problems.conv_pool import indexed_maps as im
from derive.verify import Claim, rel_error, routes

SEED = 20261204
#: Pool inputs are drawn with their entries at least this far apart: no ties.
GAP = 1e-2
FLOAT = 1e-12  # float64 recomputation of sums of at most a few thousand products
STEP = routes.SUMMED_CENTRAL_STEP
COMPLEX = "complex step of the naive-loop equation of {t}, one probe per entry"
EXACT = ("exact {kind}: the explicit matrix of the equation of {t} in {a}, its transpose "
         "times d{t} entry by entry, and the adjoint identity; entries that differ")
FORWARD = ("exact {kind}: the equation of {t} by naive loops over every index of its "
           "written form; entries that differ")
ROUTE = "naive loops sending d{t} to each window's first maximum, windows without ties"
POOL_CENTRAL = (f"central differences (step {routes.step_text(STEP)}) of the naive-loop pool "
                "of {t}, windows without ties, one probe per entry")
TIES = ("exact integers, windows full of ties: the first maximum in row-major order, "
        "against naive loops; entries that differ")
CENTRAL = (f"central differences (step {routes.step_text(STEP)}) of L through the naive-loop "
           "equations, one probe per entry")
COMPLEX_L = "complex step of L through the naive-loop equations, one probe per entry"
SHAPES = ("the arrays the naive loops make and the evaluated gradients: shapes that differ")


def describe(spec: IndexedSpec, sizes: dict[str, int]) -> str:
    """``N = 2, C = 3, ...``: the given sizes the checks run at."""
    return ", ".join(f"{s.name} = {sizes[s.name]}" for s in spec.sizes if s.value is not None)


def _gradient(forward: Callable, base: np.ndarray, upstream: np.ndarray,
              route: Callable) -> np.ndarray:
    """∂(Σ upstream · forward(u))/∂u at ``base`` by ``route``, every entry at once."""
    basis = np.eye(base.size).reshape(base.size, *base.shape)
    axes = tuple(range(-upstream.ndim, 0))

    def probe(d):
        return np.sum(upstream * forward(base + d * basis), axis=axes)

    return route(probe).reshape(base.shape)


def _data(spec: IndexedSpec, sizes: dict, rng: np.random.Generator, whole: bool) -> dict:
    exact = whole and any(lp.divides(e) for e in spec.equations)
    out = {}
    for a in spec.given:
        shape = lp.shape(spec, a, sizes)
        out[a] = rng.integers(-3, 4, size=shape) if whole else rng.standard_normal(shape)
        if exact:
            out[a] = out[a].astype(object)
    return out


def forward_claims(spec: IndexedSpec, d: im.Derived, sizes: dict,
                   rng: np.random.Generator) -> Iterator[Claim]:
    """Every target from its map against the loops, exactly."""
    given = _data(spec, sizes, rng, whole=True)
    got = im.forward(spec, d, given, sizes)
    ref = lp.run(spec, given, sizes, exact=True)
    kind = "fractions" if any(lp.divides(e) for e in spec.equations) else "integers"
    for e in spec.equations:
        bad = int(np.sum(got[e.target] != ref[e.target]))
        yield Claim.measured(e.target, FORWARD.format(kind=kind, t=e.target),
                             f"{describe(spec, sizes)}; integers from -3 to 3", bad, 0.0)


def _linear(e: IndexedEquation, a: str) -> bool:
    """Whether every term of ``e`` reads ``a`` at most once (then ``e`` is affine in it)."""
    return all(sum(str(f.base) == a for f in sp.Mul.make_args(factor)
                   if isinstance(f, sp.Indexed)) <= 1 for factor, _ in e.terms)


def step_claims(spec: IndexedSpec, d: im.Derived, sizes: dict,
                rng: np.random.Generator) -> Iterator[Claim]:
    """Each equation's part of each gradient: complex step and explicit matrix, or for a
    pool routing, central differences and ties."""
    values = lp.run(spec, _data(spec, sizes, rng, whole=False), sizes)
    whole = lp.run(spec, _data(spec, sizes, rng, whole=True), sizes, exact=True)
    normal = f"{describe(spec, sizes)}; normal entries, seed {SEED}"
    for e in spec.equations:
        for a in im.operands(e):
            if (a, e.target) not in d.parts:
                continue
            if e.mask is not None:
                yield from _pool_claims(spec, d, e, a, values, sizes, rng)
                continue
            dt = rng.standard_normal(lp.shape(spec, e.target, sizes))
            got = im.part(d, a, e.target, values, dt, sizes)
            ref = _gradient(lambda u, a=a, e=e: lp.equation(spec, e, values | {a: u}, sizes),
                            values[a], dt, routes.complex_step)
            yield Claim.measured("d" + a, COMPLEX.format(t=e.target), normal,
                                 rel_error(got, ref), routes.TOLERANCE["complex step"])
            if _linear(e, a):
                yield _exact_claim(spec, d, e, a, whole, sizes, rng)


def _exact_claim(spec: IndexedSpec, d: im.Derived, e: IndexedEquation, a: str,
                 values: dict, sizes: dict, rng: np.random.Generator) -> Claim:
    shape = lp.shape(spec, a, sizes)
    size = int(np.prod(shape))
    basis = np.eye(size, dtype=np.int64).reshape(size, *shape)
    at_zero = lp.equation(spec, e, values | {a: np.zeros(shape, np.int64)}, sizes, exact=True)
    columns = lp.equation(spec, e, values | {a: basis}, sizes, exact=True) - at_zero
    matrix = columns.reshape(size, -1).T  # column k: the map of the k-th unit array
    dt = rng.integers(-3, 4, size=lp.shape(spec, e.target, sizes))
    got = im.part(d, a, e.target, values, dt, sizes).ravel()
    bad = int(np.sum(got != matrix.T @ dt.ravel()))
    u = np.asarray(values[a]).ravel()
    bad += int(dt.ravel() @ (matrix @ u) != got @ u)
    kind = "fractions" if lp.divides(e) else "integers"
    return Claim.measured("d" + a, EXACT.format(kind=kind, t=e.target, a=a),
                          f"{describe(spec, sizes)}; integers from -3 to 3", bad, 0.0)


def _pool_claims(spec: IndexedSpec, d: im.Derived, e: IndexedEquation, a: str,
                 values: dict, sizes: dict, rng: np.random.Generator) -> Iterator[Claim]:
    shape = lp.shape(spec, a, sizes)
    dt = rng.standard_normal(lp.shape(spec, e.target, sizes))
    u = (rng.permutation(int(np.prod(shape))) * GAP).reshape(shape)  # no ties
    at = values | {a: u}
    got = im.part(d, a, e.target, at | {e.mask: im.mask(e, at, im.symbols(sizes))}, dt, sizes)
    routed = rel_error(got, lp.pool_backward(spec, e, at, dt, sizes))
    ref = _gradient(lambda v: lp.equation(spec, e, values | {a: v}, sizes), u, dt,
                    lambda f: routes.central_difference(f, STEP))
    tied = values | {a: rng.integers(0, 3, size=shape)}
    dt_int = rng.integers(-3, 4, size=dt.shape)
    got_tied = im.part(d, a, e.target, tied | {e.mask: im.mask(e, tied, im.symbols(sizes))},
                       dt_int, sizes)
    ties = int(np.sum(got_tied != lp.pool_backward(spec, e, tied, dt_int, sizes)))
    where = f"{describe(spec, sizes)}; entries {GAP:g} apart (ties: integers 0 to 2)"
    yield Claim.measured("d" + a, ROUTE.format(t=e.target), where, routed, FLOAT)
    yield Claim.measured("d" + a, POOL_CENTRAL.format(t=e.target), where,
                         rel_error(got, ref), routes.TOLERANCE["central difference"])
    yield Claim.measured("d" + a, TIES, where, ties, 0.0)


def gradient_claims(spec: IndexedSpec, d: im.Derived, sizes: dict,
                    rng: np.random.Generator, shapes: dict) -> Iterator[Claim]:
    """Each whole gradient against differences of L through the loops after its array,
    and the shapes of every array and gradient against the loops'."""
    given = _data(spec, sizes, rng, whole=False)
    values = lp.run(spec, given, sizes)
    last = spec.equations[-1].target
    dy = rng.standard_normal(values[last].shape)
    got = im.backward(spec, d, im.forward(spec, d, given, sizes), dy, sizes)
    targets = [e.target for e in spec.equations]
    normal = f"{describe(spec, sizes)}; normal entries, seed {SEED}"
    for a in d.order:
        start = targets.index(a) + 1 if a in targets else 0

        def loss(u, a=a, start=start):
            return lp.run(spec, values | {a: u}, sizes, start)[last]

        ref = _gradient(loss, values[a], dy, lambda f: routes.central_difference(f, STEP))
        yield Claim.measured("d" + a, CENTRAL, normal, rel_error(got[a], ref),
                             routes.TOLERANCE["central difference"])
        if all(e.mask is None for e in spec.equations[start:]):
            ref = _gradient(loss, values[a], dy, routes.complex_step)
            yield Claim.measured("d" + a, COMPLEX_L, normal, rel_error(got[a], ref),
                                 routes.TOLERANCE["complex step"])
    made = {k: list(np.shape(v)) for k, v in values.items() if k in spec.arrays}
    bad = sum(made[k] != shapes[k] for k in spec.arrays)
    bad += sum(list(got[a].shape) != shapes[a] for a in d.order)
    yield Claim.measured("shapes", SHAPES, describe(spec, sizes), bad, 0.0)
