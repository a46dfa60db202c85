"""Outputs all at once or not at all, bounded workers, progress, and the exit status of a bug.

A set's files are rebuilt in a staging folder and swapped in; a variants run builds every
version and the index in one staging folder.  These tests fail a build half-way and check
that the earlier outputs are byte-identical and nothing is left beside them; that files a
build does not write survive it; that two builds into one folder both land; and that the
command line bounds its workers, reports progress on a terminal and tells a bug (exit 70)
from a failed verification (exit 1).
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

import derive.build
from derive import workers
from derive.cli import MAX_JOBS, main
from derive.errors import InputError, LatexError

ROOT = Path(__file__).resolve().parents[1]
QUIZ = """\
id = "quiz"
title = "Quiz"
course = "Course"
source = "written for the output tests"
problems = ["momentum"]
[vary.momentum]
beta = ["0.5", "0.6", "0.7", "0.8", "0.9"]
"""


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.fixture
def quiz(tmp_path: Path) -> Path:
    path = tmp_path / "quiz.toml"
    path.write_text(QUIZ, encoding="utf-8")
    return path


def _fail_on_call(monkeypatch, target, name: str, call: int) -> list[int]:
    """Make ``target.name`` raise LatexError on its ``call``-th call (1-based)."""
    real, calls = getattr(target, name), []

    def patched(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise LatexError("LaTeX failed (made to fail by the test)")
        return real(*args, **kwargs)

    monkeypatch.setattr(target, name, patched)
    return calls


def test_a_variants_run_failing_half_way_leaves_the_previous_versions(
    tmp_path: Path, quiz: Path, capsys, monkeypatch
) -> None:
    out = tmp_path / "out"
    args = ["build", str(quiz), "--out", str(out), "--format", "tex", "--jobs", "1"]
    assert main([*args, "--variants", "2", "--seed", "old"]) == 0
    before = _snapshot(out)
    # The third version's answer key fails to render: versions 1 and 2 are already written.
    calls = _fail_on_call(monkeypatch, derive.build, "render", 5)
    status = main([*args, "--variants", "4", "--seed", "new"])
    err = capsys.readouterr().err
    assert (status, err.count("\n")) == (4, 1), err
    assert len(calls) == 5  # the failure came after some versions were done
    assert _snapshot(out) == before
    assert sorted(p.name for p in out.iterdir()) == ["quiz"]


def test_a_key_failing_after_its_pdf_leaves_the_earlier_pair(tmp_path: Path, capsys, monkeypatch):
    """The key's PDF and source appear together: a failure between them changes neither."""
    out = tmp_path / "out"
    assert main(["build", "hw7", "--out", str(out), "--format", "tex"]) == 0
    (out / "hw7" / "answer-key.pdf").write_bytes(b"an earlier PDF")
    before = _snapshot(out)
    real = derive.fsutil.atomic_write
    written = []

    def second_write_fails(dest, data):
        written.append(dest.name)
        if len(written) == 2:  # what atomic_write raises when the disk is full
            raise InputError(f"cannot write {dest}: No space left on device")
        real(dest, data)

    monkeypatch.setattr(derive.fsutil, "atomic_write", second_write_fails)
    monkeypatch.setattr(derive.build.pdf, "typeset", lambda source, **kw: b"%PDF new")
    monkeypatch.setattr(derive.build.pdf, "find_engine", lambda: "latexmk")
    status = main(["build", "hw7", "--out", str(out), "--jobs", "1"])
    assert status == 2, capsys.readouterr().err
    assert written == ["answer-key.pdf", "answer-key.tex"]
    assert _snapshot(out) == before


def test_files_a_build_does_not_write_survive_it(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["build", "hw7", "--out", str(out), "--format", "tex", "--handout"]) == 0
    (out / "hw7" / "notes.txt").write_text("the instructor's own notes")
    handout = (out / "hw7" / "handout.tex").read_bytes()
    assert main(["build", "hw7", "--out", str(out), "--format", "tex"]) == 0
    assert (out / "hw7" / "handout.tex").read_bytes() == handout
    assert (out / "hw7" / "notes.txt").read_text() == "the instructor's own notes"
    assert (out / "hw7" / "answer-key.tex").is_file()
    assert [p.name for p in out.iterdir()] == ["hw7"]  # no staging folder left


def test_two_builds_into_one_folder_both_land(tmp_path: Path) -> None:
    """A key and a handout built at the same time into the same folder: each run's swap
    keeps the other's file (publishing takes a lock)."""
    out = tmp_path / "out"
    command = [sys.executable, "-m", "derive", "build", "hw7", "--out", str(out), "--format"]
    runs = [
        subprocess.Popen([*command, "tex"], cwd=ROOT, stderr=subprocess.PIPE),
        subprocess.Popen([*command, "tex", "--handout"], cwd=ROOT, stderr=subprocess.PIPE),
    ]
    for run in runs:
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err.decode()
    assert sorted(p.name for p in (out / "hw7").iterdir()) == ["answer-key.tex", "handout.tex"]


def test_staging_left_by_a_killed_run_is_removed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    abandoned = out / f".derive-staging-{dead.stdout.strip()}-0123456789ab"
    (abandoned / "hw7").mkdir(parents=True)
    assert main(["build", "hw7", "--out", str(out), "--format", "tex"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["hw7"]


# -- workers --------------------------------------------------------------------------------
def test_jobs_beyond_the_bound_are_refused(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["build", "hw7", "--jobs", str(MAX_JOBS + 1)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"expected a number from 1 to {MAX_JOBS}, got {MAX_JOBS + 1}" in err
    assert err.count("\n") == 1


def test_never_more_workers_than_versions(tmp_path: Path, quiz: Path, monkeypatch) -> None:
    sizes = []
    real = workers.pool
    monkeypatch.setattr(workers, "pool", lambda jobs: sizes.append(jobs) or real(jobs))
    args = ["build", str(quiz), "--out", str(tmp_path / "out"), "--format", "tex"]
    assert main([*args, "--variants", "2", "--jobs", "30"]) == 0
    assert sizes == [2]


def test_one_student_starts_no_worker_server(tmp_path: Path, quiz: Path, monkeypatch) -> None:
    started = []
    monkeypatch.setattr(workers, "warm_up", lambda: started.append("server"))
    monkeypatch.setattr(workers, "pool", lambda jobs: started.append("pool"))
    (tmp_path / "roster.txt").write_text("alice\n")
    args = ["build", str(quiz), "--students", str(tmp_path / "roster.txt")]
    assert main([*args, "--out", str(tmp_path / "out"), "--format", "tex"]) == 0
    assert started == []


def test_the_output_folder_is_checked_before_any_derivation(tmp_path: Path, monkeypatch, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    derived = []
    monkeypatch.setattr(derive.build, "make_problems", lambda *a: derived.append(1))
    status = main(["build", "hw7", "--out", str(blocker), "--format", "tex"])
    assert status == 2
    err = capsys.readouterr().err
    assert err == f"derive: error: output directory {blocker} is not a directory\n"
    assert derived == []


# -- progress and exit statuses -------------------------------------------------------------
class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_variants_report_progress_on_a_terminal(tmp_path: Path, quiz: Path, monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    args = ["build", str(quiz), "--out", str(tmp_path / "out"), "--format", "tex"]
    assert main([*args, "--variants", "3", "--jobs", "1"]) == 0
    lines = terminal.getvalue().split("\r")[1:]
    assert [line.split(" versions")[0] for line in lines] == [
        "derive: 1/3", "derive: 2/3", "derive: 3/3"
    ]
    assert all(" elapsed, about " in line and " left" in line for line in lines)
    assert lines[-1].endswith("\n")


def test_no_progress_line_off_a_terminal(tmp_path: Path, quiz: Path, capsys) -> None:
    args = ["build", str(quiz), "--out", str(tmp_path / "out"), "--format", "tex"]
    assert main([*args, "--variants", "2", "--jobs", "1"]) == 0
    assert capsys.readouterr().err == ""


def test_a_bug_exits_70_with_its_traceback(tmp_path: Path, monkeypatch, capsys) -> None:
    """Exit 1 means a verification failed; a bug in derive must not look like one."""

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(derive.build, "render_page", broken)
    status = main(["build", "hw7", "--out", str(tmp_path), "--format", "tex", "--jobs", "1"])
    err = capsys.readouterr().err
    assert status == 70
    assert "Traceback" in err and "ZeroDivisionError: a bug" in err
    assert err.endswith("derive: internal error (a bug in derive; please report it)\n")
