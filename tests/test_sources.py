"""Remarks on a source belong to the set that declares it; points and hints as the handout.

A set written from scratch says nothing about any other course's handout, sample solution
or extraction damage; a bundled set quotes what it declares (``[original.<problem>]``),
only in the forms with instructors' notes; every part prints the set's points.
"""

from __future__ import annotations

import dataclasses

import pytest

from derive.build import export_problem
from derive.errors import InputError
from derive.render.document import render
from derive.render.forms import FORMS
from derive.sets import bundled, parse_set

SCRATCH = """\
id = "scratch"
title = "Homework 2"
course = "DL 101"
source = "written for the tests"
problems = ["momentum", "mdrnn", "binary_adder", "lstm"]
"""

#: Words that only a remark on some source would print.
SOURCE_WORDS = ("sample solution", "original", "cse", "homework 7", "extraction",
                "instructors", "stated with the question")


def _render(pset, problems, handout=False):
    return render(pset, [problems[k] for k in pset.problems], handout=handout)


def test_a_set_from_scratch_remarks_on_no_source(problems):
    pset = parse_set(SCRATCH, "scratch.toml")
    text = _render(pset, problems).lower()
    found = [w for w in SOURCE_WORDS if w in text]
    assert not found, f"a set from scratch mentions {found}"
    assert "neither explodes nor vanishes" not in text


def test_mdrnn_has_a_sample_solution_only_where_declared(problems):
    scratch = parse_set(SCRATCH, "scratch.toml")
    assert "sample_solution" not in export_problem(scratch, problems["mdrnn"])["results"]
    csc = bundled()["csc421_hw3"]
    declared = csc.make_problem("mdrnn")
    assert "sample_solution" in export_problem(csc, declared)["results"]
    assert declared.results["sample_solution"].value["weights"] is True
    assert any(c.claim == "sample_solution" for c in declared.checks)


def test_declared_sources_are_quoted_for_instructors(bundled_keys):
    csc = (bundled_keys / "csc421_hw3" / "answer-key.tex").read_text()
    assert csc.count(r"\paragraph{Note for instructors.}") == 3  # lstm, mdrnn, momentum
    assert "The determinant of the matrix is 0" in csc  # the sample, quoted
    assert "h(i;j) = Winx(i;j) + WWh(i 1;j) + WNh(i;j 1)" in csc  # the damaged text
    hw7 = (bundled_keys / "hw7" / "answer-key.tex").read_text()
    assert "Therefore no gradient can explode or vanish in this case." in hw7
    assert "neither explodes nor vanishes" not in hw7
    cse = (bundled_keys / "cse891_hw3" / "answer-key.tex").read_text()
    assert "Wxh, Whh and Why" in cse
    for text in (hw7, cse):  # neither handout states weights to check
        assert "weights the question gives" not in text
        assert "Homework~7" not in text


def test_the_student_form_has_no_notes_for_instructors(problems):
    pset = dataclasses.replace(bundled()["csc421_hw3"], form=FORMS["student"])
    mine = {**problems, "mdrnn": pset.make_problem("mdrnn")}
    text = _render(pset, mine)
    assert "instructors" not in text.lower()
    assert "The determinant of the matrix is 0" not in text


def test_points_print_in_question_and_key(bundled_keys, problems):
    csc = (bundled_keys / "csc421_hw3" / "answer-key.tex").read_text()
    assert csc.count("[3 pts]") == 2  # lstm (a): question and key
    assert "(Optional) Why the gradient does not explode\\quad\\textup{[no points]}" in csc
    assert csc.count("(b) The Jacobian determinant\\quad\\textup{[2 pts]}") == 2
    cse = (bundled_keys / "cse891_hw3" / "answer-key.tex").read_text()
    assert "hard-threshold RNN\\quad\\textup{[2.5 pts]}}" in cse  # the whole problem's points
    assert "3. (Extra credit) Why the gradient does not explode\\quad\\textup{[0.5 pts]}" in cse
    handout = _render(bundled()["hw7"], problems, handout=True)
    assert "hard-threshold RNN\\quad\\textup{[4 pts]}}" in handout
    assert "(c) Why the gradient does not explode\\quad\\textup{[2 pts]}" in handout
    # The hint of hw7's handout: the hidden units count the bits and the carry to 1, 2, 3.
    assert "add up to at least 1, the second when they add up to at least 2" in handout


def test_given_weights_are_stated_and_checked_only_when_given(problems):
    assert "given_weights_ok" not in problems["binary_adder"].results
    pset = parse_set(SCRATCH.replace('"momentum", "mdrnn", ', "") + """
[params.binary_adder.given_weights]
U = [[1, 1], [1, 1], [1, 1]]
W = [[0, 1, 0], [0, 1, 0], [0, 1, 0]]
b_h = ["-0.5", "-1.5", "-2.5"]
V = [1, -1, 1]
b_y = "-0.5"
""", "given.toml")
    adder = pset.make_problem("binary_adder")
    assert adder.results["given_weights_ok"].value is True
    handout = render(pset, [adder, problems["lstm"]], handout=True)
    assert "check whether these weights add correctly" in handout


@pytest.mark.parametrize("bad", ["0.125", "-1", "true", '"2"', "1e40"])
def test_points_must_be_whole_or_two_places(bad):
    text = SCRATCH + f"[points.momentum]\ninverse = {bad}\n"
    with pytest.raises(InputError, match=r"points\.momentum\.inverse: expected a number of points"):
        parse_set(text, "scratch.toml")


def test_an_unknown_sample_is_refused():
    text = SCRATCH + '[original.mdrnn]\nsample = "someone_else"\n'
    with pytest.raises(InputError, match=r"original\.mdrnn\.sample: expected one of 'csc421_hw3'"):
        parse_set(text, "scratch.toml")


def test_an_original_solutions_weights_are_checked_where_declared(problems):
    assert "solution_weights_ok" not in problems["binary_adder"].results
    hw7 = bundled()["hw7"].make_problem("binary_adder")
    assert hw7.results["solution_weights_ok"].value is True
    assert hw7.results["solution_equal"].value is True
    wrong = SCRATCH + """
[original.binary_adder.solution_weights]
U = [[1, 1], [1, 1], [1, 1]]
W = [[0, 1, 0], [0, 1, 0], [0, 1, 0]]
b_h = ["-0.5", "-1.5", "-2.5"]
V = [1, -1, 1]
b_y = "0.5"
"""
    adder = parse_set(wrong, "wrong.toml").make_problem("binary_adder")
    assert adder.results["solution_weights_ok"].value is False
    assert all(c.passed for c in adder.checks)  # the wrong sums are found, as stated
