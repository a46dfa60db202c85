"""Set files, rosters and vary lists that once crashed or hung ``derive build``.

Each must end quickly with exit status 2 and one line naming the field (or build, where the
input is valid), with no traceback and the earlier outputs untouched.  Inputs that hung or
exhausted memory on the old code run in a subprocess with a timeout and a memory limit.
"""

from __future__ import annotations

import csv
import json
import os
import re
import resource
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import HEAD, OLD, VARY
from conftest import set_file as _write

from derive.cli import main
from derive.errors import InputError
from derive.readers import MAX_TEXT_BYTES, read_text
from derive.sets import MAX_DEPTH, parse_set
from derive.variants import (
    INDEX_NAME,
    MAX_REDRAWS,
    check_students,
    numbered,
    plan,
    read_roster,
    versions,
)

REPO = Path(__file__).resolve().parents[1]
#: Seconds a run may take: the new code answers in about one; the old code never did.
LIMIT = 120




def _untouched(out: Path) -> None:
    assert (out / "mine" / "answer-key.tex").read_bytes() == OLD
    assert sorted(p.name for p in (out / "mine").iterdir()) == ["answer-key.tex"]


def _refused(capsys, args: list[str], pattern: str) -> str:
    """``derive ARGS`` in-process: status 2 and one line matching ``pattern``."""
    status = main(args)
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.startswith("derive: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert re.search(pattern, err), err
    return err


def _limit_memory() -> None:  # the old code read /dev/zero until memory ran out
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def _cli(args: list[str]) -> subprocess.CompletedProcess:
    """``derive ARGS`` in a subprocess that must end within ``LIMIT`` seconds."""
    return subprocess.run(
        [sys.executable, "-m", "derive", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=LIMIT,
        preexec_fn=_limit_memory,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def _cli_refused(args: list[str], pattern: str) -> None:
    try:
        done = _cli(args)
    except subprocess.TimeoutExpired:
        pytest.fail(f"derive {' '.join(args)} did not end within {LIMIT} s")
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("derive: error: ") and done.stderr.count("\n") == 1, done.stderr
    assert re.search(pattern, done.stderr), done.stderr


# -- defect 5: duplicate vary values ------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [
        'problems = ["eigen_power"]\n[vary.eigen_power]\nn = [5, 5]\n',
        'problems = ["momentum"]\n[vary.momentum]\nbeta = [0.5, "0.5"]\n',
        'problems = ["momentum"]\n[vary.momentum]\nbeta = ["0.5", "1/2"]\n',
        'problems = ["eigen_power"]\n[vary.eigen_power]\n'
        'W = [[[1, 0], [0, "0.5"]], [["1/1", 0.0], [0, "1/2"]]]\n',
    ],
    ids=["equal-ints", "decimal-and-text", "two-spellings", "equal-matrices"],
)
def test_equal_vary_values_count_once_and_the_run_ends(tmp_path: Path, body: str) -> None:
    path = _write(tmp_path, body)
    _cli_refused(
        ["build", str(path), "--out", str(tmp_path / "o"), "--variants", "2", "--format", "tex"],
        r"vary allows 1 distinct version; 2 were asked for",
    )
    assert not (tmp_path / "o").exists()


def test_versions_differ_in_value_not_only_in_spelling() -> None:
    pset = parse_set(
        HEAD + 'problems = ["momentum"]\n[vary.momentum]\nbeta = ["0.5", "1/2", 0.50, "0.75"]\n',
        "mine.toml",
    )
    for seed in map(str, range(40)):
        drawn = [v.drawn["momentum"]["beta"] for v in versions(pset, numbered(2), seed)]
        # The first spelling of 1/2 stands for all three; the versions differ as numbers.
        assert sorted(drawn) == ["0.5", "0.75"], (seed, drawn)


def test_redraws_are_bounded_and_fill_the_space_deterministically() -> None:
    pset = parse_set(
        HEAD + 'problems = ["eigen_power"]\n[vary.eigen_power]\nn = { min = 1, max = 40 }\n', "m"
    )
    students = [f"s{i:02d}" for i in range(40)]  # as many as versions: the last ones probe
    runs = []
    for _ in range(2):
        done: list = []
        worker = threading.Thread(
            target=lambda out=done: out.append(versions(pset, students, "x")), daemon=True
        )
        worker.start()
        worker.join(timeout=LIMIT)
        assert done, "versions() did not end"
        runs.append([v.drawn["eigen_power"]["n"] for v in done[0]])
    assert sorted(runs[0]) == list(range(1, 41))  # every value once
    assert runs[0] == runs[1]  # and the same each run
    assert MAX_REDRAWS >= 1


#: Digests the code before the bounded redraw gave (commit 23ebc8d): rosters without a
#: collision, and one resolved by hash redraws, keep their versions.
PINNED = {
    "v01": '{"cnn_params":{"layers":["conv3-32","maxpool2","fc-10"]},"eigen_power":{"W":'
    '[["71/125","-78/125"],["-78/125","233/250"]],"n":36}}',
    "v05": '{"cnn_params":{"layers":["conv3-16","maxpool2","fc-10"]},"eigen_power":{"W":'
    '[["87/125","-66/125"],["-66/125","251/250"]],"n":17}}',
    "bob": '{"cnn_params":{"layers":["conv3-16","maxpool2","fc-10"]},"eigen_power":{"W":'
    '[["103/125","-54/125"],["-54/125","269/250"]],"n":35}}',
}




def test_draws_without_collisions_are_those_of_before() -> None:
    pset = parse_set(HEAD + VARY, "mine.toml")
    got = {v.student: v.digest() for v in versions(pset, [*numbered(5), "ada", "bob"], "7")}
    assert {k: got[k] for k in PINNED} == PINNED
    small = parse_set(
        HEAD + 'problems = ["eigen_power"]\n[vary.eigen_power]\nn = { min = 1, max = 12 }\n', "m"
    )
    ten = [f"s{i}" for i in range(10)]
    drawn = [v.drawn["eigen_power"]["n"] for v in versions(small, ten, "x")]
    assert drawn == [7, 5, 9, 6, 11, 3, 8, 2, 10, 12]


# -- defect 6: tracebacks -----------------------------------------------------------------------
BAD = [
    ("list-as-problem", 'problems = [["eigen_power"]]\n', r"problems\[0\]: unknown problem \["),
    ("problems-as-text", 'problems = "lstm"\n', r"problems: expected a non-empty list"),
    (
        "huge-integer",
        'problems = ["eigen_power"]\n[params.eigen_power]\nn = ' + "9" * 5000 + "\n",
        r"mine\.toml: line 7: an integer of 5000 digits; integers are 64-bit",
    ),
    (
        "integer-beyond-64-bit",
        'problems = ["eigen_power"]\n[params.eigen_power]\nn = ' + "9" * 30 + "\n",
        r"params\.eigen_power\.n: an integer of 30 digits; integers are 64-bit",
    ),
    (
        "nesting-beyond-the-recursion-limit",
        'problems = ["eigen_power"]\n[params.eigen_power]\nW = ' + "[" * 5000 + "]" * 5000 + "\n",
        r"mine\.toml: arrays or tables nested too deeply; at most 8 levels",
    ),
    (
        "nesting-beyond-the-bound",
        'problems = ["eigen_power"]\n[params.eigen_power]\nW = ' + "[" * 12 + "]" * 12 + "\n",
        r"params\.eigen_power\.W\[0\]\[0\]\[0\]\[0\]\[0\]\[0\]: arrays or tables nested too "
        r"deeply; at most 8",
    ),
    ("params-as-number", 'problems = ["eigen_power"]\nparams = 3\n', r"params: expected a table"),
    (
        "vary-of-a-problem-as-number",
        'problems = ["eigen_power"]\nvary = { eigen_power = 3 }\n',
        r"vary\.eigen_power: expected a table of parameters",
    ),
    (
        "key-with-a-line-break",
        'problems = ["eigen_power"]\n[params.eigen_power]\n"n\\nm" = 3\n',
        r"params\.eigen_power: key 'n\\nm' is not allowed",
    ),
    (
        "symbol-spelling-as-number",
        'problems = ["lstm"]\n[notation.symbols]\nw_ix = 3\n',
        r"notation\.symbols: expected a table of strings",
    ),
    (
        "rotation-of-the-wrong-length",
        'problems = ["eigen_power"]\n[vary.eigen_power]\nW = { rotation = ["4/5"], '
        'eigenvalues = [{ min = 0, max = 1, step = 1 }, { min = 0, max = 1, step = 1 }] }\n',
        r"vary\.eigen_power\.W\.rotation: expected \[cos, sin\]",
    ),
]


@pytest.mark.parametrize(("case", "body", "message"), BAD, ids=[b[0] for b in BAD])
def test_malformed_set_files_fail_in_one_line(tmp_path, previous, capsys, case, body, message):
    path = _write(tmp_path, body)
    variants = ["--variants", "2"] if "vary" in body else []
    _refused(capsys, ["build", str(path), "--out", str(previous), "--format", "tex", *variants],
             message)
    _untouched(previous)


def test_a_dotted_key_of_many_parts_is_refused_before_parsing(tmp_path: Path) -> None:
    """tomllib's time grows with the square of a dotted key's parts: a few hundred
    kilobytes of ``a.a.a...`` took hours; the key is refused before tomllib reads it."""
    key = ".".join(["a"] * 200_000)
    path = _write(tmp_path, f'problems = ["momentum"]\n[params.momentum]\n{key} = 1\n')
    _cli_refused(
        ["build", str(path), "--out", str(tmp_path / "o"), "--format", "tex"],
        r"mine\.toml: line 7: a dotted key of more than 16 parts; tables nest at most 8",
    )
    text = HEAD + 'problems = ["momentum"]\n[params.momentum]\nx.' + ".".join("a" * 16) + " = 1\n"
    with pytest.raises(InputError, match=r"line 7: a dotted key of more than 16 parts"):
        parse_set(text, "mine.toml")


def test_the_deepest_valid_structure_is_within_the_bound() -> None:
    """vary.cnn_params.layers: versions of layer lists whose tables give kernel lists."""
    body = (
        'problems = ["cnn_params"]\n[vary.cnn_params]\nlayers = [[{ kind = "conv", '
        'kernel = [3, 5], out = 4 }, "fc-10"], ["conv3-8", "fc-10"]]\n'
    )
    depth = 6  # vary, cnn_params, layers, a version, a layer table, its kernel list
    assert depth <= MAX_DEPTH
    pset = parse_set(HEAD + body, "mine.toml")
    assert [v.pset.make_problem("cnn_params").net.total > 0 for v in versions(
        pset, numbered(2), "s")] == [True, True]


def test_a_vary_list_of_plain_decimals_builds_and_is_indexed(tmp_path: Path) -> None:
    body = 'problems = ["momentum"]\n[vary.momentum]\nbeta = [0.5, 0.75]\n'
    out = tmp_path / "o"
    args = ["build", str(_write(tmp_path, body)), "--out", str(out), "--format", "tex"]
    assert main([*args, "--variants", "2", "--jobs", "1"]) == 0
    rows = list(csv.DictReader((out / "mine" / "variants" / INDEX_NAME).open(encoding="utf-8")))
    # Decimals are indexed exactly, as written (text, not a binary float).
    assert sorted(json.loads(r["parameters"])["momentum"]["beta"] for r in rows) == ["0.5", "0.75"]


@pytest.mark.parametrize("kind", ["device", "fifo", "directory"])
def test_a_set_file_that_is_not_a_regular_file_is_refused(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "mine.toml"
    if kind == "device":
        path.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()
    why = "Is a directory" if kind == "directory" else r"not a regular file \(a pipe"
    args = ["build", str(path), "--out", str(tmp_path / "o")]
    _cli_refused(args, rf"set file .*mine\.toml: {why}")
    assert not (tmp_path / "o").exists()


def test_set_files_and_rosters_are_bounded_in_size(tmp_path: Path) -> None:
    path = tmp_path / "big.toml"
    path.write_bytes(b"#" * MAX_TEXT_BYTES + b"\n")
    with pytest.raises(InputError, match=r"big\.toml: larger than 1 MiB, the most it may be"):
        read_text(path, "set file")
    path.write_bytes(b"# ok\n" + b"#" * (MAX_TEXT_BYTES - 6) + b"\n")
    assert read_text(path, "set file").startswith("# ok")


def test_a_set_file_may_start_with_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_bytes(b"\xef\xbb\xbf" + (HEAD + 'problems = ["momentum"]\n').encode())
    assert main(["build", str(path), "--out", str(tmp_path / "o"), "--format", "tex"]) == 0


# -- defect 9 and the roster's rough edges ------------------------------------------------------
VARIED = 'problems = ["eigen_power"]\n[vary.eigen_power]\nn = { min = 3, max = 40 }\n'


@pytest.mark.parametrize(
    ("roster", "message"),
    [
        ("ada\nindex.csv\n", r"students: line 2: 'index\.csv' is not an allowed id; the variants "
         r"folder holds all-handouts\.pdf, all-keys\.pdf, index\.csv itself"),
        ("ada\nINDEX.CSV\n", r"students: line 2: 'INDEX\.CSV' is not an allowed id"),
        ("# class\nAlice\n\nalice\n", r"students: line 4: 'alice' and line 2: 'Alice' differ only "
         r"in case"),
        ("ada\n# again\nada\n", r"students: 'ada' appears more than once \(lines 1 and 3\)"),
    ],
    ids=["index", "index-in-capitals", "case", "twice"],
)
def test_roster_ids_that_collide_with_the_layout_or_each_other(tmp_path, capsys, roster, message):
    (tmp_path / "roster.txt").write_text(roster, encoding="utf-8")
    out = tmp_path / "o"
    args = ["build", str(_write(tmp_path, VARIED)), "--out", str(out), "--format", "tex"]
    _refused(capsys, [*args, "--students", str(tmp_path / "roster.txt")], message)
    assert not out.exists()  # refused before any version was built


def test_numbered_ids_pass_the_same_checks() -> None:
    check_students(numbered(1000))
    with pytest.raises(InputError, match=r"line 2: 'b' and line 1: 'B' differ only in case"):
        check_students(["B", "b"])


def test_a_roster_with_a_byte_order_mark_works(tmp_path: Path) -> None:
    roster = tmp_path / "roster.txt"
    roster.write_bytes(b"\xef\xbb\xbfada\r\nbob\r\n")
    assert read_roster(roster) == ["ada", "bob"]
    out = tmp_path / "o"
    args = ["build", str(_write(tmp_path, VARIED)), "--out", str(out), "--format", "tex"]
    assert main([*args, "--students", str(roster), "--jobs", "1"]) == 0
    assert (out / "mine" / "variants" / "ada" / "handout.tex").is_file()


def test_a_roster_that_is_a_fifo_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "roster.txt")
    path = _write(tmp_path, VARIED)
    roster = str(tmp_path / "roster.txt")
    _cli_refused(
        ["build", str(path), "--out", str(tmp_path / "o"), "--students", roster],
        r"--students: cannot read roster .*roster\.txt: not a regular file",
    )


# -- defect 11: two sets with one id ------------------------------------------------------------
def test_two_sets_with_one_id_are_refused(tmp_path, previous, capsys) -> None:
    a = _write(tmp_path, 'problems = ["momentum"]\n', name="a.toml")
    b = _write(tmp_path, 'problems = ["mdrnn"]\n', name="b.toml")
    err = _refused(
        capsys,
        ["build", str(a), str(b), "--out", str(previous), "--format", "tex"],
        r"b\.toml: id 'mine' is also the id of .*a\.toml; both would be built into .*out/mine/",
    )
    assert str(a) in err and str(previous / "mine") in err
    _untouched(previous)
    _refused(capsys, ["build", str(a), str(a), "--out", str(previous)], r"a\.toml: given twice")
    _untouched(previous)


# -- review mends ------------------------------------------------------------------------------
def test_layer_lists_count_once_per_question_they_pose() -> None:
    """Layer names as written differ; the networks, and so the questions, do not."""
    body = (
        'problems = ["cnn_params"]\n[vary.cnn_params]\nlayers = [["Conv3-64", "FC-10"], '
        '["conv3-64", "fc-10"], [" CONV3-64 ", "Fc-10"], ["conv3-32", "fc-10"]]\n'
    )
    options = plan(parse_set(HEAD + body, "mine.toml"))
    assert options[("cnn_params", "layers")] == [["Conv3-64", "FC-10"], ["conv3-32", "fc-10"]]


def test_a_dotted_name_inside_a_string_is_not_a_key() -> None:
    dotted = ".".join("abcdefghijklmnopqrstu")
    pset = parse_set(HEAD.replace('"Homework 2"', f'"see {dotted}"') + 'problems = ["mdrnn"]\n',
                     "mine.toml")
    assert pset.title == f"see {dotted}"


def test_a_tiny_decimal_names_both_bounds(tmp_path, previous, capsys) -> None:
    path = _write(tmp_path, 'problems = ["momentum"]\n[params.momentum]\nbeta = 1e-300\n')
    _refused(capsys, ["build", str(path), "--out", str(previous), "--format", "tex"],
             r"params\.momentum\.beta: '1E-300' is out of range; allowed are \|x\| <= 1000000 "
             r"with denominator <= 1000000$")
    _untouched(previous)


def test_a_byte_order_mark_on_standard_input_is_dropped(capsys, monkeypatch) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\xef\xbb\xbf{}")))
    _refused(capsys, ["grad", "lstm", "--input", "-"], r"input: missing key 'weights'")


def test_messages_do_not_repeat_endless_input(tmp_path, capsys) -> None:
    path = tmp_path / "in.json"
    keys = ["weights", "x", "h0", "c0", "dL_dh", "y" * 100_000]
    path.write_text(json.dumps(dict.fromkeys(keys, 1)), encoding="utf-8")
    err = _refused(capsys, ["grad", "lstm", "--input", str(path)], r"unknown key 'yyy")
    assert len(err) < 400
    toml = _write(tmp_path, 'problems = ["mdrnn"]\n[notation]\ntime = "' + "a" * 100_000 + '"\n')
    err = _refused(capsys, ["build", str(toml), "--format", "tex"], r"notation\.time: 'aaa")
    assert len(err) < 400


def test_a_message_names_a_path_with_double_spaces_as_it_is(tmp_path) -> None:
    from derive.readers import read_text

    missing = tmp_path / "my  set.toml"
    with pytest.raises(InputError, match=re.escape(f"cannot read set file {missing}")):
        read_text(missing, "set file")
    with pytest.raises(InputError, match=re.escape(f"cannot read {missing}")):
        read_text(missing, "")
