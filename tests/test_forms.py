"""Forms of the key (``derive.render.forms``): what full, compact and student print.

Every bundled set is rendered in every form from one derivation of its problems; a question's
prose is probed by its plain lines (no TeX command, no formula), which the full key prints
with the question and the compact key must not.
"""

from __future__ import annotations

import csv
import dataclasses
import re
import subprocess
from pathlib import Path

import pytest
from conftest import QUIZ, set_file, snapshot

from derive.cli import main
from derive.render.document import render
from derive.render.forms import FORMS
from derive.render.pdf import pdf_text

SETS = ("csc421_hw3", "cse891_hw3", "hw7", "lmu_ex5")
#: The most pages a compact key's solutions may take (issue 13).
PAGE_TARGETS = {"hw7": 5, "csc421_hw3": 6}
#: Evidence shrinks to a line with m.verification, owned by another part of issue 13.


@pytest.fixture(scope="module")
def keys(problems) -> dict[tuple[str, str], str]:
    """Each bundled set's LaTeX by (set, form), its handout as (set, "handout")."""
    from derive.sets import get_set

    out = {}
    for set_id in SETS:
        pset = get_set(set_id)
        made = [pset.make_problem(k) if pset.params.get(k) else problems[k] for k in pset.problems]
        out[set_id, "handout"] = render(pset, made, handout=True)
        for name, form in FORMS.items():
            out[set_id, name] = render(dataclasses.replace(pset, form=form), made)
    return out


def sections(tex: str) -> list[str]:
    """The problems of a document, each from its ``\\section*{`` line on (a set may title a
    problem its own way: "Exercise 5-3"); the closing sections are no problems."""
    parts = re.split(r"(?=^\\section\*\{)", tex, flags=re.M)[1:]
    return [p for p in parts if not p.startswith(NOT_PROBLEMS)]


#: Sections of a key that hold no problem.
NOT_PROBLEMS = (
    "\\section*{Not answered here", "\\section*{Reading the evidence", "\\section*{Evidence"
)


def prose(question: str) -> list[str]:
    """Plain lines of a question (after its heading) long enough to be its own sentences."""
    lines = question.splitlines()[1:]
    return [line for line in lines if len(line) >= 40 and not re.search(r"[\\$]", line)]


def headings(tex: str) -> list[str]:
    """The text of every ``\\paragraph{...}`` (nested braces kept), final stop dropped."""
    out = []
    for m in re.finditer(r"\\paragraph\{", tex):
        depth, i = 1, m.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(tex[i], 0)
            i += 1
        out.append(tex[m.end() : i - 1].rstrip("."))
    return out


@pytest.mark.parametrize("set_id", SETS)
def test_compact_restates_no_question(keys, set_id):
    questions = sections(keys[set_id, "handout"])
    full, compact = sections(keys[set_id, "full"]), sections(keys[set_id, "compact"])
    assert len(questions) == len(full) == len(compact) > 1
    for question, in_full, in_compact in zip(questions, full, compact, strict=True):
        lines = prose(question)
        assert lines, question[:80]  # every question has sentences to look for
        assert all(line in in_full for line in lines)  # the probe finds a restated question
        assert [line for line in lines if line in in_compact] == []


@pytest.mark.parametrize("set_id", SETS)
def test_compact_keeps_every_heading(keys, set_id):
    compact = sections(keys[set_id, "compact"])
    for question, solution in zip(sections(keys[set_id, "handout"]), compact, strict=True):
        assert solution.splitlines()[0] == question.splitlines()[0]  # Problem N: title
        answered = headings(solution)
        for part in headings(question):  # "(a)" in the question, "(a) Weights ..." in the key
            assert any(h.startswith(part) for h in answered), (part, answered)


def test_student_and_full_restate_every_question(keys):
    for set_id in SETS:
        for question in sections(keys[set_id, "handout"]):
            for form in ("full", "student"):
                assert all(line in keys[set_id, form] for line in prose(question))


def test_titles_follow_the_form(keys):
    for set_id in SETS:
        full, compact, student = (keys[set_id, f] for f in ("full", "compact", "student"))
        assert "--- Answer Key}" in full and "--- Answer Key}" in compact
        assert "--- Solutions}" in student and "Answer Key" not in student
        assert "each problem\nends with the evidence, read as the last page explains." in full
        assert "the appendix holds the tables" in compact
        assert "questions are in the handout" in compact
        assert "questions are in the handout" not in full + student
        # The students' form promises no checks: it shows none.
        assert "independent route" in full and "independent route" not in student


def test_student_has_no_instructor_notes(keys):
    for set_id in SETS:
        assert "Note for instructors" not in keys[set_id, "student"]


def test_student_has_no_evidence(keys):
    for set_id in SETS:
        assert "toleran" in keys[set_id, "full"].lower()  # the full form shows its tables
        assert "toleran" not in keys[set_id, "student"].lower()


def test_optional_material_only_with_extras(keys):
    lstm = ("csc421_hw3", "cse891_hw3", "hw7")
    for set_id in lstm:
        full, compact = keys[set_id, "full"], keys[set_id, "compact"]
        for extra in (
            "\\paragraph{Vector form.}",
            "The initial states and the input receive",
            "The other weights follow from the same rule",
        ):
            assert extra in full and extra in keys[set_id, "student"]
            assert extra not in compact, (set_id, extra)
    assert "What the determinant means" not in keys["csc421_hw3", "compact"]
    assert "What the determinant means" in keys["csc421_hw3", "full"]


# -- the set file's key and --key ----------------------------------------------------------------
MOMENTUM = 'problems = ["momentum"]\n'
EXTRA = "What the determinant means"  # momentum's optional experiment
ASKED = "Gradient descent with momentum keeps a parameter vector"  # its question


def built(tmp_path: Path, body: str, *flags: str) -> dict[str, str]:
    """The LaTeX files a tex build of the set ``HEAD + body`` writes, by name."""
    out = tmp_path / "out"
    path = set_file(tmp_path, body)
    assert (
        main(["build", str(path), "--out", str(out), "--format", "tex", "--jobs", "1", *flags]) == 0
    )
    folder = out / "mine"
    texts = {p.name: p.read_text() for p in folder.glob("*.tex")}
    for p in folder.iterdir():
        p.unlink()
    return texts


def test_set_file_form_and_command_line_override(tmp_path):
    compact = built(tmp_path, 'key = "compact"\n' + MOMENTUM)
    assert list(compact) == ["answer-key-compact.tex"]
    assert ASKED not in compact["answer-key-compact.tex"]
    assert EXTRA not in compact["answer-key-compact.tex"]
    full = built(tmp_path, 'key = "compact"\n' + MOMENTUM, "--key", "full")
    assert list(full) == ["answer-key.tex"] and ASKED in full["answer-key.tex"]
    student = built(tmp_path, MOMENTUM, "--key", "student")
    assert list(student) == ["answer-key-student.tex"]
    assert "--- Solutions}" in student["answer-key-student.tex"]


def test_extras_in_a_compact_key(tmp_path):
    body = 'key = { form = "compact", extras = true }\n' + MOMENTUM
    for flags in ((), ("--key", "compact")):  # the set's own form keeps its extras
        tex = built(tmp_path, body, *flags)["answer-key-compact.tex"]
        assert EXTRA in tex and ASKED not in tex
    student = built(tmp_path, body, "--key", "student")["answer-key-student.tex"]
    assert EXTRA in student and ASKED in student


def test_extras_as_a_key_table(tmp_path):
    body = MOMENTUM + '[key]\nform = "full"\nextras = false\n'
    tex = built(tmp_path, body)["answer-key.tex"]
    assert ASKED in tex and EXTRA not in tex


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            'key = "brief"',
            "key: expected one of full, compact, student, or a table "
            "{ form = ..., extras = true|false }, got 'brief'",
        ),
        (
            "key = 1",
            "key: expected one of full, compact, student, or a table "
            "{ form = ..., extras = true|false }, got 1",
        ),
        (
            'key = { form = "compact", extras = "yes" }',
            "key.extras: expected true or false, got 'yes'",
        ),
        (
            'key = { form = "compact", extra = true }',
            "key.extra: unknown key; allowed are extras, form",
        ),
        ("key = { form = 3 }", "key.form: expected one of full, compact, student, got 3"),
    ],
)
def test_bad_key_in_a_set_file(tmp_path, previous, capsys, line, message):
    path = set_file(tmp_path, line + "\n" + MOMENTUM)
    before = snapshot(previous)
    status = main(["build", str(path), "--out", str(previous), "--format", "tex"])
    out, err = capsys.readouterr()
    assert (status, out, err) == (2, "", f"derive: error: {path}: {message}\n")
    assert snapshot(previous) == before


def test_bad_key_on_the_command_line(tmp_path, previous, capsys):
    path = set_file(tmp_path, MOMENTUM)
    before = snapshot(previous)
    with pytest.raises(SystemExit) as info:
        main(["build", str(path), "--out", str(previous), "--key", "brief"])
    out, err = capsys.readouterr()
    assert (info.value.code, out) == (2, "")
    assert err.count("\n") == 1 and "argument --key: invalid choice: 'brief'" in err
    assert snapshot(previous) == before


def test_variants_index_names_the_files_of_the_form(tmp_path):
    quiz = tmp_path / "quiz.toml"
    quiz.write_text(QUIZ, encoding="utf-8")
    out = tmp_path / "out"
    argv = ["build", str(quiz), "--out", str(out), "--variants", "2", "--format", "tex"]
    assert main([*argv, "--key", "compact", "--jobs", "1"]) == 0
    folder = out / "quiz" / "variants"
    rows = list(csv.DictReader((folder / "index.csv").open()))
    assert [r["answer_key"] for r in rows] == [
        "v01/answer-key-compact.tex",
        "v02/answer-key-compact.tex",
    ]
    for row in rows:
        assert (folder / row["answer_key"]).is_file() and (folder / row["handout"]).is_file()
        assert "--- Answer Key}" in (folder / row["answer_key"]).read_text()


# -- pages ---------------------------------------------------------------------------------------
def solution_pages(pdf: Path) -> int:
    """Pages of a key before its appendix (the page whose text opens a line with "Evidence (for
    instructors)")."""
    count = int(
        re.search(
            r"Pages:\s+(\d+)",
            subprocess.run(
                ["pdfinfo", str(pdf)], capture_output=True, text=True, check=True
            ).stdout,
        ).group(1)
    )
    pages = pdf_text(pdf).split("\f")
    appendix = re.compile(r"^Evidence \(for instructors\)", re.M)
    first = next((i for i, p in enumerate(pages) if appendix.search(p)), count)
    return min(first, count)


@pytest.mark.pdf
def test_compact_keys_meet_their_page_targets(tmp_path):
    out = tmp_path / "out"
    assert main(["build", *PAGE_TARGETS, "--key", "compact", "--out", str(out)]) == 0
    pages = {s: solution_pages(out / s / "answer-key-compact.pdf") for s in PAGE_TARGETS}
    assert all(pages[s] <= PAGE_TARGETS[s] for s in PAGE_TARGETS), pages
