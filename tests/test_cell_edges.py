"""Cells at the edges of the recurrent engine, as a library user writes them in Python:
a state nothing reads back, exponentials in the vector step, ReLU, a cell without
states and an optimizer written as a cell (issue 15's list of crashes)."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from derive.engine.functions import FUNCTIONS
from derive.engine.spec import CellSpec
from derive.errors import InputError
from derive.problems.recurrent import RecurrentProblem


def problem(spec: CellSpec) -> RecurrentProblem:
    cls = type(spec.name, (RecurrentProblem,), {"key": spec.name, "title": spec.name,
                                               "CELL": spec, "NOUN": spec.name})
    return cls()


def _all_pass(p: RecurrentProblem) -> None:
    failed = [(c.claim, c.method) for c in p.checks if not c.passed]
    assert p.checks and not failed


def test_a_state_no_step_reads_back_has_zero_gradient():
    # c is computed at every step but neither the loss nor a later step reads it.
    spec = CellSpec("unread", ("x",), ("h", "c"), ("w", "u"), (),
                    lambda s: (("h", sp.tanh(s.w * s.x + s.h_prev)), ("c", s.u * s.x)),
                    ("h",))
    p = problem(spec)
    r = p.results
    assert r["vector_c0_bar"].expr == sp.ZeroMatrix(*r["vector_c0_bar"].expr.shape)
    assert r["vector_c_bar"].expr.is_ZeroMatrix  # so u's gradient, sum of c-bar x^T, is 0
    _all_pass(p)


def test_exponentials_in_the_vector_step():
    # A two-way softmax of the input's and the state's scores: exp in the generated step.
    spec = CellSpec("softmax2", ("x",), ("h",), ("w1", "w2"), (),
                    lambda s: (("z1", s.w1 * s.x), ("z2", s.w2 * s.h_prev),
                               ("h", sp.exp(s.z1) / (sp.exp(s.z1) + sp.exp(s.z2)))), ("h",))
    _all_pass(problem(spec))


def test_relu_derivative_is_the_step_function_not_heaviside():
    relu = FUNCTIONS["relu"].sympy
    spec = CellSpec("relu_rnn", ("x",), ("h",), ("w", "u"), (),
                    lambda s: (("h", relu(s.w * s.x + s.u * s.h_prev)),), ("h",))
    p = problem(spec)
    assert not any(r.expr.has(sp.Heaviside) for r in p.results.values()
                   if isinstance(r.expr, sp.Basic))
    _all_pass(p)


def test_a_cell_without_states_is_refused_with_the_way_out():
    with pytest.raises(InputError, match=r'carries at least one state; a network without '
                                         r'states is a feed-forward graph \(kind = "graph"\)'):
        CellSpec("mlp", ("x",), (), ("w1", "w2"), (),
                 lambda s: (("a", sp.tanh(s.w1 * s.x)), ("o", s.w2 * s.a)), ("o",))


def test_an_optimizer_written_as_a_cell_points_to_maps():
    spec = CellSpec("adam_cell", ("g",), ("m", "v", "w"), ("beta1", "beta2", "lr"), (),
                    lambda s: (("m", s.beta1 * s.m_prev + (1 - s.beta1) * s.g),
                               ("v", s.beta2 * s.v_prev + (1 - s.beta2) * s.g**2),
                               ("w", s.w_prev - s.lr * s.m / sp.sqrt(s.v))), ("w",))
    with pytest.raises(InputError, match='write such an update as a map, kind = "map"'):
        problem(spec).results  # noqa: B018 - deriving is what fails


def test_zero_adjoints_evaluate_with_their_shape():
    from derive.engine.numeric import _shaped

    zero = np.zeros((3, 1))
    assert _shaped(0.0, zero).shape == (3, 1)
    assert _shaped(np.ones((3, 1)), zero).shape == (3, 1)
