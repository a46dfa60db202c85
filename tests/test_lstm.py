"""The LSTM problem's optional part: the claim about the limit's idempotence reads the
value the key states, so a wrong True or False fails (mutation tests)."""

from __future__ import annotations

import dataclasses

import pytest

from derive.problems.lstm import LSTM, idempotence_claim
from derive.verify import verify

KEY = "backward_map_limit_idempotent"


def _row(problem):
    (row,) = [c for c in verify(problem) if c.claim == KEY]
    return row


def _with_value(value) -> LSTM:
    """A fresh LSTM whose stated idempotence is ``value`` (every other result as derived)."""
    p = LSTM()
    p.results[KEY] = dataclasses.replace(p.results[KEY], value=value)
    return p


def test_the_derived_value_is_true_and_passes():
    p = LSTM()
    assert p.results[KEY].value is True
    assert _row(p).passed


@pytest.mark.parametrize("value", [False, None, 1])
def test_a_flipped_or_other_value_fails(value):
    assert not _row(_with_value(value)).passed


@pytest.mark.parametrize(
    ("stated", "departure", "passes"),
    [(True, 1e-10, True), (True, 0.5, False), (False, 0.5, True), (False, 1e-10, False)],
)
def test_the_claim_compares_the_statement_with_the_measured_fact(stated, departure, passes):
    claim = idempotence_claim(stated, departure, "probes", "T=2")
    assert (claim.measure() <= claim.tolerance) is passes
