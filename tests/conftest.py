"""Shared fixtures: a seeded generator and the problems, derived once per session."""

from __future__ import annotations

import numpy as np
import pytest

from derive.problems import REGISTRY, get_problem


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261122)


@pytest.fixture(scope="session")
def problems() -> dict:
    """Every registered problem, with results derived and checks run once."""
    return {key: get_problem(key) for key in REGISTRY}


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
