"""The gate for text that reaches TeX: its reader, its rules, and the documents it guards.

Three layers: the reader against TeX's own rules (``^^`` forms, control words, comments);
each field's defects through the command line (exit 2, one line naming the field, existing
outputs untouched); and a Hypothesis property over every text field: a set file either is
refused with one line, or its document, read by the same reader, holds no control sequence
that the document with a harmless placeholder in that field lacks, beyond the gate's own.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from derive.cli import main
from derive.errors import InputError, LatexError
from derive.problems import REGISTRY
from derive.render import texgate
from derive.render.document import environment, escape, render, render_page, render_problem
from derive.render.latex import Notation
from derive.render.pdf import compile_pdf, pdf_text
from derive.render.texgate import (
    ACTIVE,
    BEGIN,
    CS,
    END,
    INVALID,
    LETTER,
    OTHER,
    SPACE,
    SPELLING_COMMANDS,
    Token,
    commands,
    read,
    spelling,
    text_commands,
    tokens,
)
from derive.sets import MAX_TEXT, ProblemSet, bundled, parse_set
from derive.variants import check_students

OLD = b"% an earlier answer key that a failed build must not touch\n"


# -- the reader ---------------------------------------------------------------------------------
def cs(name: str) -> Token:
    return Token(CS, name)


def chars(text: str, cat: int = LETTER) -> list[Token]:
    return [Token(cat, c) for c in text]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        # ^^ and two lowercase hex digits is that character code: a backslash, a brace, a slash.
        ("w^^5cmbox{X}", [*chars("w"), cs("mbox"), Token(BEGIN, "{"), *chars("X"), Token(END, "}")]),  # noqa: E501
        ("^^7b^^7d", [Token(BEGIN, "{"), Token(END, "}")]),
        ("^^2f", [Token(OTHER, "/")]),
        # ^^ before a character below 64 adds 64, otherwise subtracts 64: ^^? is DEL (invalid).
        ("^^?", [Token(INVALID, "\x7f")]),
        ("^^\\", [Token(OTHER, "\x1c")]),
        # ^^M is a carriage return: the line ends there, the rest is never read.
        ("a^^Mb", [*chars("a"), Token(SPACE, " ")]),
        # Uppercase hex digits are not hex to TeX: ^^5C is "5" shifted, then "C".
        ("^^5C", chars("uC")),
        # A reduced ^ can start another ^^ form with what follows it.
        ("^^5e^41", [*chars("A")]),
        # ^^ forms inside a control word are reduced and the name scanned again.
        ("\\inp^^75t x", [cs("input"), *chars("x")]),
        ("\\^^5c", [cs("\\")]),
        # Control words end at a non-letter and eat the spaces after them; symbols do not.
        ("\\alpha  x", [cs("alpha"), *chars("x")]),
        ("\\alphax", [cs("alphax")]),
        ("\\, x", [cs(","), Token(SPACE, " "), *chars("x")]),
        # % ends the line (and its end-of-line space); an empty line is \par.
        ("a%\\input{x}\nb", [*chars("a"), *chars("b")]),
        ("a\n\nb", [*chars("a"), Token(SPACE, " "), cs("par"), *chars("b")]),
        ("~\u00e9", [Token(ACTIVE, "~"), Token(ACTIVE, "\u00e9")]),
    ],
)
def test_reader_follows_tex(source: str, expected: list[Token]) -> None:
    got = tokens(source)
    if got and got[-1] == Token(SPACE, " ") and expected[-1:] != [Token(SPACE, " ")]:
        got = got[:-1]  # the space TeX reads at the end of the line
    assert got == expected


def test_reader_counts_the_reductions() -> None:
    assert read("^^5cdef")[1] == 1
    assert read("^^5e^41")[1] == 2
    assert read("\\textasciicircum{} ^ x^2")[1] == 0


# -- symbol spellings ---------------------------------------------------------------------------
#: Spellings the bundled sets and the tests use, and others that LaTeX sets (see the compile
#: test below, which puts these through every place the printer attaches something).
GOOD_SPELLINGS = [
    "w_{xi}", "b_{i}", "C", "\\tilde{C}", "\\alpha_{1}", "C_t", "\\tilde{h}", "W^{(2)}",
    "x_1'", "x'^2_a", "\\tilde{C}_1", "\\mathbf x_{\\alpha}'", "{}^{a}b", "h''",
    "\\hat\\Omega^{k}_{j}", "(a)_1", "\\vec{v} + 1", "\\breve{\\mathrm{g}}", "c'", "o^{x}_{y}",
    "f_{\\dot{a}}", "i^{\\ddot\\xi}", "\\check{b}_{\\bar z}", "w_1'", "w^{a'}", "{w}_{1}",
    "g'^{x}", "1", "y , z", "\\tilde{C}^{a}", "{\\tilde C}_1",
]  # fmt: skip


@pytest.mark.parametrize("text", GOOD_SPELLINGS)
def test_good_spellings_pass(text: str) -> None:
    assert spelling(text, "notation.symbols.w_ix") == text


def test_bundled_spellings_pass() -> None:
    for pset in bundled().values():
        for spelled in pset.notation.symbols.values():
            assert spelling(spelled, "x") == spelled


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("w^^5cmbox{INJECTED}", r"\^\^5c is \\"),
        ("^^5cdef^^5cx{^^5cx}^^5cx", r"\^\^5c is \\"),
        ("^^5cinput{^^2fetc^^2fpasswd}", r"\^\^5c is \\"),
        ("w^^7b", r"\^\^"),
        ("\\input{passwd}", r"\\input is not an allowed command"),
        ("\\input{/etc/passwd}", "'/' is not allowed"),
        ("\\write18{ls}", r"\\write is not an allowed command"),
        ("\\alphainput", r"\\alphainput is not an allowed command"),
        ("a\\\\b", r"\\\\ is not an allowed command"),
        ("w" * 65, "65 characters"),
        ("w" * 300_000, "300000 characters"),
        ("$x$", "'\\$' is not allowed"),
        ("a&b", "'&' is not allowed"),
        ("#1", "'#' is not allowed"),
        ("a~b", "'~' is not allowed"),
        ("a%b", "'%' is not allowed"),
        ("w_{ix", "unbalanced braces"),
        ("w}_{ix}{", "unbalanced braces"),
        ("x^2^3", "double superscript"),
        ("x^2'", "double superscript"),
        ("x' '", "double superscript"),
        ("x_1_2", "double subscript"),
        ("x'_1", "subscript after a prime"),
        ("x^", r"\^ needs an argument"),
        ("x_{a}^", r"\^ needs an argument"),
        ("x^'", "needs one character"),
        ("\\tilde", r"\\tilde needs an argument"),
        ("^2", "needs a symbol before it"),
        ("'x", "needs a symbol before it"),
        ("", "no symbol"),
        ("  ", "no symbol"),
        ("w\u00e9", "U\\+00E9"),
        ("w\nx", "U\\+000A"),
        ("w\tx", "U\\+0009"),
    ],
)
def test_bad_spellings_are_refused_with_the_reason(text: str, why: str) -> None:
    with pytest.raises(InputError) as err:
        spelling(text, "mine.toml: notation.symbols.w_ix")
    message = str(err.value)
    assert message.startswith("mine.toml: notation.symbols.w_ix: ") and "\n" not in message
    assert "is not an allowed symbol spelling" in message and "allowed are" in message
    assert re.search(why, message), message
    assert len(message) < 700  # a 300k spelling is shown shortened


# -- free text ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "latex"),
    [
        ("50% of $x_1 & {y}", r"50\% of \$x\_1 \& \{y\}"),
        ("\\input{a}", r"\textbackslash{}input\{a\}"),
        ("^^5c ~|", r"\textasciicircum{}\textasciicircum{}5c \textasciitilde{}\textbar{}"),
        ("<>", r"\textless{}\textgreater{}"),
        ("\u039b-\u03bb", r"\ensuremath{\Lambda}-\ensuremath{\lambda}"),
        ("Caf\u00e9 na\u00efve", r"Caf\'{e} na\"{\i}ve"),
        ("\u0141\u00f3d\u017a Stra\u00dfe", r"\L{}\'{o}d\'{z} Stra\ss{}e"),
        ("\u00c5ngstr\u00f6m \u0159", r"\AA{}ngstr\"{o}m \v{r}"),
        ("\u201cq\u201d", r"\textquotedblleft{}q\textquotedblright{}"),
        ("\u2013 \u2014 \u2026", r"\textendash{} \textemdash{} \ldots{}"),
        ("\u0391\u03a9", r"A\ensuremath{\Omega}"),
    ],
)  # fmt: skip
def test_free_text_prints_verbatim_through_the_one_table(value: str, latex: str) -> None:
    assert texgate.text(value, "title", MAX_TEXT) == value
    assert escape(value) == latex
    assert latex.isascii()


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("\u4e2d\u6587", "U+4E2D (CJK UNIFIED IDEOGRAPH-4E2D)"),
        ("hi \U0001f600", "U+1F600 (GRINNING FACE)"),
        ("a\x7fb", "U+007F (a control character)"),
        ("a\u2028b", "U+2028 (LINE SEPARATOR)"),
        ("a\nb", "U+000A (a line break)"),
        ("a\tb", "U+0009 (a control character)"),
        ("\ufeffTitle", "U+FEFF (ZERO WIDTH NO-BREAK SPACE)"),
        ("soft\u00adhyphen", "U+00AD (SOFT HYPHEN)"),
        ("\u0105", "U+0105 (LATIN SMALL LETTER A WITH OGONEK)"),  # OT1 has no ogonek
        ("\u01d6", "U+01D6"),  # two accents on one letter
        ("x\ue000", "U+E000 (a private-use character)"),
    ],
)
def test_free_text_the_fonts_cannot_set_is_refused(value: str, named: str) -> None:
    with pytest.raises(InputError) as err:
        texgate.text(value, "mine.toml: title", MAX_TEXT)
    message = str(err.value)
    assert message.startswith("mine.toml: title: expected one line of text of at most 300")
    assert named in message and "\n" not in message
    with pytest.raises(InputError):
        escape(value)  # the render-time filter refuses the same characters


def test_free_text_length_is_bounded() -> None:
    assert texgate.text("x" * MAX_TEXT, "title", MAX_TEXT)
    with pytest.raises(InputError, match=r"title: .* at most 300 characters .*got 301 characters"):
        texgate.text("x" * (MAX_TEXT + 1), "title", MAX_TEXT)


def test_table_and_gate_agree_on_every_character() -> None:
    # One table: a character passes the gate exactly when escape() can set it, and what
    # escape() emits is ASCII, balanced, free of ^^ forms and made of the gate's commands.
    # (Up to U+2FFFF: the table's blocks end at U+2270.)
    allowed = text_commands()
    for code in range(0x30000):
        ch = chr(code)
        try:
            texgate.text(ch, "t", 1)
        except InputError:
            assert texgate.latex_char(ch) is None, ch
            continue
        assert unicodedata.category(ch) not in {"Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn"}, ch
        latex = escape(ch)
        toks, reduced = read("x" + latex)
        assert latex.isascii() and reduced == 0 and texgate.balanced(toks), ch
        assert set(texgate.commands(toks)) <= allowed, ch


# -- proven safe: LaTeX sets every character and every accepted spelling ------------------------
def _fatal_lost_chars(source: str) -> str:
    # With \tracinglostchars=3 (pdfTeX 1.40.22+), a character missing from a font is an
    # error instead of a line in the log, so compile_pdf fails on it.
    head, rest = source.split("\n", 1)
    assert head.startswith("\\documentclass")
    return head + "\n\\tracinglostchars=3\n" + rest


def test_lost_characters_fail_the_build_when_traced(tmp_path: Path) -> None:
    # The control for the test below: OT1's cmr10 has no character 200.
    source = "\\documentclass{article}\n\\begin{document}\nx\\symbol{200}\n\\end{document}\n"
    compile_pdf(source, tmp_path / "lost.pdf")  # untraced, LaTeX only logs the loss
    with pytest.raises(LatexError, match="Missing character"):
        compile_pdf(_fatal_lost_chars(source), tmp_path / "lost.pdf")


def test_every_mapped_character_typesets(tmp_path: Path) -> None:
    chars = [chr(c) for c in range(33, 127)] + texgate.mapped_characters()
    # Spaced, so that lines break and the text stays on the page for pdftotext.
    chunks = [" ".join(chars[i : i + 140]) for i in range(0, len(chars), 140)]
    assert len(chunks) == 4 and all(texgate.text(c, "t", MAX_TEXT) for c in chunks)
    # Each chunk in a bold heading (title, labels) and in plain text (out_of_scope).
    labels = {"mdrnn": dict(zip(("weights", "steps", "compare"), chunks[1:], strict=True))}
    toml = _set_toml(title=chunks[0], course=chunks[1], out_of_scope=chunks, labels=labels)
    pset = parse_set(toml, "all.toml")
    source = render(pset, [_problem("mdrnn")], version="v01")
    assert source.isascii()
    compile_pdf(_fatal_lost_chars(source), tmp_path / "all.pdf")
    text = unicodedata.normalize("NFC", pdf_text(tmp_path / "all.pdf"))
    assert "\u039b" in text and "\u00e9" in text and "\u2014" in text


@pytest.mark.parametrize("time", ["superscript", "subscript"])
def test_accepted_spellings_typeset_wherever_the_printer_puts_them(tmp_path, time) -> None:
    # Every symbol of the LSTM spelled with scripts, primes and accents, so that steps,
    # transposes, powers and adjoint bars attach to spellings that already carry scripts.
    names = sorted(REGISTRY["lstm"].symbols())
    symbols = {n: GOOD_SPELLINGS[(i * 5) % len(GOOD_SPELLINGS)] for i, n in enumerate(names)}
    pset = ProblemSet("k", "K", "C", "s", ("lstm",), Notation(symbols, time=time))
    compile_pdf(render(pset, [_problem("lstm")]), tmp_path / "key.pdf")


def test_lstm_cell_key_typesets_in_superscript_notation(tmp_path: Path) -> None:
    # The template squared q.g as g^{(t)}^{\odot 2}: a double superscript in h^{(t)} notation.
    pset = ProblemSet("k", "K", "C", "s", ("lstm_cell",), Notation(time="superscript"))
    compile_pdf(render(pset, [_problem("lstm_cell")]), tmp_path / "key.pdf")


# -- which names a set may spell ----------------------------------------------------------------
#: Names the printer meets that no set may spell: the step index (step marks print it with
#: plain sympy.latex, so a spelling could not reach them) and the printer's own placeholder.
_UNSPELLED = {"t", "__arg__"}


class _Recording(dict):
    """A notation's symbol table that notes every name the printer looks up."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def get(self, key, default=None):
        self.seen.add(key)
        return super().get(key, default)


def _printed_names(problem, original: dict | None = None) -> set[str]:
    spelled = _Recording()
    pset = ProblemSet("k", "K", "C", "s", (problem.key,), Notation(symbols=spelled),
                      original={problem.key: original or {}})
    render(pset, [problem])
    render(pset, [problem], handout=True)
    return spelled.seen - _UNSPELLED


def test_problem_symbols_are_the_names_its_printer_spells(problem_key: str) -> None:
    # Problem.symbols() is what a set file's notation keys are checked against, without
    # deriving anything; it must be exactly what rendering the key and handout looks up,
    # with the default parameters and with every bundled set's, and with the notes on a
    # source that a bundled set declares.
    printed = _printed_names(_problem(problem_key))
    for pset in bundled().values():
        if problem_key in pset.problems and pset.params.get(problem_key):
            printed |= _printed_names(pset.make_problem(problem_key))
        if problem_key in pset.problems and pset.original.get(problem_key):
            printed |= _printed_names(_problem(problem_key), pset.original[problem_key])
    assert printed == REGISTRY[problem_key].symbols()


def test_a_spelling_reaches_a_symbol_with_assumptions() -> None:
    # mdrnn's D is Symbol("D", integer=True, positive=True): spelled by name, not by identity.
    pset = ProblemSet("k", "K", "C", "s", ("mdrnn",), Notation({"D": "d_{\\mathrm{in}}"}))
    assert "d_{\\mathrm{in}}" in render(pset, [_problem("mdrnn")])


# -- the defects, through the command line ------------------------------------------------------
def _set_toml(
    problems: tuple[str, ...] = ("mdrnn",),
    *,
    symbols: dict[str, str] | None = None,
    time: str = "superscript",
    labels: dict[str, dict[str, str]] | None = None,
    out_of_scope: list[str] | str | None = None,
    **fields: str,
) -> str:
    """A set file with the given fields (the rest plain), as TOML."""
    given = {"id": "mine", "title": "Homework 2", "course": "DL 101", "source": "mine"} | fields
    lines = [f"{k} = {_toml_string(v)}" for k, v in given.items()]
    lines.append("problems = [%s]" % ", ".join(_toml_string(p) for p in problems))
    if out_of_scope is not None:
        items = [out_of_scope] if isinstance(out_of_scope, str) else out_of_scope
        lines.append("out_of_scope = [%s]" % ", ".join(map(_toml_string, items)))
    lines.append(f"[notation]\ntime = {_toml_string(time)}\n[notation.symbols]")
    lines += [f"{_toml_string(k)} = {_toml_string(v)}" for k, v in (symbols or {}).items()]
    for problem, table in (labels or {}).items():
        lines.append(f"[labels.{problem}]")
        lines += [f"{k} = {_toml_string(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def _toml_string(value: str) -> str:
    """A TOML basic string holding ``value`` exactly (every non-ASCII character escaped)."""
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            out.append(f"\\U{ord(ch):08X}")
    return '"' + "".join(out) + '"'


def _refused(tmp_path: Path, capsys, toml: str, *args: str) -> str:
    """Build ``toml`` over an earlier key; assert exit 2, one line, nothing touched."""
    out = tmp_path / "out"
    (out / "mine").mkdir(parents=True)
    (out / "mine" / "answer-key.tex").write_bytes(OLD)
    path = tmp_path / "mine.toml"
    path.write_text(toml, encoding="utf-8")
    status = main(["build", str(path), "--out", str(out), "--format", "tex", *args])
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.startswith("derive: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert (out / "mine" / "answer-key.tex").read_bytes() == OLD
    assert sorted(p.name for p in (out / "mine").iterdir()) == ["answer-key.tex"]
    return err


@pytest.mark.parametrize(
    "spelled",
    ["w^^5cmbox{INJECTED}", "^^5cdef^^5cx{^^5cx}^^5cx", "^^5cinput{^^2fetc^^2fpasswd}"],
)
def test_caret_caret_injection_in_a_spelling_is_refused(tmp_path, capsys, spelled) -> None:
    toml = _set_toml(("lstm",), symbols={"w_ix": spelled})
    err = _refused(tmp_path, capsys, toml)
    assert "mine.toml: notation.symbols.w_ix: " in err
    assert "TeX reads ^^ and what follows as another character" in err


def test_an_endless_spelling_is_refused(tmp_path, capsys) -> None:
    toml = _set_toml(("lstm",), symbols={"w_ix": "w" * 300_000})
    err = _refused(tmp_path, capsys, toml)
    assert "notation.symbols.w_ix: " in err and "(300000 characters)" in err
    assert "at most 64 characters" in err and len(err) < 1000


def test_a_typo_in_a_notation_key_is_refused(tmp_path, capsys) -> None:
    toml = _set_toml(("lstm",), symbols={"w_xi_typo": "w"})
    err = _refused(tmp_path, capsys, toml)
    assert "notation.symbols.w_xi_typo: no problem of this set prints a symbol of that name" in err
    assert "allowed are T, b_f, b_g, b_i, b_o, c, f, g, h, i, n_h, n_x, o, u, w_fh," in err


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("title", "\u4e2d\u6587\u984c\u76ee", "U+4E2D (CJK UNIFIED IDEOGRAPH-4E2D)"),
        ("title", "Homework \U0001f600", "U+1F600 (GRINNING FACE)"),
        ("title", "Home\x7fwork", "U+007F (a control character)"),
        ("title", "Home\u2028work", "U+2028 (LINE SEPARATOR)"),
        ("course", "DL\u00a0101 \u0105", "U+0105"),
        ("source", "a\u202eb", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
        ("out_of_scope", "part \u2460", "U+2460 (CIRCLED DIGIT ONE)"),
    ],
)
def test_free_text_latex_cannot_set_is_refused(tmp_path, capsys, field, value, named) -> None:
    err = _refused(tmp_path, capsys, _set_toml(**{field: value}))
    path = "out_of_scope[0]" if field == "out_of_scope" else field
    assert f"mine.toml: {path}: expected one line of text of at most 300 characters" in err
    assert named in err


def test_a_label_with_a_newline_is_refused(tmp_path, capsys) -> None:
    toml = _set_toml(("lstm",), labels={"lstm": {"adjoints": "1. Adjoints\nof the gates"}})
    err = _refused(tmp_path, capsys, toml)
    assert "labels.lstm.adjoints: expected one line of text" in err and "a line break" in err


def test_an_endless_label_is_refused(tmp_path, capsys) -> None:
    toml = _set_toml(("lstm",), labels={"lstm": {"adjoints": "x" * 100_000}})
    err = _refused(tmp_path, capsys, toml)
    assert "labels.lstm.adjoints: expected one line of text of at most 300 characters" in err
    assert "got 100000 characters" in err


def test_a_greek_title_typesets(tmp_path: Path) -> None:
    path = tmp_path / "greek.toml"
    title = "\u039b and \u03c3: Caf\u00e9 \u2014 d\u00e9j\u00e0 vu"
    path.write_text(_set_toml(("momentum",), title=title), encoding="utf-8")
    assert main(["build", str(path), "--out", str(tmp_path / "o"), "--handout"]) == 0
    source = (tmp_path / "o" / "mine" / "handout.pdf").read_bytes()
    assert source.startswith(b"%PDF")
    text = " ".join(pdf_text(tmp_path / "o" / "mine" / "handout.pdf").split())
    text = unicodedata.normalize("NFC", text)  # pdftotext gives e and a combining accent
    assert title in text


# -- the property: nothing a user writes becomes an active control sequence ---------------------
@cache
def _env():
    return environment(Notation())


def _render(pset: ProblemSet, version: str = "") -> str:
    """``render(pset, ...)`` with one Jinja environment for every example (sets whose
    notation is the default), as a build renders the problems of a set."""
    assert pset.notation == Notation()
    problems = enumerate(pset.problems, start=1)
    body = [render_problem(pset, _problem(key), i, env=_env()) for i, key in problems]
    return render_page(pset, body, version=version, env=_env())


#: The session's problems (conftest), derived once for every test and example here.
_DERIVED: dict = {}


@pytest.fixture(scope="session", autouse=True)
def _derived(problems: dict) -> None:
    _DERIVED.update(problems)


def _problem(key: str):
    return _DERIVED[key]


#: TeX's own escape forms and the characters that matter to it, mixed with any character.
_PIECES = [
    "^^5c", "^^7b", "^^7d", "^^2f", "^^25", "^^", "^^M", "^^?", "^^@", "^", "^^^^",
    "\\input", "\\def", "\\csname", "\\endcsname", "\\catcode", "\\write18", "\\immediate",
    "\\alpha", "\\tilde", "\\mathbf", "\\\\", "\\", "%", "#", "$", "&", "~", "{", "}", "_",
    "'", " ", "\n", "\r", "\t", "\u2028", "\x7f", "\x00", "\ufeff", "\u00a0", "x", "w", "1",
    "\u00e9", "\u039b", "\u4e2d", "\U0001f600", "\u0301",
]  # fmt: skip
_ANY_CHAR = st.characters(exclude_categories=("Cs",))  # a set file is UTF-8: no surrogates
_EVIL = st.lists(
    st.one_of(st.sampled_from(_PIECES), _ANY_CHAR, _ANY_CHAR.map(lambda c: "^^" + c)),
    max_size=12,
).map("".join)
_SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _document_is_clean(source: str, baseline: str, gate_commands: frozenset[str]) -> None:
    """``source`` holds exactly the baseline's control sequences outside the gate's own."""
    toks, reduced = read(source)
    assert source.isascii() and reduced == 0
    assert texgate.balanced(toks)
    assert not [t for t in toks if t.cat == INVALID]
    got = Counter(texgate.commands(toks))
    expected = _commands_of(baseline)
    # A spelling wider or narrower than the baseline's may move a display's line break
    # (derive.render.breaks), adding or dropping a \\ and its \quad; the text itself holds
    # neither (the unit-level checks above), so they are layout, not injection.
    outside = {name for name in got | expected if name not in gate_commands | _LAYOUT}
    assert {n: got[n] for n in outside} == {n: expected[n] for n in outside}


#: The commands a line break writes.
_LAYOUT = frozenset({"\\", "quad", "qquad"})


@cache
def _commands_of(source: str) -> Counter:
    return Counter(texgate.commands(tokens(source)))


_PLACEHOLDER = "Zqxplaceholder"
_PLAIN = {"title": "Homework 2", "course": "DL 101", "source": "mine", "out_of_scope": "left"}


def _free_set(field: str, value: str) -> str:
    given = _PLAIN | {field: value}
    labels = {"mdrnn": {"weights": "(a)", "steps": "(b)", "compare": "(c)"}}
    return _set_toml(
        title=given["title"], course=given["course"], source=given["source"],
        out_of_scope=given["out_of_scope"], labels=labels,
        **({"id": value} if field == "id" else {}),
    )  # fmt: skip


@cache
def _free_baseline(field: str) -> str:
    return _render(parse_set(_free_set(field, _PLACEHOLDER), "fuzz.toml"))


@given(field=st.sampled_from(["id", "title", "course", "source", "out_of_scope"]), value=_EVIL)
@settings(_SETTINGS, max_examples=200)
def test_free_text_never_reaches_tex_as_commands(field: str, value: str) -> None:
    try:
        pset = parse_set(_free_set(field, value), "fuzz.toml")
    except InputError as exc:
        event("refused")
        message = str(exc)
        path = "out_of_scope[0]" if field == "out_of_scope" else field
        assert "\n" not in message and message.startswith(f"fuzz.toml: {path}: "), message
        return
    if field in ("id", "source"):  # never printed: the id names the output folder
        assert _render(pset) == _free_baseline("title").replace(_PLACEHOLDER, _PLAIN["title"])
        return
    _check_spliced(value, _render(pset), _free_baseline(field))


def _check_spliced(value: str, source: str, baseline: str) -> None:
    """The gate's text is inert: unit level, and as a splice into the placeholder's document."""
    latex = escape(value)
    toks, reduced = read("x" + latex)
    assert latex.isascii() and reduced == 0 and texgate.balanced(toks)
    assert set(texgate.commands(toks)) <= text_commands()
    assert _PLACEHOLDER in baseline and source == baseline.replace(_PLACEHOLDER, latex)
    _document_is_clean(source, baseline, text_commands())


#: Every label the default problems print (a recurrent cell's "example" part exists only with
#: a worked example, and its label passes the same gate; a whole problem's part takes none).
_LABELS = [(problem, key) for problem, cls in REGISTRY.items() for key in cls.LABELS
           if key not in ("example", cls.WHOLE)]


@cache
def _label_baseline(problem: str, key: str) -> str:
    toml = _set_toml((problem,), labels={problem: {key: _PLACEHOLDER}})
    return _render(parse_set(toml, "fuzz.toml"))


@given(label=st.sampled_from(_LABELS), value=_EVIL)
@settings(_SETTINGS, max_examples=80)
def test_labels_never_reach_tex_as_commands(label: tuple[str, str], value: str) -> None:
    problem, key = label
    try:
        pset = parse_set(_set_toml((problem,), labels={problem: {key: value}}), "fuzz.toml")
    except InputError as exc:
        event("refused")
        assert "\n" not in str(exc) and f"fuzz.toml: labels.{problem}.{key}: " in str(exc)
        return
    _check_spliced(value, _render(pset), _label_baseline(problem, key))


@given(value=_EVIL | st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,70}", fullmatch=True))
@settings(_SETTINGS, max_examples=60)
def test_the_version_label_never_reaches_tex_as_commands(value: str) -> None:
    try:
        check_students([value])
    except InputError as exc:
        event("refused")
        assert "\n" not in str(exc) and str(exc).startswith("students: line 1: ")
        return
    pset = parse_set(_set_toml(), "fuzz.toml")
    _check_spliced(value, _render(pset, version=value), _version_baseline())


@cache
def _version_baseline() -> str:
    return _render(parse_set(_set_toml(), "fuzz.toml"), version=_PLACEHOLDER)


#: Pieces of spellings, and whole well-formed ones, so that many examples pass the gate.
_SPELLING_PIECES = st.sampled_from([
    "w", "x", "C", "1", "_", "^", "'", "{", "}", "_{t}", "^{(2)}", "\\alpha", "\\Omega",
    "\\tilde", "\\hat{", "\\mathbf ", " ", "(", ")", "+", ",", "-", "{}",
])  # fmt: skip
_NUCLEI = st.sampled_from([
    "w", "C", "1", "\\alpha", "\\Omega", "{}", "(a)", "\\tilde{C}", "\\hat x", "\\mathbf{w}",
    "{\\tilde C}", "\\bar{\\xi}",
])  # fmt: skip
_SCRIPTS = st.sampled_from([
    "", "_1", "_{t}", "^{2}", "'", "''", "_1'", "'^{x}", "^{(2)}_{a}", "_{\\alpha}^{b}", "^{a'}",
])  # fmt: skip
_WELL_FORMED = st.lists(st.tuples(_NUCLEI, _SCRIPTS).map("".join), min_size=1, max_size=3).map(
    " ".join
)
_SPELLINGS = st.one_of(
    _WELL_FORMED,
    st.lists(st.one_of(_SPELLING_PIECES, _SPELLING_PIECES, _EVIL), max_size=8).map("".join),
)
_LSTM_NAMES = sorted(REGISTRY["lstm"].symbols())


@pytest.mark.slow
@given(
    name=st.sampled_from(_LSTM_NAMES),
    value=_SPELLINGS,
    time=st.sampled_from(["superscript", "subscript"]),
)
@settings(_SETTINGS, max_examples=45)
def test_spellings_never_reach_tex_as_commands(name: str, value: str, time: str) -> None:
    try:
        pset = parse_set(_set_toml(("lstm",), symbols={name: value}, time=time), "f.toml")
    except InputError as exc:
        event("refused")
        assert "\n" not in str(exc) and f"f.toml: notation.symbols.{name}: " in str(exc)
        return
    # Unit level: a spelling that passes reads as allowed commands, balanced, no ^^ forms.
    toks, reduced = read(value)
    assert reduced == 0 and texgate.balanced(toks) and value.isascii()
    assert set(texgate.commands(toks)) <= SPELLING_COMMANDS
    source = render(pset, [_problem("lstm")])
    _document_is_clean(source, _spelled_baseline(name, time), SPELLING_COMMANDS)


@cache
def _spelled_baseline(name: str, time: str) -> str:
    notation = Notation({name: "Zq"}, time)
    pset = ProblemSet("mine", "Homework 2", "DL 101", "mine", ("lstm",), notation)
    return render(pset, [_problem("lstm")])


# -- review mends ------------------------------------------------------------------------------
def test_two_spellings_side_by_side_cannot_form_a_command() -> None:
    """lstm_cell prints W_fh and delta next to each other: \\nu then mber must not read as
    the primitive \\number (every tex output ends so that nothing can extend it)."""
    pset = ProblemSet("k", "K", "C", "s", ("lstm_cell",),
                      Notation({"W_fh": r"\nu", "delta": "mber"}))
    source = render(pset, [_problem("lstm_cell")])
    assert r"\nu" in source
    assert "number" not in commands(tokens(source))


@pytest.mark.parametrize("spelled", ["h' ", " h", "h\u00a0"])
def test_a_spelling_with_spaces_around_is_refused(spelled: str) -> None:
    with pytest.raises(InputError, match="not an allowed symbol spelling"):
        spelling(spelled, "notation.symbols.h")


@pytest.mark.parametrize("time", ["superscript", "subscript"])
def test_primes_take_steps_transposes_and_powers(tmp_path: Path, time: str) -> None:
    """h' at a step, then transposed, was a double superscript in subscript notation."""
    symbols = {"h": "h'", "c": r"\tilde{c}'", "x": "x_{in}'"}
    for key in ("lstm", "vanilla_rnn"):
        names = REGISTRY[key].symbols()
        pset = ProblemSet("k", "K", "C", "s", (key,),
                          Notation({k: v for k, v in symbols.items() if k in names}, time=time))
        compile_pdf(render(pset, [_problem(key)]), tmp_path / f"{key}.pdf")


def test_a_second_derivative_of_a_primed_symbol_is_braced() -> None:
    import sympy as sp

    from derive.render.latex import KeyPrinter

    n = sp.Symbol("n")
    printed = KeyPrinter(Notation({"n": "n'"})).doprint(sp.Derivative(sp.Function("f")(n), (n, 2)))
    assert printed.endswith(r"\partial {n'}^{2}}")


@pytest.mark.parametrize(
    "value, latex",
    [
        ("a -- b", "a -{}- b"),
        ("a---b", "a-{}-{}-b"),
        ("``x''", "`{}`x'{}'"),
        ("!` ?`", "!{}` ?{}`"),
        ("e\u0301t\u00e9", r"\'{e}t\'{e}"),  # decomposed and composed: one letter
    ],
)
def test_free_text_does_not_join_into_ligatures(value: str, latex: str) -> None:
    assert texgate.text(value, "title", 300) == unicodedata.normalize("NFC", value)
    assert escape(value) == latex
