"""The layer by naive loops: the reference every claim is checked against.

Written from the definitions alone, one scalar at a time, with no derived formula: the
forward pass pads by copying, visits every output entry and every window offset; the
backward pass replays the same loops and adds each output's upstream gradient into the
entries that produced it (``dxpad[n, c, S i + a, S j + b'] += dout · w``, ...).  Leading
axes before the last four are carried along untouched, so one call runs a batch of probes
(a complex step per input entry, say).  Max-pooling scans each window in row-major order
and keeps the first strictly larger value: ties go to the first maximum.
"""

from __future__ import annotations

import itertools

import numpy as np


def out_side(length: int, window: int, pad: int, stride: int) -> int | None:
    """How many windows fit along one axis, by counting start positions; None when the
    stride leaves part of the padded axis uncovered."""
    starts = [p for p in range(0, length + 2 * pad) if p % stride == 0
              and p + window <= length + 2 * pad]
    if not starts or starts[-1] + window != length + 2 * pad:
        return None
    return len(starts)


def padded(x: np.ndarray, pad: int) -> np.ndarray:
    """x with ``pad`` zeros on each side of its last two axes, copied entry by entry."""
    *lead, n_, c_, h_, w_ = x.shape
    out = np.zeros((*lead, n_, c_, h_ + 2 * pad, w_ + 2 * pad), dtype=x.dtype)
    for n, c, h, k in itertools.product(range(n_), range(c_), range(h_), range(w_)):
        out[..., n, c, h + pad, k + pad] = x[..., n, c, h, k]
    return out


def conv_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int,
                 pad: int) -> np.ndarray:
    """out[n, f, i, j] = b[f] + every window of the padded x times w, summed by loops."""
    xp = padded(x, pad)
    *lead, n_, c_, hp, wp = xp.shape
    f_, _, hh, ww = w.shape[-4:]
    ho, wo = (hp - hh) // stride + 1, (wp - ww) // stride + 1
    dtype = np.result_type(x, w, b)
    lead = np.broadcast_shapes(tuple(lead), w.shape[:-4], b.shape[:-1])
    out = np.zeros((*lead, n_, f_, ho, wo), dtype)
    for n, f, i, j in itertools.product(range(n_), range(f_), range(ho), range(wo)):
        acc = b[..., f]
        for c, a, bb in itertools.product(range(c_), range(hh), range(ww)):
            acc = acc + xp[..., n, c, stride * i + a, stride * j + bb] * w[..., f, c, a, bb]
        out[..., n, f, i, j] = acc
    return out


def conv_backward(dout: np.ndarray, x: np.ndarray, w: np.ndarray, stride: int,
                  pad: int) -> dict[str, np.ndarray]:
    """dxpad, dx, dw and db by replaying the forward loops and accumulating into every
    entry that each output read; dx is the part of dxpad inside the padding."""
    xp = padded(x, pad)
    n_, c_, hp, wp = xp.shape
    f_, _, hh, ww = w.shape
    _, _, ho, wo = dout.shape
    dxp = np.zeros(xp.shape, np.result_type(dout, w))
    dw, db = np.zeros(w.shape, np.result_type(dout, x)), np.zeros(f_, dout.dtype)
    for n, f, i, j in itertools.product(range(n_), range(f_), range(ho), range(wo)):
        g = dout[n, f, i, j]
        db[f] += g
        for c, a, bb in itertools.product(range(c_), range(hh), range(ww)):
            dxp[n, c, stride * i + a, stride * j + bb] += g * w[f, c, a, bb]
            dw[f, c, a, bb] += g * xp[n, c, stride * i + a, stride * j + bb]
    return {"dxpad": dxp, "dx": dxp[:, :, pad:hp - pad, pad:wp - pad], "dw": dw, "db": db}


def _first_max(x: np.ndarray, n: int, c: int, h0: int, k0: int, ph: int, pw: int):
    best = (h0, k0)
    for a, bb in itertools.product(range(ph), range(pw)):  # row-major: a, then b'
        if x[n, c, h0 + a, k0 + bb] > x[n, c, best[0], best[1]]:
            best = (h0 + a, k0 + bb)
    return best


def pool_forward(x: np.ndarray, ph: int, pw: int, stride: int) -> np.ndarray:
    """Max over every ph×pw window, windows ``stride`` apart (leading batch axes kept)."""
    *lead, n_, c_, h_, w_ = x.shape
    ho, wo = (h_ - ph) // stride + 1, (w_ - pw) // stride + 1
    out = np.zeros((*lead, n_, c_, ho, wo), x.dtype)
    for n, c, i, j in itertools.product(range(n_), range(c_), range(ho), range(wo)):
        acc = x[..., n, c, stride * i, stride * j]
        for a, bb in itertools.product(range(ph), range(pw)):
            acc = np.maximum(acc, x[..., n, c, stride * i + a, stride * j + bb])
        out[..., n, c, i, j] = acc
    return out


def pool_backward(dy: np.ndarray, x: np.ndarray, ph: int, pw: int,
                  stride: int) -> np.ndarray:
    """Each window's upstream gradient added at its first maximum (row-major order)."""
    dx = np.zeros(x.shape, np.result_type(dy, x))
    n_, c_, ho, wo = dy.shape
    for n, c, i, j in itertools.product(range(n_), range(c_), range(ho), range(wo)):
        h, k = _first_max(x, n, c, stride * i, stride * j, ph, pw)
        dx[n, c, h, k] += dy[n, c, i, j]
    return dx


def explicit_matrix(linear, shape: tuple[int, ...]) -> np.ndarray:
    """The matrix of the linear map ``linear`` on arrays of ``shape``: its columns are
    the map applied to each unit array (integer entries stay exact integers)."""
    cols = []
    for e in range(int(np.prod(shape))):
        unit = np.zeros(int(np.prod(shape)), dtype=np.int64)
        unit[e] = 1
        cols.append(np.ravel(linear(unit.reshape(shape))))
    return np.stack(cols, axis=1)
