"""Groups of claims measured in a forked child process while this one measures the others.

A build of one problem runs in one process (starting a worker would cost more than it
saves), yet the machine has a second core, and a recurrent cell's vector-form claims
(compiling the vector sweep, then running every case) do not depend on its scalar-form
ones.  ``measured`` forks a child for some groups when that is safe; the child measures
every claim (each ``measure()``, the lazy ones included) and sends back plain rows, which
become ``Claim.measured`` here.  Nothing else crosses: the child's caches die with it.

The fork happens only when this is the process's one thread (forking a process with other
threads can copy a lock some thread holds).  The child ignores Ctrl-C and stops on SIGTERM
like a worker (``procs.worker_init``: it owns none of the parent's programs or folders),
is stopped with the parent's other children when derive is interrupted, and is sent
SIGTERM by the kernel if derive dies first.  If the child fails in any way, its groups are
measured here instead, so an error in them surfaces from this process, as without it.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence

from derive import procs
from derive.verify.claims import Claim

Group = Callable[[], list[Claim]]
#: prctl(PR_SET_PDEATHSIG, ...): a signal for this process when its parent ends (Linux).
_PR_SET_PDEATHSIG = 1


def measured(groups: Sequence[Group], apart: Sequence[int]) -> list[list[Claim]]:
    """``[group() for group in groups]``, with the groups at indices ``apart`` measured in a
    forked child process while this one measures the rest, where that is safe."""
    away = sorted(set(apart))
    child = _start(groups, away) if away and _can_fork() else None
    out: list[list[Claim] | None] = [None] * len(groups)
    try:
        for i, group in enumerate(groups):
            if child is None or i not in away:
                # Measured now, while the child works (a claim may measure lazily).
                out[i] = [Claim.measured(*_row(c)) for c in group()]
    except BaseException:
        if child is not None:
            child[0].terminate()
            _collect(child)
        raise
    rows = _collect(child) if child is not None else None
    for i in away:
        out[i] = groups[i]() if rows is None else [Claim.measured(*r) for r in rows[away.index(i)]]
    return out


def _can_fork() -> bool:
    return (
        "fork" in multiprocessing.get_all_start_methods()
        and threading.active_count() == 1
        and procs.received() is None
    )


def _start(groups: Sequence[Group], away: list[int]):
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    for stream in (sys.stdout, sys.stderr):  # what is buffered must not print twice
        stream.flush()
    process = ctx.Process(target=_child, args=([groups[i] for i in away], send), daemon=True)
    procs.start(process)
    send.close()
    return process, receive


def _child(groups: list[Group], send) -> None:
    procs.worker_init()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    try:
        rows = [[_row(c) for c in group()] for group in groups]
        send.send(rows)
        send.close()
    except BaseException:
        # Nothing to print here: the parent measures these groups again (where an error
        # in them surfaces, as without the child), or it is being interrupted itself.  An
        # interruption can surface inside C code as another exception, whose traceback
        # multiprocessing would print.
        os._exit(1)


def _row(claim: Claim) -> tuple:
    error = float(claim.measure())
    return (claim.key, claim.route, claim.sizes, error, claim.tolerance, claim.detects)


def _collect(child) -> list | None:
    """The child's rows, or None if it ended without sending them."""
    process, receive = child
    try:
        rows = receive.recv()
    except (EOFError, OSError):
        rows = None
    finally:
        receive.close()
        process.join()
        procs.forget(process)
    return rows if process.exitcode == 0 else None
