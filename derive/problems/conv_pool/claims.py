"""The claims of the conv_pool key, each against the naive loops (``loops``).

* the side rules, instantiated on many layers, against the shape of the naive forward
  pass and against counting window positions (exact);
* the correlation and every derived gradient, evaluated, against naive-loop backprop,
  against the complex step and central differences of the naive forward pass (one probe
  per entry), and, in integer arithmetic, against the explicit matrix A of each map:
  ⟨dout, A u⟩ = ⟨Aᵀ dout, u⟩ and the derived gradient equal to Aᵀ dout entry by entry;
* the pool's routing against naive loops, against central differences at points whose
  windows hold no ties (maxima at least ``GAP`` apart), and exactly on inputs full of ties,
  where it must pick the first maximum in row-major order.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import sympy as sp

from derive.problems.conv_pool import loops
from derive.problems.conv_pool import model as mo
from derive.problems.conv_pool.numeric import Geometry
from derive.verify import Claim

SEED = 20261202
#: Further layers (H, W, HH, WW, S, P) for the side rule: strides 1 to 3, paddings 0 to
#: 2, non-square inputs and kernels, a window as wide as the padded input.
SIDE_CASES = [(5, 5, 3, 3, 1, 1), (6, 4, 2, 2, 2, 0), (8, 6, 4, 2, 2, 1), (9, 6, 3, 3, 3, 0),
              (5, 7, 5, 3, 1, 2), (4, 4, 1, 1, 1, 0), (7, 5, 3, 5, 2, 0), (3, 3, 5, 5, 1, 1)]
#: Further pools (H', W', HP, WP, S_p): overlapping (stride 1) and non-square windows.
POOL_CASES = [(4, 4, 2, 2, 2), (5, 5, 3, 3, 2), (6, 4, 2, 2, 1), (6, 6, 3, 3, 3),
              (4, 6, 2, 3, 1)]
#: Further layers for the gradients: (N, C, F, H, W, HH, WW, S, P, pool).
GRAD_CASES = [Geometry(1, 2, 2, 5, 5, 3, 3, 1, 1, (2, 2, 1)),
              Geometry(2, 1, 3, 6, 4, 2, 2, 2, 0, (2, 1, 1)),
              Geometry(1, 2, 2, 8, 6, 4, 2, 2, 1, (3, 3, 1)),
              Geometry(1, 1, 2, 5, 7, 5, 3, 1, 2, (2, 2, 2))]
#: Tiny layers for the explicit matrices (x of at most 50 entries).
EXACT_CASES = [Geometry(1, 2, 2, 5, 4, 3, 2, 1, 1), Geometry(1, 2, 2, 5, 5, 3, 3, 2, 1)]
#: Pool inputs are drawn with their entries at least this far apart: no ties.
GAP = 1e-2
FLOAT = 1e-12  # float64 recomputation: sums of at most a few hundred products
#: Loop iterations times probes above which the gradient claims cap the layer's channels.
BUDGET = 10**8
GRADS = ("db", "dw", "dxpad", "dx")


def describe(g: Geometry) -> str:
    """``x 2×3×7×7, w 4×3×3×3, S = 2, P = 1, pool 2×2/2``."""
    pool = "" if g.pool is None else f", pool {g.pool[0]}×{g.pool[1]}/{g.pool[2]}"
    return (f"x {g.N}×{g.C}×{g.H}×{g.W}, w {g.F}×{g.C}×{g.HH}×{g.WW}, "
            f"S = {g.S}, P = {g.P}{pool}")


# -- the side rules ---------------------------------------------------------------------------
SIDE_KEYS = ("H_out", "W_out", "H_pool", "W_pool")


def side_claims(rules: dict[str, sp.Expr], g: Geometry) -> Iterator[Claim]:
    """Each side rule at every case against the naive pass's shape and window counts."""
    bad = {key: [0, 0] for key in SIDE_KEYS}  # [against the shape, against counting]
    for h, w, hh, ww, s, p in [(g.H, g.W, g.HH, g.WW, g.S, g.P), *SIDE_CASES]:
        shape = loops.conv_forward(np.zeros((1, 1, h, w)), np.zeros((1, 1, hh, ww)),
                                   np.zeros(1), s, p).shape[2:]
        for axis, key, side, window in ((0, "H_out", h, hh), (1, "W_out", w, ww)):
            got = _rule(rules[key], {mo.H: side, mo.W: side, mo.HH: window, mo.WW: window,
                                     mo.S: s, mo.P: p})
            bad[key][0] += got != shape[axis]
            bad[key][1] += got != loops.out_side(side, window, p, s)
    own = [(*_conv_out(rules, g), *g.pool)] if g.pool is not None else []
    for h, w, ph, pw, s in own + POOL_CASES:
        shape = loops.pool_forward(np.zeros((1, 1, h, w)), ph, pw, s).shape[2:]
        for axis, key, side, window in ((0, "H_pool", h, ph), (1, "W_pool", w, pw)):
            got = _rule(rules[key], {mo.H1: side, mo.W1: side, mo.HP: window,
                                     mo.WP: window, mo.S_p: s})
            bad[key][0] += got != shape[axis]
            bad[key][1] += got != loops.out_side(side, window, 0, s)
    sizes = (f"the layer, {len(SIDE_CASES)} further convolutions and {len(POOL_CASES)} "
             "further pools")
    for key, (shape_bad, count_bad) in bad.items():
        yield Claim.measured(key, "the rule against the naive-loop forward pass's shape",
                             sizes, shape_bad, 0.0)
        yield Claim.measured(key, "the rule against counting the window positions", sizes,
                             count_bad, 0.0)


def _rule(rule: sp.Expr, values: dict) -> int | None:
    got = rule.xreplace({k: sp.Integer(v) for k, v in values.items()})
    return int(got) if got.is_Integer else None


def _conv_out(rules: dict[str, sp.Expr], g: Geometry) -> tuple[int, int]:
    s = g.sizes(rules)
    return s[mo.H1], s[mo.W1]


def shapes_claim(shapes: dict[str, list[int]], g: Geometry) -> Claim:
    """The stated shapes against the arrays the naive loops make on the layer."""
    x, w = np.zeros((g.N, g.C, g.H, g.W)), np.zeros((g.F, g.C, g.HH, g.WW))
    made = {"x": x.shape, "xpad": loops.padded(x, g.P).shape, "w": w.shape,
            "b": (g.F,), "out": loops.conv_forward(x, w, np.zeros(g.F), g.S, g.P).shape}
    if g.pool is not None:
        made["y"] = loops.pool_forward(np.zeros(made["out"]), *g.pool).shape
    bad = sum(list(made[k]) != shapes.get(k) for k in made) + len(set(shapes) - set(made))
    return Claim.measured("shapes", "the arrays the naive loops make: shapes that differ",
                          describe(g), bad, 0.0)
