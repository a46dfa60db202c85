"""Fuzzing the command line end to end: set files, rosters and ``derive grad`` input.

Each example runs ``derive`` in this process on generated input, beside earlier outputs, and
checks what a user would see: an exit status of 0 to 4 (never 70, a bug, nor an escaped
exception), nothing but one ``derive: error:`` line on standard error when it fails, and the
earlier outputs byte-identical unless the run succeeded (then only its own set's folder may
change).  Seeded and bounded, so CI runs the same examples every time in a few tens of
seconds.  The parse-level properties are in ``test_set_fuzz.py``; these reach every stage.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import QUIZ, snapshot
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from test_set_fuzz import set_files

from derive.cli import main


def fuzz(examples: int) -> settings:
    """Seeded, bounded settings: the same examples on every run."""
    return settings(
        derandomize=True,
        database=None,
        deadline=None,
        max_examples=examples,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


#: Problems that derive and render in well under a second: the end-to-end examples build
#: them for real (the slow ones are fuzzed at the parse level).
CHEAP = ["momentum", "mdrnn", "cnn_params", "binary_adder", "eigen_power"]
OLD = b"an earlier run's output\n"
STATUSES = {0, 1, 2, 3, 4}


def _earlier(out: Path) -> dict[str, bytes]:
    """Earlier outputs in ``out``: a folder under the id most generated sets have, and one
    under another id; returns the snapshot to compare with."""
    for folder in ("mine", "quiz", "other"):
        (out / folder).mkdir(parents=True, exist_ok=True)
        (out / folder / "answer-key.tex").write_bytes(OLD)
        (out / folder / "variants").mkdir(exist_ok=True)
        (out / folder / "variants" / "index.csv").write_bytes(OLD)
    return snapshot(out)


def _run(capsys, args: list[str]) -> tuple[int, str, str]:
    status = main(args)
    out, err = capsys.readouterr()
    event(f"exit {status}")  # the mix of outcomes: pytest --hypothesis-show-statistics
    assert status in STATUSES, err
    assert "Traceback" not in err
    if status:
        assert err.startswith("derive: error: ") and err.count("\n") == 1, err
    return status, out, err


def _changed(before: dict[str, bytes], after: dict[str, bytes]) -> set[str]:
    keys = set(before) | set(after)
    return {k.split("/")[0] for k in keys if before.get(k) != after.get(k)}


def _fresh(tmp_path: Path, name: str) -> Path:
    """An empty folder for one example (Hypothesis reuses the test's tmp_path)."""
    folder = tmp_path / name
    if folder.exists():
        for p in sorted(folder.rglob("*"), reverse=True):
            p.rmdir() if p.is_dir() and not p.is_symlink() else p.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# -- set files ----------------------------------------------------------------------------------
@pytest.mark.parametrize("focus", CHEAP)
@fuzz(25)
@given(data=st.data())
def test_any_set_file_builds_or_fails_cleanly(tmp_path, capsys, focus, data) -> None:
    work = _fresh(tmp_path, "work")
    text = data.draw(set_files(focus), label="set file")
    variants = data.draw(st.sampled_from([None, None, None, 2]), label="variants")
    (work / "fuzz.toml").write_text(text, encoding="utf-8")
    out = work / "out"
    before = _earlier(out)
    args = ["build", str(work / "fuzz.toml"), "--out", str(out), "--format", "tex"]
    args += ["--jobs", "1"] if variants is None else ["--variants", str(variants), "--jobs", "1"]
    status, stdout, _ = _run(capsys, args)
    changed = _changed(before, snapshot(out))
    if status in (0, 1):  # built (1: a check failed, and the key says so)
        assert len(changed) <= 1
        assert all(line.startswith(str(out)) for line in stdout.splitlines())
    else:
        assert changed == set()


# -- rosters ------------------------------------------------------------------------------------
_valid_ids = st.sampled_from(["alice", "bob", "carol", "v01", "Dave-2", "e.f_g"])
_tricky_ids = st.one_of(
    st.sampled_from(["Alice", "index.csv", "INDEX.CSV", ".hidden", "a/b", "..", "-x", "a b",
                     "é", "x" * 65, "# comment", ""]),
    st.text(st.characters(codec="utf-8"), max_size=12),
)


@st.composite
def _ids(draw: st.DrawFn) -> str:
    return draw(_valid_ids if draw(st.integers(0, 5)) < 5 else _tricky_ids)


@st.composite
def rosters(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(_ids(), max_size=4, unique=draw(st.booleans())))
    end = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    text = end.join(lines)
    raw = text.encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        raw = b"\xef\xbb\xbf" + raw
    if draw(st.sampled_from([False] * 9 + [True])):
        raw += b"\xff\xfe not utf-8"
    return raw


@pytest.mark.slow
@fuzz(50)
@given(roster=rosters())
def test_any_roster_builds_or_fails_cleanly(tmp_path, capsys, roster: bytes) -> None:
    work = _fresh(tmp_path, "work")
    (work / "quiz.toml").write_text(QUIZ, encoding="utf-8")
    (work / "roster.txt").write_bytes(roster)
    out = work / "out"
    before = _earlier(out)
    args = ["build", str(work / "quiz.toml"), "--students", str(work / "roster.txt")]
    status, _, _ = _run(capsys, [*args, "--out", str(out), "--format", "tex", "--jobs", "1"])
    changed = _changed(before, snapshot(out))
    assert changed <= ({"quiz"} if status == 0 else set())


# -- derive grad input --------------------------------------------------------------------------
_extreme = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.sampled_from([1e308, -1e308, 5e-324, 1e-320, 10**309]),
)
_numbers = st.one_of(st.floats(min_value=-3, max_value=3), st.integers(-3, 3))


@st.composite
def _number(draw: st.DrawFn) -> float | int:
    """Moderate 19 times in 20, so that some inputs hold only valid numbers."""
    return draw(_numbers if draw(st.integers(0, 19)) < 19 else _extreme)


_leaves = st.one_of(_number(), st.booleans(), st.none(), st.text(max_size=5))
_values = st.recursive(
    _leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner,
                                                                        max_size=3),
    max_leaves=12,
)
WEIGHTS = {
    "lstm": ["w_ix", "w_ih", "w_fx", "w_fh", "w_ox", "w_oh", "w_gx", "w_gh"],
    "gru": ["w_zx", "w_zh", "w_rx", "w_rh", "w_nx", "w_nh"],
}


def _sequence(draw: st.DrawFn, steps: int) -> object:
    return draw(st.one_of(st.lists(_number(), min_size=steps, max_size=steps), _values))


@st.composite
def grad_inputs(draw: st.DrawFn, problem: str) -> str:
    """JSON for ``derive grad``: mostly the right keys with numbers of every kind, sometimes
    anything at all, sometimes not JSON."""
    kind = draw(st.sampled_from(["scalar"] * 6 + ["vector", "anything", "text"]))
    if kind == "text":
        return draw(st.sampled_from(["", "{", "NaN", "[" * 2000, '{"x": Infinity}',
                                     '{"weights": 1e999}', "\ufeff{}"]))
    if kind == "anything":
        return json.dumps(draw(_values))
    steps = draw(st.integers(1, 4))
    if kind == "scalar":
        weights = {w: draw(_number()) for w in WEIGHTS[problem]}
    else:  # matrices of a random size, biases sometimes
        n = draw(st.integers(1, 3))
        weights = {w: [[draw(_number()) for _ in range(n)] for _ in range(n)]
                   for w in WEIGHTS[problem]}
    data: dict = {"weights": weights, "x": _sequence(draw, steps), "h0": draw(_number()),
                  "dL_dh": _sequence(draw, steps)}
    if problem == "lstm":
        data["c0"] = draw(_number())
    if draw(st.sampled_from([False] * 4 + [True])):
        data[draw(st.sampled_from(["weights", "x", "h0", "extra"]))] = draw(_values)
    try:
        return json.dumps(data, allow_nan=False)
    except (ValueError, OverflowError):
        return "{}"


@pytest.mark.parametrize("problem", sorted(WEIGHTS))
@fuzz(60)
@given(data=st.data())
def test_any_grad_input_gives_numbers_or_fails_cleanly(tmp_path, capsys, problem, data) -> None:
    text = data.draw(grad_inputs(problem), label="input")
    backend = data.draw(st.sampled_from(["numpy", "numpy", "auto"]), label="backend")
    path = tmp_path / "input.json"
    path.write_text(text, encoding="utf-8")
    status, out, _ = _run(capsys, ["grad", problem, "--input", str(path), "--backend", backend])
    assert status in (0, 2)
    if status == 0:  # finite numbers only: JSON has no inf or nan
        result = json.loads(out, parse_constant=lambda name: pytest.fail(f"{name} in output"))
        assert set(result) >= {"h", "grad", "backend"}
