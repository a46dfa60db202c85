"""Arrays written in index notation (``kind = "indexed"``: ``derive.model.indexed``,
``derive.problems.conv_pool.indexed``): conv_pool restated in a set file derives the
bundled key's gradients up to names and evaluates to the same numbers, average pooling
builds and checks from its set file alone, every mistake in a table is one line naming its
field, and a wrong adjoint fails the checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from derive.cli import main
from derive.errors import InputError
from derive.model.defined import model_class
from derive.problems.conv_pool import ConvPool
from derive.problems.conv_pool import indexed_claims as ic
from derive.problems.conv_pool import indexed_maps as im
from derive.problems.conv_pool import model as mo
from derive.problems.conv_pool.numeric import Geometry, forward_backward
from derive.problems.conv_pool.rules import LinearMap, Term
from derive.sets import get_set

MODELS = Path(__file__).resolve().parent / "models" / "indexed"
WHERE = "set.toml: models.m"


@pytest.fixture(scope="module")
def restated():
    (problem,) = [get_set(str(MODELS / "conv_pool.toml")).make_problem("conv_pool_text")]
    return problem


@pytest.fixture(scope="module")
def table():
    return dict(get_set(str(MODELS / "conv_pool.toml")).models["conv_pool_text"])


#: The restated model's names for the bundled ones (sizes, arrays, indices).
RENAME = {"Ho": mo.H1, "Wo": mo.W1, "Hp": mo.H2, "Wp": mo.W2, "S_p": mo.S_p, "q": mo.b_}


def _bundled_names(m: LinearMap) -> set:
    """A map's terms in the bundled names, each as (factor, limits, support as a set), as
    text (the two models give their sizes different assumptions)."""
    swap = {s: RENAME.get(s.name, getattr(mo, s.name, s)) if not s.name.endswith("'") else s
            for s in m.rhs.free_symbols | {s for t in m.terms for s, _ in t.limits}}
    swap = {k: v for k, v in swap.items() if isinstance(v, sp.Symbol)}
    return {(str(t.factor.xreplace(swap)), str(tuple((s.xreplace(swap), n.xreplace(swap))
                                                    for s, n in t.limits)),
             frozenset(str((e.xreplace(swap), n.xreplace(swap))) for e, n in t.support))
            for t in m.terms}


def test_the_restated_gradients_are_the_bundled_ones(restated):
    bundled = mo.derive_maps()
    d = restated.DERIVED
    for mine, theirs in (("b", "db"), ("w", "dw"), ("xpad", "dxpad"), ("x", "dx")):
        assert _bundled_names(d.total[mine]) == _bundled_names(bundled[theirs]), mine
    # The pool's adjoint: the bundled key writes out's indices h, k and sums over i, j;
    # the restated one keeps i, j for out and primes the summed ones.
    i, j, h, k = (sp.Symbol(n, integer=True) for n in ("i'", "j'", "h", "k"))
    pool = bundled["pool_backward"]
    renamed = LinearMap(pool.base, pool.free, tuple(
        Term(t.factor.xreplace({mo.i: i, mo.j: j}).xreplace({h: mo.i, k: mo.j}),
             tuple((s.xreplace({mo.i: i, mo.j: j}), n) for s, n in t.limits),
             tuple((e.xreplace({mo.i: i, mo.j: j}).xreplace({h: mo.i, k: mo.j}), n)
                   for e, n in t.support)) for t in pool.terms))
    assert _bundled_names(d.total["out"]) == _bundled_names(renamed)


def test_the_restated_model_evaluates_to_the_bundled_numbers(restated):
    rng = np.random.default_rng(7)
    given = {"x": rng.standard_normal((2, 3, 7, 7)), "w": rng.standard_normal((4, 3, 3, 3)),
             "b": rng.standard_normal(4)}
    dy = rng.standard_normal((2, 4, 2, 2))
    g = Geometry(2, 3, 4, 7, 7, 3, 3, 2, 1, (2, 2, 2))
    theirs = forward_backward(mo.derive_maps(), g, g.sizes(ConvPool().rules), given, dy)
    spec, d = restated.SPEC, restated.DERIVED
    values = im.forward(spec, d, given, restated.sizes)
    mine = im.backward(spec, d, values, dy, restated.sizes)
    assert np.array_equal(values["y"], theirs["pooled"])
    for a, key in (("x", "dx"), ("w", "dw"), ("b", "db"), ("xpad", "dxpad"),
                   ("out", "pool_backward")):
        assert np.allclose(mine[a], theirs[key], rtol=1e-13, atol=1e-13), a
    got = restated.eval({k: v.tolist() for k, v in given.items()} | {"dy": dy.tolist()})
    assert np.allclose(got["grad"]["w"], theirs["dw"]) and set(got["grad"]) == {"x", "w", "b"}


def test_every_claim_of_the_restated_model_passes(restated):
    checks = restated.checks
    assert checks and all(c.passed for c in checks), [c for c in checks if not c.passed]
    assert {c.claim for c in checks} == set(restated.results)
    methods = " ".join(c.method for c in checks)
    for route in ("complex step", "explicit matrix", "central differences", "ties"):
        assert route in methods


def test_average_pooling_builds_and_checks_from_its_set_file(tmp_path, capsys):
    path = str(MODELS / "avg_pool.toml")
    assert main(["build", path, "--out", str(tmp_path), "--format", "json"]) == 0
    entry = json.loads((tmp_path / "model_avg_pool" / "derivations.json").read_text())[
        "problems"]["avg_pool"]
    assert all(c["passed"] for c in entry["checks"]) and {"dx", "dw", "db"} <= set(
        entry["results"])
    assert main(["check", "--set", path]) == 0
    (problem,) = [get_set(path).make_problem("avg_pool")]
    assert any("complex step of L" in c.method for c in problem.checks)


def test_a_flipped_kernel_fails_the_checks(restated):
    """dxpad with the kernel read at HH - 1 - (h - S i): every independent route fails."""
    d = restated.DERIVED
    spec = restated.SPEC
    size = {s.name: sp.Symbol(s.name, integer=True, nonnegative=True) for s in spec.sizes}
    part = d.parts["xpad", "out"]
    (t,) = part.terms
    w = next(f for f in sp.Mul.make_args(t.factor) if str(getattr(f, "base", "")) == "w")
    flipped = w.base[w.indices[0], w.indices[1], size["HH"] - 1 - w.indices[2],
                     size["WW"] - 1 - w.indices[3]]
    wrong = LinearMap(part.base, part.free, (Term(t.factor.xreplace({w: flipped}),
                                                  t.limits, t.support),))
    bad = im.Derived(d.forward, d.parts | {("xpad", "out"): wrong},
                     d.total | {"xpad": wrong}, d.order)
    rng = np.random.default_rng(ic.SEED)
    steps = [c for c in ic.step_claims(spec, bad, restated.sizes, rng) if c.key == "dxpad"]
    assert steps and all(c.measure() > c.tolerance for c in steps)
    whole = [c for c in ic.gradient_claims(spec, bad, restated.sizes, rng,
                                           restated.results["shapes"].value)
             if c.key in ("dxpad", "dx")]
    assert whole and all(c.measure() > c.tolerance for c in whole)


def _with(table, **changes):
    return {**table, **changes}


EQ = ["xpad[n, c, h, k] = x[n, c, h - P, k - P]",
      "out[n, f, i, j] = b[f] + sum(c < C, a < HH, q < WW: xpad[n, c, S*i + a, S*j + q] * "
      "w[f, c, a, q])",
      "y[n, f, i, j] = max(a < HP, q < WP: out[n, f, S_p*i + a, S_p*j + q])"]


def _eq(k: int, text: str) -> list[str]:
    return [text if j == k else e for j, e in enumerate(EQ)]


BAD = [
    ("undeclared-array", {"equations": _eq(0, "xpad[n, c, h, k] = z[n, c, h, k]")},
     f"{WHERE}.equations[0]: column 20: 'z' is not a declared array; declared are x, w, b"),
    ("undeclared-size", {"equations": _eq(0, "xpad[n, c, h, k] = Q*x[n, c, h, k]")},
     f"{WHERE}.equations[0]: column 20: 'Q' is not declared; allowed are the sizes N, C"),
    ("index-reused", {"equations": _eq(1, EQ[1].replace("q < WW", "c < WW"))},
     f"{WHERE}.equations[1]: column 45: index 'c' is used already in this equation"),
    ("not-affine", {"equations": _eq(0, "xpad[n, c, h, k] = x[n, c, h*k, k]")},
     f"{WHERE}.equations[0]: column 28: the index h*k is not affine in the indices"),
    ("fraction-coefficient", {"equations": _eq(0, "xpad[n, c, h, k] = x[n, c, h/2, k]")},
     f"{WHERE}.equations[0]: column 28: an index is a sum of indices, sizes and whole numbers"),
    ("not-whole", {"sizes": None},
     f"{WHERE}.sizes: Ho = 1 + (H + 2*P - HH)/S is 9/2 at H = 8, HH = 3, S = 2, P = 1; it "
     "must come out a whole number of at least 1"),
    ("shape-length", {"equations": _eq(0, "xpad[n, c, h] = x[n, c, h, h]")},
     f"{WHERE}.equations[0]: column 1: xpad[...] has 3 indices; xpad has 4 axes"),
    ("entry-rank", {"equations": _eq(0, "xpad[n, c, h, k] = x[n, c, h]")},
     f"{WHERE}.equations[0]: column 20: x[...] has 3 indices; x has 4 axes (N, C, H, W)"),
    ("free-missing", {"equations": _eq(0, "xpad[n, c, h, k] = x[n, c, h, r]")},
     f"{WHERE}.equations[0]: column 31: 'r' is not an index of this equation nor a size"),
    ("dilation", {"equations": _eq(1, EQ[1].replace("S*i + a", "S*i + 2*a"))},
     f"{WHERE}.equations[1]: column 53: the gradient of xpad through xpad[n, c, S*i + 2*a, "
     "S*j + q] cannot be found by index substitution"),
    ("max-inside", {"equations": _eq(2, "y[n, f, i, j] = 2*max(a < HP, q < WP: out[n, f, "
                                        "S_p*i + a, S_p*j + q])")},
     f"{WHERE}.equations[2]: column 19: max(...) must be the whole right side"),
    ("reads-later", {"equations": _eq(0, "xpad[n, c, h, k] = out[n, c, h, k]")},
     f"{WHERE}.equations[0]: column 20: 'out' is assigned by this or a later equation"),
    ("wrt-not-given", {"wrt": ["xpad"]},
     f"{WHERE}.wrt: 'xpad' is not a given array (one no equation assigns); given are x, w, b"),
    ("eval-in-text", {"equations": _eq(0, "xpad[n, c, h, k] = __import__('os')")},
     f"{WHERE}.equations[0]: column 20: unexpected character '_'"),
]


@pytest.mark.parametrize("changes, message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_each_mistake_is_one_line_naming_its_field(table, changes, message):
    if changes.get("sizes", 1) is None:
        changes = {"sizes": {**table["sizes"], "H": 8, "W": 8}}
    with pytest.raises(InputError) as e:
        model_class("m", _with(table, **changes), WHERE)
    assert str(e.value).startswith(message), str(e.value)
    assert "\n" not in str(e.value)


def test_a_size_from_params_must_come_out_whole(table):
    cls = model_class("m", table, WHERE)
    with pytest.raises(InputError) as e:
        cls.from_params({"H": 8}, "set.toml")
    assert str(e.value).startswith("set.toml: params.m: Ho = 1 + (H + 2*P - HH)/S is 9/2")
    assert cls.from_params({"H": 11, "W": 11}, "set.toml").shapes()["out"] == [2, 4, 6, 6]


def test_eval_names_a_wrong_shape(restated):
    with pytest.raises(InputError, match=r"input\.b: expected shape F = 4 at the model's "
                                         r"sizes, got 3"):
        restated.eval({"x": np.zeros((2, 3, 7, 7)).tolist(),
                       "w": np.zeros((4, 3, 3, 3)).tolist(), "b": [0, 0, 0]})
