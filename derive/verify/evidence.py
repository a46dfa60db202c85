"""The evidence of checks: rows of an answer key's verification table, and their errors.

A ``Check`` is one row of an answer key's verification table: the claim (a result key),
the method, the sizes and seeds it ran on, the worst error found and the tolerance, and
whether the claim is that given data is wrong (``detects``: its verdict reads "detected").
``evidence_groups`` arranges checks for print (rows grouped, sizes once per group) and
``evidence_summary`` condenses them to one line: per route, how many claims and how close.

Errors are *mixed* relative errors, ``|a - b| / max(|a|, |b|, floor)`` with the floor a
fixed fraction of the largest reference entry of the same claim: some gradient entries
cancel to nearly zero, and a pure relative error there measures round-off of the
cancellation rather than a wrong formula.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from derive.verify.routes import route_family


def span(values: int | Iterable[int]) -> str:
    """A checked range as rows print it: ``1..6`` for three or more consecutive integers,
    else the values listed (``1, 3, 5``), or the one value."""
    v = [values] if isinstance(values, int) else list(values)
    if len(v) >= 3 and v == list(range(v[0], v[0] + len(v))):
        return f"{v[0]}..{v[-1]}"
    return ", ".join(map(str, v))


def describe_sizes(**ranges: int | Iterable[int]) -> str:
    """The sizes text of a row from the ranges a check runs over, in the order given; a
    name of several letters is several sizes sharing one range: ``describe_sizes(HW=range(1,
    7), d=(1, 3))`` is ``"H, W = 1..6, d = 1, 3"``."""
    return ", ".join(f"{', '.join(name)} = {span(v)}" for name, v in ranges.items())


#: Entries smaller than this fraction of a claim's largest entry are compared absolutely.
FLOOR = 1e-3


@dataclass(frozen=True)
class Check:
    """Evidence for one claim: method, sizes, worst error, tolerance.

    ``detects`` marks a claim that given data (a stated decomposition, stated weights, a
    printed formula) is wrong: when it passes, the error was found, and it reads "detected".
    """

    claim: str
    method: str
    sizes: str
    max_rel_error: float
    tolerance: float
    detects: bool = False

    @property
    def passed(self) -> bool:
        # bool(): a numpy error would give np.bool_, which JSON cannot hold.
        return bool(math.isfinite(self.max_rel_error) and self.max_rel_error <= self.tolerance)

    @property
    def verdict(self) -> str:
        """``"pass"``, ``"detected"`` (a wrong given datum found wrong) or ``"FAIL"``."""
        if not self.passed:
            return "FAIL"
        return "detected" if self.detects else "pass"

    def as_dict(self) -> dict:
        return {
            "claim": self.claim,
            "method": self.method,
            "sizes": self.sizes,
            # JSON has no inf or NaN: an error that could not be measured is null.
            "max_rel_error": (
                float(self.max_rel_error) if math.isfinite(self.max_rel_error) else None
            ),
            "tolerance": float(self.tolerance),
            "passed": self.passed,
            "detects": self.detects,
        }


def rel_error(got, ref, floor: float = FLOOR, scale: float | None = None) -> float:
    """Worst mixed relative error of ``got`` against the reference ``ref``.

    An entry is judged relative to its own size, but never to less than ``floor`` times
    the largest entry (or ``scale``, when a larger one is given: the size of a whole of
    which these entries are part).  The difference is taken before any conversion to
    float64, so 50-digit mpmath values keep their precision.
    """
    got = np.asarray(got).ravel()
    ref = np.asarray(ref).ravel()
    if got.shape != ref.shape:
        return math.inf
    diff = np.abs(got - ref).astype(float)
    a, b = np.abs(got).astype(float), np.abs(ref).astype(float)
    if not (np.all(np.isfinite(diff)) and np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return math.inf
    largest = max(float(np.max(a, initial=0.0)), float(np.max(b, initial=0.0)), scale or 0.0)
    denom = np.maximum(np.maximum(a, b), floor * largest)
    denom[denom == 0] = 1.0  # both exactly zero: no error
    return float(np.max(diff / denom, initial=0.0))


@dataclass(frozen=True)
class EvidenceGroup:
    """Checks printed together: their sizes once, then one row per check or, when three
    claims or more were each checked by most of the same two to five methods (``pivot``),
    one row per claim and one column per method.

    ``sizes`` pairs each distinct sizes text with the methods that ran on it.
    """

    title: str
    checks: list[Check]

    @property
    def sizes(self) -> list[tuple[list[str], str]]:
        out: dict[str, list[str]] = {}
        for c in self.checks:
            methods = out.setdefault(c.sizes, [])
            if c.method not in methods:
                methods.append(c.method)
        return [(m, s) for s, m in out.items()]

    @property
    def methods(self) -> list[tuple[str, float]]:
        """The methods in order of first use, each with its tolerance."""
        out: dict[str, float] = {}
        for c in self.checks:
            out.setdefault(c.method, c.tolerance)
        return list(out.items())

    @property
    def claims(self) -> list[str]:
        return list(dict.fromkeys(c.claim for c in self.checks))

    @property
    def pivot(self) -> bool:
        # A claim x method grid pays only when it is mostly full and each cell is one check.
        pairs = {(c.claim, c.method) for c in self.checks}
        n_methods, n_claims = len(self.methods), len(self.claims)
        return (2 <= n_methods <= 5 and n_claims >= 3 and len(pairs) == len(self.checks)
                and 4 * len(self.checks) >= 3 * n_claims * n_methods)

    @property
    def rows(self) -> list[tuple[str, list[Check | None]]]:
        """The pivot's rows: each claim with its check per method (None where not run)."""
        by = {(c.claim, c.method): c for c in self.checks}
        return [(k, [by.get((k, m)) for m, _ in self.methods]) for k in self.claims]


def evidence_groups(checks: list[Check],
                    named: list[tuple[str, list[Check]]] | None = None) -> list[EvidenceGroup]:
    """``checks`` arranged for print: in the groups a problem names (``named``), else
    grouped by the sizes they ran on, in order of first appearance."""
    if named is not None:
        return [EvidenceGroup(title, list(group)) for title, group in named if group]
    by_sizes: dict[str, list[Check]] = {}
    for c in checks:
        by_sizes.setdefault(c.sizes, []).append(c)
    return [EvidenceGroup("", group) for group in by_sizes.values()]


@dataclass(frozen=True)
class RouteSummary:
    """One route's share of a problem's evidence: claims and checks, and the worst error."""

    route: str
    claims: int
    checks: int
    worst: float
    exact: bool
    failed: int


def evidence_summary(checks: list[Check]) -> list[RouteSummary]:
    """Per route family (``routes.route_family``), in order of first use with exact checks
    last: how many claims and checks, the worst error, how many failed."""
    fams: dict[str, list[Check]] = {}
    for c in checks:
        fams.setdefault(route_family(c.method, c.tolerance), []).append(c)
    out = [
        RouteSummary(
            name, len({c.claim for c in group}), len(group),
            max(c.max_rel_error for c in group), all(c.tolerance == 0 for c in group),
            sum(not c.passed for c in group),
        )
        for name, group in fams.items()
    ]
    return sorted(out, key=lambda r: r.exact)  # stable: the order of first use otherwise
