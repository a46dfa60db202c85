"""Student handouts: each question states its model, given data and parts, and nothing derived.

For every registered problem (``problem_key``, tests/conftest.py), in the notation and labels
of the first bundled set that uses it (the default notation if none does):

* the handout (LaTeX and PDF) shows the heading, the model's equations from
  ``question_data`` and its numbered parts; the key's solution answers each part once,
  under the same heading, and answers no part the question does not ask;
* it shows no solution: no derived result (expression or chain-rule form, through the
  set's printer), no line of the key's solution, no evidence table, no verdict;
* ``question_data`` holds no derived result either;
* the answer key opens with the very same question, once, and then solves it;
* every label a bundled set gives numbers question and solution alike;
* the bundled sets build handouts whose PDFs carry none of the key's derived numbers.
"""

from __future__ import annotations

import dataclasses
import re
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest
import sympy as sp

from derive.cli import main
from derive.problems import Problem
from derive.render.document import ordering, render
from derive.render.latex import KeyPrinter, Notation
from derive.render.pdf import compile_pdf, pdf_text
from derive.sets import ProblemSet, bundled

SETS = bundled()
#: Printed forms this short ("1", "0", "d") occur in any text; they are not evidence of a leak.
SHORTEST = 4
SOLUTION = "\\subsection*{Solution}"
#: How a numbered part's heading begins: "(a)", "(Optional)", "1. ", "5-1 (a)".
PART = re.compile(r"(?:\d+-\d+ )?\((?:[a-z]|Optional)\)|\d+\.\s")


def pset_for(key: str) -> ProblemSet:
    """A one-problem set in the notation and labels of the first bundled set using ``key``."""
    home = next((pset for pset in SETS.values() if key in pset.problems), None)
    if home is None:
        return ProblemSet("single", "Single", "Course", "test", (key,), Notation())
    return dataclasses.replace(home, problems=(key,))


class Document:
    """One problem's handout (LaTeX, and PDF text) and key, each made on first use.

    Lazy, so that each problem's derivation and checks (the key needs them) are paid by the
    first test that asks, and the PDF only by a test that reads it.
    """

    def __init__(self, problem: Problem, tmp_path_factory) -> None:
        self.problem, self.pset, self.tmp = problem, pset_for(problem.key), tmp_path_factory

    @cached_property
    def tex(self) -> str:
        return render(self.pset, [self.problem], handout=True)

    @cached_property
    def key(self) -> str:
        return render(self.pset, [self.problem])

    @cached_property
    def pdf(self) -> str:
        dest = self.tmp.mktemp(self.problem.key) / "handout.pdf"
        compile_pdf(self.tex, dest)
        return pdf_text(dest)

    @property
    def solution(self) -> str:
        """The key from its Solution heading on."""
        return self.key[self.key.index(SOLUTION) :]

    @property
    def printer(self) -> KeyPrinter:
        """The set's printer in the problem's written order, as the document prints."""
        return KeyPrinter(self.pset.notation, ordering(self.problem))


class Documents(dict):
    """A ``Document`` per problem key, made on first use."""

    def __init__(self, problems: dict, tmp_path_factory) -> None:
        super().__init__()
        self.problems, self.tmp = problems, tmp_path_factory

    def __missing__(self, key: str) -> Document:
        self[key] = Document(self.problems[key], self.tmp)
        return self[key]


@pytest.fixture(scope="module")
def handouts(problems, tmp_path_factory) -> Documents:
    return Documents(problems, tmp_path_factory)


def leaves(value: Any):
    """Every non-container value inside nested dicts, lists and tuples (keys included)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from leaves(k)
            yield from leaves(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from leaves(v)
    else:
        yield value


def equations(value: Any):
    """Every equation of nested question data: (lhs, rhs) pairs of SymPy objects, and Eq."""
    if isinstance(value, sp.Equality):
        yield value.lhs, value.rhs
    elif isinstance(value, tuple) and len(value) == 2 and all(
        isinstance(side, sp.Basic) for side in value
    ):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from equations(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from equations(v)


def solution_forms(problem: Problem, printer: KeyPrinter) -> dict[str, str]:
    """The printed form of every derived result and chain-rule form, by a readable name."""
    out = {}
    for name, r in problem.results.items():
        if name in problem.GIVEN:
            continue
        out[name] = printer.doprint(r.expr)
        if r.chain is not None:
            out[f"{name} (chain form)"] = printer.doprint(r.chain)
    return out


def shown(forms: dict[str, str], text: str) -> list[str]:
    """The names of ``forms`` long enough to be evidence that ``text`` prints."""
    return [name for name, form in forms.items() if len(form) >= SHORTEST and form in text]


def printed_result(form: str, text: str) -> bool:
    """Whether ``text`` prints a result: whole where it is long enough to be evidence, else
    (the identity I) as the right-hand side that closes a displayed equation."""
    return form in text if len(form) >= SHORTEST else f"= {form}\n" in text


def headings(tex: str) -> list[str]:
    """The text of every ``\\paragraph{...}`` heading, braces inside it balanced."""
    out, start = [], 0
    while (start := tex.find("\\paragraph{", start)) >= 0:
        depth, end = 1, start + len("\\paragraph{")
        while depth:
            depth += {"{": 1, "}": -1}.get(tex[end], 0)
            end += 1
        out.append(tex[start + len("\\paragraph{") : end - 1])
        start = end
    return out


def parts(tex: str) -> list[str]:
    """The headings of numbered parts, without a closing period."""
    return [h.rstrip(".") for h in headings(tex) if PART.match(h)]


def flat(text: str) -> str:
    """``text`` with every run of whitespace one space (line breaks fall anywhere)."""
    return " ".join(text.split())


def question_of(tex: str) -> str:
    """The question of a one-problem handout: from its heading to the end of the body."""
    return tex[tex.index("\\section*{") : tex.index("\\end{document}")].strip()


def heading(pset: ProblemSet, problem: Problem, number: int = 1) -> str:
    """Problem ``number``'s heading: the set's title for it, else "Problem N: title"."""
    title = pset.labels.get(problem.key, {}).get("title")
    return title or f"Problem {number}: {problem.title}"


# -- what the handout shows -----------------------------------------------------------------
def test_handout_states_the_model(problem_key, problems, handouts):
    doc = handouts[problem_key]
    assert f"\\section*{{{heading(doc.pset, problems[problem_key])}" in doc.tex
    for equation in equations(problems[problem_key].question_data()):
        for side in equation:
            assert doc.printer.doprint(side) in doc.tex, equation


def test_key_answers_every_part_under_its_heading(problem_key, handouts):
    doc = handouts[problem_key]
    asked, answered = parts(doc.tex), parts(doc.solution)
    # The solution restates each heading (so it reads on its own), perhaps with a title
    # after the question's bare "(a)", once; and it answers nothing that was not asked.
    for part in asked:
        assert len([a for a in answered if a.startswith(part)]) == 1, part
    for answer in answered:
        assert any(answer.startswith(part) for part in asked), answer


@pytest.mark.pdf
def test_handout_pdf_reads_as_a_question(problem_key, problems, handouts):
    doc = handouts[problem_key]
    text = flat(doc.pdf)
    assert heading(doc.pset, problems[problem_key]) in text
    # Headings up to their first formula survive pdftotext verbatim.
    for part in parts(doc.tex):
        plain = part.split("$")[0].split("\\quad")[0].strip()  # the points are set apart
        assert plain in text, plain
    for word in ("Verification", "Solution", "pass", "FAIL", "tolerance"):
        assert word not in text, word


def test_handouts_carry_the_given_data(handouts):
    lstm, lstm_cell = handouts["lstm"].tex, handouts["lstm_cell"].tex
    # The gate values of the optional part, and the asked-for adjoints by name.
    assert "$f^{(t)} \\approx 1$, $i^{(t)} \\approx 0$, $o^{(t)} \\approx 0$" in lstm
    for name in "hcgofi":
        assert f"\\overline{{{name}^{{(t)}}}}" in lstm
    # LMU notation and the sizes; vanilla_rnn's T.
    assert "C_{t - 1}" in lstm_cell and "\\tilde{C}_{t}" in lstm_cell and "n_h" in lstm_cell
    assert "\\delta = o_{t - 1} \\odot \\tanh'(C_{t - 1})" in lstm_cell
    vanilla = handouts["vanilla_rnn"].tex
    assert "$W \\in \\mathbb{R}^{n \\times n}$ and $U \\in \\mathbb{R}^{n \\times d}$" in vanilla
    assert "Expand the double sum of 5-1 (b) for $T = 3$" in flat(vanilla)
    assert "\\mathbb{R}^{D}" in handouts["momentum"].tex


# -- what the handout must not show ---------------------------------------------------------
def test_handout_has_no_derived_result(problem_key, problems, handouts):
    doc = handouts[problem_key]
    assert shown(solution_forms(problems[problem_key], doc.printer), doc.tex) == []
    for word in ("Verification", "\\begin{longtable}", "pass", "FAIL", "Solution"):
        assert word not in doc.tex, word


def test_question_data_holds_no_derived_result(problem_key, problems, handouts):
    printer = handouts[problem_key].printer
    data = problems[problem_key].question_data()
    given = {printer.doprint(v) for v in leaves(data) if isinstance(v, sp.Basic)}
    forms = solution_forms(problems[problem_key], printer)
    leaked = [n for n, form in forms.items() if len(form) >= SHORTEST and form in given]
    assert leaked == []


def test_handout_has_no_line_of_the_solution(problem_key, handouts):
    """No substantial line after the key's Solution heading is a line of the handout."""
    doc = handouts[problem_key]
    handout = {line.strip() for line in doc.tex.splitlines()}
    solution = [line.strip() for line in doc.solution.splitlines()]
    # Short lines are markup any document has (\\end{align*}, \\[); the part headings are
    # shared on purpose.
    lines = [x for x in solution if len(x) >= 25 and not x.startswith("\\paragraph{")]
    assert len(lines) > 10
    assert [line for line in lines if line in handout] == []


# -- the answer key -------------------------------------------------------------------------
def test_key_opens_with_the_question_then_solves_it(problem_key, problems, handouts):
    doc = handouts[problem_key]
    question = question_of(doc.tex)
    assert doc.key.count(question) == 1
    # One heading for the problem (and one for what the set leaves out, if anything).
    legend = "\\section*{Reading the evidence}" in doc.key  # once per key, after the problems
    assert doc.key.count("\\section*{") == 1 + bool(doc.pset.out_of_scope) + legend
    # The question comes first, the solution after it, with derived results and evidence.
    assert doc.key.index(question) < doc.key.index(SOLUTION)
    # Above all the result the question is mainly about.
    problem = problems[problem_key]
    assert problem.MAIN in problem.results and problem.MAIN not in problem.GIVEN
    main_form = doc.printer.doprint(problem.results[problem.MAIN].expr)
    assert printed_result(main_form, doc.solution), problem.MAIN
    assert shown(solution_forms(problem, doc.printer), doc.solution) or len(main_form) < SHORTEST
    assert "Verification" in doc.solution and "\\begin{longtable}" in doc.solution


#: Every (bundled set, problem) whose part headings the set renames.
LABELLED = [(set_id, key) for set_id, pset in SETS.items() for key in pset.labels]


@pytest.mark.parametrize("set_id, key", LABELLED, ids=[f"{s}-{k}" for s, k in LABELLED])
def test_set_labels_number_question_and_solution_alike(set_id, key, problems):
    pset = dataclasses.replace(SETS[set_id], problems=(key,))
    handout = render(pset, [problems[key]], handout=True)
    solution = render(pset, [problems[key]]).split(SOLUTION, 1)[1]
    for part, label in pset.labels[key].items():
        if part == "hint":  # a hint is a sentence of the question, not a heading
            assert label in handout and label not in solution, label
            continue
        if part == "title":  # the problem's heading, printed once before the question
            assert f"\\section*{{{label}" in handout, label
            continue
        assert f"\\paragraph{{{label}" in handout, label
        assert f"\\paragraph{{{label}" in solution, label


def test_a_sets_notation_spells_the_question_too(problems):
    pset = dataclasses.replace(SETS["cse891_hw3"], problems=("lstm",))
    assert "for the weight $w_{xi}$" in render(pset, [problems["lstm"]], handout=True)


# -- bundled sets, end to end ---------------------------------------------------------------
def _verdict_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.search(r"\b(pass|FAIL)\s*$", line)]


@pytest.mark.pdf
@pytest.mark.parametrize("set_id", ["csc421_hw3", "lmu_ex5"])
def test_bundled_handout_pdf_has_no_solution(set_id, problems, tmp_path: Path):
    assert main(["build", set_id, "--handout", "--out", str(tmp_path)]) == 0
    folder = tmp_path / set_id
    assert sorted(p.name for p in folder.iterdir()) == ["handout.pdf", "handout.tex"]
    text, tex = pdf_text(folder / "handout.pdf"), (folder / "handout.tex").read_text()
    pset = SETS[set_id]
    for i, key in enumerate(pset.problems, start=1):
        problem = pset.make_problem(key) if pset.params.get(key) else problems[key]
        printer = KeyPrinter(pset.notation, ordering(problem))
        assert heading(pset, problem, i) in flat(text)
        assert shown(solution_forms(problem, printer), tex) == [], key
    assert "Verification" not in text and "tolerance" not in text
    assert _verdict_lines(text) == []


@pytest.fixture(scope="module")
def momentum_key_text(handouts, tmp_path_factory) -> str:
    dest = tmp_path_factory.mktemp("momentum_key") / "key.pdf"
    compile_pdf(handouts["momentum"].key, dest)
    return pdf_text(dest)


@pytest.mark.pdf
def test_momentum_handout_pdf_lacks_the_keys_numbers(problems, handouts, momentum_key_text):
    """Derived forms as pdftotext prints them: in the key's PDF, not in the handout's."""
    volume = problems["momentum"].results["volume_factor"].value
    mantissa, exponent = f"{volume['shrink']:.1e}".split("e")
    # det = beta^D reads "β D"; theta^(k) = theta^(k+1) - p^(k+1) reads as below (both seen
    # in a built key); the volume factor as printed by the sci filter.
    forms = ["β D", "θ(k+1) − p(k+1)", f"{mantissa} × 10−{abs(int(exponent))}"]
    handout = handouts["momentum"].pdf
    for form in forms:
        assert form in momentum_key_text, form
        assert form not in handout, form
    assert "β" in handout and "θ(k+1)" in handout  # the symbols themselves are given
