"""The benchmark harness runs on tiny sizes and reports every section (no timing asserted:
the machine is shared and noisy; the numbers themselves are the harness's business)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import gradient
from benchmarks.config import Config
from benchmarks.run import SECTIONS, main
from benchmarks.timing import fmt

REPO = Path(__file__).resolve().parents[1]


def _numbers(value):
    """Every number inside a JSON value."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int | float):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)
    else:
        for v in value:
            yield from _numbers(v)


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> tuple[str, dict]:
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, json.loads(out.read_text(encoding="utf-8"))


def test_json_has_every_section_with_finite_numbers(quick) -> None:
    _, doc = quick
    assert doc["quick"] is True
    assert list(doc["sections"]) == list(SECTIONS)
    for key, section in doc["sections"].items():
        assert section["rows"], key
        measured = [r["value"] for r in section["rows"] if r["value"] is not None]
        assert measured, f"{key}: no measured value"
        assert all(math.isfinite(v) for v in _numbers(section)), key
        for row in section["rows"]:
            assert row["met"] in (True, False, None), row
            # A row with a target and a measurement says whether it met it.
            if row["value"] is not None and row["target"] != "-":
                assert isinstance(row["met"], bool), row


def test_table_prints_every_row(quick) -> None:
    stdout, doc = quick
    assert "benchmark" in stdout and "target" in stdout
    for section in doc["sections"].values():
        assert section["title"] in stdout
        for row in section["rows"]:
            assert row["name"] in stdout
    met = [r["met"] for s in doc["sections"].values() for r in s["rows"] if r["met"] is not None]
    assert f"targets met: {sum(met)} of {len(met)}" in stdout


def test_gradient_runs_without_peers(tmp_path, monkeypatch) -> None:
    # As on a machine without the bench extra: derive's own times, "not installed" rows.
    monkeypatch.setattr(gradient, "why_missing", lambda name: f"not installed: {name}")
    rows, data = gradient.run(Config(quick=True, work=tmp_path))
    missing = [r for r in rows if r.value is None]
    assert [r.detail for r in missing] == ["not installed: jax", "not installed: torch"]
    own = [r for r in rows if r.name.endswith(": derive")]
    assert len(own) == 4  # T = 10, 100; one sequence and a batch
    assert all(r.unit == "s" and r.value > 0 for r in own)
    assert data["worst_disagreement"]["batch"] <= gradient.BATCH_AGREE


def test_unknown_section_is_refused(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--only", "nope"])
    assert exc.value.code == 2
    assert "unknown section 'nope'" in capsys.readouterr().err


def test_formats() -> None:
    assert fmt(0.0123, "s") == "12.3 ms"
    assert fmt(2.5e-5, "s") == "25 us"
    assert fmt(4.0, "s") == "4 s"
    assert fmt(1.234, "x") == "1.23x"
    assert fmt(3e-14, "rel") == "3.0e-14"
    assert fmt(None, "s") == "n/a"
