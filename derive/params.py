"""Problem parameters from set files: declared kinds, exact parsing, messages that name the field.

A problem declares its parameters as ``PARAMS = (Param(...), ...)``; a set file gives values
as plain TOML data.  Nothing here evaluates text: numbers are integers, TOML decimals (read
as ``Decimal`` by the set parser, so ``0.1`` is exactly 1/10) or strings matching a strict
pattern (``"3/5"``, ``"-0.25"``, ``"1e-3"``), converted to SymPy rationals.  Every failure
raises ``InputError`` naming the key path and what is allowed.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

import sympy as sp

from derive.errors import InputError

#: An exact number written as text: an integer, a fraction or a decimal with a short exponent
#: (the exponent bound keeps "1e999999999" from building a billion-digit integer).
_NUMBER = re.compile(
    r"^[+-]?(\d{1,30}(/\d{1,30})?|\d{0,30}\.\d{1,30}(e[+-]?\d{1,3})?|\d{1,30}e[+-]?\d{1,3})$",
    re.IGNORECASE,
)
#: Largest magnitude an exact entry may have, and the largest denominator (beyond these an
#: answer key is unreadable and exact arithmetic slow).
MAX_ABS = 10**6
MAX_DEN = 10**6


def show(value: Any) -> str:
    """A short, safe rendering of a bad value for a message (one line: repr escapes line
    breaks; decimals inside lists and tables as written, not as ``Decimal('...')``)."""
    plain = isinstance(value, Decimal | datetime.date | datetime.time)
    text = repr(str(_as_written(value)) if plain else _as_written(value))
    return text if len(text) <= 60 else text[:57] + "..."


class _Written(str):
    """Text that ``repr`` shows bare: a decimal inside a list reads ``[0.5]``."""

    def __repr__(self) -> str:
        return str(self)


def _as_written(value: Any, depth: int = 0) -> Any:
    if depth > 8:  # deeper data is refused before a message could show it; stay cheap
        return _Written("...")
    if isinstance(value, Decimal):
        return _Written(str(value))
    if isinstance(value, datetime.date | datetime.time):  # TOML dates, as TOML writes them
        return _Written(value.isoformat())
    if isinstance(value, list):
        return [_as_written(v, depth + 1) for v in value[:20]]
    if isinstance(value, dict):
        return {k: _as_written(v, depth + 1) for k, v in list(value.items())[:20]}
    return value


class Kind:
    """How one parameter's value is checked and converted."""

    def parse(self, value: Any, where: str) -> Any:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def fail(self, value: Any, where: str, why: str = "") -> InputError:
        detail = f" ({why})" if why else ""
        return InputError(f"{where}: expected {self.describe()}, got {show(value)}{detail}")


@dataclass(frozen=True)
class Int(Kind):
    """An integer in ``[lo, hi]`` (booleans and floats are refused: 3.0 is not a size)."""

    lo: int
    hi: int

    def parse(self, value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(value, where)
        if not self.lo <= value <= self.hi:
            raise self.fail(value, where, "out of range")
        return value

    def describe(self) -> str:
        return f"an integer from {self.lo} to {self.hi}"


@dataclass(frozen=True)
class Exact(Kind):
    """An exact rational number, optionally bounded: ``lo < x < hi`` when ``open``."""

    lo: sp.Rational | None = None
    hi: sp.Rational | None = None
    open: bool = False

    def parse(self, value: Any, where: str) -> sp.Rational:
        x = exact_number(value, where)
        low = self.lo is not None and (x <= self.lo if self.open else x < self.lo)
        high = self.hi is not None and (x >= self.hi if self.open else x > self.hi)
        if low or high:
            raise self.fail(value, where, "out of range")
        return x

    def describe(self) -> str:
        lt = "<" if self.open else "<="
        if self.lo is not None and self.hi is not None:
            return f"an exact number with {self.lo} {lt} x {lt} {self.hi}"
        return "an exact number (integer, decimal, or a fraction as text like \"3/5\")"


def exact_number(value: Any, where: str) -> sp.Rational:
    """An integer, a TOML decimal, or a string like "3/5" as an exact SymPy rational."""
    allowed = 'an exact number: an integer, a decimal, or a fraction as text like "3/5"'
    if isinstance(value, bool):
        raise InputError(f"{where}: expected {allowed}, got {show(value)}")
    if isinstance(value, int):
        x = Fraction(value)
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise InputError(f"{where}: expected a finite number, got {show(value)}")
        if abs(value.adjusted()) > 30:  # before Fraction builds a 10^300 denominator
            raise InputError(
                f"{where}: {show(value)} is out of range; allowed are |x| <= {MAX_ABS} with "
                f"denominator <= {MAX_DEN}"
            )
        x = Fraction(value)
    elif isinstance(value, float):  # only from callers that bypass the Decimal parser
        raise InputError(f"{where}: expected {allowed}; a binary float {value!r} is not exact")
    elif isinstance(value, str) and _NUMBER.match(value.strip()):
        text = value.strip()
        if "/" in text and int(text.split("/")[1]) == 0:
            raise InputError(f"{where}: {show(value)} divides by zero")
        x = Fraction(text)
    else:
        raise InputError(f"{where}: expected {allowed}, got {show(value)}")
    if abs(x) > MAX_ABS or x.denominator > MAX_DEN:
        raise InputError(
            f"{where}: {show(value)} is out of range; allowed are |x| <= {MAX_ABS} with "
            f"denominator <= {MAX_DEN}"
        )
    return sp.Rational(x.numerator, x.denominator)


@dataclass(frozen=True)
class Matrix(Kind):
    """A matrix of exact numbers given as a list of equal-length rows."""

    rows: int | None = None
    cols: int | None = None
    max_size: int = 8

    def parse(self, value: Any, where: str) -> sp.Matrix:
        if not isinstance(value, list) or not value or not all(isinstance(r, list) for r in value):
            raise self.fail(value, where)
        widths = {len(r) for r in value}
        if len(widths) != 1 or 0 in widths:
            raise InputError(
                f"{where}: ragged matrix (row lengths {[len(r) for r in value]}); every row "
                "needs the same, nonzero length"
            )
        n, m = len(value), widths.pop()
        wrong = (self.rows and n != self.rows) or (self.cols and m != self.cols)
        if wrong or max(n, m) > self.max_size:
            raise InputError(f"{where}: expected {self.describe()}, got a {n}x{m} matrix")
        return sp.Matrix(
            [
                [exact_number(v, f"{where}[{i}][{j}]") for j, v in enumerate(r)]
                for i, r in enumerate(value)
            ]
        )

    def describe(self) -> str:
        rows = self.rows or f"1..{self.max_size}"
        cols = self.cols or f"1..{self.max_size}"
        return f"a {rows}x{cols} matrix of exact numbers (a list of rows)"


@dataclass(frozen=True)
class Vector(Kind):
    """A list of ``size`` exact numbers."""

    size: int

    def parse(self, value: Any, where: str) -> list[sp.Rational]:
        if not isinstance(value, list) or len(value) != self.size:
            raise self.fail(value, where)
        return [exact_number(v, f"{where}[{i}]") for i, v in enumerate(value)]

    def describe(self) -> str:
        return f"a list of {self.size} exact numbers"


@dataclass(frozen=True)
class Choice(Kind):
    """One of a fixed set of strings."""

    values: tuple[str, ...]

    def parse(self, value: Any, where: str) -> str:
        if value not in self.values:
            raise self.fail(value, where)
        return value

    def describe(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)


@dataclass(frozen=True)
class Raw(Kind):
    """A list or table passed on unparsed: the problem's constructor validates it whole
    (a layer list, say, is only valid relative to the input shape)."""

    type: type
    description: str

    def parse(self, value: Any, where: str) -> Any:
        if not isinstance(value, self.type):
            raise self.fail(value, where)
        return value

    def describe(self) -> str:
        return self.description


@dataclass(frozen=True)
class Quote(Kind):
    """Text quoted from a source (what its handout or sample solution says), printed
    verbatim through the TeX gate."""

    description: str
    max_len: int = 600

    def parse(self, value: Any, where: str) -> str:
        from derive.render import texgate  # the gate reads params' show: imported late

        if not isinstance(value, str) or not value.strip():
            raise self.fail(value, where)
        return texgate.text(value, where, self.max_len)

    def describe(self) -> str:
        return f"{self.description} (text, at most {self.max_len} characters)"


@dataclass(frozen=True)
class Custom(Kind):
    """A kind whose parser lives with its problem (e.g. a CNN's layer list)."""

    parser: Callable[[Any, str], Any]
    description: str

    def parse(self, value: Any, where: str) -> Any:
        return self.parser(value, where)

    def describe(self) -> str:
        return self.description


@dataclass(frozen=True)
class Param:
    """One parameter of a problem: name, kind, default (the handout's value), meaning."""

    name: str
    kind: Kind
    default: Any
    doc: str
    #: Candidate raw values from a problem-specific ``[vary]`` table (see derive.variants).
    generate: Callable[[Any, str], list[Any]] | None = field(default=None, compare=False)


def resolve(
    params: Sequence[Param], given: dict[str, Any], where: str
) -> dict[str, Any]:
    """Parsed values for every parameter: ``given`` (raw set-file data) over the defaults."""
    names = [p.name for p in params]
    unknown = sorted(set(given) - set(names))
    if unknown:
        allowed = ", ".join(names) if names else "none (this problem has no parameters)"
        raise InputError(f"{where}.{unknown[0]}: unknown parameter; allowed are {allowed}")
    return {
        p.name: p.kind.parse(given[p.name], f"{where}.{p.name}") if p.name in given else p.default
        for p in params
    }


def plain_data(value: Any) -> Any:
    """Raw set-file data as JSON data: decimals and exact numbers as their text (exact, and
    as written), dates as ISO text, sequences as lists."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, dict):
        return {str(k): plain_data(v) for k, v in value.items()}
    if isinstance(value, sp.MatrixBase):
        return plain_data(value.tolist())
    if isinstance(value, list | tuple):
        return [plain_data(v) for v in value]
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    return str(value)  # Decimal, Fraction, SymPy numbers: exact text


def to_toml(value: Any) -> str:
    """A parsed parameter value written back as TOML (exact numbers as text "p/q")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, sp.Integer):
        return str(int(value))
    if isinstance(value, sp.Rational):
        return f'"{value}"'
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, sp.MatrixBase):
        return to_toml(value.tolist())
    if isinstance(value, list | tuple):
        return "[" + ", ".join(to_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {to_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML form for {type(value).__name__}")
