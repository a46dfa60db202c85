"""Tests for derive.render.pdf and its runs (derive.render.passes); they run the real pdflatex.

Without a TeX engine the compiling tests fail (NoTexEngineError) rather than skip.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from derive.errors import DeriveError, InputError, LatexError, NoTexEngineError
from derive.render import passes, pdf
from derive.render.passes import excerpt
from derive.render.pdf import compile_pdf, find_engine, pdf_text

pytestmark = pytest.mark.pdf
OLD = b"%PDF-1.5 previous answer key\n"


def doc(body: str) -> str:
    """A minimal article with `body` starting on line 4 of the source."""
    return (
        "\\documentclass{article}\n"
        "\\usepackage{amsmath}\n"
        "\\begin{document}\n"
        f"{body}\n"
        "\\end{document}\n"
    )


def fails(tex: str, dest: Path, **kwargs: float) -> LatexError:
    with pytest.raises(LatexError) as info:
        compile_pdf(tex, dest, **kwargs)
    assert info.value.exit_code == 4
    return info.value


def test_amsmath_document_compiles(tmp_path: Path) -> None:
    dest = tmp_path / "out" / "key.pdf"  # parent is created on demand
    body = "Answer key 42 \\today\n\\begin{align}x^2 &= 4\\\\ x &= \\pm 2\\end{align}"
    compile_pdf(doc(body), dest)
    text = pdf_text(dest)
    assert "Answer key 42" in text
    assert "January 1, 1970" in text  # FORCE_SOURCE_DATE pins \today as well
    assert dest.read_bytes().startswith(b"%PDF-")
    assert [p.name for p in dest.parent.iterdir()] == ["key.pdf"]


def test_two_compiles_are_byte_identical(tmp_path: Path) -> None:
    tex = doc("Same source $\\int_0^1 x\\,dx = \\tfrac12$ \\today")
    compile_pdf(tex, tmp_path / "a.pdf")
    compile_pdf(tex, tmp_path / "b.pdf")
    first, second = (tmp_path / "a.pdf").read_bytes(), (tmp_path / "b.pdf").read_bytes()
    assert b"/ID" in first  # identical with an /ID, not by leaving it out
    assert first == second


def test_error_reports_log_lines_and_keeps_dest(tmp_path: Path) -> None:
    dest = tmp_path / "key.pdf"
    dest.write_bytes(OLD)
    err = fails(doc("fine\n\\undefinedmacro"), dest)
    assert "answer-key.tex:5: Undefined control sequence" in str(err)
    assert "\\undefinedmacro" in str(err)  # the context line after the error
    assert len(str(err).splitlines()) <= 21
    assert dest.read_bytes() == OLD
    assert [p.name for p in tmp_path.iterdir()] == ["key.pdf"]


def test_failed_rerun_does_not_install_stale_pdf(tmp_path: Path) -> None:
    # Run 1 succeeds and writes a PDF; the label makes LaTeX run again, and run 2 fails
    # before shipping a page, so the first run's PDF is still in the work directory.
    body = "\\makeatletter\\ifdefined\\r@x \\undefinedmacro\\fi\\makeatother\n"
    dest = tmp_path / "key.pdf"
    fails(doc(body + "\\section{A}\\label{x}"), dest)
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []


def processes_in(directory: Path) -> list[int]:
    """Pids of processes whose working directory is `directory` or below it."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cwd = os.readlink(proc / "cwd")
        except OSError:  # not a process, gone, or not ours
            continue
        if cwd.startswith(f"{directory}/"):
            pids.append(int(proc.name))
    return pids


@pytest.mark.slow
def test_infinite_loop_times_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"  # the TemporaryDirectory goes here, so we can watch it
    work.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(work))
    caught: list[LatexError] = []

    def compile_loop() -> None:
        try:
            compile_pdf(doc("\\def\\x{\\x}\\x"), tmp_path / "key.pdf", timeout=3)
        except LatexError as exc:
            caught.append(exc)

    # A thread, so a pdflatex that survives (and holds the pipe open) fails the test
    # instead of hanging it.
    start = time.monotonic()
    thread = threading.Thread(target=compile_loop, daemon=True)
    thread.start()
    thread.join(30)
    survivors = processes_in(work)
    for pid in survivors:  # don't leave a looping TeX behind when this test fails
        os.kill(pid, signal.SIGKILL)
    assert survivors == []
    assert time.monotonic() - start < 30
    assert len(caught) == 1
    assert "timed out after 3 s" in str(caught[0])
    assert caught[0].exit_code == 4
    assert list(tmp_path.iterdir()) == [work]
    assert list(work.iterdir()) == []


def test_absolute_input_is_refused(tmp_path: Path) -> None:
    dest = tmp_path / "key.pdf"
    err = fails(doc("\\input{/etc/passwd}"), dest)
    assert "root:" not in str(err)
    assert ":/bin/" not in str(err)  # no other passwd line either
    assert not dest.exists()


def test_readable_file_outside_work_dir_is_refused(tmp_path: Path) -> None:
    # Valid TeX, so without openin_any=p this compiles and the secret is in the PDF.
    secret = tmp_path / "secret.tex"
    secret.write_text("SECRETWORD\n")
    dest = tmp_path / "key.pdf"
    err = fails(doc(f"\\input{{{secret}}}"), dest)
    assert "SECRETWORD" not in str(err)
    assert not dest.exists()


def test_write_outside_work_dir_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "written.tex"
    body = f"\\newwrite\\f\\immediate\\openout\\f={target}\\immediate\\write\\f{{x}}"
    with pytest.raises(LatexError):
        compile_pdf(doc(body), tmp_path / "key.pdf")
    assert not target.exists()


def test_shell_escape_is_disabled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # shell_escape=t in the environment turns on \write18 unless the command line
    # says otherwise; the compile must still refuse it.
    monkeypatch.setenv("shell_escape", "t")
    marker = tmp_path / "MARKER"
    compile_pdf(doc(f"\\immediate\\write18{{touch {marker}}}done"), tmp_path / "k.pdf")
    assert "done" in pdf_text(tmp_path / "k.pdf")
    assert not marker.exists()


def test_no_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert find_engine() is None
    with pytest.raises(NoTexEngineError) as info:
        compile_pdf(doc("x"), tmp_path / "key.pdf")
    assert info.value.exit_code == 3
    message = str(info.value)
    assert "\n" not in message
    assert (
        "apt-get install --no-install-recommends texlive-latex-base "
        "texlive-latex-recommended" in message
    )
    assert not (tmp_path / "key.pdf").exists()


def test_find_engine_returns_pdflatex() -> None:
    engine = find_engine()
    assert engine is not None
    assert Path(engine).name == "pdflatex"


def test_parent_is_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(InputError) as info:
        compile_pdf(doc("x"), blocker / "sub" / "key.pdf")
    assert str(blocker) in str(info.value)
    assert blocker.read_text() == "not a directory"


def test_dest_is_a_directory(tmp_path: Path) -> None:
    # Fails only at os.replace, after the temporary copy was made: it must be removed.
    (tmp_path / "key.pdf").mkdir()
    with pytest.raises(InputError):
        compile_pdf(doc("x"), tmp_path / "key.pdf")
    assert [p.name for p in tmp_path.iterdir()] == ["key.pdf"]
    assert list((tmp_path / "key.pdf").iterdir()) == []


def test_log_excerpt_is_capped() -> None:
    log = "".join(f"! error {i}\nl.{i} context\n\n" for i in range(30))
    lines = excerpt(log, "ignored").splitlines()
    assert lines[:3] == ["! error 0", "l.0 context", ""]
    assert len(lines) == 20


def test_log_excerpt_without_log_uses_terminal_tail() -> None:
    terminal = "\n".join(f"line {i}" for i in range(50))
    assert excerpt("", terminal).splitlines() == [f"line {i}" for i in range(30, 50)]


def test_pdf_text_without_pdftotext(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DeriveError, match="pdftotext"):
        pdf_text(tmp_path / "any.pdf")


# -- runs started ahead (derive.render.passes) -----------------------------------------------------
def latex_dirs() -> list[Path]:
    return sorted(Path(tempfile.gettempdir()).glob("derive-latex-*"))


def test_runs_started_ahead_give_the_same_bytes() -> None:
    tex = doc("Started ahead $\\sum_i x_i$ \\today")
    cold = pdf.typeset(tex)
    head, _ = passes.split(tex)
    with pdf.ahead(head, 2):
        (entry,) = pdf._ahead
        assert len(entry.ready) == 1 and entry.left == 1  # one document started ahead
        warm = pdf.typeset(tex)
        assert len(entry.ready) == 1 and entry.left == 0  # taken, and the next one started
    assert pdf._ahead == []
    assert warm == cold


def test_runs_started_before_the_preamble_is_known() -> None:
    tex = doc("Preamble given later")
    cold = pdf.typeset(tex)
    head, _ = passes.split(tex)
    with pdf.ahead(None, 1):
        (entry,) = pdf._ahead
        (waiting,) = entry.ready
        assert entry.head is None and all(r.proc.poll() is None for r in waiting._runs)
        with pdf.ahead(head, 2):  # the build names the preamble: it joins the runs
            assert pdf._ahead == [entry] and entry.head == head and entry.left == 1
            warm = pdf.typeset(tex)
        assert entry.ready and entry.ready[0] is not waiting  # the next document's runs
    assert pdf._ahead == []
    assert warm == cold


@pytest.mark.parametrize("given", [True, False], ids=["preamble given", "never given"])
def test_unused_runs_are_stopped_and_removed(given: bool) -> None:
    before = latex_dirs()
    head = passes.split(doc("x"))[0] if given else None
    with pdf.ahead(head, 3):
        (entry,) = pdf._ahead
        runs = [run.proc for run in entry.ready[0]._runs]
        assert len(runs) == 2 and all(proc.poll() is None for proc in runs)
    assert all(proc.poll() is not None for proc in runs)
    assert latex_dirs() == before


def test_cross_references_are_resolved() -> None:
    data = pdf.typeset(doc("\\section{First}\\label{s}See section~\\ref{s} on page~\\pageref{s}."))
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "k.pdf").write_bytes(data)
        text = pdf_text(Path(tmp) / "k.pdf")
    assert "See section 1 on page 1." in text
    assert "??" not in text


def test_runs_that_never_settle_fail() -> None:
    # Every run writes a count one higher than it read: no run reads what it writes.
    body = (
        "\\makeatletter\\ifdefined\\runs\\else\\gdef\\runs{0}\\fi"
        "\\immediate\\write\\@auxout{\\gdef\\string\\runs{\\the\\numexpr\\runs+1\\relax}}"
        "\\makeatother Run \\runs."
    )
    with pytest.raises(LatexError, match=f"did not settle in {passes.MAX_PASSES} runs"):
        pdf.typeset(doc(body))


def test_split_cuts_at_the_body() -> None:
    tex = doc("x")
    head, body = passes.split(tex)
    assert head + body == tex
    assert body.startswith("\\begin{document}\n") and "\\begin{document}" not in head
    assert passes.split("no body here") == ("", "no body here")


@pytest.mark.slow
def test_runs_started_ahead_end_when_derive_is_killed(tmp_path: Path) -> None:
    """SIGKILL leaves derive no chance to stop them: each run reads the end of its source
    (the pipe's other end closed with derive) and stops by itself."""
    code = (
        "import os, signal, sys\n"
        "from derive.render import pdf\n"
        "with pdf.ahead(sys.argv[1], 1):\n"
        "    (entry,) = pdf._ahead\n"
        "    print(*(r.proc.pid for r in entry.ready[0]._runs), flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    head, _ = passes.split(doc("x"))
    env = dict(os.environ, TMPDIR=str(tmp_path))
    run = subprocess.run(
        [sys.executable, "-c", code, head], capture_output=True, text=True, env=env, timeout=60
    )
    assert run.returncode == -signal.SIGKILL
    pids = [int(p) for p in run.stdout.split()]
    assert len(pids) == 2
    end = time.monotonic() + 10
    while (alive := [p for p in pids if _running(p)]) and time.monotonic() < end:
        time.sleep(0.05)
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    assert alive == []


def _running(pid: int) -> bool:
    """Whether ``pid`` runs (an exited process nobody reaped is a zombie: not running)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"
