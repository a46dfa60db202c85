"""Problem sets: which problems a handout holds, in which order and notation.

A set is a TOML file (parsed with the standard library's ``tomllib``, which never
evaluates anything).  The bundled sets live beside this module, one file each.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from derive.errors import InputError
from derive.model.defined import model_class
from derive.params import show, to_toml
from derive.problems import REGISTRY, Problem
from derive.readers import read_text
from derive.render import texgate
from derive.render.forms import FORMS, Form
from derive.render.latex import Notation
from derive.sets import wording
from derive.tomlread import INT_RANGE, MAX_DEPTH, load_toml

_KEYS = {
    "id", "title", "course", "source", "problems", "notation", "out_of_scope", "labels",
    "params", "vary", "key", "original", "points", "models", "questions", "choices",
}
_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
#: Free text longer than this is surely a mistake (a pasted file, say).
MAX_TEXT = 300
#: Bounds on any set file's data, checked before its fields are (nesting and integers:
#: ``derive.tomlread``): no decimal a parameter takes needs more digits or a larger
#: exponent; keys are short.
MAX_DECIMAL_DIGITS, MAX_EXPONENT = 64, 308
MAX_KEY = 64
#: Most items ``out_of_scope`` may list.
MAX_OUT_OF_SCOPE = 20
#: A name of a symbol shown in a field path as it stands (others through ``show``).
_PLAIN_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


@dataclass(frozen=True)
class ProblemSet:
    """One handout's answer key: id, title, course, problems in order, notation.

    ``params`` holds each problem's parameters as written in the set file (validated; the
    problem parses them again when built), ``vary`` the ranges per-student variants draw from.
    """

    id: str
    title: str
    course: str
    source: str
    problems: tuple[str, ...]
    notation: Notation
    out_of_scope: tuple[str, ...] = ()
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    vary: dict[str, dict[str, Any]] = field(default_factory=dict)
    where: str = ""
    #: The key's form (``key = "compact"``; ``--key`` overrides it).
    form: Form = FORMS["full"]
    #: What the set declares its source printed, per problem (``[original.<key>]``): the
    #: only material a key may remark on (``Problem.ORIGINAL`` lists the fields).
    original: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Points per part, per problem (``[points.<key>]``, parts as ``Problem.LABELS``).
    points: dict[str, dict[str, int | Decimal]] = field(default_factory=dict)
    #: The models the set defines (``[models.<name>]``), as written: plain data, so a set
    #: travels to worker processes and each rebuilds the classes (``problem_class``).
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The set's words for its questions (``[questions.<key>]``, ``derive.sets.wording``).
    questions: dict[str, wording.Wording] = field(default_factory=dict)
    #: Names ``derive eval`` hands over to one of the set's problems by a field of its
    #: input (``[choices.optimizers]``: ``rule = "adam"`` runs the problem ``adam``).
    choices: dict[str, Choice] = field(default_factory=dict)

    def problem_class(self, key: str) -> type[Problem]:
        """The class of problem ``key``: the set's own model of that name, else the
        registered problem."""
        if key in self.models:
            cls = model_class(key, self.models[key], f"{self.where}: models.{key}")
            alternative = getattr(cls, "ALTERNATIVE", None)
            if alternative:  # the set's other model that derive eval may hand over to
                other = self.problem_class(alternative[1])
                return type(cls.__name__, (cls,), {"ALTERNATIVE_CLASS": other,
                                                   "__module__": cls.__module__})
            return cls
        return REGISTRY[key]

    def make_problem(self, key: str) -> Problem:
        """An instance of problem ``key`` with this set's parameters."""
        return self.problem_class(key).from_params(
            self.params.get(key, {}), self.where, self.original.get(key)
        )


def parse_set(text: str, where: str) -> ProblemSet:
    """A ``ProblemSet`` from TOML ``text``; ``where`` names the file in messages."""
    data = load_toml(text, where)
    _check_tree(data, where)
    _known_keys(data, _KEYS, where, "")
    for key in ("id", "title", "course", "source"):
        _text(data.get(key), where, key)
    if not _ID.match(data["id"]):
        raise InputError(
            f"{where}: id: {data['id']!r} is not allowed; use lowercase letters, digits and _, "
            "starting with a letter, at most 64 characters (it names the output folder)"
        )
    models = data.get("models", {})
    chosen = _problems(data.get("problems"), where, _models(models, where))
    problems = list(chosen)
    skipped = _out_of_scope(data.get("out_of_scope", []), where)
    pset = ProblemSet(
        data["id"],
        data["title"],
        data["course"],
        data["source"],
        tuple(problems),
        _notation(data.get("notation", {}), chosen, where),
        skipped,
        _labels(data.get("labels", {}), chosen, where),
        _per_problem(data.get("params", {}), problems, where, "params"),
        _per_problem(data.get("vary", {}), problems, where, "vary"),
        where,
        _form(data.get("key", "full"), where),
        _original(data.get("original", {}), chosen, where),
        _points(data.get("points", {}), chosen, where),
        {name: models[name] for name in problems if name in models},
        wording.parse(data, chosen, where, MAX_TEXT),
        _choices(data.get("choices", {}), chosen, where),
    )
    for key, cls in chosen.items():  # every parameter now: a bad value fails before output
        cls.parse_params(pset.params.get(key, {}), where)
    return pset


@dataclass(frozen=True)
class Choice:
    """A name ``derive eval`` accepts that hands over, by the input's field ``by``, to one
    of the set's problems: ``options`` maps each allowed value to a problem's key."""

    name: str
    by: str
    options: dict[str, str]

    def eval(self, data: Any, pset: ProblemSet) -> dict[str, Any]:
        """The chosen problem of ``pset`` evaluated on ``data`` without the field ``by``."""
        allowed = ", ".join(map(show, self.options))
        if not isinstance(data, dict) or self.by not in data:
            raise InputError(f"input: missing key {self.by!r}; expected one of {allowed}")
        pick = data[self.by]
        if not isinstance(pick, str) or pick not in self.options:
            raise InputError(f"{self.by}: expected one of {allowed}, got {show(pick)}")
        rest = {k: v for k, v in data.items() if k != self.by}
        return pset.make_problem(self.options[pick]).eval(rest)


def _choices(value: Any, problems: dict[str, type[Problem]], where: str
             ) -> dict[str, Choice]:
    """``[choices.<name>]``: ``by`` (the input's field) and ``options`` (value -> problem)."""
    if not isinstance(value, dict):
        raise InputError(f"{where}: choices: expected a table of choices, one per name")
    out = {}
    for name, table in value.items():
        at = f"{where}: choices.{_key(name)}"
        if not _ID.match(name) or name in problems:
            raise InputError(f"{at}: expected a new name (lowercase letters, digits, _), "
                             "not one of the set's problems")
        _known_keys(table if isinstance(table, dict) else {}, {"by", "options"}, where,
                    f"choices.{_key(name)}")
        by, options = (table.get(k) if isinstance(table, dict) else None
                       for k in ("by", "options"))
        if not isinstance(by, str) or not _PLAIN_NAME.match(by):
            raise InputError(f"{at}.by: expected the name of the input's field that chooses")
        if (not isinstance(options, dict) or not options
                or not all(isinstance(k, str) and v in problems and hasattr(problems[v], "eval")
                           for k, v in options.items())):
            raise InputError(f"{at}.options: expected a table of values, each naming a "
                             "problem of this set that evaluates on numbers")
        out[name] = Choice(name, by, dict(options))
    return out


def _out_of_scope(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > MAX_OUT_OF_SCOPE:
        raise InputError(
            f"{where}: out_of_scope: expected a list of at most {MAX_OUT_OF_SCOPE} strings, "
            f"got {show(value)}"
        )
    for i, item in enumerate(value):
        _text(item, where, f"out_of_scope[{i}]")
    return tuple(value)


def _check_tree(data: dict[str, Any], where: str) -> None:
    """Refuse data no valid set file holds: nesting beyond ``MAX_DEPTH``, keys that are not
    short one-line names, integers beyond 64 bits, decimals with absurd digits or exponents.
    (Strings are bounded by the field that reads them, whose message gives its own bound.)
    Iterative, so any depth tomllib returns is walked safely; after it, every key can be
    echoed in a one-line message and every number converted cheaply."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict | list) and len(path) > MAX_DEPTH:
            raise InputError(
                f"{where}: {_path(path[:MAX_DEPTH + 1])}: arrays or tables nested too deeply; "
                f"at most {MAX_DEPTH} levels"
            )
        if isinstance(value, dict):
            for key, item in value.items():
                if not 0 < len(key) <= MAX_KEY or not key.isprintable():
                    raise InputError(
                        f"{where}: {_path(path) or 'the top level'}: key {show(key)} is not "
                        f"allowed; keys are 1 to {MAX_KEY} printable characters"
                    )
                stack.append((item, (*path, key)))
        elif isinstance(value, list):
            stack.extend((item, (*path, i)) for i, item in enumerate(value))
        else:
            _check_scalar(value, where, path)


def _check_scalar(value: Any, where: str, path: tuple[str | int, ...]) -> None:
    if isinstance(value, bool):
        return
    if isinstance(value, int) and not INT_RANGE[0] <= value <= INT_RANGE[1]:
        raise InputError(
            f"{where}: {_path(path)}: an integer of {len(str(abs(value)))} digits; integers are "
            f"64-bit, from {INT_RANGE[0]} to {INT_RANGE[1]}"
        )
    if isinstance(value, Decimal) and value.is_finite():
        digits = len(value.as_tuple().digits)
        if digits > MAX_DECIMAL_DIGITS or abs(value.adjusted()) > MAX_EXPONENT:
            raise InputError(
                f"{where}: {_path(path)}: expected a decimal of at most {MAX_DECIMAL_DIGITS} "
                f"digits with exponent from -{MAX_EXPONENT} to {MAX_EXPONENT}, got {show(value)}"
            )


def _path(path: Iterable[str | int]) -> str:
    """``params.lstm.example.x[2]`` from its keys and indices."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _known_keys(table: dict, allowed: set[str], where: str, path: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise InputError(
            f"{where}: {path}{unknown[0]}: unknown key; allowed are {', '.join(sorted(allowed))}"
        )


def _text(value: Any, where: str, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{where}: {path}: expected a non-empty string, got {show(value)}")
    return texgate.text(value, f"{where}: {path}", MAX_TEXT)


def _models(value: Any, where: str) -> dict[str, type[Problem]]:
    """``[models.<name>]``: each table's problem class (``derive.model.defined``)."""
    if not isinstance(value, dict):
        raise InputError(f"{where}: models: expected a table of models, one per name")
    out = {name: model_class(name, table, f"{where}: models.{_key(name)}")
           for name, table in value.items()}
    for name, cls in out.items():
        alternative = getattr(cls, "ALTERNATIVE", None)
        if alternative and (alternative[1] not in out or alternative[1] == name
                            or not hasattr(out[alternative[1]], "GRAPH")):
            raise InputError(f"{where}: models.{_key(name)}.alternative: "
                             f"{show(alternative[1])} is not another network of this set")
    return out


def _problems(value: Any, where: str, models: dict[str, type[Problem]]
              ) -> dict[str, type[Problem]]:
    """The listed problems' classes, in order: a set's own model before a registered
    problem of the same name."""
    known = {**REGISTRY, **models}
    if not isinstance(value, list) or not value:
        raise InputError(f"{where}: problems: expected a non-empty list of problem names")
    for i, p in enumerate(value):
        if not isinstance(p, str) or p not in known:
            raise InputError(
                f"{where}: problems[{i}]: unknown problem {show(p)}; known: {', '.join(known)}"
                " (or a model the set defines in [models.<name>])"
            )
    if len(set(value)) != len(value):
        raise InputError(f"{where}: problems: a problem may appear only once")
    for name in models:
        if name not in value:  # a model defined but never posed is surely a slip
            raise InputError(f"{where}: models.{_key(name)}: defined but not listed in "
                             "problems; list it there, or remove the table")
    return {p: known[p] for p in value}


def _key(name: str) -> str:
    """A table key for a field path: as it stands if plain, else quoted and shortened."""
    return name if _PLAIN_NAME.match(name) else f"[{show(name)}]"


def _notation(value: Any, problems: dict[str, type[Problem]], where: str) -> Notation:
    if not isinstance(value, dict):
        raise InputError(f"{where}: notation: expected a table with keys time and symbols")
    _known_keys(value, {"time", "symbols"}, where, "notation.")
    symbols = value.get("symbols", {})
    if not isinstance(symbols, dict) or not all(isinstance(v, str) for v in symbols.values()):
        raise InputError(f"{where}: notation.symbols: expected a table of strings")
    printed = sorted(set().union(*(cls.symbols() for cls in problems.values())))
    for name in symbols:
        if name not in printed:  # a typo would otherwise be ignored silently
            raise InputError(
                f"{where}: notation.symbols.{_key(name)}: no problem of this set prints a "
                f"symbol of that name; allowed are {', '.join(printed) or 'none'}"
            )
    try:
        return Notation(symbols=dict(symbols), time=value.get("time", "superscript"))
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None


def _per_problem(value: Any, problems: list[str], where: str, name: str) -> dict[str, dict]:
    if not isinstance(value, dict):
        raise InputError(f"{where}: {name}: expected a table of problem names")
    for key, table in value.items():
        if key not in problems:
            raise InputError(
                f"{where}: {name}.{key}: not a problem of this set; allowed are "
                f"{', '.join(problems)}"
            )
        if not isinstance(table, dict):
            raise InputError(f"{where}: {name}.{key}: expected a table of parameters")
    return value


def _labels(value, problems: dict[str, type[Problem]], where: str
            ) -> dict[str, dict[str, str]]:
    if not isinstance(value, dict):
        raise InputError(f"{where}: labels must be a table of problem names")
    labelled = [p for p, cls in problems.items() if cls.LABELS]  # headings each problem names
    for problem, table in value.items():
        if problem not in problems or not isinstance(table, dict):
            raise InputError(
                f"{where}: labels.{_key(problem)}: not a problem of this set with labels; "
                f"allowed are {', '.join(labelled) or 'none'}"
            )
        cls = problems[problem]
        # The whole problem's part has no heading of its own: "title" renames the problem.
        allowed = tuple(p for p in cls.LABELS if p != cls.WHOLE)
        for key, text in table.items():
            if key not in allowed or not isinstance(text, str):
                raise InputError(
                    f"{where}: labels.{problem}.{_key(key)}: allowed are text values for "
                    f"{', '.join(allowed)}"
                )
            texgate.text(text, f"{where}: labels.{problem}.{key}", MAX_TEXT)
    return value


def _form(value: Any, where: str) -> Form:
    """``key = "compact"``, or ``key = { form = "compact", extras = true }``: a form, with
    optional material (``Form.extras``) printed or left out whatever the form's default."""
    if not isinstance(value, dict):
        return _form_name(value, where, "key")
    _known_keys(value, {"form", "extras"}, where, "key.")
    form = _form_name(value.get("form", "full"), where, "key.form")
    extras = value.get("extras", form.extras)
    if not isinstance(extras, bool):
        raise InputError(f"{where}: key.extras: expected true or false, got {show(extras)}")
    return dataclasses.replace(form, extras=extras)


def _form_name(value: Any, where: str, path: str) -> Form:
    if not isinstance(value, str) or value not in FORMS:
        also = ", or a table { form = ..., extras = true|false }" if path == "key" else ""
        raise InputError(
            f"{where}: {path}: expected one of {', '.join(FORMS)}{also}, got {show(value)}"
        )
    return FORMS[value]


def _original(value: Any, problems: dict[str, type[Problem]], where: str
              ) -> dict[str, dict[str, Any]]:
    """``[original.<problem>]``: each field one the problem declares (``Problem.ORIGINAL``),
    parsed by its kind, so a remark can only quote what the set says its source holds."""
    _per_problem(value, list(problems), where, "original")
    out = {}
    for key, table in value.items():
        fields = problems[key].ORIGINAL
        for name in table:
            if name not in fields:
                raise InputError(
                    f"{where}: original.{key}.{_key(name)}: unknown field; allowed are "
                    f"{', '.join(fields) or 'none'}"
                )
        out[key] = {
            name: fields[name].parse(table[name], f"{where}: original.{key}.{name}")
            for name in table
        }
    return out


#: Most points a part may carry.
MAX_POINTS = 1000
#: The label that renames a problem's heading (``Problem.LABELS`` may hold it): no part.
TITLE = "title"


def _points(
    value: Any, problems: dict[str, type[Problem]], where: str
) -> dict[str, dict[str, int | Decimal]]:
    _per_problem(value, list(problems), where, "points")
    for key, table in value.items():
        parts = [p for p in problems[key].LABELS if p != TITLE]  # the heading is no part
        for part, n in table.items():
            if part not in parts:
                raise InputError(
                    f"{where}: points.{key}.{_key(part)}: not a part of {key}; allowed are "
                    f"{', '.join(parts) or 'none'}"
                )
            table[part] = _point_value(n, f"{where}: points.{key}.{part}")
    return value


def _point_value(n: Any, where: str) -> int | Decimal:
    """Points of one part: a whole number, or a decimal with at most two places (CSE 891
    gives half points), from 0 to ``MAX_POINTS``; a decimal is kept as written (0.5)."""
    whole = isinstance(n, int) and not isinstance(n, bool)
    decimal = isinstance(n, Decimal) and n.is_finite() and 0 <= n <= MAX_POINTS
    if decimal:  # within range, so quantize cannot overflow the context's precision
        decimal = n == n.quantize(Decimal("0.01"))
    if not (whole or decimal) or not 0 <= n <= MAX_POINTS:
        raise InputError(
            f"{where}: expected a number of points from 0 to {MAX_POINTS} (a whole number "
            f"or a decimal with at most two places, such as 0.5), got {show(n)}"
        )
    return int(n) if decimal and n == int(n) else n


def bundled() -> dict[str, ProblemSet]:
    """The sets shipped with the package, by id, sorted."""
    return dict(_bundled())


@cache
def _bundled() -> dict[str, ProblemSet]:
    # Parsed once per process (a set is frozen): a build of every set asks for each.
    out = {}
    for entry in sorted(resources.files(__name__).iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            pset = parse_set(entry.read_text(encoding="utf-8"), f"bundled set {entry.name}")
            out[pset.id] = pset
    return out


def get_set(name: str) -> ProblemSet:
    """A bundled set by id, or a set file by path."""
    path = Path(name)
    if path.suffix == ".toml":  # never a set's id (``_ID``: no dot), so no bundled set is read
        return parse_set(read_text(path, "set file"), str(path))
    sets = bundled()
    if name not in sets:
        raise InputError(
            f"unknown set {name!r}; bundled sets: {', '.join(sets)} (or a set file NAME.toml)"
        )
    return sets[name]


def check_distinct(sets: Iterable[ProblemSet], out_dir: Path) -> None:
    """Refuse two sets with one id in one run: both would be built into ``out_dir/<id>/``,
    the second overwriting the first."""
    first: dict[str, ProblemSet] = {}
    for pset in sets:
        other = first.setdefault(pset.id, pset)
        if other is pset:
            continue
        folder = out_dir / pset.id
        if other.where == pset.where:
            raise InputError(
                f"{pset.where}: given twice; name each set once (both would be built "
                f"into {folder}/)"
            )
        raise InputError(
            f"{pset.where}: id {pset.id!r} is also the id of {other.where}; both would be "
            f"built into {folder}/ (give each set its own id)"
        )


#: The starter's commented model: a cell of the set's own (README, "Your own models").
_STARTER_MODEL = (
    "# A cell of your own: list its name in problems and define it here (see README).",
    "# [models.my_cell]",
    '# kind = "recurrent"',
    '# title = "Elman network"',
    '# inputs = ["x"]',
    '# states = ["h"]                # h[t-1] is its value at the previous step',
    '# weights = ["w_hx", "w_hh"]',
    '# biases = ["b_h"]              # vector form only',
    '# loss_on = ["h"]',
    '# equations = ["h = tanh(w_hx*x + w_hh*h[t-1] + b_h)"]',
    "",
)


def _starter_params(cls: type[Problem]) -> list[str]:
    """A problem's parameters as the starter lists them: commented, with their defaults."""
    return ["", f"# [params.{cls.key}]   # {cls.title}"] + [
        f"# {p.name} = {to_toml(p.default)}   # {p.doc}" if p.default is not None
        else f"# {p.name} = ...   # optional: {p.doc}" for p in cls.PARAMS
    ]


def starter(name: str) -> str:
    """A commented set file listing every problem, its parameters and their defaults."""
    set_id = re.sub(r"[^a-z0-9_]", "_", name.lower()).lstrip("_0123456789") or "my_set"
    lines = [
        f"# A derive problem set.  Build its answer key with:  derive build {name}.toml",
        f"# and the students' handout with:  derive build {name}.toml --handout",
        "# Every parameter below is optional; without it the problem uses the handout's value.",
        "# Numbers are exact: integers, decimals, or fractions as text (\"3/5\").",
        "",
        f'id = "{set_id[:64]}"          # names the output folder build/<id>/',
        'title = "Homework 1"   # the key adds "Answer Key", the handout does not',
        'course = "My course"',
        'source = "my own handout"',
        'problems = ["eigen_power", "momentum"]   # in order; known: ' + ", ".join(REGISTRY),
        "",
        '# key = "compact"   # the form of the key: full (default), compact or student',
        "",
        "[notation]",
        'time = "superscript"   # h^{(t)}; or "subscript" for h_t',
        "# [notation.symbols]    # how symbols are spelled, e.g. w_ix = \"w_{xi}\"",
    ]
    lines += [line for cls in REGISTRY.values() if cls.PARAMS for line in _starter_params(cls)]
    lines += [
        "",
        *_STARTER_MODEL,
        "# Per-student versions (derive build FILE --variants 30 --seed S) draw each listed",
        "# parameter the handout prints from a list of values or a range:",
        "# [vary.eigen_power]",
        "# n = { min = 10, max = 40 }",
        "",
    ]
    return "\n".join(lines)
