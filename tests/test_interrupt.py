"""Interrupting real builds: every process derive started ends, nothing is left behind.

Each test starts ``python -m derive`` in a session of its own with a marker in its
environment (every process it starts inherits it, latexmk's new session included), waits for a
moment of the build (workers deriving, pdflatex running, versions being written), sends the
signal a terminal or a process manager would send, and then checks, as ``ps`` would, that no
process carrying the marker is left, that the temporary folder is empty, that the earlier
outputs are byte-identical, and that derive said one line and exited with 128 + the signal.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import QUIZ, snapshot

from derive.render.pdf import find_engine

ROOT = Path(__file__).resolve().parents[1]
needs_tex = pytest.mark.skipif(find_engine() is None, reason="needs latexmk and pdflatex")
pytestmark = pytest.mark.pdf  # the builds interrupted here run LaTeX



def _processes(tag: str) -> list[tuple[int, str]]:
    """(pid, command name) of every live process whose environment holds ``tag``."""
    found = []
    marker = f"DERIVE_TEST_TAG={tag}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            name = (entry / "comm").read_text().strip()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if marker in environ.split(b"\0"):
            found.append((int(entry.name), name))
    return found


class Run:
    """``python -m derive ARGS`` in its own session, tagged, with its own temporary folder."""

    def __init__(self, tmp_path: Path, args: list[str]) -> None:
        self.tag = uuid.uuid4().hex
        self.tmp = tmp_path / "tmp"
        self.tmp.mkdir(exist_ok=True)
        env = dict(os.environ, DERIVE_TEST_TAG=self.tag, TMPDIR=str(self.tmp))
        env["DERIVE_CACHE"] = str(tmp_path / "cache")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "derive", *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )

    def wait_for(self, ready: Callable[[list[tuple[int, str]]], bool], limit: float = 60) -> None:
        end = time.monotonic() + limit
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                _, err = self.proc.communicate()
                pytest.fail(f"derive ended before the moment came: {err.decode()[-2000:]}")
            if ready(_processes(self.tag)):
                return
            time.sleep(0.005)
        self.proc.kill()
        pytest.fail("the moment to interrupt never came")

    def interrupt(self, signum: int, group: bool) -> tuple[int, str]:
        if group:  # as a terminal's Ctrl-C: the whole foreground process group
            os.killpg(self.proc.pid, signum)
        else:  # as kill(1) or a process manager: derive alone
            self.proc.send_signal(signum)
        try:
            _, err = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            pytest.fail("derive did not end within 60 s of the signal")
        return self.proc.returncode, err.decode()

    def leftovers(self) -> list[tuple[int, str]]:
        """What still runs the moment derive has ended (a killed, unreaped process has an
        empty environment and does not count)."""
        left = _processes(self.tag)
        for pid, _ in left:  # do not let a failure here leave them running
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        return left


def _workers_busy(procs: list[tuple[int, str]]) -> bool:
    """The forkserver and at least one worker forked from it are alive (deriving)."""
    pythons = [p for p in procs if p[1].startswith("python")]
    return len(pythons) >= 3 and not _latex_running(procs)


def _latex_running(procs: list[tuple[int, str]]) -> bool:
    """A pdflatex run is typesetting a body: it has opened its .aux (at \\begin{document}).
    Runs waiting for their preamble or their body, which derive starts early, do not count."""
    return any(name == "pdflatex" and _opened_aux(pid) for pid, name in procs)


def _opened_aux(pid: int) -> bool:
    try:
        return (Path(os.readlink(f"/proc/{pid}/cwd")) / "answer-key.aux").exists()
    except OSError:  # gone meanwhile
        return False


def _after(seconds: float) -> Callable[[list], bool]:
    """True from ``seconds`` after its first call (the run's start)."""
    start: list[float] = []

    def ready(procs: list) -> bool:
        start[:] = start or [time.monotonic()]
        return time.monotonic() - start[0] >= seconds

    return ready


INT, TERM = signal.SIGINT, signal.SIGTERM
CASES = {
    # name: (arguments after "build", a new condition for the moment to interrupt, signal)
    "workers deriving, Ctrl-C": (["csc421_hw3", "lmu_ex5"], lambda: _workers_busy, INT),
    "workers deriving, SIGTERM": (["csc421_hw3", "lmu_ex5"], lambda: _workers_busy, TERM),
    "latex running, Ctrl-C": (["csc421_hw3"], lambda: _latex_running, INT),
    "latex running, SIGTERM": (["csc421_hw3"], lambda: _latex_running, TERM),
    "in-process derivation, SIGTERM": (["csc421_hw3", "--jobs", "1"], lambda: _after(1.0), TERM),
    "in-process latex, Ctrl-C": (["hw7", "--jobs", "1"], lambda: _latex_running, INT),
    "imports, Ctrl-C": (["hw7"], lambda: _after(0.3), INT),
    "workers starting, SIGTERM": (["lmu_ex5"], lambda: _after(0.6), TERM),
}
SETS = ["csc421_hw3", "lmu_ex5", "hw7"]


@pytest.fixture(scope="module")
def earlier(tmp_path_factory) -> Path:
    """Earlier outputs to protect: a successful build of every set the cases build."""
    out = tmp_path_factory.mktemp("earlier") / "out"
    done = subprocess.run(
        [sys.executable, "-m", "derive", "build", *SETS, "--out", str(out), "--format", "tex"],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    return out


def _assert_clean(run: Run, status: int, err: str, signum: int, out: Path, before: dict) -> None:
    name = signal.Signals(signum).name
    assert run.leftovers() == []
    assert status == 128 + signum
    assert err == f"derive: interrupted by {name}; earlier outputs are unchanged\n"
    assert list(run.tmp.iterdir()) == []
    assert snapshot(out) == before
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []


@needs_tex
@pytest.mark.parametrize("case", list(CASES))
def test_interrupted_build_leaves_nothing(tmp_path: Path, earlier: Path, case: str) -> None:
    args, moment_came, signum = CASES[case]
    out = tmp_path / "out"
    shutil.copytree(earlier, out)
    before = snapshot(out)
    run = Run(tmp_path, ["build", *args, "--out", str(out)])
    run.wait_for(moment_came())
    status, err = run.interrupt(signum, group=signum == INT)
    _assert_clean(run, status, err, signum, out, before)


@pytest.fixture(scope="module")
def earlier_versions(tmp_path_factory) -> tuple[Path, Path]:
    """A set file and the versions an earlier run made of it."""
    folder = tmp_path_factory.mktemp("earlier_versions")
    quiz = folder / "quiz.toml"
    quiz.write_text(QUIZ, encoding="utf-8")
    out = folder / "out"
    args = ["build", str(quiz), "--variants", "2", "--seed", "old", "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "derive", *args, "--format", "tex"],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    return quiz, out


@needs_tex
@pytest.mark.parametrize("signum", [INT, TERM], ids=["Ctrl-C", "SIGTERM"])
def test_interrupted_variants_leave_the_previous_versions(
    tmp_path: Path, earlier_versions: tuple[Path, Path], signum: int
) -> None:
    quiz, earlier = earlier_versions
    out = tmp_path / "out"
    shutil.copytree(earlier, out)
    before = snapshot(out)
    run = Run(tmp_path, ["build", str(quiz), "--variants", "5", "--seed", "new", "--out", str(out)])

    start = time.time()

    def some_written(procs: list) -> bool:  # a new version's key is written, not all are
        return any(p.stat().st_mtime > start for p in out.rglob("answer-key.pdf"))

    run.wait_for(some_written)
    status, err = run.interrupt(signum, group=signum == INT)
    _assert_clean(run, status, err, signum, out, before)
