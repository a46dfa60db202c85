"""``derive.engine.jacobian``: each VJP-to-Jacobian rule against a complex-step Jacobian.

Every case pairs a small forward map, written in NumPy here, with its VJP written by hand as
a matrix expression.  The Jacobian read off the VJP must equal the complex-step Jacobian of
the forward map on random numbers; the VJP itself must equal Jᵀ ḡ (so the case is right).
The same holds for VJPs the engine produces (``vjp_of``) on a small cell with two paths.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import sympy as sp

from derive.engine.cell import Cell, t, vector_quantity
from derive.engine.functions import sigma
from derive.engine.jacobian import Diag, jacobian_from_vjp, matmul, vjp_of
from derive.engine.numeric import MatrixEvaluator
from derive.engine.vector import ONE, n_h, n_x
from derive.errors import InputError
from derive.render.latex import tex

N, M = 3, 4  # distinct sizes, so that a transposed matrix cannot pass
H = 1e-30  # complex step: no subtraction, exact to round-off
SIZES = {n_h: N, n_x: 2}

g = sp.MatrixSymbol("gbar", N, 1)
A = sp.MatrixSymbol("A", N, M)
B = sp.MatrixSymbol("B", N, N)
v = sp.MatrixSymbol("v", N, 1)
e = sp.MatrixSymbol("e", M, 1)
r = sp.MatrixSymbol("r", M, 1)


def _sig(z):
    return 1 / (1 + np.exp(-z))  # analytic: complex steps pass through


NUMERIC = {sigma: _sig, sp.tanh: np.tanh}


def evaluate(expr, env: dict) -> np.ndarray:
    """A matrix expression in NumPy (the engine's evaluator shares no code with the rules);
    ``env`` holds each quantity of a cell by itself, any other matrix symbol by its name."""
    return MatrixEvaluator(lambda m: env[m] if m in env else env[m.name], NUMERIC, SIZES)(expr)


def complex_step(forward: Callable, w: np.ndarray) -> np.ndarray:
    """d forward(w) / d w, one column per entry of ``w`` read row by row."""
    cols = []
    for idx in np.ndindex(w.shape):
        step = w.astype(complex)
        step[idx] += 1j * H
        cols.append(np.imag(forward(step)).ravel() / H)
    return np.stack(cols, axis=1)


def assert_reads(vjp, gbar, forward: Callable, w: np.ndarray, env: dict) -> sp.MatrixExpr:
    """The Jacobian read off ``vjp`` matches the complex-step Jacobian of ``forward`` at w."""
    want = complex_step(forward, w)
    jac = jacobian_from_vjp(vjp, gbar)
    assert tuple(int(sp.sympify(d).xreplace(SIZES)) for d in jac.shape) == want.shape
    np.testing.assert_allclose(evaluate(jac, env), want, rtol=1e-13, atol=1e-14)
    # The case itself: its VJP is Jᵀ ḡ for a random ḡ.
    g_val = np.random.default_rng(1).normal(size=(want.shape[0], 1))
    got = evaluate(vjp, {**env, gbar: g_val})
    np.testing.assert_allclose(got.ravel(), (want.T @ g_val).ravel(), rtol=1e-13, atol=1e-14)
    return jac


# -- one rule at a time -----------------------------------------------------------------------
# (VJP as the engine would write it, forward map of w given the values, shape of w)
RULES = {
    "gbar -> I": (g, lambda p, w: w, (N, 1)),
    "gbar o v -> diag(v)": (sp.HadamardProduct(g, v), lambda p, w: p["v"] * w, (N, 1)),
    "A^T gbar -> A": (A.T * g, lambda p, w: p["A"] @ w, (M, 1)),
    "A^T (gbar o v) -> diag(v) A": (
        A.T * sp.HadamardProduct(g, v),
        lambda p, w: p["v"] * (p["A"] @ w),
        (M, 1),
    ),
    "(A^T (gbar o v)) o e -> diag(v) A diag(e)": (
        sp.HadamardProduct(A.T * sp.HadamardProduct(g, v), e),
        lambda p, w: p["v"] * (p["A"] @ (p["e"] * w)),
        (M, 1),
    ),
    "A^T B^T gbar -> B A": (A.T * B.T * g, lambda p, w: p["B"] @ p["A"] @ w, (M, 1)),
    "c A^T gbar -> c A": (sp.MatMul(-3, A.T, g), lambda p, w: -3 * (p["A"] @ w), (M, 1)),
    "B^T gbar + gbar o v -> B + diag(v)": (
        sp.MatAdd(B.T * g, sp.HadamardProduct(g, v)),
        lambda p, w: p["B"] @ w + p["v"] * w,
        (N, 1),
    ),
    "gbar r^T -> I kron r^T": (g * r.T, lambda p, w: w @ p["r"], (N, M)),
    "(gbar o v) r^T -> diag(v) kron r^T": (
        sp.HadamardProduct(g, v) * r.T,
        lambda p, w: p["v"] * (w @ p["r"]),
        (N, M),
    ),
}


@pytest.fixture
def values(rng) -> dict[str, np.ndarray]:
    shapes = {"A": (N, M), "B": (N, N), "v": (N, 1), "e": (M, 1), "r": (M, 1)}
    return {name: rng.normal(size=shape) for name, shape in shapes.items()}


@pytest.mark.parametrize("rule", list(RULES))
def test_rule_matches_the_complex_step_jacobian(rule, values, rng):
    vjp, forward, shape = RULES[rule]
    w = rng.normal(size=shape)
    assert_reads(vjp, g, lambda x: forward(values, x), w, values)


def test_rules_read_the_written_forms():
    # The key prints these exactly: products flat, no identity factors.
    assert jacobian_from_vjp(g, g) == sp.Identity(N)
    assert jacobian_from_vjp(sp.HadamardProduct(g, v), g) == Diag(v)
    assert jacobian_from_vjp(A.T * sp.HadamardProduct(g, v), g) == sp.MatMul(Diag(v), A)
    nested = sp.HadamardProduct(A.T * sp.HadamardProduct(g, v), e)
    assert jacobian_from_vjp(nested, g) == sp.MatMul(Diag(v), A, Diag(e))
    outer = jacobian_from_vjp(sp.HadamardProduct(g, v) * r.T, g)
    assert outer == sp.KroneckerProduct(Diag(v), r.T)


# -- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "vjp",
    [
        sp.HadamardProduct(g, g),
        sp.MatAdd(sp.HadamardProduct(g, v), v),  # affine: a term without ḡ
        g.T * g,
        sp.MatMul(B, sp.HadamardProduct(g, g)),
        v,
    ],
    ids=["gbar o gbar", "affine", "gbar^T gbar", "B (gbar o gbar)", "no gbar"],
)
def test_a_vjp_not_linear_in_gbar_is_rejected(vjp):
    with pytest.raises(InputError, match="not linear in gbar"):
        jacobian_from_vjp(vjp, g)


def test_a_form_without_a_rule_is_named():
    with pytest.raises(InputError, match="no Jacobian rule for HadamardPower"):
        jacobian_from_vjp(sp.HadamardPower(g, 2), g)
    with pytest.raises(InputError, match="not Aᵀ f nor f rᵀ"):
        jacobian_from_vjp(B.T * g * r.T, g)


# -- Diag ---------------------------------------------------------------------------------------
def test_diag_prints_and_simplifies():
    assert tex(Diag(v)) == r"\operatorname{diag}(v)"
    assert Diag(v).shape == (N, N)
    assert Diag(ONE).doit() == sp.Identity(n_h)
    assert Diag(sp.ZeroMatrix(n_h, 1)).doit() == sp.ZeroMatrix(n_h, n_h)
    assert Diag(v).doit() == Diag(v)


def test_matmul_is_flat_without_identities():
    assert matmul(sp.Identity(N), sp.MatMul(B, B), sp.Identity(N), A) == sp.MatMul(B, B, A)
    assert matmul(sp.Identity(N), B) == B
    with pytest.raises(ValueError, match="empty product"):
        matmul(sp.Identity(N))


# -- VJPs from the engine -------------------------------------------------------------------------
def two_path_cell() -> Cell:
    """a = tanh(W s_prev + U x + b);  s = a ∘ s_prev + σ(a): s_prev reaches s twice."""
    x, s, s_prev, a, w, u, b = sp.symbols("x s s_prev a W U b")
    return Cell(
        name="two_paths",
        inputs=(x,),
        states=(s,),
        prev={s: s_prev},
        params={w: "weight", u: "weight", b: "bias"},
        assignments=((a, sp.tanh(w * s_prev + u * x + b)), (s, a * s_prev + sigma(a))),
        loss_on=(s,),
    )


# The quantities of the two-path cell at step t (s_prev is s at t - 1), as the engine builds them.
S_PREV, X, A_T, S_T = (
    vector_quantity(name, (rows, 1), step=t + k)
    for name, rows, k in (("s", n_h, -1), ("x", n_x, 0), ("a", n_h, 0), ("s", n_h, 0))
)


@pytest.fixture
def cell_values(rng) -> dict:
    p = {"W": rng.normal(size=(N, N)), "U": rng.normal(size=(N, 2)), "b": rng.normal(size=(N, 1))}
    p.update({S_PREV: rng.normal(size=(N, 1)), X: rng.normal(size=(2, 1))})
    p[A_T] = np.tanh(p["W"] @ p[S_PREV] + p["U"] @ p[X] + p["b"])
    p[S_T] = p[A_T] * p[S_PREV] + _sig(p[A_T])
    return p


def _forward(p: dict, given: dict) -> np.ndarray:
    q = {**p, **given}
    a = given.get(A_T)
    if a is None:
        a = np.tanh(q["W"] @ q[S_PREV] + q["U"] @ q[X] + q["b"])
    return a * q[S_PREV] + _sig(a)


@pytest.mark.parametrize("wrt", ["s_prev", "x", "W", "b"])
def test_vjp_of_a_cell_reads_back_to_its_jacobian(wrt, cell_values):
    vjp, gbar = vjp_of(two_path_cell(), "s", wrt)
    assert gbar == vector_quantity("s", (n_h, 1), "adjoint", t)
    key = {"s_prev": S_PREV, "x": X}.get(wrt, wrt)
    forward = lambda w: _forward(cell_values, {key: w})  # noqa: E731
    assert_reads(vjp, gbar, forward, cell_values[key], cell_values)


def test_vjp_of_an_intermediate_variable_counts_each_path_once(cell_values):
    # s by a, holding s_prev: diag(s_prev + σ'(a)), one term per path out of a.
    vjp, gbar = vjp_of(two_path_cell(), sp.Symbol("s"), sp.Symbol("a"), gbar="gbar")
    assert gbar.name == "gbar"
    forward = lambda w: _forward(cell_values, {A_T: w})  # noqa: E731
    jac = assert_reads(vjp, gbar, forward, cell_values[A_T], cell_values)
    assert len(jac.args) == 2 and all(isinstance(t, Diag) for t in jac.args)


def test_vjp_of_an_unreachable_quantity_is_an_error():
    with pytest.raises(InputError, match="a does not depend on s"):
        vjp_of(two_path_cell(), "a", "s")  # s is assigned after a
