"""Every registered problem: its claims pass their checks, and no claim goes unchecked."""

from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np
import pytest
import sympy as sp

from derive.problems import REGISTRY
from derive.problems.base import Result
from derive.problems.recurrent import RecurrentProblem
from derive.verify import Check


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


# -- every number the key prints is a result's ---------------------------------------------------
def _numbers(value, out: list) -> list:
    """Every number and truth value in ``value``, walking dicts, lists, tuples, sets and
    matrices (a result or evidence row counts as a whole: it is a result's)."""
    if isinstance(value, Result | Check | str) or value is None:
        return out
    if isinstance(value, bool | np.bool_ | sp.logic.boolalg.BooleanAtom):
        out.append(bool(value))
    elif isinstance(value, int | float | Fraction | np.number | mpmath.mpf):
        out.append(value)
    elif isinstance(value, sp.MatrixBase | sp.Tuple):
        for v in value:
            _numbers(v, out)
    elif isinstance(value, sp.Basic):
        if value.is_number:
            out.append(value)
    elif isinstance(value, dict):
        for v in value.values():
            _numbers(v, out)
    elif isinstance(value, list | tuple | set | frozenset):
        for v in value:
            _numbers(v, out)
    return out


def _same(value) -> tuple:
    # A number is the same as a result's when it is equal as a complex float (7, 7.0, the
    # SymPy 7 and the Fraction 7/1 are one number); a truth value only equals a truth value.
    # An unevaluated power ((2/5)**30) is not a number the results hold: it is a second,
    # uncomputed form of one, so it does not match.
    if isinstance(value, bool):
        return ("truth", value)
    if isinstance(value, sp.Basic) and not (value.is_Atom or value.is_Number):
        return ("expression", sp.srepr(value))
    return ("number", complex(value))


def unbacked_numbers(problem) -> list:
    """Numbers and truth values in ``problem.context()`` that are neither an element of a
    result (its expression or its value), nor a claim's measured error (evidence the prose
    may quote), nor a parameter, nor a number the question or ``stated()`` gives."""
    known = [c.max_rel_error for c in problem.checks]
    for r in problem.results.values():
        _numbers([r.expr, r.lhs, r.value], known)
    _numbers([type(problem).parse_params({}), problem.question_data(), problem.stated()], known)
    backed = {_same(v) for v in known}
    context = {k: v for k, v in problem.context().items() if k not in ("results", "checks")}
    return [v for v in _numbers(context, []) if _same(v) not in backed]


#: Problems whose context() still computes numbers the key prints (strict: the mark fails
#: as soon as the problem is fixed, so it cannot outlive the leftover).
UNBACKED = {
    "lstm_cell": "the saturated run's errors and gate gap, the row-sum and printed errors "
    "and the sign figure's positivity are computed outside derive()",
}


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(k, marks=pytest.mark.xfail(reason=UNBACKED[k], strict=True))
        if k in UNBACKED
        else k
        for k in REGISTRY
    ],
)
def test_context_prints_only_results(key, problems):
    # The problems of the fixture are built with default parameters (parse_params({})).
    assert not unbacked_numbers(problems[key])


def test_unbacked_numbers_are_found(problems):
    # A number computed in context() (here one more decimal) is caught.
    p = problems["momentum"]

    class Computed(type(p)):
        def context(self):
            return {**super().context(), "extra": [{"x": (0.123456789,)}]}

    assert unbacked_numbers(Computed()) == [0.123456789]
