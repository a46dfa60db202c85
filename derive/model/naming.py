"""How a key speaks of a model a set file defines: its title and the noun its question
uses, each text that reaches TeX through the text gate."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from derive.errors import InputError
from derive.params import show
from derive.render import texgate

#: Longest title, noun and role.
MAX_WORDS = 120


def table_title(name: str, table: Any, keys: tuple[str, ...], where: str) -> str:
    """The title of a model's table (``name`` unless it gives one), once the table is
    found to be one and to hold only ``keys``."""
    if not isinstance(table, Mapping):
        raise InputError(f"{where}: expected a table with {', '.join(keys)}")
    unknown = sorted(set(table) - set(keys))
    if unknown:
        raise InputError(f"{where}.{unknown[0]}: unknown key; allowed are {', '.join(keys)}")
    title = table.get("title", name)
    if not isinstance(title, str) or not 0 < len(title) <= MAX_WORDS:
        raise InputError(f"{where}.title: expected a text of 1 to {MAX_WORDS} characters")
    return title


def title_and_noun(table: dict[str, Any], where: str) -> tuple[str, str]:
    """The model's ``title`` (required) and ``noun`` (the title, lowercased, by default)."""
    title = words(table.get("title"), f"{where}.title")
    noun = table.get("noun")
    return title, words(noun, f"{where}.noun") if noun is not None else lowered(title)


def words(value: Any, where: str) -> str:
    """A non-empty text, passed through the text gate."""
    if value is None:
        raise InputError(f"{where}: missing; expected a non-empty string")
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{where}: expected a non-empty string, got {show(value)}")
    return texgate.text(value, where, MAX_WORDS)


def lowered(title: str) -> str:
    """The title as a noun: "Minimal gated unit" -> "minimal gated unit", but an acronym
    stays ("LSTM with coupled gates")."""
    first = title.split()[0]
    return title if first[1:2].isupper() else title[:1].lower() + title[1:]
