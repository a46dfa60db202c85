"""pdflatex runs that load their preamble before the document's body exists.

Of a 0.19 s pdflatex run on an answer key, 0.16 s pass before ``\\begin{document}``:
starting, loading the format, loading the packages.  The preamble is the page template's,
known before any problem is derived, so a ``Typesetting`` starts its runs on it at once
and they do that part while derive is still deriving; the body follows when it is
rendered, and only what comes after ``\\begin{document}`` is left to wait for.

Each run (a ``Pass``) has a folder of its own: it reads ``answer-key.tex`` there, a link
to its own standard input, a pipe whose other end only derive holds.  So when derive ends,
however it ends (SIGKILL included), TeX reads the end of its file and stops; and unlike
a named pipe, opening an anonymous one never waits for a writer.  What a run writes for
the next one to read (``.aux``, ``.out``, ...) is copied into the next run's folder before
the next run gets its body (TeX reads it at ``\\begin{document}``), and runs are repeated,
as latexmk repeats them, until a run reads what it writes.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import subprocess
import sys
import time
import weakref
from contextlib import ExitStack
from pathlib import Path

from derive import procs
from derive.errors import LatexError

JOB_NAME = "answer-key"
SOURCE, LOG, PDF = (f"{JOB_NAME}.{ext}" for ext in ("tex", "log", "pdf"))
PDFLATEX_OPTIONS = (
    "-no-shell-escape",
    "-halt-on-error",
    "-interaction=nonstopmode",
    "-file-line-error",
)
#: TeX would read the source's first line twice (for a ``%&format`` line): a pipe once.
_PIPE_OPTIONS = ("-no-parse-first-line", f"-jobname={JOB_NAME}")
#: A run's standard input, as the run itself opens it (Linux).
_OWN_STDIN = "/proc/self/fd/0"
#: Runs until what a run writes is what it read (latexmk's default limit).
MAX_PASSES = 5
#: Where the body starts: everything before it is the preamble a run can load early.
BODY_START = "\\begin{document}"
MAX_ERROR_LINES = 20


def supported() -> bool:
    """Whether a run can read its source from a pipe here (Linux's ``/proc/self/fd``)."""
    return sys.platform.startswith("linux") and Path(_OWN_STDIN).exists()


def split(tex: str) -> tuple[str, str]:
    """``tex`` cut where its body starts (the first line opening with ``\\begin{document}``):
    the preamble, and the rest; all of it is the rest if there is no such line."""
    at = 0 if tex.startswith(BODY_START) else tex.find("\n" + BODY_START) + 1
    return tex[:at], tex[at:]


def tex_env() -> dict[str, str]:
    """The environment every LaTeX run gets: reads and writes only below its folder, dates
    pinned (so the same source gives the same bytes), log lines unwrapped."""
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


#: The runs whose pipes this process holds open (a forked child closes its copies).
_OPEN: weakref.WeakSet[Pass] = weakref.WeakSet()


def _close_in_child() -> None:
    # A child forked from derive (``derive.verify.apart``) must not keep a run's source
    # open: TeX would then not read its end when derive ends.
    for run in list(_OPEN):
        run._close_pipe()


os.register_at_fork(after_in_child=_close_in_child)


class Pass:
    """One pdflatex run in ``folder``, fed its source through a pipe as it becomes known."""

    def __init__(self, pdflatex: str, folder: Path, inputs: dict[str, Path]) -> None:
        folder.mkdir()
        self.folder, self._inputs = folder, set(inputs)
        for name, path in inputs.items():
            _link(path, folder / name)
        self._terminal = folder.with_name(folder.name + ".terminal")
        self._cmd = [pdflatex, *PDFLATEX_OPTIONS, *_PIPE_OPTIONS, SOURCE]
        self._pending, self._pipe, self.proc = b"", -1, None
        if supported():
            (folder / SOURCE).symlink_to(_OWN_STDIN)
            read, self._pipe = os.pipe()
            os.set_blocking(self._pipe, False)
            _OPEN.add(self)
            try:
                self._spawn(read)
            except BaseException:
                self._close_pipe()
                raise
            finally:
                os.close(read)

    def _spawn(self, stdin: int) -> None:
        with self._terminal.open("wb") as out:
            self.proc = procs.spawn(
                self._cmd, cwd=self.folder, env=tex_env(), stdin=stdin, stdout=out
            )

    def send(self, text: str) -> None:
        """Append ``text`` to the source (what the pipe does not take now waits for
        ``finish``)."""
        self._pending += text.encode("utf-8")
        if self.proc is not None:
            self._flush()

    def finish(self, deadline: float) -> int:
        """End the source and wait for TeX; its exit status.

        Raises
        ------
        procs.Timeout
            TeX ran past ``deadline`` (``time.monotonic``); its process group is killed.
        """
        if self.proc is None:  # no pipes here: the source is a file, read once it is whole
            (self.folder / SOURCE).write_bytes(self._pending)
            self._pending = b""
            self._spawn(subprocess.DEVNULL)
        while self._pending and self.proc.poll() is None:
            select.select([], [self._pipe], [], _left(deadline, 0.1))
            self._flush()
        self._close_pipe()
        try:
            self.proc.wait(_left(deadline))
        except subprocess.TimeoutExpired:
            self.stop()
            raise procs.Timeout("pdflatex ran past its deadline and was killed") from None
        procs.end(self.proc, kill=False)
        return self.proc.returncode

    def stop(self) -> None:
        """Kill the run (if it still runs) and let it go."""
        self._close_pipe()
        # A run reaped already is not killed: its process id may be another's by now.
        if self.proc is not None and self.proc.returncode is None:
            procs.end(self.proc, kill=True)

    def carry(self, files: dict[str, bytes]) -> None:
        """Give the run what the previous one wrote (before its body: TeX reads it there)."""
        for name, data in files.items():
            (self.folder / name).write_bytes(data)

    def written(self) -> dict[str, bytes]:
        """What the run wrote for a next run to read (its ``.aux``, ``.out``, ...)."""
        own = {SOURCE, LOG, PDF, *self._inputs}
        files = sorted(p for p in self.folder.iterdir() if p.name not in own and p.is_file())
        return {p.name: p.read_bytes() for p in files}

    def log(self) -> str:
        log = self.folder / LOG
        return log.read_text("utf-8", errors="replace") if log.is_file() else ""

    def terminal(self) -> str:
        """What TeX printed (where a failure before the log opened shows)."""
        return self._terminal.read_text("utf-8", errors="replace")

    def _flush(self) -> None:
        while self._pending:
            try:
                n = os.write(self._pipe, self._pending[: 1 << 16])
            except BlockingIOError:  # the pipe is full: TeX has not read that far yet
                return
            except BrokenPipeError:  # TeX has stopped; its exit status says why
                self._pending = b""
                return
            self._pending = self._pending[n:]

    def _close_pipe(self) -> None:
        if self._pipe >= 0:
            os.close(self._pipe)
            self._pipe = -1


class Typesetting:
    """One document typeset by pdflatex runs in ``work``, the first two started at once on
    ``head`` (its preamble), or, while ``head`` is None, waiting for it (``begin``);
    ``finish`` gives them the rest.

    ``close`` (or leaving the ``with`` block) stops every run still going and removes the
    folder.  ``inputs`` are files the document reads (``\\includepdf``), by plain name.
    """

    def __init__(
        self, pdflatex: str, head: str | None = "", inputs: dict[str, bytes] | None = None
    ) -> None:
        self._stack = ExitStack()
        self._work = self._stack.enter_context(procs.scratch("derive-latex-"))
        self._stack.callback(self._stop_all)
        self._pdflatex, self.head, self._runs = pdflatex, head, []
        self._inputs = {}
        try:
            for name, data in (inputs or {}).items():
                (self._work / name).write_bytes(data)
                self._inputs[name] = self._work / name
            for _ in range(2):  # the first run, and the second that reads what it writes
                self._start()
        except BaseException:
            self.close()
            raise

    def begin(self, head: str) -> None:
        """The preamble, for runs started without one (they have loaded TeX's format)."""
        if self.head is not None:
            raise ValueError("this document's preamble is already given")
        self.head = head
        for run in self._runs:
            run.send(head)

    def finish(self, body: str, timeout: float) -> tuple[bytes, str]:
        """Typeset the document ``head + body``: the PDF's bytes and the last run's log.

        Raises
        ------
        LatexError
            A run failed (the message carries its log's error lines), ran past ``timeout``
            seconds from now, or runs did not settle within ``MAX_PASSES``.
        """
        if self.head is None:
            raise ValueError("no preamble was given (begin)")
        deadline, read = time.monotonic() + timeout, {}
        for number in range(MAX_PASSES):
            run = self._runs[number] if number < len(self._runs) else self._start()
            run.carry(read)
            run.send(body)
            try:
                status = run.finish(deadline)
            except procs.Timeout:
                raise LatexError(
                    f"LaTeX timed out after {timeout:g} s (an infinite loop in the source?); "
                    "killed it"
                ) from None
            if status != 0:
                raise LatexError(
                    f"LaTeX failed (pdflatex exit status {status}):\n"
                    + excerpt(run.log(), run.terminal())
                )
            wrote = run.written()
            if wrote == read:
                return _pdf(run), run.log()
            read = wrote
        raise LatexError(f"LaTeX's cross-references did not settle in {MAX_PASSES} runs")

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> Typesetting:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> Pass:
        run = Pass(self._pdflatex, self._work / str(len(self._runs) + 1), self._inputs)
        self._runs.append(run)
        if self.head is not None:
            run.send(self.head)
        return run

    def _stop_all(self) -> None:
        for run in self._runs:
            run.stop()


def excerpt(log: str, terminal: str) -> str:
    """The log's error lines, each with the two after it (at most ``MAX_ERROR_LINES``);
    the end of what TeX printed when the log has none."""
    lines = log.splitlines()
    starts = [i for i, line in enumerate(lines) if _ERROR_LINE.match(line)]
    keep = sorted({j for i in starts for j in range(i, i + 3) if j < len(lines)})
    if not keep:
        return "\n".join(terminal.splitlines()[-MAX_ERROR_LINES:])
    return "\n".join(lines[j] for j in keep[:MAX_ERROR_LINES])


#: TeX's error lines: "! message" or, with -file-line-error, "./file.tex:12: message".
_ERROR_LINE = re.compile(r"^(!|\S[^:]*:\d+: )")


def _pdf(run: Pass) -> bytes:
    path = run.folder / PDF
    if not path.is_file():  # defensive: pdflatex exits nonzero for this
        raise LatexError("LaTeX produced no PDF:\n" + excerpt("", run.terminal()))
    return path.read_bytes()


def _left(deadline: float, most: float | None = None) -> float:
    left = max(0.0, deadline - time.monotonic())
    if left == 0.0 and most is not None:
        raise procs.Timeout("pdflatex ran past its deadline")
    return left if most is None else min(left, most)


def _link(source: Path, target: Path) -> None:
    # A hard link costs nothing; a copy where the filesystem has none.
    with contextlib.suppress(OSError):
        os.link(source, target)
        return
    shutil.copyfile(source, target)
