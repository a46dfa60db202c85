"""Rendering: every template renders, notation is honoured, text and symbols are safe."""

from __future__ import annotations

import jinja2
import pytest
import sympy as sp

from derive.engine.cell import bar, timed
from derive.errors import InputError
from derive.render.document import environment, escape, render
from derive.render.latex import Notation, tex
from derive.render.numbers import sci
from derive.render.texgate import spelling
from derive.sets import ProblemSet, bundled, parse_set


def test_every_problem_template_renders(problem_key, problems):
    pset = ProblemSet("one", "One", "Course", "test", (problem_key,), Notation())
    out = render(pset, [problems[problem_key]])
    assert problems[problem_key].title.split()[0] in out
    assert out.count("\\section*{Problem 1") == 1  # the question holds the one heading
    assert "\\begin{longtable}" in out  # the evidence table is there
    assert "FAIL" not in out


@pytest.fixture(scope="module")
def every_key_text(problems, tmp_path_factory) -> str:
    """One answer key holding every registered problem, compiled once (one LaTeX run
    instead of one per problem), as the PDF's text."""
    from derive.render.pdf import compile_pdf, pdf_text

    pset = ProblemSet("all", "All", "Course", "test", tuple(problems), Notation())
    dest = tmp_path_factory.mktemp("every_key") / "key.pdf"
    compile_pdf(render(pset, list(problems.values())), dest)
    return pdf_text(dest)


@pytest.mark.pdf
def test_every_problem_key_compiles_with_passing_evidence(problem_key, problems, every_key_text):
    assert problems[problem_key].title in " ".join(every_key_text.split())
    assert "pass" in every_key_text and "FAIL" not in every_key_text


@pytest.mark.parametrize("set_id", list(bundled()))
def test_every_bundled_set_renders_its_problems(set_id, problems):
    pset = bundled()[set_id]
    # A bundled problem, or a model the set defines (dl_foundations' networks).
    source = render(pset, [problems.get(k) or pset.make_problem(k) for k in pset.problems])
    assert source.startswith("\\documentclass")
    # One heading per problem (a set may title it as its handout does), and one for what
    # the set leaves out.
    legend = "\\section*{Reading the evidence}" in source  # once per key, after the problems
    assert source.count("\\section*{") == len(pset.problems) + bool(pset.out_of_scope) + legend


def test_undefined_template_variable_fails_the_build():
    env = environment(Notation())
    with pytest.raises(jinja2.UndefinedError):
        env.from_string("((( missing )))").render()


def test_set_notation_reaches_the_printer():
    cse = Notation({"w_ix": "w_{xi}"}, time="subscript")
    assert tex(sp.Symbol("w_ix"), cse) == "w_{xi}"
    assert tex(bar("h", 1), cse) == "\\overline{h_{t + 1}}"
    assert tex(timed("c", -1), Notation()) == "c^{(t - 1)}"


def test_sum_of_adjoint_terms_prints_adjoint_first(problems):
    out = tex(problems["lstm"].results["w_ix_bar"].expr, Notation({"w_ix": "w_{ix}"}))
    assert out.startswith("\\sum_{t=1}^{T} \\overline{i^{(t)}} i^{(t)}")


@pytest.mark.parametrize(
    "text",
    ["\\input{/etc/passwd}", "\\write18{ls}", "w_{ix", "w}_{ix}{", "\\alphainput", "a\\\\b", "$x$"],
)
def test_unsafe_symbol_spellings_are_rejected(text):
    with pytest.raises(InputError, match="not an allowed symbol spelling"):
        spelling(text, "notation.symbols.w_ix")


@pytest.mark.parametrize("text", ["w_{xi}", "\\alpha_{1}", "C_t", "\\tilde{h}", "W^{(2)}"])
def test_safe_symbol_spellings_are_accepted(text):
    assert spelling(text, "x") == text


def test_free_text_is_escaped_to_print_verbatim():
    assert escape("50% of $x_1 & {y}") == r"50\% of \$x\_1 \& \{y\}"
    assert escape("\\input{a}") == r"\textbackslash{}input\{a\}"


def test_sci_formats_for_tables():
    assert sci(1.23e-12) == r"1.2\times 10^{-12}"
    assert sci(0.0) == "0"
    assert sci(float("inf")) == r"\infty"
    assert sci(1743.2) == "1743" and sci(999.0) == "999" and sci(12345.0) == r"1.2\times 10^{4}"


def test_bad_notation_in_a_set_file_is_rejected():
    text = 'id="s"\ntitle="t"\ncourse="c"\nsource="s"\nproblems=["lstm"]\n'
    text += '[notation.symbols]\nw_ix = "\\\\input{x}"\n'
    with pytest.raises(InputError, match=r"notation.symbols.w_ix"):
        parse_set(text, "my.toml")


SET_HEAD = 'title="t"\ncourse="c"\nsource="s"\nproblems=["lstm"]\n'


@pytest.mark.parametrize("set_id", ["../../escaped", "a/b", "", "Upper", "x" * 70])
def test_set_id_cannot_leave_the_output_folder(set_id):
    with pytest.raises(InputError, match=r"id: .*(is not allowed|expected a non-empty string)"):
        parse_set(f'id="{set_id}"\n' + SET_HEAD, "evil.toml")


def test_notation_must_be_a_table():
    with pytest.raises(InputError, match="notation: expected a table"):
        parse_set('id="s"\nnotation="oops"\n' + SET_HEAD, "my.toml")


def test_log_plot_places_points_on_a_log_axis():
    from derive.render.plot import log_plot

    plot = log_plot({"a": [(0, 1.0), (10, 100.0)], "b": [(5, 10.0)]}, "x", "y", 100, 60)
    assert plot.series[0][2] == ["(0,0)", "(100,60)"]  # 10^0 at the bottom, 10^2 at the top
    assert plot.series[1][2] == ["(50,30)"]  # 10^1 halfway up
    assert [label for _, _, label in plot.yticks] == ["$10^{0}$", "$10^{1}$", "$10^{2}$"]


def test_terminating_rationals_print_as_exact_decimals():
    from fractions import Fraction

    from derive.problems.eigen_power import EigenPower

    # W^30 has 30-digit decimals: Decimal's default 28-digit precision would round them.
    for entry in EigenPower().results["W_power"].expr:
        assert Fraction(tex(entry)) == Fraction(str(entry))
    assert tex(sp.Rational(-3, 8)) == "-0.375"
    assert tex(sp.Rational(1, 3)) == "\\frac{1}{3}"


@pytest.mark.parametrize(
    "labels, message",
    [
        ("[labels.lstm]\nweight = 3\n", r"labels.lstm.weight: allowed are text values"),
        ('[labels.lstm]\nsummary = "x"\n', r"labels.lstm.summary: allowed are text values"),
        ('[labels.gru]\nweight = "x"\n', r"labels.gru: not a problem of this set"),
    ],
)
def test_bad_labels_are_rejected(labels, message):
    with pytest.raises(InputError, match=message):
        parse_set('id="s"\n' + SET_HEAD + labels, "my.toml")


def test_set_labels_rename_headings(problems):
    pset = bundled()["cse891_hw3"]
    # A bundled problem, or a model the set defines (dl_foundations' networks).
    source = render(pset, [problems.get(k) or pset.make_problem(k) for k in pset.problems])
    assert "2. The update equation for the weight $\\overline{w_{xi}}$" in source
