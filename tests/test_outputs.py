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
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import QUIZ, snapshot

import derive.build
import derive.cli
from derive import fsutil, procs, workers
from derive.cli import MAX_JOBS, main
from derive.errors import InputError, LatexError, WorkerLost
from derive.render.pdf import find_engine

ROOT = Path(__file__).resolve().parents[1]


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
    before = snapshot(out)
    # The third version's answer key fails to render: versions 1 and 2 are already written.
    calls = _fail_on_call(monkeypatch, derive.build, "render", 5)
    status = main([*args, "--variants", "4", "--seed", "new"])
    err = capsys.readouterr().err
    assert (status, err.count("\n")) == (4, 1), err
    assert len(calls) == 5  # the failure came after some versions were done
    assert snapshot(out) == before
    assert sorted(p.name for p in out.iterdir()) == ["quiz"]


def test_a_key_failing_after_its_pdf_leaves_the_earlier_pair(tmp_path: Path, capsys, monkeypatch):
    """The key's PDF and source appear together: a failure between them changes neither."""
    out = tmp_path / "out"
    assert main(["build", "hw7", "--out", str(out), "--format", "tex"]) == 0
    (out / "hw7" / "answer-key.pdf").write_bytes(b"an earlier PDF")
    before = snapshot(out)
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
    assert snapshot(out) == before


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


# -- review mends: workers, signals, folders -------------------------------------------------
def test_an_interruption_pickles_whole() -> None:
    """A worker's interruption reaches the parent with its signal, not 128 + 128 + n."""
    import pickle

    back = pickle.loads(pickle.dumps(procs.Interrupted(15)))
    assert (type(back), back.signum, back.code) == (procs.Interrupted, 15, 143)


def _answer_a_lock():
    import threading

    return threading.Lock()  # cannot be pickled


def _die_of_sigkill():
    os.kill(os.getpid(), signal.SIGKILL)


def _stopped_from_outside():
    os.kill(os.getpid(), signal.SIGTERM)  # as kill(1) of one worker would
    time.sleep(5)


def test_a_worker_answer_that_cannot_be_sent_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="a worker's answer could not be sent"):
        workers.run_in_child(_answer_a_lock)


def test_a_worker_killed_from_outside_is_one_line(capsys) -> None:
    with pytest.raises(WorkerLost) as info:
        workers.run_in_child(_die_of_sigkill)
    assert str(info.value) == (
        "a worker process was killed by SIGKILL before it answered (out of memory?)"
    )
    with pytest.raises(WorkerLost, match="stopped by SIGTERM, not by derive"):
        workers.run_in_child(_stopped_from_outside)


@pytest.mark.pdf
@pytest.mark.skipif(find_engine() is None, reason="needs latexmk and pdflatex")
def test_workers_stop_when_derive_is_killed(tmp_path: Path, quiz: Path) -> None:
    """SIGKILL gives derive no chance to stop anything; its workers notice their lifeline
    close and stop themselves, their latexmk with them."""
    tag = f"lifeline-{os.getpid()}-{time.monotonic_ns()}"
    env = dict(os.environ, DERIVE_TEST_TAG=tag)
    args = ["build", str(quiz), "--variants", "5", "--out", str(tmp_path / "out")]
    run = subprocess.Popen([sys.executable, "-m", "derive", *args], cwd=ROOT, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    end = time.monotonic() + 60
    while not any(n == "pdflatex" for _, n in _tagged(tag)) and time.monotonic() < end:
        time.sleep(0.01)
    assert run.poll() is None, "the run ended before its workers ran LaTeX"
    run.kill()
    run.wait()
    end = time.monotonic() + 10
    while (left := _tagged(tag)) and time.monotonic() < end:
        time.sleep(0.05)
    for pid, _ in left:
        os.kill(pid, signal.SIGKILL)
    assert left == []


def _tagged(tag: str) -> list[tuple[int, str]]:
    from test_interrupt import _processes

    return _processes(tag)


def test_a_signal_ignored_at_start_stays_ignored(tmp_path: Path) -> None:
    """Under nohup (SIGHUP ignored) a hangup does not interrupt the build."""
    code = (
        "import signal, subprocess, sys\n"
        "signal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
        "sys.exit(subprocess.call([sys.executable, '-m', 'derive'] + sys.argv[1:]))\n"
    )
    args = ["build", "hw7", "--out", str(tmp_path / "out"), "--format", "tex"]
    run = subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT,
                           stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                           start_new_session=True)
    time.sleep(1.0)
    os.killpg(run.pid, signal.SIGHUP)
    _, err = run.communicate(timeout=120)
    assert (run.returncode, err.decode()) == (0, "")
    assert (tmp_path / "out" / "hw7" / "answer-key.tex").is_file()


def test_an_interruption_after_one_set_names_it(tmp_path: Path, capsys, monkeypatch) -> None:
    """The message says which folders were already replaced, not that nothing changed."""
    out = tmp_path / "out"
    real = fsutil.swap_in
    calls = []

    def signal_after_the_first(staged, dest):
        real(staged, dest)
        calls.append(dest)
        if len(calls) == 1:  # Ctrl-C right after the first set (hw7) is in place
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(fsutil, "_published", [])
    monkeypatch.setattr(procs, "_received", None)  # put back for the tests after this one
    monkeypatch.setattr(fsutil, "swap_in", signal_after_the_first)
    status = main(["build", "hw7", "csc421_hw3", "--out", str(out), "--format", "tex",
                   "--jobs", "1"])
    err = capsys.readouterr().err
    assert status == 130
    assert err == (f"derive: interrupted by SIGINT after writing {out / 'hw7'}; "
                   "other outputs are unchanged\n")
    assert calls == [out / "hw7"]


def test_a_signal_during_the_last_shutdown_is_reported(capsys, monkeypatch, tmp_path) -> None:
    def interrupted():
        raise procs.Interrupted(signal.SIGTERM)

    monkeypatch.setattr(derive.cli, "_stop_server", interrupted)
    monkeypatch.setattr(fsutil, "_published", [])
    assert main(["build", "hw7", "--out", str(tmp_path), "--format", "json"]) == 143
    err = capsys.readouterr().err
    assert err.startswith("derive: interrupted by SIGTERM after writing ")


@pytest.fixture
def without_exchange(tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    """A set folder and its staged replacement, on a system that cannot exchange paths."""
    dest, staged = tmp_path / "hw7", tmp_path / ".derive-staging-x"
    for folder, text in ((dest, "old"), (staged, "new")):
        folder.mkdir()
        (folder / "answer-key.tex").write_text(text)
    monkeypatch.setattr(fsutil, "_exchange", lambda a, b: False)
    return dest, staged


def test_the_fallback_swap_puts_the_old_folder_back_on_failure(without_exchange, monkeypatch):
    dest, staged = without_exchange
    real_rename, calls = os.rename, []

    def second_fails(a, b):
        calls.append((a, b))
        if len(calls) == 2:
            raise OSError(18, "Invalid cross-device link")
        real_rename(a, b)

    monkeypatch.setattr(os, "rename", second_fails)
    with pytest.raises(InputError, match=r"cannot replace .*hw7: Invalid cross-device link"):
        fsutil.swap_in(staged, dest)
    assert (dest / "answer-key.tex").read_text() == "old"
    assert (staged / "answer-key.tex").read_text() == "new"


def test_the_fallback_swap_replaces_the_folder(without_exchange) -> None:
    dest, staged = without_exchange
    fsutil.swap_in(staged, dest)
    key = "answer-key.tex"
    assert ((dest / key).read_text(), (staged / key).read_text()) == ("new", "old")


def test_a_set_folder_that_is_a_link_stays_a_link(tmp_path: Path) -> None:
    out, real = tmp_path / "out", tmp_path / "real"
    real.mkdir()
    (real / "notes.txt").write_text("mine")
    out.mkdir()
    (out / "hw7").symlink_to(real)
    assert main(["build", "hw7", "--out", str(out), "--format", "tex"]) == 0
    assert (out / "hw7").is_symlink()
    assert sorted(p.name for p in real.iterdir()) == ["answer-key.tex", "notes.txt"]
    assert sorted(p.name for p in out.iterdir()) == ["hw7"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_set_folder_that_is_a_file_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "hw7").write_text("not a folder")
    monkeypatch.setattr(derive.build, "make_problems", lambda *a: pytest.fail("derived"))
    assert main(["build", "hw7", "--out", str(out), "--format", "tex"]) == 2
    assert capsys.readouterr().err == (
        f"derive: error: output folder {out / 'hw7'} is a file, not a directory\n"
    )


def test_a_file_that_cannot_be_kept_is_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    out = tmp_path / "out"
    assert main(["build", "hw7", "--out", str(out), "--format", "tex", "--handout"]) == 0
    before = snapshot(out)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(out / "hw7" / "handout.tex"))

    monkeypatch.setattr(os, "link", refuse)
    monkeypatch.setattr(fsutil.shutil, "copy2", refuse)
    assert main(["build", "hw7", "--out", str(out), "--format", "tex"]) == 2
    err = capsys.readouterr().err
    assert err == (f"derive: error: cannot keep {out / 'hw7' / 'handout.tex'} in the new "
                   "outputs: Permission denied\n")
    assert snapshot(out) == before


def test_a_failed_version_check_names_its_final_path(tmp_path, quiz, capsys, monkeypatch):
    monkeypatch.setattr(derive.build, "failed_checks", lambda problems: ["momentum:x (made up)"])
    out = tmp_path / "out"
    args = ["build", str(quiz), "--out", str(out), "--format", "tex", "--jobs", "1"]
    assert main([*args, "--variants", "2"]) == 1
    err = capsys.readouterr().err
    assert f"marked FAIL in {out / 'quiz' / 'variants' / 'v01' / 'answer-key.tex'}" in err
    assert ".derive-staging" not in err


def test_a_progress_line_is_ended_before_an_error(tmp_path, quiz, monkeypatch) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    _fail_on_call(monkeypatch, derive.build, "render", 3)  # the second version's key
    args = ["build", str(quiz), "--out", str(tmp_path / "out"), "--format", "tex"]
    assert main([*args, "--variants", "3", "--jobs", "1"]) == 4
    lines = terminal.getvalue().split("\n")
    assert lines[-2].startswith("derive: error: LaTeX failed")
    assert lines[-3].startswith("\rderive: 1/3 versions built")


def test_standard_output_closed_early_is_quiet(tmp_path: Path) -> None:
    # Far more output than a pipe holds, so derive is still writing when head has gone.
    steps = [0.5] * 20_000
    weights = dict.fromkeys(["w_ix", "w_ih", "w_fx", "w_fh", "w_ox", "w_oh", "w_gx", "w_gh"], 0.1)
    data = json.dumps({"weights": weights, "x": steps, "h0": 0, "c0": 0, "dL_dh": steps})
    command = f"{sys.executable} -m derive grad lstm --backend numpy --input - | head -c 1"
    run = subprocess.run(["bash", "-o", "pipefail", "-c", command], input=data, text=True,
                         capture_output=True, cwd=ROOT, check=False)
    assert (run.returncode, run.stdout, run.stderr) == (141, "{", "")
