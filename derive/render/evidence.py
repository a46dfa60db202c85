"""Evidence as a key prints it: claims named by their mathematics, routes in words.

``evidence_view`` turns a problem's checks into what the evidence macros format: groups
of rows with the sizes once per group, each claim named by its result's left-hand side in
the set's notation (or by the problem's ``CLAIM_NAMES``, for claims that are not one
formula), each method in words (``routes.route_words``), the failed and detected claims
by name, and ``summary_line``: the one sentence a compact key prints instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from derive.render.numbers import sci
from derive.render.texgate import escape
from derive.verify import Check, EvidenceGroup, evidence_groups, evidence_summary
from derive.verify.routes import route_words


@dataclass(frozen=True)
class Row:
    """One printed row: the claim's name and the method in words (list layout), each ""
    where the row above shows it; its checks (one, or one per column of a pivot), the verdict."""

    name: str
    method: str
    checks: list[Check | None]
    verdict: str


@dataclass(frozen=True)
class Group:
    """A table's group: its title, its sizes (methods in words, sizes), heads, rows."""

    title: str
    sizes: list[tuple[str, str]]
    pivot: bool
    heads: list[tuple[str, float]]
    rows: list[Row]


@dataclass(frozen=True)
class View:
    """A problem's evidence: groups, failed and detected claims by name, the summary."""

    groups: list[Group]
    failed: list[str]
    detected: list[str]
    line: str

    @property
    def tables(self) -> list[tuple[bool, list[Group]]]:
        """The groups as printed tables: each pivot group alone, consecutive list groups
        together (one head, a heading row per group)."""
        out: list[tuple[bool, list[Group]]] = []
        for g in self.groups:
            if g.pivot or not out or out[-1][0]:
                out.append((g.pivot, [g]))
            else:
                out[-1][1].append(g)
        return out


def claim_name(problem: Any, key: str, tex: Any) -> str:
    """The claim ``key`` as a table names it (LaTeX): the problem's ``CLAIM_NAMES`` entry,
    else its result's left-hand side through ``tex``, else the key in words.

    ``tex`` looks up the set's spellings of what it prints, so a left-hand side printing
    a symbol the problem does not declare (``Problem.SYMBOLS``) is named in ``CLAIM_NAMES``.
    """
    name = getattr(problem, "CLAIM_NAMES", {}).get(key, "{lhs}")
    if "{lhs}" not in name:
        return name
    lhs = problem.results[key].lhs if key in problem.results else None
    if lhs is None:
        return escape(key.replace("_", " "))
    return name.replace("{lhs}", f"${tex(lhs)}$")


def evidence_view(problem: Any, checks: list[Check], tex: Any) -> View:
    """``checks`` of ``problem`` arranged for print; ``tex`` prints a SymPy object."""
    named = problem.check_groups() if hasattr(problem, "check_groups") else None
    names = {c.claim: claim_name(problem, c.claim, tex) for c in checks}
    groups = [_group(g, names) for g in evidence_groups(checks, named)]
    failed = list(dict.fromkeys(names[c.claim] for c in checks if not c.passed))
    detected = list(dict.fromkeys(names[c.claim] for c in checks if c.verdict == "detected"))
    return View(groups, failed, detected, summary_line(checks, names))


def _group(g: EvidenceGroup, names: dict[str, str]) -> Group:
    tails = _tail(m for m, _ in g.methods)
    sizes = [(", ".join(escape(_cut(route_words(m), tails)) for m in methods), escape(s))
             for methods, s in g.sizes]
    if len(sizes) == 1:
        sizes = [("", sizes[0][1])]
    else:
        sizes = _others(sizes, [methods for methods, _ in g.sizes])
    if g.pivot:
        heads = [(escape(_cut(route_words(m), tails)), tol) for m, tol in g.methods]
        rows = [Row(names[k], "", cs, _verdict([c for c in cs if c])) for k, cs in g.rows]
    else:
        # A name or a method the row above shows is left blank: read it from above.
        heads, rows, last = [], [], Check("", "", "", 0.0, 0.0)
        for c in g.checks:
            name = "" if c.claim == last.claim else names[c.claim]
            method = "" if c.method == last.method else _words(c.method)
            rows.append(Row(name, method, [c], c.verdict))
            last = c
    return Group(escape(g.title), sizes, g.pivot, heads, rows)


def _others(sizes: list[tuple[str, str]], methods: list[list[str]]) -> list[tuple[str, str]]:
    """Sizes labelled by their methods, but the entry of three methods or more (the most)
    reads "the others": its rows say their methods, and a heading listing them all would
    run for lines."""
    most = max(range(len(methods)), key=lambda i: len(methods[i]))
    if len(methods[most]) < 3:
        return sizes
    return [("the others" if i == most else label, s) for i, (label, s) in enumerate(sizes)]


def _words(method: str) -> str:
    return escape(route_words(method))


def _tail(methods: Any) -> str:
    """The gradient checks' tail ", saturated" when every one of ``methods`` has it, else
    "": the group's title says it, so heads and sizes leave it out."""
    ends = {m.endswith(_SATURATED) for m in methods}
    return _SATURATED if ends == {True} else ""


def _cut(words: str, tail: str) -> str:
    return words.removesuffix(tail) if tail else words


_SATURATED = ", saturated"


def _verdict(checks: list[Check]) -> str:
    if any(not c.passed for c in checks):
        return "FAIL"
    return "detected" if any(c.detects for c in checks) else "pass"


def summary_line(checks: list[Check], names: dict[str, str]) -> str:
    """One sentence (LaTeX) for all of ``checks``: per route, claims and the worst error
    (routes covering as many claims share a clause); the exact checks; what was detected;
    every failure by name, in bold."""
    clauses: list[tuple[int, list[str]]] = []
    exact = ""
    for r in evidence_summary(checks):
        if r.exact:
            verb = "holds" if r.checks == 1 else "hold"
            exact = (f"{_count(r.checks, 'exact check')} of {_count(r.claims, 'claim')} {verb}"
                     + (" with no error" if not r.failed else f", {r.failed} failing"))
            continue
        route = f"with {escape(r.route)} to $\\le {sci(r.worst)}$"
        if clauses and clauses[-1][0] == r.claims:
            clauses[-1][1].append(route)
        else:
            clauses.append((r.claims, [route]))
    parts = [
        f"{_count(n, 'claim')} {'agrees' if n == 1 else 'agree'} " + _and(routes)
        for n, routes in clauses
    ]
    text = "; ".join([*parts, exact] if exact else parts)
    detected = [names[c.claim] for c in checks if c.verdict == "detected"]
    if detected:
        text += "; wrong given data detected: " + ", ".join(dict.fromkeys(detected))
    failed = [names[c.claim] for c in checks if not c.passed]
    if failed:
        text += r"; \textbf{FAILED: " + ", ".join(dict.fromkeys(failed)) + "}"
    return text[0].upper() + text[1:] + "."


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
