"""``derive eval dropout``: numbers in, the key's forward and backward rules out.

Input (JSON)::

    {"x": [[1, 2, 3], [4, 5, 6]],      an array of any shape, as nested lists
     "p": 0.5,                          the drop probability, 0 <= p < 1
     "mask": [[true, false, true], ...] the same shape: true where the unit is kept
     "dout": [[...]]}                   optional, the same shape (default: ones)

Output: ``{"out": ..., "grad": {"x": ...}}`` in the shape of ``x``.  Every bad field is
refused in one line naming it and what is allowed; nothing is evaluated as text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from derive import inputs
from derive.errors import InputError
from derive.params import show

#: The most entries an input array may hold, and the deepest nesting.
MAX_ENTRIES, MAX_DEPTH = 10**6, 32


def shape_text(shape: tuple[int, ...]) -> str:
    """``2×3``, or ``3`` for a flat list."""
    return "×".join(map(str, shape))


def _shape(value: Any, field: str) -> tuple[int, ...]:
    """The shape of nested lists (the first entry of each level sets it)."""
    shape, level = [], value
    while isinstance(level, list):
        if not level:
            raise InputError(f"{field}: expected a non-empty list at every level, got []")
        shape.append(len(level))
        if len(shape) > MAX_DEPTH:
            raise InputError(f"{field}: nested deeper than {MAX_DEPTH} levels")
        level = level[0]
    if not shape:
        raise InputError(f"{field}: expected an array as nested lists, got {show(value)}")
    if int(np.prod(shape, dtype=float)) > MAX_ENTRIES:
        raise InputError(f"{field}: more than {MAX_ENTRIES} entries ({shape_text(shape)})")
    return tuple(shape)


def _leaves(value: Any, shape: tuple[int, ...], field: str, leaf: Callable) -> list:
    """Every entry in order, each read by ``leaf``; a level of another length is named."""
    if not shape:
        if isinstance(value, list):
            raise InputError(f"{field}: ragged array; expected an entry here, got a list")
        return [leaf(value, field)]
    if not isinstance(value, list) or len(value) != shape[0]:
        got = f"{len(value)} entries" if isinstance(value, list) else show(value)
        raise InputError(f"{field}: ragged array; expected {shape[0]} entries, got {got}")
    out = []
    for i, v in enumerate(value):
        out += _leaves(v, shape[1:], f"{field}[{i}]", leaf)
    return out


def _flag(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"{field}: expected true (kept) or false (dropped), got {show(value)}")
    return value


def array(value: Any, field: str, flags: bool = False) -> np.ndarray:
    """Nested lists as an array: finite numbers, or booleans when ``flags``."""
    shape = _shape(value, field)
    leaf = _flag if flags else inputs.number
    return np.array(_leaves(value, shape, field, leaf), dtype=bool if flags else float).reshape(
        shape)


def like(value: Any, field: str, x: np.ndarray, flags: bool = False) -> np.ndarray:
    """An array that must have the shape of ``x``."""
    got = array(value, field, flags)
    if got.shape != x.shape:
        raise InputError(f"{field}: expected the shape of x, {shape_text(x.shape)}, got "
                         f"{shape_text(got.shape)}")
    return got


def drop_probability(value: Any, field: str) -> float:
    """A number with 0 <= p < 1 (p = 1 would drop everything and divide by zero)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise InputError(f"{field}: expected a number in [0, 1), got {show(value)}")
    return float(value)


def evaluate(data: Any, forward: Callable, backward: Callable) -> dict[str, Any]:
    """``out`` and ``grad.x`` on ``data`` by the key's rules ``forward(m, x, p)`` and
    ``backward(m, ybar, p)``."""
    inputs.mapping(data, "input", ["x", "p", "mask"], ["dout"])
    x = array(data["x"], "input.x")
    p = drop_probability(data["p"], "input.p")
    mask = like(data["mask"], "input.mask", x, flags=True).astype(float)
    dout = like(data["dout"], "input.dout", x) if "dout" in data else np.ones_like(x)
    out = np.broadcast_to(forward(mask, x, p), x.shape)
    grad = np.broadcast_to(backward(mask, dout, p), x.shape)
    inputs.finite_output(out, "the output")
    inputs.finite_output(grad, "the gradient")
    return {"out": out.tolist(), "grad": {"x": grad.tolist()}}
