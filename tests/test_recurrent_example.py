"""The worked numeric example of the recurrent problems (``example`` of lstm and gru).

A set file gives scalar weights, the input sequence, initial states and the loss weights
dL_dh; the key evaluates the derived equations on them.  Checked here: a T = 1 case worked
out by hand, agreement with a complex-step derivative of a forward pass written in this
file, bad input refused with the field named, key and handout rendering (no derived number
in the handout), and a set file built through the command line.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from conftest import key_pdf_text, key_tex
from test_mgu import mgu_loss

from derive.cli import main
from derive.engine.functions import sigma as sigmoid_sym
from derive.errors import InputError
from derive.problems import REGISTRY
from derive.problems.gru import GRU
from derive.problems.lstm import LSTM, WEIGHTS
from derive.render.numbers import sig6
from derive.sets import parse_set
from derive.verify import Check
from derive.verify.gradcheck import SATURATED, Case

#: A three-step LSTM example as a set file gives it (TOML decimals arrive as Decimal).
LSTM_EXAMPLE = {
    "weights": {
        "w_ix": Decimal("0.5"),
        "w_ih": Decimal("-0.3"),
        "w_fx": 1,
        "w_fh": "1/4",
        "w_ox": Decimal("-0.2"),
        "w_oh": Decimal("0.7"),
        "w_gx": Decimal("0.9"),
        "w_gh": Decimal("-0.6"),
    },
    "x": [1, Decimal("-0.5"), 2],
    "h0": 0,
    "c0": Decimal("0.1"),
    "dL_dh": [1, 0, -2],
}
GRU_EXAMPLE = {
    "weights": {
        "w_zx": 1,
        "w_zh": Decimal("0.5"),
        "w_rx": -1,
        "w_rh": "3/10",
        "w_nx": Decimal("1.5"),
        "w_nh": Decimal("-0.5"),
    },
    "x": [1, 2, Decimal("-0.25"), 0],
    "h0": Decimal("0.5"),
    "dL_dh": [1, 1, "-1/3", 2],
}
TOML = """\
id = "mine"
title = "Homework 3"
course = "DL 101"
source = "mine"
problems = ["lstm"]

[params.lstm.example]
x = [1, -0.5, 2]
h0 = 0
c0 = 0.1
dL_dh = [1, 0, -2]

[params.lstm.example.weights]
w_ix = 0.5
w_ih = -0.3
w_fx = 1
w_fh = "1/4"
w_ox = -0.2
w_oh = 0.7
w_gx = 0.9
w_gh = -0.6
"""


#: One short random case for the engine's own gradient checks: these tests are about the
#: example, and the full default cases run in tests/test_problems.py.
FEW = [Case(2, seed=1)]


@pytest.fixture(scope="module")
def lstm() -> LSTM:
    return LSTM(example=LSTM_EXAMPLE, cases=FEW)


@pytest.fixture(scope="module")
def gru() -> GRU:
    return GRU(example=GRU_EXAMPLE, cases=FEW)


def example_checks(p) -> list[Check]:
    """The example's claims measured afresh (after a test has changed a result)."""
    return [
        Check(c.key, c.route, c.sizes, c.measure(), c.tolerance) for c in p._example_claims()
    ]


def sigmoid(z: complex) -> complex:
    return 1 / (1 + np.exp(-z))


def lstm_loss(w: dict, xs: list, h: complex, c: complex, a: list) -> complex:
    """L = sum_t a_t h_t of the handout's LSTM, written again here (numpy, complex-safe)."""
    total = 0
    for x, at in zip(xs, a, strict=True):
        i = sigmoid(w["w_ix"] * x + w["w_ih"] * h)
        f = sigmoid(w["w_fx"] * x + w["w_fh"] * h)
        o = sigmoid(w["w_ox"] * x + w["w_oh"] * h)
        g = np.tanh(w["w_gx"] * x + w["w_gh"] * h)
        c = f * c + i * g
        h = o * np.tanh(c)
        total = total + at * h
    return total


def gru_loss(w: dict, xs: list, h: complex, a: list) -> complex:
    """L = sum_t a_t h_t of the GRU (reset gate before w_nh), written again here."""
    total = 0
    for x, at in zip(xs, a, strict=True):
        z = sigmoid(w["w_zx"] * x + w["w_zh"] * h)
        r = sigmoid(w["w_rx"] * x + w["w_rh"] * h)
        n = np.tanh(w["w_nx"] * x + w["w_nh"] * (r * h))
        h = (1 - z) * h + z * n
        total = total + at * h
    return total


#: The test oracle of every registered recurrent problem: its forward pass typed again by
#: hand from the cell's equations, as L(weights, example) with the example in floats.  The
#: key's own checks of a worked example run the cell's equations as the problem states
#: them, so a typo in those equations would pass them; only a pass written apart catches it.
HAND_WRITTEN = {
    "lstm": lambda w, e: lstm_loss(w, e["x"], e["h0"], e["c0"], e["dL_dh"]),
    "gru": lambda w, e: gru_loss(w, e["x"], e["h0"], e["dL_dh"]),
    "mgu": lambda w, e: mgu_loss(w, e["x"], e["h0"], e["dL_dh"]),
}


def complex_step(loss, w: dict) -> dict[str, float]:
    """dL/dw for every weight by complex step (h = 1e-30: no cancellation)."""
    out = {}
    for k in w:
        bumped = {n: complex(v) + (1e-30j if n == k else 0) for n, v in w.items()}
        out[k] = float(np.imag(loss(bumped)) / 1e-30)
    return out


def floats(example: dict) -> tuple[dict, list, list]:
    """Weights, inputs and loss weights of an example as floats (Fraction reads "1/4")."""

    def num(v) -> float:
        return float(Fraction(str(v)))

    w = {k: num(v) for k, v in example["weights"].items()}
    return w, [num(v) for v in example["x"]], [num(v) for v in example["dL_dh"]]


# -- a case worked by hand ---------------------------------------------------------------------
def test_one_step_lstm_matches_the_hand_derivation():
    """T = 1 with h0 = c0 = 0, loss L = a h.  By hand, from the cell's equations:

    i = sigma(w_ix x), f = sigma(w_fx x), o = sigma(w_ox x), g = tanh(w_gx x) (h0 = 0 drops
    the w_*h terms), c = f c0 + i g = i g, h = o tanh(c).  Backwards: bar h = a,
    bar o = a tanh(c), bar c = a o (1 - tanh(c)^2), bar g = bar c i, bar i = bar c g,
    bar f = bar c c0 = 0.  Each weight collects bar u u' times what it multiplies:
    bar w_ix = bar i i (1 - i) x, bar w_ox = bar o o (1 - o) x, bar w_gx = bar g (1 - g^2) x,
    bar w_fx = bar f f (1 - f) x = 0, and every w_*h multiplies h0 = 0, so its gradient is 0.
    """
    weights = {"w_ix": "1/2", "w_ih": 3, "w_fx": -1, "w_fh": 2}
    weights |= {"w_ox": 1, "w_oh": -2, "w_gx": Decimal("-0.5"), "w_gh": 1}
    x, a = 2.0, 1.5
    p = LSTM(example={"weights": weights, "x": [2], "h0": 0, "c0": 0, "dL_dh": ["3/2"]})
    i, o, g = 1 / (1 + math.exp(-1.0)), 1 / (1 + math.exp(-2.0)), math.tanh(-1.0)
    c = i * g
    c_bar = a * o * (1 - math.tanh(c) ** 2)
    o_bar = a * math.tanh(c)
    want = {
        "w_ix": c_bar * g * i * (1 - i) * x,
        "w_ox": o_bar * o * (1 - o) * x,
        "w_gx": c_bar * i * (1 - g**2) * x,
    }
    got = p.results["example_grad"].value
    assert set(got) == set(WEIGHTS)
    for k in WEIGHTS:
        assert got[k] == pytest.approx(want.get(k, 0.0), rel=1e-14, abs=0.0), k
    fwd = p.results["example_forward"].value
    assert fwd["c"] == [pytest.approx(c, rel=1e-15)]
    assert fwd["h"] == [pytest.approx(o * math.tanh(c), rel=1e-15)]
    adj = p.results["example_adjoints"].value
    assert adj["f"] == [0.0] and adj["h"] == [a]
    assert adj["c"] == [pytest.approx(c_bar, rel=1e-14)]


# -- agreement with independent routes ----------------------------------------------------------
def test_lstm_gradient_matches_a_complex_step_written_here(lstm):
    w, xs, a = floats(LSTM_EXAMPLE)
    ref = complex_step(lambda p: lstm_loss(p, xs, 0.0, 0.1, a), w)
    got = lstm.results["example_grad"].value
    for k in WEIGHTS:
        assert got[k] == pytest.approx(ref[k], rel=1e-12, abs=1e-15), k


def test_gru_gradient_matches_a_complex_step_written_here(gru):
    w, xs, a = floats(GRU_EXAMPLE)
    ref = complex_step(lambda p: gru_loss(p, xs, 0.5, a), w)
    got = gru.results["example_grad"].value
    assert set(got) == set(ref)
    for k in ref:
        assert got[k] == pytest.approx(ref[k], rel=1e-12, abs=1e-15), k


def test_every_recurrent_problem_has_a_hand_written_forward_pass(recurrent_key):
    assert recurrent_key in HAND_WRITTEN, (
        f"{recurrent_key} has no hand-written forward pass: add one to HAND_WRITTEN in "
        "tests/test_recurrent_example.py, typed from the cell's equations"
    )


def _distinct_example(cell) -> dict:
    """A worked example from a cell's names, each weight its own value (a swap shows)."""
    values = ["1/2", "-3/10", Decimal("0.7"), Decimal("-0.4"), 1, "1/5", Decimal("-0.9")]
    return {
        "weights": {w: values[i % len(values)] for i, w in enumerate(cell.weights)},
        "x": [1, Decimal("-0.5"), 2],
        **{f"{s}0": Decimal("0.1") * (i + 1) for i, s in enumerate(cell.states)},
        **{f"dL_d{v}": [1, Decimal("-0.5"), 2] for v in cell.loss_on},
    }


def test_example_gradient_matches_the_hand_written_pass(recurrent_key):
    """The derived gradient on an example against a complex step of the pass typed here."""
    if recurrent_key not in HAND_WRITTEN:
        pytest.fail(f"{recurrent_key} has no hand-written forward pass (see above)")
    cls = REGISTRY[recurrent_key]
    example = _distinct_example(cls.CELL)
    got = cls(example=example, cases=FEW).results["example_grad"].value
    e = {k: v if k == "weights" else _floats(v) for k, v in example.items()}
    w = _floats(example["weights"])
    ref = complex_step(lambda p: HAND_WRITTEN[recurrent_key](p, e), w)
    assert set(got) == set(ref)
    for k in ref:
        assert got[k] == pytest.approx(ref[k], rel=1e-12, abs=1e-15), k


def test_a_typo_in_the_cell_passes_its_own_checks_but_not_the_hand_written_pass():
    """Reset gate after w_nh instead of before: the key's checks of the example run the
    typo'd equations on both sides and pass; the hand-written pass does not agree."""
    typo = dataclasses.replace(GRU.CELL, equations=lambda s: (
        ("z", sigmoid_sym(s.w_zx * s.x + s.w_zh * s.h_prev + s.b_z)),
        ("r", sigmoid_sym(s.w_rx * s.x + s.w_rh * s.h_prev + s.b_r)),
        ("n", sp.tanh(s.w_nx * s.x + s.r * s.w_nh + s.b_n)),  # the typo: r w_nh, no h_prev
        ("h", (1 - s.z) * s.h_prev + s.z * s.n),
    ))
    typo_gru = type("TypoGRU", (GRU,), {"CELL": typo})
    example = _distinct_example(typo)
    p = typo_gru(example=example, cases=FEW)
    assert all(c.passed for c in example_checks(p))
    e = {k: v if k == "weights" else _floats(v) for k, v in example.items()}
    ref = complex_step(lambda w: HAND_WRITTEN["gru"](w, e), _floats(example["weights"]))
    got = p.results["example_grad"].value
    assert any(got[k] != pytest.approx(ref[k], rel=1e-6) for k in ref)


def _floats(v):
    """Exact example numbers (Decimal, "p/q", int) as floats, through dicts and lists."""
    if isinstance(v, dict):
        return {k: _floats(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_floats(x) for x in v]
    return float(Fraction(str(v)))


def test_example_agrees_with_derive_grad(lstm):
    """The same numbers through the derive grad path give the same gradient (its NumPy
    backend runs the very code of the example; the C backend agrees to round-off, see
    tests/test_native.py)."""
    w, xs, a = floats(LSTM_EXAMPLE)
    data = {"weights": w, "x": xs, "h0": 0.0, "c0": 0.1, "dL_dh": a}
    out = LSTM().grad(data, backend="numpy")
    for k in WEIGHTS:
        assert lstm.results["example_grad"].value[k] == out["grad"][k]
    assert lstm.results["example_forward"].value["h"] == out["h"]


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_example_checks_pass_and_cover_every_example_result(name, lstm, gru):
    p = {"lstm": lstm, "gru": gru}[name]
    checks = [c for c in p.checks if c.claim.startswith("example_")]
    assert {c.claim for c in checks} == {"example_forward", "example_grad", "example_adjoints"}
    assert all(c.passed for c in checks), [c for c in checks if not c.passed]
    methods = {c.method.removesuffix(", saturated") for c in checks}
    assert "complex step of the forward pass from the stated equations" in methods
    assert "derived equations at 50 digits vs those differences" in methods
    # The example's checks have a group of their own in the key.
    assert [n for n, g in p.check_groups() if g and g[0].claim.startswith("example_")] == [
        "Worked example"
    ]


def test_mild_example_uses_the_strict_tolerance(lstm):
    """Every |z| of this example is below 3: the float64 routes are held to 1e-12."""
    rows = [c for c in lstm.checks if c.claim == "example_grad" and "50 digits" not in c.method]
    assert rows and all(c.tolerance == 1e-12 and "saturated" not in c.method for c in rows)


def test_steep_example_is_labelled_saturated():
    steep = dict(LSTM_EXAMPLE, weights=dict(LSTM_EXAMPLE["weights"], w_gx=2))
    p = LSTM(example=steep)  # |w_gx x| = 4 at step 3: beyond 3, within the bound 6
    rows = [c for c in example_checks(p) if c.claim == "example_grad"]
    saturated = SATURATED["complex step"]
    assert any(c.method.endswith(", saturated") and c.tolerance == saturated for c in rows)
    assert all(c.passed for c in rows)


def test_checks_catch_a_wrong_example_value():
    """A gradient off in the 10th digit fails the complex-step and mpmath rows."""
    broken = LSTM(example=LSTM_EXAMPLE)
    result = broken.results["example_grad"]
    value = dict(result.value, w_fh=result.value["w_fh"] * (1 + 1e-10))
    broken.results["example_grad"] = dataclasses.replace(result, value=value)
    failed = {c.method for c in example_checks(broken) if not c.passed}
    assert "complex step of the forward pass from the stated equations" in failed
    assert "float64 vs 60-digit central differences of the same pass" in failed


def test_problems_without_an_example_stay_as_they_were():
    for p in (LSTM(cases=FEW), GRU(cases=FEW)):
        assert p.example is None
        assert not [k for k in p.results if k.startswith("example")]
        assert not [c for c in p.checks if c.claim.startswith("example")]


# -- bad input --------------------------------------------------------------------------------
def _with(**changes) -> dict:
    out = {k: v for k, v in LSTM_EXAMPLE.items() if k not in changes or changes[k] is not None}
    out |= {k: v for k, v in changes.items() if v is not None}
    return out


def _weights(**changes) -> dict:
    return _with(weights={**LSTM_EXAMPLE["weights"], **changes})


BAD = [
    ("not a table", [1, 2], r"params\.lstm\.example: expected a table"),
    ("missing key", _with(c0=None), r"params\.lstm\.example\.c0: missing; required are weights"),
    ("unknown key", _with(y=[1, 2, 3]), r"params\.lstm\.example\.y: unknown key; allowed are"),
    (
        "missing weight",
        _with(weights={k: v for k, v in LSTM_EXAMPLE["weights"].items() if k != "w_gh"}),
        r"params\.lstm\.example\.weights\.w_gh: missing",
    ),
    (
        "bias",
        _weights(b_i=1),
        r"params\.lstm\.example\.weights\.b_i: unknown weight \(.*without biases\)",
    ),
    (
        "wrong length",
        _with(dL_dh=[1, 2]),
        r"params\.lstm\.example\.dL_dh: expected 3 numbers, one per step as x has, got 2",
    ),
    ("empty sequence", _with(x=[]), r"params\.lstm\.example\.x: expected a list of 1 to 20"),
    ("too long", _with(x=[0] * 21, dL_dh=[1] * 21), r"example\.x: .* got a list of 21"),
    ("not a number", _with(x=[1, "two", 3]), r"params\.lstm\.example\.x\[1\]: expected an exact"),
    ("boolean", _with(h0=True), r"params\.lstm\.example\.h0: expected an exact number"),
    ("binary float", _with(c0=0.1), r"params\.lstm\.example\.c0: .*binary float 0\.1 is not"),
    ("infinite", _with(c0=Decimal("Infinity")), r"example\.c0: expected a finite number"),
    ("nan", _weights(w_ix=Decimal("NaN")), r"example\.weights\.w_ix: expected a finite number"),
    ("too large", _weights(w_ox=11), r"example\.weights\.w_ox: 11 is out of range; .*<= 10"),
    ("division by zero", _with(h0="1/0"), r"params\.lstm\.example\.h0: '1/0' divides by zero"),
    (
        "saturated gate",
        _weights(w_fx=4),  # |w_fx x| = 8 at step 3
        r"params\.lstm\.example: the gate f saturates at step 3 .* \|z\| <= 6",
    ),
]


@pytest.mark.parametrize(("case", "example", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_examples_are_refused(case, example, message):
    with pytest.raises(InputError, match=message):
        LSTM.from_params({"example": example})


def test_gru_refuses_a_cell_state():
    bad = dict(GRU_EXAMPLE, c0=0)
    with pytest.raises(InputError, match=r"params\.gru\.example\.c0: unknown key; allowed are"):
        GRU.from_params({"example": bad})


def test_bad_example_in_a_set_file_fails_before_any_output(tmp_path: Path, capsys):
    path = tmp_path / "mine.toml"
    path.write_text(TOML.replace("dL_dh = [1, 0, -2]", "dL_dh = [1, 0, inf]"), encoding="utf-8")
    out = tmp_path / "out"
    status = main(["build", str(path), "--out", str(out), "--format", "tex"])
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert re.search(r"mine\.toml: params\.lstm\.example\.dL_dh\[2\]: expected a finite", err)
    assert not out.exists()


# -- rendering ----------------------------------------------------------------------------------
def test_key_shows_the_worked_example(lstm):
    tex = key_tex(lstm)
    section = tex[tex.index("\\paragraph{Worked example.}") : tex.index("\\paragraph{Verification")]
    grad = lstm.results["example_grad"].value
    for name, value in grad.items():
        lhs = "\\overline{" + name.replace("w_", "w_{") + "}}"  # w_ix prints as w_{ix}
        assert f"{lhs} &= {sig6(value)}" in section, name
    for values in lstm.results["example_forward"].value.values():
        assert all(f"${sig6(v)}$" in section for v in values)
    for values in lstm.results["example_adjoints"].value.values():
        assert all(f"${sig6(v)}$" in section for v in values)
    # Between the vector form and the verification, with its own evidence table.
    assert tex.index("\\paragraph{Vector form.}") < tex.index("\\paragraph{Worked example.}")
    assert "\\textbf{Worked example}" in tex


def test_sig6_prints_six_significant_digits():
    # Expected strings typed by hand.
    assert sig6(-0.20156333159487) == "-0.201563"
    assert sig6(1.5e-7) == "1.5\\times 10^{-7}"
    assert sig6(123456789.0) == "1.23457\\times 10^{8}"
    assert sig6(-0.0) == "0"


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_handout_states_the_numbers_and_no_result(name, lstm, gru):
    p = {"lstm": lstm, "gru": gru}[name]
    handout, key = key_tex(p, handout=True), key_tex(p)
    assert "\\paragraph{A numeric example.}" in handout
    assert "compute the gradient of $\\mathcal{L}$ with respect to every weight" in handout
    # The given numbers as stated ("3/10" prints as the decimal 0.3, "-1/3" as a fraction).
    given = {
        "lstm": ["$c^{(0)} = 0.1$", "w_{fh} &= 0.25", "3 & $2$ & $-2$"],
        "gru": ["$h^{(0)} = 0.5$", "w_{rh} &= 0.3", "3 & $-0.25$ & $- \\frac{1}{3}$"],
    }
    for text in given[name]:
        assert text in handout, text
    # No computed number of the example reaches the handout.
    computed = [sig6(v) for vals in p.results["example_forward"].value.values() for v in vals]
    computed += [sig6(v) for vals in p.results["example_adjoints"].value.values() for v in vals]
    computed += [sig6(v) for v in p.results["example_grad"].value.values()]
    assert [v for v in computed if len(v) >= 5 and v in handout] == []
    assert "Worked example" not in handout and "Verification" not in handout
    # No substantial line of the key's solution is a line of the handout.
    solution = key[key.index("\\subsection*{Solution}") :].splitlines()
    lines = {line.strip() for line in handout.splitlines()}
    assert [s for s in solution if len(s.strip()) >= 25 and s.strip() in lines] == []
    # The key opens with the same question.
    question = handout[handout.index("\\section*{Problem") : handout.index("\\end{document}")]
    assert question.strip() in key


def test_key_pdf_shows_the_example(lstm, tmp_path: Path):
    text = " ".join(key_pdf_text(lstm, tmp_path).split())
    assert "Worked example." in text and "A numeric example." in text
    grad = lstm.results["example_grad"].value
    # pdftotext prints a minus sign as U+2212.
    assert sig6(grad["w_ix"]).replace("-", "\u2212") in text


# -- a set file through the command line -------------------------------------------------------
def test_set_file_with_an_example_builds(tmp_path: Path, lstm, monkeypatch):
    # The engine's random cases are not what this test is about: one short one will do.
    monkeypatch.setattr(LSTM, "default_cases", lambda self: FEW)
    path = tmp_path / "mine.toml"
    path.write_text(TOML, encoding="utf-8")
    pset = parse_set(TOML, "mine.toml")
    assert pset.make_problem("lstm").example == lstm.example  # TOML decimals read exactly
    out = tmp_path / "out"
    # --jobs 1: in this process, where the short cases above apply.
    base = ["build", str(path), "--out", str(out), "--jobs", "1", "--format"]
    assert main([*base, "tex"]) == 0
    assert main([*base, "tex", "--handout"]) == 0
    assert main([*base, "json"]) == 0
    folder = out / "mine"
    key = (folder / "answer-key.tex").read_text(encoding="utf-8")
    handout = (folder / "handout.tex").read_text(encoding="utf-8")
    grad = lstm.results["example_grad"].value
    assert "\\paragraph{Worked example.}" in key
    assert f"&= {sig6(grad['w_ix'])}" in key and sig6(grad["w_ix"]) not in handout
    assert "$w_{fh} = 0.25$" in key  # "1/4" as stated, printed as a decimal
    data = json.loads((folder / "derivations.json").read_text(encoding="utf-8"))
    results = data["problems"]["lstm"]["results"]
    assert results["example_grad"]["value"] == grad
    assert results["example_forward"]["value"]["h"] == lstm.results["example_forward"].value["h"]
    checks = [c for c in data["problems"]["lstm"]["checks"] if c["claim"].startswith("example")]
    assert len(checks) == 7 and all(c["passed"] for c in checks)


def test_the_worked_example_speaks_of_mathematics(lstm):
    """The example's paragraphs name the arithmetic (float64, the digits of the reference),
    not the program that ran it."""
    from test_keys_read import SELF_TALK

    from derive.verify.routes import DERIVED_DPS, REFERENCE_DPS

    tex = key_tex(lstm)
    assert [line for line in tex.splitlines() if SELF_TALK.search(line)] == []
    assert "derive grad" not in tex and "compiled code" not in tex
    assert f"{REFERENCE_DPS}-digit arithmetic" in tex
    assert f"evaluated in\n{DERIVED_DPS} digits" in tex
