"""The evidence a key prints: names, verdicts, failures, the compact line, the forms.

Rendered as LaTeX only (no PDF): the bundled keys come from the session's ``bundled_keys``;
the rest render one quick problem (eigen_power, momentum) alone.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from derive.build import build_many
from derive.problems import get_problem
from derive.render.document import render
from derive.render.forms import FORMS
from derive.render.latex import Notation
from derive.render.numbers import sci
from derive.sets import ProblemSet, bundled, get_set
from derive.verify import Check

#: The decomposition exercise 5-2 (c) states has its eigenvectors in rows (eigen_power's
#: default, wrong); with them in columns it is right.
RIGHT_Q = {"given_Q": [["0.8", "0.6"], ["-0.6", "0.8"]], "given_Lambda": ["0.4", "0.9"]}


def _key(problems: list, form: str = "full") -> str:
    pset = ProblemSet("key", "Key", "Course", "test", tuple(p.key for p in problems), Notation(),
                      form=FORMS[form])
    return render(pset, problems)


def _rows(tex: str) -> list[str]:
    """The rows of every evidence table: lines ending a row, less heads and group headings."""
    tables = re.findall(r"\\begin\{longtable\}.*?\\end\{longtable\}", tex, flags=re.S)
    rows = []
    for t in tables:
        body = t.split(r"\endhead", 1)[1]
        rows += [line for line in body.splitlines()
                 if line.endswith(r"\tabularnewline") and not line.startswith(r"\multicolumn")]
    return rows


@pytest.fixture(scope="module")
def eigen() -> object:
    """eigen_power as exercise 5-2 states it (lmu_ex5): W and a wrong decomposition."""
    return get_set("lmu_ex5").make_problem("eigen_power")


def test_rows_name_claims_by_their_mathematics(bundled_keys):
    """No evidence row of a bundled key shows a result key: no typewriter text and no
    underscore outside math (``w\\_ix\\_bar``) in its claim's name."""
    keys = [(bundled_keys / sid / "answer-key.tex").read_text() for sid in bundled()]
    rows = [r for tex in keys for r in _rows(tex)]
    assert len(rows) > 100
    for row in rows:
        name = row.split(" & ")[0]
        assert r"\texttt" not in row, row
        assert r"\_" not in name, row


def test_every_bundled_claim_has_a_name():
    """A claim is named by CLAIM_NAMES or its result's left-hand side, never its key."""
    seen: set[str] = set()
    for pset in bundled().values():
        for key in pset.problems:
            if key in seen:
                continue
            seen.add(key)
            p = pset.make_problem(key)
            unnamed = [c.key for c in p.claims()
                       if c.key not in p.CLAIM_NAMES and p.results[c.key].lhs is None]
            assert not unnamed, (key, unnamed)


def test_wrong_given_data_reads_detected(eigen):
    """The stated decomposition is wrong: its check passes by finding so, and reads
    "detected"; the export keeps ``passed`` and says ``detects``."""
    check = next(c for c in eigen.checks if c.claim == "given_decomposition_ok")
    assert check.passed and check.detects and check.verdict == "detected"
    assert check.as_dict()["passed"] is True and check.as_dict()["detects"] is True
    row = next(r for r in _rows(_key([eigen])) if r.startswith("the stated decomposition"))
    assert r"\textit{detected}" in row and "pass" not in row
    # A right decomposition is no detection: it passes.
    right = get_problem("eigen_power").from_params(RIGHT_Q)
    ok = next(c for c in right.checks if c.claim == "given_decomposition_ok")
    assert ok.passed and not ok.detects and ok.verdict == "pass"


def test_a_failing_check_is_impossible_to_miss(eigen, monkeypatch):
    """A failed check prints FAIL in bold on its row, in bold in the error column, and in a
    box naming the claim at the top of the problem's evidence; the compact line names it."""
    planted = [dataclasses.replace(c, max_rel_error=0.5) if c.claim == "Q_inv" else c
               for c in eigen.checks]
    monkeypatch.setitem(eigen.__dict__, "checks", planted)
    tex = _key([eigen])
    row = next(r for r in _rows(tex) if r.startswith("$Q^{-1}$"))
    assert r"\textbf{FAIL}" in row and r"\mathbf{0.5}" in row
    top = tex.index(r"\textbf{FAILED:")
    assert top < tex.index(r"\begin{longtable}", tex.index(r"\paragraph{Verification.}"))
    assert "$Q^{-1}$" in tex[top:top + 200]
    assert r"\textbf{FAILED: $Q^{-1}$}" in _key([eigen], "compact")


def test_compact_line_gives_each_routes_worst_error():
    """The compact line's numbers are the worst errors of the checks by complex step and by
    central differences, and it counts the exact checks (computed here from the checks)."""
    p = get_problem("momentum")
    tex = _key([p], "compact")
    line = re.search(r"\\paragraph\{Verification\.\} (.*)", tex).group(1)
    for route in ("central difference",):
        worst = max(c.max_rel_error for c in p.checks if route in c.method)
        assert rf"central differences to $\le {sci(worst)}$" in line, line
    exact = [c for c in p.checks if c.tolerance == 0]
    assert f"{len(exact)} exact checks of {len({c.claim for c in exact})} claims hold" in line
    digits = [c for c in p.checks if "50-digit" in c.method]
    assert rf"50-digit arithmetic to $\le {sci(digits[0].max_rel_error)}$" in line
    assert r"\begin{longtable}" not in tex.split(r"\section*{Evidence (for instructors)}")[0]


def test_compact_key_has_the_tables_in_an_appendix(eigen):
    """One appendix, one subsection per problem, one legend for the key."""
    tex = _key([eigen, get_problem("momentum")], "compact")
    appendix = tex.split(r"\section*{Evidence (for instructors)}")[1]
    assert appendix.count(r"\subsection*{Problem") == 2
    assert r"\textit{detected}" in appendix
    assert tex.count("worst error} is the largest") == 1
    full = _key([eigen, get_problem("momentum")])
    assert full.count("worst error} is the largest") == 1
    assert "Evidence (for instructors)" not in full


def test_student_form_has_no_evidence(eigen):
    tex = _key([eigen], "student")
    assert "Verification" not in tex and r"\begin{longtable}" not in tex
    assert "worst error" not in tex and "Evidence" not in tex and "detected" not in tex


def test_a_build_assembles_the_appendix(tmp_path):
    """The appendix survives the build's assembly from per-problem parts."""
    pset = dataclasses.replace(bundled()["csc421_hw3"], problems=("momentum",),
                               form=FORMS["compact"])
    (out,) = [f for f in build_many([pset], tmp_path, "tex") if f.suffix == ".tex"]
    tex = out.read_text()
    assert r"\subsection*{Problem 1: " in tex.split("Evidence (for instructors)")[1]


def test_a_check_without_detects_reads_pass():
    assert Check("x", "m", "s", 0.0, 0.0).verdict == "pass"
    assert Check("x", "m", "s", float("nan"), 1.0, detects=True).verdict == "FAIL"


def test_evidence_names_routes_not_libraries(bundled_keys):
    """How a claim was checked is said in mathematics (exact rationals, a float64 forward pass,
    50-digit arithmetic), never by the library that ran it."""
    for tex in sorted(bundled_keys.glob("*/answer-key.tex")):
        evidence = tex.read_text().split("\\begin{longtable}", 1)[-1]
        named = re.findall(r"(?i)\b(numpy|sympy|mpmath|python|fractions|slogdet)\b", evidence)
        assert named == [], (tex.parent.name, sorted(set(named)))


def test_appendix_heads_each_problem_as_the_key_does(tmp_path: Path):
    """A set that titles its problems its own way ("Exercise 5-3: LSTMs") has the appendix
    say so too, so that its tables are found under the key's own headings."""
    pset = dataclasses.replace(get_set("lmu_ex5"), form=FORMS["compact"])
    out = build_many([pset], tmp_path, "tex", jobs=1)
    tex = out[0].read_text()
    appendix = tex.split("\\section*{Evidence (for instructors)}", 1)[1]
    for key in pset.problems:
        title = pset.labels[key]["title"]
        assert f"\\section*{{{title}" in tex and f"\\subsection*{{{title}}}" in appendix
