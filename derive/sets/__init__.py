"""Problem sets: which problems a handout holds, in which order and notation.

A set is a TOML file (parsed with the standard library's ``tomllib``, which never
evaluates anything).  The bundled sets live beside this module, one file each.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from derive.errors import InputError
from derive.problems import REGISTRY
from derive.render.latex import Notation

_KEYS = {"id", "title", "course", "source", "problems", "notation", "out_of_scope", "labels"}
#: Headings a set may rename, per problem, to follow its handout's numbering and words.
LABELS = {"lstm": ("adjoints", "weight", "optional")}
_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class ProblemSet:
    """One handout's answer key: id, title, course, problems in order, notation."""

    id: str
    title: str
    course: str
    source: str
    problems: tuple[str, ...]
    notation: Notation
    out_of_scope: tuple[str, ...] = ()
    labels: dict[str, dict[str, str]] = field(default_factory=dict)


def parse_set(text: str, where: str) -> ProblemSet:
    """A ``ProblemSet`` from TOML ``text``; ``where`` names the file in messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{where}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise InputError(
            f"{where}: unknown key {unknown[0]!r}; allowed are {', '.join(sorted(_KEYS))}"
        )
    for key in ("id", "title", "course", "source"):
        if not isinstance(data.get(key), str):
            raise InputError(f"{where}: {key} must be a string")
    if not _ID.match(data["id"]):
        raise InputError(
            f"{where}: id {data['id']!r} is not allowed; use lowercase letters, digits and _, "
            "starting with a letter (it names the output folder)"
        )
    problems = data.get("problems")
    if not isinstance(problems, list) or not problems:
        raise InputError(f"{where}: problems must be a non-empty list of problem names")
    for p in problems:
        if p not in REGISTRY:
            raise InputError(
                f"{where}: problems: unknown problem {p!r}; known: {', '.join(REGISTRY)}"
            )
    notation = data.get("notation", {})
    if not isinstance(notation, dict):
        raise InputError(f"{where}: notation must be a table with keys time and symbols")
    unknown = sorted(set(notation) - {"time", "symbols"})
    if unknown:
        raise InputError(
            f"{where}: notation: unknown key {unknown[0]!r}; allowed are symbols, time"
        )
    symbols = notation.get("symbols", {})
    if not isinstance(symbols, dict) or not all(isinstance(v, str) for v in symbols.values()):
        raise InputError(f"{where}: notation.symbols must map names to strings")
    labels = _labels(data.get("labels", {}), problems, where)
    skipped = data.get("out_of_scope", [])
    if not isinstance(skipped, list) or not all(isinstance(v, str) for v in skipped):
        raise InputError(f"{where}: out_of_scope must be a list of strings")
    return ProblemSet(
        data["id"],
        data["title"],
        data["course"],
        data["source"],
        tuple(problems),
        Notation(symbols=dict(symbols), time=notation.get("time", "superscript")),
        tuple(skipped),
        labels,
    )


def _labels(value, problems: list[str], where: str) -> dict[str, dict[str, str]]:
    if not isinstance(value, dict):
        raise InputError(f"{where}: labels must be a table of problem names")
    for problem, table in value.items():
        allowed = LABELS.get(problem, ())
        if problem not in problems or not isinstance(table, dict):
            raise InputError(
                f"{where}: labels.{problem}: not a problem of this set with labels; "
                f"allowed are {', '.join(p for p in problems if p in LABELS) or 'none'}"
            )
        for key, text in table.items():
            if key not in allowed or not isinstance(text, str):
                raise InputError(
                    f"{where}: labels.{problem}.{key}: allowed are text values for "
                    f"{', '.join(allowed)}"
                )
    return value


def bundled() -> dict[str, ProblemSet]:
    """The sets shipped with the package, by id, sorted."""
    out = {}
    for entry in sorted(resources.files(__name__).iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            pset = parse_set(entry.read_text(encoding="utf-8"), f"bundled set {entry.name}")
            out[pset.id] = pset
    return out


def get_set(name: str) -> ProblemSet:
    """A bundled set by id, or a set file by path."""
    sets = bundled()
    if name in sets:
        return sets[name]
    path = Path(name)
    if path.suffix == ".toml" and path.is_file():
        return parse_set(path.read_text(encoding="utf-8"), str(path))
    raise InputError(f"unknown set {name!r}; bundled sets: {', '.join(sets)}")
