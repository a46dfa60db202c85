"""eigen_power: the decomposition, W^n, and the check of a stated decomposition."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp

from derive.errors import InputError
from derive.problems.eigen_power import HANDOUT_W, EigenPower, symmetric_candidates


def test_handout_decomposition_is_flagged_wrong():
    p = EigenPower()
    # By hand: Q L Q^-1 with the handout's Q = [[.8,-.6],[.6,.8]], L = diag(.4,.9) gives
    # off-diagonal entries -0.24, not W's +0.24.
    assert p.results["given_decomposition_ok"].value is False
    assert p.results["given_product"].expr[0, 1] == sp.Rational(-24, 100)
    assert p.results["given_q_transposed_ok"].value is True
    assert all(c.passed for c in p.checks)


def test_a_consistent_stated_decomposition_is_accepted():
    p = EigenPower.from_params(
        {"given_Q": [["0.8", "0.6"], ["-0.6", "0.8"]], "given_Lambda": ["0.4", "0.9"]}
    )
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


def test_a_set_file_matrix_with_irrational_eigenvalues():
    """Fibonacci: [[1,1],[1,0]]^20 = [[F21, F20], [F20, F19]] (F19..F21 = 4181, 6765, 10946)."""
    p = EigenPower.from_params({"W": [[1, 1], [1, 0]], "n": 20})
    assert p.results["W_power"].expr == sp.Matrix([[10946, 6765], [6765, 4181]])
    assert set(p.results["Lambda"].expr.diagonal()) == {(1 - sp.sqrt(5)) / 2, (1 + sp.sqrt(5)) / 2}
    assert "given_decomposition_ok" not in p.results  # nothing was stated for this W
    assert all(c.passed for c in p.checks)


def test_decimals_from_toml_are_exact():
    p = EigenPower.from_params({"W": [[Decimal("0.5"), "1/10"], ["1/10", Decimal("0.5")]]})
    half, tenth = sp.Rational(1, 2), sp.Rational(1, 10)
    assert p.w == sp.Matrix([[half, tenth], [tenth, half]])
    # By hand: eigenvalues 1/2 -+ 1/10.
    assert p.results["Lambda"].expr.diagonal().tolist() == [[sp.Rational(2, 5), sp.Rational(3, 5)]]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"W": [[0, 1], [-1, 0]]}, "params.eigen_power.W: .* complex eigenvalues"),
        ({"W": [[1, 1], [0, 1]]}, "params.eigen_power.W: .* not diagonalizable"),
        ({"W": [[1, 2], [3]]}, "params.eigen_power.W: ragged matrix"),
        ({"W": [[1, 2, 3], [4, 5, 6]]}, "params.eigen_power.W: expected a 2x2 matrix"),
        ({"W": [["1", "x"], ["0", "1"]]}, r"params.eigen_power.W\[0\]\[1\]: expected an exact"),
        ({"W": [[Decimal("inf"), 0], [0, 1]]}, "W\\[0\\]\\[0\\]: expected a finite number"),
        ({"n": 0}, "params.eigen_power.n: expected an integer from 1 to 200"),
        ({"n": 2.5}, "params.eigen_power.n: expected an integer"),
        ({"n": True}, "params.eigen_power.n: expected an integer"),
        ({"given_Q": [[1, 0], [0, 1]]}, "give both given_Q and given_Lambda"),
        ({"m": 3}, "params.eigen_power.m: unknown parameter; allowed are W, n, given_Q"),
    ],
)
def test_bad_parameters_are_refused(given, message):
    with pytest.raises(InputError, match=message):
        EigenPower.from_params(given, "my.toml")


def test_generated_matrices_have_the_chosen_eigenvalues():
    spec = {"eigenvalues": [{"min": "0.1", "max": "0.3", "step": "0.1"},
                            {"min": "1.1", "max": "1.2", "step": "0.1"}]}
    cands = symmetric_candidates(spec, "vary.eigen_power.W")
    assert len(cands) == 6
    for raw in cands:
        w = EigenPower.from_params({"W": raw}).w
        assert w == w.T
        a, b = sorted(w.eigenvals(multiple=True))
        assert sp.Rational(1, 10) <= a <= sp.Rational(3, 10)
        assert b in (sp.Rational(11, 10), sp.Rational(6, 5))
