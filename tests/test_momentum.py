"""momentum: the inverse, the factored Jacobian, det = beta^D, and the rendered key."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sympy as sp
from conftest import key_tex

from derive.export import split_value
from derive.problems.momentum import (
    BETA,
    D,
    H,
    Momentum,
    alpha,
    beta,
    block_det,
    forward,
    second_factor,
)
from derive.verify.routes import central_difference, jacobian

#: The problem the ``problem`` fixture (tests/conftest.py) gives, derived once per session.
PROBLEM = "momentum"


@pytest.mark.parametrize("n", [1, 4, 30])
def test_inverse_undoes_the_forward_map(problem, rng, n):
    inv = problem.inverse_map()
    s = rng.standard_normal(2 * n)
    np.testing.assert_allclose(inv(forward(s)), s, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(forward(inv(s)), s, rtol=1e-13, atol=1e-14)


def test_inverse_solves_theta_first(problem):
    r = problem.results
    theta_next, p_next = sp.symbols("theta^(k+1) p^(k+1)")
    assert sp.simplify(r["inverse_theta"].expr - (theta_next - p_next)) == 0
    # p needs the gradient at the recovered theta, i.e. at theta' - p'.
    assert "GradJ(-p^(k+1) + theta^(k+1))" in str(r["inverse_p"].expr)


@pytest.mark.parametrize("n", [1, 3, 10, 40])
def test_det_is_beta_to_the_d_numerically(rng, n):
    s = rng.standard_normal(2 * n)
    sign, logdet = np.linalg.slogdet(jacobian(forward, s, route=central_difference))
    assert sign == 1
    assert logdet == pytest.approx(n * np.log(BETA), rel=1e-7)


def test_symbolic_det_is_beta_to_the_d(problem):
    assert sp.simplify(problem.results["det_jacobian"].expr - beta**D) == 0
    assert problem.results["factor_dets"].expr == sp.Tuple(1, beta**D)


def test_block_det_refuses_a_non_triangular_matrix():
    eye = sp.Identity(D)
    full = sp.BlockMatrix([[eye, eye], [-alpha * H, beta * eye]])
    with pytest.raises(ValueError, match="not block-triangular"):
        block_det(full)


def test_every_check_passes(problem):
    assert all(c.passed for c in problem.checks)
    assert set(problem.results) <= {c.claim for c in problem.checks}


class WrongFirstFactor(Momentum):
    """beta I replaced by I in F1: the student's slip a check must catch."""

    @property
    def factors(self):
        eye = sp.Identity(D)
        wrong = sp.BlockMatrix([[eye, sp.ZeroMatrix(D, D)], [-alpha * H, eye]])
        return second_factor(), wrong


def test_a_wrong_factor_is_caught():
    p = WrongFirstFactor()
    assert p.results["det_jacobian"].expr == 1
    failed = {c.claim for c in p.checks if not c.passed}
    assert {"jacobian_factors", "det_jacobian"} <= failed


def test_reversal_error_grows_with_steps(problem):
    errors = [e for _, e in problem.results["reversal_error"].value]
    assert errors[-1] > 1e4 * errors[0]
    assert problem.results["volume_factor"].value["grow"] == pytest.approx(BETA**-1000)


def test_template_renders(problem):
    out = key_tex(problem)
    assert "Reversibility" in out
    assert "\\beta^{D}" in out
    assert "sample solution is wrong" in out
    assert "\\begin{longtable}" in out
    assert "FAIL" not in out


def test_set_file_numbers_drive_the_experiments():
    m = Momentum.from_params({"beta": "1/2", "volume_D": 10, "alpha": "0.25"})
    # beta^-D = 2^10 exactly.
    assert m.results["volume_factor"].value["grow"] == 1024.0
    assert m.results["det_jacobian"].expr == beta**D  # the derivation stays symbolic
    assert all(c.passed for c in m.checks)
    # Halving per step, 300 reversed steps lose everything in float64: reported, JSON-safe.
    assert m.results["reversal_error"].value[-1] == [300, None]
    json.dumps([split_value(r.value) for r in m.results.values()], allow_nan=False)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"beta": 1}, r"params\.momentum\.beta: expected an exact number with 1/2 <= x <= 99/100"),
        ({"alpha": "-0.1"}, r"momentum\.alpha: expected an exact number with 0 <= x <= 1/2"),
        ({"volume_D": 0}, r"params\.momentum\.volume_D: expected an integer from 1 to 5000"),
    ],
)
def test_bad_parameters_are_refused(given, message):
    from derive.errors import InputError

    with pytest.raises(InputError, match=message):
        Momentum.from_params(given)


def test_a_reversal_that_overflows_renders_as_infinite_error():
    """At beta = 0.6 the 300-step float64 reversal overflows (JSON null); the key still
    renders, printing that run's error as infinite and saying what that means."""
    problem = Momentum(beta=sp.Rational(3, 5))
    assert problem.results["reversal_error"].value[-1] == [300, None]
    tex = key_tex(problem)
    assert r"300 & $\infty$ \\" in tex
    assert "the float64 run overflowed" in tex
    assert problem.checks and all(c.passed for c in problem.checks)


def test_a_wrong_collapsed_product_is_caught(problem):
    """The product the key prints after F2 F1 is checked on its own: a slip in one block
    (beta I for I - alpha H) is counted, while the factors themselves still agree."""
    from derive.problems.momentum import claims as mc

    right = problem.results["jacobian"].expr
    (_, b), (c, d) = right.blocks.tolist()
    wrong = sp.BlockMatrix([[b, b], [c, d]])
    r = problem.results
    args = (problem.factors, wrong, r["factor_dets"].expr.args, r["det_jacobian"].expr)
    counts = mc.explicit_counts(*args)
    assert counts.collapsed > 0
    assert counts.product == counts.factor_dets == counts.det == 0
