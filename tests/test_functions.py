"""The registry of elementwise functions (derive.engine.functions), entry by entry.

For every registered function: its derivative (as the registry writes it, and as SymPy's
``diff`` finds it) against mpmath's numeric derivative; its NumPy, ``math``, mpmath and C
spellings against one another (NumPy also on complex arguments, which the complex step
needs); its stable forms against the forms they replace; its stated range and monotonicity
on samples.  A function that is not registered fails with a message naming the file.
"""

from __future__ import annotations

import ctypes
import itertools

import mpmath
import numpy as np
import pytest
import sympy as sp

from derive.engine import native
from derive.engine.cell import Cell
from derive.engine.functions import FUNCTIONS, Elementwise, entry, numeric, relu
from derive.engine.vector import VectorCell
from derive.errors import InputError
from derive.render.latex import tex

ENTRIES = list(FUNCTIONS.values())
z, u = sp.symbols("z u")


def samples(f: Elementwise) -> list[float]:
    """Points inside the domain, away from ReLU's kink at 0, from both saturated ends."""
    if f.domain == sp.Interval(-sp.oo, sp.oo):
        return [-30.0, -3.0, -0.7, -1e-3, 0.4, 2.5, 25.0]
    return [1e-3, 0.4, 2.5, 25.0]


def mp_eval(e: sp.Expr, at: dict) -> mpmath.mpf:
    """A formula of the registry (``u``, ``z``, registered functions) in mpmath."""
    names = sorted(at, key=str)
    fn = sp.lambdify(names, e, [numeric("mpmath"), "mpmath"])
    return fn(*[at[n] for n in names])


@pytest.fixture(params=ENTRIES, ids=[f.name for f in ENTRIES])
def f(request) -> Elementwise:
    return request.param


def test_derivative_matches_mpmath(f):
    """f'(z) = derivative(f(z), z), against mpmath's numeric derivative at 30 digits."""
    with mpmath.workdps(30):
        for x in map(mpmath.mpf, samples(f)):
            want = mpmath.diff(f.mpmath, x)
            got = mp_eval(f.derivative(u, z), {u: f.mpmath(x), z: x})
            assert abs(got - want) <= 1e-20 * max(1, abs(want)), (f.name, x)


def test_sympy_diff_is_the_registered_derivative(f):
    """What the scalar engine gets from ``sympy.diff`` is the registry's derivative: the
    scalar and the vector derivations use one rule."""
    assert sp.simplify(sp.diff(f(z), z) - f.derivative(f(z), z)) == 0


def test_relu_derivative_prints_as_its_step():
    d = sp.diff(relu(z), z)
    assert not d.has(sp.Heaviside)
    assert tex(d) == r"\operatorname{step}(z)"


def test_spellings_agree(f):
    """NumPy (array and complex), ``math`` and mpmath give one function."""
    xs = samples(f)
    with mpmath.workdps(30):
        want = [float(f.mpmath(mpmath.mpf(x))) for x in xs]
        complex_want = [complex(f.mpmath(mpmath.mpc(x, 0.25))) for x in xs]
    np.testing.assert_allclose([f.math(x) for x in xs], want, rtol=1e-14, atol=0)
    np.testing.assert_allclose(f.numpy(np.array(xs)), want, rtol=1e-14, atol=0)
    got = f.numpy(np.array(xs) + 0.25j)
    np.testing.assert_allclose(got, complex_want, rtol=1e-13, atol=1e-300)


@pytest.mark.skipif(not native.available(), reason="no C compiler")
def test_c_spelling_agrees(f, tmp_path, monkeypatch):
    """The C form, printed by the native backend's printer and compiled with its flags."""
    monkeypatch.setenv("DERIVE_CACHE", str(tmp_path))
    body = native.c_code(f(sp.Symbol("x")))
    source = (
        native.PRELUDE
        + f"\ndouble apply(double x) {{ return {body}; }}\n"
        + "int derive_gradient(void) { return 0; }\n"
    )
    dll = native.build(source, native.FLAGS).dll
    dll.apply.restype, dll.apply.argtypes = ctypes.c_double, [ctypes.c_double]
    xs = samples(f)
    np.testing.assert_allclose([dll.apply(x) for x in xs], f.numpy(np.array(xs)), rtol=1e-14)


def test_stable_forms_are_equal_to_what_they_replace(f):
    with mpmath.workdps(30):
        for x in map(mpmath.mpf, samples(f)):
            at = {u: f.mpmath(x), z: x}
            for printed, stable in f.stable(u, z).items():
                a, b = mp_eval(printed, at), mp_eval(stable, at)
                assert abs(a - b) <= 1e-25 * max(1, abs(a)), (f.name, x)


def test_range_and_monotonicity_hold_on_samples(f):
    lo, hi = f.domain.inf, f.domain.sup
    grid = np.linspace(-40, 40, 161) if lo == -sp.oo else np.geomspace(1e-6, 1e6, 161)
    with mpmath.workdps(40):
        values = [f.mpmath(mpmath.mpf(float(x))) for x in grid]
        for v in values:
            assert sp.Float(v, 40) in f.range, (f.name, v)
        steps = [b - a for a, b in itertools.pairwise(values)]
    if f.monotone == "increasing":
        assert all(s > 0 for s in steps), f.name
    elif f.monotone == "nondecreasing":
        assert all(s >= 0 for s in steps), f.name
    elif f.monotone == "decreasing":
        assert all(s < 0 for s in steps), f.name
    if f.monotone in ("increasing", "nondecreasing"):  # the ends' images bound the range
        assert f.exact(lo if lo != -sp.oo else -sp.oo) == f.range.inf, f.name
        assert f.exact(hi) == f.range.sup, f.name


def test_an_unregistered_function_says_how_to_add_it():
    with pytest.raises(InputError, match=r"sin is not in the registry.*derive/engine/functions.py"):
        entry(sp.sin(z))
    x, s, s_prev = sp.symbols("x s s_prev")
    with pytest.raises(InputError, match="register"):
        Cell("toy", (x,), (s,), {s: s_prev}, {}, ((s, sp.sin(x) * s_prev),), (s,))


@pytest.mark.parametrize("name", ["relu", "softplus", "exp"])
def test_a_new_function_needs_no_engine_edit(name):
    """A cell with a newly registered function derives in vector form with no other edit."""
    x, s, s_prev, w = sp.symbols("x s s_prev w")
    fn = FUNCTIONS[name]
    cell = Cell("toy", (x,), (s,), {s: s_prev}, {w: "weight"}, ((s, fn(w * x) + s_prev),), (s,))
    vc = VectorCell(cell)
    assert vc.vjp(cell.rhs(s), w, vc.bar(s), 0, s) is not None


def test_only_the_gate_activations_saturate():
    """Worked examples bound the arguments of sigma and tanh alone (``saturates``)."""
    assert {f.name for f in ENTRIES if f.saturates} == {"sigma", "tanh"}


EDGES = [-np.inf, np.inf, np.nan, -2.0, 0.0, 3.0]


def same(a: float, b: float) -> bool:
    return (np.isnan(a) and np.isnan(b)) or a == b


@pytest.mark.parametrize("name", ["relu", "step", "softplus"])
def test_every_spelling_agrees_at_infinity_and_nan(name, tmp_path, monkeypatch):
    """0 * z would make relu(-inf), step(+-inf), softplus(-inf) NaN in NumPy and mpmath;
    a comparison would make relu(nan) and step(nan) 0 in math and C, hiding a NaN."""
    f = FUNCTIONS[name]
    want = {-np.inf: 0.0, np.inf: np.inf if name != "step" else 1.0, np.nan: np.nan}
    for x in EDGES:
        got = [f.math(x), float(f.numpy(np.array([x]))[0]), float(f.mpmath(mpmath.mpf(x)))]
        got.append(complex(f.numpy(np.array([x + 0j]))[0]).real)
        ref = want.get(x, got[0]) if not np.isnan(x) else np.nan
        assert all(same(g, ref) for g in got), (name, x, got)
    if native.available():
        monkeypatch.setenv("DERIVE_CACHE", str(tmp_path))
        body = native.c_code(f(sp.Symbol("x")))
        source = native.PRELUDE + f"\ndouble apply(double x) {{ return {body}; }}\n"
        dll = native.build(source + "int derive_gradient(void) { return 0; }\n", native.FLAGS).dll
        dll.apply.restype, dll.apply.argtypes = ctypes.c_double, [ctypes.c_double]
        for x in EDGES:
            assert same(dll.apply(x), f.math(x)), (name, x)


def test_a_power_other_than_sqrt_is_no_elementwise_function():
    p = sp.Symbol("p")
    assert entry(sp.sqrt(p)) is FUNCTIONS["sqrt"]
    for power in (p ** sp.Rational(3, 2), 1 / sp.sqrt(p)):
        with pytest.raises(InputError, match=r"no vector form for .*only integer ones and sqrt"):
            entry(power)
