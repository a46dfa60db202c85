"""A cell written as text runs its checks on a forward pass read off the text itself
(``derive.model.interpret``), not on code generated from its SymPy form: the two agree on
the three set-file cells, and a slip between text and SymPy makes the checks fail."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import mpmath
import numpy as np
import pytest
import sympy as sp

from derive.engine.numeric import forward
from derive.sets import get_set
from derive.verify.gradcheck import Case, make_data

MODELS = Path(__file__).resolve().parent / "models"


def _spec(stem: str):
    pset = get_set(str(MODELS / f"{stem}.toml"))
    return pset.problem_class(pset.problems[0])


@pytest.mark.parametrize("stem", ["mgu", "peephole", "coupled"])
@pytest.mark.parametrize("vector", [False, True])
def test_the_texts_reading_agrees_with_the_generated_forward_pass(stem, vector):
    cls = _spec(stem)
    cell = cls.CELL.build(biases=vector)
    assert cell.interpreted is not None
    generated = dataclasses.replace(cell, interpreted=None)
    case = Case(7, 3, 2, seed=3) if vector else Case(7, seed=3)
    data = make_data(cell, case)
    read = forward(cell, data.params, data.inputs, data.initial)
    made = forward(generated, data.params, data.inputs, data.initial)
    for name, values in made.items():
        np.testing.assert_allclose(np.array(read[name], dtype=float),
                                   np.array(values, dtype=float), rtol=1e-13, atol=1e-15)
    with mpmath.workdps(40):  # the 50-digit routes read it too
        mp = {k: np.vectorize(mpmath.mpf, otypes=[object])(v) for k, v in data.params.items()}
        xs = {k: [np.vectorize(mpmath.mpf, otypes=[object])(v) for v in seq]
              for k, seq in data.inputs.items()}
        h0 = {k: np.vectorize(mpmath.mpf, otypes=[object])(v) for k, v in data.initial.items()}
        deep = forward(cell, mp, xs, h0, backend="mpmath")
    last = cell.variables[-1].name
    assert abs(float(deep[last][-1].ravel()[0]) - float(np.ravel(made[last][-1])[0])) < 1e-13


def test_a_slip_between_the_text_and_its_sympy_form_fails_the_checks():
    """The SymPy equations of the MGU altered (h's candidate term scaled by 1.01), the
    text's reading kept: the derived gradients then disagree with the differences."""
    cls = _spec("mgu")
    spec = cls.CELL

    def slipped(s):
        pairs = list(spec.equations(s))
        u, e = pairs[-1]
        pairs[-1] = (u, e.subs(s.n, sp.Rational(101, 100) * s.n))
        return tuple(pairs)

    bad = type("Slipped", (cls,), {"CELL": dataclasses.replace(spec, equations=slipped),
                                   "LIMIT": None})
    worst = max(c.max_rel_error for c in bad(cases=[Case(3, seed=1)]).checks
                if c.method == "complex step")
    assert worst > 1e-3
    good = max(c.max_rel_error for c in cls(cases=[Case(3, seed=1)]).checks
               if c.method == "complex step")
    assert good < 1e-12


def test_a_worked_example_of_a_text_cell_is_checked_on_the_texts_reading():
    """The example's forward values (float64, generated) against the text's reading at 60
    digits: equal for the MGU as written, far apart once the SymPy form slips."""
    cls = _spec("mgu")
    spec = cls.CELL
    example = {"x": [1, "-0.5", 2], "h0": "0.1", "dL_dh": [1, 0, -2],
               "weights": {"w_fx": "0.5", "w_fh": "-0.3", "w_nx": "0.8", "w_nh": "1/4"}}

    def slipped(s):
        pairs = list(spec.equations(s))
        u, e = pairs[-1]
        return (*pairs[:-1], (u, e.subs(s.n, sp.Rational(101, 100) * s.n)))

    def forward_error(problem_cls) -> float:
        problem = problem_cls(example=example, cases=[Case(1, seed=1)])
        (check,) = [c for c in problem.checks if c.claim == "example_forward"]
        return check.max_rel_error

    bad = type("Slipped", (cls,), {"CELL": dataclasses.replace(spec, equations=slipped),
                                   "LIMIT": None})
    assert forward_error(cls) < 1e-15
    assert forward_error(bad) > 1e-3
