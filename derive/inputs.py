"""Validation of untrusted numeric input (JSON files), with messages that name the field.

Nothing here evaluates text: values must already be JSON numbers.  Every failure raises
``InputError`` naming the field path (``weights.w_ix[1][0]``) and what is allowed.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from derive.errors import InputError
from derive.params import show
from derive.readers import read_text

__all__ = ["InputError"]

#: The largest JSON input read (32 MiB): 10^5 steps of an LSTM's scalar input are 4 MB.
MAX_INPUT_BYTES = 32 * 2**20
#: The most rows or columns of one matrix in an input.
MAX_SIDE = 4096


def read_json(path: str, most: int = MAX_INPUT_BYTES) -> Any:
    """Parse JSON from ``path`` (``-``: standard input), at most ``most``
    bytes of it.  ``path`` must be a regular file: a FIFO or a device (``/dev/zero``) is
    refused at once rather than waited on or read without end."""
    where = "standard input" if path == "-" else path
    if path == "-":
        raw = _read_stdin(most)
        if len(raw) > most:
            raise InputError(
                f"{where}: larger than {most} bytes ({most / 2**20:g} MiB), the most an input "
                "may hold"
            )
        try:
            text = raw.decode("utf-8").removeprefix("\ufeff")  # a BOM, as in a file
        except UnicodeDecodeError:
            raise InputError(f"cannot read {where}: not UTF-8 text") from None
    else:
        text = read_text(path, "", most, instead="give a JSON file, or - for standard input")
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except RecursionError:
        raise InputError(f"{where}: JSON nested too deeply") from None
    except ValueError as exc:  # e.g. an integer beyond Python's digit limit
        raise InputError(f"{where}: unreadable number: {exc}") from None
    except MemoryError:  # 32 MiB of "{}," are 11 million objects
        raise InputError(f"{where}: not enough memory to read it") from None


def _read_stdin(most: int) -> bytes:
    """Up to ``most + 1`` bytes of standard input: one more than allowed tells an input
    that is too long, without reading all of it."""
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:  # a text stream put in its place (tests)
        return sys.stdin.read(most + 1).encode("utf-8", "surrogatepass")
    return stream.read(most + 1)


def _parse_int(digits: str) -> int | float:
    # Integers past float64's range (about 309 digits) can never be used; reading them as
    # inf lets the field check name the field, and avoids Python's 4300-digit limit.
    return int(digits) if len(digits) <= 310 else math.inf


def _reject_constant(name: str):
    raise InputError(f"non-finite number {name} in the input; only finite numbers are allowed")


def number(value: Any, field: str) -> float:
    """A finite real number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{field}: expected a finite number, got {_show(value)}")
    try:
        out = float(value)
    except OverflowError:  # an integer beyond the float range
        out = math.inf
    if not math.isfinite(out):
        raise InputError(f"{field}: expected a finite number, got {_show(value)}")
    return out


def vector(value: Any, field: str, size: int | None = None) -> np.ndarray:
    """A list of finite numbers as an ``(n, 1)`` column."""
    if not isinstance(value, list) or not value:
        raise InputError(f"{field}: expected a non-empty list of numbers, got {_show(value)}")
    if size is not None and len(value) != size:
        raise InputError(f"{field}: expected {size} numbers, got {len(value)}")
    return np.array([[number(v, f"{field}[{i}]")] for i, v in enumerate(value)])


def matrix(
    value: Any,
    field: str,
    shape: tuple[int | None, int | None] = (None, None),
    most: int | None = None,
) -> np.ndarray:
    """A list of equal-length rows of finite numbers (at most ``most`` rows and columns)."""
    if not isinstance(value, list) or not value or not all(isinstance(r, list) for r in value):
        raise InputError(
            f"{field}: expected a matrix as a non-empty list of rows, got {_show(value)}"
        )
    widths = {len(r) for r in value}
    if len(widths) != 1 or 0 in widths:
        raise InputError(f"{field}: ragged matrix; every row needs the same, nonzero length")
    if most is not None and max(len(value), *widths) > most:
        raise InputError(
            f"{field}: expected at most {most} rows and {most} columns, "
            f"got {len(value)}x{widths.pop()}"
        )
    out = np.array(
        [[number(v, f"{field}[{i}][{j}]") for j, v in enumerate(r)] for i, r in enumerate(value)]
    )
    return shaped(out, field, shape)


def shaped(out: np.ndarray, field: str, shape: tuple[int | None, int | None]) -> np.ndarray:
    """``out`` if it has ``shape`` (None: any size on that axis), else an ``InputError``."""
    rows, cols = shape
    if (rows is not None and out.shape[0] != rows) or (cols is not None and out.shape[1] != cols):
        want = f"{rows if rows is not None else 'any'}x{cols if cols is not None else 'any'}"
        raise InputError(f"{field}: expected a {want} matrix, got {out.shape[0]}x{out.shape[1]}")
    return out


def cell_keys(cell: Any) -> tuple[list[str], list[str], list[str]]:
    """The names a cell's numbers go by, in ``derive grad``'s input and a worked example:
    its inputs (``x``), initial states (``h0``) and loss coefficients (``dL_dh``)."""
    return (
        [x.name for x in cell.inputs],
        [f"{s.name}0" for s in cell.states],
        [f"dL_d{v.name}" for v in cell.loss_on],
    )


def mapping(value: Any, field: str, required: list[str], optional: list[str] = ()) -> Mapping:
    """An object with exactly the ``required`` keys, plus any of ``optional``."""
    if not isinstance(value, dict):
        raise InputError(f"{field}: expected an object, got {_show(value)}")
    missing = [k for k in required if k not in value]
    if missing:
        raise InputError(
            f"{field}: missing key {show(missing[0])}; required are {', '.join(required)}"
        )
    unknown = sorted(set(value) - set(required) - set(optional))
    if unknown:
        allowed = ", ".join([*required, *optional])
        raise InputError(f"{field}: unknown key {show(unknown[0])}; allowed are {allowed}")
    return value


def finite_output(values: Any, what: str) -> Any:
    """``values`` unchanged if every number in it is finite, else an ``InputError``."""
    arr = np.asarray(values, dtype=float) if not isinstance(values, dict) else None
    if arr is not None and not np.all(np.isfinite(arr)):
        raise InputError(
            f"{what}: the result overflows float64 for these inputs; scale the inputs down "
            "(entries of order 1e150 or more overflow)"
        )
    return values


def _show(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**40:
        return f"an integer with {len(str(abs(value)))} digits"
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
