"""The JSON export as a contract (``derive/export.py``): values are numbers, with exact
values and labels in fields of their own; every ``sympy`` text reads back with SymPy and
derive alone; every export satisfies the schema the package ships; every result key is
documented from one source (each problem's ``RESULTS``), and the generated docs are current.

The exports checked are the golden copies of every bundled set and of the README's set:
``tests/test_golden.py`` asserts they are byte for byte what a build writes now.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import jsonschema
import mpmath
import pytest
import sympy as sp

import derive
from derive.build import make_problems
from derive.export import export_problem, results_markdown, schema, split_value
from derive.params import plain_data
from derive.problems import REGISTRY
from derive.problems.recurrent import RecurrentProblem
from derive.render.latex import Notation
from derive.sets import ProblemSet, bundled, parse_set

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
DOCS = ROOT / "docs" / "results.md"


def _readme_set() -> ProblemSet:
    block = re.search(r"```toml\n(.*?)```", (ROOT / "README.md").read_text("utf-8"), re.S)
    return parse_set(block.group(1), "README.md")


@pytest.fixture(scope="module")
def sets() -> dict[str, ProblemSet]:
    return {**bundled(), "dl101_hw2": _readme_set()}


@pytest.fixture(scope="module")
def exports(sets) -> dict[str, dict]:
    """Each set's ``derivations.json`` as stored (and as built: see the module docstring)."""
    out = {name: json.loads((GOLDEN / name / "derivations.json").read_text("ascii"))
           for name in sets}
    assert len(out) == len(bundled()) + 1 >= 6
    return out


@pytest.fixture(scope="module")
def set_problems(sets) -> dict[str, dict]:
    """Each set's problems with the set's parameters (derived, not checked)."""
    cache: dict = {}
    return {name: {p.key: p for p in make_problems(s, cache)} for name, s in sets.items()}


def _validator() -> jsonschema.Draft202012Validator:
    jsonschema.Draft202012Validator.check_schema(schema())
    return jsonschema.Draft202012Validator(schema())


# -- the schema ------------------------------------------------------------------------------------
def test_the_schema_ships_inside_the_package() -> None:
    path = resources.files("derive") / "schema" / "derivations.schema.json"
    assert path.is_file()
    assert json.loads(path.read_text("utf-8"))["$schema"].endswith("/draft/2020-12/schema")
    # The wheel carries the package folder whole (pyproject's packages = ["derive"]).
    assert 'packages = ["derive"]' in (ROOT / "pyproject.toml").read_text("utf-8")


def test_every_export_satisfies_the_schema(exports) -> None:
    validator = _validator()
    for name, data in exports.items():
        errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(data)]
        assert errors == [], name


def test_every_problem_exports_to_the_schema(problem_key, problems) -> None:
    """Every registered problem, bundled or not (gru, mgu), as part of a set of its own."""
    pset = ProblemSet("one", "One", "Course", "test", (problem_key,), Notation())
    data = json.loads(derive.export.json_bytes(pset, {problem_key: export_problem(
        pset, problems[problem_key])}))
    assert list(_validator().iter_errors(data)) == []


def test_the_schema_refuses_a_string_value_and_a_missing_field(exports) -> None:
    data = json.loads(json.dumps(exports["lmu_ex5"]))
    validator = _validator()
    data["problems"]["eigen_power"]["results"]["Lambda"]["value"][1][1] = "9/10"
    assert not validator.is_valid(data)
    data = json.loads(json.dumps(exports["lmu_ex5"]))
    del data["problems"]["eigen_power"]["results"]["Lambda"]["exact"]
    assert not validator.is_valid(data)


# -- value, exact, text ---------------------------------------------------------------------------
def _leaves(tree, path=()):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from _leaves(v, (*path, i))
    else:
        yield path, tree


def _at(tree, path):
    for step in path:
        tree = tree[step]
    return tree


def test_exact_and_text_follow_the_value_leaf_for_leaf(exports) -> None:
    strings = 0
    for data in exports.values():
        for problem in data["problems"].values():
            for key, r in problem["results"].items():
                value = list(_leaves(r["value"]))
                assert all(not isinstance(v, str) for _, v in value), key
                for field in ("exact", "text"):
                    if r[field] is not None:
                        assert [p for p, _ in _leaves(r[field])] == [p for p, _ in value], key
                for path, exact in _leaves(r["exact"]) if r["exact"] is not None else ():
                    strings += exact is not None
                    _agrees(exact, _at(r["value"], path), key)
                for path, text in _leaves(r["text"]) if r["text"] is not None else ():
                    assert text is None or _at(r["value"], path) is None, key
    assert strings > 90  # the matrices of fractions, the formulas, the huge numbers


def _agrees(exact: str | None, value, key: str) -> None:
    """An exact text next to a number is that number (to float64's rounding)."""
    if exact is None or value is None:
        return
    number = sp.sympify(exact)  # our own output: a number's text, as "6/5" or "sqrt(2)"
    assert float(number) == pytest.approx(value, rel=1e-15), key


def test_the_lmu_matrices_are_numbers_with_exact_fractions_beside(exports) -> None:
    lam = exports["lmu_ex5"]["problems"]["eigen_power"]["results"]["Lambda"]
    assert lam["value"] == [[0.4, 0], [0, 0.9]]
    assert lam["exact"] == [["2/5", None], [None, "9/10"]]
    assert lam["text"] is None
    layers = exports["cse891_hw3"]["problems"]["cnn_params"]["results"]["layers"]
    assert layers["value"][0] == {"name": None, "output_shape": [224, 224, 64], "params": 1792}
    assert layers["text"][0]["name"] == "conv3-64/p1/s1"
    ops = exports["csc421_hw3"]["problems"]["mdrnn"]["results"]["boundary_saving"]
    assert (ops["value"], ops["exact"]) == (None, "4*G*H**2")


def test_split_value_sorts_each_kind_of_leaf() -> None:
    big = sp.Integer(10) ** 400
    with mpmath.workdps(30):  # as the measurements are kept: more digits than a float's
        far = mpmath.mpf(10) ** 1200
    got = split_value({"q": sp.Rational(6, 5), "half": sp.Rational(-1, 2), "n": 3, "big": big,
                       "far": far, "f": sp.Symbol("G") ** 2, "ok": sp.true,
                       "name": "h_1", "m": sp.Matrix([[1, sp.Rational(1, 3)]])})
    value, exact, text = got
    assert value == {"q": 1.2, "half": -0.5, "n": 3, "big": None, "far": None, "f": None,
                     "ok": True, "name": None, "m": [[1, pytest.approx(1 / 3, rel=1e-16)]]}
    assert exact == {"q": "6/5", "half": None, "n": None, "big": "1" + "0" * 400,
                     "far": "1.0e+1200", "f": "G**2", "ok": None, "name": None,
                     "m": [[None, "1/3"]]}
    assert text == {**dict.fromkeys(value), "name": "h_1", "m": [[None, None]]}
    assert split_value([1.5, True]) == ([1.5, True], None, None)


# -- sympy: read back with SymPy and derive alone --------------------------------------------------
def test_every_bundled_sympy_text_reads_back_as_the_result(exports, set_problems) -> None:
    count = 0
    for name, problems in set_problems.items():
        for key, problem in problems.items():
            exported = exports[name]["problems"][key]["results"]
            for k, r in problem.results.items():
                assert derive.from_export(exported[k]["sympy"]) == r.expr, (name, key, k)
                count += 1
    # Every sympy text of every export was read back (the rest are keys that do not apply).
    assert count == sum(r["sympy"] is not None for data in exports.values()
                        for p in data["problems"].values() for r in p["results"].values())


def test_every_problem_sympy_text_reads_back(problem_key, problems) -> None:
    problem = problems[problem_key]
    pset = ProblemSet("one", "One", "Course", "test", (problem_key,), Notation())
    exported = export_problem(pset, problem)["results"]
    for k, r in problem.results.items():
        assert derive.from_export(exported[k]["sympy"]) == r.expr, k


def test_sympy_alone_cannot_read_a_quantity_but_derive_can(exports) -> None:
    """What ``derive.from_export`` is for: derive's own classes (here the cell's quantities)."""
    text = exports["hw7"]["problems"]["lstm"]["results"]["c0_bar"]["sympy"]
    assert "quantity_class('c', 'adjoint')" in text
    with pytest.raises(NameError):
        eval(text, {"__builtins__": {}}, {n: getattr(sp, n) for n in dir(sp)})  # our own text
    back = derive.from_export(text)
    assert {(q.quantity, q.role) for q in back.atoms(sp.Function)} == {("c", "adjoint"),
                                                                       ("f", "value")}


# -- the file's data ---------------------------------------------------------------------------
def test_the_file_names_its_set_course_source_parameters_and_version(exports, sets) -> None:
    for name, data in exports.items():
        pset = sets[name]
        assert (data["set"], data["course"], data["source"]) == (pset.id, pset.course,
                                                                 pset.source)
        assert data["format"] == 1 and data["derive_version"] == derive.export.version()
        for key, problem in data["problems"].items():
            assert problem["params"] == plain_data(pset.params.get(key, {})), (name, key)
    assert exports["dl101_hw2"]["problems"]["eigen_power"]["params"]["n"] == 12
    assert exports["dl101_hw2"]["problems"]["momentum"]["params"]["beta"] == "0.8"


def test_a_key_that_does_not_apply_is_present_and_null(exports) -> None:
    """The README's eigen_power states no decomposition: given_decomposition_ok is null."""
    results = exports["dl101_hw2"]["problems"]["eigen_power"]["results"]
    assert results["given_decomposition_ok"] == dict.fromkeys(
        ("latex", "sympy", "value", "exact", "text"))
    assert exports["lmu_ex5"]["problems"]["eigen_power"]["results"][
        "given_decomposition_ok"]["value"] is False


# -- every key documented, from one source ------------------------------------------------------
def test_the_result_docs_are_current() -> None:
    assert DOCS.read_text("utf-8") == results_markdown(), (
        "docs/results.md is stale: python -m derive.export --docs docs/results.md")


def _example(cls: type[RecurrentProblem]) -> dict:
    spec = cls.CELL
    return {"weights": {w: "1/4" for w in spec.weights}, "x": [1, -1],
            **{f"{s}0": 0 for s in spec.states}, **{f"dL_d{v}": [1, 1] for v in spec.loss_on}}


def _documented(docs: dict[str, str], key: str) -> bool:
    patterns = [re.escape(d).replace(r"\{T\}", r"\d+") for d in docs if "{" in d]
    return key in docs or any(re.fullmatch(p, key) for p in patterns)


def test_every_result_key_is_documented_and_every_documented_key_derived(
    problems, set_problems
) -> None:
    seen: dict[str, set[str]] = {key: set() for key in REGISTRY}  # and each set's models
    instances = [*problems.values(), *(p for s in set_problems.values() for p in s.values())]
    instances += [cls.from_params({"example": _example(cls)}) for cls in REGISTRY.values()
                  if issubclass(cls, RecurrentProblem)]
    # The official hw7 weights, given as data to check (the bundled sets declare them as a
    # source instead): the given_* keys.
    stated = {"U": [[1, 1]] * 3, "W": [[0, 1, 0]] * 3, "b_h": ["-0.5", "-1.5", "-2.5"],
              "V": [1, -1, 1], "b_y": "-0.5"}
    instances.append(REGISTRY["binary_adder"].from_params({"given_weights": stated}))
    for p in instances:
        docs = p.result_docs()
        undocumented = [k for k in p.results if not _documented(docs, k)]
        assert undocumented == [], p.key
        seen.setdefault(p.key, set()).update(p.results)
    for key, cls in REGISTRY.items():
        never = [d for d in cls.result_docs() if not any(_documented({d: ""}, k)
                                                         for k in seen[key])]
        assert never == [], key
        assert all(line.strip() for line in cls.result_docs().values()), key
