"""Problems defined by a set file's ``[models.<name>]`` tables.

A model table names its ``kind`` and its ``title`` and then the model itself: a recurrent
cell (``kind = "recurrent"``: inputs, states, weights, biases, loss_on, equations, and an
optional regime ``limit``), a map of a state (``kind = "map"``), a network (``kind =
"graph"``), independent random variables and the quantities whose mean and variance the
key derives (``kind = "moments"``), or arrays written entry by entry in index notation
(``kind = "indexed"``: a convolution, a pool).  ``model_class`` turns the table into a problem
class, as a bundled problem is one, so everything downstream (derivation, checks,
templates, export, ``derive grad``) treats the two alike.

The class is a pure function of the table: a set carries its tables (plain data) to the
worker processes, and each rebuilds the class from them (``ProblemSet.problem_class``).
"""

from __future__ import annotations

import copyreg
import json
import re
from abc import ABCMeta
from collections.abc import Callable, Mapping
from typing import Any

from derive.errors import InputError
from derive.params import show
from derive.problems.base import Problem
from derive.tomlread import load_toml

#: A model's name: the name a set's ``problems`` lists and its output keys use.
NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
#: Longest title and noun (they reach TeX through the text gate).
MAX_TITLE = 120
#: The kinds of model and what each table may hold besides ``kind`` and ``title``.
KINDS = ("recurrent", "map", "graph", "moments", "indexed")


def parse_model(source: str | Mapping[str, Any], name: str | None = None) -> type[Problem]:
    """The problem class of a model given as TOML text or as a table.

    Parameters
    ----------
    source
        A model table (``{"kind": "recurrent", "title": ..., "equations": [...]}``), or TOML
        text holding one: either the table's keys at the top level, or one
        ``[models.<name>]`` table as a set file writes it.
    name
        The problem's key; by default the ``<name>`` of ``[models.<name>]``, else "model".

    Returns
    -------
    A ``Problem`` subclass: instantiate it for results and checks, or pass it to
    ``derive.register`` so that the command line and set files know it.
    """
    if isinstance(source, str):
        table = load_toml(source, "model text")
        models = table.get("models")
        if "kind" not in table and isinstance(models, dict) and len(models) == 1:
            (found, table), = models.items()
            name = name or found
    elif isinstance(source, Mapping):
        table = dict(source)
    else:
        raise InputError(f"a model is TOML text or a table, got {type(source).__name__}")
    name = name or "model"
    return model_class(name, table, f"models.{name}")


def model_class(name: str, table: dict[str, Any], where: str) -> type[Problem]:
    """The problem class the model ``table`` defines; ``where`` names it in messages
    (``set.toml: models.mgu``).  Equal tables give the same class."""
    if not NAME.match(name):
        raise InputError(f"{where}: {show(name)} is not allowed as a model's name; use "
                         "lowercase letters, digits and _, starting with a letter, at most 32")
    if not isinstance(table, dict):
        raise InputError(f"{where}: expected a table with kind, title and the model")
    kind = table.get("kind")
    if kind is None:
        raise InputError(f"{where}.kind: missing; expected one of {', '.join(map(repr, KINDS))}")
    if kind not in KINDS:
        raise InputError(f"{where}.kind: expected one of {', '.join(map(repr, KINDS))}, "
                         f"got {show(kind)}")
    # Keyed by the table's text: a set file is parsed once per command, and again in
    # every worker, and each parse asks for the class of each of its models.
    ident = (name, where, canonical(table))
    if ident not in _CLASSES:
        made = _FACTORIES[kind]()(name, table, where)
        # Of a metaclass of its own, so that pickle sends it as its table (a worker
        # rebuilds it) where a class made at run time could not be sent by name.
        _CLASSES[ident] = Defined(made.__name__, (made,), {
            "__module__": made.__module__, "__doc__": made.__doc__,
            "MODEL": (name, table, where)})
    return _CLASSES[ident]


class Defined(ABCMeta):
    """The metaclass of a problem defined by a model table (``MODEL``: its arguments)."""


copyreg.pickle(Defined, lambda cls: (model_class, cls.MODEL))


_CLASSES: dict[tuple[str, str, str], type[Problem]] = {}


def _recurrent() -> Callable[[str, dict, str], type[Problem]]:
    from derive.model.recurrent import recurrent_problem

    return recurrent_problem


def _map() -> Callable[[str, dict, str], type[Problem]]:
    from derive.model.maps import map_problem

    return map_problem


def _graph() -> Callable[[str, dict, str], type[Problem]]:
    from derive.model.graph import graph_problem

    return graph_problem


def _moments() -> Callable[[str, dict, str], type[Problem]]:
    from derive.model.moments import moments_problem

    return moments_problem


def _indexed() -> Callable[[str, dict, str], type[Problem]]:
    from derive.model.indexed import indexed_problem

    return indexed_problem


_FACTORIES = {"recurrent": _recurrent, "map": _map, "graph": _graph, "moments": _moments,
              "indexed": _indexed}


def canonical(table: dict[str, Any]) -> str:
    """A stable text of a model table: a value JSON has no type for (a TOML decimal, a
    date) as its type and text, so that the number 0.5 and the string "0.5" stay apart."""
    return json.dumps(table, sort_keys=True, ensure_ascii=True,
                      default=lambda v: {type(v).__name__: str(v)})
