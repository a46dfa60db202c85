"""The one gate for text a user wrote that reaches TeX: decided by what TeX will read.

Python sees characters; TeX sees tokens, after its own input processing: ``^^5c`` is a
backslash, ``^^7b`` an opening brace, a ``%`` ends the line, a letter after a backslash
extends a control word.  So the gate judges text with ``tokens``, a small reader that
follows TeX's rules (The TeXbook ch. 8; tex.web par. 343-357) under LaTeX's default
category codes, and the tests read whole generated documents with the same reader.

Two kinds of text pass the gate:

* ``spelling``: how a set spells a symbol, set in math mode as it stands.  Printable ASCII,
  at most ``MAX_SPELLING`` characters, no ``^^``, only the control sequences of
  ``SPELLING_COMMANDS`` (Greek letters, a few accents), braces balanced and every ``^``,
  ``_`` and prime well placed, so that a spelling that passes never makes LaTeX fail, also
  where the printer attaches a step or a power to it.
* ``text``: free text (titles, labels, ...) printed verbatim.  One line, bounded, each
  character either printable ASCII or one the document's fonts can set (OT1 text fonts and
  the math fonts of amsmath/amssymb); ``escape`` turns it into LaTeX through the one table
  ``latex_char``, which the ``esc`` filter of every template uses too, so validation and
  rendering cannot disagree and every generated document is pure ASCII.
"""

from __future__ import annotations

import unicodedata
from functools import cache
from typing import NamedTuple

from derive.errors import InputError
from derive.params import show

#: Longest symbol spelling: a symbol is a few letters with an accent and sub/superscripts.
MAX_SPELLING = 64

# -- the reader ------------------------------------------------------------------------------
#: Category codes (The TeXbook p. 37); a control sequence token carries ``CS``.
CS, BEGIN, END, MATH, ALIGN, EOL, PARAM, SUP, SUB, IGNORED, SPACE, LETTER, OTHER = range(13)
ACTIVE, COMMENT, INVALID = 13, 14, 15
_CATCODES = {
    "\\": CS,
    "{": BEGIN,
    "}": END,
    "$": MATH,
    "&": ALIGN,
    "\r": EOL,
    "#": PARAM,
    "^": SUP,
    "_": SUB,
    "\x00": IGNORED,
    " ": SPACE,
    "\t": SPACE,
    "~": ACTIVE,
    "\f": ACTIVE,  # LaTeX: form feed is an active \par
    "%": COMMENT,
    "\x7f": INVALID,
}
_HEX = "0123456789abcdef"  # TeX's ^^xy takes lowercase hex digits only
_NEW_LINE, _MID_LINE, _SKIP_BLANKS = range(3)


class Token(NamedTuple):
    """One token as TeX's eyes and mouth deliver it.

    ``cat`` is the category code of a character token, or ``CS`` for a control sequence,
    whose ``text`` is then its name (one character for a control symbol).
    """

    cat: int
    text: str


def catcode(ch: str) -> int:
    """LaTeX's category code of ``ch`` at the start of a document.

    Every non-ASCII character counts as active: pdfLaTeX reads UTF-8 byte by byte through
    active characters that fail for any character not set up for the fonts.
    """
    if ch in _CATCODES:
        return _CATCODES[ch]
    if ord(ch) > 127:
        return ACTIVE
    if ch.isascii() and ch.isalpha():
        return LETTER
    return OTHER


def tokens(text: str) -> list[Token]:
    """The tokens TeX reads from ``text`` under LaTeX's default category codes.

    Follows TeX exactly where it matters for safety: ``^^`` notation (two lowercase hex
    digits, or one character below 128 whose code is shifted by 64) is reduced before
    category codes apply, also inside control sequence names; ``%`` discards the rest of
    the line; a control word is a backslash and letters, a control symbol a backslash and
    one other character; spaces after a control word are skipped; an empty line is
    ``\\par``.  Lines end at LF, CR or CR LF, as TeX Live reads them.
    """
    return read(text)[0]


def read(text: str) -> tuple[list[Token], int]:
    """``tokens(text)`` and how many ``^^`` forms TeX reduced on the way (0 for safe text)."""
    out: list[Token] = []
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()  # a final line terminator does not start another line
    reduced = 0
    for line in lines:
        reader = _Line(line, out)
        reader.read()
        reduced += reader.reduced
    return out, reduced


class _Line:
    """TeX's input state for one line (tex.web par. 343-357); ``buf[limit]`` is the CR
    that TeX appends as the end-of-line character."""

    def __init__(self, line: str, out: list[Token]) -> None:
        # TeX Live drops trailing spaces; they never change the tokens anyway.
        self.buf = [ord(c) for c in line.rstrip(" ")] + [13]
        self.limit = len(self.buf) - 1
        self.out = out
        self.reduced = 0

    def read(self) -> None:
        buf, out = self.buf, self.out
        loc, state = 0, _NEW_LINE
        while loc <= self.limit:
            code = buf[loc]
            loc += 1
            cat = catcode(chr(code))
            while cat == SUP:  # "reswitch": a reduced ^^ form is read as a character
                got = self._expanded(loc, code)
                if got is None:
                    break
                code, loc = got
                cat = catcode(chr(code))
            if cat == CS:
                loc, state = self._control_sequence(loc)
            elif cat == EOL:
                if state == _NEW_LINE:
                    out.append(Token(CS, "par"))
                elif state == _MID_LINE:
                    out.append(Token(SPACE, " "))
                return
            elif cat == COMMENT:
                return
            elif cat == SPACE:
                if state == _MID_LINE:
                    out.append(Token(SPACE, " "))
                    state = _SKIP_BLANKS
            elif cat != IGNORED:
                out.append(Token(cat, chr(code)))
                state = _MID_LINE

    def _expanded(self, loc: int, first: int) -> tuple[int, int] | None:
        """``(code, next loc)`` if the ``^`` before ``loc`` starts a ``^^`` form (par. 355)."""
        buf, limit = self.buf, self.limit
        if loc >= limit or buf[loc] != first or buf[loc + 1] >= 128:
            return None
        self.reduced += 1
        c = buf[loc + 1]
        if chr(c) in _HEX and loc + 2 <= limit and chr(buf[loc + 2]) in _HEX:
            return int(chr(c) + chr(buf[loc + 2]), 16), loc + 3
        return (c + 64 if c < 64 else c - 64), loc + 2

    def _control_sequence(self, loc: int) -> tuple[int, int]:
        """Read the name after an escape at ``loc``; the next loc and state (par. 354-357)."""
        buf = self.buf
        if loc > self.limit:
            self.out.append(Token(CS, ""))
            return loc, _MID_LINE
        while True:  # "start_cs": after a ^^ reduction inside the name, scan it again
            k = loc
            code = buf[k]
            cat = catcode(chr(code))
            k += 1
            state = _SKIP_BLANKS if cat in (LETTER, SPACE) else _MID_LINE
            if cat == LETTER and k <= self.limit:
                while True:
                    code = buf[k]
                    cat = catcode(chr(code))
                    k += 1
                    if not (cat == LETTER and k <= self.limit):
                        break
                if self._reduce_in_name(k, code, cat):
                    continue
                if cat != LETTER:
                    k -= 1
                if k > loc + 1:
                    self.out.append(Token(CS, "".join(map(chr, buf[loc:k]))))
                    return k, state
            elif self._reduce_in_name(k, code, cat):
                continue
            self.out.append(Token(CS, chr(buf[loc])))
            return loc + 1, state

    def _reduce_in_name(self, k: int, code: int, cat: int) -> bool:
        """Reduce a ``^^`` form met while scanning a name, in the buffer (par. 355)."""
        buf = self.buf
        if cat != SUP or k >= self.limit or buf[k] != code or buf[k + 1] >= 128:
            return False
        self.reduced += 1
        c = buf[k + 1]
        if chr(c) in _HEX and k + 2 <= self.limit and chr(buf[k + 2]) in _HEX:
            buf[k - 1 : k + 3] = [int(chr(c) + chr(buf[k + 2]), 16)]
        else:
            buf[k - 1 : k + 2] = [c + 64 if c < 64 else c - 64]
        self.limit = len(buf) - 1
        return True


def commands(toks: list[Token]) -> list[str]:
    """Control sequence names and active characters among ``toks``, in order."""
    return [t.text for t in toks if t.cat in (CS, ACTIVE)]


def balanced(toks: list[Token]) -> bool:
    """Whether the braces of ``toks`` nest and close."""
    depth = 0
    for t in toks:
        depth += {BEGIN: 1, END: -1}.get(t.cat, 0)
        if depth < 0:
            return False
    return depth == 0


# -- symbol spellings ------------------------------------------------------------------------
GREEK = (
    "alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu "
    "nu xi pi varpi rho varrho sigma varsigma tau upsilon phi varphi chi psi omega "
    "Gamma Delta Theta Lambda Xi Pi Sigma Upsilon Phi Psi Omega"
).split()
#: Math accents and alphabets a spelling may put on one symbol: ``\tilde{C}``, ``\mathbf x``.
ACCENTS = ("tilde", "hat", "bar", "vec", "dot", "ddot", "check", "breve", "mathbf", "mathrm")
#: Every control sequence a spelling may hold.
SPELLING_COMMANDS = frozenset(GREEK) | frozenset(ACCENTS)
#: Characters a spelling may hold besides letters and digits (``\`` only to start a command).
_SPELLING_PUNCT = " _^{}(),.'+-\\"
SPELLING_RULES = (
    "allowed are at most 64 characters: letters, digits, spaces, _ ^ { } ( ) , . ' + - and "
    "the commands \\alpha to \\Omega (Greek letters), \\tilde \\hat \\bar \\vec \\dot \\ddot "
    "\\check \\breve \\mathbf \\mathrm; braces balanced; each ^ and _ after a symbol and "
    "followed by one character, Greek letter or {group}; at most one superscript (primes "
    "count as one, written last or just before a ^) and one subscript per symbol"
)


class _RefusedError(Exception):
    """Why a spelling is refused (turned into one ``InputError`` by ``spelling``)."""


def spelling(text: str, where: str) -> str:
    """Accept ``text`` as a symbol spelling (math mode), else raise ``InputError``.

    Parameters
    ----------
    text
        The spelling as the set file gives it, e.g. ``w_{xi}`` or ``\\tilde{C}``.
    where
        The field, for the message (``mine.toml: notation.symbols.w_ix``).

    Returns
    -------
    str
        ``text`` unchanged.
    """
    try:
        _judge_spelling(text)
    except _RefusedError as why:
        raise InputError(
            f"{where}: {show(text)} is not an allowed symbol spelling ({why}); {SPELLING_RULES}"
        ) from None
    return text


def _judge_spelling(text: str) -> None:
    if not isinstance(text, str):
        raise _RefusedError("not a string")
    if len(text) > MAX_SPELLING:
        raise _RefusedError(f"{len(text)} characters")
    if not text.strip():
        raise _RefusedError("no symbol")
    if text != text.strip():  # h' and a space, then a printer's ^{(t)}: a double superscript
        raise _RefusedError("it starts or ends with a space")
    for ch in text:
        if not (ch.isascii() and (ch.isalnum() or ch in _SPELLING_PUNCT)):
            raise _RefusedError(f"{describe(ch)} is not allowed")
    if "^^" in text:
        raise _RefusedError("TeX reads ^^ and what follows as another character: ^^5c is \\")
    toks = tokens(text)
    for name in commands(toks):
        if name not in SPELLING_COMMANDS:
            raise _RefusedError(f"\\{name} is not an allowed command")
    if not balanced(toks):
        raise _RefusedError("unbalanced braces")
    _math_list(toks, 0)  # balanced braces: the top list ends at the end


def _math_list(toks: list[Token], i: int) -> int:
    """Check one math list from ``toks[i]``; the index of its closing brace (or the end)."""
    nucleus = primes = prime_open = sup = sub = False
    while i < len(toks) and toks[i].cat != END:
        tok = toks[i]
        if tok.cat == SPACE:
            prime_open = False  # a space ends a run of primes: x' ^2 is a double superscript
            i += 1
            continue
        if tok.cat in (SUP, SUB) or tok == Token(OTHER, "'"):
            if not nucleus:
                raise _RefusedError(f"{tok.text} needs a symbol before it")
            if tok.cat == SUB:
                if sub:
                    raise _RefusedError("a double subscript")
                if primes and not sup:
                    # x'_1 would take the printer's ^ as a double superscript: write x_1'.
                    raise _RefusedError("a subscript after a prime; write the subscript first")
                sub, prime_open = True, False
                i = _argument(toks, i + 1, "_")
            elif sup or (primes and not prime_open):
                raise _RefusedError("a double superscript (primes count as one)")
            elif tok.cat == SUP:  # x'^2 is one superscript: LaTeX's prime reads the ^
                sup, prime_open = True, False
                i = _argument(toks, i + 1, "^")
            else:
                primes = prime_open = True
                i += 1
            continue
        i = _nucleus(toks, i)
        nucleus, primes, prime_open, sup, sub = True, False, False, False, False
    return i


def _nucleus(toks: list[Token], i: int) -> int:
    """Check the symbol at ``toks[i]`` (a character, Greek letter, accent or group)."""
    tok = toks[i]
    if tok.cat == BEGIN:
        return _group(toks, i)
    if tok.cat == CS and tok.text in ACCENTS:
        return _argument(toks, i + 1, f"\\{tok.text}")
    if (tok.cat == CS and tok.text in GREEK) or tok.cat in (LETTER, OTHER):
        return i + 1
    raise _RefusedError(f"{tok.text!r} cannot start a symbol")  # pragma: no cover - chars checked


def _group(toks: list[Token], i: int) -> int:
    end = _math_list(toks, i + 1)
    if end >= len(toks):  # pragma: no cover - braces were checked to balance
        raise _RefusedError("unbalanced braces")
    return end + 1


def _argument(toks: list[Token], i: int, what: str) -> int:
    """Check the argument of a script or accent: one character, Greek letter or group."""
    while i < len(toks) and toks[i].cat == SPACE:
        i += 1  # TeX skips spaces before an argument
    if i == len(toks) or toks[i].cat == END:
        raise _RefusedError(f"{what} needs an argument")
    tok = toks[i]
    if tok.cat == BEGIN:
        return _group(toks, i)
    if (tok.cat == CS and tok.text in GREEK) or (tok.cat in (LETTER, OTHER) and tok.text != "'"):
        return i + 1
    raise _RefusedError(f"{what} needs one character, Greek letter or {{group}} after it")


# -- free text -------------------------------------------------------------------------------
#: LaTeX for the ASCII characters that are special to TeX (the rest print as they are).
_ASCII_SPECIAL = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "$": r"\$",
    "&": r"\&",
    "#": r"\#",
    "^": r"\textasciicircum{}",
    "_": r"\_",
    "%": r"\%",
    "~": r"\textasciitilde{}",
    "|": r"\textbar{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
}
#: Pairs the text fonts join into one glyph (TeX's ligatures of the OT1 Computer Modern
#: fonts): ``--`` is an en dash, ```` `` ```` an opening quote, ``!``` an inverted !.
_LIGATURES = frozenset({"--", "''", "``", "!`", "?`"})
#: Combining marks with an accent command of LaTeX's OT1 encoding (no ogonek: T1 only).
_ACCENT_MARKS = {
    "\u0300": "\\`",
    "\u0301": "\\'",
    "\u0302": "\\^",
    "\u0303": "\\~",
    "\u0304": "\\=",
    "\u0306": "\\u",
    "\u0307": "\\.",
    "\u0308": '\\"',
    "\u030a": "\\r",
    "\u030b": "\\H",
    "\u030c": "\\v",
    "\u0323": "\\d",
    "\u0327": "\\c",
    "\u0331": "\\b",
}
_MARKS_BELOW = {"\u0323", "\u0327", "\u0331"}
#: Letters and punctuation OT1 text fonts set through a command of their own.
_TEXT_SYMBOLS = {
    "\u00a0": "~",
    "\u00a1": r"\textexclamdown{}",
    "\u00a3": r"\pounds{}",
    "\u00a7": r"\S{}",
    "\u00a9": r"\copyright{}",
    "\u00b6": r"\P{}",
    "\u00bf": r"\textquestiondown{}",
    "\u00c5": r"\AA{}",
    "\u00c6": r"\AE{}",
    "\u00d8": r"\O{}",
    "\u00df": r"\ss{}",
    "\u00e5": r"\aa{}",
    "\u00e6": r"\ae{}",
    "\u00f8": r"\o{}",
    "\u0131": r"\i{}",
    "\u0141": r"\L{}",
    "\u0142": r"\l{}",
    "\u0152": r"\OE{}",
    "\u0153": r"\oe{}",
    "\u0237": r"\j{}",
    "\u2010": "-{}",  # {}: no ligature with a - next to it (-- is an en dash)
    "\u2011": "-{}",
    "\u2013": r"\textendash{}",
    "\u2014": r"\textemdash{}",
    "\u2018": r"\textquoteleft{}",
    "\u2019": r"\textquoteright{}",
    "\u201c": r"\textquotedblleft{}",
    "\u201d": r"\textquotedblright{}",
    "\u2020": r"\dag{}",
    "\u2021": r"\ddag{}",
    "\u2022": r"\textbullet{}",
    "\u2026": r"\ldots{}",
}
#: Characters the math fonts set (in text through \ensuremath).
_MATH_SYMBOLS = {
    "\u00b0": r"{}^{\circ}",
    "\u00b1": r"\pm",
    "\u00b5": r"\mu",
    "\u00b7": r"\cdot",
    "\u00d7": r"\times",
    "\u00f7": r"\div",
    "\u2190": r"\leftarrow",
    "\u2192": r"\rightarrow",
    # For formulas quoted from a source ([original.<problem>]): partials, sums, products.
    "\u2032": r"{}^{\prime}",
    "\u2202": r"\partial",
    "\u220f": r"\prod",
    "\u2211": r"\sum",
    "\u2212": "-",
    "\u221e": r"\infty",
    "\u2248": r"\approx",
    "\u2260": r"\neq",
    "\u2264": r"\leq",
    "\u2265": r"\geq",
    "\u2299": r"\odot",
}
#: Greek letters by their Unicode names; capitals that look Latin are set as those letters.
_GREEK_SMALL = {
    "ALPHA": "alpha", "BETA": "beta", "GAMMA": "gamma", "DELTA": "delta",
    "EPSILON": "varepsilon", "ZETA": "zeta", "ETA": "eta", "THETA": "theta", "IOTA": "iota",
    "KAPPA": "kappa", "LAMDA": "lambda", "MU": "mu", "NU": "nu", "XI": "xi", "PI": "pi",
    "RHO": "rho", "FINAL SIGMA": "varsigma", "SIGMA": "sigma", "TAU": "tau",
    "UPSILON": "upsilon", "PHI": "varphi", "CHI": "chi", "PSI": "psi", "OMEGA": "omega",
    "THETA SYMBOL": "vartheta", "PHI SYMBOL": "phi", "PI SYMBOL": "varpi",
    "RHO SYMBOL": "varrho", "LUNATE EPSILON SYMBOL": "epsilon",
}  # fmt: skip
_GREEK_CAPITAL = {
    "GAMMA": "Gamma", "DELTA": "Delta", "THETA": "Theta", "LAMDA": "Lambda", "XI": "Xi",
    "PI": "Pi", "SIGMA": "Sigma", "UPSILON": "Upsilon", "PHI": "Phi", "PSI": "Psi",
    "OMEGA": "Omega",
}  # fmt: skip
_GREEK_LATIN = dict(
    zip("ALPHA BETA EPSILON ZETA ETA IOTA KAPPA MU NU OMICRON RHO TAU CHI".split(),
        "ABEZHIKMNOPTX", strict=True)
)  # fmt: skip
#: Unicode blocks whose characters the table may set (the rest are refused unread).
_BLOCKS = (
    (0x00A0, 0x0250),  # Latin-1 Supplement, Latin Extended-A and -B
    (0x0370, 0x0400),  # Greek
    (0x1E00, 0x1F00),  # Latin Extended Additional
    (0x2010, 0x2300),  # punctuation, arrows, mathematical operators
)
TEXT_RULES = (
    "printable ASCII, Latin letters with the accents of LaTeX's OT1 fonts, Greek letters, "
    "en and em dashes, curly quotes, the ellipsis and a few symbols such as the degree sign"
)


@cache
def latex_char(ch: str) -> str | None:
    """LaTeX that sets the character ``ch`` in the document's fonts, or None if none does.

    The one table behind ``escape`` (the templates' ``esc`` filter) and ``text``.
    """
    if " " <= ch <= "~":
        return _ASCII_SPECIAL.get(ch, ch)
    if not any(lo <= ord(ch) < hi for lo, hi in _BLOCKS):
        return None
    composed = unicodedata.normalize("NFC", ch)
    if composed != ch:  # the angstrom sign is the letter A with a ring, the ohm sign Omega
        return latex_char(composed) if len(composed) == 1 else None
    if ch in _TEXT_SYMBOLS:
        return _TEXT_SYMBOLS[ch]
    if ch in _MATH_SYMBOLS:
        return r"\ensuremath{%s}" % _MATH_SYMBOLS[ch]
    return _greek(ch) or _accented(ch)


def _greek(ch: str) -> str | None:
    name = unicodedata.name(ch, "")
    small = name.removeprefix("GREEK SMALL LETTER ").removeprefix("GREEK ")
    if small in _GREEK_SMALL and name != small:
        return r"\ensuremath{\%s}" % _GREEK_SMALL[small]
    if name == "GREEK SMALL LETTER OMICRON":
        return "o"
    capital = name.removeprefix("GREEK CAPITAL LETTER ")
    if capital in _GREEK_CAPITAL:
        return r"\ensuremath{\%s}" % _GREEK_CAPITAL[capital]
    return _GREEK_LATIN.get(capital) if capital != name else None


def _accented(ch: str) -> str | None:
    """``\\'{e}`` for a Latin letter with one accent that OT1 has (a dotless i or j under
    an accent above: ``\\'{\\i}``)."""
    parts = unicodedata.normalize("NFD", ch)
    if len(parts) != 2 or not (parts[0].isascii() and parts[0].isalpha()):
        return None
    letter, mark = parts
    command = _ACCENT_MARKS.get(mark)
    if command is None:
        return None
    if letter in "ij" and mark not in _MARKS_BELOW:
        letter = "\\" + letter
    return f"{command}{{{letter}}}"


def mapped_characters() -> list[str]:
    """Every non-ASCII character the table sets, in code point order."""
    return [chr(c) for lo, hi in _BLOCKS for c in range(lo, hi) if latex_char(chr(c))]


def describe(ch: str) -> str:
    """A character named in ASCII for a message: ``'x'`` or ``U+4E2D (CJK UNIFIED ...)``."""
    if ch.isascii() and ch.isprintable():
        return repr(ch)
    kinds = {"Cc": "a control character", "Cs": "a surrogate", "Co": "a private-use character"}
    if ch in "\n\r\x0b\x0c\x1c\x1d\x1e\x85":
        name = "a line break"
    else:
        name = unicodedata.name(ch, "") or kinds.get(unicodedata.category(ch), "unassigned")
    return f"U+{ord(ch):04X} ({name})"


def text(value: str, where: str, max_len: int) -> str:
    """Accept ``value`` as one line of free text that prints verbatim, else raise.

    Parameters
    ----------
    value
        The text as written (a title, a label, ...).
    where
        The field, for the message (``mine.toml: title``).
    max_len
        Most characters allowed.

    Returns
    -------
    str
        ``value`` in composed form (NFC); ``escape`` turns it into LaTeX when a template
        prints it.
    """
    expected = f"expected one line of text of at most {max_len} characters ({TEXT_RULES})"
    if not isinstance(value, str):
        raise InputError(f"{where}: {expected}, got {show(value)}")
    if len(value) > max_len:  # before normalising: that takes time in the length
        raise InputError(f"{where}: {expected}, got {len(value)} characters")
    value = unicodedata.normalize("NFC", value)  # e and a combining acute are é
    if len(value) > max_len:
        raise InputError(f"{where}: {expected}, got {len(value)} characters")
    for ch in value:
        if latex_char(ch) is None:
            raise InputError(f"{where}: {expected}, got {show(value)}, which holds {describe(ch)}")
    return value


def escape(value: str) -> str:
    """LaTeX that prints ``value`` exactly as written (the templates' ``esc`` filter).

    Raises ``InputError`` for a character the document's fonts cannot set; every user's
    text has passed ``text`` by then, so only text made in code can meet it.
    """
    value = unicodedata.normalize("NFC", str(value))
    out: list[str] = []
    for ch in value:
        latex = latex_char(ch)
        if latex is None:
            raise InputError(f"text {show(value)}: {describe(ch)} cannot be typeset")
        if out and out[-1][-1:] + latex[:1] in _LIGATURES:
            out.append("{}")  # -- would print as an en dash, '' as a closing quote
        out.append(latex)
    return "".join(out)


@cache
def text_commands() -> frozenset[str]:
    """Every control sequence (and active character) ``escape`` can emit."""
    chars = [chr(c) for c in range(32, 127)] + mapped_characters()
    # After a letter, as in a document: a space alone would read as an empty line (\par).
    return frozenset(name for ch in chars for name in commands(tokens("x" + latex_char(ch))))


# -- question wording: free text with $formulas$ ---------------------------------------------
#: Control sequences a formula may hold, by how many arguments each takes; ``\left`` and
#: ``\right`` and the sized delimiters take a delimiter (``_DELIMITERS``) instead.
FORMULA_COMMANDS: dict[str, int] = (
    dict.fromkeys(GREEK, 0)
    | dict.fromkeys(
        "partial nabla infty ell prime top sum prod int cdot times odot otimes circ ast pm mp "
        "le leq ge geq ne neq approx sim equiv propto to rightarrow leftarrow mapsto "
        "Rightarrow in notin subset subseteq cup cap forall exists emptyset mid colon "
        "ldots cdots dots vdots log exp ln tanh sin cos max min det lim sup inf arg "
        "quad qquad , ; ! : { } | langle rangle lVert rVert lvert rvert".split(), 0)
    | dict.fromkeys((*ACCENTS, "mathbb", "mathcal", "mathit", "overline", "underline", "sqrt"), 1)
    | dict.fromkeys(("frac", "dfrac", "tfrac", "binom"), 2)
)  # fmt: skip
_SIZED = frozenset({"left", "right", "bigl", "bigr", "Bigl", "Bigr", "big", "Big"})
#: What may follow ``\left``, ``\right`` or a sized delimiter.
_DELIMITERS = {
    OTHER: frozenset("()[]|./"),
    CS: frozenset("{ } | langle rangle lVert rVert lvert rvert lfloor rfloor lceil rceil".split()),
}
#: Control sequences a script may take without braces (each one math character).
_SCRIPT_SYMBOLS = frozenset(GREEK) | frozenset({"infty", "prime", "top", "ell", "partial",
                                                "nabla", "circ", "ast"})
FORMULA_RULES = (
    "a formula between $ signs is printable ASCII without % # & ~ or ^^, with braces "
    "balanced, \\left paired with \\right, each ^ and _ after a symbol and followed by one "
    "character or {group}, and no commands but Greek letters, accents, \\frac \\sqrt "
    "\\mathbb \\mathcal \\overline \\partial \\nabla \\sum \\prod \\cdot \\times \\odot "
    "\\le \\ge \\ne \\approx \\to \\in \\log \\exp \\tanh \\max \\min \\det and similar "
    "symbols, \\left \\right \\bigl \\bigr and spacing"
)


def wording(value: str, where: str, max_len: int) -> str:
    """Accept a question's wording, free text with ``$...$`` formulas; its LaTeX.

    Parameters
    ----------
    value
        The text as written: words as ``text`` takes them, formulas between ``$`` signs
        as ``FORMULA_RULES`` says.
    where
        The field, for the message (``mine.toml: questions.lstm.intro``).
    max_len
        Most characters allowed, formulas included.

    Returns
    -------
    str
        LaTeX that prints the words verbatim (``escape``) and sets each formula in math
        mode as written.
    """
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{where}: expected a non-empty string, got {show(value)}")
    text(value.replace("$", " "), where, max_len)  # the words' rules; formulas judged below
    value = unicodedata.normalize("NFC", value)
    pieces = value.split("$")
    if len(pieces) % 2 == 0:
        raise InputError(f"{where}: {show(value)} has a $ that no $ closes; {FORMULA_RULES}")
    out = []
    for i, piece in enumerate(pieces):
        if i % 2 == 0:
            out.append(escape(piece))
            continue
        try:
            _judge_formula(piece)
        except _RefusedError as why:
            raise InputError(
                f"{where}: the formula {show('$' + piece + '$')} is not allowed ({why}); "
                f"{FORMULA_RULES}"
            ) from None
        out.append(f"${piece}$")
    return "".join(out)


def _judge_formula(text: str) -> None:
    if not text.strip():
        raise _RefusedError("it is empty; $$ is not allowed")
    for ch in text:
        if not (" " <= ch <= "~") or ch in "%#&~":
            raise _RefusedError(f"{describe(ch)} is not allowed")
    if "^^" in text:
        raise _RefusedError("TeX reads ^^ and what follows as another character: ^^5c is \\")
    toks = tokens(text)
    if not balanced(toks):
        raise _RefusedError("unbalanced braces")
    _Formula(toks).math_list(0, stop=None)


class _Formula:
    """A check of a formula's tokens as TeX's math mode reads them: every command known
    and given its arguments, scripts placed, ``\\left`` closed by ``\\right`` in its group."""

    def __init__(self, toks: list[Token]) -> None:
        self.toks = toks

    def math_list(self, i: int, stop: str | None) -> int:
        """Check a math list from ``toks[i]`` to its closing brace (or the end, or
        ``\\right`` when ``stop`` is ``"right"``); the index where it ends."""
        toks = self.toks
        nucleus = primes = prime_open = sup = sub = False
        while i < len(toks) and toks[i].cat != END:
            tok = toks[i]
            if tok == Token(CS, "right"):
                if stop != "right":
                    raise _RefusedError("\\right without \\left")
                return i
            if tok.cat == SPACE:
                prime_open, i = False, i + 1
                continue
            if tok.cat in (SUP, SUB) or tok == Token(OTHER, "'"):
                if not nucleus:
                    raise _RefusedError(f"{tok.text} needs a symbol before it")
                if tok.cat == SUB:
                    if sub or (primes and not sup):
                        raise _RefusedError("a double subscript, or a subscript after a prime")
                    sub, prime_open, i = True, False, self.script(i + 1, "_")
                elif sup or (primes and not prime_open):
                    raise _RefusedError("a double superscript (primes count as one)")
                elif tok.cat == SUP:
                    sup, prime_open, i = True, False, self.script(i + 1, "^")
                else:
                    primes = prime_open = True
                    i += 1
                continue
            i = self.nucleus(i)
            nucleus, primes, prime_open, sup, sub = True, False, False, False, False
        if stop == "right":
            raise _RefusedError("\\left without \\right in the same group")
        return i

    def nucleus(self, i: int) -> int:
        """Check the symbol at ``toks[i]``; the index after it."""
        tok = self.toks[i]
        if tok.cat == BEGIN:
            return self.group(i)
        if tok.cat in (LETTER, OTHER):
            return i + 1
        if tok.cat != CS:
            raise _RefusedError(f"{tok.text!r} is not allowed")
        if tok.text == "left":
            end = self.math_list(self.delimiter(i + 1, "\\left"), stop="right")
            return self.delimiter(end + 1, "\\right")
        if tok.text in _SIZED:
            return self.delimiter(i + 1, f"\\{tok.text}")
        if tok.text not in FORMULA_COMMANDS:
            if not tok.text.strip():  # TeX reads a final backslash with the line's end
                raise _RefusedError("a backslash must start a command")
            raise _RefusedError(f"\\{tok.text} is not an allowed command")
        i += 1
        for _ in range(FORMULA_COMMANDS[tok.text]):
            i = self.argument(i, f"\\{tok.text}", frozenset(GREEK))
        return i

    def group(self, i: int) -> int:
        end = self.math_list(i + 1, stop=None)
        if end >= len(self.toks):  # pragma: no cover - braces were checked to balance
            raise _RefusedError("unbalanced braces")
        return end + 1

    def skip_spaces(self, i: int) -> int:
        while i < len(self.toks) and self.toks[i].cat == SPACE:
            i += 1  # TeX skips spaces before an argument
        return i

    def argument(self, i: int, what: str, symbols: frozenset[str]) -> int:
        """One ``{group}``, character or command of ``symbols`` after ``what``."""
        i = self.skip_spaces(i)
        if i == len(self.toks) or self.toks[i].cat == END:
            raise _RefusedError(f"{what} needs an argument")
        tok = self.toks[i]
        if tok.cat == BEGIN:
            return self.group(i)
        if (tok.cat == CS and tok.text in symbols) or (
            tok.cat in (LETTER, OTHER) and tok.text not in "'[]"
        ):
            return i + 1
        raise _RefusedError(f"{what} needs one character or a {{group}} after it")

    def script(self, i: int, what: str) -> int:
        return self.argument(i, what, _SCRIPT_SYMBOLS)

    def delimiter(self, i: int, what: str) -> int:
        i = self.skip_spaces(i)
        tok = self.toks[i] if i < len(self.toks) else None
        if tok is None or tok.text not in _DELIMITERS.get(tok.cat, ()):
            raise _RefusedError(f"{what} needs a delimiter such as ( ) [ ] | . after it")
        return i + 1
