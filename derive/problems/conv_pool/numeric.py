"""The layer on numbers by the key's formulas: the forward maps and the derived adjoints,
each evaluated by ``evaluate``; max-pooling's routing array M from its windows.

``forward_backward`` is what ``derive eval`` and the claims both run: it pads, convolves
and pools through the model's maps, then sends the upstream gradient back through the
derived adjoints (pool, then convolution, then padding).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp
from numpy.lib.stride_tricks import sliding_window_view

from derive.problems.conv_pool import model as mo
from derive.problems.conv_pool.evaluate import evaluate
from derive.problems.conv_pool.rules import LinearMap


@dataclass(frozen=True)
class Geometry:
    """Sizes of one layer: x N×C×H×W, w F×C×HH×WW, stride, padding, and the pool's
    window and stride (None: no pool)."""

    N: int
    C: int
    F: int
    H: int
    W: int
    HH: int
    WW: int
    S: int
    P: int
    pool: tuple[int, int, int] | None = None

    def sizes(self, rules: dict[str, sp.Expr]) -> dict[sp.Symbol, int]:
        """Every size symbol's value, the outputs' by the derived side rules."""
        s = {mo.N: self.N, mo.C: self.C, mo.F: self.F, mo.H: self.H, mo.W: self.W,
             mo.HH: self.HH, mo.WW: self.WW, mo.S: self.S, mo.P: self.P}
        s[mo.H1], s[mo.W1] = (int(rules[k].xreplace(s)) for k in ("H_out", "W_out"))
        if self.pool is not None:
            s[mo.HP], s[mo.WP], s[mo.S_p] = self.pool
            s[mo.H2], s[mo.W2] = (int(rules[k].xreplace(s)) for k in ("H_pool", "W_pool"))
        return s


def max_pool(u: np.ndarray, ph: int, pw: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """(the pooled array, M): M[n, f, i, j, a, b'] is 1 at the first maximum of window
    (i, j) in row-major order, 0 elsewhere."""
    win = sliding_window_view(u, (ph, pw), axis=(2, 3))[:, :, ::stride, ::stride]
    flat = win.reshape(*win.shape[:4], ph * pw)
    first = np.argmax(flat, axis=-1)  # the first of equal maxima
    mask = np.zeros(flat.shape, dtype=u.dtype)
    np.put_along_axis(mask, first[..., None], 1, axis=-1)
    return flat.max(axis=-1), mask.reshape(win.shape)


def forward_backward(maps: dict[str, LinearMap], g: Geometry, sizes: dict,
                     arrays: dict[str, np.ndarray], upstream: np.ndarray) -> dict:
    """out (pooled when ``g.pool``) and every gradient, by the key's formulas; the
    upstream gradient has the shape of the returned ``out``."""
    xpad = evaluate(mo.PAD, {"x": arrays["x"]}, sizes)
    out = evaluate(mo.CONV, {"xpad": xpad, "w": arrays["w"], "b": arrays["b"]}, sizes)
    result = {"conv": out}
    dout = upstream
    if g.pool is not None:
        result["pooled"], mask = max_pool(out, *g.pool)
        dout = evaluate(maps["pool_backward"], {"dy": upstream, "M": mask}, sizes)
        result["pool_backward"] = dout
    given = {"dout": dout, "xpad": xpad, "w": arrays["w"]}
    for key in ("db", "dw", "dxpad"):
        result[key] = evaluate(maps[key], given, sizes)
    result["dx"] = evaluate(maps["dx"], {"dxpad": result["dxpad"]}, sizes)
    return result
