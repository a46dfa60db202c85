"""What every problem provides: its model, its derivation, its claims.

A problem is a class registered in ``derive/problems/__init__.py`` (a module, or a package
when it needs more than a few hundred lines) that states three things and nothing else:

* its **model** and parameters (``PARAMS``, parsed by ``derive.params``);
* its **derivation**, ``derive()``: every result by a stable key (the JSON export's keys);
* its **claims**, ``claims()``: for each result, the independent route that checks it
  (``derive.verify.routes``), on which sizes, to which tolerance.

What every problem needs comes from shared parts: ``verify()`` runs the claims through
``derive.verify.verify`` (a claim about a key that is not a result is an error); the
template ``templates/problems/<TEMPLATE or key>.tex.j2`` and its ``.question.tex.j2``
typeset ``context()``, which only arranges results; ``derive.render`` does every piece of
presentation.  A problem imports no other problem and nothing of the renderer.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

import mpmath
import sympy as sp

from derive.errors import InputError
from derive.params import Kind, Param, resolve
from derive.verify import Check, Claim, verify


@dataclass(frozen=True)
class Result:
    """One derived result: ``lhs = expr``, optionally with a chain-rule form first.

    ``value`` is a plain number or list when the result is numeric (JSON export), else None.
    """

    key: str
    expr: Any
    lhs: Any = None
    chain: Any = None
    value: Any = None

    def srepr(self) -> str:
        return sp.srepr(self.expr)


class Problem(ABC):
    """A derivation problem: results from the engine, checks from independent routes."""

    key: ClassVar[str]
    title: ClassVar[str]
    #: The result the question is mainly about: the key's solution must print its form.
    MAIN: ClassVar[str]
    #: Parameters a set file may give (each defaults to the handout's value).
    PARAMS: ClassVar[tuple[Param, ...]] = ()
    #: The templates' name when they serve more problems than this one (else the key).
    TEMPLATE: ClassVar[str | None] = None
    #: Names of the symbols the problem prints through the set's notation.
    SYMBOLS: ClassVar[tuple[str, ...]] = ()
    #: Part headings a set file may rename (``[labels.<key>]``) to follow its handout's
    #: numbering and words; the template prints its own wording for any it is not given.
    LABELS: ClassVar[tuple[str, ...]] = ()
    #: Results the question itself gives (a given matrix, a stated decomposition), which a
    #: handout may show; every other result is derived and stays out of it.
    GIVEN: ClassVar[tuple[str, ...]] = ()
    #: What a set may declare its source printed (``[original.<key>]``), by field, each
    #: parsed by its kind: the original's formulas and data, a sample solution's claims,
    #: damage to its text.  Remarks on a source are printed only where a set declares it.
    ORIGINAL: ClassVar[dict[str, Kind]] = {}
    #: What the evidence tables call a claim (LaTeX; ``{lhs}`` stands for the result's
    #: left-hand side) where the result's left-hand side alone does not name it.
    CLAIM_NAMES: ClassVar[dict[str, str]] = {}

    @classmethod
    def symbols(cls) -> frozenset[str]:
        """Names a set's ``notation.symbols`` may spell: those this problem prints.

        Cheap (nothing is derived), so a set file is checked before any work; a test
        renders every problem and compares the names its printer met with these.
        """
        return frozenset(cls.SYMBOLS)

    @classmethod
    def parse_params(cls, given: dict[str, Any] | None = None, source: str = "") -> dict:
        """Parsed values of every parameter (defaults filled in); cheap, builds nothing."""
        prefix = f"{source}: " if source else ""
        return resolve(cls.PARAMS, given or {}, f"{prefix}params.{cls.key}")

    @classmethod
    def from_params(cls, given: dict[str, Any] | None = None, source: str = "") -> Problem:
        """An instance from raw set-file values; ``source`` (a file) prefixes messages."""
        prefix = f"{source}: " if source else ""
        values = cls.parse_params(given, source)
        try:
            return cls(**values)
        except InputError as exc:  # a property the values lack (W not diagonalizable, ...)
            text = str(exc)
            if not text.startswith("params."):  # constructors name the field alone
                text = f"params.{cls.key}.{text}"
            raise InputError(f"{prefix}{text}") from None

    @cached_property
    def results(self) -> dict[str, Result]:
        """Derived results by stable key (the JSON export's keys)."""
        return self.derive()

    @cached_property
    def checks(self) -> list[Check]:
        """Every verification of this problem's claims."""
        return self.verify()

    @abstractmethod
    def derive(self) -> dict[str, Result]: ...

    def claims(self) -> Iterable[Claim]:
        """Every claim this problem makes about its results, with the route that checks it."""
        raise NotImplementedError(f"problem {self.key!r} states no claims")

    def verify(self) -> list[Check]:
        """The evidence of every claim: ``derive.verify.verify`` over ``claims()``."""
        return verify(self)

    def context(self) -> dict[str, Any]:
        """Data the template formats (SymPy objects pass through the ``tex`` filter)."""
        return {"results": self.results, "checks": self.checks}

    def question_data(self) -> dict[str, Any]:
        """The data the question states (a handout shows these and nothing derived)."""
        return {}

    def stated(self) -> dict[str, Any]:
        """Numbers the key states without deriving them: fixed settings of the model or of
        its verification runs (sizes, steps, digits), given like the parameters.

        Every other number ``context()`` hands the template is a result's (a test checks).
        """
        return {}

    @property
    def template(self) -> str:
        """The solution's template, ``templates/problems/<TEMPLATE or key>.tex.j2``."""
        return f"problems/{self.TEMPLATE or self.key}.tex.j2"

    @property
    def question_template(self) -> str:
        """The question's template, ``<TEMPLATE or key>.question.tex.j2`` beside it."""
        return f"problems/{self.TEMPLATE or self.key}.question.tex.j2"


def json_number(v: Any) -> Any:
    """An exact value for JSON: an int, a float when a float holds it exactly (-1/2 is
    -0.5), else the exact text "p/q" (or the value's text when it is not rational).

    An integer beyond float64's range (|v| > 1.8e308) is its exact decimal text, and an
    irrational real goes through ``json_float``: JSON readers hold numbers as float64.
    """
    v = sp.sympify(v)
    if v.is_Integer:
        return int(v) if abs(v) <= FLOAT64_MAX else str(v)
    if v.is_Rational:
        return _rational_float(v)
    if v.is_number and v.is_real:
        f = float(v)
        if FLOAT64_TINY <= abs(f) <= FLOAT64_MAX:
            return f
        return json_float(mpmath.mpf(sp.N(v, 20)._to_mpmath(70)))
    return str(v)


def _rational_float(v: sp.Rational) -> Any:
    if abs(v) > FLOAT64_MAX:
        return str(v)
    f = float(v)
    return f if sp.Rational(f) == v else str(v)


#: Magnitudes float64 holds to full precision: 2.2e-308 (2^-1022) to 1.8e308.
FLOAT64_TINY, FLOAT64_MAX = sys.float_info.min, sys.float_info.max


def json_float(x: Any) -> float | str:
    """A measured or rounded real for JSON: a float when float64 holds it (zero, or
    2.2e-308 <= |x| < 1.8e308), else its text with 17 significant digits ("1.0e+1200"): a
    float would be inf, which JSON cannot hold, or a zero (or subnormal) that is not the
    value."""
    with mpmath.workdps(30):  # an mpmath value keeps its own digits; a float is exact
        x = x if isinstance(x, mpmath.mpf) else mpmath.mpf(x)
        if x == 0 or FLOAT64_TINY <= abs(x) <= FLOAT64_MAX:
            return float(x)
        return mpmath.nstr(x, 17, min_fixed=1, max_fixed=0)


def json_rows(m: sp.Matrix) -> list[list[Any]]:
    """A matrix as a list of rows of ``json_number`` values."""
    return [[json_number(v) for v in row] for row in m.tolist()]
