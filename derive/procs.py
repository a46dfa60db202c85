"""Child processes that end when derive ends, however it ends.

Every program derive runs (latexmk and the pdflatex runs it starts, the C compiler) goes
through ``run``: in a session of its own, so one signal reaches the program and everything it
starts, and registered until it has been reaped.  Every pool of worker processes is
registered with ``track_pool``.

The command line installs ``signals()``: SIGINT, SIGTERM and SIGHUP then kill every
registered process group and pool worker *at once*, from the signal handler, and raise
``Interrupted`` in the main thread.  Killing first matters: a thread waiting for latexmk, or
an executor waiting for its workers, returns as soon as they are gone, so the unwinding that
follows (temporary folders, staging folders, joins) is quick and complete.  Workers run
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
    from concurrent.futures import ProcessPoolExecutor

#: The signals that interrupt derive, and the exit status each gives (128 + number).
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: Seconds a stopped worker has to clean up after SIGTERM before it is killed.
WORKER_GRACE = 5.0

_lock = threading.RLock()  # re-entrant: the signal handler runs in the main thread
_groups: dict[int, subprocess.Popen] = {}
_pools: list[ProcessPoolExecutor] = []


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
    with _lock:
        # Registered under the lock so that a signal arriving now finds it (or its absence).
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
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise Timeout(f"{Path(cmd[0]).name} ran longer than {timeout:g} s and was killed") from None
    except BaseException:
        _kill_group(proc)
        raise
    finally:
        with _lock:
            _groups.pop(proc.pid, None)
    return Completed(proc.returncode, out)


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.communicate()  # reap the leader and drain its pipe


def track_pool(pool: ProcessPoolExecutor) -> ProcessPoolExecutor:
    """Register ``pool``, so that an interruption stops its workers; returns it."""
    with _lock:
        _pools.append(pool)
    return pool


def untrack_pool(pool: ProcessPoolExecutor) -> None:
    with _lock:
        if pool in _pools:
            _pools.remove(pool)


def stop_all() -> None:
    """Kill every registered process group and stop every registered pool's workers."""
    with _lock:
        groups, pools = list(_groups.values()), list(_pools)
    for proc in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    workers = [p for pool in pools for p in _workers(pool)]
    for p in workers:
        with contextlib.suppress(Exception):
            p.terminate()  # SIGTERM: the worker kills its own children and cleans up
    for p in workers:
        with contextlib.suppress(Exception):
            p.join(WORKER_GRACE)
            if p.is_alive():
                p.kill()
                p.join()


def _workers(pool: ProcessPoolExecutor) -> list:
    # ProcessPoolExecutor has no public list of its workers before Python 3.14
    # (terminate_workers); its _processes mapping has been stable since 3.2.
    processes = getattr(pool, "_processes", None) or {}
    return list(processes.values())


def _raise(signum: int, frame) -> None:
    # Further signals would interrupt the cleanup itself; one is enough.
    for s in SIGNALS:
        signal.signal(s, signal.SIG_IGN)
    stop_all()
    raise Interrupted(signum)


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
    with _lock:  # a forked worker inherits the parent's registry; none of it is its own
        _groups.clear()
        _pools.clear()
    _parent_death_signal(signal.SIGTERM)


def _raise_in_worker(signum: int, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    stop_all()  # the worker's own latexmk, and nothing else (its registry starts empty)
    raise Interrupted(signum)


def _parent_death_signal(signum: int) -> None:
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signum), 0, 0, 0)  # PR_SET_PDEATHSIG
