"""resnet_bn: the reverse pass, the skip terms, the decision, inputs and the rendered key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from conftest import key_pdf_text, key_tex

from derive.errors import InputError
from derive.instances import bnstack
from derive.instances.bnstack import (
    block_forward,
    bn_fwd,
    bn_vjp,
    central_difference,
    complex_step,
    make_instance,
    measure,
)
from derive.problems import resnet_bn
from derive.problems.resnet_bn import (
    ORDERINGS,
    ResnetBN,
    easier_ordering,
    op_jacobian,
    skip_mismatches,
    skip_stack,
    skip_term,
)

#: The problem the ``problem`` fixture (tests/conftest.py) gives, derived once per session.
PROBLEM = "resnet_bn"


# -- the reverse pass against the forward pass --------------------------------------------------
@pytest.mark.parametrize("k", list(ORDERINGS))
@pytest.mark.parametrize("width, batch, depth", [(5, 7, 4), (12, 10, 2)])
def test_reverse_pass_matches_finite_differences(rng, k, width, batch, depth):
    ops = ORDERINGS[k]
    inst = make_instance(width, batch, depth, seed=7)
    _, (grad,) = measure(ops, inst, [depth])
    for _ in range(3):
        v = rng.standard_normal(inst.x.shape)
        claimed = float(np.sum(grad * v))
        # Complex step: no subtraction, so agreement to rounding.
        assert claimed == pytest.approx(complex_step(ops, inst, depth, v), rel=1e-12)
        # Central difference (h = 1e-6): truncation and cancellation leave about 1e-8.
        assert claimed == pytest.approx(central_difference(ops, inst, depth, v), rel=1e-6)


def test_bn_backward_against_its_full_jacobian(rng):
    # The Jacobian of BN on one 6 x 3 batch, column by column with complex steps.
    h = rng.standard_normal((6, 3))
    out, cache = bn_fwd(h)
    jac = np.empty((out.size, h.size))
    for i in range(h.size):
        e = np.zeros(h.size)
        e[i] = 1e-20
        jac[:, i] = bn_fwd(h + 1j * e.reshape(h.shape))[0].imag.ravel() / 1e-20
    g = rng.standard_normal(out.shape)
    np.testing.assert_allclose(bn_vjp(g, cache).ravel(), jac.T @ g.ravel(), rtol=1e-12, atol=1e-12)


def test_bn_normalises_each_feature_over_the_batch(rng):
    out, _ = bn_fwd(3.0 + 5.0 * rng.standard_normal((50, 4)))
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-12)
    # Variance 1 up to the eps = 1e-5 floor against a variance of about 25.
    np.testing.assert_allclose(out.var(axis=0), 1.0, rtol=1e-5)


# -- structure -----------------------------------------------------------------------------------
def test_skip_term_of_the_first_ordering_is_the_identity():
    assert skip_term(ORDERINGS[1]) == sp.Identity(resnet_bn.N)
    assert skip_stack(ORDERINGS[1], 5) == sp.Identity(resnet_bn.N)


def test_skip_term_of_the_second_ordering_is_relu_after_bn():
    d, j = op_jacobian("relu"), op_jacobian("bn")
    assert skip_term(ORDERINGS[2]) == d * j
    stack = skip_stack(ORDERINGS[2], 2)
    assert stack == op_jacobian("relu", 2) * op_jacobian("bn", 2) * op_jacobian(
        "relu", 1
    ) * op_jacobian("bn", 1)


def test_symbolic_check_rejects_the_other_orderings_skip_term():
    # Each ordering's own term passes; the other ordering's term is wrong in every entry.
    for k, ops in ORDERINGS.items():
        assert skip_mismatches(ops, 2, 1, skip_term(ops)) == 0
        assert skip_mismatches(ops, 2, 1, skip_term(ORDERINGS[3 - k])) == 4
    wrong_order = op_jacobian("bn") * op_jacobian("relu")  # J D instead of D J
    assert skip_mismatches(ORDERINGS[2], 2, 1, wrong_order) > 0


def test_skip_edge_of_the_first_ordering_passes_a_direction_unchanged(rng):
    # y = x + F(x): perturbing only the skip input by v moves the loss <R, y> by exactly <R, v>.
    inst = make_instance(6, 8, 1, seed=3)
    v = rng.standard_normal(inst.x.shape)
    x, w = inst.x, inst.weights[0]
    out, _ = block_forward(ORDERINGS[1], x, w, skip=x + 1j * 1e-20 * v)
    assert np.sum(inst.r * out).imag / 1e-20 == pytest.approx(np.sum(inst.r * v), rel=1e-14)


# -- the decision -------------------------------------------------------------------------------
def test_decision_follows_synthetic_norms():
    flat = [1.0, 1.5, 2.0, 3.0]  # log10 range 0.48
    steep = [1.0, 10.0, 1e3, 1e6]  # log10 range 6
    vanishing = [1.0, 0.1, 1e-3, 1e-7]  # log10 range 7
    assert easier_ordering({1: flat, 2: steep}) == 1
    assert easier_ordering({1: steep, 2: flat}) == 2
    assert easier_ordering({1: vanishing, 2: flat}) == 2
    assert easier_ordering({1: steep, 2: vanishing}) == 1


def test_swapping_the_measurements_flips_the_decision(problem):
    gains = problem.gains
    assert easier_ordering(gains) == problem.results["easier"].value == 1
    assert easier_ordering({1: gains[2], 2: gains[1]}) == 2


def test_results_describe_the_measurement(problem):
    r = problem.results
    g = r["grad_norms"].value
    assert g["depths"] == [1, 2, 4, 8, 16, 32, 64]
    assert r["grad_norm_ratio"].value == pytest.approx(g["ordering_2"][-1] / g["ordering_1"][-1])
    # Ordering 2 explodes (more than 1e4 over the depths); ordering 1 stays within 1e2.
    assert r["log_gain_range"].value["ordering_2"] > 4
    assert r["log_gain_range"].value["ordering_1"] < 2
    assert r["growth"].value["ordering_2"]["per_block"] > 1.1


def test_same_seed_same_results_other_seed_same_answer(problem):
    again = ResnetBN()
    assert again.results["grad_norms"].value == problem.results["grad_norms"].value
    assert again.results["grad_norm_ratio"].value == problem.results["grad_norm_ratio"].value
    other = ResnetBN(seed=12345, depths=[1, 8, 32])
    assert other.results["grad_norms"].value != problem.results["grad_norms"].value
    assert other.results["easier"].value == problem.results["easier"].value


def test_every_check_passes_and_covers_every_result(problem):
    assert [c for c in problem.checks if not c.passed] == []
    assert set(problem.results) <= {c.claim for c in problem.checks}


def test_a_wrong_bn_backward_is_caught(monkeypatch):
    # Forget that the batch mean depends on each sample: the reverse pass goes wrong.
    def xhat_only(g, cache):
        xhat, std = cache
        return (g - xhat * (g * xhat).mean(axis=-2, keepdims=True)) / std

    monkeypatch.setitem(bnstack.VJP, "bn", xhat_only)
    p = ResnetBN(width=8, batch=32, depths=[1, 4])
    failed = {c.claim for c in p.checks if not c.passed}
    assert "grad_norms" in failed
    assert "skip_term" in failed  # ordering 2's skip term runs through BN's rule


# -- the documented ranges, at their edges ---------------------------------------------------------
# width 8 to 128, batch 32 to 256, 2 to 10 depths from 1 to 64, seed 0 to 2^32 - 1: every check
# must pass at the corners (the float64 gains are the network's there, see ROUNDING_SENSITIVITY).
CORNERS = {
    "all minimal": {"width": 8, "batch": 32, "depths": [1, 2], "seed": 0},
    "narrow, small batch, deep": {"width": 8, "batch": 32, "depths": [1, 64], "seed": 2**32 - 1},
    "wide, small batch, deep": {"width": 128, "batch": 32, "depths": [1, 64]},
    "narrow, large batch, deep": {"width": 8, "batch": 256, "depths": [63, 64]},
    # Every parameter at its maximum: about 10 s.
    "all maximal": {
        "width": 128,
        "batch": 256,
        "depths": [1, 2, 4, 8, 16, 32, 48, 56, 60, 64],
        "seed": 2**32 - 1,
    },
}


@pytest.mark.parametrize("name", list(CORNERS))
def test_every_check_passes_at_the_corners_of_the_ranges(name):
    p = ResnetBN(**CORNERS[name])
    assert [(c.method, c.max_rel_error) for c in p.checks if not c.passed] == []
    assert p.results["easier"].value == 1


def test_an_exploding_stack_is_verified_on_its_own_trajectory():
    """Depth 128 (allowed before): stack (2)'s gain is 3e13 and rounding decides it.

    The reverse pass is still the derivative of the float64 forward pass: complex steps on
    its own trajectory agree to 1e-12 (below 2.5e-13 measured).  But a complex-arithmetic pass,
    whose real parts round differently in the last bit, ends 30% away: the plain complex-step
    check failed there (0.32 against a tolerance of 0.30 that had grown with the gain), and the
    range now stops at 64."""
    inst = make_instance(64, 64, 128, resnet_bn.SEED)
    ops = ORDERINGS[2]
    gains, (grad,) = measure(ops, inst, [128])
    assert gains[0] > 1e13
    unit = grad / np.linalg.norm(grad)
    ref = np.linalg.norm(inst.r)
    own = bnstack.pinned_complex_step(ops, inst, 128, unit) / ref
    assert own == pytest.approx(gains[0], rel=1e-12)
    plain = complex_step(ops, inst, 128, unit) / ref
    assert abs(plain - gains[0]) / gains[0] > 1e-2  # rounding's, not the network's
    with pytest.raises(InputError, match=r"depths\[1\]: expected an integer from 1 to 64"):
        ResnetBN(depths=[1, 128])


def test_the_former_maxima_together_are_refused():
    """Width 128, batch 256 and depth 128 together failed four checks (gain 3e11 at depth
    128: the plain complex step differed by 1.3e-2 and 8.9e-2); each bound now names its field."""
    with pytest.raises(InputError, match=r"depths\[7\]: expected an integer from 1 to 64, got 96"):
        ResnetBN(width=128, batch=256, depths=[1, 2, 4, 8, 16, 32, 64, 96, 112, 128])


def test_default_sizes_pass_for_a_seed_that_broke_the_random_direction_check():
    """Seed 20263122 at the default sizes: <grad, v> for a random v cancels by a factor of
    1200, and the plain complex step's trajectory drifts; its error 5.2e-7 exceeded the
    tolerance 4.9e-8 that grew with the gain.  On the pass's own trajectory it is 1.4e-13."""
    p = ResnetBN(seed=20263122)
    assert [(c.method, c.max_rel_error) for c in p.checks if not c.passed] == []


# -- inputs ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"width": 7}, "width: expected an integer from 8 to 128, got 7 (out of range)"),
        ({"width": 64.0}, "width: expected an integer from 8 to 128, got 64.0"),
        ({"batch": 16}, "batch: expected an integer from 32 to 256, got 16 (out of range)"),
        ({"batch": True}, "batch: expected an integer from 32 to 256, got True"),
        ({"seed": -1}, "seed: expected an integer from 0 to 4294967295, got -1"),
        ({"depths": [4]}, "depths: expected a list of 2 to 10 increasing block counts from 1 to"),
        ({"depths": "1,2"}, "depths: expected a list of 2 to 10 increasing block counts"),
        ({"depths": [1, 128]}, "depths[1]: expected an integer from 1 to 64, got 128"),
        ({"depths": [4, 2]}, "got [4, 2] (not increasing)"),
    ],
)
def test_bad_inputs_name_the_field(kwargs, message):
    with pytest.raises(InputError) as err:
        ResnetBN(**kwargs)
    assert message in str(err.value)


def test_set_file_parameters_are_parsed_with_the_field_path():
    values = ResnetBN.parse_params({"width": 16, "depths": [1, 3]})
    assert values == {"width": 16, "batch": 64, "depths": (1, 3), "seed": 20261122}
    with pytest.raises(InputError, match=r"^sets/x.toml: params.resnet_bn.depths\[0\]: expected"):
        ResnetBN.from_params({"depths": [0, 3]}, "sets/x.toml")
    with pytest.raises(InputError, match="unknown parameter; allowed are width, batch, depths"):
        ResnetBN.from_params({"gamma": 1})


# -- rendering -----------------------------------------------------------------------------------
def test_template_renders(problem):
    out = key_tex(problem)
    assert "Architecture (1) is easier to train" in out
    assert r"S^{(1)} = I," in out
    assert "D_{3} J_{3} D_{2} J_{2} D_{1} J_{1}" in out
    assert r"\begin{picture}" in out
    # What the skip path passes through comes from the operations after the addition.
    assert "goes through BatchNorm and ReLU in every" in " ".join(out.split())
    assert "FAIL" not in out
    # One heading (the question's), then the solution.
    assert out.count("\\section*{Problem") == 1 and "\\subsection*{Solution}" in out
    handout = key_tex(problem, handout=True)
    assert "BatchNorm" in handout and "easier to train" in handout
    assert "Architecture (1) is easier" not in handout and "picture" not in handout


def test_pdf_states_the_answer_and_labels_the_plot(problem, tmp_path: Path):
    text = " ".join(key_pdf_text(problem, tmp_path).split())
    assert "Architecture (1) is easier to train" in text
    assert "depth L (blocks)" in text
    assert "gain G(L)" in text
    assert "architecture (2)" in text
    assert "FAIL" not in text
