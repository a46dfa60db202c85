"""Every registered problem: its claims pass their checks, and no claim goes unchecked."""

from __future__ import annotations

import pytest

from derive.problems import REGISTRY
from derive.problems.recurrent import RecurrentProblem


@pytest.mark.parametrize("key", list(REGISTRY))
def test_every_check_passes(key, problems):
    failed = [(c.claim, c.method, c.max_rel_error, c.tolerance) for c in problems[key].checks]
    failed = [f for f in failed if not f[2] <= f[3]]
    assert not failed


@pytest.mark.parametrize("key", list(REGISTRY))
def test_every_result_has_evidence(key, problems):
    p = problems[key]
    claims = {c.claim for c in p.checks}
    unchecked = [result for result in p.results if result not in claims]
    assert not unchecked, f"{key}: no check covers {unchecked}"


RECURRENT = [k for k, cls in REGISTRY.items() if issubclass(cls, RecurrentProblem)]


@pytest.mark.parametrize("key", RECURRENT)
def test_checks_use_independent_methods(key, problems):
    # Gradient claims are checked by several routes, not one.
    methods = {c.method for c in problems[key].checks}
    assert {"complex step", "central difference", "mpmath 50 digits"} <= methods
