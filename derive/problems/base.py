"""What every problem provides: its model, its derivation, its claims.

A problem is a class registered in ``derive/problems/__init__.py`` (a module, or a package
when it needs more than a few hundred lines; or, from outside derive, a class given to
``derive.register`` or declared by a plugin) that states three things and nothing else:

* its **model** and parameters (``PARAMS``, parsed by ``derive.params``);
* its **derivation**, ``derive()``: every result by a stable key (the JSON export's keys);
* its **claims**, ``claims()``: for each result, the independent route that checks it
  (``derive.verify.routes``), on which sizes, to which tolerance.

What every problem needs comes from shared parts: ``verify()`` runs the claims through
``derive.verify.verify`` (a claim about a key that is not a result is an error); the
template ``templates/problems/<TEMPLATE or key>.tex.j2`` and its ``.question.tex.j2``
(or those in ``TEMPLATE_DIR``, for a problem from outside derive) typeset ``context()``,
which only arranges results; ``derive.render`` does every piece of presentation.  A
problem imports no other problem and nothing of the renderer.
"""

from __future__ import annotations

import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType
from typing import Any, ClassVar

import mpmath
import sympy as sp

from derive.errors import InputError
from derive.params import Kind, Param, resolve
from derive.verify import Check, Claim, verify


@dataclass(frozen=True)
class Result:
    """One derived result: ``lhs = expr``, optionally with a chain-rule form first.

    ``value`` is the result as data, else None: numbers (exact ones as SymPy numbers, measured
    ones as floats or mpmath reals), formulas and sets as SymPy objects, booleans, labels as
    text, in lists and text-keyed dicts.  The JSON export (``derive.export.split_value``)
    writes it as numbers, exact text and labels, each in a field of its own.
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
    #: A folder of the problem's own templates (``<TEMPLATE or key>.tex.j2`` and its
    #: ``.question.tex.j2``), for a problem outside derive (a plugin's package); None:
    #: derive's ``templates/problems/``.  Its templates may use derive's (``macros.tex.j2``,
    #: ``problems/recurrent.tex.j2``) by their names.
    TEMPLATE_DIR: ClassVar[str | os.PathLike | None] = None
    #: Names of the symbols the problem prints through the set's notation.
    SYMBOLS: ClassVar[tuple[str, ...]] = ()
    #: Part headings a set file may rename (``[labels.<key>]``) to follow its handout's
    #: numbering and words; the template prints its own wording for any it is not given.
    #: ``"title"`` among them renames the problem's heading (it is no part: no points).
    LABELS: ClassVar[tuple[str, ...]] = ()
    #: The part that is the whole problem, if one is: its points print in the heading.
    WHOLE: ClassVar[str | None] = None
    #: Parts a set may leave out (``omit`` in ``[questions.<key>]``): optional material no
    #: other part of the question or the key builds on.  Most are ``LABELS``; one may be a
    #: question within a part (momentum's ``volume``), which a set may word or omit.
    OPTIONAL: ClassVar[tuple[str, ...]] = ()
    #: Results the question itself gives (a given matrix, a stated decomposition), which a
    #: handout may show; every other result is derived and stays out of it.
    GIVEN: ClassVar[tuple[str, ...]] = ()
    #: What a set may declare its source printed (``[original.<key>]``), by field, each
    #: parsed by its kind: the original's formulas and data, a sample solution's claims,
    #: damage to its text.  Remarks on a source are printed only where a set declares it.
    ORIGINAL: ClassVar[dict[str, Kind]] = {}
    #: Every result key ``derive()`` may give, with one line on what it is: the JSON
    #: export's keys (``derive.export``), written out in docs/results.md.  A key that needs
    #: a parameter says so; an export without that parameter holds it, all null.
    RESULTS: ClassVar[dict[str, str]] = {}
    #: Results about a declared source (``[original.<key>]``: a sample solution's claims
    #: checked): derived, and exported, only where a set declares that source, so a set
    #: written from scratch carries nothing about another course.
    SOURCE_RESULTS: ClassVar[dict[str, str]] = {}
    #: Parameters the question prints, so that the handout changes with each: the only
    #: ones a set may vary (``[vary.<key>]``), or two students would get one question with
    #: two keys.  A test renders the handout with two values of each and compares.
    SHOWN: ClassVar[tuple[str, ...]] = ()
    #: The fields of ``ORIGINAL`` the derivation reads (a sample solution whose claims it
    #: checks); the others are only quoted by the templates.  A problem is derived once
    #: per parameters and these fields, however many sets quote other fields.
    ORIGINAL_DERIVES: ClassVar[tuple[str, ...]] = ()
    #: The set's values of ``ORIGINAL_DERIVES`` (parsed), given to ``from_params``: results
    #: about a source exist only where a set declares it.
    original: dict[str, Any] = MappingProxyType({})  # type: ignore[assignment]
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
    def result_docs(cls) -> dict[str, str]:
        """Result key -> what it is, for every key the problem may derive (``RESULTS`` and
        ``SOURCE_RESULTS``)."""
        return dict(cls.RESULTS) | dict(cls.SOURCE_RESULTS)

    @classmethod
    def parse_params(cls, given: dict[str, Any] | None = None, source: str = "") -> dict:
        """Parsed values of every parameter (defaults filled in); cheap, builds nothing."""
        prefix = f"{source}: " if source else ""
        return resolve(cls.PARAMS, given or {}, f"{prefix}params.{cls.key}")

    @classmethod
    def from_params(
        cls, given: dict[str, Any] | None = None, source: str = "",
        original: dict[str, Any] | None = None,
    ) -> Problem:
        """An instance from raw set-file values; ``source`` (a file) prefixes messages and
        ``original`` is the set's parsed ``[original.<key>]`` table (of which the problem
        keeps ``ORIGINAL_DERIVES``)."""
        prefix = f"{source}: " if source else ""
        values = cls.parse_params(given, source)
        try:
            problem = cls(**values)
            derives = {k: v for k, v in (original or {}).items() if k in cls.ORIGINAL_DERIVES}
            if derives:
                problem.original = derives
            return problem
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

    def written_order(self) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        """The order the problem's model is written in, for printing its expressions: its
        names as first written and its assigned variables in order; None for SymPy's."""
        return None

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
        """The solution's template, ``templates/problems/<TEMPLATE or key>.tex.j2``, or
        ``plugins/<key>/<TEMPLATE or key>.tex.j2``: that file in ``TEMPLATE_DIR``."""
        return self._template_name(".tex.j2")

    @property
    def question_template(self) -> str:
        """The question's template, ``<TEMPLATE or key>.question.tex.j2`` beside it."""
        return self._template_name(".question.tex.j2")

    def _template_name(self, tail: str) -> str:
        folder = "problems" if self.TEMPLATE_DIR is None else f"{PLUGIN_TEMPLATES}/{self.key}"
        return f"{folder}/{self.TEMPLATE or self.key}{tail}"


#: Where a problem's own templates (``Problem.TEMPLATE_DIR``) appear to the renderer:
#: ``plugins/<key>/<file>`` is ``<file>`` in the folder of the problem registered as ``key``.
PLUGIN_TEMPLATES = "plugins"


def json_number(v: Any) -> Any:
    """An exact number for a result's ``value``: an int, a float when a float holds it
    exactly (-1/2 is -0.5), else the SymPy number itself (6/5, 10^400, sqrt(2)), which the
    export writes as its nearest float (null beyond float64's range) and its exact text."""
    v = sp.sympify(v)
    if v.is_Integer and abs(v) <= FLOAT64_MAX:
        return int(v)
    if v.is_Rational and abs(v) <= FLOAT64_MAX and sp.Rational(float(v)) == v:
        return float(v)
    return v


#: Magnitudes float64 holds to full precision: 2.2e-308 (2^-1022) to 1.8e308.
FLOAT64_TINY, FLOAT64_MAX = sys.float_info.min, sys.float_info.max


def truth(key: str, holds: bool) -> Result:
    """A derived yes or no (SymPy's true or false, and the JSON boolean)."""
    return Result(key, sp.true if holds else sp.false, value=bool(holds))


def json_float(x: Any) -> float | mpmath.mpf:
    """A measured or rounded real for a result's ``value``: a float when float64 holds it
    (zero, or 2.2e-308 <= |x| < 1.8e308), else the mpmath real, which the export writes as
    null with its 17 significant digits ("1.0e+1200"): a float would be inf, which JSON
    cannot hold, or a zero (or subnormal) that is not the value."""
    with mpmath.workdps(30):  # an mpmath value keeps its own digits; a float is exact
        x = x if isinstance(x, mpmath.mpf) else mpmath.mpf(x)
        if x == 0 or FLOAT64_TINY <= abs(x) <= FLOAT64_MAX:
            return float(x)
        return x


def json_rows(m: sp.Matrix) -> list[list[Any]]:
    """A matrix as a list of rows of ``json_number`` values."""
    return [[json_number(v) for v in row] for row in m.tolist()]
