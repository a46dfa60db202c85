"""Verification: independent routes, claims about results, and the evidence they leave.

``routes`` holds each route once (complex step, central and high-precision differences,
enumeration, counting by instantiation, symbolic zero, sampling); ``claims`` holds
``Claim`` and the one generic ``verify``; ``evidence`` holds the printed rows (``Check``)
and the error measure they share.
"""

from derive.verify.claims import Claim, ClaimError, verify
from derive.verify.evidence import (
    FLOOR,
    Check,
    EvidenceGroup,
    RouteSummary,
    evidence_groups,
    evidence_summary,
    rel_error,
)

__all__ = [
    "FLOOR",
    "Check",
    "Claim",
    "ClaimError",
    "EvidenceGroup",
    "RouteSummary",
    "evidence_groups",
    "evidence_summary",
    "rel_error",
    "verify",
]
