"""Child processes that end when derive ends, and interruptions that leave nothing behind.

Every program derive runs (pdflatex, the C compiler) goes through ``run``, or ``spawn`` and
``end`` when it outlives one call: in a session of its own, so one signal reaches the program
and everything it starts, and registered until it has been reaped.  Every worker process is
started through ``start``, which registers it the same way.  Every temporary folder is made
by ``scratch``, which registers it until it is removed.

The command line installs ``signals()``: SIGINT, SIGTERM and SIGHUP (those not ignored when
derive started, as under ``nohup``) then kill every registered process group and stop every
worker *at once*, from the signal handler, and raise ``Interrupted`` in the main thread.
Stopping first matters: a thread waiting for pdflatex or for a worker returns as soon as they
are gone, so the unwinding that follows (temporary folders, staging folders, joins) is quick
and complete.  Nothing new starts afterwards.  A second signal ends derive at once, removing
the registered temporary folders first.  Inside ``critical()`` (starting a process and
registering it; swapping a folder into place) a signal waits for the section's end.

Workers run ``worker_init``: they ignore SIGINT and SIGHUP (the terminal sends Ctrl-C to the
whole process group; the parent decides) and treat SIGTERM as an interruption, so a worker
stopped by the parent kills its own children and removes its own temporary folders.  A
worker whose parent dies without stopping it (SIGKILL) sees its lifeline close and stops
itself the same way (``watch_lifeline``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:  # the command line imports this module first: keep it light
    from concurrent.futures import Future
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

#: The signals that interrupt derive, and the exit status each gives (128 + number).
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: Seconds a stopped worker has to clean up after SIGTERM before it is killed.
WORKER_GRACE = 5.0

_lock = threading.RLock()  # re-entrant: the signal handler runs in the main thread
_received: int | None = None  # the signal that interrupted this process, once one has
_deferring = 0  # depth of critical() sections in the main thread
_pending: int | None = None  # a signal that arrived inside one, handled on the way out
_groups: dict[int, subprocess.Popen] = {}
_children: dict[int, BaseProcess] = {}
_scratch: set[str] = set()


class Interrupted(SystemExit):
    """derive was interrupted by a signal.

    A ``SystemExit`` with status 128 + the signal's number: no ``except Exception`` eats it,
    ``finally`` blocks run, and where nothing catches it (a worker process) the process ends
    with that status and no traceback.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum

    def __reduce__(self):  # a worker's interruption travels to the parent whole
        return (Interrupted, (self.signum,))


class Timeout(Exception):  # noqa: N818
    """A program ran longer than its timeout; its whole process group was killed."""


@dataclass(frozen=True)
class Completed:
    """A finished program: its exit status and its output (stdout and stderr together)."""

    returncode: int
    output: bytes


# -- programs and workers ----------------------------------------------------------------------
def run(
    cmd: Sequence[str],
    *,
    timeout: float,
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
) -> Completed:
    """Run ``cmd`` to completion in a new session; kill its process group on any way out.

    Raises
    ------
    Timeout
        ``cmd`` ran longer than ``timeout`` seconds (its group has been killed).
    Interrupted
        derive is being interrupted (nothing is started then).
    OSError
        ``cmd`` could not be started.
    """
    with _session(cmd, cwd, env) as proc:
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:  # the session kills the group on the way out
            name = Path(cmd[0]).name
            raise Timeout(f"{name} ran longer than {timeout:g} s and was killed") from None
    return Completed(proc.returncode, out)


@contextlib.contextmanager
def _session(
    cmd: Sequence[str], cwd: str | Path | None, env: dict[str, str] | None
) -> Iterator[subprocess.Popen]:
    """``cmd`` started in a session of its own and registered while the block runs; if the
    block fails in any way, its whole process group is killed first."""
    proc = spawn(cmd, cwd=cwd, env=env)
    try:
        yield proc
    except BaseException:
        end(proc, kill=True)
        raise
    end(proc, kill=False)


def spawn(
    cmd: Sequence[str],
    *,
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
    stdin: int | None = subprocess.DEVNULL,
    stdout: int | IO[bytes] | None = subprocess.PIPE,
) -> subprocess.Popen:
    """Start ``cmd`` in a session of its own (stderr joins ``stdout``), registered until
    ``end``: an interruption of derive kills its whole process group.

    Raises
    ------
    Interrupted
        derive is being interrupted (nothing is started then).
    OSError
        ``cmd`` could not be started.
    """
    proc = None
    try:
        with critical(), _lock:
            # In the main thread a signal waits for this section's end; in others, stop_all
            # sees this program, or the check below sees the signal (recorded before the
            # handler takes the lock).
            _refuse_when_stopping()
            proc = subprocess.Popen(list(cmd), cwd=cwd, env=env, stdin=stdin, stdout=stdout,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            _groups[proc.pid] = proc
            _refuse_when_stopping()
    except BaseException:
        if proc is not None:
            end(proc, kill=True)
        raise
    return proc


def end(proc: subprocess.Popen, *, kill: bool) -> None:
    """``proc`` (from ``spawn``) is no longer ours to stop; with ``kill``, its whole process
    group is killed and the leader reaped first."""
    if kill:
        _kill_group(proc)
    with _lock:
        _groups.pop(proc.pid, None)


def _refuse_when_stopping() -> None:
    if _received is not None:
        raise Interrupted(_received)


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.communicate()  # reap the leader and drain its pipe


def start(process: BaseProcess) -> None:
    """Start the worker ``process`` (a ``multiprocessing`` process) and register it until
    ``forget``; refused once derive is being interrupted."""
    with critical(), _lock:
        _refuse_when_stopping()
        process.start()
        _children[id(process)] = process


def forget(process: BaseProcess) -> None:
    """``process`` has ended (and been joined): no longer ours to stop."""
    with _lock:
        _children.pop(id(process), None)


def stop_all() -> None:
    """Kill every registered process group and stop every registered worker."""
    with _lock:  # a thread starting a process finishes registering it first
        groups, children = list(_groups.values()), list(_children.values())
    for proc in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    for p in children:
        with contextlib.suppress(Exception):
            p.terminate()  # SIGTERM: the worker kills its own children and cleans up
    for p in children:
        with contextlib.suppress(Exception):
            p.join(WORKER_GRACE)
            if p.is_alive():
                p.kill()
                p.join()
                _remove_scratch_of(p.pid)


@contextlib.contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A new temporary folder, removed on the way out (and by a forced exit).

    Its name carries this process's id, so that a worker killed before it could clean up
    leaves nothing: its parent removes what it named (``stop_all``).  Making and removing
    it are critical sections: an interruption cut between making and registering the
    folder, or in the middle of removing it, would leave it behind."""
    with critical(), _lock:
        path = tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-")
        _scratch.add(path)
    try:
        yield Path(path)
    finally:
        with critical():
            shutil.rmtree(path, ignore_errors=True)
            with _lock:
                _scratch.discard(path)


def _remove_scratch_of(pid: int) -> None:
    """The temporary folders a killed process ``pid`` made with ``scratch``."""
    for path in Path(tempfile.gettempdir()).glob(f"derive-*{pid}-*"):
        if path.name.split("-")[-2:-1] == [str(pid)]:
            shutil.rmtree(path, ignore_errors=True)


# -- signals -----------------------------------------------------------------------------------
def received() -> int | None:
    """The signal that interrupted this process, or None.

    Raised from a signal handler, ``Interrupted`` can surface as another exception when it
    interrupts a callback inside C code (NumPy calling mpmath reports a ``SystemError``); an
    exception while this is set is that interruption."""
    return _received


def _raise(signum: int, frame) -> None:
    global _received, _pending
    _received = signum
    for s in SIGNALS:  # a second signal ends derive at once (the cleanup is under way)
        if signal.getsignal(s) is _raise:
            signal.signal(s, _force)
    if _deferring:
        _pending = signum
        return
    stop_all()
    raise Interrupted(signum)


def _force(signum: int, frame) -> None:
    stop_all()
    with _lock:
        for path in list(_scratch):
            shutil.rmtree(path, ignore_errors=True)
    # A staging folder left behind is not locked any more: the next run removes it.
    os._exit(128 + signum)


@contextlib.contextmanager
def critical() -> Iterator[None]:
    """A section an interruption must not cut in two: a signal arriving inside is handled as
    the section ends.  Python runs signal handlers in the main thread only, so elsewhere
    this does nothing (there, sections check ``received`` under the lock instead)."""
    global _deferring, _pending
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
        if not _deferring and _pending is not None:
            signum, _pending = _pending, None
            stop_all()
            raise Interrupted(signum)


@contextlib.contextmanager
def signals() -> Iterator[None]:
    """In the main thread: SIGINT, SIGTERM and SIGHUP stop every child and raise
    ``Interrupted``; a signal ignored when derive started (``nohup``, a background job)
    stays ignored.  The previous handlers are restored on the way out."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    for s, handler in previous.items():
        if handler is not signal.SIG_IGN:
            signal.signal(s, _raise)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


# -- the worker side ---------------------------------------------------------------------------
def worker_init(lifeline: Connection | None = None) -> None:
    """A worker process's first act: Ctrl-C is the parent's to handle, SIGTERM interrupts,
    and the end of ``lifeline`` (the parent gone) sends SIGTERM."""
    global _received, _deferring, _pending
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _raise)
    with _lock:  # a forked worker inherits the parent's registry; none of it is its own
        _groups.clear()
        _children.clear()
        _scratch.clear()
        _received, _deferring, _pending = None, 0, None
    if lifeline is not None:
        watch_lifeline(lifeline)


def watch_lifeline(lifeline: Connection) -> None:
    """SIGTERM to this process once nobody holds the other end of ``lifeline``.

    A worker's parent is the forkserver, which outlives derive while workers run, so the
    kernel's parent-death signal cannot tell a worker that derive has gone; the end of a
    pipe whose other end only derive holds can."""

    def wait() -> None:
        with contextlib.suppress(EOFError, OSError):
            lifeline.recv()  # nothing is ever sent: this returns when derive has gone
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=wait, name="derive-lifeline", daemon=True).start()


def drain(futures: Sequence[Future], timeout: float = 60.0) -> None:
    """Wait for ``futures`` to finish, however their threads' joins went.

    A join interrupted by an exception from a signal handler can leave CPython 3.11
    believing a running thread has ended, and the interpreter then exits without it, cutting
    its cleanup short; a future finishes only when its work, ``finally`` blocks included,
    is done."""
    from concurrent.futures import wait

    # A future cancelled by an executor's shutdown never counts as done for wait().
    wait([f for f in futures if not f.cancelled()], timeout)
