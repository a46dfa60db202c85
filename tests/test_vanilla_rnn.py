"""The vanilla RNN problem: its results against independent routes, its checks, its key."""

from __future__ import annotations

from pathlib import Path

import autograd.numpy as anp
import numpy as np
import pytest
import sympy as sp
from autograd import grad
from conftest import key_pdf_text, key_tex

from derive.engine.jacobian import Diag
from derive.errors import InputError
from derive.instances.rnn_sequence import random_sequence
from derive.problems.vanilla_rnn import VanillaRNN
from derive.problems.vanilla_rnn.claims import gradient_claims, layer_claims
from derive.problems.vanilla_rnn.notation import OrderedProduct, Partial, d, j, k, n
from derive.problems.vanilla_rnn.values import Values, evaluate
from derive.render.document import render
from derive.render.latex import Notation, tex
from derive.sets import ProblemSet
from derive.verify import Check

#: The problem the ``problem`` fixture (tests/conftest.py) gives, derived once per session.
PROBLEM = "vanilla_rnn"


def autograd_gradient(seq) -> np.ndarray:
    """dL/dW by the autograd package, from a forward pass written independently here."""

    def loss(w):
        h, total = seq.h0, 0.0
        for x, a in zip(seq.xs, seq.a, strict=True):
            h = 1 / (1 + anp.exp(-(anp.dot(w, h) + anp.dot(seq.U, x))))
            total = total + anp.sum(a * h)
        return total

    return grad(loss)(seq.W)


def terms(expr) -> tuple:
    return expr.args if isinstance(expr, sp.MatAdd) else (expr,)


def passes(claim) -> bool:
    """A claim's worst error, measured now, within its tolerance (as its evidence row)."""
    return Check(claim.key, claim.route, claim.sizes, claim.measure(), claim.tolerance).passed


# -- results against independent routes --------------------------------------------------------
def test_layer_jacobian_matches_the_hand_written_formula(problem, rng):
    jac = problem.results["jacobian_y_x"].expr
    assert jac.shape == (n, d)
    for size_n, size_d in [(1, 1), (4, 3), (2, 7), (9, 9)]:
        w = rng.normal(size=(size_n, size_d))
        x = rng.normal(size=(size_d, 1))
        y = 1 / (1 + np.exp(-w @ x))
        values = Values({"W": w, "x": x, "y": y}, {}, [], {}, {n: size_n, d: size_d})
        expected = np.diag((y * (1 - y)).ravel()) @ w
        np.testing.assert_allclose(evaluate(jac, values), expected, rtol=1e-14, atol=0)


def test_layer_jacobian_is_diag_times_w(problem):
    # The key prints exactly diag(y ⊙ (1 - y)) W: a diagonal matrix, then W.
    jac = problem.results["jacobian_y_x"].expr
    diag, w = jac.args
    assert isinstance(diag, Diag) and w == sp.MatrixSymbol("W", n, d)
    assert tex(jac) == r"\operatorname{diag}(y \odot (\mathbf{1} - y)) W"


@pytest.mark.parametrize(
    "size_n, size_d, steps, seed", [(1, 1, 1, 31), (3, 2, 4, 32), (5, 5, 7, 33), (10, 4, 10, 34)]
)
def test_gradient_matches_autograd(problem, size_n, size_d, steps, seed):
    seq = random_sequence(size_n, size_d, steps, seed)
    got = problem.gradient(problem.results["dL_dW"].expr, seq)
    np.testing.assert_allclose(got, autograd_gradient(seq), rtol=1e-11, atol=1e-13)


def test_expanded_sum_matches_autograd(problem):
    seq = random_sequence(4, 3, problem.T, 35)
    got = problem.gradient(problem.results["dL_dW_T3"].expr, seq)
    np.testing.assert_allclose(got, autograd_gradient(seq), rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("steps", [1, 2, 3, 4, 5])
def test_expansion_has_one_term_per_pair_k_le_t(steps):
    p = VanillaRNN(T=steps)
    r = p.results[f"dL_dW_T{steps}"]
    assert len(terms(r.expr)) == len(terms(r.chain)) == steps * (steps + 1) // 2
    assert p.results["n_terms"].value == steps * (steps + 1) // 2


def test_expansion_is_the_chain_form_with_the_per_step_jacobians(problem):
    # Substituting diag(σ'(j)) W for every ∂h(j)/∂h(j-1) and the immediate partial turns the
    # chain form, term by term, into the explicit form.
    steps = problem.rnn_rules
    r = problem.results["dL_dW_T3"]

    def explicit(e):
        if e.immediate:
            return steps["immediate"].xreplace({k: e.num.step})
        return steps["per_step"].xreplace({j: e.num.step})

    def is_jacobian(e):
        return isinstance(e, Partial) and e.num.name == "h"

    def flat(e):
        return sp.MatMul(
            *[f for a in e.args for f in (a.args if isinstance(a, sp.MatMul) else [a])]
        )

    substituted = [flat(c.replace(is_jacobian, explicit)) for c in terms(r.chain)]
    assert substituted == list(terms(r.expr))


def test_longest_term_has_t_minus_k_factors_diag_w(problem):
    # The t = 3, k = 1 term: ∂ℓ(3)/∂h(3) diag(σ'(3)) W diag(σ'(2)) W (diag(σ'(1)) ⊗ h(0)ᵀ).
    term = terms(problem.results["dL_dW_T3"].expr)[3]
    names = [type(a).__name__ for a in term.args]
    assert names == ["Partial", "Diag", "MatrixSymbol", "Diag", "MatrixSymbol", "KroneckerProduct"]


def test_ordered_product_puts_the_latest_step_left(problem):
    per_step = problem.rnn_rules["per_step"]  # diag(σ'(j)) W
    steps = [f.args[0].args[0].step for f in OrderedProduct(per_step, j, 2, 4).factors()]
    assert steps == [4, 3, 2]
    assert OrderedProduct(per_step, j, 3, 2).factors() == []  # k = t: the identity


# -- the checks catch wrong formulas -----------------------------------------------------------
def test_every_check_passes_and_covers_every_result(problem):
    failed = [(c.claim, c.method, c.max_rel_error) for c in problem.checks if not c.passed]
    assert not failed
    assert set(problem.results) <= {c.claim for c in problem.checks}


def test_transposed_w_in_the_jacobian_product_is_caught(problem):
    w = sp.MatrixSymbol("W", n, n)
    wrong = problem.results["dL_dW"].expr.xreplace({w: w.T})
    claims = gradient_claims(problem, "dL_dW", wrong)
    assert claims and not any(passes(c) for c in claims)
    wrong_t3 = problem.results["dL_dW_T3"].expr.xreplace({w: w.T})
    assert not any(passes(c) for c in gradient_claims(problem, "dL_dW_T3", wrong_t3))


def test_jacobian_product_in_the_wrong_order_is_caught(problem):
    # The earliest step on the left: F(k+1) ... F(t) instead of F(t) ... F(k+1).
    e = problem.results["dL_dW"].expr
    prod = next(iter(e.atoms(OrderedProduct)))
    lo, hi = prod.args[2:]
    reversed_order = prod.factor.xreplace({j: lo + hi - j})
    wrong = e.xreplace({prod: OrderedProduct(reversed_order, j, lo, hi)})
    assert not any(passes(c) for c in gradient_claims(problem, "dL_dW", wrong))


def test_jacobian_without_sigma_prime_is_caught(problem):
    jac = problem.results["jacobian_y_x"].expr
    wrong = jac.args[1]  # W alone: the factor diag(σ') forgotten
    assert not any(passes(c) for c in layer_claims(wrong))


# -- inputs ------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [0, 9, -1, 2.5, "3", True, None])
def test_bad_step_count_is_rejected_with_the_allowed_range(bad):
    with pytest.raises(InputError, match=r"T: expected a whole number of steps from 1 to 8"):
        VanillaRNN(T=bad)


def test_other_step_count_is_derived_and_checked():
    p = VanillaRNN(T=4)
    assert "dL_dW_T4" in p.results and "dL_dW_T3" not in p.results
    assert all(c.passed for c in p.checks)


# -- rendering ---------------------------------------------------------------------------------
@pytest.mark.parametrize("time", ["superscript", "subscript"])
def test_template_renders(problem, time):
    out = key_tex(problem, Notation(time=time))
    assert problem.title.split()[0] in out
    assert "\\begin{longtable}" in out
    # The original's formula is discussed only where a set quotes it.
    assert r"\partial h_k / \partial h_k" not in out and "original" not in out
    pset = ProblemSet("k", "K", "C", "s", ("vanilla_rnn",), Notation(time=time),
                      original={"vanilla_rnn": {"gradient": "dL/dW = ..."}})
    noted = render(pset, [problem])
    assert r"\partial h_k / \partial h_k" in noted and "dL/dW = ..." in noted
    # The six written-out terms, twice (Jacobians, then carried out), each led by dl_t/dh_t.
    assert out.count(r"\frac{\partial \ell") >= 2 * 6
    step = "h_{k - 1}" if time == "subscript" else "h^{(k - 1)}"
    assert step in out


def test_pdf_compiles_with_passing_evidence(problem, tmp_path: Path):
    text = key_pdf_text(problem, tmp_path)
    assert "pass" in text and "FAIL" not in text
    assert "Written out for T = 3" in text
