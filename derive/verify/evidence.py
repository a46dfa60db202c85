"""The evidence of checks: rows of an answer key's verification table, and their errors.

A ``Check`` is one row of an answer key's verification table: the claim (a result key),
the method, the sizes and seeds it ran on, the worst error found and the tolerance.

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
    """Evidence for one claim: method, sizes, worst error, tolerance."""

    claim: str
    method: str
    sizes: str
    max_rel_error: float
    tolerance: float

    @property
    def passed(self) -> bool:
        # bool(): a numpy error would give np.bool_, which JSON cannot hold.
        return bool(math.isfinite(self.max_rel_error) and self.max_rel_error <= self.tolerance)

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
        }


def rel_error(got, ref, floor: float = FLOOR) -> float:
    """Worst mixed relative error of ``got`` against the reference ``ref``.

    The difference is taken before any conversion to float64, so 50-digit mpmath values
    keep their precision.
    """
    got = np.asarray(got).ravel()
    ref = np.asarray(ref).ravel()
    if got.shape != ref.shape:
        return math.inf
    diff = np.abs(got - ref).astype(float)
    a, b = np.abs(got).astype(float), np.abs(ref).astype(float)
    if not (np.all(np.isfinite(diff)) and np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return math.inf
    scale = max(float(np.max(a, initial=0.0)), float(np.max(b, initial=0.0)))
    denom = np.maximum(np.maximum(a, b), floor * scale)
    denom[denom == 0] = 1.0  # both exactly zero: no error
    return float(np.max(diff / denom, initial=0.0))


@dataclass(frozen=True)
class EvidenceTable:
    """Checks pivoted for print: one row per claim, one column per method."""

    methods: list[tuple[str, float, str]]  # (method, tolerance, sizes)
    rows: list[tuple[str, list[float | None], bool]]  # (claim, worst error per method, passed)


def evidence_table(checks: list[Check]) -> EvidenceTable:
    """Pivot ``checks`` so that an answer key prints them compactly."""
    methods: dict[str, tuple[str, float, str]] = {}
    for c in checks:
        methods.setdefault(c.method, (c.method, c.tolerance, c.sizes))
    order = list(methods)
    claims: dict[str, dict[str, Check]] = {}
    for c in checks:
        claims.setdefault(c.claim, {})[c.method] = c
    rows = []
    for claim, by_method in claims.items():
        errors = [by_method[m].max_rel_error if m in by_method else None for m in order]
        rows.append((claim, errors, all(c.passed for c in by_method.values())))
    return EvidenceTable(list(methods.values()), rows)
