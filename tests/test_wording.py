"""A set's own wording of its questions (``[questions.<problem>]``): the set's words replace
the bundled ones in the handout and in the key's restated question, optional parts can be
left out of both, the key's mathematics stays, and every text passes the TeX gate."""

from __future__ import annotations

import dataclasses
import re
import textwrap
from pathlib import Path

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from derive.cli import main
from derive.errors import InputError
from derive.problems import REGISTRY
from derive.render import texgate
from derive.render.document import render
from derive.render.forms import FORMS
from derive.render.pdf import compile_pdf, pdf_text
from derive.sets import MAX_TEXT, ProblemSet, parse_set, wording

HEAD = 'id = "worded"\ntitle = "Worded"\ncourse = "DL"\nsource = "mine"\n'

#: The set's words, by problem and field.
SET_WORDS = {
    "lstm": {
        "intro": "Our own gated cell, with scalar weights and no biases, runs these steps.",
        "parts.adjoints": r"Find $\bar{h}^{(t)}$ and "
                          r"$\frac{\partial \mathcal{L}}{\partial c^{(t)}}$ for each $t \le T$.",
    },
    "momentum": {
        "intro": r"Heavy-ball momentum on $(\theta, p) \in \mathbb{R}^{2D}$ takes the steps",
        "parts.det": r"Compute the determinant of $\partial s^{(k+1)} / \partial s^{(k)}$ "
                     "through two factors.",
    },
}
WORDED = HEAD + 'problems = ["lstm", "momentum"]\n' + "".join(
    f"[questions.{key}]\n" + "".join(f"{name} = '{text}'\n" for name, text in table.items())
    for key, table in SET_WORDS.items()
)
#: The bundled sentences the set's words replace.
BUNDLED_WORDS = (
    "Consider a univariate LSTM",
    "Write down the backpropagation-through-time equations for",
    "Gradient descent with momentum keeps a parameter vector",
    "Hint: write the Jacobian as a product of two",
)


def _documents(pset: ProblemSet, problems: dict) -> dict[str, str]:
    made = [problems[key] for key in pset.problems]
    out = {"handout": render(pset, made, handout=True)}
    for name, form in FORMS.items():
        out[name] = render(dataclasses.replace(pset, form=form), made)
    return out


def test_the_sets_words_replace_the_bundled_ones(problems) -> None:
    pset = parse_set(WORDED, "worded.toml")
    plain = _documents(parse_set(HEAD + 'problems = ["lstm", "momentum"]\n', "p.toml"), problems)
    for name, doc in _documents(pset, problems).items():
        restates = name != "compact"  # a compact key gives headings and solutions alone
        for words in [text for table in SET_WORDS.values() for text in table.values()]:
            assert (words in doc) == restates, (name, words)
        for words in BUNDLED_WORDS:
            assert words not in doc, (name, words)
            assert (words in plain[name]) == restates, (name, words)
        if name in ("full", "student"):  # each solution is the bundled key's, word for word
            solutions = [part.split(r"\section*{", 1)[0]
                         for part in doc.split(r"\subsection*{Solution}")[1:]]
            assert len(solutions) == 2 and all(s in plain[name] for s in solutions)
            assert r"\overline{h^{(t)}} &=" in solutions[0] and r"\beta^{D}" in solutions[1]


def test_the_models_equations_and_given_numbers_stay(problems) -> None:
    handout = render(parse_set(WORDED, "worded.toml"), [problems["lstm"], problems["momentum"]],
                     handout=True)
    assert r"c^{(t)} &= f^{(t)} c^{(t - 1)} + i^{(t)} g^{(t)}" in handout  # the cell as given
    assert r"\beta = 0.9" in handout and "D = 1000" in handout  # the volume question's numbers


def test_omit_drops_an_optional_part_from_handout_and_key(problems) -> None:
    toml = HEAD + 'problems = ["lstm", "momentum"]\n[questions.lstm]\nomit = ["optional"]\n' \
        '[questions.momentum]\nomit = ["volume"]\n'
    docs = _documents(parse_set(toml, "o.toml"), problems)
    plain = _documents(parse_set(HEAD + 'problems = ["lstm", "momentum"]\n', "p.toml"), problems)
    gone = ("Why the gradient does not explode", "By what factor does one step scale volume",
            "one step shrinks\nvolume by a factor")
    for name, doc in docs.items():
        for words in gone:
            assert words not in doc, (name, words)
        assert "Why the gradient does not explode" in plain[name], name
    key = docs["full"]
    assert r"\overline{h^{(t)}} &=" in key and r"\beta^{D}" in key  # the other parts stay


def test_omit_drops_the_extra_credit_comparison(problems) -> None:
    toml = HEAD + 'problems = ["pixelcnn_mdrnn"]\n'
    omitted = parse_set(toml + '[questions.pixelcnn_mdrnn]\nomit = ["compare"]\n', "o.toml")
    plain = parse_set(toml, "p.toml")
    made = [problems["pixelcnn_mdrnn"]]
    for handout in (True, False):
        doc, bundled = (render(p, made, handout=handout) for p in (omitted, plain))
        for words in ("(extra credit)", "In short: PixelCNN trains fast"):
            assert words not in doc and (words in bundled or handout)
        assert "2. MDRNN" in doc  # the parts before it stay
        assert "(extra credit)" in bundled


def test_an_empty_wording_changes_nothing(problems) -> None:
    toml = HEAD + 'problems = ["momentum"]\n'
    empty = parse_set(toml + "[questions.momentum]\n", "e.toml")
    assert empty.questions["momentum"] == wording.BUNDLED
    assert _documents(empty, problems) == _documents(parse_set(toml, "p.toml"), problems)


#: Parts a problem prints only with a parameter (a recurrent cell's worked example).
_CONDITIONAL = {"example"}
_PLACEHOLDER = r"Zqx said $\alpha_{1}$ here."


@pytest.mark.parametrize(
    "key, part",
    [(k, p) for k, cls in REGISTRY.items()
     for p in ("intro", *wording.parts(cls)) if p not in _CONDITIONAL],
)
def test_every_question_template_prints_the_sets_words(key: str, part: str, problems) -> None:
    where = "parts." + part if part != "intro" else "intro"
    worded = parse_set(HEAD + f'problems = ["{key}"]\n[questions.{key}]\n{where} = '
                       f'"{_PLACEHOLDER.replace(chr(92), chr(92) * 2)}"\n', "w.toml")
    plain = parse_set(HEAD + f'problems = ["{key}"]\n', "p.toml")
    doc = render(worded, [problems[key]], handout=True)
    assert doc.count(_PLACEHOLDER) == 1
    assert doc != render(plain, [problems[key]], handout=True)


@pytest.mark.parametrize(
    "table, field, named",
    [
        ("[questions.nope]\nintro = 'x'", "questions.nope", "allowed are tables named lstm"),
        ("[questions.lstm]\nparts.map = 'x'", "questions.lstm.parts.map",
         "not a part of lstm; allowed are adjoints, weight, optional, example"),
        ("[questions.lstm]\nomit = ['weight']", "questions.lstm.omit[0]",
         "'weight' is not an optional part of lstm; allowed are optional"),
        ("[questions.momentum]\nomit = ['det']", "questions.momentum.omit[0]",
         "allowed are volume"),
        ("[questions.lstm]\nwords = 'x'", "questions.lstm.words",
         "unknown key; allowed are intro, parts, omit"),
        ("[questions.lstm]\nparts.weight = '$\\input{x}$'", "questions.lstm.parts.weight",
         "\\input is not an allowed command"),
        ("[questions.lstm]\nintro = 'cost $5 a step'", "questions.lstm.intro",
         "has a $ that no $ closes"),
        ("[questions.lstm]\nintro = '$x^$'", "questions.lstm.intro", "^ needs an argument"),
        ("[questions.lstm]\nintro = '$\\left( x$'", "questions.lstm.intro",
         "\\left without \\right"),
        ("[questions.lstm]\nintro = '$^^5cinput$'", "questions.lstm.intro", "^^"),
        ("[questions.lstm]\nintro = '$a % b$'", "questions.lstm.intro", "'%' is not allowed"),
        ("[questions.lstm]\nintro = '$$'", "questions.lstm.intro", "it is empty"),
        ("[questions.lstm]\nintro = '$x \\$ more'", "questions.lstm.intro",
         "a backslash must start a command"),
        ('[questions.lstm]\nintro = "two\\nlines"', "questions.lstm.intro", "a line break"),
        (f"[questions.lstm]\nintro = '{'x' * (MAX_TEXT + 1)}'", "questions.lstm.intro",
         f"at most {MAX_TEXT} characters"),
        ("[questions.lstm]\nintro = ''", "questions.lstm.intro", "a non-empty string"),
        ("[questions.lstm]\nomit = ['optional']\nparts.optional = 'x'",
         "questions.lstm.parts.optional", "the part is omitted"),
        ("[questions.lstm]\nparts = 'x'", "questions.lstm.parts", "expected a table"),
        ("[questions.lstm]\nparts.example = 'x'", "questions.lstm.parts.example",
         "only with params.lstm.example"),
        ("[points.lstm]\noptional = 2\n[questions.lstm]\nomit = ['optional']",
         "points.lstm.optional", "the set omits this part (questions.lstm.omit)"),
        ("[labels.momentum]\ndet = '(b)'\n[questions.momentum]\nomit = ['volume']\n"
         "[labels.lstm]\noptional = '(c)'\n[questions.lstm]\nomit = ['optional']",
         "labels.lstm.optional", "drop one of the two"),
    ],
)
def test_bad_wording_is_refused_in_one_line(table: str, field: str, named: str) -> None:
    with pytest.raises(InputError) as err:
        parse_set(HEAD + 'problems = ["lstm", "momentum"]\n' + table + "\n", "w.toml")
    message = str(err.value)
    assert message.isprintable() and message.startswith(f"w.toml: {field}: "), message
    assert named in message


def test_bad_wording_exits_2_through_the_command_line(tmp_path: Path, capsys) -> None:
    path = tmp_path / "w.toml"
    path.write_text(HEAD + 'problems = ["lstm"]\n[questions.lstm]\n'
                    'parts.weight = "$\\\\input{x}$"\n', encoding="utf-8")
    assert main(["build", str(path), "--out", str(tmp_path / "out"), "--format", "tex"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "questions.lstm.parts.weight" in err and "\\input" in err
    assert not (tmp_path / "out" / "worded").exists()


#: Pieces of TeX an attacker or a typo might write, and pieces of well-formed formulas.
_EVIL = [*"\\{}^_%#&~'()[]| \naxX1", "\\left", "\\right", "\\frac", "\\input", "^^5c",
         "\\alpha", "\\sqrt", "\\mathbb"]
_GOOD = ["x", "^{2}", "_{t}", "\\frac{a}{b}", "\\left(", "\\right)", "\\sum_{t}", "+", "'"]
_PIECES = st.lists(st.sampled_from(_EVIL + _GOOD), max_size=12).map("".join)
_WORDING = st.lists(st.tuples(_PIECES, _PIECES), max_size=3).map(
    lambda pairs: "".join(f"{words}${formula}$" for words, formula in pairs)
) | st.lists(st.sampled_from([*_EVIL, "$"]), max_size=30).map("".join)


@given(value=_WORDING)
@settings(max_examples=400, deadline=None)
def test_gated_wording_never_reaches_tex_as_other_commands(value: str) -> None:
    try:
        latex = texgate.wording(value, "w.toml: questions.lstm.intro", MAX_TEXT)
    except InputError as exc:
        event("refused")
        assert str(exc).isprintable() and str(exc).startswith("w.toml: questions.lstm.intro: ")
        return
    event("accepted with a formula" if "$" in latex else "accepted")
    toks, reduced = texgate.read("x" + latex)
    assert latex.isascii() and reduced == 0 and texgate.balanced(toks)
    allowed = texgate.text_commands() | set(texgate.FORMULA_COMMANDS) | {
        "left", "right", "langle", "rangle", "lfloor", "rfloor", "lceil", "rceil"}
    assert set(texgate.commands(toks)) <= allowed
    assert latex.count("$") % 2 == 0


#: Formulas the gate accepts that LaTeX might still trip on (primes with scripts, sized and
#: empty delimiters, unbraced arguments, control symbols).
_TRICKY = (
    r"$x'^2 + x_1' + {}^{2}y$ and $\left. \frac12 \right|_{t}$ and $\mathbb R^{n}$",
    r"$\bigl( a \bigr) \sqrt x \hat{\mathbf{x}}' \|x\| \{a\} a \, b \; c \! d \: e$",
    r"$\sum_{t=1}^{T} \left( \cdot \right)$ and $\lVert \nabla J \rVert \le \infty$",
)


def test_a_worded_handout_typesets(tmp_path: Path, problems) -> None:
    lstm = "".join(f"parts.{part} = '''{text}'''\n"
                   for part, text in zip(("weight", "optional"), _TRICKY, strict=False))
    toml = WORDED.replace("[questions.momentum]", f"{lstm}[questions.momentum]")
    pset = parse_set(f"{toml}parts.inverse = '''{_TRICKY[2]}'''\n", "worded.toml")
    dest = tmp_path / "handout.pdf"
    compile_pdf(render(pset, [problems["lstm"], problems["momentum"]], handout=True), dest)
    text = " ".join(pdf_text(dest).split())
    assert "Our own gated cell, with scalar weights and no biases, runs these steps." in text
    assert "Heavy-ball momentum on" in text and "Consider a univariate" not in text


def test_the_readmes_wording_block_works_as_written(problems) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"```toml\n(.*?)```", readme, re.S) if "[questions." in b]
    pset = parse_set(HEAD + 'problems = ["lstm"]\n' + textwrap.dedent(block), "readme.toml")
    handout = render(pset, [problems["lstm"]], handout=True)
    assert r"Derive $\bar{h}^{(t)}$ and $\bar{c}^{(t)}$ in scalar form." in handout
    assert "Why the gradient does not explode" not in handout


def test_a_worked_example_takes_the_sets_words() -> None:
    weights = ", ".join(f"w_{g}{s} = 0.5" for g in "ifog" for s in "xh")
    toml = (HEAD + 'problems = ["lstm"]\n[params.lstm.example]\nx = [1, -0.5]\nh0 = 0\nc0 = 0\n'
            f"dL_dh = [1, 2]\nweights = {{ {weights} }}\n"
            "[questions.lstm]\nparts.example = 'Find every gradient to $4$ digits.'\n")
    pset = parse_set(toml, "ex.toml")
    handout = render(pset, [pset.make_problem("lstm")], handout=True)
    assert "Find every gradient to $4$ digits." in handout
    assert "Six significant digits are enough." not in handout
    assert r"\begin{tabular}" in handout  # the example's numbers stay
