"""Building a set's outputs: derivations, checks, LaTeX, PDF and JSON.

Every file is written atomically; a failure leaves earlier outputs byte-identical.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from derive.errors import ChecksFailedError, NoTexEngineError
from derive.fsutil import atomic_write
from derive.problems import Problem
from derive.render import pdf
from derive.render.document import render
from derive.render.latex import KeyPrinter
from derive.sets import ProblemSet

FORMATS = ("pdf", "tex", "json")


def export(pset: ProblemSet, problems: list[Problem]) -> dict:
    """The JSON document of a set's derived results and checks (stable keys)."""
    printer = KeyPrinter(pset.notation)
    out = {"set": pset.id, "title": pset.title, "problems": {}}
    for p in problems:
        results = {
            key: {"latex": printer.doprint(r.expr), "sympy": r.srepr(), "value": r.value}
            for key, r in p.results.items()
        }
        checks = [c.as_dict() for c in p.checks]
        out["problems"][p.key] = {"title": p.title, "results": results, "checks": checks}
    return out


def make_problems(pset: ProblemSet, cache: dict[str, Problem]) -> list[Problem]:
    """``pset``'s problems with its parameters, reusing instances with equal parameters."""
    out = []
    for key in pset.problems:
        ident = key + ":" + canonical(pset.params.get(key, {}))
        if ident not in cache:
            cache[ident] = pset.make_problem(key)
        out.append(cache[ident])
    return out


def canonical(value: Any) -> str:
    """A stable text of raw set-file data (Decimals as written, keys sorted)."""
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=True)


def failed_checks(problems: list[Problem]) -> list[str]:
    """``problem:claim (method)`` of every failing check."""
    return [f"{p.key}:{c.claim} ({c.method})" for p in problems for c in p.checks if not c.passed]


def build(
    pset: ProblemSet, out_dir: Path, fmt: str = "pdf", cache: dict[str, Problem] | None = None
) -> list[Path]:
    """Build ``pset`` in format ``fmt`` into ``out_dir/<set id>/``; return the files written.

    If a check fails, the outputs are still written (the key marks the claim FAIL) and
    ``ChecksFailedError`` is raised afterwards, so the command exits nonzero.  ``cache``
    shares derived problems between the sets of one run (a problem in three sets is
    derived and checked once).
    """
    if fmt == "pdf" and pdf.find_engine() is None:
        raise NoTexEngineError(pdf.INSTALL_HINT)
    problems = make_problems(pset, {} if cache is None else cache)
    written = _write(pset, problems, out_dir / pset.id, fmt)
    failed = failed_checks(problems)
    if failed:
        raise ChecksFailedError(
            f"{pset.id}: {len(failed)} check(s) failed, marked FAIL in {written[0]}: "
            + "; ".join(failed[:5])
        )
    return written


def _write(pset: ProblemSet, problems: list[Problem], target: Path, fmt: str) -> list[Path]:
    if fmt == "json":
        path = target / "derivations.json"
        text = json.dumps(export(pset, problems), indent=2, ensure_ascii=True, allow_nan=False)
        text += "\n"
        atomic_write(path, text.encode())
        return [path]
    source = render(pset, problems)
    if fmt == "tex":
        path = target / "answer-key.tex"
        atomic_write(path, source.encode())
        return [path]
    path = target / "answer-key.pdf"
    pdf.compile_pdf(source, path)
    atomic_write(target / "answer-key.tex", source.encode())
    return [path, target / "answer-key.tex"]
