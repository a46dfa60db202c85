"""Every registered problem: its claims pass their checks, every result is checked, and
every check is of a result.

The problems come from ``derive.problems.REGISTRY`` through ``problem_key`` and
``recurrent_key`` (tests/conftest.py); ``--problem KEY`` narrows them.
"""

from __future__ import annotations


def test_every_check_passes(problem_key, problems):
    checks = problems[problem_key].checks
    failed = [(c.claim, c.method, c.max_rel_error, c.tolerance) for c in checks]
    failed = [f for f in failed if not f[2] <= f[3]]
    assert checks and not failed


def test_every_result_has_evidence(problem_key, problems):
    p = problems[problem_key]
    claims = {c.claim for c in p.checks}
    unchecked = [result for result in p.results if result not in claims]
    assert not unchecked, f"{problem_key}: no check covers {unchecked}"


def test_every_claim_is_a_result(problem_key, problems):
    # A check of a key that is no result verifies nothing a reader or the JSON sees.
    p = problems[problem_key]
    strays = sorted({c.claim for c in p.checks} - set(p.results))
    assert not strays, f"{problem_key}: checks of no result: {strays}"


def test_checks_use_independent_methods(recurrent_key, problems):
    # Gradient claims are checked by several routes, not one.
    methods = {c.method for c in problems[recurrent_key].checks}
    assert {"complex step", "central difference", "mpmath 50 digits"} <= methods
