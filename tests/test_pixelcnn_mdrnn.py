"""pixelcnn_mdrnn: connections, steps, masks, receptive fields and the rendered key."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from conftest import key_pdf_text, key_tex

from derive.errors import InputError
from derive.instances.gridsim import (
    backward_field,
    mask_array,
    mask_taps,
    masked_connections,
    tap_connections,
)
from derive.problems.base import Result
from derive.problems.pixelcnn_mdrnn import EXAMPLE, H, PixelCNNMDRNN, W, c, col, d, k, mask, row
from derive.render import texgate
from derive.render.document import render
from derive.sets import bundled


@pytest.fixture(scope="module")
def problem() -> PixelCNNMDRNN:
    return PixelCNNMDRNN()


def same(a, b) -> bool:
    return sp.expand(a - b) == 0


def test_mdrnn_closed_forms(problem):
    r = problem.results
    # By hand: per layer, HW input edges, H(W - 1) west and (H - 1)W north, k^2 each.
    assert same(r["mdrnn_connections"].expr, d * k**2 * (H * W + H * (W - 1) + (H - 1) * W))
    # By hand: layer l at (i, j) is ready at step (i - 1) + (j - 1) + l.
    assert same(r["mdrnn_steps"].expr, H + W + d - 2)
    assert same(r["literal_mdrnn_steps"].expr, d)
    assert same(r["mdrnn_connections_order"].expr.args[0], d * k**2 * H * W)
    assert same(r["mdrnn_steps_order"].expr.args[0], H + W + d)


def test_pixelcnn_closed_forms_at_k_3(problem):
    r = problem.results
    # By hand for k = 3: mask A is (-1,-1), (-1,0), (-1,1), (0,-1); mask B adds (0,0).
    # Offset (a, b) fits (H - |a|)(W - |b|) positions.
    s_a = (H - 1) * (W - 1) + (H - 1) * W + (H - 1) * (W - 1) + H * (W - 1)
    s_b = s_a + H * W
    assert same(r["pixelcnn_connections"].expr.subs(k, 3), c**2 * (s_a + (d - 1) * s_b))
    assert same(r["pixelcnn_steps"].expr, d)
    assert same(r["pixelcnn_steps_order"].expr.args[0], d)
    assert same(r["pixelcnn_connections_order"].expr.args[0], d * k**2 * H * W * c**2)
    first_b, all_a = r["pixelcnn_mask_change"].expr
    assert same(first_b, c**2 * H * W)
    assert same(all_a, (d - 1) * c**2 * H * W)


def test_masks_match_the_usual_arrays():
    # By hand: the raster-order masks of a 3x3 filter.
    assert (mask_array(3, "A") == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]).all()
    assert (mask_array(3, "B") == [[1, 1, 1], [1, 1, 0], [0, 0, 0]]).all()
    for size in (1, 3, 5, 7):
        for kind in "AB":
            r = size // 2
            rows, cols = np.nonzero(mask_array(size, kind))
            ones = {(int(a) - r, int(b) - r) for a, b in zip(rows, cols, strict=True)}
            assert set(mask(size, kind)) == ones


def test_receptive_field_and_blind_spot(problem):
    r = problem.results
    # By hand for k = 3: each layer moves the view at most one column left; a row up allows
    # one column further right.  Row -a (a = 1..d) spans d + a + 1 columns, the pixel's row
    # d: (3d^2 + 5d)/2 pixels; row -a misses d - a columns at the right: d(d - 1)/2.
    assert same(r["pixelcnn_receptive_field"].expr, (3 * d**2 + 5 * d) / 2)
    assert same(r["pixelcnn_blind_spot"].expr, d * (d - 1) / 2)
    assert same(r["pixelcnn_field_rows"].expr, d)  # one row up per layer
    table = r["pixelcnn_receptive_field"].value["table"]
    assert [row_[2] for row_ in table] == [0, 1, 3, 6]
    assert r["pixelcnn_blind_spot"].value["cells"] == [
        (6, 9),
        (7, 8),
        (7, 9),
        (8, 7),
        (8, 8),
        (8, 9),
    ]
    # By hand: the MDRNN sees the i x j quadrant and misses (i - 1)(W - j) above-right.
    context, missed = r["mdrnn_context"].expr
    assert same(context, row * col)
    assert same(missed, (row - 1) * (W - col))
    assert r["mdrnn_context"].value["figure"] == [9 * 5, 8 * 4]


def test_every_check_passes(problem):
    assert all(ch.passed for ch in problem.checks)
    assert set(problem.results) <= {ch.claim for ch in problem.checks}


class SlowPixelCNN(PixelCNNMDRNN):
    """Claims the PixelCNN sweeps the image like an RNN: the simulation must object."""

    @property
    def fits(self):
        return {**super().fits, "pixelcnn_steps": H + W + d - 2}


class NoBorders(PixelCNNMDRNN):
    """Claims HW k^2 connections per layer of the MDRNN, ignoring borders."""

    @property
    def fits(self):
        return {**super().fits, "mdrnn_connections": 3 * d * k**2 * H * W}


class NoBlindSpotColumn(PixelCNNMDRNN):
    """Claims the figure's pixel has no blind spot at any depth."""

    def field_table(self):
        return [[n, size, 0, before] for n, size, _, before in super().field_table()]


def test_wrong_claims_are_caught():
    failed = {ch.claim for ch in SlowPixelCNN().checks if not ch.passed}
    assert "pixelcnn_steps" in failed
    failed = {ch.claim for ch in NoBorders().checks if not ch.passed}
    assert "mdrnn_connections" in failed
    failed = {ch.sizes for ch in NoBlindSpotColumn().checks if not ch.passed}
    assert any(s.startswith("figure:") for s in failed)


class Misprinted(PixelCNNMDRNN):
    """Prints one more MDRNN connection at the example, one more unit in the figure, a
    blind spot from the first layer on and a field one row higher."""

    def derive(self):
        out = super().derive()
        ex, units, blind = out["example_comparison"], out["activations"], out["pixelcnn_blind_spot"]
        counts = {
            **ex.value["counts"],
            "mdrnn_connections": ex.value["counts"]["mdrnn_connections"] + 1,
        }
        out["example_comparison"] = Result(ex.key, ex.expr, value={**ex.value, "counts": counts})
        out["activations"] = Result(units.key, units.expr, value={**units.value, "mdrnn": 1})
        out["pixelcnn_blind_spot"] = Result(
            blind.key, blind.expr, value={**blind.value, "from_layers": 1}
        )
        out["pixelcnn_field_rows"] = Result("pixelcnn_field_rows", d + 1)
        return out


def test_printed_numbers_are_checked(problem):
    r = problem.results
    # By hand: a 32 x 32 image, d = 5, k = 3, c = 1 (the default example).
    s_a = 4 * 32 * 32 - 3 * 32 - 3 * 32 + 2  # (H-1)(W-1) + (H-1)W + (H-1)(W-1) + H(W-1)
    counts = r["example_comparison"].value["counts"]
    assert counts["pixelcnn_connections"] == s_a + 4 * (s_a + 32 * 32)
    assert counts["mdrnn_connections"] == 5 * 9 * (3 * 32 * 32 - 2 * 32)
    assert (counts["pixelcnn_steps"], counts["mdrnn_steps"]) == (5, 32 + 32 + 5 - 2)
    assert r["activations"].value == {"pixelcnn": 4 * 81, "mdrnn": 4 * 81}
    assert r["pixelcnn_blind_spot"].value["from_layers"] == 2
    s_a_sym, s_b_sym = r["pixelcnn_layer_connections"].expr
    assert same(s_b_sym - s_a_sym, H * W)
    assert r["pixelcnn_small_images"].value["wrong"] <= r["pixelcnn_small_images"].value["sizes"]
    failed = {ch.claim for ch in Misprinted().checks if not ch.passed}
    assert failed == {
        "example_comparison", "activations", "pixelcnn_blind_spot", "pixelcnn_field_rows"
    }


def test_connections_row_by_row_match_the_mask_arrays():
    # The cheap row-by-row count (used at the example's sizes) against the k x k arrays.
    for size, kind, h, w in itertools.product((1, 3, 5, 7), "AB", range(1, 5), range(1, 5)):
        taps = mask_taps(mask_array(size, kind))
        assert masked_connections(size, kind, h, w) == tap_connections(taps, h, w)


def test_a_large_example_is_not_instantiated():
    p = PixelCNNMDRNN(example={"H": 10_000, "W": 9_000, "d": 10_000, "k": 999, "c": 7})
    counts = p.results["example_comparison"].value["counts"]
    assert counts["mdrnn_steps"] == 10_000 + 9_000 + 10_000 - 2
    rows = [ch for ch in p.checks if ch.claim == "example_comparison"]
    assert [ch.method.split(":")[0] for ch in rows] == [
        "masks row by row and the three MDRNN sources, tap by tap"
    ]
    assert all(ch.passed for ch in rows)


def test_mask_b_first_sees_its_own_pixel():
    # By hand: one 3x3 layer at (2, 2) reads (1, 1..3) and (2, 1), plus (2, 2) under mask B.
    assert backward_field([mask_array(3, "A")], 3, 3, (2, 2)) == {(1, 1), (1, 2), (1, 3), (2, 1)}
    assert (2, 2) in backward_field([mask_array(3, "B")], 3, 3, (2, 2))


def test_other_figure_sizes():
    p = PixelCNNMDRNN(image=[6, 7], layers=2, kernel=5, pixel=[6, 2])
    assert p.results["pixelcnn_receptive_field"].value["kernel"] == 5
    assert len(p.figure()) == 6 and len(p.figure()[0]) == 7
    assert all(ch.passed for ch in p.checks)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"image": [0, 9]}, r"image\[0\] \(H\): expected an integer from 1 to 16"),
        ({"image": [9, 17]}, r"image\[1\] \(W\): expected an integer from 1 to 16"),
        ({"image": [True, 9]}, r"image\[0\] \(H\)"),
        ({"image": [9]}, r"image: expected \[H, W\]"),
        ({"image": "9x9"}, r"image: expected \[H, W\]"),
        ({"layers": 0}, r"layers: expected an integer from 1 to 8"),
        ({"layers": 2.5}, r"layers: expected an integer from 1 to 8"),
        ({"layers": 10**9}, r"layers: expected an integer from 1 to 8"),
        ({"kernel": 4}, r"kernel: expected an odd filter size, one of \(3, 5, 7\)"),
        ({"kernel": True}, r"kernel: expected an odd filter size"),
        ({"kernel": 9}, r"kernel: expected an odd filter size"),
        ({"pixel": [10, 1]}, r"pixel\[0\] \(row\): expected an integer from 1 to 9"),
        ({"pixel": [1, 0]}, r"pixel\[1\] \(column\): expected an integer from 1 to 9"),
        ({"pixel": 5}, r"pixel: expected \[row, column\]"),
        ({"example": {"H": 32}}, r"example: expected a table with exactly the keys H, W, d, k, c"),
        ({"example": {**EXAMPLE, "x": 1}}, r"example: expected a table with exactly the keys"),
        ({"example": {**EXAMPLE, "H": 0}}, r"example.H: expected an integer from 1 to 10000"),
        ({"example": {**EXAMPLE, "d": 10_001}}, r"example.d: expected an integer from 1 to"),
        ({"example": {**EXAMPLE, "c": -1}}, r"example.c: expected an integer"),
        ({"example": {**EXAMPLE, "k": 4}}, r"example.k: expected an odd filter size, got 4"),
        ({"example": {**EXAMPLE, "k": 9, "H": 3}}, r"example.k: the filter must fit the image"),
    ],
)
def test_bad_sizes_are_refused(kwargs, field):
    with pytest.raises(InputError, match=field):
        PixelCNNMDRNN(**kwargs)


def test_template_renders(problem):
    out = key_tex(problem)
    assert r"\mathcal{O}" in out
    assert "FAIL" not in out
    # The original's slips only where a set quotes them: CSE 891's equation and question.
    assert "original" not in out and "x^{(i-1,j)}" not in out
    pset = bundled()["cse891_hw3"]
    noted = render(dataclasses.replace(pset, problems=("pixelcnn_mdrnn",)), [problem])
    assert "Note for instructors" in noted and "x^{(i-1,j)}" in noted
    assert texgate.escape(pset.original["pixelcnn_mdrnn"]["equation"]) in noted
    assert "naming a PixelCNN" in " ".join(noted.split())


def test_pdf_contains_the_answers(problem, tmp_path: Path):
    text = key_pdf_text(problem, tmp_path)
    flat = " ".join(text.split())
    v = problem.context()["at_example"]
    assert "PixelCNN against MDRNN" in flat
    assert "H + W + d − 2" in flat
    assert f"{v['pixelcnn_connections']} {v['mdrnn_connections']}" in flat
    assert "s(l, i, j) = l + i + j − 2" in flat  # the induction behind the step count
    assert "blind spot" in flat
    assert "pass" in flat
    assert "FAIL" not in flat
