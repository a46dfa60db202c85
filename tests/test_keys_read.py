"""The bundled keys as a student reads them: nothing runs into the margin, and the prose
speaks of the mathematics, never of the software that made it.

Each key's LaTeX is compiled with pdflatex (twice, for the longtables) in a folder of the
test's, and its log read for overfull lines: the measurable form of "runs off the page".
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import sympy as sp

from derive.problems import get_problem
from derive.problems.mdrnn import i, j, step_rule_violations
from derive.render.pdf import find_engine
from derive.sets import bundled

SETS = sorted(bundled())
#: Words by which a key would talk about the tool instead of the mathematics.
SELF_TALK = re.compile(r"\bengine\b|\\texttt\{derive\}|\bderive does\b|\bthe key\b|\(the result\b",
                       re.IGNORECASE)


@pytest.mark.pdf
@pytest.mark.skipif(find_engine() is None, reason="needs pdflatex")
@pytest.mark.parametrize("name", SETS)
def test_no_line_runs_into_the_margin(bundled_keys: Path, name: str, tmp_path: Path) -> None:
    folder = tmp_path  # pdflatex writes beside the source: not into the shared keys
    shutil.copy(bundled_keys / name / "answer-key.tex", folder)
    for _ in range(2):
        subprocess.run(
            ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape",
             "answer-key.tex"],
            cwd=folder, capture_output=True, check=True, timeout=120,
        )
    log = (folder / "answer-key.log").read_text(encoding="utf-8", errors="replace")
    widths = [float(w) for w in re.findall(r"^Overfull \\hbox \(([\d.]+)pt too wide\)", log, re.M)]
    assert [w for w in widths if w > 1.0] == []


@pytest.mark.parametrize("name", SETS)
def test_the_prose_never_speaks_of_the_tool(bundled_keys: Path, name: str) -> None:
    lines = (bundled_keys / name / "answer-key.tex").read_text(encoding="utf-8").splitlines()
    talk = [line for line in lines if SELF_TALK.search(line) and "pdfcreator" not in line]
    assert talk == []


def test_the_backward_map_names_an_entry_it_contains() -> None:
    """dc/dc of the LSTM holds dh/dc whole: printed as that partial derivative, and the
    same expression once it is put back."""
    lstm = get_problem("lstm")
    entries = lstm._map_entries()
    jac = lstm.results["backward_map"].expr
    named = {sp.Derivative(r, c): jac[k // 2, k % 2] for k, (r, c, _) in enumerate(entries)}
    assert any(e.has(sp.Derivative) for _, _, e in entries)
    for k, (_, _, e) in enumerate(entries):
        assert sp.expand(e.xreplace(named) - jac[k // 2, k % 2]) == 0


def test_the_step_rule_rejects_a_wrong_schedule() -> None:
    assert step_rule_violations(i + j - 1) == 0
    assert step_rule_violations(i + j) > 0  # the first square would be at step 2
    assert step_rule_violations(sp.Max(i, j)) > 0  # a square would not wait for both
