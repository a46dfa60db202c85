"""Tests for derive.verify.apart: claim groups measured in a forked child process."""

from __future__ import annotations

import os
import threading

import pytest

from derive.render import passes, pdf
from derive.verify import apart
from derive.verify.claims import Claim


def pid_group(key: str):
    """A group whose one claim's error is the id of the process that measured it."""
    return lambda: [Claim(key, "route", "sizes", 0.0, lambda: float(os.getpid()))]


def rows(groups):
    return [
        [(c.key, c.route, c.sizes, c.measure(), c.tolerance, c.detects) for c in g] for g in groups
    ]


def test_groups_apart_are_measured_in_another_process() -> None:
    out = apart.measured([pid_group("a"), pid_group("b"), pid_group("c")], apart=[1])
    (a,), (b,), (c,) = out
    assert [a.key, b.key, c.key] == ["a", "b", "c"]  # in the order given
    assert a.measure() == c.measure() == os.getpid()
    assert b.measure() != os.getpid()


def test_rows_come_back_whole() -> None:
    def group():
        return [
            Claim("k", "complex step", "T = 3", 1e-11, lambda: 2.5e-16, detects=True),
            Claim.measured("m", "exact", "D = 1..4", 0.0, 0.0),
        ]

    assert rows(apart.measured([group, group], apart=[0])) == rows([group(), group()])


def test_with_other_threads_nothing_is_forked() -> None:
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        ((a,), (b,)) = apart.measured([pid_group("a"), pid_group("b")], apart=[1])
    finally:
        stop.set()
        other.join()
    assert a.measure() == b.measure() == os.getpid()


def test_a_failing_group_fails_here() -> None:
    def broken():
        raise ZeroDivisionError("a bug in a claim")

    with pytest.raises(ZeroDivisionError, match="a bug in a claim"):
        apart.measured([pid_group("a"), broken], apart=[1])


def test_an_error_here_stops_the_child() -> None:
    def broken():
        raise KeyError("here")

    def slow():
        threading.Event().wait(60)
        return []

    with pytest.raises(KeyError):
        apart.measured([broken, slow], apart=[1])
    assert apart.multiprocessing.active_children() == []


@pytest.mark.pdf
def test_the_child_holds_no_latex_source_open() -> None:
    """A run started ahead waits on a pipe only derive may hold: the child closes its
    copy, so TeX still reads the end of its source when derive ends."""
    head, _ = passes.split("\\documentclass{article}\n\\begin{document}\nx\n\\end{document}\n")
    with pdf.ahead(head, 1):
        pipes = {os.readlink(f"/proc/self/fd/{run._pipe}") for run in pdf._ahead[0].ready[0]._runs}

        def probe():
            held = pipes & set(_open_files())
            return [Claim.measured("open", "r", "s", float(len(held)), 0.0)]

        ((here,), (there,)) = apart.measured([probe, probe], apart=[1])
    assert len(pipes) == 2 and all(p.startswith("pipe:[") for p in pipes)
    assert here.measure() == 2
    assert there.measure() == 0


def _open_files() -> list[str]:
    """What each file descriptor of this process refers to ("pipe:[123]", a path, ...)."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:  # the descriptor listdir itself used
            pass
    return out


def test_a_failing_child_prints_nothing(capfd) -> None:
    def broken():
        raise ZeroDivisionError("a bug in a claim")

    with pytest.raises(ZeroDivisionError):
        apart.measured([pid_group("a"), broken], apart=[1])
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")  # the parent's raise is the one report
