"""cnn_params: the layer engine's shapes and counts, its error messages, the numpy checks
and the rendered key."""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import pytest

from derive import cnn_spec
from derive.cnn_spec import Defaults, Layer, parse_layer, parse_network
from derive.errors import InputError
from derive.problems import cnn_params
from derive.problems.cnn_params import (
    HANDOUT_INPUT,
    HANDOUT_LAYERS,
    NUMPY_RULES,
    OTHER_NETS,
    CNNParams,
    numpy_trace,
    scaled_copy,
)
from derive.render.document import render
from derive.render.latex import Notation
from derive.sets import ProblemSet

#: The problem the ``problem`` fixture (tests/conftest.py) gives, derived once per session.
PROBLEM = "cnn_params"


# -- the handout's network ------------------------------------------------------------------------
#: By hand, layer by layer (3x3 convs keep H and W with padding 1; each 2x2/2 pool halves them):
#:   conv3-64   224x224x64    3*3*3*64   + 64   = 1728 + 64       = 1,792
#:   maxpool    112x112x64    0
#:   conv3-128  112x112x128   3*3*64*128 + 128  = 73728 + 128     = 73,856
#:   maxpool    56x56x128     0
#:   conv3-256  56x56x256     3*3*128*256 + 256 = 294912 + 256    = 295,168
#:   conv3-256  56x56x256     3*3*256*256 + 256 = 589824 + 256    = 590,080
#:   maxpool    28x28x256     0               (flattens to 28*28*256 = 200,704)
#:   fc-1024    1024          200704*1024 + 1024 = 205520896 + 1024 = 205,521,920
#:   fc-1000    1000          1024*1000 + 1000                  = 1,025,000
#:   softmax    1000          0
HAND_ROWS = [
    ([224, 224, 64], 1792),
    ([112, 112, 64], 0),
    ([112, 112, 128], 73856),
    ([56, 56, 128], 0),
    ([56, 56, 256], 295168),
    ([56, 56, 256], 590080),
    ([28, 28, 256], 0),
    ([1024], 205521920),
    ([1000], 1025000),
    ([1000], 0),
]


def test_handout_total(problem):
    """1792 + 73856 + 295168 + 590080 = 960,896 in the convs; 205,521,920 + 1,025,000 =
    206,546,920 in the fc layers; 960,896 + 206,546,920 = 207,507,816."""
    assert problem.results["total_params"].value == 207_507_816
    assert int(problem.results["total_params"].expr) == 207_507_816


def test_handout_rows(problem):
    rows = problem.results["layers"].value
    assert [(r["output_shape"], r["params"]) for r in rows] == HAND_ROWS
    assert rows[0]["name"] == "conv3-64/p1/s1"
    assert rows[1]["name"] == "maxpool2/p0/s2"
    assert rows[7]["name"] == "fc-1024"
    json.dumps(problem.results["layers"].value)  # plain JSON values


def test_engine_factorisation(problem):
    fc = problem.net.rows[7]
    assert fc.factors == (28, 28, 256, 1024) and fc.bias == 1024
    assert problem.net.rows[2].factors == (3, 3, 64, 128)
    assert all(r.remainder in ((0, 0), ()) for r in problem.net.rows)


# -- small networks, counted by hand --------------------------------------------------------------
SMALL = [
    # 5x5x1: conv 3x3 no padding -> 3x3x2, 3*3*1*2 + 2 = 20; fc on 18 inputs: 18*3 + 3 = 57.
    ([5, 5, 1], ["conv3-2/p0/s1", "fc-3"], [(3, 3, 2), (3,)], 77),
    # 7x7x3: conv p1 s2 -> floor((7 + 2 - 3)/2) + 1 = 4, 3*3*3*4 + 4 = 112; avgpool2/2 -> 2x2x4;
    # fc without bias on 16 inputs: 160; softmax 0.
    (
        [7, 7, 3],
        ["conv3-4/p1/s2", "avgpool2/s2", "fc-10/nobias", "softmax"],
        [(4, 4, 4), (2, 2, 4), (10,), (10,)],
        272,
    ),
    # 8x6x2: conv 3x1 no padding, no bias -> 6x6x5, 3*1*2*5 = 30; maxpool -> 3x3x5;
    # flatten -> 45; fc 45*2 + 2 = 92.
    (
        [8, 6, 2],
        ["conv3x1-5/p0/s1/nobias", "maxpool2/s2", "flatten", "fc-2"],
        [(6, 6, 5), (3, 3, 5), (45,), (2,)],
        122,
    ),
]


@pytest.mark.parametrize("shape, specs, shapes, total", SMALL, ids=["conv-fc", "stride", "rect"])
def test_small_networks(shape, specs, shapes, total):
    p = CNNParams(shape, specs)
    assert [tuple(r["output_shape"]) for r in p.results["layers"].value] == shapes
    assert p.results["total_params"].value == total
    assert all(c.passed for c in p.checks)


def test_defaults_change_the_count():
    """Conv padding 0: 224 -> 222, pool 111, conv 109, pool floor(107/2) + 1 = 54 (one row
    dropped), conv 52, 50, pool 25.  The convs keep 960,896; fc-1024 has
    25*25*256*1024 + 1024 = 163,841,024; with fc-1000 the total is 165,826,920."""
    p = CNNParams(defaults={"conv_padding": 0})
    shapes = [r["output_shape"] for r in p.results["layers"].value]
    assert [s[0] for s in shapes[:7]] == [222, 111, 109, 54, 52, 50, 25]
    assert p.results["total_params"].value == 165_826_920
    assert [r.index for r in p.context()["floored"]] == [3]
    assert not p.is_handout


def test_string_and_table_forms_agree():
    table = [
        {"kind": "conv", "kernel": 3, "out": 64},
        {"kind": "MaxPool"},
        {"kind": "conv", "kernel": [3, 3], "out": 128, "padding": 1, "stride": 1, "bias": True},
        {"kind": "max-pool", "kernel": 2, "stride": 2},
        {"kind": "conv", "kernel": 3, "out": 256},
        "conv3-256/P1/S1",
        "MAXPOOL2x2/s2/p0",
        {"kind": "fc", "units": 1024},
        "fc-1000",
        {"kind": "softmax"},
    ]
    assert CNNParams(HANDOUT_INPUT, table).net == CNNParams().net
    assert CNNParams(HANDOUT_INPUT, table).is_handout


@pytest.mark.parametrize("defaults", [None, {"conv_padding": 0, "pool_kernel": 3}])
def test_names_parse_back(problem, defaults):
    d = Defaults.parse(defaults)
    for shape, specs in [(HANDOUT_INPUT, HANDOUT_LAYERS), *OTHER_NETS]:
        for layer in parse_network(shape, specs).layers:
            assert parse_layer(layer.name, 0, d) == layer


# -- bad specifications ---------------------------------------------------------------------------
OK = [224, 224, 3]
P = r"^params\.cnn_params\."  # every message names the problem's parameter
BAD = [
    (OK, [], None, P + r"layers: expected a non-empty list of layer strings or tables, got \[\]"),
    (OK, "conv3-64", None, P + r"layers: expected a non-empty list"),
    (
        OK,
        ["pool2"],
        None,
        P + r"layers\[0\]: unknown kind 'pool' in 'pool2'; allowed kinds are conv, maxpool",
    ),
    (OK, ["conv3-8", {"kind": "dense"}], None, P + r"layers\[1\]\.kind: unknown kind 'dense'"),
    (
        OK,
        ["conv3_64"],
        None,
        P + r"layers\[0\]: cannot read 'conv3_64'; a layer string is one of: "
        r"conv<k>\[x<k>\]-<channels>",
    ),
    (OK, ["conv0-64"], None, P + r"layers\[0\]\.kernel: expected an integer from 1 to 256, got 0"),
    (
        OK,
        [{"kind": "conv", "kernel": 3, "out": 8, "stride": 0}],
        None,
        P + r"layers\[0\]\.stride: expected an integer from 1 to 256, got 0$",
    ),
    (
        OK,
        ["conv3-8/s0"],
        None,
        P + r"layers\[0\]\.stride: expected an integer from 1 to 256, got 0",
    ),
    (
        OK,
        [{"kind": "conv", "kernel": 3.0, "out": 8}],
        None,
        P + r"layers\[0\]\.kernel: expected an integer from 1 to 256, got 3\.0$",
    ),
    (
        OK,
        [{"kind": "conv", "kernel": 3, "out": True}],
        None,
        P + r"layers\[0\]\.out: expected an integer from 1 to 65536, got true$",
    ),
    (
        OK,
        [{"kind": "conv", "kernel": 3, "out": -4}],
        None,
        P + r"layers\[0\]\.out: expected an integer from 1 to 65536, got -4$",
    ),
    (
        OK,
        ["fc-99999999999999"],
        None,
        P + r"layers\[0\]\.units: expected an integer from 1 to 1048576, got a 14-digit number",
    ),
    (
        OK,
        ["conv3-70000"],
        None,
        P + r"layers\[0\]\.out: expected an integer from 1 to 65536, got 70000",
    ),
    (
        [2, 2, 1],
        ["conv3-4/p0"],
        None,
        P
        + r"layers\[0\] \(conv3-4/p0/s1\): kernel height 3 is larger than the padded input height "
        r"2 .*would be ⌊\(2 \+ 2·0 − 3\)/1⌋ \+ 1 = 0; allowed: kernel ≤ input \+ 2·padding",
    ),
    (
        [5, 3, 1],
        ["maxpool2/s2", "maxpool2/s2"],
        None,
        P
        + r"layers\[1\] \(maxpool2/p0/s2\): kernel width 2 is larger than the padded input width 1",
    ),
    (
        OK,
        ["fc-10", "conv3-4"],
        None,
        P
        + r"layers\[1\] \(conv3-4/p1/s1\): a conv layer needs a spatial \(H, W, C\) input, but the "
        r"layer before it produced a flat vector of 10",
    ),
    (
        OK,
        ["flatten", "maxpool"],
        None,
        P + r"layers\[1\] \(maxpool2/p0/s2\): a maxpool layer needs",
    ),
    (
        OK,
        ["softmax", "fc-10"],
        None,
        P + r"layers\[0\] \(softmax\): softmax must be the last layer, but 1 layer\(s\) follow it",
    ),
    (
        OK,
        ["fc-10", {"kind": "softmax", "units": 10}],
        None,
        P + r"layers\[1\]: unknown key 'units' for softmax \(it has no parameters\); "
        r"allowed keys: kind$",
    ),
    (OK, ["softmax-10"], None, P + r"layers\[0\]: cannot read 'softmax-10'"),
    (
        OK,
        ["maxpool2/p2"],
        None,
        P + r"layers\[0\]\.padding: pooling padding 2 is more than half the 2x2 window; "
        r"allowed 0 to 1",
    ),
    (
        OK,
        ["fc-10/p1"],
        None,
        P + r"layers\[0\]: option '/p1' in 'fc-10/p1' is not allowed for fc; "
        r"allowed options: /nobias",
    ),
    (OK, ["avgpool2/nobias"], None, r"allowed options: /p<n>, /s<n>$"),
    (OK, ["conv3-8/p1/p2"], None, P + r"layers\[0\]: option /p is given twice in 'conv3-8/p1/p2'"),
    (OK, [5], None, P + r"layers\[0\]: expected a layer string such as 'conv3-64' or a table"),
    (OK, [{"kind": "conv", "out": 8}], None, P + r"layers\[0\]: conv needs the key 'kernel'"),
    (OK, [{"out": 8}], None, P + r"layers\[0\]: a layer table needs a 'kind' key"),
    (
        OK,
        [{"kind": "fc", "units": 3, "bias": "yes"}],
        None,
        P + r"layers\[0\]\.bias: expected true or false, got 'yes'",
    ),
    (
        OK,
        [{"kind": "conv", "kernel": [3, 3, 3], "out": 2}],
        None,
        P + r"layers\[0\]\.kernel: expected k or \[k_h, k_w\], got \[3, 3, 3\]",
    ),
    (OK, ["conv3-8"] * 201, None, P + r"layers: at most 200 layers are allowed, got 201"),
    (
        OK,
        ["conv3-8" + "/p1" * 30],
        None,
        P + r"layers\[0\]: a layer string has at most 64 characters",
    ),
    ([224, 224], ["fc-1"], None, P + r"input_shape: expected \[H, W, C\] \(three integers\)"),
    (
        [224, 0, 3],
        ["fc-1"],
        None,
        P + r"input_shape\[1\] \(W\): expected an integer from 1 to 16384, got 0",
    ),
    (
        [16384, 16384, 65536],
        ["fc-1"],
        None,
        P + r"input_shape: .* at most 1000000000000 are allowed",
    ),
    (
        OK,
        ["fc-1"],
        {"conv_stride": 0},
        P + r"defaults\.conv_stride: expected an integer from 1 to 256, got 0",
    ),
    (
        OK,
        ["fc-1"],
        {"padding": 1},
        P + r"defaults: unknown key 'padding'; allowed are conv_padding",
    ),
    (
        OK,
        ["fc-1"],
        {"pool_padding": 2},
        P + r"defaults\.pool_padding: pooling padding 2 is more than half",
    ),
]


@pytest.mark.parametrize("shape, specs, defaults, message", BAD)
def test_bad_specifications_name_the_field(shape, specs, defaults, message):
    with pytest.raises(InputError, match=message):
        CNNParams(shape, specs, defaults)


# -- the independent numpy route ------------------------------------------------------------------
def _loops(x: np.ndarray, layer: Layer, weight=None, bias=None) -> np.ndarray:
    """Conv or pooling by explicit loops over output positions (the textbook definition)."""
    (kh, kw), p, s = layer.kernel, layer.padding, layer.stride
    fill = -np.inf if layer.kind == "maxpool" else 0.0
    xp = np.pad(x, ((p, p), (p, p), (0, 0)), constant_values=fill)
    rows = range(0, xp.shape[0] - kh + 1, s)
    cols = range(0, xp.shape[1] - kw + 1, s)
    out_c = weight.shape[0] if layer.kind == "conv" else x.shape[2]
    out = np.zeros((len(rows), len(cols), out_c))
    for a, i in enumerate(rows):
        for b, j in enumerate(cols):
            patch = xp[i : i + kh, j : j + kw, :]  # (kh, kw, C)
            if layer.kind == "conv":
                out[a, b] = np.einsum("ijc,ocij->o", patch, weight) + bias
            elif layer.kind == "maxpool":
                out[a, b] = patch.max(axis=(0, 1))
            else:
                out[a, b] = patch.mean(axis=(0, 1))
    return out


@pytest.mark.parametrize(
    "spec", ["conv3-4/p1/s2", "conv2x3-3/p0/s1", "maxpool3/p1/s2", "avgpool2x3/s1", "avgpool3/p1"]
)
def test_numpy_layers_match_explicit_loops(rng, spec):
    layer = parse_layer(spec, 0)
    x = rng.standard_normal((9, 8, 2))
    # The same seed draws the same weights inside the rule and here.
    y, arrays = NUMPY_RULES[layer.kind](x, layer, np.random.default_rng(5))
    want = _loops(x, layer, *arrays)
    assert y.shape == want.shape
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)


def test_shape_pass_allocates_nothing(problem):
    trace = numpy_trace(problem.net.input_shape, problem.net.layers, None)
    assert [list(t.out_shape) for t in trace] == [s for s, _ in HAND_ROWS]
    assert sum(t.params for t in trace) == 207_507_816


def test_scaled_copy_keeps_spatial_sizes(problem):
    small = scaled_copy(problem.net)
    spatial = [r.out_shape[:2] for r in problem.net.rows if len(r.out_shape) == 3]
    assert [r.out_shape[:2] for r in small.rows if len(r.out_shape) == 3] == spatial
    # ceil(64/64), ceil(128/64), ceil(256/64) channels; fc units ceil(1024/64) = 16 capped,
    # ceil(1000/64) = 16.
    assert [r.out_shape[-1] for r in small.rows] == [1, 1, 2, 2, 4, 4, 4, 16, 16, 16]


def test_every_check_passes(problem):
    assert all(c.passed for c in problem.checks)
    assert set(problem.results) <= {c.claim for c in problem.checks}
    assert any("scaled copy" in c.sizes for c in problem.checks)


def test_verification_is_fast():
    start = time.perf_counter()
    CNNParams().checks  # noqa: B018 - run the checks
    assert time.perf_counter() - start < 0.5


def test_a_ceiling_size_rule_is_caught(monkeypatch):
    # ceil instead of floor agrees wherever the stride divides exactly (the handout net),
    # so only the further networks can catch it.
    monkeypatch.setattr(cnn_spec, "output_side", lambda n, k, p, s: -(-(n + 2 * p - k) // s) + 1)
    p = CNNParams()
    failed = [c for c in p.checks if not c.passed]
    # The layers, and the handout's other readings (their nets have remainders too); the
    # rules the key states are the true floor, so their claims still hold.
    assert failed and {c.claim for c in failed} == {"layers", "other_choices"}
    assert any("further nets" in c.sizes for c in failed)


def test_forgotten_biases_are_caught(monkeypatch):
    monkeypatch.setattr(
        cnn_spec, "conv_weights", lambda kh, kw, ci, co, bias=True: ((kh, kw, ci, co), 0)
    )
    p = CNNParams()
    assert p.results["total_params"].value == 207_507_816 - (64 + 128 + 256 + 256)
    failed = {c.claim for c in p.checks if not c.passed}
    # Untied less tied is off too, and so are the largest layer's share of the total and the
    # other readings' layers; the untied total (every bias untied) does not depend on them.
    assert failed == {"layers", "total_params", "untied_extra", "largest_layer", "other_choices"}


#: What CSE 891's text says of its network (read by hand from ../shared/seeds/004): 4 conv
#: layers, all 3 x 3, as a set declares it in [original.cnn_params].
STATED = {"text_convs": 4, "text_kernel": (3, 3)}


def _stated(**changes) -> CNNParams:
    return CNNParams.from_params({}, original={**STATED, **changes})


def test_handout_reading_is_checked(problem):
    # By hand: with conv stride 2 the sides go 224 -> 112 -> 56 -> 28 -> 14 -> 7 -> 4 -> 2, so
    # fc-1024 sees 2*2*256 = 1024 inputs: 1024*1024 + 1024 = 1,049,600.  With pool padding 1
    # they go 224 -> 113 -> 113 -> 57 -> 57 -> 57 -> 29: 29*29*256*1024 + 1024 = 220,464,128.
    stated = _stated()
    context = stated.context()
    assert context["first_fc"] == 205_521_920 and context["text_agrees"]
    assert context["other_choices"] == {"conv_stride": 1_049_600, "pool_padding": 220_464_128}
    assert any("the description: 4 conv layers" in c.method for c in stated.checks)
    # Without a declared description nothing is said of one.
    assert "handout_text" not in problem.results and problem.context()["text_convs"] is None
    # A text that says 5 conv layers no longer agrees with the diagram: the key says so,
    # and numpy's count says the same, so the claim about what the key prints holds.
    five = _stated(text_convs=5)
    assert five.results["handout_text"].value["agrees"] is False
    assert all(c.passed for c in five.checks)
    # Other networks make no claim about the handout's text.
    other = CNNParams([10, 10, 2], ["conv3-2/p0/s2", "fc-3"])
    assert not any("handout" in c.sizes + c.method for c in other.checks)


@pytest.mark.parametrize(
    ("field", "wrong"),
    [("convs", 5), ("convs", 3), ("kernels", ["5x5"]), ("kernels", ["3x3", "5x5"]),
     ("agrees", False), ("agrees", None)],
)
def test_a_wrong_printed_reading_of_the_text_fails(field, wrong, monkeypatch):
    """The printed conv count, kernels and agreement are checked against numpy's arrays,
    not against the function that computed them: each one altered fails, alone."""
    real = CNNParams._handout_results

    def altered(self):
        out = real(self)
        text = out["handout_text"]
        out["handout_text"] = dataclasses.replace(text, value={**text.value, field: wrong})
        return out

    monkeypatch.setattr(CNNParams, "_handout_results", altered)
    failed = [c for c in _stated().checks if not c.passed]
    assert [c.claim for c in failed] == ["handout_text"]


def test_the_text_is_read_off_numpy_arrays(problem):
    full = numpy_trace(problem.net.input_shape, problem.net.layers, None)
    stated = _stated().results["handout_text"].value
    assert cnn_params.claims.text_reading(full, 4, (3, 3)) == stated
    assert cnn_params.claims.text_reading(full, 4, (5, 5))["agrees"] is False
    # A conv whose kernel is not 3x3 shows in numpy's weight array: (out, in, k_h, k_w).
    other = CNNParams([8, 8, 1], ["conv3-2", "conv5x3-2", "fc-2"]).net
    trace = numpy_trace(other.input_shape, other.layers, None)
    assert cnn_params.claims.text_reading(trace, 2, (3, 3)) == {
        "convs": 2, "kernels": ["3x3", "5x3"], "agrees": False}


def test_big_network_skips_only_the_forward_pass():
    p = CNNParams([2048, 2048, 3], ["conv11-64/p5/s1", "maxpool4/s4", "conv5-128/p2", "fc-4096"])
    assert all(c.passed for c in p.checks)
    assert not any("scaled copy" in c.sizes for c in p.checks)
    assert any("full size" in c.sizes for c in p.checks)


# -- rendering ------------------------------------------------------------------------------------
def _render(p: CNNParams, original: dict | None = None) -> str:
    pset = ProblemSet("one", "One", "Course", "test", ("cnn_params",), Notation(),
                      original={"cnn_params": original} if original else {})
    return render(pset, [p])


def test_template_renders(problem):
    out = _render(problem)
    assert "207,507,816" in out and "N = 207507816" in out
    assert r"( 28 \cdot 28 \cdot 256)" in out and r"3 \cdot 3 \cdot 64 \cdot 128 + 128" in out
    assert "untied biases" in out and "6,421,824" in out  # 224^2*64 + 112^2*128 + 2*56^2*256 - 704
    assert "FAIL" not in out
    # The reading of an original's text only where a set quotes that text.
    assert "no stride" not in out and "original" not in out
    declared = {"text": "Consider a CNN with 4 conv layers.", **STATED}
    quoted = " ".join(_render(_stated(), declared).split())
    assert "no stride" in quoted and "Consider a CNN with 4 conv layers." in quoted
    assert "4 convolutional layers" in quoted and "which agrees" in quoted
    assert "1,049,600 with convolution stride" in quoted


def test_template_renders_other_networks():
    # (10 - 3) / 2 leaves a remainder: the conv drops a row and a column.
    out = _render(CNNParams([10, 10, 2], ["conv3-2/p0/s2", "maxpool2/s2", "fc-3/nobias"]))
    assert "drop rows or columns" in out and "(layer 1)." in out
    assert "no stride" not in out and "softmax" not in out.split("Reading the question")[1]
    pools = _render(CNNParams([4, 4, 1], ["maxpool2", "avgpool2"]))
    assert "total & & & \\multicolumn{1}{r@{}}{0}" in pools


def test_untied_bias_count_is_a_checked_result(monkeypatch):
    """By hand: 224^2*64 + 112^2*128 + 2*56^2*256 - (64 + 128 + 2*256) = 6,421,824; a wrong
    count fails the numpy row."""
    p = CNNParams()
    assert p.results["untied_extra"].value == 6_421_824
    assert all(c.passed for c in p.checks if c.claim == "untied_extra")
    monkeypatch.setattr(CNNParams, "untied_extra", 6_421_825)
    wrong = CNNParams()
    assert [c.passed for c in wrong.checks if c.claim == "untied_extra"] == [False]


def test_a_wrong_stated_rule_is_caught(monkeypatch):
    """The rules the key prints are results with claims: a conv rule without its bias term
    fails its count against numpy's .size, and only that claim fails."""
    from derive.problems.cnn_params import c_in, c_out, k_h, k_w

    rules = dict(CNNParams().rules, rule_conv=k_h * k_w * c_in * c_out)
    monkeypatch.setattr(CNNParams, "rules", rules)
    failed = {c.claim for c in CNNParams().checks if not c.passed}
    assert failed == {"rule_conv"}
