"""The minimal gated unit: a cell added as data alone (its module is the cell and three
labels; no template, no hand-written step) builds a key whose checks all pass.

A set file with the MGU and a worked example goes through ``derive build`` to JSON and
PDF; the derived adjoints are covered by the generic routes (complex step, central
difference, 50-digit mpmath), and the example's gradient agrees with a complex step of a
forward pass written again here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from derive.cli import main
from derive.problems import REGISTRY
from derive.problems.mgu import MGU

WEIGHTS = MGU.CELL.weights

SET = """\
id = "mgu_demo"
title = "A minimal gated unit"
course = "DL 101"
source = "tests/test_mgu.py"
problems = ["mgu"]

[params.mgu.example]
x = [1, -0.5, 2]
h0 = 0.5
dL_dh = [1, 0, -2]

[params.mgu.example.weights]
w_fx = 0.5
w_fh = -0.3
w_nx = 0.9
w_nh = "1/4"
"""
EXAMPLE = {"w_fx": 0.5, "w_fh": -0.3, "w_nx": 0.9, "w_nh": 0.25}


def mgu_loss(w: dict, xs: list, h: complex, a: list) -> complex:
    """L = sum_t a_t h_t of the MGU, typed from its equations (numpy, complex-safe)."""
    total = 0
    for x, at in zip(xs, a, strict=True):
        f = 1 / (1 + np.exp(-(w["w_fx"] * x + w["w_fh"] * h)))
        n = np.tanh(w["w_nx"] * x + w["w_nh"] * (f * h))
        h = (1 - f) * h + f * n
        total = total + at * h
    return total


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("mgu")
    path = tmp / "mgu_demo.toml"
    path.write_text(SET, encoding="utf-8")
    out = tmp / "out"
    assert main(["build", str(path), "--out", str(out), "--format", "json"]) == 0
    assert main(["build", str(path), "--out", str(out)]) == 0  # the key's PDF
    return out / "mgu_demo"


def test_mgu_is_registered_with_the_generic_templates():
    assert REGISTRY["mgu"] is MGU
    p = MGU()
    assert p.template == "problems/recurrent.tex.j2"
    assert p.question_template == "problems/recurrent.question.tex.j2"


def test_mgu_key_compiles_and_every_check_passes(built: Path):
    assert (built / "answer-key.pdf").stat().st_size > 0
    data = json.loads((built / "derivations.json").read_text(encoding="utf-8"))["problems"]["mgu"]
    checks = data["checks"]
    assert checks and all(c["passed"] for c in checks), [c for c in checks if not c["passed"]]
    assert set(data["results"]) == {c["claim"] for c in checks}


def test_mgu_adjoints_are_checked_by_the_generic_routes(built: Path):
    data = json.loads((built / "derivations.json").read_text(encoding="utf-8"))["problems"]["mgu"]
    by_claim: dict[str, set[str]] = {}
    for c in data["checks"]:
        by_claim.setdefault(c["claim"], set()).add(c["method"])
    routes = {"complex step", "central difference", "mpmath 50 digits", "float64 vs mpmath"}
    for name in ["h", "n", "f", "x", *WEIGHTS]:
        assert routes <= by_claim[f"{name}_bar"], name
        assert "complex step" in by_claim[f"vector_{name}_bar"], name
    for bias in ("b_f", "b_n"):
        assert "complex step" in by_claim[f"vector_{bias}_bar"], bias


def test_mgu_example_gradient_matches_a_complex_step_written_here(built: Path):
    data = json.loads((built / "derivations.json").read_text(encoding="utf-8"))["problems"]["mgu"]
    got = data["results"]["example_grad"]["value"]
    xs, a = [1.0, -0.5, 2.0], [1.0, 0.0, -2.0]
    for k in WEIGHTS:
        bumped = {n: complex(v) + (1e-30j if n == k else 0) for n, v in EXAMPLE.items()}
        ref = float(np.imag(mgu_loss(bumped, xs, 0.5, a)) / 1e-30)
        assert got[k] == pytest.approx(ref, rel=1e-12, abs=1e-15), k


def test_a_cell_spec_refuses_a_name_it_does_not_declare() -> None:
    from derive.engine.spec import CellSpec
    from derive.errors import InputError

    spec = CellSpec("typo", ("x",), ("h",), ("w",), ("b",),
                    lambda s: (("h", s.w * s.x + s.w_typo * s.h_prev + s.b),), ("h",))
    with pytest.raises(InputError, match="reads w_typo before it is assigned"):
        spec.build()



def test_a_cell_spec_has_its_biases_in_the_vector_form_only() -> None:
    from derive.engine.spec import CellSpec

    spec = CellSpec("affine", ("x",), ("h",), ("w",), ("b",),
                    lambda s: (("h", sp.tanh(s.w * s.x + s.h_prev + s.b)),), ("h",))
    x, h_prev, w, b = sp.symbols("x h_prev w b")
    assert spec.build().rhs(sp.Symbol("h")) == sp.tanh(w * x + h_prev)
    vector = spec.build(biases=True)
    assert vector.rhs(sp.Symbol("h")) == sp.tanh(w * x + h_prev + b)
    assert vector.params == {w: "weight", b: "bias"}
