"""Claims about a problem's results, and the one ``verify`` that checks them.

A problem's ``claims()`` yields ``Claim`` objects: which result is claimed, by which
route it is checked, on which sizes, to which tolerance, and how to measure the worst
error.  ``verify`` measures each and returns the evidence rows (``Check``); a claim about
a key that is not one of the problem's results is a programming error, so a key can never
print evidence for something it does not state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from derive.verify.evidence import Check


class ClaimError(RuntimeError):
    """A claim names a key that is not a result of its problem."""


@dataclass(frozen=True)
class Claim:
    """A checkable statement about the result ``key``.

    ``measure`` returns the worst error found by ``route`` (a mixed relative error, or a
    count of failures for exact routes, whose tolerance is 0).  ``detects``: the claim is
    that given data is wrong (its evidence then reads "detected", not "pass").
    """

    key: str
    route: str
    sizes: str
    tolerance: float
    measure: Callable[[], float]
    detects: bool = False

    @classmethod
    def measured(cls, key: str, route: str, sizes: str, error: float,
                 tolerance: float, detects: bool = False) -> Claim:
        """A claim whose error was measured together with others (one shared run)."""
        return cls(key, route, sizes, tolerance, lambda: error, detects)


class HasClaims(Protocol):
    key: str

    @property
    def results(self) -> dict[str, Any]: ...

    def claims(self) -> Iterable[Claim]: ...


def verify(problem: HasClaims) -> list[Check]:
    """Measure every claim of ``problem``: the rows of its evidence table, in order."""
    results = problem.results
    checks = []
    for claim in problem.claims():
        if claim.key not in results:
            raise ClaimError(
                f"problem {problem.key!r}: a claim about {claim.key!r}, which is not one of "
                f"its results ({', '.join(sorted(results))})"
            )
        error = float(claim.measure())
        checks.append(
            Check(claim.key, claim.route, claim.sizes, error, claim.tolerance, claim.detects)
        )
    return checks
