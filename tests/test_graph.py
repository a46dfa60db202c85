"""The dependency-graph engine: schedules, counts, fitted closed forms and big-O."""

from __future__ import annotations

import itertools

import pytest
import sympy as sp

from derive.engine.graph import (
    Axis,
    BigO,
    GridModel,
    ancestors,
    big_o,
    count_edges,
    critical_path,
    difference_degree,
    find_polynomial,
    mismatches,
    parallel_rounds,
    parameter_shapes,
    polynomial_function,
    same_growth,
    schedule,
    topological_order,
)
from derive.render.latex import KeyPrinter

x, y, z = sp.symbols("x y z", integer=True, positive=True)

# A diamond with a tail: a -> b, a -> c, (b, c) -> d, d -> e.
DIAMOND = {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c"), "e": ("d",)}


def test_schedule_of_a_diamond():
    # By hand: a is an input (0); b, c at 1; d at 2; e at 3.
    assert schedule(DIAMOND, ["a"]) == {"a": 0, "b": 1, "c": 1, "d": 2, "e": 3}
    assert critical_path(DIAMOND, ["a"]) == 3
    # Without inputs, a is computed too (at step 1).
    assert critical_path(DIAMOND) == 4


def test_a_cycle_and_a_missing_node_are_errors():
    with pytest.raises(ValueError, match="cycle"):
        topological_order({"a": ("b",), "b": ("a",)})
    with pytest.raises(ValueError, match="cycle"):
        parallel_rounds({"a": ("b",), "b": ("a",)})
    with pytest.raises(ValueError, match="missing"):
        topological_order({"a": ("z",)})


def random_dag(rng, n: int) -> dict:
    return {
        i: tuple(int(j) for j in rng.choice(i, size=min(i, rng.integers(0, 4)), replace=False))
        for i in range(n)
    }


def test_parallel_rounds_agree_with_the_longest_path(rng):
    for n in (1, 5, 30, 80):
        dag = random_dag(rng, n)
        inputs = [i for i in dag if not dag[i]][:2]
        assert parallel_rounds(dag, inputs) == schedule(dag, inputs)


def test_ancestors_and_weighted_edges():
    assert ancestors(DIAMOND, "e") == {"a", "b", "c", "d"}
    assert ancestors(DIAMOND, "a") == set()
    assert count_edges(DIAMOND) == 5
    assert count_edges(DIAMOND, lambda p, n: 2 if n == "d" else 1) == 7


def test_grid_model_counts_a_padded_convolution():
    full = tuple(itertools.product((-1, 0, 1), repeat=2))
    model = GridModel(3, 3, (full,))
    # By hand: offset (a, b) fits (3 - |a|)(3 - |b|) positions; summed, (3 + 2 + 2)^2 = 49.
    assert model.connections() == 49
    assert model.steps() == 1
    assert model.receptive_field(2, 2) == set(itertools.product((1, 2, 3), repeat=2))
    assert len(model.receptive_field(1, 1)) == 4
    with_channels = GridModel(3, 3, (full,), channels=(2, 5))
    assert with_channels.connections() == 49 * 10


def test_truncated_model_equals_a_fresh_one():
    stencil = ((0, 0), (-1, 0))
    deep = GridModel(4, 3, (stencil,) * 5, ((0, -1),))
    for layers in (1, 2, 5):
        fresh = GridModel(4, 3, (stencil,) * layers, ((0, -1),))
        cut = deep.truncated(layers)
        assert cut.dag == fresh.dag
        assert cut.steps() == fresh.steps()


def test_recurrent_grid_steps():
    # A 2-D recurrence over west and north neighbours: the anti-diagonal sweep, 2G - 1.
    for g in range(1, 7):
        assert GridModel(g, g, (((0, 0),),), ((0, -1), (-1, 0))).steps() == 2 * g - 1


def test_parameter_shapes_are_symbolic():
    d, h = sp.symbols("D H")
    shapes = parameter_shapes([[(0, 0)]], [(0, -1), (-1, 0)], [d, h])
    assert sorted(shapes.values(), key=str) == [(h, d), (h, h), (h, h)]


def test_difference_degree():
    assert difference_degree([v**2 for v in range(6)]) == 2
    assert difference_degree([5] * 4) == 0
    assert difference_degree([2**v for v in range(8)]) is None
    # Three points of a line cannot confirm degree 1 with two vanishing differences.
    assert difference_degree([1, 2, 3]) is None


def test_find_polynomial_recovers_a_known_polynomial():
    def count(s):
        return 3 * s["x"] ** 2 * s["y"] - s["x"] + 7 * s["z"] ** 3

    axes = [
        Axis(x, tuple(range(1, 7)), 2),
        Axis(y, tuple(range(1, 7)), 3),
        Axis(z, tuple(range(1, 8)), 2),
    ]
    got = find_polynomial(count, axes)
    assert sp.expand(got - (3 * x**2 * y - x + 7 * z**3)) == 0
    points = [{"x": a, "y": b, "z": c} for a, b, c in itertools.product((9, 11), (10, 13), (8, 20))]
    assert mismatches(got, count, points) == 0
    assert mismatches(got + 1, count, points) == len(points)


def test_find_polynomial_refuses_a_non_polynomial():
    with pytest.raises(ValueError, match="no polynomial in x"):
        find_polynomial(lambda s: 2 ** s["x"], [Axis(x, tuple(range(1, 7)), 2)])


def test_polynomial_function_is_exact():
    f = polynomial_function(x**2 / 3 + y / 7)
    assert f({"x": 10**30, "y": 7}) == sp.Rational(10**60, 3) + 1


def test_big_o_keeps_the_leading_monomials():
    g, d, h = sp.symbols("G D H", positive=True)
    exact = g**2 * h * (2 * d + 1) + 4 * g * h**2 * (g - 1)
    assert sp.expand(big_o(exact, [g, d, h]) - g**2 * h * (d + h)) == 0
    k, hh, w = sp.symbols("k H W", positive=True)
    poly = k**4 / 32 + k**2 * hh * w / 2 - hh * k**3 / 8
    # k**4 and H k**3 only lead when k outgrows the image; with k no faster than H, W they
    # are dominated by k^2 H W.
    assert big_o(poly, [k, hh, w], [(k, hh), (k, w)]) == k**2 * hh * w
    # Unconstrained, each of the three leads along some direction (H k^3: k and H fast).
    assert sp.expand(big_o(poly, [k, hh, w]) - (k**4 + hh * k**3 + k**2 * hh * w)) == 0


def test_same_growth_finds_a_wrong_bound():
    g, d, h = sp.symbols("G D H", positive=True)
    exact = g**2 * h * d + g**2 * h**2
    base = {g: sp.Rational(3, 2), d: sp.Rational(5, 4), h: sp.Rational(7, 3)}
    assert same_growth(exact, g**2 * h * (d + h), [g, d, h], base) == []
    bad = same_growth(exact, g**2 * h * d, [g, d, h], base)
    assert (0, 0, 1) in bad  # H alone growing: the bound misses G^2 H^2


def test_big_o_prints_as_a_bound():
    assert KeyPrinter().doprint(BigO(x * y)) == r"\mathcal{O}(x y)"
