"""The README's set file, written from scratch, builds a correct key, handout and variants.

The TOML block is read out of README.md itself, so the README cannot drift from the code.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from derive.cli import main
from derive.problems import REGISTRY
from derive.render.pdf import pdf_text

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def set_file(tmp_path_factory) -> Path:
    block = re.search(r"```toml\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    path = tmp_path_factory.mktemp("readme") / "dl101_hw2.toml"
    path.write_text(block.group(1), encoding="utf-8")
    return path


def test_readme_set_builds_a_verified_key_and_a_clean_handout(set_file: Path, tmp_path: Path):
    out = tmp_path / "build"
    assert main(["build", str(set_file), "--out", str(out), "--format", "json"]) == 0
    data = json.loads((out / "dl101_hw2" / "derivations.json").read_text())
    assert all(c["passed"] for p in data["problems"].values() for c in p["checks"])
    res = {k: p["results"] for k, p in data["problems"].items()}
    # By hand: conv5-32/p2 on 32x32x3: 5*5*3*32+32 = 2432; conv3-64 on 16x16x32 (padding 1):
    # 3*3*32*64+64 = 18496; fc-128 on 8*8*64 = 4096 inputs: 4096*128+128 = 524416;
    # fc-10: 1290.  Total 546634.
    assert res["cnn_params"]["total_params"]["value"] == 546634
    assert res["binary_adder"]["example_sum"]["value"]["sum"] == 42  # 19 + 23
    # Eigenvalues of [[1/2, 1/4], [1/4, 1/2]]: 1/2 -+ 1/4.
    assert res["eigen_power"]["Lambda"]["value"] == [[0.25, 0], [0, 0.75]]
    assert main(["build", str(set_file), "--out", str(out)]) == 0
    assert main(["build", str(set_file), "--out", str(out), "--handout"]) == 0
    key = pdf_text(out / "dl101_hw2" / "answer-key.pdf")
    handout = pdf_text(out / "dl101_hw2" / "handout.pdf")
    assert "Deep Learning 101 (Fall 2026) & friends" in key
    assert "546,634" in key and "546,634" not in handout
    assert "Solution" not in handout and "pass" not in handout


def test_readme_set_variants(set_file: Path, tmp_path: Path):
    args = ["build", str(set_file), "--out", str(tmp_path), "--variants", "3", "--format", "tex"]
    assert main([*args, "--seed", "fall2026"]) == 0
    rows = list(csv.DictReader((tmp_path / "dl101_hw2" / "variants" / "index.csv").open()))
    assert len(rows) == 3 and len({r["parameters"] for r in rows}) == 3


def test_readme_lists_every_problem_and_parameter():
    text = README.read_text(encoding="utf-8")
    for key, cls in REGISTRY.items():
        rows = [line.split("|") for line in text.splitlines() if line.startswith("| `")]
        row = next(("|".join(r) for r in rows if f"`{key}`" in r[1] and len(r) == 5), "")
        assert row, key
        for param in cls.PARAMS:
            assert f"`{param.name}`" in row, (key, param.name)


def test_readme_library_example_runs_and_its_cell_checks_out():
    # The README's library block is run as written: a cell defined as data derives and
    # passes every check, and the bundled LSTM's results are what the comments say.
    block = re.search(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    namespace: dict = {}
    exec(compile(block.group(1), "README.md", "exec"), namespace)  # our own text, not input
    mgu = namespace["mgu"]
    assert "f_bar" in mgu.results and mgu.checks
    assert all(c.passed for c in mgu.checks)
    assert {"complex step", "central difference", "mpmath 50 digits"} <= {
        c.method for c in mgu.checks}


def _model_block(kind: str = "recurrent") -> str:
    blocks = re.findall(r"```toml\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    (block,) = [b for b in blocks if f'kind = "{kind}"' in b]
    return block


def test_readme_map_set_builds_its_determinant(tmp_path: Path):
    """The README's Nesterov map, as written: every check passes, and the determinant
    has the Hessian's factor det(I - alpha H) besides beta^D."""
    path = tmp_path / "dl101_hw5.toml"
    path.write_text(_model_block("map"), encoding="utf-8")
    assert main(["build", str(path), "--out", str(tmp_path / "b"), "--format", "json"]) == 0
    data = json.loads((tmp_path / "b" / "dl101_hw5" / "derivations.json").read_text())
    entry = data["problems"]["nesterov"]
    assert all(c["passed"] for c in entry["checks"])
    det = entry["results"]["det_jacobian"]["sympy"]
    assert "alpha" in det and "beta" in det


def test_readme_model_set_defines_its_cell_and_builds(tmp_path: Path, capsys):
    """The README's [models.mgu] set, as written: its key exports the LSTM's keys, and
    derive grad --set evaluates the same numbers as the bundled MGU it restates."""
    path = tmp_path / "dl101_hw4.toml"
    path.write_text(_model_block(), encoding="utf-8")
    assert main(["build", str(path), "--out", str(tmp_path / "b"), "--format", "json"]) == 0
    data = json.loads((tmp_path / "b" / "dl101_hw4" / "derivations.json").read_text())
    entry = data["problems"]["mgu"]
    assert {"h_bar", "f_bar", "w_fx_bar", "h0_bar", "backward_map"} <= set(entry["results"])
    capsys.readouterr()
    numbers = tmp_path / "in.json"
    numbers.write_text(json.dumps({"weights": {"w_fx": 0.5, "w_fh": -0.3, "w_nx": 0.8,
                                               "w_nh": 0.2}, "x": [0.1, -0.4],
                                   "h0": 0.2, "dL_dh": [1, -0.5]}))
    outs = []
    for extra in (["--set", str(path)], []):  # the set's mgu, then the bundled one
        assert main(["grad", "mgu", "--input", str(numbers), "--backend", "numpy", *extra]) == 0
        outs.append(json.loads(capsys.readouterr().out))
    assert outs[0] == outs[1] and outs[0]["grad"]["w_fx"] != 0
