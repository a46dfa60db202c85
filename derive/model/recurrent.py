"""A recurrent cell defined in a set file (``kind = "recurrent"``), as a problem class.

The table holds the cell (``derive.model.equations.cell_spec`` reads it) and how the key
speaks of it: ``title`` (its heading), an optional ``noun`` (what the question calls it,
"minimal gated unit"; the title, lowercased, by default), optional ``roles`` (per assigned
variable, what it is: ``{ f = "a forget gate" }``) and an optional regime ``limit``.
"""

from __future__ import annotations

import re
from typing import Any

from derive.engine.spec import CellSpec
from derive.engine.vector import VectorCell
from derive.errors import InputError
from derive.model import equations
from derive.model.naming import title_and_noun, words
from derive.problems.recurrent import RecurrentProblem

#: What a recurrent model's table holds besides the cell itself.
WORDS = ("kind", "title", "noun", "roles", "limit")


def recurrent_problem(name: str, table: dict[str, Any], where: str) -> type[RecurrentProblem]:
    """The ``RecurrentProblem`` subclass the model ``table`` defines."""
    allowed = (*WORDS, *equations.KEYS)
    for key in table:
        if key not in allowed:
            raise InputError(f"{where}.{key}: unknown key; allowed are {', '.join(allowed)}")
    spec = equations.cell_spec(name, {k: v for k, v in table.items() if k in equations.KEYS},
                               where)
    try:  # the vector form's shapes: each weight multiplies vectors of one size
        VectorCell(spec.build(biases=True))
    except InputError as exc:  # spoken in the set's own names: h[t-1], not h_prev
        said = re.sub(r"\b(\w+)_prev\b", r"\1[t-1]", str(exc))
        raise InputError(f"{where}.equations: in the vector form, {said}") from None
    if not spec.weights:
        raise InputError(f"{where}.weights: expected at least one weight (the gradients "
                         "the key derives are the weights')")
    title, noun = title_and_noun(table, where)
    attrs = {
        "key": name,
        "title": title,
        "MAIN": f"{spec.weights[0]}_bar",
        "NOUN": noun,
        "ROLES": _roles(table.get("roles"), spec, f"{where}.roles"),
        "CELL": spec,
        "__module__": __name__,
        "__doc__": f"The recurrent cell {name!r} of a set file: {title}.",
    }
    if "limit" in table:
        from derive.model.limit import parse_limit

        attrs["LIMIT"] = parse_limit(spec, table["limit"], f"{where}.limit")
    return type(f"Model_{name}", (RecurrentProblem,), attrs)


def _roles(value: Any, spec: CellSpec, where: str) -> tuple[str, ...]:
    """Each assigned variable's role, in the order of the equations; () when not given."""
    if value is None:
        return ()
    assigned = [e.target for e in spec.interpreter.parsed]  # the equations' own order
    if not isinstance(value, dict):
        raise InputError(f"{where}: expected a table giving each of {', '.join(assigned)} "
                         "a role in words")
    for key in value:
        if key not in assigned:
            raise InputError(f"{where}.{key}: not an assigned variable; assigned are "
                             f"{', '.join(assigned)}")
    missing = [v for v in assigned if v not in value]
    if missing:
        raise InputError(f"{where}: no role for {', '.join(missing)}; give every assigned "
                         "variable one, or none")
    return tuple(words(value[v], f"{where}.{v}") for v in assigned)
