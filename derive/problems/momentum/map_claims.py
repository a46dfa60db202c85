"""The claims of a map given as data, each checked by a route that does not reuse the
derivation: the map runs as its parse tree evaluated on arrays (``derive.model.maps.run``),
with momentum's non-quadratic J, for D = 1..4.

* the inverse: composed with that map (float64), and substituted into the updates (SymPy);
* the factors and their product: instantiated at the state (H_u the Hessian of J at u)
  against the complex-step Jacobian of the map;
* the determinants: each factor's rule against the determinant of the instantiated factor,
  and the map's against the complex-step Jacobian's ``slogdet``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from functools import cached_property

import numpy as np
import sympy as sp

from derive.engine.functions import numeric
from derive.engine.numeric import lambdify
from derive.model.maps import Grad, MapSpec, constant, new, old, run
from derive.problems.momentum.claims import ROUND_TRIP_TOL
from derive.problems.momentum.mapping import DiagOf, EntryProduct, Inverse, residual
from derive.problems.momentum.model import D, explicit, explicit_block, grad_j, hess_j
from derive.verify import Claim, rel_error
from derive.verify.routes import COMPLEX_STEP, complex_step, jacobian, nonzero_entries, step_text

#: The sizes of every numeric check.
MAP_DIMS = (1, 2, 3, 4)
#: A complex-step Jacobian is exact to rounding; the instantiated factors carry a few ulps
#: of each product, and determinants of these small, well-scaled matrices a few more.
JACOBIAN_TOL, DET_TOL = 1e-12, 1e-10
#: The states the checks draw lie here: inside the domain of log and sqrt, about J's
#: minimum at (1, ..., 1).
LOW, HIGH = 0.2, 1.2


class Compiled:
    """Derived expressions compiled once each for NumPy (∇J of the numeric J), in x^(k),
    x^(k+1) and the constants: every check point evaluates the same few."""

    def __init__(self, spec: MapSpec) -> None:
        self.spec, self.done = spec, {}
        self.args = [*map(old, spec.states), *map(new, spec.states),
                     *map(constant, spec.constants), sp.Symbol(spec.objective or "J")]

    def __call__(self, expr: sp.Expr):
        if expr not in self.done:
            self.done[expr] = lambdify(
                self.args, expr,
                modules=[{"Grad": lambda _, u: grad_j(u)}, numeric("numpy"), "numpy"])
        return self.done[expr]


class Point:
    """A state s = (x_1, ..., x_m) stacked, the map's step from it, and any derived
    expression evaluated there (∇J and H of the numeric J)."""

    def __init__(self, spec: MapSpec, s: np.ndarray, values: dict[str, float],
                 compiled: Compiled) -> None:
        self.spec, self.s, self.values, self.compiled = spec, s, values, compiled
        self.n = s.size // len(spec.states)
        self.olds = dict(zip(spec.states, np.split(s, len(spec.states)), strict=True))

    @cached_property
    def news(self) -> dict[str, np.ndarray]:
        return run(self.spec, self.olds, self.values, grad_j)

    def value(self, expr: sp.Expr) -> np.ndarray:
        """``expr`` (in x^(k), x^(k+1) and the constants) at this point, entry by entry."""
        args = [*self.olds.values(), *(self.news[x] for x in self.spec.states),
                *(self.values[c] for c in self.spec.constants), 0.0]
        out = self.compiled(expr)(*args)
        return np.broadcast_to(np.asarray(out, dtype=float), (self.n,))

    @cached_property
    def numbers(self) -> dict:
        return {constant(c): v for c, v in self.values.items()}

    def matrix(self, m: sp.MatrixExpr, hess: dict) -> np.ndarray:
        """A block matrix, or one block, of the derivation as numbers at this point."""
        mats = {h.name: hess_j(self.value(u)) for u, h in hess.items()}

        def leaf(x):
            return np.diag(self.value(x.args[0])) if isinstance(x, DiagOf) else None

        if isinstance(m, sp.BlockMatrix):
            return explicit(m, self.n, mats, self.numbers, leaf)
        return explicit_block(m, self.n, mats, self.numbers, leaf)

    def det(self, expr: sp.Expr, hess: dict) -> float:
        """A derived determinant at this point: each det(M) of a block and each product of
        entries as a number."""
        dets = {d: sp.Float(np.linalg.det(self.matrix(d.args[0], hess)), 30)
                for d in expr.atoms(sp.Determinant)}
        dets |= {d: sp.Float(np.prod(self.value(d.args[0])), 30)
                 for d in expr.atoms(EntryProduct)}
        return float(expr.xreplace(dets).xreplace(self.numbers).subs(D, self.n))

    def step(self, s: np.ndarray) -> np.ndarray:
        """The map on a stacked (possibly complex) state."""
        olds = dict(zip(self.spec.states, np.split(s, len(self.spec.states)), strict=True))
        out = run(self.spec, olds, self.values, grad_j)
        return np.concatenate([out[x] for x in self.spec.states])


def points(spec: MapSpec, values: dict[str, float], rng: np.random.Generator) -> list[Point]:
    """One check point per size of ``MAP_DIMS``, drawn from ``rng``."""
    compiled = Compiled(spec)
    return [Point(spec, rng.uniform(LOW, HIGH, len(spec.states) * n), values, compiled)
            for n in MAP_DIMS]


def _sizes(objective: bool = True) -> str:
    """The numeric checks' sizes; the objective is named only for a map that has one."""
    tail = "; non-quadratic J" if objective else ""
    return f"D = {', '.join(map(str, MAP_DIMS))}{tail}"


def inverse_claims(spec: MapSpec, inverse: Inverse, points: list[Point]) -> Iterator[Claim]:
    """Each solved state after the map against the state; with every state solved, the map
    after the inverse on the map's image (where an inverse is defined) too."""
    exprs = {x: e for x, _, e, _ in inverse.solved}
    there = {x: 0.0 for x in exprs}
    back = 0.0
    for pt in points:
        image = np.concatenate([pt.news[x] for x in spec.states])
        at = Point(spec, image, pt.values, pt.compiled)  # the inverse reads s' = at.olds
        for x in exprs:
            there[x] = max(there[x], rel_error(at.value(_as_old(exprs[x], spec)), pt.olds[x]))
        if inverse.complete:
            s0 = np.concatenate([at.value(_as_old(exprs[x], spec)) for x in spec.states])
            back = max(back, rel_error(pt.step(s0), image))
    sizes = _sizes(any(e.rhs.has(Grad) for e in spec.equations))
    for x in exprs:
        yield Claim.measured(f"inverse_{x}", "float64: the inverse after the map", sizes,
                             there[x], ROUND_TRIP_TOL)
    if inverse.complete:
        first = spec.equations[-1].target
        yield Claim.measured(f"inverse_{first}", "float64: the map after the inverse, on the "
                             "map's image", sizes, back, ROUND_TRIP_TOL)


def _as_old(expr: sp.Expr, spec: MapSpec) -> sp.Expr:
    # An inverse reads s^(k+1); evaluated at a point, the point's own state plays it.
    return expr.xreplace({new(x): old(x) for x in spec.states})


def symbolic_inverse_claims(spec: MapSpec, inverse: Inverse) -> Iterator[Claim]:
    """Each solved old value put back into its update gives the new value (exactly)."""
    rhs = {e.target: e.rhs for e in spec.equations}
    for x, chain, _, positive in inverse.solved:
        r = residual(rhs[x], old(x), chain, new(x), positive)
        sizes = "symbolic, any D (elementwise)" + (", positive entries" if positive else "")
        yield Claim(f"inverse_{x}", "symbolic: the update at the solved value minus the new",
                    sizes, 0.0, lambda r=r: nonzero_entries(r))


def jacobian_claims(fs, product, dets, det, hess, points: list[Point]) -> Iterator[Claim]:
    """The factors, their product and the determinants against the complex-step Jacobian."""
    worst = {"factors": 0.0, "product": 0.0, "dets": 0.0, "det": 0.0}
    for pt in points:
        jac = jacobian(pt.step, pt.s, route=complex_step)
        mats = [pt.matrix(f, hess) for f in fs]
        worst["factors"] = max(worst["factors"], rel_error(jac, _chain(mats)))
        worst["product"] = max(worst["product"], rel_error(jac, pt.matrix(product, hess)))
        for m, d in zip(mats, dets, strict=True):
            worst["dets"] = max(worst["dets"], rel_error(np.linalg.det(m), pt.det(d, hess)))
        worst["det"] = max(worst["det"], _log_det_error(jac, pt.det(det, hess)))
    method = f"complex step (h = {step_text(COMPLEX_STEP)}) of the map"
    sizes = _sizes(bool(hess))
    yield Claim.measured("jacobian_factors", method, sizes, worst["factors"], JACOBIAN_TOL)
    yield Claim.measured("jacobian", method, sizes, worst["product"], JACOBIAN_TOL)
    yield Claim.measured("factor_dets", "float64 determinant of each instantiated factor",
                         sizes, worst["dets"], DET_TOL)
    yield Claim.measured("det_jacobian", "log |det| of the complex-step Jacobian against the "
                         "log of the claim, signs compared", sizes, worst["det"], DET_TOL)


def _chain(mats: list[np.ndarray]) -> np.ndarray:
    out = mats[0]
    for m in mats[1:]:
        out = m @ out
    return out


def _log_det_error(jac: np.ndarray, claim: float) -> float:
    """|log |det J| - log |claim||, the relative error of a determinant; a wrong sign or a
    zero on one side only is an error."""
    sign, logdet = np.linalg.slogdet(jac)
    if claim == 0 or sign == 0:
        return 0.0 if claim == sign == 0 else math.inf
    return abs(logdet - math.log(abs(claim))) if np.sign(claim) == sign else math.inf

