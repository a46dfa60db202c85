"""Worker processes for builds: each problem derived, checked and rendered in a fresh one.

Workers are forked from a *forkserver*, a clean process started early that has imported
derive once (so a worker costs a fork, not an import) and has no threads (so forking it
is safe while the parent runs LaTeX in threads).  Every job gets a new process
(``max_tasks_per_child=1``): a problem's output never depends on what a worker computed
before it, so parallel builds are byte-for-byte reproducible.

Workers ignore Ctrl-C and stop on SIGTERM (``procs.worker_init``); the pool is registered
with ``procs``, so an interruption of derive stops them, and ``shutdown`` stops the server.

This module imports nothing heavy: ``warm_up`` can start the server before the parent
imports SymPy, and the two imports then run side by side.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.forkserver
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

from derive import procs

#: What the forkserver imports once for all workers.
PRELOAD = ["derive._preload"]


def _context() -> multiprocessing.context.BaseContext:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def warm_up() -> None:
    """Start the forkserver now, so its import overlaps the caller's own work."""
    _context()
    multiprocessing.forkserver.ensure_running()


@contextlib.contextmanager
def pool(jobs: int) -> Iterator[ProcessPoolExecutor]:
    """``jobs`` workers, a fresh process for every job, stopped with derive (``procs``)."""
    executor = ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=_context(),
        max_tasks_per_child=1,
        initializer=procs.worker_init,
    )
    procs.track_pool(executor)
    try:
        with executor:
            yield executor
    finally:
        procs.untrack_pool(executor)


def shutdown() -> None:
    """Stop the forkserver if this process started one (it would stop by itself once derive
    exits, but a moment later: derive's processes end with derive, not after it)."""
    server = getattr(multiprocessing.forkserver, "_forkserver", None)
    stop = getattr(server, "_stop", None)  # private; present since Python 3.8
    if stop is not None and getattr(server, "_forkserver_pid", None) is not None:
        with contextlib.suppress(OSError, ChildProcessError):
            stop()
