"""Shared fixtures: a seeded generator, the problems derived once per session, and the
parametrization of every generic test over every registered problem.

A test that takes ``problem_key`` runs once per problem of ``derive.problems.REGISTRY``
(``recurrent_key``: once per recurrent problem), so a new problem is picked up with no
edit here; ``--problem KEY`` (repeatable, or ``KEY1,KEY2``) narrows those tests to the
named problems.  Markers: ``pdf`` for tests that run LaTeX, ``slow`` for the longest;
``-m "not pdf"`` or ``-m "not slow"`` leaves them out (a plain run runs everything).  A
test whose body calls ``compile_pdf``, ``key_pdf_text`` or ``pdf_text`` is marked ``pdf``
here; one that reaches LaTeX otherwise (the command line, a fixture) carries the mark.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from derive.problems import REGISTRY, Problem, get_problem
from derive.problems.recurrent import RecurrentProblem

#: Fixture names parametrized over registered problems, with the problems each takes.
FAMILIES: dict[str, Callable[[type[Problem]], bool]] = {
    "problem_key": lambda cls: True,
    "recurrent_key": lambda cls: issubclass(cls, RecurrentProblem),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--problem",
        action="append",
        default=[],
        metavar="KEY",
        help="run the tests over every problem for KEY only (repeatable, or KEY1,KEY2)",
    )


def pytest_configure(config: pytest.Config) -> None:
    chosen_problems(config)  # a misspelt --problem stops the run before collection


def chosen_problems(config: pytest.Config) -> list[str]:
    """The problems ``--problem`` names, in registry order; every problem without it."""
    named = {k.strip() for given in config.getoption("problem") for k in given.split(",")}
    named.discard("")
    unknown = sorted(named - set(REGISTRY))
    if unknown:
        raise pytest.UsageError(
            f"--problem: unknown problem {unknown[0]!r}; known: {', '.join(REGISTRY)}"
        )
    return [key for key in REGISTRY if key in named or not named]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for name, takes in FAMILIES.items():
        if name in metafunc.fixturenames:
            keys = [k for k in chosen_problems(metafunc.config) if takes(REGISTRY[k])]
            metafunc.parametrize(name, keys)


#: Names that a test calls only to run LaTeX or to read what it made.
RUNS_LATEX = frozenset({"compile_pdf", "key_pdf_text", "pdf_text"})


def _names(code: types.CodeType) -> set[str]:
    """Every global and attribute name ``code`` uses, nested functions included."""
    out = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            out |= _names(const)
    return out


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        function = getattr(item, "function", None)
        if function is not None and RUNS_LATEX & _names(function.__code__):
            item.add_marker(pytest.mark.pdf)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261122)


@pytest.fixture(scope="session")
def problems() -> dict:
    """Every registered problem, with results derived and checks run once."""
    return {key: get_problem(key) for key in REGISTRY}


@pytest.fixture(scope="module")
def problem(request, problems):
    """The default instance of the problem a test module names in ``PROBLEM``, derived and
    checked once per session (shared with every generic test)."""
    key = getattr(request.module, "PROBLEM", None)
    if key is None:
        raise pytest.UsageError(f"{request.module.__name__} uses `problem` but sets no PROBLEM")
    return problems[key]


@pytest.fixture(scope="session")
def bundled_keys(tmp_path_factory) -> Path:
    """Every bundled set's answer key, built once as LaTeX into ``<folder>/<set id>/``.

    Shared by the golden and the readability tests: read it, and write elsewhere.
    """
    import fcntl
    import os

    from derive.cli import main
    from derive.sets import bundled

    # Test workers (pytest-xdist) share one build: their temporary folders have one parent.
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    out, done = root / "bundled_keys", root / "bundled_keys.done"
    with open(root / "bundled_keys.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            assert main(["build", *sorted(bundled()), "--out", str(out), "--format",
                         "tex"]) == 0
            done.touch()
    return out


def key_pdf_text(problem, tmp_path, notation=None) -> str:
    """Typeset ``problem`` alone as an answer key and return the PDF's text."""
    from derive.render.document import render
    from derive.render.latex import Notation
    from derive.render.pdf import compile_pdf, pdf_text
    from derive.sets import ProblemSet

    pset = ProblemSet("key", "Key", "Course", "test", (problem.key,), notation or Notation())
    dest = tmp_path / "key.pdf"
    compile_pdf(render(pset, [problem]), dest)
    return pdf_text(dest)


def key_tex(problem, notation=None, handout: bool = False) -> str:
    """The LaTeX of ``problem`` alone as an answer key (or its handout)."""
    from derive.render.document import render
    from derive.render.latex import Notation
    from derive.sets import ProblemSet

    pset = ProblemSet("key", "Key", "Course", "test", (problem.key,), notation or Notation())
    return render(pset, [problem], handout=handout)


# -- set files and earlier outputs shared by the input, output and fuzz tests --------------------
#: The top of a set file ``mine``; a test adds its problems and tables.
HEAD = 'id = "mine"\ntitle = "Homework 2"\ncourse = "DL 101"\nsource = "mine"\n'
#: An earlier answer key that a failed build must not touch.
OLD = b"% an earlier answer key that a failed build must not touch\n"
#: A set whose versions are quick to build: momentum, beta drawn from five values.
QUIZ = """\
id = "quiz"
title = "Quiz"
course = "Course"
source = "written for the tests"
problems = ["momentum"]
[vary.momentum]
beta = ["0.5", "0.6", "0.7", "0.8", "0.9"]
"""

#: Set-file lines drawing versions of two problems (eigen_power and cnn_params).
VARY = (
    'problems = ["eigen_power", "cnn_params"]\n'
    "[vary.eigen_power]\nn = { min = 10, max = 40 }\n"
    'W = { eigenvalues = [{ min = "0.1", max = "0.5", step = "0.1" },'
    ' { min = "0.6", max = "1.4", step = "0.2" }] }\n'
    "[vary.cnn_params]\n"
    'layers = [["conv3-16", "maxpool2", "fc-10"], ["conv3-32", "maxpool2", "fc-10"]]\n'
)


def set_file(tmp_path, body: str, head: str = HEAD, name: str = "mine.toml"):
    """``head + body`` written as the set file ``tmp_path / name``; its path."""
    path = tmp_path / name
    path.write_text(head + body, encoding="utf-8")
    return path


def snapshot(folder) -> dict[str, bytes]:
    """Every file under ``folder`` by relative path, with its bytes."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.fixture
def previous(tmp_path):
    """An output folder holding an earlier key of set ``mine``."""
    out = tmp_path / "out"
    (out / "mine").mkdir(parents=True)
    (out / "mine" / "answer-key.tex").write_bytes(OLD)
    return out


def eval_json(problem: str, data, capsys, tmp_path) -> tuple[int, str, str]:
    """``derive eval PROBLEM --input FILE`` on ``data`` (as JSON): status, stdout, stderr."""
    import json

    from derive.cli import main

    path = tmp_path / "in.json"
    path.write_text(json.dumps(data))
    status = main(["eval", problem, "--input", str(path)])
    out, err = capsys.readouterr()
    return status, out, err
