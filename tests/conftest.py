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
