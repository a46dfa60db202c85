"""Validation of a layer's sizes and of ``derive eval``'s JSON, one line per fault.

A layer is valid when each window fits in the padded input (HH ≤ H + 2P, WW ≤ W + 2P)
and the stride divides what is left (S | H + 2P − HH, S | W + 2P − WW), so the windows
tile the padded input exactly; the same for the pool on the convolution's output.  Every
message names the field and the shape or value it should have.  Nothing is evaluated:
arrays must be JSON numbers in nested lists.  Sizes are bounded (``MAX_SIDE`` per axis,
``MAX_ENTRIES`` per array, ``MAX_WORK`` multiply-adds, ``MAX_POSITIONS`` window positions
or offsets, which the evaluation loops over) so that no input can run for long.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from derive import inputs
from derive.errors import InputError
from derive.params import show
from derive.problems.conv_pool.numeric import Geometry

MAX_SIDE, MAX_ENTRIES, MAX_WORK, MAX_POSITIONS = 512, 2**20, 10**8, 4096
MAX_STEP = 64  # stride and padding
#: The fields a message names, per role: a set file's parameters, or eval's input.
PARAM_FIELDS = {"w": "filter_shape", "stride": "stride", "pool": "pool",
                "pool_stride": "pool"}
EVAL_FIELDS = {"w": "input.w", "stride": "input.stride", "pool": "input.pool_height",
               "pool_stride": "input.pool_stride"}


def check_geometry(g: Geometry, fields: dict[str, str]) -> None:
    """Refuse a layer whose windows do not fit or do not tile (see the module)."""
    hp, wp = g.H + 2 * g.P, g.W + 2 * g.P
    if g.HH > hp or g.WW > wp:
        raise InputError(f"{fields['w']}: the window HH×WW = {g.HH}×{g.WW} is larger than "
                         f"the padded input (H+2P)×(W+2P) = {hp}×{wp}")
    _tiles(fields["stride"], "S", g.S, "padded input", ("H + 2P − HH", hp - g.HH),
           ("W + 2P − WW", wp - g.WW))
    if g.pool is None:
        return
    ph, pw, sp_ = g.pool
    ho, wo = (hp - g.HH) // g.S + 1, (wp - g.WW) // g.S + 1
    if ph > ho or pw > wo:
        raise InputError(f"{fields['pool']}: the pool window {ph}×{pw} is larger than the "
                         f"convolution's output H′×W′ = {ho}×{wo}")
    _tiles(fields["pool_stride"], "S_p", sp_, "convolution's output", ("H′ − HP", ho - ph),
           ("W′ − WP", wo - pw))


def _tiles(field: str, name: str, stride: int, covered: str, *lefts: tuple[str, int]) -> None:
    for what, left in lefts:
        if left % stride:
            raise InputError(f"{field}: {name} = {stride} does not divide {what} = {left}; the "
                             f"windows must tile the {covered} exactly")


def _whole(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InputError(f"{field}: expected a whole number from {low} to {high}, got "
                         f"{show(value)}")
    return value


def tensor(value: Any, field: str, names: str) -> np.ndarray:
    """Nested lists of finite numbers, as deep as ``names`` (``N×C×H×W``) has sizes."""
    rank, shape, level = names.count("×") + 1, [], value
    while isinstance(level, list) and level and len(shape) <= rank:
        shape.append(len(level))
        level = level[0]
    if len(shape) != rank or isinstance(level, list):
        got = f"{len(shape)} levels, {_text(shape)}" if shape else show(value)
        levels = f"{rank} level" + "s" * (rank > 1)
        raise InputError(f"{field}: expected shape {names} ({levels} of non-empty lists of "
                         f"numbers), got {got}")
    if max(shape) > MAX_SIDE or math.prod(shape) > MAX_ENTRIES:
        raise InputError(f"{field}: {_text(shape)} is too large: at most {MAX_SIDE} along "
                         f"an axis and {MAX_ENTRIES} entries ({names})")
    flat: list[float] = []
    _walk(value, shape, field, f"{field.rsplit('.', 1)[-1]} has shape {names}", flat)
    return np.array(flat, dtype=float).reshape(shape)


def _walk(value: Any, shape: list[int], path: str, whole: str, flat: list[float]) -> None:
    if not shape:
        if isinstance(value, list):
            raise InputError(f"{path}: expected a number, got a list; {whole}")
        try:
            flat.append(inputs.number(value, path))
        except InputError as exc:
            raise InputError(f"{exc}; {whole}") from None
        return
    if not isinstance(value, list) or len(value) != shape[0]:
        got = f"{len(value)} entries" if isinstance(value, list) else show(value)
        raise InputError(f"{path}: ragged: expected a list of {shape[0]} entries like the "
                         f"first, got {got}; {whole}")
    for k, item in enumerate(value):
        _walk(item, shape[1:], f"{path}[{k}]", whole, flat)


def _text(shape: Any) -> str:
    return "×".join(map(str, shape))


POOL_KEYS = ("pool_height", "pool_width", "pool_stride")


def read(data: Any) -> tuple[Geometry, dict[str, np.ndarray], np.ndarray | None]:
    """(the layer, x, w and b, the upstream gradient or None) from eval's JSON object."""
    inputs.mapping(data, "input", ["x", "w", "b", "stride", "pad"], ["dout", *POOL_KEYS])
    x = tensor(data["x"], "input.x", "N×C×H×W")
    w = tensor(data["w"], "input.w", "F×C×HH×WW")
    if w.shape[1] != x.shape[1]:
        raise InputError(f"input.w: expected shape F×C×HH×WW with C = {x.shape[1]} (from x), "
                         f"got {_text(w.shape)}")
    b = tensor(data["b"], "input.b", "F")
    if b.shape[0] != w.shape[0]:
        raise InputError(f"input.b: expected shape F with F = {w.shape[0]} (from w), got "
                         f"{b.shape[0]}")
    stride = _whole(data["stride"], "input.stride", 1, MAX_STEP)
    pad = _whole(data["pad"], "input.pad", 0, MAX_STEP)
    g = Geometry(x.shape[0], x.shape[1], w.shape[0], *x.shape[2:], *w.shape[2:], stride, pad,
                 _pool(data))
    check_geometry(g, EVAL_FIELDS)
    _bounded(g)
    dout = None
    if "dout" in data:
        dout = tensor(data["dout"], "input.dout", "N×F×H″×W″" if g.pool else "N×F×H′×W′")
    return g, {"x": x, "w": w, "b": b}, dout


def _pool(data: dict) -> tuple[int, int, int] | None:
    given = [k for k in POOL_KEYS if k in data]
    if not given:
        return None
    if len(given) < len(POOL_KEYS):
        missing = next(k for k in POOL_KEYS if k not in data)
        raise InputError(f"input.{missing}: missing; pool_height, pool_width and pool_stride "
                         "come together")
    return tuple(_whole(data[k], f"input.{k}", 1, MAX_SIDE) for k in POOL_KEYS)


def _bounded(g: Geometry) -> None:
    ho, wo = (g.H + 2 * g.P - g.HH) // g.S + 1, (g.W + 2 * g.P - g.WW) // g.S + 1
    work = g.N * g.F * g.C * ho * wo * g.HH * g.WW
    if work > MAX_WORK:
        raise InputError(f"input.x: the layer needs {work} multiply-adds; at most {MAX_WORK} "
                         "are allowed")
    if ho * wo > MAX_POSITIONS:
        raise InputError(f"input.x: the output has H′×W′ = {ho}×{wo} positions; at most "
                         f"{MAX_POSITIONS} are allowed")
    if g.HH * g.WW > MAX_POSITIONS:
        raise InputError(f"input.w: the window has HH×WW = {g.HH}×{g.WW} entries; at most "
                         f"{MAX_POSITIONS} are allowed")


def check_upstream(dout: np.ndarray, expected: tuple[int, ...], pooled: bool) -> None:
    """The upstream gradient must have the output's shape."""
    if dout.shape != expected:
        names = "N×F×H″×W″" if pooled else "N×F×H′×W′"
        raise InputError(f"input.dout: expected shape {names} = {_text(expected)} (the "
                         f"{'pooled ' if pooled else ''}output's), got {_text(dout.shape)}")
