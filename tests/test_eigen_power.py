"""eigen_power: the decomposition, W^n, and the check of a stated decomposition."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import sympy as sp

from derive.problems.eigen_power import HANDOUT_W, EigenPower


def test_handout_decomposition_is_flagged_wrong():
    p = EigenPower()
    # By hand: Q L Q^-1 with the handout's Q = [[.8,-.6],[.6,.8]], L = diag(.4,.9) gives
    # off-diagonal entries -0.24, not W's +0.24.
    assert p.results["given_decomposition_ok"].value is False
    assert p.results["given_product"].expr[0, 1] == sp.Rational(-24, 100)
    assert p.results["given_q_transposed_ok"].value is True
    assert all(c.passed for c in p.checks)


def test_a_consistent_stated_decomposition_is_accepted():
    p = EigenPower(given_q=[["0.8", "0.6"], ["-0.6", "0.8"]], given_lambda=["0.4", "0.9"])
    assert p.results["given_decomposition_ok"].value is True
    assert all(c.passed for c in p.checks)


def test_power_matches_exact_repeated_multiplication():
    p = EigenPower(n=30)
    w = [[Fraction(v) for v in row] for row in HANDOUT_W]
    m = [[Fraction(int(i == j)) for j in range(2)] for i in range(2)]
    for _ in range(30):
        m = [[sum(m[i][k] * w[k][j] for k in range(2)) for j in range(2)] for i in range(2)]
    got = p.results["W_power"].expr
    assert all(Fraction(str(got[i, j])) == m[i][j] for i in range(2) for j in range(2))


def test_eigenvalues_match_numpy():
    p = EigenPower()
    lam = np.diag(np.array(p.results["Lambda"].expr.tolist(), dtype=float))
    want = np.linalg.eigvalsh(np.array([[0.58, 0.24], [0.24, 0.72]]))
    np.testing.assert_allclose(lam, want, rtol=1e-14)
