"""Building a set's outputs: derivations, checks, LaTeX, PDF and JSON.

Outputs appear all at once or not at all: a set's files are written into a staging folder
and swapped in (``publish``), a variants run builds every version into one staging folder
and swaps it in with its index.  A failure or an interruption leaves earlier outputs
byte-identical.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor, as_completed
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from derive import fsutil, procs, workers
from derive.errors import ChecksFailedError, DeriveError, InputError, NoTexEngineError
from derive.export import export_problem, json_bytes
from derive.params import plain_data
from derive.problems import Problem
from derive.render import pdf
from derive.render.document import (
    environment,
    preamble,
    render,
    render_evidence,
    render_page,
    render_problem,
)
from derive.sets import ProblemSet
from derive.variants import COMBINED_NAMES, INDEX_NAME, Version, versions

FORMATS = ("pdf", "tex", "json")
#: The JSON export's file name (as a variants index lists it).
JSON_NAME = "derivations.json"


def make_problems(pset: ProblemSet, cache: dict[str, Problem]) -> list[Problem]:
    """``pset``'s problems with its parameters, reusing instances with equal parameters."""
    out = []
    for key in pset.problems:
        ident = _ident(pset, key)
        if ident not in cache:
            cache[ident] = pset.make_problem(key)
        out.append(cache[ident])
    return out


def _ident(pset: ProblemSet, key: str) -> str:
    """What makes two uses of a problem the same: its key, its parameters and the source
    declarations its derivation reads (a declared sample solution adds results)."""
    derives = pset.problem_class(key).ORIGINAL_DERIVES
    original = {k: v for k, v in pset.original.get(key, {}).items() if k in derives}
    tail = ":" + canonical(original) if original else ""
    # A set's own model is its table: two sets may define one name differently.
    from derive.model.defined import canonical as model_text  # light: after the registry

    model = ":model:" + model_text(pset.models[key]) if key in pset.models else ""
    return key + ":" + canonical(pset.params.get(key, {})) + tail + model


def canonical(value: Any) -> str:
    """A stable text of raw set-file data (decimals as written, keys sorted)."""
    return json.dumps(plain_data(value), sort_keys=True, ensure_ascii=True)


def failed_checks(problems: list[Problem]) -> list[str]:
    """``problem:claim (method)`` of every failing check."""
    return [f"{p.key}:{c.claim} ({c.method})" for p in problems for c in p.checks if not c.passed]


@dataclass
class Prepared:
    """A build whose derivations, checks and LaTeX source are done; ``write`` compiles and
    writes it.  Splitting the two lets LaTeX for one set run while the next set is derived."""

    pset: ProblemSet
    target: Path
    fmt: str
    handout: bool
    #: The LaTeX source (pdf, tex; None for json).
    source: str | None
    #: Each problem's JSON entry by key (json; empty otherwise).
    entries: dict[str, dict]
    #: ``problem:claim (method)`` of every failing check (none for a handout).
    failed: list[str]

    def files(self) -> dict[str, bytes]:
        """The outputs by file name (a PDF is typeset here: a LaTeX error writes nothing)."""
        if self.fmt == "json":
            return {JSON_NAME: json_bytes(self.pset, self.entries)}
        stem = "handout" if self.handout else self.pset.form.stem
        out = {f"{stem}.tex": self.source.encode()}
        if self.fmt == "pdf":
            out = {f"{stem}.pdf": pdf.typeset(self.source), **out}
        return out

    def write(self) -> list[Path]:
        """Write the outputs into the set's folder all at once (see ``publish``); raise
        ``ChecksFailedError`` after writing if a check failed."""
        written = publish(self.target, self.files())
        self.raise_failed(written)
        return written

    def raise_failed(self, written: list[Path]) -> None:
        if self.failed:  # a handout runs no check: nothing fails
            raise ChecksFailedError(
                f"{self.pset.id}: {len(self.failed)} check(s) failed, marked FAIL in "
                f"{written[0]}: " + "; ".join(self.failed[:5])
            )


def publish(target: Path, files: dict[str, bytes]) -> list[Path]:
    """Put ``files`` into the folder ``target`` in one step: the folder is rebuilt in a staging
    folder (new files written, the others hard-linked) and swapped in, so a reader sees this
    run's outputs together or none of them.  Returns the paths written."""
    real = fsutil.real_folder(target)
    with fsutil.locked(real.parent), fsutil.staging(real.parent) as staged:
        fsutil.copy_into(real, staged, skip=set(files))
        for name, data in files.items():
            fsutil.atomic_write(staged / name, data)
        fsutil.swap_in(staged, real)
    return [target / name for name in files]


def _check_request(fmt: str, handout: bool) -> None:
    if handout and fmt == "json":
        raise InputError("--handout: a handout has no derivations to export; use pdf or tex")
    if fmt == "pdf" and pdf.find_engine() is None:
        raise NoTexEngineError(pdf.INSTALL_HINT)


def build(
    pset: ProblemSet,
    out_dir: Path,
    fmt: str = "pdf",
    cache: dict[str, Problem] | None = None,
    *,
    handout: bool = False,
    target: Path | None = None,
    version: str = "",
) -> list[Path]:
    """Build ``pset`` in format ``fmt`` into ``out_dir/<set id>/``; return the files written.

    ``handout`` builds the students' version (questions and given data only) instead of the
    answer key.  If a check fails, the key is still written (it marks the claim FAIL) and
    ``ChecksFailedError`` is raised afterwards, so the command exits nonzero.  ``cache``
    shares derived problems between the sets of one run (a problem in three sets is derived
    and checked once).  ``target`` overrides the output folder; ``version`` labels a variant.
    """
    _check_request(fmt, handout)
    target = out_dir / pset.id if target is None else target
    fsutil.writable_folder(target.parent)
    return _prepare(pset, target, fmt, handout, version, cache).write()


def _prepare(
    pset: ProblemSet,
    target: Path,
    fmt: str,
    handout: bool,
    version: str = "",
    cache: dict[str, Problem] | None = None,
) -> Prepared:
    """``pset`` derived, checked and rendered in this process, ready to be written."""
    problems = make_problems(pset, {} if cache is None else cache)
    if fmt == "json":
        source, entries = None, {p.key: export_problem(pset, p) for p in problems}
    else:
        source, entries = render(pset, problems, handout=handout, version=version), {}
    failed = [] if handout else failed_checks(problems)
    return Prepared(pset, target, fmt, handout, source, entries, failed)


def build_many(
    sets: list[ProblemSet],
    out_dir: Path,
    fmt: str = "pdf",
    *,
    handout: bool = False,
    jobs: int = 1,
) -> list[Path]:
    """Build several sets; with ``jobs`` > 1, problems are worked on in parallel.

    Each distinct problem (key and parameters) is derived, checked and rendered once, for
    every set that uses it: in a fresh worker process when ``jobs`` > 1 (see
    ``derive.workers``), else here.  Each set's LaTeX runs in a thread as soon as its
    problems are ready.  Every set is attempted; the first error (in set order) is raised
    after all have finished.
    """
    cache = _validated(sets, out_dir, fmt, handout)
    plan = _plan(sets, fmt, handout)
    outcomes = _build_all(sets, out_dir, fmt, handout, plan, min(jobs, len(plan)), cache)
    return _written(outcomes)


def _validated(
    sets: list[ProblemSet], out_dir: Path, fmt: str, handout: bool
) -> dict[str, Problem]:
    """What can fail before any work: the request, the folders, every set's parameters;
    returns the problems made on the way (by identity, see ``make_problems``)."""
    _check_request(fmt, handout)
    fsutil.writable_folder(out_dir)
    for pset in sets:
        fsutil.real_folder(out_dir / pset.id)  # a file in the way fails now, not after LaTeX
    cache: dict[str, Problem] = {}
    for pset in sets:  # every set's parameters are validated before any work starts
        make_problems(pset, cache)
    return cache


def _build_all(
    sets: list[ProblemSet],
    out_dir: Path,
    fmt: str,
    handout: bool,
    plan: dict[str, _Job],
    jobs: int,
    cache: dict[str, Problem],
) -> list[Future | DeriveError]:
    """Every set assembled from its problems' work and written in a LaTeX thread; per set,
    the future of its files or the error that stopped it before LaTeX.  Returns when every
    thread and worker is done."""
    outcomes: list[Future | DeriveError] = []
    try:
        with ExitStack() as stack:
            if fmt == "pdf" and sets:  # LaTeX loads the preamble while problems are derived
                stack.enter_context(pdf.ahead(preamble(sets[0], handout=handout), len(sets)))
            futures = _start_jobs(stack, plan, jobs, cache)
            latex = stack.enter_context(ThreadPoolExecutor(max_workers=2))
            for pset in sets:
                try:
                    prepared = _assemble(pset, out_dir, fmt, handout, plan, futures)
                    outcomes.append(latex.submit(prepared.write))
                except DeriveError as exc:
                    outcomes.append(exc)
    except BaseException:
        # Interrupted: LaTeX threads finish (their programs were stopped) before we go.
        procs.drain([o for o in outcomes if isinstance(o, Future)])
        raise
    return outcomes


def _start_jobs(
    stack: ExitStack, plan: dict[str, _Job], jobs: int, cache: dict[str, Problem]
) -> dict[str, Future | _Immediate]:
    """Each job's result to come: from a pool of ``jobs`` workers (closed with ``stack``)."""
    if jobs > 1:
        return _submit_all(stack.enter_context(workers.pool(jobs)), plan)
    # Here, when first needed (so errors surface in set order).
    return {i: _Immediate(job, cache[i]) for i, job in plan.items()}


def _written(outcomes: list[Future | DeriveError]) -> list[Path]:
    """The files every set wrote; else the first error in set order, once all are done."""
    written, errors = [], []
    for outcome in outcomes:
        try:
            if isinstance(outcome, DeriveError):
                raise outcome
            written += outcome.result()
        except DeriveError as exc:
            errors.append(exc)
    if errors:
        raise errors[0]
    return written


def _submit_all(pool: Executor, plan: dict[str, _Job]) -> dict[str, Future]:
    # A problem more sets wait for goes first (stable: then in set order).
    order = sorted(plan, key=lambda i: -len(plan[i].uses))
    return {i: pool.submit(_run_job, plan[i]) for i in order}


@dataclass(frozen=True)
class _Job:
    """One problem (key and parameters) to derive, check and render for every set using
    it, as problem ``number`` of that set."""

    key: str
    uses: tuple[tuple[ProblemSet, int], ...]
    fmt: str
    handout: bool


@dataclass(frozen=True)
class _Done:
    parts: tuple  # per use: (the LaTeX part, its evidence appendix part), or the JSON entry
    failed: tuple[str, ...]


def _plan(sets: list[ProblemSet], fmt: str, handout: bool) -> dict[str, _Job]:
    uses: dict[str, list[tuple[ProblemSet, int]]] = {}
    keys: dict[str, str] = {}
    for pset in sets:
        for number, key in enumerate(pset.problems, start=1):
            ident = _ident(pset, key)
            uses.setdefault(ident, []).append((pset, number))
            keys[ident] = key
    return {i: _Job(keys[i], tuple(u), fmt, handout) for i, u in uses.items()}


def _run_job(job: _Job, problem: Problem | None = None) -> _Done:
    """Derive, check and render one problem for every set that uses it."""
    if problem is None:
        problem = job.uses[0][0].make_problem(job.key)
    if job.fmt == "json":
        parts = tuple(export_problem(pset, problem) for pset, _ in job.uses)
    else:
        # Each use's solution and its part of the evidence appendix (built here, where the
        # problem is at hand: the parent has only the rendered parts).
        parts = tuple(_rendered(pset, problem, n, job.handout) for pset, n in job.uses)
    failed = () if job.handout else tuple(failed_checks([problem]))
    return _Done(parts, failed)


class _Immediate:
    """A job run in this process when its result is first asked for."""

    def __init__(self, job: _Job, problem: Problem) -> None:
        self._job, self._problem = job, problem
        self._done: _Done | None = None

    def result(self) -> _Done:
        if self._done is None:
            self._done = _run_job(self._job, self._problem)
        return self._done


def _rendered(pset: ProblemSet, problem: Problem, n: int, handout: bool) -> tuple[str, str]:
    """One use's solution and its part of the evidence appendix, from one environment."""
    env = environment(pset.notation)
    evidence = "" if handout else render_evidence(pset, problem, n, env=env)
    return render_problem(pset, problem, n, handout=handout, env=env), evidence


def _assemble(pset, out_dir, fmt, handout, plan, futures) -> Prepared:
    """A set's ``Prepared`` from its problems' finished jobs."""
    parts, appendix, entries, failed = [], [], {}, []
    for number, key in enumerate(pset.problems, start=1):
        ident = _ident(pset, key)
        done: _Done = futures[ident].result()
        use = next(i for i, (s, n) in enumerate(plan[ident].uses) if s is pset and n == number)
        if fmt == "json":
            entries[key] = done.parts[use]
        else:
            parts.append(done.parts[use][0])
            appendix.append(done.parts[use][1])
        failed += done.failed
    source = (
        None if fmt == "json"
        else render_page(pset, parts, handout=handout, appendix=appendix)
    )
    return Prepared(pset, out_dir / pset.id, fmt, handout, source, entries, failed)


#: A progress report: versions done, versions in all, seconds since the start.
Progress = Callable[[int, int, float], None]


def build_variants(
    pset: ProblemSet,
    out_dir: Path,
    students: list[str],
    seed: str,
    fmt: str = "pdf",
    jobs: int = 2,
    progress: Progress | None = None,
) -> list[Path]:
    """One verified answer key and handout per student, and ``index.csv`` mapping them.

    Versions land in ``out_dir/<set id>/variants/<student>/``; ``jobs`` processes build
    them in parallel (the outputs do not depend on the order).  As PDF, every handout and
    every key are also bound into one file each, in roster order, for printing
    (``COMBINED_NAMES``); as JSON, each student gets the set's export and no handout.  Every
    parameter of every version is parsed before anything is built, and the versions are
    built into a staging folder that replaces ``variants/`` only once all of them, the
    combined files and the index are written.  ``progress`` is called after each version.
    """
    _check_request(fmt, handout=False)
    chosen = versions(pset, students, seed)
    for v in chosen:  # a drawn value the problem rejects fails here, before any output
        make_problems(v.pset, {})
    index = _index_csv(chosen, seed, fmt).encode()
    shown = out_dir / pset.id / "variants"
    # Staged two levels up from the real folder (out_dir itself, unless links lead elsewhere):
    # on its filesystem, and outside the set folder that key builds rebuild.
    dest = fsutil.real_folder(fsutil.real_folder(out_dir / pset.id) / "variants")
    with fsutil.staging(dest.parent.parent) as staged:
        tasks = [(v, staged / v.student, shown / v.student, fmt) for v in chosen]
        outcomes = _run_versions(tasks, jobs, progress)
        combined = _combine(chosen, staged) if fmt == "pdf" else []
        fsutil.atomic_write(staged / INDEX_NAME, index)
        with fsutil.locked(dest.parent.parent):
            fsutil.swap_in(staged, dest)
    failed = [f"{v.student}: {msg}" for v, (_, msg) in zip(chosen, outcomes, strict=True) if msg]
    if failed:
        raise ChecksFailedError(f"{len(failed)} version(s) failed a check: " + "; ".join(failed))
    files = [path for files, _ in outcomes for path in files]
    return [shown / INDEX_NAME, *(shown / name for name in combined), *files]


def _combine(chosen: list[Version], staged: Path) -> list[str]:
    """Every student's handout, and every key, bound into one PDF each (``COMBINED_NAMES``),
    in roster order, beside the students' folders; the names written."""
    handouts, keys = COMBINED_NAMES
    stems = {handouts: "handout", keys: chosen[0].pset.form.stem}  # one form for every version
    for name, stem in stems.items():
        parts = [(staged / v.student / f"{stem}.pdf").read_bytes() for v in chosen]
        # About 0.2 s a part on a busy machine; the default 120 s would stop a big class.
        fsutil.atomic_write(staged / name, pdf.combine(parts, timeout=120.0 + len(parts)))
    return list(stems)


def _run_versions(
    tasks: list[tuple[Version, Path, Path, str]], jobs: int, progress: Progress | None
) -> list[tuple[list[Path], str]]:
    """Build every version (in ``jobs`` workers), results in the order of ``tasks``."""
    start, done = time.monotonic(), 0
    outcomes: list = [None] * len(tasks)
    jobs = min(jobs, len(tasks))
    with ExitStack() as stack:
        if jobs > 1:
            pool = stack.enter_context(workers.pool(jobs))
            futures = {pool.submit(_build_version, task): i for i, task in enumerate(tasks)}
            finished = ((futures[f], f.result()) for f in as_completed(futures))
        else:
            finished = ((i, _build_version(task)) for i, task in enumerate(tasks))
        for i, outcome in finished:
            outcomes[i] = outcome
            done += 1
            if progress is not None:
                progress(done, len(tasks), time.monotonic() - start)
    return outcomes


def _build_version(task: tuple[Version, Path, Path, str]) -> tuple[list[Path], str]:
    """One student's key and handout, written into their staged folder; the paths they will
    have once swapped in (``shown``), and the message of a failed check, or ''."""
    version, target, shown, fmt = task
    cache: dict[str, Problem] = {}  # the handout and the key share their problems
    with ExitStack() as stack:
        if fmt == "pdf":  # both documents' LaTeX loads the preamble while this one derives
            stack.enter_context(pdf.ahead(preamble(version.pset), 2))
        key = _prepare(version.pset, target, fmt, False, version.student, cache)
        made = key.files()
        if fmt != "json":  # a handout has nothing to export
            made |= _prepare(version.pset, target, fmt, True, version.student, cache).files()
    for name, data in made.items():
        fsutil.atomic_write(target / name, data)
    written = [shown / name for name in made]
    try:
        key.raise_failed(written)
    except ChecksFailedError as exc:
        return written, str(exc)
    return written, ""


def _index_csv(chosen: list[Version], seed: str, ext: str) -> str:
    """Student -> version number, files (relative to the index) and drawn parameters."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(["student", "version", "seed", "answer_key", "handout", "parameters"])
    for v in chosen:
        if ext == "json":  # the export stands for the key; there is no handout
            key, handout = f"{v.student}/{JSON_NAME}", ""
        else:
            key, handout = f"{v.student}/{v.pset.form.stem}.{ext}", f"{v.student}/handout.{ext}"
        out.writerow([v.student, v.number, seed, key, handout, v.digest()])
    return buf.getvalue()
