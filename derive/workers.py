"""Worker processes for builds: each problem derived, checked and rendered in a fresh one.

Workers are forked from a *forkserver*, a clean process started early that has imported
derive once (so a worker costs a fork, not an import) and has no threads (so forking it
is safe while the parent runs LaTeX in threads).  Every job gets a new process
(``max_tasks_per_child=1``): a problem's output never depends on what a worker computed
before it, so parallel builds are byte-for-byte reproducible.

This module imports nothing heavy: ``warm_up`` can start the server before the parent
imports SymPy, and the two imports then run side by side.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
from concurrent.futures import ProcessPoolExecutor

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


def pool(jobs: int) -> ProcessPoolExecutor:
    """``jobs`` workers, a fresh process for every job."""
    return ProcessPoolExecutor(max_workers=jobs, mp_context=_context(), max_tasks_per_child=1)
