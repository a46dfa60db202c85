"""The layer as data: sizes, indices, arrays and the three maps the key differentiates.

With x (N×C×H×W), w (F×C×HH×WW), b (F), stride S and zero padding P::

    xpad[n, c, h, k] = x[n, c, h − P, k − P]                           (N×C×(H+2P)×(W+2P))
    out[n, f, i, j]  = b[f] + Σ_{c,a,b'} xpad[n, c, S i + a, S j + b'] w[f, c, a, b']
                                                                        (N×F×H'×W')
    y[n, f, i, j]    = Σ_{a,b'} M[n, f, i, j, a, b'] out[n, f, S_p i + a, S_p j + b']
                                                                        (N×F×H''×W'')

where M is 1 at the first maximum of each HP×WP pooling window (row-major order) and 0
elsewhere: max-pooling is this selection wherever no window holds a tie, and M is constant
near such a point, so its adjoint with M held fixed is the gradient there (a subgradient
at a tie).  ``derive_maps`` applies ``rules.adjoint`` to these three maps.
"""

from __future__ import annotations

import sympy as sp

from derive.cnn_spec import output_side
from derive.problems.conv_pool.rules import LinearMap, Term, adjoint

_size = {"integer": True, "positive": True}
N, C, H, W, F, HH, WW, S = sp.symbols("N C H W F HH WW S", **_size)
P = sp.Symbol("P", integer=True, nonnegative=True)
HP, WP, S_p = sp.symbols("HP WP S_p", **_size)
H1, W1, H2, W2 = sp.symbols("H' W' H'' W''", **_size)  # conv and pool outputs
n, f, i, j, c, a, b_, h, k = sp.symbols("n f i j c a b' h k", integer=True)
x, xpad, w, b, out, y, M = map(sp.IndexedBase, ("x", "xpad", "w", "b", "out", "y", "M"))
dx, dxpad, dw, db, dout, dy = map(sp.IndexedBase, ("dx", "dxpad", "dw", "db", "dout", "dy"))

#: Each array's indices with their counts (x's, w's, ...): the shapes the key states.
X_AXES = ((n, N), (c, C), (h, H), (k, W))
XPAD_AXES = ((n, N), (c, C), (h, H + 2 * P), (k, W + 2 * P))
W_AXES = ((f, F), (c, C), (a, HH), (b_, WW))
B_AXES = ((f, F),)
OUT_AXES = ((n, N), (f, F), (i, H1), (j, W1))
Y_AXES = ((n, N), (f, F), (i, H2), (j, W2))
M_AXES = (*Y_AXES, (a, HP), (b_, WP))

#: Every size and array the key names in its prose, by name, to print through the notation.
NAMES = {"x": x, "xpad": xpad, "w": w, "b": b, "out": out, "y": y, "M": M, "dx": dx,
         "dxpad": dxpad, "dw": dw, "db": db, "dout": dout, "dy": dy, "HH": HH, "WW": WW,
         "HP": HP, "WP": WP, "S_p": S_p, "H1": H1, "W1": W1, "H2": H2, "W2": W2}

PAD = LinearMap(xpad, XPAD_AXES, (Term(x[n, c, h - P, k - P]),))
CONV = LinearMap(out, OUT_AXES, (
    Term(b[f]),
    Term(xpad[n, c, S * i + a, S * j + b_] * w[f, c, a, b_], ((c, C), (a, HH), (b_, WW))),
))
ROUTE = LinearMap(y, Y_AXES, (
    Term(M[n, f, i, j, a, b_] * out[n, f, S_p * i + a, S_p * j + b_], ((a, HP), (b_, WP))),
))
#: The output's indices as the pool's adjoint writes them (h, k run over H', W').
OUT_AT = ((n, N), (f, F), (h, H1), (k, W1))


def derive_maps() -> dict[str, LinearMap]:
    """Every adjoint, by result key: the rule applied to the three maps."""
    return {
        "db": adjoint(CONV, b, B_AXES, dout, db),
        "dw": adjoint(CONV, w, W_AXES, dout, dw),
        "dxpad": adjoint(CONV, xpad, XPAD_AXES, dout, dxpad),
        "dx": adjoint(PAD, x, X_AXES, dxpad, dx),
        "pool_backward": adjoint(ROUTE, out, OUT_AT, dy, dout),
    }


def side_rule(length: sp.Expr, window: sp.Expr, pad: sp.Expr, stride: sp.Expr) -> sp.Expr:
    """The output side where the stride divides ``length + 2 pad − window``: the floor of
    the general rule ⌊(n + 2p − k)/s⌋ + 1 is then its argument."""
    return output_side(length, window, pad, stride).replace(sp.floor, lambda q: q)
