"""A feed-forward network defined in a set file (``kind = "graph"``), as a problem class.

The table holds the graph (``derive.feedforward.text`` reads it) and how the key speaks of
it: ``title`` (its heading) and an optional ``noun`` (what the question calls it).
"""

from __future__ import annotations

import copy
from typing import Any

from derive.errors import InputError
from derive.feedforward import text
from derive.model.naming import title_and_noun
from derive.problems.feedforward import GraphProblem

WORDS = ("kind", "title", "noun")


def graph_problem(name: str, table: dict[str, Any], where: str) -> type[GraphProblem]:
    """The ``GraphProblem`` subclass the model ``table`` defines."""
    allowed = (*WORDS, *text.KEYS)
    for key in table:
        if key not in allowed:
            raise InputError(f"{where}.{key}: unknown key; allowed are {', '.join(allowed)}")
    graph = text.graph_from_table({k: v for k, v in table.items() if k in text.KEYS}, where)
    if not graph.params():
        raise InputError(f"{where}.params: expected at least one parameter (the gradients "
                         "the key derives are the parameters')")
    title, noun = title_and_noun(table, where)
    named = [n for n in graph.nodes if n not in graph.hidden and n != graph.loss.name
             and graph.nodes[n].op not in ("input", "labels", "const")]
    attrs = {
        "key": name,
        "title": title,
        "MAIN": f"{graph.params()[0].name}_bar",
        "NOUN": noun,
        "GRAPH": graph,
        "TABLE": copy.deepcopy(dict(table)),
        "SYMBOLS": tuple(n for n in graph.nodes if n not in graph.hidden),
        "RESULTS": {f"{n}_bar": f"The adjoint dL/d{n} in matrix notation." for n in named},
        "__module__": __name__,
        "__doc__": f"The network {name!r} of a set file: {title}.",
    }
    return type(f"Graph_{name}", (GraphProblem,), attrs)
