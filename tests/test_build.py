"""Tests for building answer keys (``derive build``): JSON export, LaTeX and PDF outputs.

These run the real latexmk and pdflatex; the PDF is built once per module.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import derive.build
from derive.build import export_problem
from derive.cli import main
from derive.export import srepr
from derive.problems import get_problem
from derive.render.latex import Notation
from derive.render.pdf import pdf_text
from derive.sets import ProblemSet, get_set
from derive.verify import evidence_groups

REPO = Path(__file__).resolve().parents[1]
SET = "csc421_hw3"
WEIGHT_BARS = [f"w_{g}{s}_bar" for g in "ifog" for s in "xh"]
ACTIVATION_BARS = ["h_bar", "c_bar", "g_bar", "o_bar", "f_bar", "i_bar"]
CHECK_KEYS = {"claim", "method", "sizes", "max_rel_error", "tolerance", "passed", "detects"}
BROKEN = "\\documentclass{article}\\begin{document}\\undefinedmacro\\end{document}"


@pytest.fixture(scope="module")
def pdf_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pdf") / "out"
    assert main(["build", SET, "--out", str(out)]) == 0  # pdf is the default format
    return out / SET


@pytest.fixture(scope="module")
def exported_json(tmp_path_factory) -> bytes:
    """The JSON of ``SET`` as built in this process."""
    out = tmp_path_factory.mktemp("json") / "out"
    assert main(["build", SET, "--out", str(out), "--format", "json"]) == 0
    path = out / SET / "derivations.json"
    assert sorted(p.name for p in path.parent.iterdir()) == ["derivations.json"]
    return path.read_bytes()


@pytest.fixture(scope="module")
def exported(exported_json: bytes) -> dict:
    return json.loads(exported_json.decode("ascii"))


@pytest.fixture(scope="module")
def problem():
    return get_problem("lstm")


# -- JSON ----------------------------------------------------------------------------------------
def test_json_schema(exported: dict) -> None:
    assert set(exported) == {"format", "derive_version", "set", "title", "course", "source",
                             "problems"}
    assert exported["set"] == SET
    assert exported["title"] == "Written Homework 3"
    assert list(exported["problems"]) == list(get_set(SET).problems)
    lstm = exported["problems"]["lstm"]
    assert set(lstm) == {"title", "params", "results", "checks"}
    assert lstm["title"] == "LSTM gradient (backprop through time)"
    for key, result in lstm["results"].items():
        if key.startswith("example_"):  # documented, but this set gives no example
            assert set(result.values()) == {None}, key
            continue
        assert set(result) == {"latex", "sympy", "value", "exact", "text"}, key
        assert isinstance(result["latex"], str) and result["latex"], key
        assert isinstance(result["sympy"], str) and result["sympy"], key
    assert lstm["checks"], "no checks exported"
    for check in lstm["checks"]:
        assert set(check) == CHECK_KEYS
        assert isinstance(check["claim"], str) and isinstance(check["method"], str)
        assert isinstance(check["max_rel_error"], float)
        assert isinstance(check["tolerance"], float)
        assert isinstance(check["passed"], bool)


def _plain(value) -> bool:
    """Data JSON holds as it is: text, numbers, bools and null in lists and text-keyed tables."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, str | bool | int | float)


def test_every_problem_exports_its_results_and_checks(problem_key, problems) -> None:
    problem = problems[problem_key]
    pset = ProblemSet("one", "One", "Course", "test", (problem_key,), Notation())
    entry = export_problem(pset, problem)
    json.dumps(entry, allow_nan=False)  # no inf or nan: JSON has none
    assert set(entry) == {"title", "params", "results", "checks"}
    assert entry["title"] == problem.title
    # Derived keys first, then documented ones these parameters do not give (all null).
    assert list(entry["results"])[: len(problem.results)] == list(problem.results)
    for key, result in entry["results"].items():
        assert set(result) == {"latex", "sympy", "value", "exact", "text"}, key
        if key not in problem.results:
            assert set(result.values()) == {None}, key
            continue
        assert isinstance(result["latex"], str) and result["latex"], key
        assert result["sympy"] == srepr(problem.results[key].expr), key
        assert _plain(result["value"]), key
    assert len(entry["checks"]) == len(problem.checks) > 0
    for check in entry["checks"]:
        assert set(check) == CHECK_KEYS and check["claim"] in problem.results
        assert isinstance(check["method"], str) and isinstance(check["passed"], bool)
        assert isinstance(check["max_rel_error"], float) and isinstance(check["tolerance"], float)


def test_json_has_every_adjoint(exported: dict) -> None:
    results = exported["problems"]["lstm"]["results"]
    for key in [*ACTIVATION_BARS, *WEIGHT_BARS, "x_bar", "h0_bar", "c0_bar"]:
        assert key in results, key
    for key in [*ACTIVATION_BARS, *WEIGHT_BARS, "b_i_bar", "b_g_bar"]:
        assert f"vector_{key}" in results, key
    # The weight gradient is a sum over time of the gate adjoint times the input.
    assert "Sum" in results["w_ix_bar"]["sympy"]
    assert results["backward_map_limit"]["value"] == [[0, 0], [0, 1]]


def test_json_checks_all_pass(exported: dict) -> None:
    checks = exported["problems"]["lstm"]["checks"]
    assert len(checks) > 100
    failed = [c["claim"] for c in checks if not c["passed"]]
    assert failed == []
    for c in checks:
        assert 0 <= c["max_rel_error"] <= c["tolerance"], c["claim"]
    claims = {c["claim"] for c in checks}
    assert {"h_bar", "w_gh_bar", "vector_b_f_bar", "h_bar_limit", "c_bar_limit"} <= claims


def test_json_sympy_reads_back_as_the_derived_results(exported: dict, problem) -> None:
    results = exported["problems"]["lstm"]["results"]
    assert set(problem.results) <= set(results)
    for key, r in problem.results.items():
        assert results[key]["sympy"] == srepr(r.expr), key
        assert derive.from_export(results[key]["sympy"]) == r.expr, key


def test_json_latex_matches_a_fresh_derivation(exported: dict, problem) -> None:
    from derive.render.document import ordering
    from derive.render.latex import KeyPrinter
    from derive.sets import get_set

    printer = KeyPrinter(get_set(SET).notation, ordering(problem))
    results = exported["problems"]["lstm"]["results"]
    for key in [*ACTIVATION_BARS, *WEIGHT_BARS]:
        assert results[key]["latex"] == printer.doprint(problem.results[key].expr), key


def _json_build_in_subprocess(out: Path, seed: str) -> bytes:
    env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "derive", "build", SET, "--out", str(out), "--format", "json"]
    subprocess.run(cmd, cwd=REPO, env=env, check=True, capture_output=True)
    return (out / SET / "derivations.json").read_bytes()


@pytest.mark.slow
def test_json_is_identical_across_processes(tmp_path: Path, exported_json: bytes) -> None:
    # This process hashes strings with its own seed; the other with another one.
    seed = "2" if os.environ.get("PYTHONHASHSEED") == "1" else "1"
    assert _json_build_in_subprocess(tmp_path / "other", seed) == exported_json


# -- LaTeX -----------------------------------------------------------------------------------------
def test_two_tex_builds_are_byte_identical(tmp_path: Path, capsys, bundled_keys: Path) -> None:
    # The first build is the session's (every bundled set, in this process); this one again.
    assert main(["build", SET, "--out", str(tmp_path), "--format", "tex"]) == 0
    out, _ = capsys.readouterr()
    first = (bundled_keys / SET / "answer-key.tex").read_bytes()
    second = (tmp_path / SET / "answer-key.tex").read_bytes()
    assert out.splitlines() == [str(tmp_path / SET / "answer-key.tex")]
    assert first == second
    assert first.startswith(b"\\documentclass")
    assert first.rstrip().endswith(b"\\end{document}")


@pytest.mark.pdf
def test_tex_build_is_identical_in_another_process(tmp_path: Path, pdf_dir: Path) -> None:
    env = dict(os.environ, PYTHONHASHSEED="12345", PYTHONPATH=str(REPO))
    out = tmp_path / "other"
    cmd = [sys.executable, "-m", "derive", "build", SET, "--out", str(out), "--format", "tex"]
    subprocess.run(cmd, cwd=REPO, env=env, check=True, capture_output=True)
    # The PDF build also writes its source; it is the same as a tex-only build.
    assert (out / SET / "answer-key.tex").read_bytes() == (pdf_dir / "answer-key.tex").read_bytes()


# -- PDF -------------------------------------------------------------------------------------------
@pytest.mark.pdf
def test_pdf_build_writes_pdf_and_source(pdf_dir: Path) -> None:
    assert sorted(p.name for p in pdf_dir.iterdir()) == ["answer-key.pdf", "answer-key.tex"]
    data = (pdf_dir / "answer-key.pdf").read_bytes()
    assert data.startswith(b"%PDF-")
    assert b"/ID" in data


@pytest.mark.pdf
def test_two_pdf_builds_are_byte_identical(tmp_path: Path, pdf_dir: Path) -> None:
    assert main(["build", SET, "--out", str(tmp_path), "--format", "pdf"]) == 0
    again = (tmp_path / SET / "answer-key.pdf").read_bytes()
    assert again == (pdf_dir / "answer-key.pdf").read_bytes()
    assert (tmp_path / SET / "answer-key.tex").read_bytes() == (
        pdf_dir / "answer-key.tex"
    ).read_bytes()


@pytest.mark.pdf
def test_pdf_text_has_the_results(pdf_dir: Path, exported: dict) -> None:
    text = pdf_text(pdf_dir / "answer-key.pdf")
    for word in ("Written Homework 3", "Problem 1", "LSTM", "Verification", "pass", "Vector form"):
        assert word in text, word
    assert "FAIL" not in text
    # The evidence tables have one row per claim (a grid of claims and methods) or per
    # check (a list), each ending in its verdict "pass"; mild and saturated weights are
    # separate groups.  Problem 1 (the LSTM) runs up to the next problem's heading.
    lstm_text = text.split("Problem 2:")[0]
    rows = [line for line in lstm_text.splitlines() if re.search(r"\bpass\s*$", line)]
    problem = get_problem("lstm")
    groups = evidence_groups(problem.checks, problem.check_groups())
    expected = sum(len(g.claims) if g.pivot else len(g.checks) for g in groups)
    assert len(rows) == expected > 30


# -- LaTeX failure -------------------------------------------------------------------------------
@pytest.mark.pdf
def test_latex_failure_keeps_previous_pdf(tmp_path: Path, pdf_dir: Path, capsys, monkeypatch):
    out = tmp_path / "out"
    shutil.copytree(pdf_dir, out / SET)
    before = {p.name: p.read_bytes() for p in (out / SET).iterdir()}
    monkeypatch.setattr(derive.build, "render_page", lambda pset, body, **kw: BROKEN)
    status = main(["build", SET, "--out", str(out), "--format", "pdf"])
    stdout, err = capsys.readouterr()
    assert (status, stdout) == (4, "")
    assert err.startswith("derive: error: LaTeX failed")
    assert "Undefined control sequence" in err
    assert "Traceback" not in err
    after = {p.name: p.read_bytes() for p in (out / SET).iterdir()}
    assert after == before  # same files, same bytes: no debris, no half-written PDF


def test_latex_failure_patch_is_effective(tmp_path: Path, monkeypatch, capsys) -> None:
    """The broken source really reaches the tex output (so the patch above is live)."""
    monkeypatch.setattr(derive.build, "render_page", lambda pset, body, **kw: BROKEN)
    assert main(["build", SET, "--out", str(tmp_path), "--format", "tex"]) == 0
    assert (tmp_path / SET / "answer-key.tex").read_text(encoding="utf-8") == BROKEN


def test_a_problem_shared_by_sets_is_checked_once_per_run(tmp_path: Path, monkeypatch) -> None:
    from derive.problems.lstm import LSTM

    calls = []
    real = LSTM.verify
    monkeypatch.setattr(LSTM, "verify", lambda self: calls.append(1) or real(self))
    args = ["build", "csc421_hw3", "hw7", "--out", str(tmp_path), "--format", "tex"]
    assert main([*args, "--jobs", "1"]) == 0  # in this process, where the patch is seen
    assert len(calls) == 1


def test_parallel_builds_plan_one_job_per_distinct_problem() -> None:
    """Workers get one job per problem and parameters, listing every set that uses it."""
    from derive.build import _plan
    from derive.sets import get_set

    sets = [get_set("csc421_hw3"), get_set("hw7")]
    plan = _plan(sets, "pdf", False)
    lstm = [job for job in plan.values() if job.key == "lstm"]
    assert len(lstm) == 1
    assert [(s.id, n) for s, n in lstm[0].uses] == [("csc421_hw3", 1), ("hw7", 2)]
    assert len(plan) == len({(s.id, k) for s in sets for k in s.problems}) - 1


def test_workers_start_early_only_for_two_or_more_problems(tmp_path: Path, monkeypatch) -> None:
    # A set of one problem is derived in this process: starting the worker server for it
    # cost a third of a second per build.  Two distinct problems start it early.
    from derive import workers
    from derive.cli import _jobs_at_least_two
    from derive.sets import bundled

    started = []
    monkeypatch.setattr(workers, "warm_up", lambda: started.append(True))
    one = tmp_path / "one.toml"
    one.write_text('id = "one"\ntitle = "T"\ncourse = "C"\nsource = "s"\nproblems = ["momentum"]\n')
    assert main(["build", str(one), "--out", str(tmp_path / "a"), "--format", "tex"]) == 0
    assert started == []
    two = tmp_path / "two.toml"
    two.write_text(one.read_text().replace('["momentum"]', '["momentum", "mdrnn"]'))
    twice = tmp_path / "twice.toml"  # one problem with two sets of parameters: two jobs
    twice.write_text(one.read_text().replace('id = "one"', 'id = "twice"') +
                     '[params.momentum]\nbeta = "0.5"\n')
    assert _jobs_at_least_two([str(two)]) and _jobs_at_least_two([str(one), str(twice)])
    assert not _jobs_at_least_two([str(one), str(one)])
    # No names: every bundled set, each of which holds two problems or more.
    assert _jobs_at_least_two([]) and all(len(p.problems) >= 2 for p in bundled().values())


def test_a_build_runs_under_a_temporary_folder_too_long_for_a_socket(tmp_path: Path) -> None:
    """The forkserver's socket lives in multiprocessing's temporary folder; under a TMPDIR
    of 90 characters its path passed the 107 bytes AF_UNIX allows and the build died with
    an internal error."""
    long = tmp_path / ("t" * max(1, 90 - len(str(tmp_path))))
    long.mkdir()
    assert len(str(long)) >= 90
    run = subprocess.run(
        [sys.executable, "-m", "derive", "build", "lmu_ex5", "--out", str(tmp_path / "out"),
         "--format", "tex"], capture_output=True, text=True, timeout=600,
        env={**os.environ, "TMPDIR": str(long)}, check=False)
    assert run.returncode == 0, run.stderr[-800:]
    assert (tmp_path / "out" / "lmu_ex5" / "answer-key.tex").is_file()
    assert list(long.iterdir()) == []
