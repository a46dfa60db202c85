"""Per-student versions of a set: parameters drawn from the ranges a set file declares.

A set's ``[vary.<problem>]`` table gives, per parameter, the values a version may take:

* a list of values (each a valid value of the parameter), or
* ``{ min = a, max = b }`` for an integer parameter (every integer in between), or
  ``{ min = "1/10", max = "9/10", step = "1/10" }`` for an exact number, or
* a generator the parameter itself defines (``Param.generate``; for example symmetric 2x2
  matrices with eigenvalues from given grids).

Only parameters the handout's question prints (``Problem.SHOWN``) may vary: a value the
students never see would give them one question with different answers.

Candidates equal as values (``5`` and ``5``; ``0.5``, ``"0.5"`` and ``"1/2"``; equal
matrices) count once, under the spelling written first, so the number of distinct versions
is exact.  Each version is drawn from SHA-256 of (seed, student id, problem, parameter),
never from Python's salted ``hash`` or a generator whose algorithm may change: the same seed
and student give the same version on any machine.  When two students would get identical
parameters, the later one (in roster order) redraws a few times, then takes the next unused
combination after its first draw, so a run always ends.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, replace
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import sympy as sp

from derive.errors import InputError
from derive.params import Exact, Int, Param, Raw, exact_number, plain_data, show
from derive.readers import read_text
from derive.sets import ProblemSet

#: Most candidates a range may enumerate, and most versions per run.
MAX_CANDIDATES = 10_000
MAX_VERSIONS = 1000
#: Hash draws a student makes before taking the next unused combination instead.
MAX_REDRAWS = 8
#: The files the variants folder holds beside the students' folders (no id may be one):
#: the index, and every handout and every key bound into one PDF each for printing.
INDEX_NAME = "index.csv"
COMBINED_NAMES = ("all-handouts.pdf", "all-keys.pdf")
RESERVED = frozenset({INDEX_NAME, *COMBINED_NAMES})
_STUDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Version:
    """One student's version: its id, number, and the set with that student's parameters."""

    student: str
    number: int
    pset: ProblemSet
    drawn: dict[str, dict[str, Any]]

    def digest(self) -> str:
        """The drawn parameters as stable JSON text (for the index)."""
        return json.dumps(plain_data(self.drawn), sort_keys=True, separators=(",", ":"))


def candidates(param: Param, spec: Any, where: str) -> list[Any]:
    """Every raw value ``spec`` allows for ``param``, each checked like a set-file value;
    values equal once parsed count once (the first spelling is kept)."""
    if isinstance(spec, list):
        values = spec
    elif param.generate is not None and isinstance(spec, dict) and "min" not in spec:
        values = param.generate(spec, where)
    elif isinstance(spec, dict):
        values = _range(param, spec, where)
    else:
        raise InputError(
            f"{where}: expected a list of values or a table {{min, max}}, got {show(spec)}"
        )
    if not values:
        raise InputError(f"{where}: allows no value; give at least one")
    if len(values) > MAX_CANDIDATES:
        raise InputError(f"{where}: allows {len(values)} values; at most {MAX_CANDIDATES}")
    out, seen = [], set()
    for i, v in enumerate(values):
        ident = identity(param.kind.parse(v, f"{where}[{i}]"))
        if ident not in seen:
            seen.add(ident)
            out.append(v)
    return out


def identity(value: Any) -> Any:
    """A hashable key equal for values equal as data: numbers by exact value (``0.5``,
    ``"0.5"`` and ``"1/2"`` alike), matrices entry by entry, lists and tables recursively."""
    if isinstance(value, sp.MatrixBase):
        return ("matrix", value.shape, tuple(identity(v) for v in value))
    if isinstance(value, list | tuple):
        return ("list", tuple(identity(v) for v in value))
    if isinstance(value, dict):
        return ("table", tuple(sorted((str(k), identity(v)) for k, v in value.items())))
    if isinstance(value, sp.Rational):
        return ("number", Fraction(int(value.p), int(value.q)))
    if isinstance(value, sp.Basic):
        return ("expr", sp.srepr(value))
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int):
        return ("number", Fraction(value))
    if isinstance(value, Decimal | str):
        try:
            x = exact_number(value, "")
        except InputError:  # not an exact number (a layer name, a huge decimal): as written
            return (type(value).__name__, str(value))
        return ("number", Fraction(int(x.p), int(x.q)))
    return (type(value).__name__, repr(value))


def _range(param: Param, spec: dict, where: str) -> list[Any]:
    kind = param.kind
    if isinstance(kind, Int):
        _keys(spec, {"min", "max"}, where)
        lo, hi = (kind.parse(spec[k], f"{where}.{k}") for k in ("min", "max"))
        if hi - lo + 1 > MAX_CANDIDATES:
            raise InputError(
                f"{where}: the range holds {hi - lo + 1} values; at most {MAX_CANDIDATES}"
            )
        return list(range(lo, hi + 1))
    if isinstance(kind, Exact):
        _keys(spec, {"min", "max", "step"}, where)
        lo, hi, step = (exact_number(spec[k], f"{where}.{k}") for k in ("min", "max", "step"))
        if step <= 0:
            raise InputError(
                f"{where}.step: expected a positive number, got {show(spec['step'])}"
            )
        count = int(sp.floor((hi - lo) / step)) + 1
        if count > MAX_CANDIDATES:
            raise InputError(
                f"{where}: the range holds {count} values; at most {MAX_CANDIDATES}"
            )
        return [str(lo + i * step) for i in range(max(count, 0))]
    raise InputError(f"{where}: this parameter takes a list of values, not a range")


def _keys(spec: dict, required: set[str], where: str) -> None:
    if set(spec) != required:
        raise InputError(f"{where}: a range needs exactly the keys {', '.join(sorted(required))}")


def plan(pset: ProblemSet) -> dict[tuple[str, str], list[Any]]:
    """The candidate values of every varied parameter, by (problem, parameter), sorted."""
    out = {}
    for key in pset.problems:
        specs = pset.vary.get(key, {})
        params = {p.name: p for p in pset.problem_class(key).PARAMS}
        for name in sorted(specs):
            where = f"{pset.where}: vary.{key}.{name}"
            if name not in params:
                allowed = ", ".join(params) or "none (this problem has no parameters)"
                raise InputError(f"{where}: unknown parameter; allowed are {allowed}")
            _check_shown(pset.problem_class(key), name, where)
            values = candidates(params[name], specs[name], where)
            if isinstance(params[name].kind, Raw):
                values = _distinct_questions(pset, key, name, values)
            out[(key, name)] = values
    return out


def _check_shown(cls: type, name: str, where: str) -> None:
    """Refuse a parameter the handout does not print: every student would read the same
    question and each key would answer a different one."""
    if name in cls.SHOWN:
        return
    shown = ", ".join(cls.SHOWN)
    allowed = f"vary one of {shown}" if shown else "its question prints none of its parameters"
    raise InputError(
        f"{where}: the handout does not show {name}, so every version would ask the same "
        f"question with a different answer; {allowed}"
    )


def _distinct_questions(pset: ProblemSet, key: str, name: str, values: list[Any]) -> list[Any]:
    """Values a problem reads whole (a layer list, a worked example) count once per question
    they pose: ``"Conv3-64"`` and ``"conv3-64"`` are one layer, so one version."""
    cls, given = pset.problem_class(key), pset.params.get(key, {})
    out, seen = [], set()
    for i, value in enumerate(values):
        where = f"{pset.where}: vary.{key}.{name}[{i}]"
        problem = cls.from_params({**given, name: value}, where)
        ident = identity(problem.question_data())
        if ident not in seen:
            seen.add(ident)
            out.append(value)
    return out


def draw(index: int, seed: str, student: str, key: str, name: str, attempt: int) -> int:
    """A deterministic index below ``index`` from SHA-256 of the draw's identity."""
    text = f"derive-variant|{seed}|{student}|{key}|{name}|{attempt}"
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest(), "big") % index


def versions(pset: ProblemSet, students: list[str], seed: str) -> list[Version]:
    """One version per student, pairwise distinct in their drawn parameters."""
    check_students(students)
    options = plan(pset)
    if not options:
        raise InputError(
            f"{pset.where}: variants need a [vary.<problem>] table; the set has none"
        )
    sizes = [len(values) for values in options.values()]
    total = math.prod(sizes)
    if total < len(students):
        raise InputError(
            f"{pset.where}: vary allows {total} distinct version{'s' * (total != 1)}; "
            f"{len(students)} were asked for (widen the ranges)"
        )
    seen: set[tuple[int, ...]] = set()
    out = []
    for number, student in enumerate(students, start=1):
        picks = _pick(list(options), sizes, seed, student, seen)
        seen.add(picks)
        drawn: dict[str, dict[str, Any]] = {}
        for ((key, name), values), i in zip(options.items(), picks, strict=True):
            drawn.setdefault(key, {})[name] = values[i]
        params = {k: {**pset.params.get(k, {}), **drawn.get(k, {})} for k in pset.problems}
        out.append(Version(student, number, replace(pset, params=params), drawn))
    return out


def _pick(
    names: list[tuple[str, str]], sizes: list[int], seed: str, student: str, seen: set
) -> tuple[int, ...]:
    """The candidate index per parameter for ``student``: a hash draw not taken yet, else
    (after ``MAX_REDRAWS`` draws) the next combination after the first draw, counting in
    mixed radix, that is not taken.  ``seen`` is smaller than the product of ``sizes``, so
    the count ends within ``len(seen) + 1`` steps."""
    first = None
    for attempt in range(MAX_REDRAWS):
        picks = tuple(
            draw(size, seed, student, key, name, attempt)
            for (key, name), size in zip(names, sizes, strict=True)
        )
        if picks not in seen:
            return picks
        first = picks if first is None else first
    picks = first
    while picks in seen:
        picks = _successor(picks, sizes)
    return picks


def _successor(picks: tuple[int, ...], sizes: list[int]) -> tuple[int, ...]:
    """``picks`` plus one in the mixed radix ``sizes`` (last digit fastest), wrapping."""
    digits = list(picks)
    for i in reversed(range(len(digits))):
        digits[i] += 1
        if digits[i] < sizes[i]:
            break
        digits[i] = 0
    return tuple(digits)


def read_roster(path: str | Path) -> list[str]:
    """Student ids from a roster file, one per line; blank lines and lines starting with #
    are skipped, a UTF-8 BOM is dropped; the ids are checked (``check_students``), messages
    giving the file's line numbers."""
    try:
        text = read_text(path, "roster")
    except InputError as exc:
        raise InputError(f"--students: {exc}") from None
    ids, lines = [], []
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.strip()
        if line and not line.startswith("#"):
            ids.append(line)
            lines.append(number)
    check_students(ids, lines)
    return ids


def check_students(students: list[str], lines: list[int] | None = None) -> None:
    """Student ids name folders: a safe, non-empty list, unique even ignoring case (many
    file systems do not tell ``Alice`` from ``alice``), none a name of the variants layout.
    ``lines`` gives each id's roster line for messages (default 1, 2, ...)."""
    if not students:
        raise InputError("students: the roster is empty")
    if len(students) > MAX_VERSIONS:
        raise InputError(f"students: {len(students)} versions asked; at most {MAX_VERSIONS}")
    lines = list(range(1, len(students) + 1)) if lines is None else lines
    first: dict[str, tuple[int, str]] = {}
    for line, s in zip(lines, students, strict=True):
        if not _STUDENT.match(s):
            raise InputError(
                f"students: line {line}: {show(s)} is not an allowed id; use letters, digits, "
                ". _ - (at most 64, starting with a letter or digit)"
            )
        if s.lower() in RESERVED:
            raise InputError(
                f"students: line {line}: {s!r} is not an allowed id; the variants folder "
                f"holds {', '.join(sorted(RESERVED))} itself"
            )
        if s.lower() in first:
            before, other = first[s.lower()]
            if other == s:
                raise InputError(
                    f"students: {s!r} appears more than once (lines {before} and {line})"
                )
            raise InputError(
                f"students: line {line}: {s!r} and line {before}: {other!r} differ only in "
                "case; ids name folders, which many file systems do not tell apart by case"
            )
        first[s.lower()] = (line, s)


def numbered(count: int) -> list[str]:
    """Ids v01, v02, ... for ``--variants N``."""
    if isinstance(count, bool) or not 1 <= count <= MAX_VERSIONS:
        raise InputError(f"--variants: expected a number from 1 to {MAX_VERSIONS}, got {count}")
    width = max(2, len(str(count)))
    return [f"v{i:0{width}d}" for i in range(1, count + 1)]
