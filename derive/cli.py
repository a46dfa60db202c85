"""The ``derive`` command line: list, build, new, check, grad, eval.

User mistakes (a bad file, an unknown name, a missing TeX engine) print one line on
standard error and exit with a nonzero status, without a traceback:

    1  a verification failed (``check``)
    2  bad input or usage
    3  no TeX engine for ``--format pdf``
    4  LaTeX failed
    70 an internal failure: a bug (the traceback is printed), or a worker process lost
    130, 143, 129  interrupted by SIGINT, SIGTERM, SIGHUP
    141 standard output closed early (``derive grad ... | head``)

An interruption stops every process derive started (workers, pdflatex, the C
compiler), removes temporary and staging folders, prints one line and leaves earlier
outputs byte-identical.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import dataclasses
import gc
import json
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from derive import procs
from derive.errors import (
    EXIT_BROKEN_PIPE,
    EXIT_CHECK_FAILED,
    EXIT_INTERNAL,
    DeriveError,
    InputError,
)
from derive.render.forms import FORMS

#: Most worker processes a build may start (more would only contend for the same cores).
MAX_JOBS = 32
_progress_open = False  # a progress line is on the terminal, not yet ended


def _cmd_list(args: argparse.Namespace) -> int:
    from derive.problems import REGISTRY
    from derive.sets import bundled

    for pset in bundled().values():
        print(f"set      {pset.id:14s} {pset.title} [{', '.join(pset.problems)}]")
    for key, cls in REGISTRY.items():
        print(f"problem  {key:14s} {cls.title}")
    return 0


def _jobs_at_least_two(names: Sequence[str]) -> bool:
    """Whether the sets ``names`` (all bundled sets if none) hold two or more distinct
    problems, so that a build uses workers and their server is worth starting early.

    Read from the TOML alone, without importing SymPy; a file that does not parse counts
    as one problem (the build reports it).  Only the timing depends on this: a pool starts
    its server itself when none is running.
    """
    from derive.readers import read_text
    from derive.tomlread import load_toml

    if not names:
        return True  # every bundled set: each holds two problems or more
    folder = Path(__file__).parent / "sets"
    seen = set()
    for name in names:
        path = Path(name) if name.endswith(".toml") else folder / f"{name}.toml"
        try:
            table = load_toml(read_text(path, "set file"), name)
            params = table.get("params", {})
            seen.update((k, repr(params.get(k))) for k in table.get("problems", []))
        except (InputError, AttributeError, TypeError):  # the build reports it
            seen.add(name)
    return len(seen) > 1


def _cmd_build(args: argparse.Namespace) -> int:
    from derive import workers

    variants = args.variants is not None or args.students is not None
    if variants:
        if len(args.sets) != 1 or args.handout:
            raise InputError("--variants/--students: give exactly one set (and no --handout)")
        if args.variants is not None and args.students is not None:
            raise InputError("give either --variants N or --students FILE, not both")
        students = _students(args)
    if args.jobs > 1 and (len(students) > 1 if variants else _jobs_at_least_two(args.sets)):
        workers.warm_up()  # its import of derive runs beside ours
    with _latex_ahead(args.format == "pdf" and not variants):
        return _build(args, variants, students if variants else [])


@contextlib.contextmanager
def _latex_ahead(wanted: bool):
    """A PDF key's LaTeX runs, started now: they load TeX's format while derive imports
    (the build gives them the preamble, ``derive.render.pdf.ahead``)."""
    if not wanted:
        yield
        return
    from derive.render import pdf

    with pdf.ahead(None, 1):
        yield


def _build(args: argparse.Namespace, variants: bool, students: list[str]) -> int:
    from derive.build import build_many, build_variants
    from derive.sets import bundled, check_distinct, get_set

    names = args.sets or list(bundled())
    sets = [get_set(n) for n in names]  # every name is checked before anything is built
    if args.key is not None:  # the set's own form keeps what its set file says of extras
        sets = [
            s if s.form.name == args.key else dataclasses.replace(s, form=FORMS[args.key])
            for s in sets
        ]
    check_distinct(sets, Path(args.out))
    if variants:
        out = Path(args.out)
        files = build_variants(
            sets[0], out, students, args.seed, args.format, args.jobs, _progress_line()
        )
        print("\n".join(map(str, files)))
        return 0
    built = build_many(sets, Path(args.out), args.format, handout=args.handout, jobs=args.jobs)
    for path in built:
        print(path)
    return 0


def _students(args: argparse.Namespace) -> list[str]:
    from derive.variants import numbered, read_roster

    return numbered(args.variants) if args.students is None else read_roster(args.students)


def _progress_line():
    """A progress report on standard error, when it is a terminal: done/total, elapsed time
    and an estimate of the time left, rewritten in place."""
    if not sys.stderr.isatty():
        return None

    def report(done: int, total: int, elapsed: float) -> None:
        global _progress_open
        left = elapsed / done * (total - done)
        sys.stderr.write(
            f"\rderive: {done}/{total} versions built, {_clock(elapsed)} elapsed, "
            f"about {_clock(left)} left "
        )
        _progress_open = done < total
        sys.stderr.write("" if _progress_open else "\n")
        sys.stderr.flush()

    return report


def _end_progress_line() -> None:
    global _progress_open
    if _progress_open:
        sys.stderr.write("\n")
        _progress_open = False


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}:{secs:02d}"


def _cmd_new(args: argparse.Namespace) -> int:
    from derive.fsutil import atomic_write
    from derive.sets import starter

    dest = Path(args.file if args.file.endswith(".toml") else args.file + ".toml")
    if dest.exists() and not args.force:
        raise InputError(f"{dest} exists; pass --force to replace it")
    atomic_write(dest, starter(dest.stem).encode())
    print(dest)
    return 0


def _positive(text: str) -> int:
    digits = text.strip()
    if not digits.isascii() or not digits.lstrip("+-").isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text[:20]!r}")
    value = int(digits) if len(digits) <= 20 else 10**20  # more digits: too large anyway
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number from 1 up, got {value}")
    return value


def _jobs(text: str) -> int:
    value = _positive(text)
    if value > MAX_JOBS:
        raise argparse.ArgumentTypeError(f"expected a number from 1 to {MAX_JOBS}, got {value}")
    return value


def _named(key: str, pset, set_file: str | None):
    """The problem ``key`` as a command builds it: a problem of the set ``pset`` (read from
    ``--set FILE``) with the set's parameters and declarations (its own model, its worked
    example); otherwise the registered problem with its defaults, or a model a bundled set
    defines, as that set states it."""
    from derive.problems import REGISTRY
    from derive.sets import bundled

    if pset is not None and key in pset.problems:
        return pset.make_problem(key)
    if key in REGISTRY:
        return REGISTRY[key]()
    # Without --set, the models derive's own sets define (dl_foundations' two_layer_net);
    # the bundled sets are read only for a name the registry lacks.
    own = {k: s for s in bundled().values() for k in s.models} if pset is None else {}
    if key in own:
        return own[key].make_problem(key)
    known = [*REGISTRY, *own, *(k for k in (pset.problems if pset else ()) if k not in REGISTRY)]
    also = f" or in {set_file}" if set_file else " (a set's own model needs --set FILE)"
    raise InputError(f"unknown problem {key!r}; known problems: {', '.join(known)}{also}")


def _set_of(set_file: str | None):
    """The set ``--set FILE`` names, read once, or None."""
    if set_file is None:
        return None
    from derive.sets import get_set

    return get_set(set_file)


def _cmd_check(args: argparse.Namespace) -> int:
    from derive.problems import REGISTRY

    pset = _set_of(args.set)
    keys = args.problems or (list(pset.problems) if pset else list(REGISTRY))
    problems = [_named(k, pset, args.set) for k in keys]
    rows = [(f"{p.key}:{c.claim}", c) for p in problems for c in p.checks]
    wc = max([len("claim")] + [len(n) for n, _ in rows])
    wm = max([len("method")] + [len(c.method) for _, c in rows])
    head = f"{'claim':{wc}s}  {'method':{wm}s}  {'worst error':>11s}  {'tolerance':>9s}"
    print(f"{head}  result  sizes")
    failed = 0
    for name, c in rows:
        failed += not c.passed
        verdict = "pass" if c.passed else "FAIL"
        print(
            f"{name:{wc}s}  {c.method:{wm}s}  {c.max_rel_error:11.1e}  {c.tolerance:9.0e}  "
            f"{verdict:6s}  {c.sizes}"
        )
    total = len(rows)
    print(f"{total - failed} passed, {failed} failed")
    return EXIT_CHECK_FAILED if failed else 0


def _cmd_grad(args: argparse.Namespace) -> int:
    from derive.inputs import read_json
    from derive.problems import REGISTRY

    problem = _named(args.problem, _set_of(args.set), args.set)
    if not hasattr(problem, "grad"):
        able = [k for k, cls in REGISTRY.items() if hasattr(cls, "grad")]
        raise InputError(
            f"problem {args.problem!r} has no numeric gradient; "
            f"problems with one: {', '.join(able)}"
        )
    data = read_json(args.input)  # bounded, standard input included
    json.dump(problem.grad(data, backend=args.backend), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from derive.inputs import read_json
    from derive.problems import REGISTRY

    pset = _set_of(args.set)
    choice = _choice(args.problem, pset)
    if choice is not None:
        data = read_json(args.input)
        return _dump(choice[0].eval(data, choice[1]))
    problem = _named(args.problem, pset, args.set)
    if not hasattr(problem, "eval") and not hasattr(problem, "grad"):
        able = [k for k, cls in REGISTRY.items() if hasattr(cls, "eval") or hasattr(cls, "grad")]
        raise InputError(
            f"problem {args.problem!r} has no numeric evaluation; problems with one: "
            f"{', '.join(able)}, and any network or cell a set file defines"
        )
    data = read_json(args.input)  # bounded, standard input included
    return _dump(problem.eval(data) if hasattr(problem, "eval") else problem.grad(data))


def _choice(key: str, pset):
    """The choice ``key`` (``[choices.<key>]``) of ``pset``, else of a bundled set, with
    its set; None if no set declares it."""
    from derive.sets import bundled

    for s in [pset] if pset is not None else bundled().values():
        if key in s.choices:
            return s.choices[key], s
    return None


def _dump(out: dict) -> int:
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line like every other error."""

    def error(self, message: str):
        self.exit(2, f"derive: error: {message} (see 'derive --help')\n")


def parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    top = _Parser(
        prog="derive", description="Derive, verify and typeset deep-learning answer keys."
    )
    sub = top.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("list", help="bundled problem sets and problems").set_defaults(func=_cmd_list)
    _add_build(sub)

    n = sub.add_parser("new", help="write a commented starter set file")
    n.add_argument("file", metavar="SET", help="set id or file name (.toml added)")
    n.add_argument("--force", action="store_true", help="replace an existing file")
    n.set_defaults(func=_cmd_new)

    c = sub.add_parser("check", help="run every verification; nonzero exit if one fails")
    c.add_argument("problems", nargs="*", metavar="PROBLEM")
    c.add_argument("--set", metavar="FILE",
                   help="a set file: its problems by default, and its models may be named")
    c.set_defaults(func=_cmd_check)

    g = sub.add_parser("grad", help="evaluate a problem's derived gradient on numbers (JSON)")
    g.add_argument("problem", metavar="PROBLEM")
    g.add_argument("--input", required=True, metavar="FILE", help="JSON file, or - for stdin")
    g.add_argument("--set", metavar="FILE", help="a set file whose models may be named")
    g.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "c", "numpy"),
        help="the equations compiled to C, or NumPy (auto: C if a C compiler is there)",
    )
    g.set_defaults(func=_cmd_grad)

    e = sub.add_parser("eval", help="evaluate a problem's derived equations on numbers (JSON)")
    e.add_argument("problem", metavar="PROBLEM")
    e.add_argument("--input", required=True, metavar="FILE", help="JSON file, or - for stdin")
    e.add_argument("--set", metavar="FILE", help="a set file whose models may be named")
    e.set_defaults(func=_cmd_eval)
    return top


def _add_build(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("build", help="build answer keys (default: every bundled set, PDF)")
    b.add_argument("sets", nargs="*", metavar="SET", help="bundled set id or set file (.toml)")
    b.add_argument("--out", default="build", metavar="DIR", help="output directory (build/)")
    b.add_argument("--format", default="pdf", choices=("pdf", "tex", "json"))
    b.add_argument("--handout", action="store_true", help="the students' version: no solutions")
    b.add_argument(
        "--key",
        choices=tuple(FORMS),
        help="the key's form: full (questions, solutions, evidence), compact (solutions, one "
        "evidence line per problem, tables in an appendix), student (no evidence or "
        "instructor notes); default: the set's key, else full",
    )
    b.add_argument("--variants", type=_positive, metavar="N", help="N per-student versions")
    b.add_argument("--students", metavar="FILE", help="one version per id in FILE (a roster)")
    b.add_argument("--seed", default="0", metavar="S", help="seed of the variants (text)")
    b.add_argument(
        "--jobs", type=_jobs, default=2, metavar="N", help="worker processes (2; 1: none)"
    )
    b.set_defaults(func=_cmd_build)


def entry() -> NoReturn:
    """The installed ``derive`` command and ``python -m derive``: ``main``, then the end.

    By the time ``main`` returns every output is written and closed, every child reaped and
    every temporary folder removed; what is left is tearing down the interpreter, which frees
    each of SymPy's objects one by one (0.14 s of a 1.3 s one-set build).  So the process
    runs its ``atexit`` handlers, flushes its streams and ends with ``os._exit``.
    """
    # A collection every 700 new objects walks SymPy's young objects over and over while it
    # imports and derives (50 ms of a 1.1 s build); every 10 000 is enough for one command.
    gc.set_threshold(10_000, 10, 10)
    status = main()
    atexit._run_exitfuncs()  # private, but the one way to run them before os._exit
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe, a closed stream
            stream.flush()
    os._exit(status)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    with procs.signals():
        status = _run(argv)
        try:
            with procs.critical():  # a signal now finds the work done: it ends the shutdown
                _stop_server()
        except procs.Interrupted as exc:
            status = _interrupted(exc.signum)
    return status


def _run(argv: Sequence[str] | None) -> int:
    try:
        args = parser().parse_args(argv)
        return args.func(args)
    except DeriveError as exc:
        _say(f"derive: error: {exc}")
        return exc.exit_code
    except procs.Interrupted as exc:
        return _interrupted(exc.signum)
    except BrokenPipeError:  # `derive grad ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception:
        if procs.received() is not None:  # the interruption, surfacing from C code
            return _interrupted(procs.received())
        _end_progress_line()
        traceback.print_exc()
        _say("derive: internal error (a bug in derive; please report it)")
        return EXIT_INTERNAL


def _interrupted(signum: int) -> int:
    """Say what an interruption left: which folders were already replaced, if any."""
    from derive.fsutil import published

    name = signal.Signals(signum).name
    done = published()
    if not done:
        _say(f"derive: interrupted by {name}; earlier outputs are unchanged")
    else:
        folders = ", ".join(str(p) for p in done)
        _say(f"derive: interrupted by {name} after writing {folders}; other outputs are unchanged")
    return 128 + signum


def _say(line: str) -> None:
    """One line on standard error, on a line of its own even after a progress line."""
    _end_progress_line()
    print(line, file=sys.stderr)


def _stop_server() -> None:
    if "derive.workers" in sys.modules:  # never import it just to find nothing to stop
        sys.modules["derive.workers"].shutdown()


if __name__ == "__main__":
    sys.exit(main())
