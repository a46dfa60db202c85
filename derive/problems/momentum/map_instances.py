"""A map given as data, written out entry by entry for D = 1, 2 with an unspecified J: the
exact route to its Jacobian, as momentum's ``claims.map_jacobian`` is for momentum.

Each state becomes D symbols, ∇J at the k-th point u becomes D undefined functions
g_{k,i}(u_1, ..., u_D), and the updates run in order on these; SymPy's ``jacobian()`` of
the result, with every ∂g_{k,i}/∂u_l written h^{(k)}_{il} (a symmetric Hessian), is what
the derived factors, their product and the determinants are compared with, exactly.
"""

from __future__ import annotations

from collections.abc import Iterator

import sympy as sp

from derive.model.maps import Grad, MapSpec, new, old
from derive.problems.momentum.mapping import DiagOf, EntryProduct
from derive.problems.momentum.model import D, explicit, explicit_block
from derive.verify import Claim
from derive.verify.routes import nonzero_entries

#: The sizes written out; a full determinant of the map's Jacobian only up to this many
#: rows (a symbolic determinant grows fast).
INSTANCE_DIMS, FULL_DET_ROWS = (1, 2), 4
#: Maps written out at all: at most this many states, and operations in the blocks of their
#: factors (past these SymPy's simplification of the written-out entries takes a minute: a
#: nest of eight tanh has 59, a product of four 16th powers 51, a coupling layer 19).
INSTANCE_STATES, INSTANCE_OPS = 3, 30


def small(spec: MapSpec, factors: list[sp.BlockMatrix]) -> bool:
    """Whether the map is small enough to be written out entry by entry.  A root in a
    block (RMSProp's sqrt(v' + 1)) makes the exact zero test of the written-out entries and
    determinants take minutes, so such a map is checked by the numeric routes alone."""
    blocks = [b for f in factors for b in f.blocks]
    ops = sum(sp.count_ops(b) for b in blocks)
    rooted = any(not p.exp.is_Integer for b in blocks for p in b.atoms(sp.Pow))
    return len(spec.states) <= INSTANCE_STATES and ops <= INSTANCE_OPS and not rooted


class Instance:
    """The map at D = ``n``: its entries, its ``jacobian()``, the derivation's blocks."""

    def __init__(self, spec: MapSpec, hess: dict, n: int) -> None:
        self.spec, self.n = spec, n
        self.points = {u: k for k, u in enumerate(hess)}
        self.hess = {h.name: sp.Matrix(n, n, lambda i, j, k=k: _h(k, i, j))
                     for k, h in enumerate(hess.values())}
        self.env = {old(x): [sp.Symbol(f"{x}_{j + 1}") for j in range(n)] for x in spec.states}
        for e in spec.equations:  # each update sees the entries earlier ones left
            self.env[new(e.target)] = [self.entry(e.rhs, j) for j in range(n)]
        image = [v for x in spec.states for v in self.env[new(x)]]
        olds = [v for x in spec.states for v in self.env[old(x)]]
        # Each slope of g, then the substitution of the point it is taken at (now idle).
        jac = sp.Matrix(image).jacobian(olds).replace(_is_slope, self._slope)
        self.jacobian = jac.replace(lambda e: isinstance(e, sp.Subs), lambda e: e.doit())

    def entry(self, e: sp.Expr, j: int) -> sp.Expr:
        """Entry ``j`` of the elementwise expression ``e`` (∇J at u: g_{k,j}(u))."""
        grads = {g: self._g(g, j) for g in e.atoms(Grad)
                 if not any(h != g and h.args[1].has(g) for h in e.atoms(Grad))}
        return e.xreplace(grads).xreplace({s: v[j] for s, v in self.env.items()})

    def _g(self, g: Grad, j: int) -> sp.Expr:
        point = [self.entry(g.args[1], i) for i in range(self.n)]
        return sp.Function(f"g_{self.points[g.args[1]]}_{j}")(*point)

    def _slope(self, deriv: sp.Derivative) -> sp.Expr:
        """∂g_{k,i}/∂u_l as the Hessian entry h^{(k)}_{il}."""
        f = deriv.expr
        (var, _), = deriv.variable_count
        _, k, i = f.func.__name__.split("_")
        return _h(int(k), int(i), list(f.args).index(var))

    def leaf(self, x):
        """A diagonal block written out: diag of its vector's entries."""
        return sp.diag(*[self.entry(x.args[0], j) for j in range(self.n)]) if isinstance(
            x, DiagOf) else None

    def matrix(self, m) -> sp.Matrix:
        if isinstance(m, sp.BlockMatrix):
            return explicit(m, self.n, self.hess, None, self.leaf)
        return explicit_block(m, self.n, self.hess, None, self.leaf)

    def det(self, expr: sp.Expr) -> sp.Expr:
        """A derived determinant at D = n: det(M) and products of entries written out."""
        out = {d: self.matrix(d.args[0]).det(method="berkowitz")
               for d in expr.atoms(sp.Determinant)}
        out |= {p: sp.Mul(*[self.entry(p.args[0], j) for j in range(self.n)])
                for p in expr.atoms(EntryProduct)}
        return expr.xreplace(out).subs(D, self.n)


def _h(k: int, i: int, j: int) -> sp.Symbol:
    return sp.Symbol(f"h^({k + 1})_{min(i, j) + 1}{max(i, j) + 1}")


def _is_slope(e: sp.Expr) -> bool:
    return isinstance(e, sp.Derivative) and e.expr.func.__name__.startswith("g_")


def instance_claims(spec: MapSpec, fs, product, dets, det, hess) -> Iterator[Claim]:
    """The factors, their product and the determinants against ``jacobian()`` of the map
    written out, exactly (tolerance 0: entries that fail to vanish)."""
    bad = {"factors": 0, "product": 0, "dets": 0, "det": 0}
    for n in INSTANCE_DIMS:
        inst = Instance(spec, hess, n)
        mats = [inst.matrix(f) for f in fs]
        chain = mats[0]
        for m in mats[1:]:
            chain = m * chain
        bad["factors"] += nonzero_entries(chain - inst.jacobian)
        bad["product"] += nonzero_entries(inst.matrix(product) - inst.jacobian)
        bad["dets"] += nonzero_entries(sp.Matrix([m.det(method="berkowitz") - inst.det(d)
                                                  for m, d in zip(mats, dets, strict=True)]))
        if inst.jacobian.rows <= FULL_DET_ROWS:
            bad["det"] += nonzero_entries(inst.jacobian.det(method="berkowitz") - inst.det(det))
    sizes = f"D = {', '.join(map(str, INSTANCE_DIMS))}" + (
        ", symbolic Hessian entries, unspecified J" if hess else "")
    route = "symbolic: against the map written out entry by entry and differentiated"
    yield Claim.measured("jacobian_factors", route, sizes, bad["factors"], 0.0)
    yield Claim.measured("jacobian", route, sizes, bad["product"], 0.0)
    yield Claim.measured("factor_dets", "symbolic determinant of each written-out factor",
                         sizes, bad["dets"], 0.0)
    yield Claim.measured("det_jacobian", f"symbolic determinant of the written-out Jacobian "
                         f"(at most {FULL_DET_ROWS} rows)", sizes, bad["det"], 0.0)
