"""The gradient claims of the conv_pool key (see ``claims`` for the list of routes).

Every derived formula is evaluated by ``numeric.forward_backward`` on seeded random data
and compared with a reference that never reads it: naive-loop backprop, a complex step or
a central difference per input entry through the naive forward pass (a batch of probes in
one pass), or the explicit matrix of the map built column by column from unit arrays.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import numpy as np
import sympy as sp

from derive.problems.conv_pool import loops
from derive.problems.conv_pool import model as mo
from derive.problems.conv_pool.claims import (
    EXACT_CASES,
    FLOAT,
    GAP,
    GRAD_CASES,
    GRADS,
    POOL_CASES,
    SEED,
    describe,
)
from derive.problems.conv_pool.evaluate import evaluate
from derive.problems.conv_pool.numeric import Geometry, forward_backward, max_pool
from derive.problems.conv_pool.rules import LinearMap
from derive.verify import Claim, rel_error, routes

LOOPS = "naive loops accumulating through the forward pass's index map"
COMPLEX = "complex step of the naive-loop forward pass, one probe per entry"
#: Central differences of the convolution, linear in each operand: no truncation error,
#: so the larger step of a summed output (less round-off) serves.
STEP = routes.SUMMED_CENTRAL_STEP
CENTRAL = (f"central differences (step {routes.step_text(STEP)}) of the naive-loop forward "
           "pass, one probe per entry")
#: The pool is linear only between ties: the default step, far below the gap GAP.
POOL_CENTRAL = (f"central differences (step {routes.step_text(STEP)}) of the naive-loop "
                "forward pass, one probe per entry")
EXACT = ("exact integers: the explicit matrix of the map, its transpose times the upstream "
         "gradient entry by entry, and the adjoint identity; entries that differ")
TIES = ("exact integers, windows full of ties: the first maximum in row-major order, "
        "against naive loops; entries that differ")
ROUTES = {COMPLEX: routes.complex_step,
          CENTRAL: lambda g: routes.central_difference(g, STEP)}


def _gradient(forward: Callable, base: np.ndarray, upstream: np.ndarray,
              route: Callable) -> np.ndarray:
    """∂(Σ upstream · forward(u))/∂u at ``base`` by ``route``, every entry at once."""
    basis = np.eye(base.size).reshape(base.size, *base.shape)

    def probe(d):
        return np.sum(upstream * forward(base + d * basis), axis=(-4, -3, -2, -1))

    return route(probe).reshape(base.shape)


def _probes(g: Geometry, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> dict:
    """Per gradient: the array it is taken by and the naive forward pass as its function."""
    return {
        "db": (b, lambda u: loops.conv_forward(x, w, u, g.S, g.P)),
        "dw": (w, lambda u: loops.conv_forward(x, u, b, g.S, g.P)),
        "dxpad": (loops.padded(x, g.P), lambda u: loops.conv_forward(u, w, b, g.S, 0)),
        "dx": (x, lambda u: loops.conv_forward(u, w, b, g.S, g.P)),
    }


def _linear_maps(g: Geometry, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> dict:
    """Per gradient: its operand and the naive forward pass as a linear function of it
    (the other operand that would add a constant set to zero)."""
    zero_b, zero_w = np.zeros_like(b), np.zeros_like(w)
    return {"db": (b, lambda u: loops.conv_forward(x, zero_w, u, g.S, g.P)),
            "dw": (w, lambda u: loops.conv_forward(x, u, zero_b, g.S, g.P)),
            "dxpad": (loops.padded(x, g.P), lambda u: loops.conv_forward(u, w, zero_b, g.S, 0)),
            "dx": (x, lambda u: loops.conv_forward(u, w, zero_b, g.S, g.P))}


def _layer_data(g: Geometry, rng: np.random.Generator, integers: bool = False) -> tuple:
    draw = ((lambda s: rng.integers(-3, 4, size=s)) if integers else rng.standard_normal)
    x, w, b = draw((g.N, g.C, g.H, g.W)), draw((g.F, g.C, g.HH, g.WW)), draw((g.F,))
    return x, w, b


def grad_claims(maps: dict[str, LinearMap], rules: dict[str, sp.Expr], g: Geometry,
                rng: np.random.Generator) -> Iterator[Claim]:
    """The correlation and every gradient against loops, complex step, central
    differences (the layer and ``GRAD_CASES``), and the explicit matrices."""
    worst: dict[tuple[str, str], float] = {}
    for case in [g, *GRAD_CASES]:
        case = dataclasses.replace(case, pool=None)  # dout arrives at the convolution
        x, w, b = _layer_data(case, rng)
        sizes = case.sizes(rules)
        dout = rng.standard_normal((case.N, case.F, sizes[mo.H1], sizes[mo.W1]))
        got = forward_backward(maps, case, sizes, {"x": x, "w": w, "b": b}, dout)
        naive = loops.conv_backward(dout, x, w, case.S, case.P)
        errors = {("conv", LOOPS): rel_error(got["conv"],
                                             loops.conv_forward(x, w, b, case.S, case.P))}
        for key, (base, forward) in _probes(case, x, w, b).items():
            errors[key, LOOPS] = rel_error(got[key], naive[key])
            for method, route in ROUTES.items():
                errors[key, method] = rel_error(got[key], _gradient(forward, base, dout, route))
        for k, e in errors.items():
            worst[k] = max(worst.get(k, 0.0), e)
    layer = describe(dataclasses.replace(g, pool=None))
    sizes = f"{layer}, and {len(GRAD_CASES)} further layers; normal entries, seed {SEED}"
    tolerance = {LOOPS: FLOAT, COMPLEX: routes.TOLERANCE["complex step"],
                 CENTRAL: routes.TOLERANCE["central difference"]}
    for (key, method), error in worst.items():
        yield Claim.measured(key, method, sizes, error, tolerance[method])
    yield from _exact_claims(maps, rules, rng)


def _exact_claims(maps: dict[str, LinearMap], rules: dict[str, sp.Expr],
                  rng: np.random.Generator) -> Iterator[Claim]:
    bad = dict.fromkeys(GRADS, 0)
    for g in EXACT_CASES:
        x, w, b = _layer_data(g, rng, integers=True)
        sizes = g.sizes(rules)
        dout = rng.integers(-3, 4, size=(g.N, g.F, sizes[mo.H1], sizes[mo.W1]))
        got = forward_backward(maps, g, sizes, {"x": x, "w": w, "b": b}, dout)
        linear = _linear_maps(g, x, w, b)
        for key, (base, forward) in linear.items():
            a = loops.explicit_matrix(forward, base.shape)
            adjoint = a.T @ dout.ravel()
            bad[key] += int(np.sum(got[key].ravel() != adjoint))
            bad[key] += int(dout.ravel() @ (a @ base.ravel()) != got[key].ravel() @ base.ravel())
    sizes = "; ".join(describe(g) for g in EXACT_CASES) + "; integers from -3 to 3"
    for key, count in bad.items():
        yield Claim.measured(key, EXACT, sizes, count, 0.0)


def _pool_sizes(rules: dict[str, sp.Expr], shape: tuple, pool: tuple) -> dict:
    s = {mo.N: shape[0], mo.F: shape[1], mo.H1: shape[2], mo.W1: shape[3],
         mo.HP: pool[0], mo.WP: pool[1], mo.S_p: pool[2]}
    return s | {mo.H2: int(rules["H_pool"].xreplace(s)), mo.W2: int(rules["W_pool"].xreplace(s))}


def pool_claims(maps: dict[str, LinearMap], rules: dict[str, sp.Expr], g: Geometry,
                rng: np.random.Generator) -> Iterator[Claim]:
    """The pool's routing against loops and central differences without ties, and
    exactly on inputs with many ties."""
    s = g.sizes(rules)
    cases = [((g.N, g.F, s[mo.H1], s[mo.W1]), g.pool)] if g.pool is not None else []
    cases += [((1, 2, h, w), (ph, pw, st)) for h, w, ph, pw, st in POOL_CASES]
    worst = {LOOPS: 0.0, POOL_CENTRAL: 0.0, TIES: 0.0}
    for shape, pool in cases:
        sizes = _pool_sizes(rules, shape, pool)
        dy = rng.standard_normal((*shape[:2], sizes[mo.H2], sizes[mo.W2]))
        u = (rng.permutation(int(np.prod(shape))) * GAP).reshape(shape)  # no ties
        got = evaluate(maps["pool_backward"], {"dy": dy, "M": max_pool(u, *pool)[1]}, sizes)
        worst[LOOPS] = max(worst[LOOPS], rel_error(got, loops.pool_backward(dy, u, *pool)))
        # A probe moves L = sum(dy * y), a sum of many terms, as in the convolution's claims.
        ref = _gradient(lambda v, pool=pool: loops.pool_forward(v, *pool), u, dy,
                        lambda f: routes.central_difference(f, STEP))
        worst[POOL_CENTRAL] = max(worst[POOL_CENTRAL], rel_error(got, ref))
        tied, dy_int = rng.integers(0, 3, size=shape), rng.integers(-3, 4, size=dy.shape)
        got = evaluate(maps["pool_backward"], {"dy": dy_int, "M": max_pool(tied, *pool)[1]},
                       sizes)
        worst[TIES] += int(np.sum(got != loops.pool_backward(dy_int, tied, *pool)))
    pools = f"{len(POOL_CASES)} further pools" + (f", and the layer's {g.pool[0]}×"
                                                 f"{g.pool[1]}/{g.pool[2]}" if g.pool else "")
    tolerance = {LOOPS: FLOAT, POOL_CENTRAL: routes.TOLERANCE["central difference"],
                 TIES: 0.0}
    for method, error in worst.items():
        yield Claim.measured("pool_backward", method, f"{pools}; entries {GAP:g} apart "
                             "(ties: integers 0 to 2)", error, tolerance[method])
