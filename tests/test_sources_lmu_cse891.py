"""Remarks on a source only where a set declares it, and only for instructors; a set's own
numbering and points; the other readings of damaged text, computed.

The LMU exercise 5 handout (../shared/seeds/003) and CSE 891 homework 3 (004) are the
sources; the README's dl101_hw2 is written from scratch and must remark on neither.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import sympy as sp

from derive.errors import InputError
from derive.problems.eigen_power import EigenPower
from derive.render.document import render
from derive.render.forms import FORMS
from derive.render.latex import Notation
from derive.sets import ProblemSet, bundled, parse_set

#: My problems and the set that quotes a source for each.
SOURCED = {
    "lmu_ex5": ("vanilla_rnn", "eigen_power", "lstm_cell"),
    "cse891_hw3": ("cnn_params", "resnet_bn", "pixelcnn_mdrnn"),
}
NOTE = r"\paragraph{Note for instructors.}"
#: Words that speak of a source (or of the tool) and have no place where none is declared.
SOURCE_WORDS = ("handout", "original", "extract", "LMU", "CSE", "Note for instructors")


def _instances(pset: ProblemSet, problems: dict) -> list:
    """The set's problems: the session's defaults unless the set gives parameters."""
    return [pset.make_problem(k) if pset.params.get(k) else problems[k] for k in pset.problems]


def _key(pset: ProblemSet, problems: dict, form: str = "full") -> str:
    return render(dataclasses.replace(pset, form=FORMS[form]), _instances(pset, problems))


def _prose(tex: str) -> str:
    """The key without its evidence: each problem's text up to its Verification paragraph,
    and no legend (which names the kinds of given data a check may find wrong)."""
    tex = tex.split("\\section*{Reading the evidence}", 1)[0]
    return re.sub(r"\\paragraph\{Verification\.\}.*?(?=\\section\*|\Z)", "", tex, flags=re.S)


def _problem_part(tex: str, heading: str) -> str:
    """The text of the problem headed ``heading`` (up to the next problem)."""
    start = tex.index(r"\section*{" + heading)
    end = tex.find(r"\section*{", start + 1)
    return tex[start:] if end < 0 else tex[start:end]


def test_a_set_written_from_scratch_remarks_on_no_source(problems):
    # The handout's own W and network by default, but no [original]: nothing on any source.
    pset = ProblemSet("dl101", "Homework 2", "DL 101", "mine", ("eigen_power", "cnn_params"),
                      Notation())
    tex = _prose(_key(pset, problems))
    assert [w for w in SOURCE_WORDS if w.lower() in tex.lower()] == []
    assert "stated decomposition" not in tex  # none is stated unless the set says so
    assert "Problem 1:" in tex and r"\paragraph{(a)" in tex and r"\paragraph{(b)" in tex


@pytest.mark.parametrize("set_id", sorted(SOURCED))
def test_instructor_notes_only_in_forms_with_notes(set_id, problems):
    pset = bundled()[set_id]
    full, student = _key(pset, problems), _key(pset, problems, "student")
    for key in SOURCED[set_id]:
        assert pset.original.get(key), key  # the set declares what its source printed
    assert full.count(NOTE) >= len(SOURCED[set_id])
    assert NOTE not in student and "original handout" not in _prose(student)
    quotes = (v for fields in pset.original.values() for v in fields.values())
    for quoted in (v for v in quotes if isinstance(v, str)):  # declared numbers are no quotes
        assert quoted[:20] not in student


def test_lmu_numbering_follows_the_handout(problems):
    tex = _key(bundled()["lmu_ex5"], problems)
    rnn = _problem_part(tex, "Exercise 5-1 and 5-2 (a)")
    assert all(r"\paragraph{" + p in rnn for p in ("5-1 (a)", "5-1 (b)", "5-2 (a)"))
    eig = _problem_part(tex, "Exercise 5-2 (b), (c)")
    assert r"\paragraph{5-2 (b)" in eig and r"\paragraph{5-2 (c)" in eig
    assert r"\paragraph{(b)" not in eig and r"\paragraph{(c)" not in eig
    cell = _problem_part(tex, "Exercise 5-3")
    assert all(r"\paragraph{5-3 (" + p in cell for p in "abcd")
    assert "Problem 1" not in tex and "Problem 2" not in tex


def test_eigen_power_alone_starts_at_a(problems):
    pset = ProblemSet("one", "One", "Course", "mine", ("eigen_power",), Notation())
    question = render(pset, [problems["eigen_power"]], handout=True)
    assert re.findall(r"\\paragraph\{\((\w)\)", question) == ["a", "b"]


def test_absolute_values_of_eigenvalues(problems):
    question = render(bundled()["lmu_ex5"], _instances(bundled()["lmu_ex5"], problems),
                      handout=True)
    assert question.count("absolute value") >= 2
    # -0.9 and 0.1: below 1 in absolute value, so W^n shrinks; the expanding regime must
    # push |lambda| above 1 (-0.9 to -1.2), not add to -0.9 (which gave -0.7).
    q = sp.Matrix([[4, -3], [3, 4]]) / 5
    w = q * sp.diag(sp.Rational(-9, 10), sp.Rational(1, 10)) * q.T
    p = EigenPower.from_params({"W": [[str(v) for v in row] for row in w.tolist()]})
    assert p.results["power_shrinks"].value is True
    expanding = [sp.Rational(v) for v in p.results["regime_expanding"].value["eigenvalues"]]
    assert max(abs(v) for v in expanding) > 1
    assert sorted(expanding) == [sp.Rational(-6, 5), sp.Rational(1, 10)]
    assert all(c.passed for c in p.checks)


def test_lmu_sign_flip_reading_is_computed():
    p = bundled()["lmu_ex5"].make_problem("eigen_power")
    # By hand: W with its off-diagonal signs flipped, and numpy's product of the stated
    # factors (Q is orthogonal, so Q^-1 = Q^T).
    flipped = np.array([[0.58, -0.24], [-0.24, 0.72]])
    q, lam = np.array([[0.8, -0.6], [0.6, 0.8]]), np.diag([0.4, 0.9])
    np.testing.assert_allclose(q @ lam @ q.T, flipped, atol=1e-15)
    r = p.results
    assert r["given_decomposition_ok"].value is False
    assert r["flipped_decomposition_ok"].value is True
    np.testing.assert_allclose(np.array(r["flipped_W"].expr, dtype=float), flipped, rtol=0)
    want = np.linalg.matrix_power(flipped, 30)
    np.testing.assert_allclose(np.array(r["flipped_power"].expr, dtype=float), want, rtol=1e-12)
    assert all(c.passed for c in p.checks)
    assert {"flipped_W", "flipped_decomposition_ok", "flipped_power"} <= {c.claim for c in p.checks}


def test_lmu_notes_state_the_reconstructions(problems):
    tex = _key(bundled()["lmu_ex5"], problems)
    eig = _problem_part(tex, "Exercise 5-2 (b), (c)")
    assert "W'" in eig and "-0.24" in eig.split(NOTE)[1]
    cell = _problem_part(tex, "Exercise 5-3").split(NOTE)[1]
    assert "reconstruction" in cell and "biases" in cell
    assert "Item 5" in cell and "Item 3" in cell  # the two slips that may be damage
    assert r"\frac{\partial L_{t}}{\partial C_{t}}" in cell  # the missed slip, corrected
    assert "s - k + 1" in cell


def test_the_total_derivative_counts_each_path_s_minus_k_plus_1_times(problems):
    # By hand, T = 3: the pair (s, k) is counted once for each t with k <= t <= s.
    counts = problems["lstm_cell"].results["path_counts"].expr
    assert counts == sp.Matrix([[1, 0, 0], [2, 1, 0], [3, 2, 1]])


def test_points_print_in_headings(problems):
    tex = _key(bundled()["cse891_hw3"], problems)
    assert "Problem 3.1: Parameters of a convolutional network\\quad\\textup{[1 pt]}" in tex
    pixel = _problem_part(tex, "Problem 4:")
    assert pixel.count("[1 pt]") == 6  # three parts, in the question and in the solution


def test_a_title_is_no_part_to_give_points():
    head = 'id = "s"\ntitle = "T"\ncourse = "C"\nsource = "s"\nproblems = ["cnn_params"]\n'
    with pytest.raises(InputError, match=r"points\.cnn_params\.title: not a part .* are count$"):
        parse_set(head + "[points.cnn_params]\ntitle = 1\n", "my.toml")
