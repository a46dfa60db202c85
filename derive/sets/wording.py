"""A set's own wording of its questions: ``[questions.<problem>]``.

```toml
[questions.lstm]
intro = "A gated cell with one state ..."           # the words that open the question
parts.weight = "Derive $\\bar{w}_{ix}$ as a sum over the steps."
omit = ["optional"]                                  # optional parts left out
```

``intro`` replaces the words that open a problem's question, ``parts.<part>`` what a part
asks (the parts are the problem's ``LABELS`` but its title and hint, and its ``OPTIONAL``
parts); the data the question states (a model's equations, a matrix, a layer list, a table)
is printed as before, and so is the key's solution: words change, no mathematics the key
derives goes.  ``omit`` leaves out parts the problem marks as optional (``OPTIONAL``), from
the handout and from the key.  Every text passes ``texgate.wording``: free text with
``$...$`` formulas, judged as TeX reads them.  The templates read the result through
``m.said`` (the set's words, else the bundled ones) and ``wording.omit``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from derive.errors import InputError
from derive.params import show
from derive.problems import Problem
from derive.render import texgate

#: Labels that are no part of the question: the problem's heading and binary_adder's hint
#: (a sentence of its own, printed with the question).
NOT_PARTS = ("title", "hint")
#: The text that opens a question, beside its parts.
INTRO = "intro"
_KEYS = (INTRO, "parts", "omit")


@dataclass(frozen=True)
class Wording:
    """A set's words for one problem's question.

    Attributes
    ----------
    text : dict[str, str]
        LaTeX of ``"intro"`` and of each worded part, by name (gated, ready to print).
    omit : frozenset[str]
        Optional parts left out of the handout and the key.
    """

    text: dict[str, str] = field(default_factory=dict)
    omit: frozenset[str] = frozenset()


#: A question in its bundled words.
BUNDLED = Wording()


def parts(cls: type[Problem]) -> tuple[str, ...]:
    """The parts of ``cls``'s question a set may word: labels and optional parts."""
    names = (*cls.LABELS, *cls.OPTIONAL)
    return tuple(dict.fromkeys(n for n in names if n not in NOT_PARTS))


def parse(
    data: dict[str, Any], classes: Mapping[str, type[Problem]], where: str, max_len: int
) -> dict[str, Wording]:
    """``[questions]`` of a set file: a ``Wording`` per problem it words.

    Parameters
    ----------
    data
        The set file as ``tomllib`` read it: its ``questions`` table, and its ``points``
        and ``labels``, which may not number or score a part the set omits.
    classes
        The set's problems, by key, in order.
    where
        The set file, for messages.
    max_len
        Most characters of one text (the bound of all free text).
    """
    value = data.get("questions", {})
    if not isinstance(value, dict):
        raise InputError(f"{where}: questions: expected a table of problem names")
    out = {}
    for key, table in value.items():
        if key not in classes or not isinstance(table, dict):
            raise InputError(
                f"{where}: questions.{_name(key)}: not a problem of this set; allowed are "
                f"tables named {', '.join(classes)}"
            )
        out[key] = _wording(table, classes[key], f"{where}: questions.{key}", max_len)
        _agrees(out[key], classes[key], data, f"{where}: ", key)
    return out


def _agrees(said: Wording, cls: type[Problem], data: dict[str, Any], at: str, key: str) -> None:
    """Refuse words for a part the question does not have and numbers for one it omits."""
    for name in ("points", "labels"):  # both checked by now: tables of tables
        given = sorted(said.omit & set(data.get(name, {}).get(key, {})))
        if given:
            raise InputError(
                f"{at}{name}.{key}.{given[0]}: the set omits this part "
                f"(questions.{key}.omit); drop one of the two"
            )
    # A part named as a parameter (a recurrent cell's worked example) exists only with it.
    for param in sorted({p.name for p in cls.PARAMS} & set(said.text)):
        if not any(param in data.get(t, {}).get(key, {}) for t in ("params", "vary")):
            raise InputError(
                f"{at}questions.{key}.parts.{param}: the question has this part only with "
                f"params.{key}.{param}; give it, or drop these words"
            )


def _wording(table: dict, cls: type[Problem], path: str, max_len: int) -> Wording:
    for name in table:
        if name not in _KEYS:
            raise InputError(f"{path}.{_name(name)}: unknown key; allowed are {', '.join(_KEYS)}")
    text = {}
    if INTRO in table:
        text[INTRO] = texgate.wording(table[INTRO], f"{path}.{INTRO}", max_len)
    worded = table.get("parts", {})
    if not isinstance(worded, dict):
        raise InputError(f"{path}.parts: expected a table of texts by part, got {show(worded)}")
    allowed = parts(cls)
    for name, words in worded.items():
        if name not in allowed:
            raise InputError(
                f"{path}.parts.{_name(name)}: not a part of {cls.key}; allowed are "
                f"{', '.join(allowed) or 'none'}"
            )
        text[name] = texgate.wording(words, f"{path}.parts.{name}", max_len)
    omit = _omit(table.get("omit", []), cls, path)
    for name in omit & set(text):
        raise InputError(f"{path}.parts.{name}: the part is omitted (omit); word it or keep it")
    return Wording(text, omit)


def _omit(value: Any, cls: type[Problem], path: str) -> frozenset[str]:
    optional = cls.OPTIONAL
    if not isinstance(value, list):
        raise InputError(f"{path}.omit: expected a list of part names, got {show(value)}")
    for i, name in enumerate(value):
        if name not in optional:
            raise InputError(
                f"{path}.omit[{i}]: {show(name)} is not an optional part of {cls.key}; "
                f"allowed are {', '.join(optional) or 'none (no part of it is optional)'}"
            )
    return frozenset(value)


def _name(key: Any) -> str:
    """A key for a field path: as it stands if a plain name, else quoted and shortened."""
    return key if isinstance(key, str) and key.isidentifier() and len(key) <= 64 else show(key)
