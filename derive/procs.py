"""Child processes that end when derive ends, however it ends.

Every program derive runs (latexmk and the pdflatex runs it starts, the C compiler) goes
through ``run``: in a session of its own, so one signal reaches the program and everything it
starts, and registered until it has been reaped.  Every worker process is started through
``start``, which registers it the same way.

The command line installs ``signals()``: SIGINT, SIGTERM and SIGHUP then kill every
registered process group and stop every worker *at once*, from the signal handler, and raise
``Interrupted`` in the main thread.  Stopping first matters: a thread waiting for latexmk or
for a worker returns as soon as they are gone, so the unwinding that follows (temporary
folders, staging folders, joins) is quick and complete.  Nothing new starts afterwards.  Workers run
``worker_init``: they ignore SIGINT (the terminal sends Ctrl-C to the whole process group;
the parent decides) and treat SIGTERM as an interruption, so a worker stopped by the parent
kills its own children and removes its own temporary folders.  A worker whose parent dies
without stopping it (SIGKILL) gets SIGTERM from the kernel (Linux's parent-death signal).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the command line imports this module first: keep it light
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


class Interrupted(SystemExit):
    """derive was interrupted by a signal.

    A ``SystemExit`` with status 128 + the signal's number: no ``except Exception`` eats it,
    ``finally`` blocks run, and where nothing catches it (a worker process) the process ends
    with that status and no traceback.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum


class Timeout(Exception):  # noqa: N818
    """A program ran longer than its timeout; its whole process group was killed."""


@dataclass(frozen=True)
class Completed:
    """A finished program: its exit status and its output (stdout and stderr together)."""

    returncode: int
    output: bytes


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
    OSError
        ``cmd`` could not be started.
    """
    if _received is not None:  # stopping: start nothing new
        raise Interrupted(_received)
    proc = None
    try:
        with critical(), _lock:
            # In the main thread a signal waits for the end of this section; in others, the
            # handler's stop_all sees this program, or the check below sees the signal (the
            # handler records it before it takes the lock).
            proc = subprocess.Popen(
                list(cmd),
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            _groups[proc.pid] = proc
            if _received is not None:
                raise Interrupted(_received)
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise Timeout(f"{Path(cmd[0]).name} ran longer than {timeout:g} s and was killed") from None
    except BaseException:
        if proc is not None:
            _kill_group(proc)
        raise
    finally:
        if proc is not None:
            with _lock:
                _groups.pop(proc.pid, None)
    return Completed(proc.returncode, out)


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.communicate()  # reap the leader and drain its pipe


def start(process: BaseProcess) -> None:
    """Start the worker ``process`` (a ``multiprocessing`` process) and register it until
    ``forget``; refused once derive is being interrupted."""
    with critical(), _lock:
        if _received is not None:
            raise Interrupted(_received)
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
        signal.signal(s, _force)
    if _deferring:
        _pending = signum
        return
    stop_all()
    raise Interrupted(signum)


@contextlib.contextmanager
def critical() -> Iterator[None]:
    """A section an interruption must not cut in two (starting a process and registering
    it): a signal arriving inside is handled as the section ends.  Python runs signal
    handlers in the main thread only, so elsewhere this does nothing."""
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


def _force(signum: int, frame) -> None:
    stop_all()
    os._exit(128 + signum)  # staging folders left behind carry our pid: the next run removes them


@contextlib.contextmanager
def signals() -> Iterator[None]:
    """In the main thread: SIGINT, SIGTERM and SIGHUP stop every child and raise
    ``Interrupted``; the previous handlers are restored on the way out."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    for s in SIGNALS:
        signal.signal(s, _raise)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def worker_init() -> None:
    """A worker process's first act: Ctrl-C is the parent's to handle, SIGTERM interrupts,
    and the death of the parent sends SIGTERM (Linux)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _raise_in_worker)
    global _received
    with _lock:  # a forked worker inherits the parent's registry; none of it is its own
        _groups.clear()
        _children.clear()
        _received = None
    _parent_death_signal(signal.SIGTERM)


def _raise_in_worker(signum: int, frame) -> None:
    global _received
    _received = signum
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    stop_all()  # the worker's own latexmk, and nothing else (its registry starts empty)
    raise Interrupted(signum)


def _parent_death_signal(signum: int) -> None:
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signum), 0, 0, 0)  # PR_SET_PDEATHSIG
