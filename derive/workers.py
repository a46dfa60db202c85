"""Worker processes for builds: each problem derived, checked and rendered in a fresh one.

Workers are forked from a *forkserver*, a clean process started early that has imported
derive once (so a worker costs a fork, not an import) and has no threads (so forking it
is safe while the parent runs LaTeX in threads).  Every job gets a new process: a
problem's output never depends on what a worker computed before it, so parallel builds
are byte-for-byte reproducible.

A pool of ``jobs`` is ``jobs`` threads, each running one job at a time in a fresh worker
(``run_in_child``) and waiting for its answer on a pipe.  Every worker is started through
``procs.start``: an interruption stops it, and nothing new starts afterwards.  (Python's
``ProcessPoolExecutor`` replaces each worker that ends, even while shutting down; a
replacement forked during an interruption loses its semaphores and prints a traceback,
and one not started leaves the executor waiting for ever.)  Workers ignore Ctrl-C and
stop on SIGTERM (``procs.worker_init``); ``shutdown`` stops the server.

This module imports nothing heavy: ``warm_up`` can start the server before the parent
imports SymPy, and the two imports then run side by side.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.forkserver
import multiprocessing.resource_tracker
import multiprocessing.util
import os
import pickle
import signal
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from derive import procs
from derive.errors import InputError, WorkerLost

T = TypeVar("T")

#: What the forkserver imports once for all workers.
PRELOAD = ["derive._preload"]


def _context() -> multiprocessing.context.BaseContext:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def warm_up() -> None:
    """Start the forkserver now, so its import overlaps the caller's own work."""
    _context()
    # The server starts with Ctrl-C blocked (a blocked signal stays blocked across exec):
    # it is in the terminal's process group, and a Ctrl-C during its imports would print a
    # traceback of its own.  Ours stays pending and arrives once this returns.  The resource
    # tracker the server needs is started first: starting it unblocks SIGINT.
    _short_socket_folder()
    with procs.critical():
        multiprocessing.resource_tracker.ensure_running()
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            multiprocessing.forkserver.ensure_running()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


#: The longest path an AF_UNIX socket may have (the kernel's sun_path, less its final NUL),
#: and what multiprocessing adds to its temporary folder for the forkserver's socket.
_SOCKET_PATH, _SOCKET_NAME = 107, len("/pymp-xxxxxxxx/listener-xxxxxxxx")


def _short_socket_folder() -> None:
    """Under a long TMPDIR the forkserver's socket path would be too long to bind; then
    multiprocessing's folder for it is made in /tmp (it removes the folder at exit)."""
    if len(tempfile.gettempdir()) + _SOCKET_NAME <= _SOCKET_PATH or not os.access(
            "/tmp", os.W_OK):
        return
    saved = tempfile.tempdir
    tempfile.tempdir = "/tmp"
    try:
        multiprocessing.util.get_temp_dir()  # made once per process, then reused
    finally:
        tempfile.tempdir = saved


class RemoteTraceback(Exception):  # noqa: N818 - it is a traceback, shown as the cause
    """The traceback of an exception raised in a worker, shown as its cause."""


@dataclass(frozen=True)
class _Failed:
    error: BaseException
    traceback: str


def run_in_child(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a fresh worker process; its result, or its exception raised here
    (with the worker's traceback as its cause)."""
    ctx = _context()
    added = _registered()
    receive, send = ctx.Pipe(duplex=False)
    lifeline, hold = ctx.Pipe(duplex=False)  # only this process holds ``hold``
    child = ctx.Process(target=_child_main, args=(send, lifeline, fn, args, added), daemon=True)
    try:
        procs.start(child)
        send.close()  # the child holds the other ends: EOF here once it has gone
        lifeline.close()
        try:
            outcome = receive.recv()
        except EOFError:  # killed, or died before it could answer
            outcome = None
        except Exception as exc:  # an answer that cannot be rebuilt here
            outcome = _Failed(RuntimeError(f"a worker's answer could not be read: {exc!r}"), "")
        child.join()
    finally:
        receive.close()
        hold.close()
        procs.forget(child)
    if outcome is None:
        if procs.received() is not None:
            raise procs.Interrupted(procs.received())
        raise WorkerLost(_ended(child.exitcode))
    if isinstance(outcome, _Failed):
        if isinstance(outcome.error, procs.Interrupted) and procs.received() is None:
            raise WorkerLost("a worker process was stopped by SIGTERM, not by derive")
        if outcome.traceback:
            raise outcome.error from RemoteTraceback(outcome.traceback)
        raise outcome.error
    return outcome


def _ended(status: int | None) -> str:
    if status is not None and status < 0:
        name = signal.Signals(-status).name
        why = " (out of memory?)" if status == -signal.SIGKILL else ""
        return f"a worker process was killed by {name} before it answered{why}"
    return f"a worker process ended with status {status} before it answered"


def _registered() -> bytes | None:
    """The problems ``derive.register`` added in this process, pickled for a worker, or None.

    A worker is forked from the server, which loaded the bundled problems and the plugins
    (entry points) but knows nothing of what this process registered since.  Classes
    travel by reference (module and name): the worker imports them.
    """
    added = getattr(sys.modules.get("derive.problems"), "ADDED", None)
    if not added:
        return None
    try:
        return pickle.dumps(dict(added))
    except Exception as exc:  # a class defined inside a function, say
        raise InputError(
            f"register: the problems {', '.join(added)} cannot be sent to worker processes "
            f"({exc}); define their classes at the top level of a module, or build with "
            "one job"
        ) from None


def _restore(added: bytes | None) -> None:
    if added is None:
        return
    try:
        problems = pickle.loads(added)
    except Exception as exc:  # defined where the worker cannot import it (an interpreter)
        raise InputError(
            f"register: a worker process cannot import a registered problem ({exc}); "
            "define it in a module on the path (or a plugin), or build with one job"
        ) from None
    from derive.problems import REGISTRY

    REGISTRY.update(problems)


def _child_main(
    send: Connection, lifeline: Connection, fn: Callable, args: tuple, added: bytes | None
) -> None:
    procs.worker_init(lifeline)
    try:
        _restore(added)
        outcome: Any = fn(*args)
    except BaseException as exc:  # sent to the parent, which decides
        outcome = _Failed(exc, traceback.format_exc())
    try:
        send.send(outcome)
    except BrokenPipeError:  # the parent has gone: nobody to answer
        return
    except Exception as exc:  # an answer that cannot be pickled: its text travels instead
        text = outcome.traceback if isinstance(outcome, _Failed) else ""
        send.send(_Failed(RuntimeError(f"a worker's answer could not be sent: {exc!r}"), text))


class _Pool:
    """``submit(fn, *args)`` runs ``fn(*args)`` in a fresh worker, at most ``jobs`` at once."""

    def __init__(self, jobs: int) -> None:
        self._threads = ThreadPoolExecutor(jobs, thread_name_prefix="derive-worker")
        self._futures: list[Future] = []

    def submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]:
        future = self._threads.submit(run_in_child, fn, *args)
        self._futures.append(future)
        return future

    def close(self, failed: bool) -> None:
        # After a failure or an interruption, jobs not yet started never start; the ones
        # running end quickly (stopped, or finishing).  An interrupted join can leave a
        # thread running unseen (CPython 3.11), so the futures are awaited as well.
        self._threads.shutdown(wait=True, cancel_futures=failed)
        procs.drain(self._futures)


@contextlib.contextmanager
def pool(jobs: int) -> Iterator[_Pool]:
    """``jobs`` workers, a fresh process for every job, stopped with derive (``procs``)."""
    warm_up()  # a no-op if the server runs; else it starts here, with Ctrl-C blocked
    workers = _Pool(jobs)
    failed = True
    try:
        yield workers
        failed = False
    finally:
        workers.close(failed or procs.received() is not None)


def shutdown() -> None:
    """Stop the forkserver if this process started one (it would stop by itself once derive
    exits, but a moment later: derive's processes end with derive, not after it)."""
    server = getattr(multiprocessing.forkserver, "_forkserver", None)
    stop = getattr(server, "_stop", None)  # private; present since Python 3.8
    if stop is not None and getattr(server, "_forkserver_pid", None) is not None:
        with contextlib.suppress(OSError, ChildProcessError):
            stop()
