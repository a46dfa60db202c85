"""Typed quantities: a cell's names are data, never an encoding read back.

A cell whose symbol names hold what the old string encoding of quantities used ("bar:",
"dL:", "@", "@=") or what C and Python names cannot ("*/", a prime, a leading digit) must
derive, evaluate (NumPy, scalar and vector, and C) and print exactly as the same cell with
plain names does.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import sympy as sp

from derive.engine import native
from derive.engine.adjoint import Adjoints
from derive.engine.cell import Cell, VectorQuantity, bar, t, timed, vector_quantity
from derive.engine.functions import sigma
from derive.engine.native import native_gradient, program
from derive.engine.numeric import ScalarSweep, VectorSweep, forward
from derive.engine.vector import VectorAdjoints, at_absolute_step, n_h
from derive.errors import InputError
from derive.render.latex import Notation, tex
from derive.verify.gradcheck import Case, check_case

PLAIN = ("x", "c", "c_prev", "g", "w_gx", "w_gc", "w_cx", "b_g")
#: The same cell's symbols under names the old encoding forbade.
STRANGE = dict(zip(PLAIN, ("bar:x", "c@1", "c@=0", "dL:g", "w*/1", "1w", "z'", "bar"), strict=True))
SPELLING = dict(
    zip(PLAIN, ("x", "c", "c_{prev}", "g", "w_{gx}", "w_{gc}", "w_{cx}", "b_{g}"), strict=True)
)


def gated_cell(names: dict[str, str]) -> Cell:
    """A gated cell with a weight, a bias and a state, its symbols named by ``names``."""
    x, c, cp, g, wgx, wgc, wcx, b = (sp.Symbol(names[n]) for n in PLAIN)
    return Cell(
        "gated",
        (x,),
        (c,),
        {c: cp},
        {wgx: "weight", wgc: "weight", wcx: "weight", b: "bias"},
        ((g, sigma(wgx * x + wgc * cp + b)), (c, g * cp + (1 - g) * sp.tanh(wcx * x))),
        (c,),
    )


def plain_and_strange() -> tuple[Cell, Cell]:
    return gated_cell({n: n for n in PLAIN}), gated_cell(STRANGE)


def printed(cell: Cell, names: dict[str, str]) -> list[str]:
    """Every scalar and vector result of ``cell``, printed in one notation."""
    notation = Notation({names[k]: v for k, v in SPELLING.items()})
    adj, va = Adjoints(cell), VectorAdjoints(cell)
    exprs = [a.expr for a in (*adj.variables.values(), *adj.params.values())]
    exprs += [a.expr for a in adj.inputs.values()]
    exprs += [*va.variables.values(), *va.inputs.values(), *va.params.values()]
    exprs += [at_absolute_step(va.initial(names["c"]), 0)]
    return [tex(e, notation) for e in exprs]


def test_strange_names_print_as_plain_ones() -> None:
    plain, strange = plain_and_strange()
    assert printed(strange, STRANGE) == printed(plain, {n: n for n in PLAIN})


def test_a_name_without_a_spelling_still_passes_texgate() -> None:
    _, strange = plain_and_strange()
    e = Adjoints(strange).variables["dL:g"].expr
    with pytest.raises(InputError, match=r"symbol 'c@1'.*not an allowed symbol spelling"):
        tex(e, Notation({"dL:g": "g", "z'": "w", "bar:x": "x"}))


def data(cell: Cell, names: dict[str, str], steps: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    params = {names[p]: float(rng.uniform(-1, 1)) for p in PLAIN[4:]}
    inputs = {names["x"]: rng.normal(size=steps).tolist()}
    initial = {names["c"]: float(rng.normal(scale=0.5))}
    loss = {names["c"]: rng.normal(size=steps).tolist()}
    return params, inputs, initial, loss


def test_strange_names_evaluate_as_plain_ones() -> None:
    plain, strange = plain_and_strange()
    runs = []
    for cell, names in ((plain, {n: n for n in PLAIN}), (strange, STRANGE)):
        params, inputs, initial, loss = data(cell, names)
        traj = forward(cell, params, inputs, initial)
        g = ScalarSweep(Adjoints(cell)).run(traj, params, loss)
        runs.append([g.params[names[p]] for p in PLAIN[4:]] + [g.initial[names["c"]]])
    np.testing.assert_allclose(runs[1], runs[0], rtol=1e-14)


@pytest.mark.parametrize("case", [Case(4, seed=1), Case(3, n_h=3, n_x=2, seed=2)])
def test_strange_names_pass_the_gradient_checks(case: Case) -> None:
    _, strange = plain_and_strange()
    errors = check_case(strange, case, ("complex step",))
    assert {claim for claim, _ in errors} >= {"c@1_bar", "dL:g_bar", "w*/1_bar", "bar_bar"}
    assert max(errors.values()) < 1e-12, errors


def test_vector_sweep_reads_quantities_by_their_data() -> None:
    plain, strange = plain_and_strange()
    cols = {"x": 2, "w_gx": 2, "w_gc": 3, "w_cx": 2}
    grads = []
    for cell, names in ((plain, {n: n for n in PLAIN}), (strange, STRANGE)):
        r = np.random.default_rng(3)
        params = {names[p]: r.normal(size=(3, cols.get(p, 1))) for p in PLAIN[4:]}
        inputs = {names["x"]: [r.normal(size=(2, 1)) for _ in range(4)]}
        initial = {names["c"]: r.normal(size=(3, 1))}
        loss = {names["c"]: [r.normal(size=(3, 1)) for _ in range(4)]}
        traj = forward(cell, params, inputs, initial)
        g = VectorSweep(VectorAdjoints(cell)).run(traj, params, loss)
        grads.append(np.concatenate([g.params[names[p]].ravel() for p in PLAIN[4:]]))
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-13)


@pytest.mark.skipif(not native.available(), reason="no C compiler")
def test_strange_names_compile_to_c(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DERIVE_CACHE", str(tmp_path))
    plain, strange = plain_and_strange()
    source = program(strange).source
    assert "w*/1" not in source  # the names show in a comment, which they cannot close
    code = source.split("#define NW", 1)[1]  # C names are generated, never the cell's
    assert not any(n in code for n in ("c@1", "dL:g", "bar:x", "1w", "z'"))
    runs = []
    for cell, names in ((plain, {n: n for n in PLAIN}), (strange, STRANGE)):
        _, g = native_gradient(cell, *data(cell, names))
        runs.append([float(g.params[names[p]]) for p in PLAIN[4:]])
    np.testing.assert_allclose(runs[1], runs[0], rtol=1e-14)


def test_a_vector_quantity_carries_its_data() -> None:
    q = vector_quantity("c", (n_h, 1), "adjoint", t + 1)
    assert (q.name, q.role, q.step, q.offset) == ("c", "adjoint", t + 1, 1)
    fixed = q.xreplace({t: 0})
    assert isinstance(fixed, VectorQuantity) and fixed.step == 1 and fixed.role == "adjoint"
    assert q.subs(n_h, 4).shape == (4, 1) and q.subs(n_h, 4).step == t + 1
    assert pickle.loads(pickle.dumps(q)) == q  # results cross process boundaries
    # srepr and SymPy's order see the MatrixSymbol it was before it was typed.
    assert sp.srepr(q) == sp.srepr(sp.MatrixSymbol("bar:c@1", n_h, 1))
    assert sp.srepr(fixed) == sp.srepr(sp.MatrixSymbol("bar:c@=1", n_h, 1))
    w = vector_quantity("w", (n_h, n_h))
    assert w.step is None and w.offset is None
    assert sp.srepr(w) == sp.srepr(sp.MatrixSymbol("w", n_h, n_h))


def test_quantities_the_sort_name_confuses_stay_apart() -> None:
    # The value of a symbol called "bar:x" and the adjoint of "x" share a sort name.
    a = vector_quantity("bar:x", (n_h, 1), "value", t)
    b = vector_quantity("x", (n_h, 1), "adjoint", t)
    assert a != b and len({a, b}) == 2
    assert sorted([a, b], key=sp.default_sort_key) == sorted([b, a], key=sp.default_sort_key)


def test_a_cell_symbol_needs_a_name() -> None:
    h, hp = sp.symbols("h h_prev")
    with pytest.raises(InputError, match="empty name"):
        Cell("bad", (sp.Symbol(""),), (h,), {h: hp}, {}, ((h, sp.tanh(hp)),), (h,))


def test_a_name_holding_a_role_prefix_is_no_other_quantity() -> None:
    """The value of ``bar:h`` and the adjoint of ``h`` (or ``c@1`` and c at t + 1) differ in
    SymPy's order, srepr and str, so neither term order nor the exported srepr confuses
    them; an ordinary name's sort name stays what it was."""
    pairs = [
        (timed("bar:h"), bar("h")),
        (vector_quantity("bar:x", (2, 1), "value", t), vector_quantity("x", (2, 1), "adjoint", t)),
        (vector_quantity("c@1", (n_h, 1)), vector_quantity("c", (n_h, 1), "value", t + 1)),
    ]
    for a, b in pairs:
        assert a != b
        assert sp.default_sort_key(a) != sp.default_sort_key(b)
        assert sp.srepr(a) != sp.srepr(b) and str(a) != str(b)
    assert sp.srepr(bar("h")) == sp.srepr(sp.Function("bar:h")(t))
    assert str(timed("bar:h")) == "bar\\:h(t)"

