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

WORDS = ("kind", "title", "noun", "optional", "outputs", "hessian", "alternative")


def graph_problem(name: str, table: dict[str, Any], where: str) -> type[GraphProblem]:
    """The ``GraphProblem`` subclass the model ``table`` defines."""
    allowed = (*WORDS, *text.KEYS)
    for key in table:
        if key not in allowed:
            raise InputError(f"{where}.{key}: unknown key; allowed are {', '.join(allowed)}")
    graph = text.graph_from_table({k: v for k, v in table.items() if k in text.KEYS}, where)
    if not graph.targets():
        raise InputError(f"{where}.params: expected at least one parameter, or an input "
                         "named in wrt (the gradients the key derives are theirs)")
    title, noun = title_and_noun(table, where)
    named = [n for n in graph.nodes if n not in graph.hidden and n != graph.loss.name
             and (graph.nodes[n].op not in ("input", "labels", "const", "mask")
                  or n in graph.wrt)]
    attrs = {
        "key": name,
        "title": title,
        "MAIN": f"{graph.targets()[0].name}_bar",
        "NOUN": noun,
        "OPTIONAL": _optional(table.get("optional", {}), graph, f"{where}.optional"),
        "OUTPUTS": _outputs(table.get("outputs", []), graph, f"{where}.outputs"),
        "ALTERNATIVE": _alternative(table.get("alternative"), f"{where}.alternative"),
        "HESSIAN": _hessian(table.get("hessian", ""), graph, f"{where}.hessian"),
        "LABELS": ("backward", "gradients", *(("hessian", "shift") if "hessian" in table
                                               else ())),
        "GRAPH": graph,
        "TABLE": copy.deepcopy(dict(table)),
        "SYMBOLS": tuple(n for n in graph.nodes if n not in graph.hidden),
        "RESULTS": {f"{n}_bar": f"The adjoint dL/d{n} in matrix notation." for n in named}
        | ({"hessian": "The Hessian of the loss in one row of the scores, (diag(p) - p p^T)/N.",
            "lse_shift": "log sum_j exp(s_j) = m + log sum_j exp(s_j - m), for every m."}
           if "hessian" in table else {}),
        "__module__": __name__,
        "__doc__": f"The network {name!r} of a set file: {title}.",
    }
    return type(f"Graph_{name}", (GraphProblem,), attrs)


def _optional(value: Any, graph, where: str) -> dict[str, float]:
    """Leaves ``derive eval`` may be given without: each input's or constant's fill."""
    if not isinstance(value, dict):
        raise InputError(f"{where}: expected a table of input or constant names to numbers")
    out = {}
    for name, fill in value.items():
        node = graph.nodes.get(name)
        if node is None or node.op not in ("input", "const", "mask"):
            raise InputError(f"{where}.{name}: not a declared input, mask or constant")
        if isinstance(fill, bool) or not isinstance(fill, int | float):
            raise InputError(f"{where}.{name}: expected a number (every entry's value)")
        out[name] = float(fill)
    return out


def _outputs(value: Any, graph, where: str) -> tuple[str, ...]:
    """Computed quantities ``derive eval`` returns in place of the loss."""
    ok = isinstance(value, list) and all(
        isinstance(v, str) and v in graph.nodes and v not in graph.hidden
        and graph.nodes[v].op not in ("input", "labels", "param", "const", "mask")
        for v in value)
    if not ok:
        raise InputError(f"{where}: expected a list of quantities the equations name")
    return tuple(value)


def _hessian(value: Any, graph, where: str) -> str:
    """The named scores of a cross-entropy, whose Hessian the key derives, or ""."""
    if value == "":
        return ""
    scores = [n.args[0] for n in graph.nodes.values() if n.op == "softmax_ce"]
    if not isinstance(value, str) or value not in scores or value in graph.hidden:
        raise InputError(f"{where}: expected the name of the scores a softmax_ce reads "
                         f"({', '.join(s for s in scores if s not in graph.hidden) or 'none'})")
    readers = [n for n in graph.nodes.values() if value in n.args]
    if len(readers) != 1:
        raise InputError(f"{where}: {value} is read by more than the cross-entropy, so the "
                         "loss's Hessian in it is not the cross-entropy's alone")
    return value


def _alternative(value: Any, where: str) -> tuple[str, str] | None:
    """(key, model): ``derive eval`` of an input holding ``key`` evaluates the set's model
    ``model`` instead (word2vec given negatives: the negative-sampling loss)."""
    if value is None:
        return None
    ok = isinstance(value, dict) and set(value) == {"when", "model"} and all(
        isinstance(v, str) for v in value.values())
    if not ok:
        raise InputError(f"{where}: expected {{ when = \"<input key>\", model = \"<a model of "
                         "the set>\" }")
    return value["when"], value["model"]
