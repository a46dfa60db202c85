"""The verification routes against derivatives and counts known by hand, and the rule
that a claim names a result."""

from __future__ import annotations

import math
from typing import ClassVar

import mpmath
import numpy as np
import pytest
import sympy as sp

from derive.verify import Claim, ClaimError, routes, verify


def test_complex_step_is_exact_to_rounding() -> None:
    # d/dx exp(x) sin(x) = exp(x)(sin x + cos x), by hand.
    x = 0.7
    got = routes.complex_step(lambda d: np.exp(x + d) * np.sin(x + d))
    assert abs(got - math.exp(x) * (math.sin(x) + math.cos(x))) < 1e-15


def test_central_difference_has_its_truncation_error() -> None:
    x = 0.7
    got = routes.central_difference(lambda d: np.sin(x + d))
    err = abs(got - math.cos(x))
    assert 0 < err < 1e-9  # O(h^2) = 1e-12 plus rounding O(eps / h) = 1e-10


def test_high_precision_difference_reaches_far_beyond_float64() -> None:
    with mpmath.workdps(routes.REFERENCE_DPS):
        x = mpmath.mpf("0.7")
        got = routes.high_precision_difference(lambda d: mpmath.sin(x + d))
        # Rounding 1e-60 / h = 1e-35 dominates truncation h^2 / 6 = 2e-51.
        err = abs(got - mpmath.cos(x))
        assert err < mpmath.mpf("1e-33")


def test_jacobian_by_each_route_of_a_map_known_by_hand() -> None:
    x = np.array([0.3, -1.2])
    def f(v):
        return np.array([v[0] * v[1], np.sin(v[0]) + v[1] ** 2])
    want = np.array([[x[1], x[0]], [math.cos(x[0]), 2 * x[1]]])
    assert np.allclose(routes.jacobian(f, x), want, rtol=1e-14, atol=0)
    assert np.allclose(routes.jacobian(f, x, routes.central_difference), want, rtol=1e-8)


def test_exact_routes_count_what_fails() -> None:
    assert routes.failures(range(10), lambda n: n % 3 != 0) == 4  # 0, 3, 6, 9
    n = sp.Symbol("n")
    assert routes.count_mismatch(n * (n - 1) / 2, {n: 5}, 10) == 0  # pairs of 5
    assert routes.count_mismatch(n**2, {n: 5}, 10) == 15
    with pytest.raises(ValueError, match="not an integer"):
        routes.count_mismatch(n / 2, {n: 5}, 2)
    assert routes.nonzero_entries(sp.Matrix([sp.sin(n) ** 2 + sp.cos(n) ** 2 - 1, n])) == 1


def test_sampling_reports_mean_and_standard_error() -> None:
    rng = np.random.default_rng(1)
    mean, se = routes.sampled(lambda r, k: r.uniform(0, 1, k), 40000, rng)
    assert abs(mean - 0.5) < routes.SAMPLING_SIGMAS * se
    assert abs(se - math.sqrt(1 / 12 / 40000)) < 1e-4


class _Toy:
    key = "toy"
    results: ClassVar[dict[str, int]] = {"a": 1}

    def __init__(self, key: str) -> None:
        self._key = key

    def claims(self):
        yield Claim(self._key, "by hand", "one case", 0.0, lambda: 0.0)


def test_verify_turns_claims_into_evidence_and_refuses_unknown_keys() -> None:
    (check,) = verify(_Toy("a"))
    assert (check.claim, check.method, check.passed) == ("a", "by hand", True)
    with pytest.raises(ClaimError, match="'b', which is not one of its results"):
        verify(_Toy("b"))


def test_sizes_text_is_built_from_the_ranges_a_check_runs_over() -> None:
    from derive.verify.evidence import describe_sizes, span

    assert span(range(1, 7)) == "1..6" and span((1, 3, 5)) == "1, 3, 5" and span(4) == "4"
    assert span((2, 3)) == "2, 3"  # two values are listed, not a range
    assert describe_sizes(HW=range(1, 7), d=(1, 3)) == "H, W = 1..6, d = 1, 3"
