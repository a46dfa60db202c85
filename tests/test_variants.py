"""Versions a class can be handed: what varies shows, printing in one file, JSON per student.

A parameter the handout never prints would give every student the same question and each a
different key.  ``Problem.SHOWN`` names the parameters a question prints: here each is
rendered with two values and the handouts must differ (a declaration cannot claim what the
handout ignores), and every other parameter is refused in ``[vary]``.  A PDF run binds every
handout and every key into one file each, in roster order and byte-for-byte reproducibly;
a JSON run writes each student's export.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
from pathlib import Path

import pytest
from conftest import HEAD, OLD, QUIZ, VARY, key_tex, set_file, snapshot

import derive.build
from derive.cli import main
from derive.errors import InputError, LatexError
from derive.problems import REGISTRY
from derive.render.pdf import pdf_text
from derive.sets import parse_set
from derive.variants import COMBINED_NAMES, INDEX_NAME, plan


def _example(key: str, x: list) -> dict:
    """A worked example for the recurrent problem ``key``: every weight, inputs ``x``."""
    cell = REGISTRY[key]()
    return {
        "weights": {w: f"{i}/10" for i, w in enumerate(cell.weights, start=1)},
        "x": x,
        "dL_dh": [1] * len(x),
        **{f"{s.name}0": 0 for s in cell.cell.states},
    }


#: Per parameter a question prints: the other parameters given, and two values of it.
TWO_VALUES: dict[tuple[str, str], tuple[dict, object, object]] = {
    ("eigen_power", "W"): ({}, [[2, 1], [1, 2]], [[3, 1], [1, 3]]),
    ("eigen_power", "n"): ({}, 5, 9),
    ("eigen_power", "given_Q"): ({"given_Lambda": [1, 3]}, [[1, 1], [1, -1]], [[1, 2], [1, -1]]),
    ("eigen_power", "given_Lambda"): ({"given_Q": [[1, 1], [1, -1]]}, [1, 3], [3, 1]),
    ("binary_adder", "example"): ({}, [3, 5], [6, 9]),
    ("cnn_params", "input_shape"): ({}, [224, 224, 3], [112, 112, 3]),
    ("cnn_params", "layers"): ({}, ["conv3-8", "fc-10"], ["conv3-16", "fc-10"]),
    ("cnn_params", "defaults"): ({}, {"conv_padding": 0}, {"conv_padding": 1}),
    ("momentum", "beta"): ({}, "0.5", "0.8"),
    ("momentum", "volume_D"): ({}, 10, 20),
    ("mdrnn", "grid"): ({}, 4, 6),
    ("vanilla_rnn", "T"): ({}, 2, 4),
    ("dropout", "p"): ({}, "1/2", "1/5"),
    ("conv_pool", "input_shape"): ({}, [2, 3, 7, 7], [1, 3, 7, 7]),
    ("conv_pool", "filter_shape"): ({}, [4, 3, 3], [2, 3, 3]),
    ("conv_pool", "stride"): ({"pool": [1, 1, 1]}, 1, 2),
    ("conv_pool", "pad"): ({"stride": 1, "pool": [1, 1, 1]}, 0, 1),
    ("conv_pool", "pool"): ({}, [2, 2, 2], [4, 4, 1]),
    ("init", "n_in"): ({}, 100, 30),
    ("init", "n_out"): ({}, 50, 70),
    **{
        (k, "example"): ({}, _example(k, [1, 2]), _example(k, [1, -2]))
        for k in ("lstm", "gru", "mgu")
    },
}
NOT_SHOWN = sorted(
    (key, p.name) for key, cls in REGISTRY.items() for p in cls.PARAMS if p.name not in cls.SHOWN
)


def test_every_shown_parameter_is_a_parameter_and_is_tried_below() -> None:
    for key, cls in REGISTRY.items():
        assert set(cls.SHOWN) <= {p.name for p in cls.PARAMS}, key
    assert {(k, n) for k, cls in REGISTRY.items() for n in cls.SHOWN} == set(TWO_VALUES)


def test_the_readme_lists_what_may_vary() -> None:
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    listed = text[text.index("Only a parameter the") : text.index("Any other\n  is refused")]
    named = set(re.findall(r"`(\w+)\.(\w+)`", listed))
    assert named == {(k, n) for k, cls in REGISTRY.items() for n in cls.SHOWN}


@pytest.mark.parametrize(
    ("key", "name"), sorted(TWO_VALUES), ids=[f"{k}-{n}" for k, n in sorted(TWO_VALUES)]
)
def test_a_shown_parameter_changes_the_handout(key: str, name: str) -> None:
    given, a, b = TWO_VALUES[(key, name)]
    cls = REGISTRY[key]
    first, second = (key_tex(cls.from_params({**given, name: v}), handout=True) for v in (a, b))
    assert first != second


@pytest.mark.parametrize(("key", "name"), NOT_SHOWN, ids=[f"{k}-{n}" for k, n in NOT_SHOWN])
def test_a_parameter_the_handout_does_not_show_cannot_vary(key: str, name: str) -> None:
    pset = parse_set(HEAD + f'problems = ["{key}"]\n[vary.{key}]\n{name} = [1, 2]\n', "mine.toml")
    with pytest.raises(InputError, match=rf"vary\.{key}\.{name}: the handout does not show {name}"):
        plan(pset)


def test_varying_what_the_handout_hides_is_refused_before_anything_is_written(
    tmp_path: Path, previous: Path, capsys
) -> None:
    path = set_file(tmp_path, 'problems = ["momentum"]\n[vary.momentum]\nalpha = ["0.1", "0.2"]\n')
    before = snapshot(previous)
    assert main(["build", str(path), "--out", str(previous), "--variants", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert re.search(
        r"mine\.toml: vary\.momentum\.alpha: the handout does not show alpha, so every version "
        r"would ask the same question with a different answer; vary one of beta, volume_D$",
        err.strip(),
    )
    assert snapshot(previous) == before and before == {"mine/answer-key.tex": OLD}


def test_a_problem_whose_question_prints_no_parameter_says_so() -> None:
    pset = parse_set(HEAD + 'problems = ["resnet_bn"]\n[vary.resnet_bn]\nseed = [1, 2]\n', "m")
    with pytest.raises(InputError, match=r"its question prints none of its parameters$"):
        plan(pset)


@pytest.mark.parametrize("name", COMBINED_NAMES)
def test_a_combined_file_cannot_be_a_student_id(tmp_path: Path, name: str, capsys) -> None:
    roster = tmp_path / "roster.txt"
    roster.write_text(f"ada\n{name.upper()}\n", encoding="utf-8")
    path = set_file(tmp_path, VARY)
    assert main(["build", str(path), "--out", str(tmp_path / "o"), "--students", str(roster)]) == 2
    assert f"line 2: '{name.upper()}' is not an allowed id" in capsys.readouterr().err


def _pages(path: Path) -> int:
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True)
    return int(re.search(r"^Pages:\s+(\d+)$", info.stdout, re.M).group(1))


@pytest.mark.pdf
@pytest.mark.slow
def test_variants_bind_every_handout_and_key_in_roster_order_reproducibly(
    tmp_path: Path, monkeypatch
) -> None:
    path = set_file(tmp_path, VARY)
    roster = tmp_path / "roster.txt"
    roster.write_text("zed\nada\n", encoding="utf-8")  # roster order is not name order
    for run in ("a", "b"):
        args = ["build", str(path), "--out", str(tmp_path / run), "--students", str(roster)]
        assert main([*args, "--seed", "x"]) == 0
    a, b = tmp_path / "a" / "mine" / "variants", tmp_path / "b" / "mine" / "variants"
    files = snapshot(a)
    assert len(files) == 1 + 2 + 2 * 4  # index, two combined, per student key and handout
    assert files == snapshot(b)  # byte for byte, the combined files included
    for combined, part in zip(COMBINED_NAMES, ("handout", "answer-key"), strict=True):
        assert _pages(a / combined) == sum(_pages(a / s / f"{part}.pdf") for s in ("zed", "ada"))
        text = pdf_text(a / combined)
        assert 0 <= text.index("Version zed") < text.index("Version ada")
    # A combining that fails leaves the previous versions, combined files and all, in place.
    monkeypatch.setattr(derive.build.pdf, "combine", _failing)
    args = ["build", str(path), "--out", str(tmp_path / "a"), "--variants", "1", "--seed", "y"]
    assert main(args) == 4
    assert snapshot(a) == files


def _failing(parts: list[bytes], **options: object) -> bytes:
    raise LatexError("LaTeX failed (made to fail by the test)")


def test_json_variants_write_each_students_export(tmp_path: Path) -> None:
    quiz = tmp_path / "quiz.toml"
    quiz.write_text(QUIZ, encoding="utf-8")
    out = tmp_path / "o"
    args = ["build", str(quiz), "--out", str(out), "--format", "json", "--jobs", "1"]
    assert main([*args, "--variants", "2"]) == 0
    root = out / "quiz" / "variants"
    rows = list(csv.DictReader((root / INDEX_NAME).open(encoding="utf-8")))
    assert [(r["answer_key"], r["handout"]) for r in rows] == [
        ("v01/derivations.json", ""),
        ("v02/derivations.json", ""),
    ]
    assert sorted(snapshot(root)) == [INDEX_NAME, "v01/derivations.json", "v02/derivations.json"]
    for r in rows:  # each export is the one a set with that student's parameters gets
        beta = json.loads(r["parameters"])["momentum"]["beta"]
        alone = tmp_path / f"alone-{r['student']}.toml"
        alone.write_text(QUIZ.split("[vary")[0] + f'[params.momentum]\nbeta = "{beta}"\n')
        assert main(["build", str(alone), "--out", str(tmp_path / r["student"]), *args[4:]]) == 0
        mine = json.loads((root / r["answer_key"]).read_text(encoding="utf-8"))
        single = json.loads((tmp_path / r["student"] / "quiz" / "derivations.json").read_text())
        assert mine["problems"] == single["problems"]
    assert len({(root / r["answer_key"]).read_bytes() for r in rows}) == 2


def test_the_index_names_the_key_of_the_sets_form(tmp_path: Path) -> None:
    quiz = tmp_path / "quiz.toml"
    quiz.write_text('key = "compact"\n' + QUIZ, encoding="utf-8")
    out = tmp_path / "o"
    args = ["build", str(quiz), "--out", str(out), "--format", "tex", "--jobs", "1"]
    assert main([*args, "--variants", "1"]) == 0
    root = out / "quiz" / "variants"
    (row,) = csv.DictReader((root / INDEX_NAME).open(encoding="utf-8"))
    assert row["answer_key"] == "v01/answer-key-compact.tex"
    assert (root / row["answer_key"]).is_file()
