"""Compile LaTeX source to PDF with pdflatex, safely and reproducibly.

Contract for callers:

* The source is compiled as job ``answer-key`` in a fresh temporary directory, so it
  cannot rely on files next to the destination; ``\\input`` and ``\\include`` may only
  name files below that directory (``openin_any=p``), and absolute paths are refused.
* Files it includes (``combine``'s PDFs) are written beside it under plain names.
* Shell escape is off, whatever the user's TeX configuration says.
* pdflatex runs (``derive.render.passes``) until what a run writes for the next (``.aux``,
  ``.out``) is what it read, as latexmk would run it; within ``ahead`` the runs for a
  document start on its preamble before its body exists.
* Dates are pinned to the Unix epoch (``SOURCE_DATE_EPOCH=0``, ``FORCE_SOURCE_DATE=1``),
  so ``\\today`` prints 1 January 1970; do not use it in an answer key.
* No preamble line is needed for reproducibility: with ``SOURCE_DATE_EPOCH`` set,
  pdfTeX derives the trailer ``/ID`` from the date and the job name only, and the job
  name is fixed, so compiling the same source twice gives byte-identical PDFs.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from derive.errors import DeriveError, NoTexEngineError
from derive.fsutil import atomic_write, make_parent
from derive.render import passes

JOB_NAME = passes.JOB_NAME
INSTALL_HINT = (
    "no LaTeX engine found (need pdflatex on PATH); on Debian install it with: "
    "apt-get install --no-install-recommends texlive-latex-base texlive-latex-recommended"
)


def find_engine() -> str | None:
    """Find the LaTeX engine.

    Returns
    -------
    str or None
        Path of pdflatex if it is on PATH, else None.
    """
    return shutil.which("pdflatex")


def typeset(tex: str, *, files: dict[str, bytes] | None = None, timeout: float = 120.0) -> bytes:
    """Compile the LaTeX document ``tex`` and return the PDF's bytes.

    Parameters
    ----------
    tex : str
        Complete LaTeX document.
    files : dict of str to bytes, optional
        Files the document reads (``\\includepdf``), by plain name, written beside it.
    timeout : float
        Seconds before the whole LaTeX process group is killed.

    Raises
    ------
    NoTexEngineError
        pdflatex is not on PATH.
    LatexError
        LaTeX failed or timed out; the message carries the relevant log lines.
    """
    return typeset_with_log(tex, files=files, timeout=timeout)[0]


def typeset_with_log(
    tex: str, *, files: dict[str, bytes] | None = None, timeout: float = 120.0
) -> tuple[bytes, str]:
    """As ``typeset``, and the log of LaTeX's last run besides the PDF's bytes (where the
    layout tests read overfull boxes)."""
    engine = find_engine()
    if engine is None:
        raise NoTexEngineError(INSTALL_HINT)
    for name in files or {}:
        _plain_name(name)
    head, body = passes.split(tex)
    with _typesetting(engine, head, files) as doc:
        return doc.finish(body, timeout)


# -- runs started ahead ----------------------------------------------------------------------
@dataclass
class _Ahead:
    """Documents beginning with ``head`` (None: not known yet) whose runs are started
    before their text exists: ``left`` still to start, ``ready`` started, not yet taken."""

    engine: str
    head: str | None
    left: int
    ready: list[passes.Typesetting] = field(default_factory=list)

    def start_next(self) -> None:
        if self.left > 0 and not self.ready:
            self.left -= 1
            self.ready.append(passes.Typesetting(self.engine, self.head))


_ahead_lock = threading.Lock()
_ahead: list[_Ahead] = []


@contextlib.contextmanager
def ahead(head: str | None, count: int) -> Iterator[None]:
    """Within the block, LaTeX for ``count`` documents whose preamble is ``head`` starts
    before their text exists, one document ahead: ``typeset`` of such a document takes the
    runs started for it (their preamble loaded meanwhile) and starts the next one's.

    With ``head`` None the first document's runs start at once and load TeX's format; an
    ``ahead`` inside the block that names the preamble gives it to them (and its count).
    Runs not taken are stopped on the way out."""
    engine = find_engine()
    if engine is None or count < 1 or head == "":
        yield
        return
    if head is not None and _join(head, count):
        yield  # the waiting runs are the outer block's to stop
        return
    entry = _Ahead(engine, head, count)
    with _ahead_lock:
        _ahead.append(entry)
    try:
        entry.start_next()
        yield
    finally:
        with _ahead_lock:
            _ahead.remove(entry)
            unused, entry.ready = entry.ready, []
        for doc in unused:
            doc.close()


def _join(head: str, count: int) -> bool:
    """Give ``head`` to runs started without a preamble; whether there were any."""
    with _ahead_lock:
        waiting = next((e for e in _ahead if e.head is None), None)
        if waiting is None:
            return False
        waiting.head = head
        waiting.left = max(waiting.left, count - 1)  # one document is started already
        for doc in waiting.ready:
            doc.begin(head)
    return True


def _typesetting(engine: str, head: str, files: dict[str, bytes] | None) -> passes.Typesetting:
    """Runs for a document with preamble ``head``: started ahead for it, or now."""
    with _ahead_lock:
        entry = next((e for e in _ahead if e.head == head and not files), None)
        taken = entry.ready.pop() if entry is not None and entry.ready else None
        if entry is not None and taken is not None:
            entry.start_next()
    return taken or passes.Typesetting(engine, head, files)


#: TeX's report of a box wider than its line: "Overfull \\hbox (12.3pt too wide) in
#: paragraph at lines 82--92" (or "in alignment at lines", or "detected at line 65").
_OVERFULL = re.compile(
    r"^Overfull \\hbox \((\d+(?:\.\d+)?)pt too wide\) (.*?at lines? (\d+)(?:--(\d+))?)"
)


@dataclass(frozen=True)
class Overfull:
    """A box TeX could not fit in its line: how much too wide, where in the source (the
    first and last line), and TeX's one-line sketch of its content."""

    points: float
    where: str
    lines: tuple[int, int]
    content: str


def overfull_boxes(log: str, limit: float = 0.0) -> list[Overfull]:
    """The overfull boxes a LaTeX ``log`` reports over ``limit`` points (the log of
    ``typeset_with_log``, whose lines TeX does not wrap)."""
    lines = log.splitlines()
    out = []
    for k, line in enumerate(lines):
        m = _OVERFULL.match(line)
        if m and float(m.group(1)) > limit:
            first = int(m.group(3))
            last = int(m.group(4) or first)
            content = lines[k + 1] if k + 1 < len(lines) else ""
            out.append(Overfull(float(m.group(1)), m.group(2), (first, last), content))
    return out


def combine(parts: list[bytes], *, timeout: float = 120.0) -> bytes:
    """One PDF holding every page of ``parts``, in order (every version, to print at once).

    A LaTeX run like any other (``typeset``: the same flags, in a fresh directory) includes
    each part with ``pdfpages`` at its own paper size, so nothing is scaled; the parts'
    names and the date are fixed, so the same parts give the same bytes.
    """
    names = {f"part-{i:04d}.pdf": data for i, data in enumerate(parts, start=1)}
    tex = "\n".join(
        [
            r"\nofiles",  # no .aux: one pdflatex run, not two
            r"\documentclass{article}",
            r"\usepackage{pdfpages}",
            r"\begin{document}",
            *(rf"\includepdf[pages=-,fitpaper]{{{name}}}" for name in names),
            r"\end{document}",
            "",
        ]
    )
    return typeset(tex, files=names, timeout=timeout)


def _plain_name(name: str) -> str:
    # A file beside the document: no folder, nothing TeX reads specially, not the job's own.
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*\.pdf", name) or name.startswith(JOB_NAME):
        raise ValueError(f"not a plain PDF name for a LaTeX input: {name!r}")
    return name


def compile_pdf(tex: str, dest: Path, *, timeout: float = 120.0) -> None:
    """Compile LaTeX source ``tex`` to the PDF file ``dest`` (see ``typeset``); ``dest`` is
    replaced atomically and left untouched on any failure.

    Raises
    ------
    InputError
        The directory of ``dest`` cannot be created or written.
    """
    make_parent(dest)
    atomic_write(dest, typeset(tex, timeout=timeout))


def pdf_text(path: Path) -> str:
    """Extract the text of a PDF with ``pdftotext -layout``.

    Parameters
    ----------
    path : Path
        The PDF file.

    Returns
    -------
    str
        The text, laid out roughly as on the page.

    Raises
    ------
    DeriveError
        pdftotext is missing or cannot read the file.
    """
    exe = shutil.which("pdftotext")
    if exe is None:
        raise DeriveError("pdftotext not found; on Debian: apt-get install poppler-utils")
    proc = subprocess.run(
        [exe, "-layout", str(path), "-"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise DeriveError(f"pdftotext failed on {path}: {proc.stderr.strip()}")
    return proc.stdout
