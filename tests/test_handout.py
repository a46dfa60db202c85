"""Student handouts: each question states its model, given data and parts, and nothing derived.

For lstm, gru, lstm_cell, vanilla_rnn and momentum, in the notation of the set that uses
them:

* the handout (LaTeX and PDF) shows the heading, the model's equations from
  ``question_data`` and every part the key answers, under the same labels;
* it shows no solution: no derived result (expression or chain-rule form, through the
  set's printer), no line of the key's solution, no evidence table, no verdict;
* ``question_data`` holds no derived result either;
* the answer key opens with the very same question, once, and then solves it;
* the bundled sets build handouts whose PDFs carry none of the key's derived numbers.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
import sympy as sp

from derive.cli import main
from derive.problems import REGISTRY
from derive.render.document import render
from derive.render.latex import KeyPrinter, Notation
from derive.render.pdf import compile_pdf, pdf_text
from derive.sets import ProblemSet, bundled

KEYS = ["lstm", "gru", "lstm_cell", "vanilla_rnn", "momentum"]
#: The bundled set whose notation and labels each problem is shown in (gru is in none).
HOME = {"lstm": "csc421_hw3", "momentum": "csc421_hw3", "lstm_cell": "lmu_ex5"}
HOME["vanilla_rnn"] = "lmu_ex5"
#: Part headings of each question, copied by hand from the key templates (csc421_hw3 has no
#: labels, so the LSTM shows the template's defaults).
PARTS = {
    "lstm": [
        "(a) Adjoints of the activations and gates.",
        "(b) The weight $\\overline{w_{ix}}$.",
        "(Optional) Why the gradient neither explodes nor vanishes.",
    ],
    "gru": [
        "(a) Adjoints of the activations and gates.",
        "(b) The weights.",
        "(c) The backward map.",
    ],
    "lstm_cell": [
        "(a) What the gates do.",
        "(b) Which quantities are always positive.",
        "(c) The gradient when $f_{t} = 1$ and $i_{t} = 0$.",
        "(d) The recursive gradient in general.",
    ],
    "vanilla_rnn": [
        "5-1 (a) The Jacobian of a layer.",
        "5-1 (b) The gradient with respect to $W$.",
        "5-2 (a) Written out for $T = 3$.",
    ],
    "momentum": ["(a) The inverse.", "(b) The Jacobian determinant."],
}
#: The entries of question_data that hold the given model: lists of (lhs, rhs) or equations.
MODEL = {
    "lstm": ["forward"],
    "gru": ["forward"],
    "lstm_cell": ["equations"],
    "vanilla_rnn": ["rnn_forward", "layer_forward"],
    "momentum": ["updates"],
}
#: Results a question may state because they are given, not derived: none of these problems
#: has one (their results are adjoints, Jacobians, inverses and determinants; the model
#: equations are question_data, never results).  A (problem, result) pair added here is
#: exempt from the no-solution tests.
STATED: set[tuple[str, str]] = {
    ("eigen_power", "W"),  # the matrix the question gives
    # The LMU handout states a decomposition whose eigenvalues are right and whose Q is the
    # derived Q^-1 (eigenvectors in rows): given data that happens to equal two results.
    ("eigen_power", "Lambda"),
    ("eigen_power", "Q_inv"),
}
#: Every registered problem: the no-solution tests run on all of them.
ALL = list(REGISTRY)
#: Printed forms this short ("1", "0", "d") occur in any text; they are not evidence of a leak.
SHORTEST = 4
#: One result per problem whose printed form the key must show (its main answer).
MAIN = {
    "lstm": "w_ix_bar",
    "gru": "w_zx_bar",
    "lstm_cell": "dC_dCk_f1_i0",
    "vanilla_rnn": "jacobian_y_x",
    "momentum": "det_jacobian",
}
SOLUTION = "\\subsection*{Solution}"


def pset_for(key: str) -> ProblemSet:
    """A one-problem set in the notation and labels of the bundled set that uses ``key``."""
    if key not in HOME:
        return ProblemSet("single", "Single", "Course", "test", (key,), Notation())
    return dataclasses.replace(bundled()[HOME[key]], problems=(key,))


class Documents(dict):
    """Per problem, built on first use: the handout's LaTeX and PDF text, the key's LaTeX.

    Lazy, so that each problem's derivation and checks (the key needs them) are paid by the
    first test that asks for it rather than all at once.
    """

    def __init__(self, problems: dict, tmp_path_factory) -> None:
        super().__init__()
        self.problems, self.tmp = problems, tmp_path_factory

    def __missing__(self, key: str) -> dict[str, str]:
        pset, problem = pset_for(key), self.problems[key]
        tex = render(pset, [problem], handout=True)
        dest = self.tmp.mktemp(key) / "handout.pdf"
        compile_pdf(tex, dest)
        self[key] = {"tex": tex, "pdf": pdf_text(dest), "key": render(pset, [problem])}
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


def solution_forms(key: str, problem) -> dict[str, str]:
    """The printed form of every derived result and chain-rule form, by a readable name."""
    printer = KeyPrinter(pset_for(key).notation)
    out = {}
    for name, r in problem.results.items():
        if (key, name) in STATED:
            continue
        out[name] = printer.doprint(r.expr)
        if r.chain is not None:
            out[f"{name} (chain form)"] = printer.doprint(r.chain)
    return out


def flat(text: str) -> str:
    """``text`` with every run of whitespace one space (line breaks fall anywhere)."""
    return " ".join(text.split())


def question_of(tex: str) -> str:
    """The question of a one-problem handout: from its heading to the end of the body."""
    return tex[tex.index("\\section*{Problem") : tex.index("\\end{document}")].strip()


# -- what the handout shows -----------------------------------------------------------------
@pytest.mark.parametrize("key", KEYS)
def test_handout_states_the_model_and_every_part(key, problems, handouts):
    problem, tex = problems[key], handouts[key]["tex"]
    printer = KeyPrinter(pset_for(key).notation)
    assert f"\\section*{{Problem 1: {problem.title}}}" in tex
    for part in PARTS[key]:
        assert f"\\paragraph{{{part}}}" in tex, part
    data = problem.question_data()
    for entry in MODEL[key]:
        items = data[entry] if isinstance(data[entry], list) else [data[entry]]
        for item in items:
            for side in item if isinstance(item, tuple) else (item,):
                assert printer.doprint(side) in tex, (entry, side)


@pytest.mark.parametrize("key", KEYS)
def test_handout_pdf_reads_as_a_question(key, problems, handouts):
    text = flat(handouts[key]["pdf"])
    assert f"Problem 1: {problems[key].title}" in text
    # Headings up to their first formula survive pdftotext verbatim.
    for part in PARTS[key]:
        plain = part.split("$")[0].strip()
        assert plain in text, plain
    for word in ("Verification", "Solution", "pass", "FAIL", "tolerance"):
        assert word not in text, word


def test_handouts_carry_the_given_data(handouts):
    lstm, lstm_cell = handouts["lstm"]["tex"], handouts["lstm_cell"]["tex"]
    # The gate values of the optional part, and the asked-for adjoints by name.
    assert "$f^{(t)} \\approx 1$, $i^{(t)} \\approx 0$, $o^{(t)} \\approx 0$" in lstm
    for name in "hcgofi":
        assert f"\\overline{{{name}^{{(t)}}}}" in lstm
    # LMU notation and the sizes; vanilla_rnn's T.
    assert "C_{t - 1}" in lstm_cell and "\\tilde{C}_{t}" in lstm_cell and "n_h" in lstm_cell
    assert "\\delta = o_{t - 1} \\odot \\tanh'\\left(C_{t - 1}\\right)" in lstm_cell
    vanilla = handouts["vanilla_rnn"]["tex"]
    assert "$W \\in \\mathbb{R}^{n \\times n}$ and $U \\in \\mathbb{R}^{n \\times d}$" in vanilla
    assert "Expand the double sum of (b) for $T = 3$" in flat(vanilla)
    assert "\\mathbb{R}^{D}" in handouts["momentum"]["tex"]


# -- what the handout must not show ---------------------------------------------------------
@pytest.mark.parametrize("key", ALL)
def test_handout_has_no_derived_result(key, problems, handouts):
    tex = handouts[key]["tex"]
    forms = solution_forms(key, problems[key]).items()
    shown = [name for name, form in forms if len(form) >= SHORTEST and form in tex]
    assert shown == []
    for word in ("Verification", "\\begin{longtable}", "pass", "FAIL", "Solution"):
        assert word not in tex, word


@pytest.mark.parametrize("key", ALL)
def test_question_data_holds_no_derived_result(key, problems):
    printer = KeyPrinter(pset_for(key).notation)
    data = problems[key].question_data()
    given = {printer.doprint(v) for v in leaves(data) if isinstance(v, sp.Basic)}
    forms = solution_forms(key, problems[key])
    leaked = [n for n, form in forms.items() if len(form) >= SHORTEST and form in given]
    assert leaked == []


@pytest.mark.parametrize("key", ALL)
def test_handout_has_no_line_of_the_solution(key, handouts):
    """No substantial line after the key's Solution heading is a line of the handout."""
    key_tex = handouts[key]["key"]
    handout = {line.strip() for line in handouts[key]["tex"].splitlines()}
    solution = [line.strip() for line in key_tex[key_tex.index(SOLUTION) :].splitlines()]
    # Short lines are markup any document has (\\end{align*}, \\[); the part headings are
    # shared on purpose.
    lines = [x for x in solution if len(x) >= 25 and not x.startswith("\\paragraph{")]
    assert len(lines) > 10
    assert [line for line in lines if line in handout] == []


# -- the answer key -------------------------------------------------------------------------
@pytest.mark.parametrize("key", KEYS)
def test_key_opens_with_the_question_then_solves_it(key, problems, handouts):
    key_tex, question = handouts[key]["key"], question_of(handouts[key]["tex"])
    assert key_tex.count(question) == 1
    assert key_tex.count("\\section*{Problem") == 1
    # The question comes first, the solution after it, with its evidence.
    assert key_tex.index(question) < key_tex.index(SOLUTION)
    after = key_tex[key_tex.index(SOLUTION) :]
    printer = KeyPrinter(pset_for(key).notation)
    assert printer.doprint(problems[key].results[MAIN[key]].expr) in after
    assert "Verification" in after and "\\begin{longtable}" in after
    # The solution keeps the part headings (so it reads on its own) and states each once.
    for part in PARTS[key]:
        assert after.count(f"\\paragraph{{{part}") == 1, part


@pytest.mark.parametrize(
    "set_id, parts",
    [
        (
            "cse891_hw3",
            [
                "1. Adjoints of the activations and gates.",
                "2. The update equation for the weight $\\overline{w_{xi}}$.",
                "3. (Extra credit) Why the gradient does not explode.",
            ],
        ),
        ("hw7", ["(a) Adjoints", "(b) The weight", "(c) Why the gradient neither explodes"]),
    ],
)
def test_set_labels_number_question_and_solution_alike(set_id, parts, problems):
    pset = dataclasses.replace(bundled()[set_id], problems=("lstm",))
    handout = render(pset, [problems["lstm"]], handout=True)
    key = render(pset, [problems["lstm"]])
    solution = key[key.index(SOLUTION) :]
    for part in parts:
        assert f"\\paragraph{{{part}" in handout, part
        assert f"\\paragraph{{{part}" in solution, part
    spelling = "w_{xi}" if set_id == "cse891_hw3" else "w_{ix}"
    assert f"for the weight ${spelling}$" in handout


# -- bundled sets, end to end ---------------------------------------------------------------
def _verdict_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.search(r"\b(pass|FAIL)\s*$", line)]


@pytest.mark.parametrize("set_id", ["csc421_hw3", "lmu_ex5"])
def test_bundled_handout_pdf_has_no_solution(set_id, problems, tmp_path: Path):
    assert main(["build", set_id, "--handout", "--out", str(tmp_path)]) == 0
    folder = tmp_path / set_id
    assert sorted(p.name for p in folder.iterdir()) == ["handout.pdf", "handout.tex"]
    text, tex = pdf_text(folder / "handout.pdf"), (folder / "handout.tex").read_text()
    pset = bundled()[set_id]
    for i, key in enumerate(pset.problems, start=1):
        assert f"Problem {i}:" in text
        if key in KEYS:
            forms = solution_forms(key, problems[key])
            assert [name for name, form in forms.items() if form in tex] == []
    assert "Verification" not in text and "tolerance" not in text
    assert _verdict_lines(text) == []


@pytest.fixture(scope="module")
def momentum_key_text(handouts, tmp_path_factory) -> str:
    dest = tmp_path_factory.mktemp("momentum_key") / "key.pdf"
    compile_pdf(handouts["momentum"]["key"], dest)
    return pdf_text(dest)


def test_momentum_handout_pdf_lacks_the_keys_numbers(problems, handouts, momentum_key_text):
    """Derived forms as pdftotext prints them: in the key's PDF, not in the handout's."""
    volume = problems["momentum"].results["volume_factor"].value
    mantissa, exponent = f"{volume['shrink']:.1e}".split("e")
    # det = beta^D reads "β D"; theta^(k) = theta^(k+1) - p^(k+1) reads as below (both seen
    # in a built key); the volume factor as printed by the sci filter.
    forms = ["β D", "θ(k+1) − p(k+1)", f"{mantissa} × 10−{abs(int(exponent))}"]
    handout = handouts["momentum"]["pdf"]
    for form in forms:
        assert form in momentum_key_text, form
        assert form not in handout, form
    assert "β" in handout and "θ(k+1)" in handout  # the symbols themselves are given
