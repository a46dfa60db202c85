"""The conv_pool problem: a strided, padded convolution and a max-pool, their shapes and
backward pass, derived by the index-substitution rule.

The references here are the test's own: a forward pass built from window slices and
differentiated by autograd, window-by-window backprop, and a max-pool that scans each window
for its first maximum.  ``derive eval conv_pool`` is run through the command line.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re

import autograd.numpy as anp
import numpy as np
import pytest
import sympy as sp
from autograd import grad
from conftest import eval_json, key_tex

from derive.cli import main
from derive.errors import InputError
from derive.problems import get_problem
from derive.problems.conv_pool import claims_grad
from derive.problems.conv_pool import model as mo
from derive.problems.conv_pool.rules import IndexSum, LinearMap, Term

PROBLEM = "conv_pool"


# -- the test's own layer -------------------------------------------------------------------------
def conv_by_windows(x, w, b, stride: int, pad: int):
    """out[:, f, i, j]: each window of the padded x against each filter (autograd-able)."""
    xp = anp.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), "constant")
    hh, ww = w.shape[2:]
    rows = []
    for i in range((xp.shape[2] - hh) // stride + 1):
        cols = []
        for j in range((xp.shape[3] - ww) // stride + 1):
            window = xp[:, :, stride * i:stride * i + hh, stride * j:stride * j + ww]
            cols.append(anp.tensordot(window, w, axes=([1, 2, 3], [1, 2, 3])) + b)
        rows.append(anp.stack(cols, axis=-1))
    return anp.stack(rows, axis=-2)


def pool_by_scanning(u: np.ndarray, ph: int, pw: int, stride: int):
    """(the pooled array, the position of each window's first maximum)."""
    n_, c_, h_, w_ = u.shape
    ho, wo = (h_ - ph) // stride + 1, (w_ - pw) // stride + 1
    out, where = np.zeros((n_, c_, ho, wo)), {}
    for n, c, i, j in itertools.product(range(n_), range(c_), range(ho), range(wo)):
        cells = [(stride * i + a, stride * j + b) for a in range(ph) for b in range(pw)]
        best = cells[0]
        for cell in cells[1:]:
            if u[n, c, cell[0], cell[1]] > u[n, c, best[0], best[1]]:
                best = cell
        out[n, c, i, j], where[n, c, i, j] = u[n, c, best[0], best[1]], best
    return out, where


def layer_loss(x, w, b, dout, stride, pad, pool=None):
    """Σ dout ⊙ (the layer's last output), the pool's choice of maxima held fixed."""
    out = conv_by_windows(x, w, b, stride, pad)
    if pool is None:
        return anp.sum(dout * out)
    _, where = pool_by_scanning(np.asarray(getattr(out, "_value", out)), *pool)
    picked = anp.stack([out[n, c, h, k] for (n, c, _, _), (h, k) in sorted(where.items())])
    return anp.sum(picked * anp.ravel(dout))


def reference(data: dict) -> dict:
    """out and the gradients of x, w, b by the test's layer and autograd."""
    x, w, b = (np.array(data[k], dtype=float) for k in "xwb")
    pool = tuple(data[k] for k in ("pool_height", "pool_width", "pool_stride")) \
        if "pool_height" in data else None
    out = conv_by_windows(x, w, b, data["stride"], data["pad"])
    if pool is not None:
        out = pool_by_scanning(out, *pool)[0]
    dout = np.array(data["dout"]) if "dout" in data else np.ones(out.shape)
    args = (dout, data["stride"], data["pad"], pool)
    grads = [grad(layer_loss, k)(x, w, b, *args) for k in range(3)]
    return {"out": out, "x": grads[0], "w": grads[1], "b": grads[2]}


def _data(rng, shape=(2, 3, 7, 7), filters=(4, 3, 3), stride=2, pad=1, **extra) -> dict:
    c = shape[1]
    f, hh, ww = filters
    return {"x": rng.standard_normal(shape).tolist(),
            "w": rng.standard_normal((f, c, hh, ww)).tolist(),
            "b": rng.standard_normal(f).tolist(), "stride": stride, "pad": pad, **extra}


# -- the derivation --------------------------------------------------------------------------------
def test_the_adjoints_come_out_as_an_instructor_writes_them(problem):
    r = problem.results
    n, f, i, j, c, a, b, h, k = mo.n, mo.f, mo.i, mo.j, mo.c, mo.a, mo.b_, mo.h, mo.k
    st, pd = mo.S, mo.P

    def total(e, *limits):
        return IndexSum(e, *[(s, 0, count - 1) for s, count in limits])

    assert r["db"].expr == total(mo.dout[n, f, i, j], (n, mo.N), (i, mo.H1), (j, mo.W1))
    assert r["dw"].expr == total(mo.dout[n, f, i, j] * mo.xpad[n, c, st * i + a, st * j + b],
                                 (n, mo.N), (i, mo.H1), (j, mo.W1))
    assert r["dxpad"].expr == total(mo.dout[n, f, i, j] * mo.w[f, c, h - st * i, k - st * j],
                                    (f, mo.F), (i, mo.H1), (j, mo.W1))
    assert r["dx"].expr == mo.dxpad[n, c, h + pd, k + pd]
    assert r["pool_backward"].expr == total(
        mo.dy[n, f, i, j] * mo.M[n, f, i, j, h - mo.S_p * i, k - mo.S_p * j],
        (i, mo.H2), (j, mo.W2))
    assert sp.simplify(r["H_out"].expr - (1 + (mo.H + 2 * pd - mo.HH) / st)) == 0
    assert r["dxpad"].lhs == mo.dxpad[n, c, h, k]


def test_the_side_rule_counts_every_window():
    rules = get_problem(PROBLEM).rules
    for h, hh, p, s in itertools.product(range(1, 9), range(1, 6), range(3), range(1, 4)):
        starts = [t for t in range(0, h + 2 * p - hh + 1, s)]
        if not starts or (h + 2 * p - hh) % s:
            continue
        got = rules["H_out"].xreplace({mo.H: h, mo.HH: hh, mo.P: p, mo.S: s})
        assert got == len(starts), (h, hh, p, s)


def test_the_rule_refuses_a_delta_it_cannot_solve():
    # δ(2i, h) has no summed index of coefficient 1: the rule says so, never guesses.
    from derive.problems.conv_pool.rules import DerivationError, adjoint

    u, v = sp.IndexedBase("u"), sp.IndexedBase("v")
    m = LinearMap(v, ((mo.j, 3),), (Term(u[2 * mo.i] * mo.w[mo.j], ((mo.i, 2),)),))
    with pytest.raises(DerivationError, match="coefficient"):
        adjoint(m, u, ((mo.h, 4),), mo.dy, mo.dx)


def test_every_claim_passes_and_reports_its_route(problem):
    checks = problem.checks
    assert checks and all(c.passed for c in checks)
    methods = {c.method for c in checks if c.claim == "dxpad"}
    assert len(methods) == 4  # loops, complex step, central differences, explicit matrix
    exact = [c for c in checks if c.claim == "dx" and c.tolerance == 0]
    assert exact and exact[0].max_rel_error == 0


def test_a_wrong_adjoint_is_caught(problem):
    """dxpad with the kernel flipped (a convolution where the correlation's adjoint
    belongs) fails every route."""
    n, f, i, j, c, h, k, st = mo.n, mo.f, mo.i, mo.j, mo.c, mo.h, mo.k, mo.S
    flipped = mo.dout[n, f, i, j] * mo.w[f, c, mo.HH - 1 - h + st * i, mo.WW - 1 - k + st * j]
    right = problem.maps["dxpad"]
    wrong = dataclasses.replace(right, terms=(dataclasses.replace(right.terms[0],
                                                                  factor=flipped),))
    rng = np.random.default_rng(5)
    maps = {**problem.maps, "dxpad": wrong}
    claims = list(claims_grad.grad_claims(maps, problem.rules, problem.geometry, rng))
    failed = {c.route for c in claims if c.key == "dxpad" and c.measure() > c.tolerance}
    assert len(failed) == 4


def test_checks_are_reproducible():
    first, second = (get_problem(PROBLEM).checks for _ in range(2))
    assert [c.as_dict() for c in first] == [c.as_dict() for c in second]


# -- derive eval ---------------------------------------------------------------------------------
@pytest.mark.parametrize("extra", [{}, {"pool_height": 2, "pool_width": 2, "pool_stride": 2},
                                   {"pool_height": 2, "pool_width": 2, "pool_stride": 1}],
                         ids=["conv", "pool", "overlapping pool"])
def test_eval_matches_the_reference(extra, rng, capsys, tmp_path):
    data = _data(rng, **extra)
    ref = reference(data)
    data["dout"] = rng.standard_normal(ref["out"].shape).tolist()
    ref = reference(data)
    status, out, err = eval_json(PROBLEM, data, capsys, tmp_path)
    assert status == 0, err
    got = json.loads(out)
    np.testing.assert_allclose(got["out"], ref["out"], rtol=1e-12, atol=1e-12)
    for k in "xwb":
        np.testing.assert_allclose(got["grad"][k], ref[k], rtol=1e-10, atol=1e-12)


def test_eval_defaults_dout_to_ones_on_a_strided_unpadded_layer(rng, capsys, tmp_path):
    data = _data(rng, shape=(1, 2, 8, 6), filters=(3, 4, 2), stride=2, pad=0)
    status, out, _ = eval_json(PROBLEM, data, capsys, tmp_path)
    got, ref = json.loads(out), reference(data)
    assert status == 0 and np.shape(got["out"]) == (1, 3, 3, 3)
    np.testing.assert_allclose(got["grad"]["x"], ref["x"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got["grad"]["b"], [9.0, 9.0, 9.0])  # 3×3 outputs each


def test_a_tie_sends_the_gradient_to_the_first_maximum(capsys, tmp_path):
    # One channel, a 1×1 kernel of weight 1: the pool sees x itself, all entries equal.
    data = {"x": [[[[1.0, 1.0], [1.0, 1.0]]]], "w": [[[[1.0]]]], "b": [0.0], "stride": 1,
            "pad": 0, "pool_height": 2, "pool_width": 2, "pool_stride": 1, "dout": [[[[3.0]]]]}
    status, out, _ = eval_json(PROBLEM, data, capsys, tmp_path)
    assert status == 0
    assert json.loads(out)["grad"]["x"] == [[[[3.0, 0.0], [0.0, 0.0]]]]


def _bad(rng) -> dict[str, tuple[dict, str]]:
    base = _data(rng)
    ragged = json.loads(json.dumps(base["x"]))
    ragged[1][2] = ragged[1][2][:3]
    return {
        "missing b": ({k: v for k, v in base.items() if k != "b"}, "input: missing key 'b'"),
        "ragged x": ({**base, "x": ragged}, "input.x[1][2]: ragged: expected a list of 7"),
        "rank of x": ({**base, "x": base["x"][0]}, "input.x: expected shape N×C×H×W"),
        "channels": ({**base, "w": np.zeros((2, 2, 3, 3)).tolist()},
                     "input.w: expected shape F×C×HH×WW with C = 3 (from x), got 2×2×3×3"),
        "bias": ({**base, "b": [1, 2, 3]}, "input.b: expected shape F with F = 4 (from w)"),
        "text entry": ({**base, "b": [1, 2, "3", 4]}, "input.b[2]: expected a finite number"),
        "stride 2.0": ({**base, "stride": 2.0}, "input.stride: expected a whole number"),
        "stride 0": ({**base, "stride": 0}, "input.stride: expected a whole number from 1"),
        "negative pad": ({**base, "pad": -1}, "input.pad: expected a whole number from 0"),
        "window": ({**base, "w": np.zeros((4, 3, 10, 3)).tolist()},
                   "input.w: the window HH×WW = 10×3 is larger than the padded input"),
        "stride divides": ({**base, "stride": 4}, "input.stride: S = 4 does not divide"),
        "pool alone": ({**base, "pool_height": 2}, "input.pool_width: missing"),
        "pool stride": ({**base, "pool_height": 3, "pool_width": 3, "pool_stride": 2},
                        "input.pool_stride: S_p = 2 does not divide H′ − HP = 1"),
        "dout shape": ({**base, "dout": np.ones((2, 4, 2, 2)).tolist()},
                       "input.dout: expected shape N×F×H′×W′ = 2×4×4×4"),
        "huge": ({**base, "x": [[[[0.0] * 600]]], "w": [[[[1.0]]]], "b": [0.0]},
                 "input.x: 1×1×1×600 is too large"),
    }


@pytest.mark.parametrize("case", list(_bad(np.random.default_rng(0))))
def test_bad_input_is_one_line_naming_the_field(case, capsys, tmp_path):
    data, expected = _bad(np.random.default_rng(0))[case]
    status, out, err = eval_json(PROBLEM, data, capsys, tmp_path)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert expected in err, err


# -- parameters and the key ----------------------------------------------------------------------
def test_parameters_are_checked_with_the_field_named():
    cls = type(get_problem(PROBLEM))
    with pytest.raises(InputError, match=r"^params\.conv_pool\.stride: S = 4 does not divide"):
        cls.from_params({"stride": 4})
    with pytest.raises(InputError, match=r"^params\.conv_pool\.input_shape: expected"):
        cls.from_params({"input_shape": [2, 3, 7]})
    p = cls.from_params({"input_shape": [1, 2, 9, 6], "filter_shape": [2, 3, 3], "stride": 3,
                         "pad": 0, "pool": [1, 1, 1]})
    assert p.results["shapes"].value["out"] == [1, 2, 3, 2]
    assert all(c.passed for c in p.checks)


def test_the_key_states_the_derived_formulas_and_the_handout_does_not(problem):
    key, handout = key_tex(problem), key_tex(problem, handout=True)
    derived = r"\sum_{f,i,j} {\mathrm{dout}}_{n,f,i,j}\,{w}_{f,c,h - S i,k - S j}"
    assert derived in key and derived not in handout
    assert r"2 \times 4 \times 4 \times 4" in key  # out's shape for the default layer
    body = key[key.index(r"\section*{Problem 1"):key.index(r"\section*{Reading the evidence}")]
    for word in ("numpy", "sympy", "python", "engine", "library"):
        assert word not in body.lower(), word
    assert not re.search(r"\bderive\b", body)  # the verb "Derive" may open a question


def test_check_command_passes(capsys):
    assert main(["check", PROBLEM]) == 0
    assert "0 failed" in capsys.readouterr().out


def _edits(tree, path=()):
    """Every copy of ``tree`` with one part replaced by a value of the wrong kind."""
    wrong = [[], {}, [[]], "1", True, None, -1, 0, 2.5, 10**400, [1, 2]]
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) \
        if isinstance(tree, list) else []
    for key, item in list(items):
        for new in wrong:
            copy = dict(tree) if isinstance(tree, dict) else list(tree)
            copy[key] = new
            yield copy
        for edited in _edits(item, (*path, key)):
            copy = dict(tree) if isinstance(tree, dict) else list(tree)
            copy[key] = edited
            yield copy


def test_every_edit_of_a_valid_input_is_evaluated_or_refused_in_one_line(capsys, tmp_path):
    data = {"x": [[[[1.0, 2.0, 0.5], [0.0, -1.0, 3.0], [2.0, 1.0, 1.0]]]],
            "w": [[[[1.0, -1.0], [0.5, 2.0]]]], "b": [0.25], "stride": 1, "pad": 0,
            "pool_height": 2, "pool_width": 2, "pool_stride": 1, "dout": [[[[1.0]]]]}
    outcomes = {0: 0, 2: 0}
    for edited in _edits(data):
        status, _, err = eval_json(PROBLEM, edited, capsys, tmp_path)
        assert status in outcomes, err
        outcomes[status] += 1
        if status == 2:
            assert err.count("\n") == 1 and err.startswith("derive: error: input"), err
    assert outcomes[2] > 100 and outcomes[0] > 5  # most edits break it; number edits do not
