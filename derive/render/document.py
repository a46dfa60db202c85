"""Jinja2 rendering of answer keys: templates only format what the engine derived.

Delimiters never clash with TeX braces: ``((* block *))``, ``((( variable )))`` and
``((= comment =))``, as in nbconvert's LaTeX templates.  ``StrictUndefined`` makes a typo
in a template fail the build instead of printing nothing.

Filters handed to templates:

* ``tex``: a SymPy object in the set's notation;
* ``terms``: the terms of a sum as separate LaTeX strings (for line breaks), each after
  the first with its sign;
* layout (``render.breaks``): ``display_rows`` (a global), the rows of an ``align*``
  holding ``lhs = rhs``, broken only where a line would be too long; ``fits``, whether
  LaTeX fits a share of the line; ``table_fits``, whether a table's rows fit at natural
  column widths; ``blocks``, a table's columns cut into blocks that fit; ``entries``, a
  matrix's entries with their row and column; ``power_base``, LaTeX bracketed to take an
  exponent;
* ``esc``: plain text that prints verbatim (``texgate.escape``: TeX's special characters
  escaped, other characters through the gate's table, so the source is pure ASCII);
* ``sci``: a float in scientific notation for tables;
* ``sig6``, ``sig3``: a computed number to six or three significant digits (``render.numbers``);
* ``millions``: a count in millions to one decimal; ``approx``: a SymPy value rounded to
  given significant digits (``render.numbers``).

The global ``evidence_view(problem, checks)`` arranges a problem's checks for the evidence
macros (``render.evidence``).  A compact key's evidence tables go to an appendix for
instructors: ``render_evidence`` renders one problem's part of it where the problem is at
hand (a worker process, say), and ``render_page`` assembles the parts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jinja2
import sympy as sp

from derive.engine import native
from derive.render import breaks, passes
from derive.render.evidence import evidence_view
from derive.render.latex import KeyPrinter, Notation, Ordering
from derive.render.numbers import approx, millions, sci, sig3, sig6
from derive.render.plot import curve_plot
from derive.render.texgate import escape
from derive.sets.wording import BUNDLED
from derive.verify import FLOOR
from derive.verify.routes import CENTRAL_STEP, COMPLEX_STEP, DERIVED_DPS, TOLERANCE

#: The numbers the evidence legend states: the error's floor, the routes' steps and digits.
EVIDENCE_CONSTANTS = {
    "floor": FLOOR, "complex_step": COMPLEX_STEP, "central_step": CENTRAL_STEP,
    "digits": DERIVED_DPS, "high_precision": TOLERANCE["high precision"],
}
#: A control word at the very end of a text.
_OPEN_END = re.compile(r"\\[A-Za-z]+$")


def closed(latex: str) -> str:
    """``latex`` ended so that nothing a template writes after it can extend it: a final
    control word gets a space (which TeX skips), so ``\\nu`` then ``mber`` never reads as
    ``\\number``."""
    return latex + " " if _OPEN_END.search(latex) else latex


def template_dir() -> Path:
    """The templates: inside an installed package, or at the top of a source checkout."""
    packaged = Path(__file__).resolve().parent.parent / "templates"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "templates"


class PluginTemplates(jinja2.BaseLoader):
    """The templates of problems from outside derive: ``plugins/<key>/<file>`` is ``<file>``
    in the ``TEMPLATE_DIR`` of the problem registered as ``key`` (``Problem.template``)."""

    def get_source(self, environment: jinja2.Environment, template: str):
        # Loaded by now (only a problem names these templates); imported here because the
        # registry checks, as it loads, that a problem's templates exist.
        from derive.problems import REGISTRY
        from derive.problems.base import PLUGIN_TEMPLATES

        top, _, rest = template.partition("/")
        key, _, name = rest.partition("/")
        cls = REGISTRY.get(key)
        folder = None if cls is None else cls.TEMPLATE_DIR
        if top != PLUGIN_TEMPLATES or not name or folder is None:
            raise jinja2.TemplateNotFound(template)
        return jinja2.FileSystemLoader(folder).get_source(environment, name)


class _Compiled(jinja2.BytecodeCache):
    """Compiled templates kept in memory for every environment of the process, and on disk
    in derive's cache folder (signed, as ``derive.engine.native`` keeps its libraries), so
    a command does not compile them again (about 80 ms for one problem's key): Jinja keys
    each entry by the template's name and checks its source's checksum and Jinja's version,
    so an edited template, or another Jinja, compiles again.  A build's forkserver fills
    the memory (``precompile``) for the workers it forks."""

    def __init__(self) -> None:
        self.codes: dict[str, bytes] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        if bucket.key not in self.codes:
            stored = native.load_signed(_file_name(bucket.key), MAX_TEMPLATE_CODE)
            if stored is None:
                return
            self.codes[bucket.key] = stored
        bucket.bytecode_from_string(self.codes[bucket.key])

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self.codes[bucket.key] = code = bucket.bytecode_to_string()
        native.store_signed(_file_name(bucket.key), code)


#: The largest compiled template kept on disk (the largest is about 200 KB).
MAX_TEMPLATE_CODE = 8 * 2**20


def _file_name(key: str) -> str:
    # Jinja's key is a hex digest of the template's name (and file): a plain file name.
    return f"template-{key}.jinja"


_COMPILED = _Compiled()


def precompile() -> None:
    """Compile every template of derive's own folder into the shared cache."""
    env = environment(Notation())
    for path in sorted(template_dir().rglob("*.j2")):
        env.get_template(path.relative_to(template_dir()).as_posix())


class KeyEnvironment(jinja2.Environment):
    """A Jinja environment whose ``tex`` filters print through ``printer``."""

    printer: KeyPrinter


def ordering(problem) -> Ordering | None:
    """The order ``problem``'s model is written in, for the printer (None: SymPy's)."""
    order = problem.written_order()
    return None if order is None else Ordering(*order)


def environment(notation: Notation) -> KeyEnvironment:
    """A Jinja environment whose ``tex`` filters print in ``notation``."""
    env = KeyEnvironment(
        loader=jinja2.ChoiceLoader(
            [jinja2.FileSystemLoader(template_dir()), PluginTemplates()]
        ),
        block_start_string="((*",
        block_end_string="*))",
        variable_start_string="(((",
        variable_end_string=")))",
        comment_start_string="((=",
        comment_end_string="=))",
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        bytecode_cache=_COMPILED,
    )
    printer = env.printer = KeyPrinter(notation)
    env.filters["tex"] = lambda e: closed(printer.doprint(e))
    env.filters["terms"] = lambda e: [closed(term) for term in _terms(printer, e)]
    env.filters["esc"] = escape
    env.filters["sci"] = sci
    env.filters["sig6"] = sig6
    env.filters["sig3"] = sig3
    env.filters["millions"] = millions
    env.filters["approx"] = approx
    env.globals["display_rows"] = breaks.rows
    env.filters["fits"] = breaks.fits
    env.filters["blocks"] = breaks.blocks
    env.filters["table_fits"] = breaks.table_fits
    env.filters["entries"] = breaks.entries
    env.filters["power_base"] = breaks.power_base
    env.globals["evidence_view"] = _views(printer)
    env.globals["evidence_constants"] = EVIDENCE_CONSTANTS  # what the legend explains
    env.globals["curve_plot"] = curve_plot  # templates place exported series on a plot
    return env


def _terms(printer: KeyPrinter, expr: Any) -> list[str]:
    args = printer.terms(expr) if isinstance(expr, sp.Basic) else [expr]
    out = []
    for i, a in enumerate(args):
        s = printer.doprint(a)
        if i and not s.startswith("-"):
            s = "+ " + s
        elif i:
            s = "- " + s[1:].lstrip()
        out.append(s)
    return out


def render(pset, problems: list, *, handout: bool = False, version: str = "") -> str:
    """The LaTeX source of ``pset``'s answer key, or of its student handout.

    A handout renders each problem's question template only, with the data the question
    gives (``Problem.question_data``) and the set's part labels; nothing derived reaches
    it.  ``version`` names a per-student variant in the title.
    """
    env = environment(pset.notation)
    numbered = list(enumerate(problems, start=1))
    body = [render_problem(pset, p, n, handout=handout, env=env) for n, p in numbered]
    appendix = [] if handout else [render_evidence(pset, p, n, env=env) for n, p in numbered]
    return render_page(pset, body, handout=handout, version=version, env=env, appendix=appendix)


def render_problem(
    pset, problem, number: int, *, handout: bool = False, env: jinja2.Environment | None = None
) -> str:
    """Problem ``number`` of ``pset``: its heading and question, and for a key its solution.

    A key whose form does not restate questions (``Form.restate``) prints the heading alone
    above the solution.
    """
    env = env or environment(pset.notation)
    common = {
        "number": number,
        "problem": problem,
        "data": problem.question_data(),
        # The set's part headings, so that question and solution number parts alike.
        "labels": pset.labels.get(problem.key, {}),
        "points": pset.points.get(problem.key, {}),
        # The set's words for the question and its omitted optional parts (m.said).
        "wording": pset.questions.get(problem.key, BUNDLED),
        # What the set declares its source printed: the only material remarks may discuss.
        "original": pset.original.get(problem.key, {}),
        "form": pset.form,
    }
    heading = env.get_template("heading.tex.j2").render(**common)
    with env.printer.ordered(ordering(problem)):
        if handout or pset.form.restate:
            question = heading + env.get_template(problem.question_template).render(**common)
        else:
            question = heading  # the solution follows the heading; the handout has the question
        if handout:
            return question
        tpl = env.get_template(problem.template)
        return tpl.render(question=question, **common, **problem.context())


def _views(printer: KeyPrinter):
    """``evidence_view`` for templates, arranged once per problem and checks: a compact key
    asks for it twice, for the problem's evidence line and for its part of the appendix."""
    made: dict[tuple, Any] = {}

    def view(problem, checks):
        key = (id(problem), tuple(map(id, checks)))
        if key not in made:
            made[key] = (problem, evidence_view(problem, checks,
                                                lambda e: closed(printer.doprint(e))))
        return made[key][1]  # the problem is kept with its view, so its id stays its own

    return view


def render_evidence(
    pset, problem, number: int, *, env: jinja2.Environment | None = None
) -> str:
    """Problem ``number``'s part of the instructors' evidence appendix: its tables, in a
    key whose form prints one line per problem ("" in any other form)."""
    if pset.form.evidence != "line":
        return ""
    env = env or environment(pset.notation)
    with env.printer.ordered(ordering(problem)):  # claim names as the body prints them
        return env.get_template("evidence.tex.j2").render(
            number=number, problem=problem, checks=problem.checks,
            labels=pset.labels.get(problem.key, {}),
        )


def render_page(
    pset,
    body: list[str],
    *,
    handout: bool = False,
    version: str = "",
    env: jinja2.Environment | None = None,
    appendix: list[str] | None = None,
) -> str:
    """The whole document around the problems' rendered ``body`` parts, and for a key the
    ``appendix`` parts (``render_evidence``) at its end."""
    env = env or environment(pset.notation)
    page = "handout.tex.j2" if handout else "answer_key.tex.j2"
    text, extra = "\n".join(body), "\n".join(a for a in appendix or () if a)
    # The legend explains the verdict "detected" only where some check gives it.
    detected = DETECTED in text or DETECTED in extra
    return env.get_template(page).render(
        pset=pset, body=text, version=version, appendix=extra, detected=detected,
    )


def preamble(pset, *, handout: bool = False) -> str:
    """The LaTeX before the body of ``pset``'s key (or handout): what its LaTeX runs can
    load before any problem is derived (``derive.render.pdf.ahead``)."""
    return passes.split(render_page(pset, [], handout=handout))[0]


#: How an evidence row prints the verdict of a check that found an error in given data.
DETECTED = r"\textit{detected}"
