"""Line breaks for displayed formulas: nothing an answer key prints may leave the text block.

The printer writes each formula on one line; this module decides where a display breaks.
It works on the LaTeX the printer made, so it follows whatever order and brackets the
printer chose, and it never looks inside a group: it splits a formula only at its top level

* between terms, at a ``+`` or ``−`` outside every brace, ``\\left…\\right`` and
  environment (a continuation line starts ``\\quad`` in, with its sign), and
* inside a term too wide for a line of its own, between the factors of its product (at a
  space the printer put between two factors; the continuation starts ``\\qquad`` in),

and breaks only where the line would otherwise be too long.  Widths are estimated from the
glyph widths of Computer Modern at 11 pt, in em, erring on the wide side (``width``); a
display then uses at most ``SAFE`` of the line.  Tables with many narrow columns are cut
into blocks of columns (``blocks``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

#: The text block of ``base.tex.j2`` (US letter, 2.2 cm margins, 11 pt) in em: 489.1 pt.
LINE_EM = 489.1 / 10.95
#: The share of the line a display may fill by the estimate (estimates are rough).
SAFE = 0.88
#: The share of the line a table may fill by the estimate.
TABLE_SAFE = 0.97
#: Width of ``&\\quad`` and ``&\\qquad`` at the start of a continuation line.
QUAD, QQUAD = 1.0, 2.0

_TOKEN = re.compile(r"\\[A-Za-z]+\*?|\\.|[{}&^_]|\s+|.", re.S)
# Glyph widths (em) of single characters in math mode; letters by case.
_CHAR = {
    **dict.fromkeys("0123456789", 0.5),
    **dict.fromkeys("()[]|", 0.39),
    **dict.fromkeys(",;", 0.45),  # the glyph and the thin space TeX puts after it
    **dict.fromkeys(".'!/", 0.3),
    **dict.fromkeys("+-", 1.22),  # binary: the glyph and a medium space each side
    **dict.fromkeys("=<>", 1.34),  # relations: a thick space each side
    ":": 0.84,
    "~": 0.33,
}
_GREEK = set(
    "alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu "
    "nu xi pi rho sigma tau upsilon phi varphi chi psi omega ell partial nabla".split()
)
_WORDS = {  # control words by width (em), relations and binary operators with their spaces
    **dict.fromkeys(("quad",), 1.0),
    **dict.fromkeys(("qquad",), 2.0),
    **dict.fromkeys(("cdot",), 0.72),
    **dict.fromkeys(("times", "otimes", "odot", "oplus", "pm", "mp", "circ"), 1.22),
    **dict.fromkeys(
        ("approx", "neq", "ne", "le", "leq", "ge", "geq", "to", "in", "mapsto", "equiv",
         "sim", "ll", "gg", "rightarrow", "Rightarrow", "iff", "implies", "coloneqq"),
        1.34,
    ),
    **dict.fromkeys(("dots", "ldots", "cdots", "vdots", "ddots"), 1.25),
    **dict.fromkeys(("sum", "prod", "int", "bigoplus"), 1.45),
    **dict.fromkeys(("infty", "top", "perp", "Delta", "Gamma", "Lambda", "Omega", "Phi",
                     "Psi", "Sigma", "Theta", "Pi", "Xi", "Upsilon"), 0.8),
    **dict.fromkeys(("lVert", "rVert", "Vert", "|", "langle", "rangle", "lvert", "rvert",
                     "{", "}", "lbrace", "rbrace"), 0.45),
    **dict.fromkeys(("sqrt",), 0.85),
    **dict.fromkeys((",",), 0.17),
    **dict.fromkeys((";", ":"), 0.28),
    **dict.fromkeys(("!",), -0.17),
    **dict.fromkeys((" ",), 0.33),
}
# Commands whose one argument prints at the current size (accents, fonts, boxes).
_SAME_SIZE = {
    "overline", "bar", "hat", "tilde", "vec", "dot", "ddot", "check", "breve", "widehat",
    "widetilde", "mathbf", "mathrm", "mathit", "mathcal", "mathbb", "boldsymbol", "text",
    "textrm", "textit", "textbf", "mathsf", "mathtt", "operatorname", "underline", "mbox",
    "texttt", "emph",
}
_FONT_TEXT = {"text", "textrm", "textit", "textbf", "mbox", "operatorname", "mathrm", "texttt",
              "emph"}
_IGNORED = {"displaystyle",
            "textstyle", "limits", "nolimits", "mathopen", "mathclose", "relax", "m@th"}
_SIZED = {"left", "right", "bigl", "bigr", "Bigl", "Bigr", "biggl", "biggr"}
_OPERATORS = {"sin", "cos", "tan", "tanh", "log", "ln", "exp", "max", "min", "det", "diag",
              "arg", "lim", "sup", "inf", "sum", "prod", "int", "operatorname"}


def _tokens(latex: str) -> list[str]:
    return _TOKEN.findall(latex)


def _group(tokens: list[str], i: int) -> tuple[list[str], int]:
    """The tokens of the argument at ``tokens[i]`` (a braced group or one token), and the
    index after it."""
    while i < len(tokens) and tokens[i].isspace():
        i += 1
    if i >= len(tokens):
        return [], i
    if tokens[i] != "{":
        return [tokens[i]], i + 1
    depth, j = 0, i
    while j < len(tokens):
        depth += {"{": 1, "}": -1}.get(tokens[j], 0)
        if depth == 0:
            return tokens[i + 1 : j], j + 1
        j += 1
    return tokens[i + 1 :], len(tokens)


def width(latex: str, display: bool = True) -> float:
    """Estimated width in em of the math-mode LaTeX ``latex``, in display style (fractions
    at full size) or in text style (inline, table cells, matrix entries)."""
    return _width(_tokens(latex), 1.0 if display else _TEXT, text=False)


#: ``scale`` of text style at full size: fractions inside shrink, unlike in display style.
_TEXT = 0.999


def _width(tokens: list[str], scale: float, text: bool) -> float:
    total, i = 0.0, 0
    while i < len(tokens):
        tok = tokens[i]
        i += 1
        if tok.isspace():
            total += 0.33 * scale if text else 0.0
        elif tok in "{}&":
            continue
        elif tok == "$":  # a table cell's text switches into math and back
            text = not text
        elif tok in "^_":
            arg, i = _group(tokens, i)
            # The script at its smaller size, and the \scriptspace TeX adds after it.
            total += _width(arg, max(0.5, scale * 0.7), text=False) + 0.06
        elif tok.startswith("\\"):
            step, i = _command(tok[1:], tokens, i, scale, text)
            total += step
        elif text and (tok.isalnum() or tok in "-+/@"):
            total += 0.53 * scale  # typewriter's width, the widest of text fonts here
        else:
            total += scale * _CHAR.get(tok, 0.75 if tok.isupper() else 0.57)
    return total


def _command(name: str, tokens: list[str], i: int, scale: float, text: bool) -> tuple[float, int]:
    """The width of control word ``name`` with its arguments from ``tokens[i]`` on."""
    if name == "frac":
        top, i = _group(tokens, i)
        bottom, i = _group(tokens, i)
        # Display style sets a fraction's parts in text style; text style in script style.
        inner = _TEXT if scale == 1.0 else max(0.5, 0.7 * scale)
        return max(_width(top, inner, text), _width(bottom, inner, text)) + 0.25 * scale, i
    if name == "sqrt":
        arg, i = _group(tokens, i)
        return _width(arg, scale, text) + 0.85 * scale, i
    if name in _SAME_SIZE:
        arg, i = _group(tokens, i)
        spaced = 0.34 if name == "operatorname" else 0.0
        return _width(arg, scale, text or name in _FONT_TEXT) + spaced * scale, i
    if name in ("begin", "end"):
        env, i = _group(tokens, i)
        if name == "begin" and "".join(env) in ("matrix", "pmatrix", "bmatrix", "array"):
            return _matrix(tokens, i, scale)
        return 0.0, i
    if name in _IGNORED:
        return 0.0, i
    if name in _SIZED:  # a grown delimiter is wider than the one that follows
        return 0.14 * scale, i
    if name in _WORDS:
        return _WORDS[name] * scale, i
    if name in _GREEK:
        return 0.6 * scale, i
    if name in _OPERATORS:
        return (0.5 * len(name) + 0.34) * scale, i
    return 0.8 * scale, i  # unknown: as wide as a wide letter


def _matrix(tokens: list[str], i: int, scale: float) -> tuple[float, int]:
    """A matrix body from ``tokens[i]`` to its ``\\end``: columns as wide as their widest
    entry (entries in text style), 10 pt between columns."""
    depth, j = 1, i
    while j < len(tokens) and depth:
        if tokens[j] in ("\\begin", "\\end"):
            depth += 1 if tokens[j] == "\\begin" else -1
        j += 1
    body = tokens[i : j - 1] if depth == 0 else tokens[i:]
    _, after = _group(tokens, j)  # the \end's {matrix}
    inner = _TEXT if scale == 1.0 else scale
    columns: list[float] = []
    for row in _split(body, "\\\\"):
        for k, cell in enumerate(_split(row, "&")):
            if k == len(columns):
                columns.append(0.0)
            columns[k] = max(columns[k], _width(cell, inner, text=False))
    return sum(columns) + 0.92 * scale * max(0, len(columns) - 1), after


def _split(tokens: list[str], sep: str) -> list[list[str]]:
    """``tokens`` cut at ``sep`` outside braces and environments."""
    out: list[list[str]] = [[]]
    depth = 0
    for tok in tokens:
        if tok in ("{", "\\begin"):
            depth += 1
        elif tok in ("}", "\\end"):
            depth -= 1
        if tok == sep and depth == 0:
            out.append([])
        else:
            out[-1].append(tok)
    return out


def fits(latex: str, share: float = 1.0, display: bool = True) -> bool:
    """Whether ``latex`` (displayed, or inline) fits in ``share`` of the line by the
    estimate, with the safety margin."""
    return width(latex, display) <= SAFE * share * LINE_EM


def entries(matrix) -> list[tuple[int, int, object]]:
    """The entries of ``matrix`` (rows, cols, indexing by pairs) with their row and column
    from 1, row by row: a matrix too wide to display is printed entry by entry."""
    return [(i + 1, j + 1, matrix[i, j]) for i in range(matrix.rows) for j in range(matrix.cols)]


_BARE = re.compile(r"^(\d+(\.\d+)?|[A-Za-z]|\\[A-Za-z]+)$")


def power_base(latex: str) -> str:
    """``latex`` ready to take an exponent: a plain number or letter as it is, anything else
    (a fraction, a sum, a negative number) in brackets, so that ``^{n}`` reaches all of it."""
    return latex if _BARE.match(latex.strip()) else f"\\left({latex}\\right)"


def table_fits(body: str, scale: float = 1.0, pad: float = 0.55) -> bool:
    """Whether a table whose rows are ``body`` (LaTeX text, math in ``$…$``, rows ended by
    ``\\\\``, cells split by ``&``), at relative font size ``scale`` (0.91 for ``\\small``),
    fits the line with its natural column widths and ``pad`` em (``\\tabcolsep``) either side
    of each column."""
    columns: list[float] = []
    for row in _split(_tokens(body), "\\\\"):
        for k, cell in enumerate(_split(row, "&")):
            if k == len(columns):
                columns.append(0.0)
            columns[k] = max(columns[k], _width(cell, scale, text=True))
    # Cells are plain text and short formulas, estimated closer than displays are; the
    # table's outer padding is dropped (@{}).
    return sum(columns) + pad * (2 * len(columns) - 2) <= TABLE_SAFE * LINE_EM


# -- splitting at the top level ---------------------------------------------------------------
def _top_level(latex: str) -> list[tuple[str, bool]]:
    """``latex``'s tokens, each with whether it stands at the top level (outside every brace,
    bracket, ``\\left…\\right`` and environment)."""
    out, depth = [], 0
    for tok in _tokens(latex):
        # Plain brackets nest too: the printer writes (1 - i) without \left( since a bracket
        # is tall only around tall content.  An interval (a, b] opens and closes once.
        if tok in ("{", "\\left", "\\begin", "(", "["):
            depth += 1
            out.append((tok, False))
        elif tok in ("}", "\\right", "\\end", ")", "]"):
            depth -= 1
            out.append((tok, False))
        else:
            out.append((tok, depth == 0))
    return out


def terms(latex: str) -> list[str]:
    """The terms of the sum ``latex`` at its top level, each after the first with its sign
    (``+ b``, ``- c``); a formula that is no sum is one term."""
    out, current, prev = [], "", ""
    for tok, top in _top_level(latex):
        # A sign is binary when something stands before it (a sign opening the formula, or
        # following a relation or another sign, is the term's own).
        if top and tok in "+-" and current.strip() and prev not in "+-=":
            out.append(current.strip())
            current = tok
        else:
            current += tok
        if not tok.isspace():
            prev = tok if top else "x"
    out.append(current.strip())
    return [t for t in out if t]


_GLUE_AFTER = re.compile(r"(^[+-]$)|(\\(%s)(_\{.*\}|\^\{.*\})*$)|(\\(cdot|times|otimes|odot)$)"
                         % "|".join(_OPERATORS))


def factors(term: str) -> list[str]:
    """The factors of the product ``term`` at its top level, cut where the printer put a
    space between two of them; a sign, an operator (``\\sum_{k}``, ``\\tanh``) and a
    ``\\cdot`` stay with the factor that follows."""
    pieces, current = [], ""
    for tok, top in _top_level(term):
        if top and tok.isspace():
            if current:
                pieces.append(current)
            current = ""
        else:
            current += tok
    if current:
        pieces.append(current)
    out: list[str] = []
    for piece in pieces:
        if out and (_GLUE_AFTER.search(out[-1]) or piece.startswith(("^", "_", "\\cdot",
                                                                     "\\times", "!"))):
            out[-1] += " " + piece
        else:
            out.append(piece)
    return out


# -- packing ----------------------------------------------------------------------------------
def lines(latex: str, first: float, rest: float) -> list[tuple[str, bool]]:
    """``latex`` cut into display lines: the first at most ``first`` em wide, the others at
    most ``rest`` (by the estimate); each line with whether it continues a product (it then
    starts deeper) rather than starting a term.  Terms share a line while they fit, and the
    lines are balanced (as few as fit, each about as full as the others); a term too wide for
    a line of its own is cut between factors and shares its lines with no other term, so
    that a reader sees where it ends."""
    parts = [factors(t) if width(t) > rest else [t] for t in terms(latex)]
    out = _pack(parts, first, rest)
    low, high = 0.3, 1.0  # the smallest share of the room that still needs no more lines
    for _ in range(12):
        mid = (low + high) / 2
        low, high = (low, mid) if len(_pack(parts, mid * first, mid * rest)) <= len(out) else (
            mid, high)
    return _pack(parts, high * first, high * rest)


def _pack(parts: list[list[str]], first: float, rest: float) -> list[tuple[str, bool]]:
    """Terms (each a list of its factors if it is to be cut) packed greedily into lines."""
    out: list[tuple[str, bool]] = []
    current = ""
    for factors_ in parts:
        room = first if not out else rest
        whole = factors_[0] if len(factors_) == 1 else None
        if whole is not None and (not current or width(f"{current} {whole}") <= room):
            current = f"{current} {whole}" if current else whole
            continue
        if current:
            out.append((current, False))
            current = ""
        if whole is not None:
            current = whole
            continue
        mid = False
        for k, factor in enumerate(factors_):
            room = first if not out else rest
            if current and width(f"{current} {factor}") > room:
                out.append((current, mid))
                current, mid = factor, k > 0
            else:
                current = f"{current} {factor}" if current else factor
        out.append((current, mid))
        current = ""
    if current or not out:
        out.append((current, False))
    return out


def rows(lhs: str, *sides: str, relation: str = "=") -> str:
    """The ``align*`` rows of ``lhs = side_1 = side_2 …``, each side broken into lines that
    fit: ``lhs &= first line \\\\ &\\quad + next term \\\\ &\\qquad next factor``."""
    budget = SAFE * LINE_EM - width(lhs) - width(relation)
    out = []
    for k, side in enumerate(sides):
        head = f"{lhs} &{relation} " if k == 0 else f"&{relation} "
        for j, (text, mid) in enumerate(lines(side, budget, budget - QQUAD)):
            if j == 0:
                out.append(head + text)
            else:
                out.append(("&\\qquad " if mid else "&\\quad ") + text)
    return " \\\\\n".join(out)


def blocks(items: Sequence, widest: float, label: float, pad: float = 0.55) -> list[list]:
    """``items`` (the columns of a table) cut into blocks of equal size that fit the line:
    each column ``widest`` em plus ``pad`` either side, after a label column ``label`` em."""
    column = widest + 2 * pad
    most = max(1, int((SAFE * LINE_EM - label - 2 * pad) // column))
    count = max(1, math.ceil(len(items) / most))
    size = math.ceil(len(items) / count)
    return [list(items[k : k + size]) for k in range(0, len(items), size)]
