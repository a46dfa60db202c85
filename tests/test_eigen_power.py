"""eigen_power: the decomposition, W^n, and the check of a stated decomposition."""

from __future__ import annotations

import json
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp
from conftest import key_tex

from derive.errors import InputError
from derive.problems.eigen_power import HANDOUT_W, EigenPower, symmetric_candidates
from derive.render.plot import curve_plot

#: The decomposition LMU exercise 5-2 (c) states with its W (../shared/seeds/003).
STATED = {"given_Q": [["0.8", "-0.6"], ["0.6", "0.8"]], "given_Lambda": ["0.4", "0.9"]}


def test_handout_decomposition_is_flagged_wrong():
    p = EigenPower.from_params(STATED)
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


# -- the documented ranges, at their edges -------------------------------------------------------
# W: any 2x2 matrix of exact numbers with |entry| <= 10^6 and denominators <= 10^6 that is
# diagonalizable over the reals; n from 1 to 200.  Every check must pass there, the JSON export
# must be JSON (no inf, no NaN) and the key must render.
BIG = 10**6
EDGE_MATRICES = {
    "zero": [[0, 0], [0, 0]],
    "identity": [[1, 0], [0, 1]],
    "minus identity": [[-1, 0], [0, -1]],
    "largest entry": [[BIG, 0], [0, 1]],
    "largest scalar": [[BIG, 0], [0, BIG]],
    "largest, both signs": [[-BIG, 0], [0, BIG]],
    "smallest entries": [["1/1000000", 0], [0, "1/1000000"]],
    "smallest and largest": [["1/1000000", 0], [0, BIG]],
    "singular, largest": [[BIG, BIG], [BIG, BIG]],
    "singular, mixed signs": [[BIG, -BIG], [-BIG, BIG]],
    "singular": [[1, 0], [0, 0]],
    "eigenvalues -1 and 1": [[0, 1], [1, 0]],
    "eigenvalue 1": [[1, 0], [0, "1/2"]],
    "negative eigenvalues": [[-2, 1], [1, -2]],
    "hundred": [[100, 0], [0, 1]],
    # Irrational eigenvalues: 10^6 and -10^-6 nearly; the contracting regime's powers cancel
    # through 2000 digits in Q(sqrt 250000000001).
    "irrational, largest": [[BIG, 1], [1, 0]],
    "largest denominators": [["999999/1000000", "1/999999"], ["1/999998", "1/3"]],
    # Non-normal, eigenvalues 1 and 1 + 10^-6: eigenvectors nearly parallel.
    "nearly defective": [[1, BIG], [0, "1000001/1000000"]],
    # Eigenvalues +-sqrt(1999999) while |W| has 2 10^6: W^n cancels through 600 digits.
    "cancelling": [[BIG, 999999], [-999999, -BIG]],
}


def _json_of(problem) -> str:
    from derive.build import export_problem
    from derive.render.latex import Notation
    from derive.sets import ProblemSet

    pset = ProblemSet("key", "Key", "Course", "test", (problem.key,), Notation())
    return json.dumps(export_problem(pset, problem), allow_nan=False)


@pytest.mark.parametrize("n", [1, 200])
@pytest.mark.parametrize("name", list(EDGE_MATRICES))
def test_every_check_passes_at_the_edges_of_the_ranges(name, n):
    p = EigenPower.from_params({"W": EDGE_MATRICES[name], "n": n})
    failed = [(c.claim, c.method, c.max_rel_error) for c in p.checks if not c.passed]
    assert failed == []
    json.loads(_json_of(p))
    assert r"\begin{picture}" in key_tex(p)


def test_the_zero_matrix_says_its_powers_vanish():
    """All norms 0: the log plot shows no point for them and says why; the text says W^n = 0."""
    p = EigenPower.from_params({"W": [[0, 0], [0, 0]], "n": 5})
    assert p.results["W_power"].expr == sp.zeros(2, 2)
    assert p.results["regime_contracting"].value["norm_powers"] == [0.0, 0.0, 0.0, 0.0]
    tex = key_tex(p)
    # The plot (placed by the render layer from the exported norms) says why one curve is empty.
    legend = r"\end{picture}\,contracting: every power is the zero matrix, which a log axis"
    assert legend in " ".join(tex.split())
    ctx = p.context()
    plot = curve_plot(ctx["curve_k"], ctx["curves"], "k", "norm", vanished="none")
    labels = {label: points for label, _, points in plot.series}
    assert labels["contracting: none"] == []
    assert len(labels["expanding"]) == 40  # the other regimes keep every point
    assert r"W^{5} = Q\,0\,Q^{-1}$ is the" in tex


def test_powers_beyond_float64_are_checked_and_exported():
    """(10^6)^200 = 10^1200: no float64 holds it; the checks run in mpmath, JSON stays JSON."""
    p = EigenPower.from_params({"W": [[BIG, 0], [0, 1]], "n": 200})
    assert p.results["W_power"].expr[0, 0] == sp.Integer(10) ** 1200
    numeric = next(c for c in p.checks if c.claim == "W_power" and "digits" in c.method)
    assert numeric.passed and numeric.max_rel_error < 1e-15
    data = json.loads(_json_of(p))["results"]
    # Beyond float64 a value is null: an integer's exact text, a norm's 17 significant digits.
    assert data["W_power"]["value"][0][0] is None
    assert data["W_power"]["exact"][0][0] == "1" + "0" * 1200
    norms = data["regime_expanding"]
    assert norms["value"]["norm_powers"] == [1e6, 1e60, None, None]
    assert norms["exact"]["norm_powers"] == [None, None, "1.0e+1200", "1.0e+600"]
    # 1201 digits do not fit a line: the key says how long the exact entries are instead.
    tex = " ".join(key_tex(p).split())
    assert "run to $1201$ digits" in tex and "0" * 200 not in tex
    assert r"1.0\times 10^{1200}" in tex  # the regimes' table


def test_hundred_to_the_200th_passes_its_numeric_checks():
    """100^200 = 10^400 overflows float64: before, the float64 check failed (inf) and the
    JSON export raised "Out of range float values are not JSON compliant"."""
    p = EigenPower.from_params({"W": [[100, 0], [0, 1]], "n": 200})
    assert all(c.passed for c in p.checks)
    data = json.loads(_json_of(p))["results"]
    assert data["regime_expanding"]["value"]["norm_powers"][2] is None
    assert data["regime_expanding"]["exact"]["norm_powers"][2] == "1.0e+400"


def test_exact_norms_survive_deep_cancellation():
    """The contracting regime of [[10^6, 1], [1, 0]] has entries a + b sqrt(d) whose 100th
    power cancels through about 2000 digits; its norm is 0.9^100 (a symmetric matrix with
    eigenvalues 0.9 and a tiny one), which 60-digit arithmetic on the eigenvalues confirms."""
    p = EigenPower.from_params({"W": [[BIG, 1], [1, 0]], "n": 1})
    norms = p.regime_norms["contracting"]
    assert norms[3] == pytest.approx(0.9**100, rel=1e-14)
    assert float(norms[1]) == pytest.approx(0.9**10, rel=1e-14)


def test_ill_conditioned_stated_decompositions_are_judged_right():
    """Q with nearly parallel columns (det 10^-6): float64's inverse is off by 1e-5, which
    used to flip the verdict on a correct decomposition."""
    p = EigenPower.from_params(
        {
            "W": [["1000003/6", "-500000/3"], ["1000001/6", "-499999/3"]],
            "given_Q": [[1, 1], [1, "1000001/1000000"]],
            "given_Lambda": ["1/2", "1/3"],
        }
    )
    assert p.results["given_decomposition_ok"].value is True
    assert all(c.passed for c in p.checks)
    p = EigenPower.from_params(
        {"given_Q": [[1, 1], [1, "1000001/1000000"]], "given_Lambda": [BIG, -BIG]}
    )
    assert p.results["given_decomposition_ok"].value is False
    assert all(c.passed for c in p.checks)


@pytest.mark.parametrize("w", [[[0, 1], [0, 0]], [[BIG, 1], [0, BIG]]])
def test_nilpotent_and_defective_matrices_are_refused(w):
    with pytest.raises(InputError, match=r"params\.eigen_power\.W: .* not diagonalizable"):
        EigenPower.from_params({"W": w})


@pytest.mark.parametrize(
    ("w", "zero", "shrinks", "decimals"),
    [
        ([[0, 0], [0, 0]], True, True, True),
        ([["0.58", "0.24"], ["0.24", "0.72"]], False, True, True),  # the handout's: rho 0.9
        ([[1, 0], [0, "1/2"]], False, False, True),  # rho = 1 exactly: does not shrink
        ([["1/3", 0], [0, "1/2"]], False, True, False),
    ],
)
def test_what_the_key_says_of_the_power(w, zero, shrinks, decimals):
    p = EigenPower.from_params({"W": w})
    got = tuple(p.results[k].value for k in ("power_zero", "power_shrinks", "terminating"))
    assert got == (zero, shrinks, decimals)
    assert all(c.passed for c in p.checks)


class Misstated(EigenPower):
    """Says W^n is zero, does not shrink and has no terminating decimals: all three wrong."""

    def derive(self):
        out = super().derive()
        for key in ("power_zero", "power_shrinks", "terminating"):
            flipped = not out[key].value
            out[key] = type(out[key])(key, sp.true if flipped else sp.false, value=flipped)
        return out


def test_misstated_power_facts_are_caught():
    failed = {c.claim for c in Misstated().checks if not c.passed}
    assert failed == {"power_zero", "power_shrinks", "terminating"}


@pytest.mark.parametrize("m", [
    sp.Matrix([[sp.Rational(1, 2), sp.Rational(1, 3)], [sp.Rational(-1, 7), 2]]),
    sp.Matrix([[1 + sp.sqrt(2), 3], [sp.Rational(1, 5), 1 - sp.sqrt(2)]]),  # in QQ<sqrt 2>
])
def test_power_norms_in_the_number_field_match_expanded_powers(m):
    from derive.engine.exact_matrix import power_norms, spectral_norm

    power = sp.eye(2)
    for k, norm in enumerate(power_norms(m, 12), start=1):
        power = (power * m).applyfunc(sp.expand)
        assert abs(norm - spectral_norm(power)) <= 1e-40 * norm, k
