"""Set files as input: parameters, bad input, handouts, per-student variants, starters.

Bad set files must fail with exit status 2, one line naming the file, the key path, the bad
value and what is allowed, and must leave existing outputs byte-identical.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import HEAD, OLD, VARY
from conftest import set_file as _write

from derive.cli import main
from derive.render.pdf import pdf_text
from derive.sets import parse_set
from derive.variants import draw, versions

#: int(sha256(b"derive-variant|s|ada|eigen_power|n|0").hexdigest(), 16) % 1000
DRAW_S_ADA = 708




BAD = [
    ("not toml", 'problems = ["eigen_power"\n', r"mine\.toml: not valid TOML"),
    ("unknown key", 'problems = ["momentum"]\nauthor = "me"\n', r"mine\.toml: author: unknown key"),
    (
        "unknown problem",
        'problems = ["lsmt"]\n',
        r"problems\[0\]: unknown problem 'lsmt'; known: lstm",
    ),
    (
        "params of an absent problem",
        'problems = ["momentum"]\n[params.eigen_power]\nn = 3\n',
        r"params\.eigen_power: not a problem of this set; allowed are momentum",
    ),
    (
        "unknown parameter",
        'problems = ["eigen_power"]\n[params.eigen_power]\npower = 3\n',
        r"params\.eigen_power\.power: unknown parameter; allowed are W, n, given_Q, given_Lambda",
    ),
    (
        "wrong type",
        'problems = ["eigen_power"]\n[params.eigen_power]\nn = "thirty"\n',
        r"params\.eigen_power\.n: expected an integer from 1 to 200, got 'thirty'",
    ),
    (
        "ragged matrix",
        'problems = ["eigen_power"]\n[params.eigen_power]\nW = [[1, 2], [3]]\n',
        r"params\.eigen_power\.W: ragged matrix",
    ),
    (
        "wrongly shaped matrix",
        'problems = ["eigen_power"]\n[params.eigen_power]\nW = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]\n',
        r"params\.eigen_power\.W: expected a 2x2 matrix of exact numbers .*, got a 3x3 matrix",
    ),
    (
        "non-finite value",
        'problems = ["eigen_power"]\n[params.eigen_power]\nW = [[inf, 0], [0, 1]]\n',
        r"params\.eigen_power\.W\[0\]\[0\]: expected a finite number, got 'Infinity'",
    ),
    (
        "zero size",
        'problems = ["mdrnn"]\n[params.mdrnn]\ngrid = 0\n',
        r"params\.mdrnn\.grid: expected an integer from 2 to 12, got 0",
    ),
    (
        "negative size",
        'problems = ["cnn_params"]\n[params.cnn_params]\ninput_shape = [-32, 32, 3]\n',
        r"params\.cnn_params\.input_shape.*-32",
    ),
    (
        "non-integer size",
        'problems = ["eigen_power"]\n[params.eigen_power]\nn = 2.5\n',
        r"params\.eigen_power\.n: expected an integer from 1 to 200, got '2\.5'",
    ),
    (
        "absurd size",
        'problems = ["binary_adder"]\n[params.binary_adder]\nbits = 1000000\n',
        r"params\.binary_adder\.bits: expected an integer from 1 to 10, got 1000000",
    ),
    (
        "matrix without real eigendecomposition",
        'problems = ["eigen_power"]\n[params.eigen_power]\nW = [[0, 1], [-1, 0]]\n',
        r"mine\.toml: params\.eigen_power\.W: .* complex eigenvalues",
    ),
    (
        "defective matrix",
        'problems = ["eigen_power"]\n[params.eigen_power]\nW = [[1, 1], [0, 1]]\n',
        r"params\.eigen_power\.W: .* not diagonalizable",
    ),
    (
        "kernel larger than the input",
        'problems = ["cnn_params"]\n[params.cnn_params]\ninput_shape = [4, 4, 1]\n'
        'layers = ["conv7-8/p0", "fc-2"]\n',
        r"params\.cnn_params\.layers\[0\].*kernel",
    ),
    (
        "layer list that does not parse",
        'problems = ["cnn_params"]\n[params.cnn_params]\nlayers = ["convolution 3x3", "fc-2"]\n',
        r"params\.cnn_params\.layers\[0\]",
    ),
    (
        "symbol spelling that reads a file",
        'problems = ["lstm"]\n[notation.symbols]\nw_ix = "\\\\input{/etc/passwd}"\n',
        r"notation\.symbols\.w_ix: .* is not an allowed symbol spelling",
    ),
    (
        "symbol spelling with unbalanced braces",
        'problems = ["lstm"]\n[notation.symbols]\nw_ix = "w_{ix"\n',
        r"notation\.symbols\.w_ix: .* not an allowed symbol spelling",
    ),
    (
        "unknown time notation",
        'problems = ["lstm"]\n[notation]\ntime = "diagonal"\n',
        r"notation\.time: 'diagonal' is not allowed; use 'superscript' or 'subscript'",
    ),
    (
        "fraction dividing by zero",
        'problems = ["eigen_power"]\n[params.eigen_power]\nW = [["1/0", 0], [0, 1]]\n',
        r"params\.eigen_power\.W\[0\]\[0\]: '1/0' divides by zero",
    ),
    (
        "expression instead of a number",
        'problems = ["eigen_power"]\n[params.eigen_power]\n'
        "W = [[\"__import__('os').system('true')\", 0], [0, 1]]\n",
        r"params\.eigen_power\.W\[0\]\[0\]: expected an exact number",
    ),
    (
        "title of several lines",
        'problems = ["momentum"]\n',
        r"mine\.toml: title: expected one line of text",
    ),
]


@pytest.mark.parametrize(("case", "body", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_set_files_are_refused(tmp_path, previous, capsys, case, body, message):
    head = HEAD.replace('"Homework 2"', '"""two\nlines"""') if case.startswith("title") else HEAD
    path = _write(tmp_path, body, head)
    status = main(["build", str(path), "--out", str(previous), "--format", "tex"])
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.startswith("derive: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    import re

    assert re.search(message, err), err
    # Nothing was written: the earlier key is untouched and no file appeared.
    assert (previous / "mine" / "answer-key.tex").read_bytes() == OLD
    assert sorted(p.name for p in (previous / "mine").iterdir()) == ["answer-key.tex"]


def test_free_text_with_latex_specials_prints_verbatim(tmp_path: Path):
    title = r"50% of #1 & $x_1$ {not math} \input{/etc/passwd} ~^"
    head = HEAD.replace('"Homework 2"', json.dumps(title))
    path = _write(tmp_path, 'problems = ["momentum"]\n', head)
    assert main(["build", str(path), "--out", str(tmp_path / "o"), "--handout"]) == 0
    text = " ".join(pdf_text(tmp_path / "o" / "mine" / "handout.pdf").split())
    # pdftotext reads the typeset underscore as a space and ~^ as accents.
    assert r"50% of #1 & $x 1$ {not math} \input{/etc/passwd} ˜ˆ" in text
    assert "root:" not in text  # /etc/passwd was not read


# -- parameters through the build ----------------------------------------------------------------
def test_a_set_from_scratch_builds_with_its_own_numbers(tmp_path: Path):
    body = (
        'problems = ["eigen_power", "binary_adder"]\n'
        '[params.eigen_power]\nW = [["0.5", "0.25"], ["0.25", "0.5"]]\nn = 12\n'
        "[params.binary_adder]\nexample = [6, 7]\nbits = 4\n"
    )
    path = _write(tmp_path, body)
    assert main(["build", str(path), "--out", str(tmp_path / "o"), "--format", "json"]) == 0
    data = json.loads((tmp_path / "o" / "mine" / "derivations.json").read_text())
    eig = data["problems"]["eigen_power"]
    # By hand: eigenvalues 1/4 and 3/4; W^12 = Q diag(1/4^12, 3/4^12) Q^T with Q the 45-degree
    # rotation, so W^12[0][0] = (4^-12 + 0.75^12) / 2.
    assert eig["results"]["Lambda"]["value"] == [[0.25, 0], [0, 0.75]]
    w12 = eig["results"]["W_power"]["value"][0][0]
    assert float(w12) == pytest.approx((0.25**12 + 0.75**12) / 2, rel=1e-15)
    adder = data["problems"]["binary_adder"]["results"]["example_sum"]["value"]
    assert adder == {"bits": [1, 0, 1, 1], "sum": 13}  # 3-bit inputs + 1 padding step: 1101
    assert all(c["passed"] for p in data["problems"].values() for c in p["checks"])


def test_decimals_are_read_exactly(tmp_path: Path):
    pset = parse_set(
        HEAD + 'problems = ["eigen_power"]\n[params.eigen_power]\nW = [[0.1, 0], [0, 0.3]]\n', "x"
    )
    assert str(pset.make_problem("eigen_power").w.tolist()) == "[[1/10, 0], [0, 3/10]]"


# -- handouts ------------------------------------------------------------------------------------
def test_handout_of_a_custom_set_has_no_solution(tmp_path: Path):
    body = 'problems = ["eigen_power", "cnn_params"]\n[params.eigen_power]\nn = 7\n'
    path = _write(tmp_path, body)
    out = tmp_path / "o"
    assert main(["build", str(path), "--out", str(out), "--handout"]) == 0
    assert main(["build", str(path), "--out", str(out)]) == 0
    handout = pdf_text(out / "mine" / "handout.pdf")
    key = pdf_text(out / "mine" / "answer-key.pdf")
    assert "Answer Key" in key and "Answer Key" not in handout
    for solution in ("Solution", "Verification", "pass", "207,507,816", "Its eigenvalues", "exact"):
        assert solution in key, solution
        assert solution not in handout, solution
    assert "W 7" in " ".join(handout.split()) or "W^7" in handout  # the question asks for W^7


# -- variants ------------------------------------------------------------------------------------


def test_variants_are_distinct_verified_and_indexed(tmp_path: Path):
    path = _write(tmp_path, VARY)
    out = tmp_path / "o"
    assert (
        main(
            [
                "build",
                str(path),
                "--out",
                str(out),
                "--variants",
                "5",
                "--seed",
                "7",
                "--format",
                "tex",
            ]
        )
        == 0
    )
    root = out / "mine" / "variants"
    rows = list(csv.DictReader((root / "index.csv").open(encoding="utf-8")))
    assert [r["student"] for r in rows] == ["v01", "v02", "v03", "v04", "v05"]
    assert [int(r["version"]) for r in rows] == [1, 2, 3, 4, 5]
    assert len({r["parameters"] for r in rows}) == 5  # pairwise distinct
    keys = set()
    for r in rows:
        key = (root / r["answer_key"]).read_text(encoding="utf-8")
        handout = (root / r["handout"]).read_text(encoding="utf-8")
        drawn = json.loads(r["parameters"])
        assert f"W^{{{drawn['eigen_power']['n']}}}" in key  # the key answers its own version
        assert "Version " + r["student"] in key and "Version " + r["student"] in handout
        assert "FAIL" not in key and "Solution" not in handout
        keys.add(key)
    assert len(keys) == 5


def test_a_students_version_depends_on_seed_and_id_only(tmp_path: Path):
    pset = parse_set(HEAD + VARY, "mine.toml")
    alone = versions(pset, ["ada"], "s")[0].drawn
    among = {v.student: v.drawn for v in versions(pset, ["bob", "cyd", "ada"], "s")}
    assert among["ada"] == alone
    assert (
        versions(pset, ["ada"], "t")[0].drawn != alone
        or versions(pset, ["ada"], "u")[0].drawn != alone
    )
    # The draw is SHA-256 based: fixed across machines and Python versions.
    assert draw(1000, "s", "ada", "eigen_power", "n", 0) == draw(
        1000, "s", "ada", "eigen_power", "n", 0
    )


def test_roster_builds_one_version_per_student(tmp_path: Path):
    path = _write(tmp_path, VARY)
    roster = tmp_path / "roster.txt"
    roster.write_text("# my class\nada\n\nbob.smith\n", encoding="utf-8")
    out = tmp_path / "o"
    assert (
        main(["build", str(path), "--out", str(out), "--students", str(roster), "--format", "tex"])
        == 0
    )
    rows = list(csv.DictReader((out / "mine" / "variants" / "index.csv").open()))
    assert [r["student"] for r in rows] == ["ada", "bob.smith"]
    assert (out / "mine" / "variants" / "bob.smith" / "handout.tex").is_file()


@pytest.mark.parametrize(
    ("body", "roster", "args", "message"),
    [
        (VARY, "ada\nada\n", [], r"students: 'ada' appears more than once"),
        (VARY, "../etc\n", [], r"students: line 1: '\.\./etc' is not an allowed id"),
        (VARY, "", [], r"students: the roster is empty"),
        ('problems = ["momentum"]\n', None, ["--variants", "2"], r"variants need a \[vary"),
        (
            'problems = ["eigen_power"]\n[vary.eigen_power]\nn = { min = 3, max = 4 }\n',
            None,
            ["--variants", "3"],
            r"vary allows 2 distinct versions; 3 were asked for",
        ),
        (
            'problems = ["eigen_power"]\n[vary.eigen_power]\nsize = [1, 2]\n',
            None,
            ["--variants", "2"],
            r"vary\.eigen_power\.size: unknown parameter; allowed are W, n",
        ),
        (
            'problems = ["eigen_power"]\n[vary.eigen_power]\nn = [3, 0]\n',
            None,
            ["--variants", "2"],
            r"vary\.eigen_power\.n\[1\]: expected an integer from 1 to 200, got 0",
        ),
        (
            'problems = ["eigen_power"]\n[vary.eigen_power]\nn = { min = 1, max = 200, by = 2 }\n',
            None,
            ["--variants", "2"],
            r"vary\.eigen_power\.n: a range needs exactly the keys max, min",
        ),
    ],
)
def test_bad_variant_requests_write_nothing(tmp_path, capsys, body, roster, args, message):
    path = _write(tmp_path, body)
    if roster is not None:
        (tmp_path / "roster.txt").write_text(roster, encoding="utf-8")
        args = ["--students", str(tmp_path / "roster.txt")]
    out = tmp_path / "o"
    assert main(["build", str(path), "--out", str(out), "--format", "tex", *args]) == 2
    err = capsys.readouterr().err
    import re

    assert re.search(message, err), err
    assert not out.exists()


# -- starter files -------------------------------------------------------------------------------
def test_new_writes_a_starter_that_builds(tmp_path: Path, capsys):
    dest = tmp_path / "course_hw"
    assert main(["new", str(dest)]) == 0
    text = (tmp_path / "course_hw.toml").read_text(encoding="utf-8")
    pset = parse_set(text, "course_hw.toml")
    assert pset.id == "course_hw"
    assert "# [params.eigen_power]" in text and "# [vary.eigen_power]" in text
    # Every commented parameter line, uncommented, is a valid set-file value.
    params = [line[2:] for line in text.splitlines() if line.startswith("# ") and " = " in line]
    assert any(p.startswith("n = 30") for p in params)
    assert (
        main(
            [
                "build",
                str(tmp_path / "course_hw.toml"),
                "--out",
                str(tmp_path / "o"),
                "--format",
                "tex",
            ]
        )
        == 0
    )
    assert main(["new", str(dest)]) == 2  # never overwrites without --force
    assert "exists" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("missing.toml", r"cannot read set file .*missing\.toml: No such file"),
        ("latin1.toml", r"cannot read .*latin1\.toml: not UTF-8 text"),
    ],
)
def test_unreadable_set_files(tmp_path: Path, capsys, name, message):
    (tmp_path / "latin1.toml").write_bytes(b'title = "caf\xe9"\n')
    assert main(["build", str(tmp_path / name), "--out", str(tmp_path / "o")]) == 2
    import re

    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "o").exists()
