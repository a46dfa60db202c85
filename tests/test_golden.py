"""Golden outputs: the LaTeX and JSON of every bundled set, and of the README's set, as
stored in ``tests/golden/``.

A refactoring must not change what a student reads or what a script imports.  When a
change is meant (a fixed mistake, a better sentence), rebuild the copies with
``DERIVE_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py`` and say in the commit
message what changed in them and why.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
from pathlib import Path

import pytest

from derive.cli import main
from derive.sets import bundled

GOLDEN = Path(__file__).resolve().parent / "golden"
README = Path(__file__).resolve().parents[1] / "README.md"
UPDATE = os.environ.get("DERIVE_UPDATE_GOLDEN") == "1"
#: (format, handout?) -> the file a build writes.
OUTPUTS = {
    ("tex", False): "answer-key.tex",
    ("tex", True): "handout.tex",
    ("json", False): "derivations.json",
}


def _readme_set(folder: Path) -> Path:
    block = re.search(r"```toml\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    path = folder / "dl101_hw2.toml"
    path.write_text(block.group(1), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory, bundled_keys: Path) -> Path:
    """Every bundled set and the README's set, built once in each golden format (the
    bundled sets' keys are the session's, tests/conftest.py, copied beside the rest)."""
    root = tmp_path_factory.mktemp("golden")
    readme = str(_readme_set(root))
    for fmt, handout in OUTPUTS:
        sets = [readme] if (fmt, handout) == ("tex", False) else [*sorted(bundled()), readme]
        args = ["build", *sets, "--out", str(root / "out"), "--format", fmt]
        assert main([*args, "--handout"] if handout else args) == 0
    for name in bundled():
        shutil.copy(bundled_keys / name / OUTPUTS["tex", False], root / "out" / name)
    return root / "out"


NAMES = [*sorted(bundled()), "dl101_hw2"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("output", sorted(OUTPUTS.values()))
def test_output_matches_its_golden_copy(built: Path, name: str, output: str) -> None:
    got = (built / name / output).read_text(encoding="utf-8")
    stored = GOLDEN / name / output
    if UPDATE:
        stored.parent.mkdir(parents=True, exist_ok=True)
        stored.write_text(got, encoding="utf-8")
    want = stored.read_text(encoding="utf-8")
    if got != want:
        diff = difflib.unified_diff(want.splitlines(), got.splitlines(), "golden", "built",
                                    lineterm="", n=1)
        pytest.fail(f"{name}/{output} differs from its golden copy:\n" + "\n".join(
            list(diff)[:60]))


def test_every_golden_copy_is_still_built() -> None:
    stored = {p.relative_to(GOLDEN).as_posix() for p in GOLDEN.rglob("*") if p.is_file()}
    assert stored == {f"{n}/{o}" for n in NAMES for o in OUTPUTS.values()}
