"""TOML read safely: text a user wrote, parsed by ``tomllib`` with every failure (and every
input that would make the parser run for hours) as one line naming the file.

Light on purpose (the standard library alone), so the command line can read a set file
before it imports SymPy.
"""

from __future__ import annotations

import re
import tomllib
from decimal import Decimal
from typing import Any

from derive.errors import InputError

#: The deepest valid data is 6 levels (vary.cnn_params.layers = [[{ kernel = [3, 5] }]],
#: vary.binary_adder.given_weights = [{ U = [[...]] }]); integers are TOML's 64-bit ones.
MAX_DEPTH = 8
INT_RANGE = (-(2**63), 2**63 - 1)

#: A dotted key of more than ``MAX_PARTS`` parts (``a.b.c...``, bare or quoted), found in the
#: text before tomllib sees it: tomllib's time grows with the square of a key's parts (a
#: megabyte of ``a.a.a...`` takes hours), and no valid set file has keys nested that deep.
MAX_PARTS = 2 * MAX_DEPTH
_PART = r"""(?:[A-Za-z0-9_-]++|"[^"\\\n]*+"|'[^'\n]*+')"""
#: Only where a key can start: a line's start, a table header, an inline table's { or ,.
_LONG_KEY = re.compile(
    rf"(?m)(?:^|[\[{{,])[ \t]*+(?:{_PART}[ \t]*+\.[ \t]*+){{{MAX_PARTS}}}{_PART}"
)


def load_toml(text: str, where: str) -> dict[str, Any]:
    """``text`` parsed as TOML; every failure of the parser as one line."""
    long_key = _LONG_KEY.search(text)
    if long_key:
        raise InputError(
            f"{where}: line {text.count(chr(10), 0, long_key.start()) + 1}: a dotted key of "
            f"more than {MAX_PARTS} parts; tables nest at most {MAX_DEPTH} levels"
        )
    try:
        # Decimal floats: "0.1" is exactly 1/10, and "inf"/"nan" are caught as non-finite.
        return tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{where}: not valid TOML: {_first_line(exc)}") from None
    except RecursionError:  # tomllib recurses once per nested array or inline table
        raise InputError(
            f"{where}: arrays or tables nested too deeply; at most {MAX_DEPTH} levels"
        ) from None
    except ValueError as exc:  # Python's digit limit on int(): a huge integer
        line, digits = _longest_number(text)
        if digits < 100:
            raise InputError(f"{where}: not valid TOML: {_first_line(exc)}") from None
        raise InputError(
            f"{where}: line {line}: an integer of {digits} digits; integers are 64-bit, "
            f"from {INT_RANGE[0]} to {INT_RANGE[1]}"
        ) from None


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _longest_number(text: str) -> tuple[int, int]:
    """(line, digits) of the longest run of digits in ``text`` (underscores allowed)."""
    best = max(re.finditer(r"[0-9][0-9_]*", text), key=lambda m: len(m.group()), default=None)
    if best is None:
        return 0, 0
    return text.count("\n", 0, best.start()) + 1, len(best.group().replace("_", ""))
