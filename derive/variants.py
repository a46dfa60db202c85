"""Per-student versions of a set: parameters drawn from the ranges a set file declares.

A set's ``[vary.<problem>]`` table gives, per parameter, the values a version may take:

* a list of values (each a valid value of the parameter), or
* ``{ min = a, max = b }`` for an integer parameter (every integer in between), or
  ``{ min = "1/10", max = "9/10", step = "1/10" }`` for an exact number, or
* a generator the parameter itself defines (``Param.generate``; for example symmetric 2x2
  matrices with eigenvalues from given grids).

Each version is drawn from SHA-256 of (seed, student id, problem, parameter), never from
Python's salted ``hash`` or a generator whose algorithm may change: the same seed and
student give the same version on any machine.  When two students would get identical
parameters, the later one (in roster order) redraws until the versions differ.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, replace
from typing import Any

import sympy as sp

from derive.errors import InputError
from derive.params import Exact, Int, Param, exact_number, show
from derive.problems import REGISTRY
from derive.sets import ProblemSet

#: Most candidates a range may enumerate, and most versions per run.
MAX_CANDIDATES = 10_000
MAX_VERSIONS = 1000
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
        return json.dumps(self.drawn, sort_keys=True, separators=(",", ":"))


def candidates(param: Param, spec: Any, where: str) -> list[Any]:
    """Every raw value ``spec`` allows for ``param``, each checked like a set-file value."""
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
    for i, v in enumerate(values):
        param.kind.parse(v, f"{where}[{i}]")
    return values


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
        params = {p.name: p for p in REGISTRY[key].PARAMS}
        for name in sorted(specs):
            where = f"{pset.where}: vary.{key}.{name}"
            if name not in params:
                allowed = ", ".join(params) or "none (this problem has no parameters)"
                raise InputError(f"{where}: unknown parameter; allowed are {allowed}")
            out[(key, name)] = candidates(params[name], specs[name], where)
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
    total = 1
    for values in options.values():
        total *= len(values)
    if total < len(students):
        raise InputError(
            f"{pset.where}: vary allows {total} distinct versions; {len(students)} were asked "
            "for (widen the ranges)"
        )
    seen: set[str] = set()
    out = []
    for number, student in enumerate(students, start=1):
        for attempt in itertools.count():
            drawn: dict[str, dict[str, Any]] = {}
            for (key, name), values in options.items():
                pick = values[draw(len(values), seed, student, key, name, attempt)]
                drawn.setdefault(key, {})[name] = pick
            text = json.dumps(drawn, sort_keys=True, default=str)
            if text not in seen:
                break
        seen.add(text)
        params = {k: {**pset.params.get(k, {}), **drawn.get(k, {})} for k in pset.problems}
        out.append(Version(student, number, replace(pset, params=params), drawn))
    return out


def check_students(students: list[str]) -> None:
    """Student ids name folders: a safe, unique, non-empty list."""
    if not students:
        raise InputError("students: the roster is empty")
    if len(students) > MAX_VERSIONS:
        raise InputError(f"students: {len(students)} versions asked; at most {MAX_VERSIONS}")
    for i, s in enumerate(students, start=1):
        if not _STUDENT.match(s):
            raise InputError(
                f"students: line {i}: {show(s)} is not an allowed id; use letters, digits, "
                ". _ - (at most 64, starting with a letter or digit)"
            )
    dupes = sorted({s for s in students if students.count(s) > 1})
    if dupes:
        raise InputError(f"students: {dupes[0]!r} appears more than once")


def numbered(count: int) -> list[str]:
    """Ids v01, v02, ... for ``--variants N``."""
    if isinstance(count, bool) or not 1 <= count <= MAX_VERSIONS:
        raise InputError(f"--variants: expected a number from 1 to {MAX_VERSIONS}, got {count}")
    width = max(2, len(str(count)))
    return [f"v{i:0{width}d}" for i in range(1, count + 1)]
