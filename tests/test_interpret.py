"""The mpmath interpreter of a cell (derive.verify.interpret): the independent forward pass.

It must agree with the engine's forward pass (which it never calls) on every registered
recurrent cell, perturb an assigned variable right after it is computed, and refuse a
function it has no rule for with a message that says where to add it.
"""

from __future__ import annotations

import mpmath
import pytest
import sympy as sp

from derive.engine.cell import Cell
from derive.engine.numeric import forward
from derive.errors import InputError
from derive.problems import REGISTRY
from derive.problems.recurrent import RecurrentProblem
from derive.verify.interpret import Interpreter, UninterpretableError, compile_expr

RECURRENT = [k for k, cls in REGISTRY.items() if issubclass(cls, RecurrentProblem)]


def numbers(cell: Cell) -> tuple[dict, dict, dict]:
    weights = {p.name: 0.1 * (i + 1) * (-1) ** i for i, p in enumerate(cell.params)}
    inputs = {x.name: [0.5, -1.0, 2.0] for x in cell.inputs}
    return weights, inputs, {s.name: 0.25 for s in cell.states}


@pytest.mark.parametrize("key", RECURRENT)
def test_interpreter_agrees_with_the_engine(key):
    cell = REGISTRY[key]().cell
    w, x, init = numbers(cell)
    traj = forward(cell, w, x, init)
    rows = Interpreter(cell).run(w, x, init)
    for k, row in enumerate(rows, start=1):
        for v in cell.variables:
            assert float(row[v.name]) == pytest.approx(float(traj[v.name][k]), rel=1e-14), v


def test_a_bump_moves_the_variable_and_what_follows():
    cell = REGISTRY["gru"]().cell
    w, x, init = numbers(cell)
    interp = Interpreter(cell)
    base, bumped = interp.run(w, x, init), interp.run(w, x, init, {(2, "n"): 0.5})
    assert base[0] == bumped[0]
    assert bumped[1]["n"] == base[1]["n"] + 0.5
    assert bumped[1]["h"] != base[1]["h"] and bumped[1]["z"] == base[1]["z"]


def test_exact_numbers_stay_exact_at_the_working_precision():
    node = compile_expr(sp.Rational(1, 3) * sp.Symbol("a") ** 2)
    with mpmath.workdps(60):
        assert node({"a": mpmath.mpf(3)}) == 3
        assert abs(compile_expr(sp.Rational(1, 3))({}) - mpmath.mpf(1) / 3) == 0


def test_an_unknown_function_names_where_to_add_it():
    with pytest.raises(UninterpretableError, match=r"derive/engine/functions\.py"):
        compile_expr(sp.sin(sp.Symbol("x")))


def test_a_function_outside_its_domain_is_an_error_not_a_complex_number():
    a = sp.Symbol("a")
    cube_root = a ** sp.Rational(1, 3)
    for expr, at in ((sp.log(a), -1), (sp.log(a), 0), (sp.sqrt(a), -2), (cube_root, -8)):
        with pytest.raises(InputError, match=r"outside its domain|non-integer power"):
            compile_expr(expr)({"a": mpmath.mpf(at)})
    # a complex step on a real argument inside the domain is fine
    assert compile_expr(sp.log(a))({"a": mpmath.mpc(2, 1e-30)}).imag == pytest.approx(5e-31)
    assert compile_expr(a**2)({"a": mpmath.mpf(-3)}) == 9  # an integer power of any number


def test_a_float_is_the_binary_number_the_engine_uses():
    with mpmath.workdps(40):
        assert compile_expr(sp.Float(0.1))({}) == mpmath.mpf(0.1)
        assert compile_expr(sp.Float(0.1))({}) != mpmath.mpf("0.1")


def test_a_constant_is_named_as_a_constant():
    for c in (sp.pi, sp.E, sp.I):
        with pytest.raises(UninterpretableError, match="the constant"):
            compile_expr(c * sp.Symbol("a"))
