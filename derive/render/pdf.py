"""Compile LaTeX source to PDF with latexmk and pdflatex, safely and reproducibly.

Contract for callers:

* The source is compiled as job ``answer-key`` in a fresh temporary directory, so it
  cannot rely on files next to the destination; ``\\input`` and ``\\include`` may only
  name files below that directory (``openin_any=p``), and absolute paths are refused.
* Files it includes (``combine``'s PDFs) are written beside it under plain names.
* Shell escape is off, whatever the user's TeX configuration or ``latexmkrc`` says.
* Dates are pinned to the Unix epoch (``SOURCE_DATE_EPOCH=0``, ``FORCE_SOURCE_DATE=1``),
  so ``\\today`` prints 1 January 1970; do not use it in an answer key.
* No preamble line is needed for reproducibility: with ``SOURCE_DATE_EPOCH`` set,
  pdfTeX derives the trailer ``/ID`` from the date and the job name only, and the job
  name is fixed, so compiling the same source twice gives byte-identical PDFs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from derive import procs
from derive.errors import DeriveError, LatexError, NoTexEngineError
from derive.fsutil import atomic_write, make_parent

JOB_NAME = "answer-key"
INSTALL_HINT = (
    "no LaTeX engine found (need latexmk and pdflatex on PATH); on Debian install one "
    "with: apt-get install --no-install-recommends texlive-latex-base "
    "texlive-latex-recommended latexmk"
)
PDFLATEX_OPTIONS = (
    "-no-shell-escape",
    "-halt-on-error",
    "-interaction=nonstopmode",
    "-file-line-error",
)
MAX_ERROR_LINES = 20
CONTEXT_LINES = 2
# TeX error lines: "! message" or, with -file-line-error, "./file.tex:12: message".
_ERROR_LINE = re.compile(r"^(!|\S[^:]*:\d+: )")


def find_engine() -> str | None:
    """Find the LaTeX engine.

    Returns
    -------
    str or None
        Path of latexmk if it and pdflatex are both on PATH, else None.
    """
    latexmk = shutil.which("latexmk")
    # latexmk only drives the build; without pdflatex it would fail later and vaguely.
    if latexmk and shutil.which("pdflatex"):
        return latexmk
    return None


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
        latexmk or pdflatex is not on PATH.
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
    with procs.scratch("derive-latex-") as work:
        (work / f"{JOB_NAME}.tex").write_text(tex, encoding="utf-8")
        for name, data in (files or {}).items():
            (work / _plain_name(name)).write_bytes(data)
        status, output = _run(_command(engine), work, timeout)
        # Only the exit status counts: a failed rerun leaves the previous run's PDF.
        if status != 0:
            excerpt = _log_excerpt(work / f"{JOB_NAME}.log", output)
            raise LatexError(f"LaTeX failed (latexmk exit status {status}):\n{excerpt}")
        pdf = work / f"{JOB_NAME}.pdf"
        if not pdf.is_file():  # defensive: latexmk itself exits nonzero for this
            raise LatexError(f"LaTeX produced no PDF:\n{_tail(output)}")
        log = work / f"{JOB_NAME}.log"
        return pdf.read_bytes(), log.read_text(encoding="utf-8", errors="replace")


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
            r"\nofiles",  # no .aux: latexmk then needs one pdflatex run, not two
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


def _command(engine: str) -> list[str]:
    # -norc: a user's latexmkrc could redefine $pdflatex (e.g. turn on shell escape)
    # or change the build, which would break both safety and reproducibility.
    return [engine, "-norc", "-pdf", *PDFLATEX_OPTIONS, f"{JOB_NAME}.tex"]


def _tex_env() -> dict[str, str]:
    env = dict(os.environ)
    # TEXMFOUTPUT is an extra directory that paranoid mode still lets TeX use.
    env.pop("TEXMFOUTPUT", None)
    env.update(
        openin_any="p",  # read only below the working directory, no absolute paths
        openout_any="p",  # likewise for writing
        SOURCE_DATE_EPOCH="0",  # fixed dates and, through them, a fixed /ID
        FORCE_SOURCE_DATE="1",  # also pin \today and \time, not only PDF metadata
        max_print_line="10000",  # unwrapped log lines keep "file:line:" intact
    )
    return env


def _run(cmd: list[str], cwd: Path, timeout: float) -> tuple[int, str]:
    # procs.run gives latexmk a session of its own: one kill reaches every pdflatex it starts,
    # on a timeout and on an interruption of derive (the terminal's Ctrl-C no longer reaches it).
    try:
        done = procs.run(cmd, cwd=cwd, env=_tex_env(), timeout=timeout)
    except procs.Timeout:
        raise LatexError(
            f"LaTeX timed out after {timeout:g} s (an infinite loop in the source?); killed it"
        ) from None
    return done.returncode, done.output.decode("utf-8", errors="replace")


def _log_excerpt(log: Path, output: str) -> str:
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines() if log.is_file() else []
    starts = [i for i, line in enumerate(lines) if _ERROR_LINE.match(line)]
    keep = sorted({j for i in starts for j in range(i, i + 1 + CONTEXT_LINES)})
    picked = [lines[j] for j in keep if j < len(lines)]
    if not picked:  # no log, or no recognisable error in it: show what latexmk said
        return _tail(output)
    return "\n".join(picked[:MAX_ERROR_LINES])


def _tail(output: str) -> str:
    return "\n".join(output.splitlines()[-MAX_ERROR_LINES:])
