"""The shape of the code that issue 12 set: thin problems on shared parts.

These fail when a change grows a problem module past what one reader takes in, writes a
function too long to read at once, lets a problem reach into another problem or into the
renderer, or writes a verification route a second time.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "derive"
PROBLEMS = PACKAGE / "problems"
MAX_PROBLEM_MODULE, MAX_FUNCTION = 400, 40


def _modules(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def _name(path: Path) -> str:
    return path.relative_to(PACKAGE.parent).as_posix()


def test_no_problem_module_is_longer_than_a_reader_takes_in() -> None:
    long = {_name(p): n for p in _modules(PROBLEMS)
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_PROBLEM_MODULE}
    assert long == {}


def test_no_function_is_longer_than_forty_lines() -> None:
    long = []
    for path in _modules(PACKAGE):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION:
                    long.append(f"{_name(path)}:{node.lineno} {node.name} ({lines} lines)")
    assert long == []


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def _problem_of(path: Path) -> str:
    rel = path.relative_to(PROBLEMS)
    return rel.parts[0].removesuffix(".py")


#: The registry imports every problem; it is no problem itself.
REGISTRY_MODULE = PROBLEMS / "__init__.py"


@pytest.mark.parametrize("path", [p for p in _modules(PROBLEMS) if p != REGISTRY_MODULE],
                         ids=_name)
def test_a_problem_imports_no_other_problem_and_no_renderer(path: Path) -> None:
    own = _problem_of(path)
    shared = {"base", "__init__"}
    bad = set()
    for module in _imports(path):
        if module.startswith("derive.render"):
            bad.add(module)
        elif module.startswith("derive.problems."):
            other = module.split(".")[2]
            # A cell problem builds on the shared recurrent base (recurrent_docs: what its
            # results are; recurrent_limit: a regime), as every problem on base.
            if other not in shared | {own, "recurrent", "recurrent_docs", "recurrent_limit"}:
                bad.add(module)
    assert bad == set()


#: What writes a complex step (an imaginary step's quotient) or a central difference.
ROUTE_FORMULAS = {
    "complex step": re.compile(r"np\.imag\(|\.imag\s*/"),
    "central difference": re.compile(r"/\s*\(\s*2\s*\*\s*h\b"),
}


@pytest.mark.parametrize("route", sorted(ROUTE_FORMULAS))
def test_each_verification_route_is_written_once(route: str) -> None:
    places = [_name(p) for p in _modules(PACKAGE)
              if ROUTE_FORMULAS[route].search(p.read_text(encoding="utf-8"))]
    assert places == ["derive/verify/routes.py"]
