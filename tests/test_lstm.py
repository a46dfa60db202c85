"""The LSTM problem's optional part: the claim about the limit's idempotence reads the
value the key states, so a wrong True or False fails (mutation tests)."""

from __future__ import annotations

import copy
import dataclasses

import pytest

from derive.problems.lstm import idempotence_claim

KEY = "backward_map_limit_idempotent"


def _passes(problem) -> bool:
    """Whether the limit's claim about ``KEY`` holds (the limit's claims alone are run)."""
    (claim,) = [c for c in problem.limit_claims() if c.key == KEY]
    return claim.measure() <= claim.tolerance


def _with_value(lstm, value):
    """A copy of ``lstm`` whose stated idempotence is ``value`` (every other result as
    derived; the session's instance is left as it is)."""
    p = copy.copy(lstm)
    p.__dict__["results"] = {**lstm.results, KEY: dataclasses.replace(lstm.results[KEY],
                                                                      value=value)}
    return p


def test_the_derived_value_is_true_and_passes(problems):
    assert problems["lstm"].results[KEY].value is True
    assert _passes(problems["lstm"])


@pytest.mark.parametrize("value", [False, None, 1])
def test_a_flipped_or_other_value_fails(problems, value):
    assert not _passes(_with_value(problems["lstm"], value))
    assert problems["lstm"].results[KEY].value is True  # the shared instance is untouched


@pytest.mark.parametrize(
    ("stated", "departure", "passes"),
    [(True, 1e-10, True), (True, 0.5, False), (False, 0.5, True), (False, 1e-10, False)],
)
def test_the_claim_compares_the_statement_with_the_measured_fact(stated, departure, passes):
    claim = idempotence_claim(stated, departure, "probes", "T=2")
    assert (claim.measure() <= claim.tolerance) is passes
