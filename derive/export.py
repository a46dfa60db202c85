"""The JSON export, ``derive build SET --format json`` -> ``derivations.json``: a contract.

The file (validated by the JSON Schema ``derive/schema/derivations.schema.json``)::

    {"format": 1, "derive_version", "set", "title", "course", "source",
     "problems": {PROBLEM: {"title", "params", "results": {KEY: RESULT}, "checks": [CHECK]}}}

Every result key a problem documents (``Problem.result_docs``, written out in
``docs/results.md``) is present in every export; a key that does not apply to the
parameters (eigen_power's ``given_*`` without ``given_Q``) has every field null.  A RESULT:

* ``latex``: the result as the key typesets it;
* ``sympy``: the result as SymPy text, which ``derive.from_export`` reads back into the
  same expression with SymPy and derive alone;
* ``value``: the result as numbers: a number, a boolean, null, or a list or an object of
  these, nested; never a string;
* ``exact``: null, or the same nesting as ``value`` holding, where ``value`` does not hold
  a number exactly, its SymPy text: a rational float64 rounds ("6/5"), an integer or real
  beyond float64's range ("1.0e+400", value null), an irrational ("sqrt(2)") or a formula
  ("4*G*H**2", value null);
* ``text``: null, or the same nesting as ``value`` holding labels that are no numbers
  (a layer's name, a unit's name; value null).

So a leaf's exact value is its ``exact`` text where that is not null, else its ``value``.
A CHECK has ``claim`` (the result key), ``method``, ``sizes``, ``max_rel_error``,
``tolerance`` and ``passed``, and may carry more fields.  The file holds no time stamp:
two builds of a set are byte-identical.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from functools import cache
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import mpmath
import sympy as sp
from sympy.core.function import AppliedUndef, UndefinedFunction
from sympy.printing.repr import ReprPrinter

#: The version of this contract; it grows when a field changes meaning or goes away.
FORMAT = 1
#: Magnitudes float64 holds to full precision: 2.2e-308 (2^-1022) to 1.8e308.
FLOAT64_TINY, FLOAT64_MAX = sys.float_info.min, sys.float_info.max


# -- sympy: a repr that reads back --------------------------------------------------------------
class ExportPrinter(ReprPrinter):
    """SymPy's ``srepr``, but faithful for derive's own classes: a cell's quantity prints as
    ``quantity_class(name, role)(step)`` and a vector quantity with its name, role and step,
    where ``srepr`` prints the names that only order terms (``Function('bar:c')``)."""

    printmethod = "_derive_export"  # past VectorQuantity._sympyrepr (the ordering name)

    def _print_Add(self, expr, order=None) -> str:
        return self._unevaluated(expr)

    def _print_Mul(self, expr, order=None) -> str:
        return self._unevaluated(expr)

    def _print_Pow(self, expr) -> str:
        return self._unevaluated(expr)

    def _unevaluated(self, expr) -> str:
        # Read back as stored: SymPy would reorder (or fold) the arguments of a sum, a
        # product or a power built with evaluate=False, such as one in the author's order.
        args = ", ".join(self._print(a) for a in expr.args)
        return f"{type(expr).__name__}({args}, evaluate=False)"

    def _print_Function(self, expr) -> str:
        from derive.engine.cell import Quantity

        if isinstance(expr, Quantity):
            args = ", ".join(self._print(a) for a in expr.args)
            return f"{self._print_FunctionClass(expr.func)}({args})"
        return super()._print_Function(expr)

    def _print_FunctionClass(self, expr) -> str:
        from derive.engine.cell import Quantity

        if issubclass(expr, Quantity):
            return f"quantity_class({expr.quantity!r}, {expr.role!r})"
        return super()._print_FunctionClass(expr)


def srepr(expr: Any) -> str:
    """``expr`` as the export's ``sympy`` text (``from_export`` reads it back)."""
    return ExportPrinter().doprint(expr)


@cache
def namespace() -> dict[str, Any]:
    """Every name a ``sympy`` text of the export uses: SymPy's public names, every SymPy
    class (``Str``, ``ElementwiseApplyFunction``), derive's own classes (``sigma``,
    ``VectorQuantity``, ``BigO``) and ``quantity_class``.

    Raises ``RuntimeError`` if two of derive's classes share a name, or one shadows SymPy's.
    """
    # Every problem's classes (derive.problems), a defined map's and a defined network's
    # (not in the registry).
    import derive.problems.feedforward_ce
    import derive.problems.momentum.defined  # noqa: F401
    from derive.engine.cell import quantity_class

    out = {name: getattr(sp, name) for name in dir(sp) if not name.startswith("_")}
    ours: dict[str, type] = {}
    others: dict[str, set[type]] = {}
    for cls in _subclasses(sp.Basic):
        if issubclass(cls, AppliedUndef) or isinstance(cls, UndefinedFunction):
            continue  # undefined functions print as Function('f')
        module = sys.modules.get(cls.__module__ or "")
        if getattr(module, cls.__qualname__, None) is not cls:
            continue  # made on the fly (resnet_bn's generic functions): no name to find it by
        if (cls.__module__ or "").startswith("derive"):
            if cls.__name__ in ours or cls.__name__ in out:
                raise RuntimeError(f"two classes named {cls.__name__!r}: srepr cannot tell")
            ours[cls.__name__] = cls
        else:
            others.setdefault(cls.__name__, set()).add(cls)
    out |= {n: next(iter(c)) for n, c in others.items() if len(c) == 1 and n not in out}
    return out | ours | {"quantity_class": quantity_class}


def _subclasses(cls: type) -> list[type]:
    """Every subclass of ``cls`` once (a class with two SymPy bases is met twice)."""
    out, todo = {}, [cls]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in out:
                out[sub] = None
                todo.append(sub)
    return list(out)


def from_export(text: str) -> Any:
    """The SymPy expression of an export's ``sympy`` text (derive's own output).

    Like ``sympy.srepr``'s text, it is Python that is evaluated: read only files derive
    wrote.  Sums, products and powers carry ``evaluate=False``, so the expression is the
    exported one, argument for argument.
    """
    return eval(text, {"__builtins__": {}}, dict(namespace()))


# -- value, exact, text ---------------------------------------------------------------------------
def split_value(value: Any) -> tuple[Any, Any, Any]:
    """A result's ``value`` as the export's ``(value, exact, text)``: numbers, their exact
    SymPy text where a float does not hold them, and labels; see the module's docstring.

    ``value`` may hold SymPy objects (numbers, formulas, matrices, booleans, sets),
    mpmath reals, Python numbers, booleans and None, and text labels, in lists, tuples and
    text-keyed dicts.
    """
    tree = _map(value, _leaf)
    parts = tuple(_map(tree, lambda t, i=i: t[i], leaf=tuple) for i in range(3))
    return parts[0], *(p if _any(p) else None for p in parts[1:])


def _map(x: Any, f: Any, leaf: type | None = None) -> Any:
    if leaf is not None and isinstance(x, leaf):
        return f(x)
    if isinstance(x, dict):
        return {str(k): _map(v, f, leaf) for k, v in x.items()}
    if isinstance(x, sp.MatrixBase):
        return [_map(row, f, leaf) for row in x.tolist()]
    if isinstance(x, list | tuple | sp.Tuple):
        return [_map(v, f, leaf) for v in x]
    return f(x)


def _any(tree: Any) -> bool:
    if isinstance(tree, dict):
        return any(_any(v) for v in tree.values())
    if isinstance(tree, list):
        return any(_any(v) for v in tree)
    return tree is not None


def _leaf(x: Any) -> tuple[Any, str | None, str | None]:
    """(number or None, exact text or None, label or None) of one leaf."""
    if x is None or isinstance(x, bool):
        return x, None, None
    if isinstance(x, sp.logic.boolalg.BooleanAtom):
        return bool(x), None, None
    if isinstance(x, str):
        return None, None, x
    if isinstance(x, int):
        return (x, None, None) if abs(x) <= FLOAT64_MAX else (None, str(x), None)
    if isinstance(x, float | mpmath.mpf | sp.Float):
        return _real(x)
    if isinstance(x, sp.Basic) and x.is_number and x.is_real:
        return _exact(x)
    if isinstance(x, sp.Basic):
        return None, sp.sstr(x), None  # a formula, a set: SymPy's text
    raise TypeError(f"a result's value holds {type(x).__name__} {x!r}: not exportable")


def _real(x: Any) -> tuple[float | None, str | None, None]:
    """A measured or rounded real: a float when float64 holds it, else 17 digits."""
    if isinstance(x, float) and not math.isfinite(x):
        raise ValueError(f"a result's value holds {x}: JSON has no inf or nan")
    with mpmath.workdps(30):  # an mpmath value keeps its own digits; a float is exact
        m = x if isinstance(x, mpmath.mpf) else mpmath.mpf(x if isinstance(x, float) else str(x))
        if m == 0 or FLOAT64_TINY <= abs(m) <= FLOAT64_MAX:
            return float(m), None, None
        return None, mpmath.nstr(m, 17, min_fixed=1, max_fixed=0), None


def _exact(x: sp.Expr) -> tuple[int | float | None, str | None, None]:
    """An exact real number: itself when an int or float holds it exactly, else its
    nearest float (None beyond float64's range) and its exact text."""
    if x.is_Integer and abs(x) <= FLOAT64_MAX:
        return int(x), None, None
    if x.is_Rational and abs(x) <= FLOAT64_MAX and sp.Rational(float(x)) == x:
        return float(x), None, None
    near = sp.N(x, 20)
    value = float(near) if FLOAT64_TINY <= abs(near) <= FLOAT64_MAX else None
    return value, sp.sstr(x), None


# -- the document ---------------------------------------------------------------------------------
def export_result(result: Any, printer: Any) -> dict[str, Any]:
    """One result's entry: ``latex``, ``sympy``, ``value``, ``exact``, ``text``."""
    value, exact, text = split_value(result.value)
    return {"latex": printer.doprint(result.expr), "sympy": srepr(result.expr),
            "value": value, "exact": exact, "text": text}


#: A documented result that does not apply to the parameters: every field null.
ABSENT = {"latex": None, "sympy": None, "value": None, "exact": None, "text": None}


def export_problem(pset: Any, problem: Any) -> dict[str, Any]:
    """One problem's entry: title, the parameters the set gives it, results (every
    documented key, derived ones first), checks."""
    from derive.params import plain_data
    from derive.render.document import ordering
    from derive.render.latex import KeyPrinter

    printer = KeyPrinter(pset.notation, ordering(problem))  # the key's order of terms
    results = {key: export_result(r, printer) for key, r in problem.results.items()}
    # Stable keys are present always (null where they do not apply); a key about a source
    # only where the set declares it; one with a {placeholder} (dL_dW_T{T}) is always derived.
    docs = [k for k in type(problem).result_docs() if k not in problem.SOURCE_RESULTS]
    results |= {key: dict(ABSENT) for key in docs if key not in results and "{" not in key}
    return {
        "title": problem.title,
        "params": plain_data(pset.params.get(problem.key, {})),
        "results": results,
        "checks": [c.as_dict() for c in problem.checks],
    }


def version() -> str:
    """derive's version: the installed distribution's, else the package's."""
    try:
        return metadata.version("derive-keys")
    except metadata.PackageNotFoundError:
        from derive import __version__

        return __version__


def document(pset: Any, entries: dict[str, dict]) -> dict[str, Any]:
    """The whole file's data: the set, its course and source, derive's version, problems."""
    return {"format": FORMAT, "derive_version": version(), "set": pset.id, "title": pset.title,
            "course": pset.course, "source": pset.source, "problems": entries}


def json_bytes(pset: Any, entries: dict[str, dict]) -> bytes:
    """``derivations.json``'s bytes (ASCII, keys in a fixed order, no time stamp)."""
    text = json.dumps(document(pset, entries), indent=2, ensure_ascii=True, allow_nan=False)
    return (text + "\n").encode()


# -- the schema and the result keys' documentation ---------------------------------------------
def schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) every ``derivations.json`` satisfies."""
    path = resources.files("derive") / "schema" / "derivations.schema.json"
    return json.loads(path.read_text(encoding="utf-8"))


DOCS_HEAD = """\
# Result keys of `derivations.json`

Generated from each problem's `RESULTS` by `python -m derive.export --docs docs/results.md`
(a test fails when this file is stale).  Every key below is present in every export of its
problem; a key marked "null unless ..." has every field null when it does not apply.  The
fields of a result (`latex`, `sympy`, `value`, `exact`, `text`) and of a check are
described in README.md ("The JSON contract") and in `derive/schema/derivations.schema.json`.
"""


def results_markdown() -> str:
    """docs/results.md: every registered problem's result keys and what each is."""
    from derive.model.indexed import INDEXED_RESULT_DOCS
    from derive.model.moments import MOMENTS_RESULT_DOCS
    from derive.problems import REGISTRY
    from derive.problems.momentum.defined import MAP_RESULT_DOCS

    parts = [DOCS_HEAD]
    for key, cls in REGISTRY.items():
        parts.append(_docs_section(f"`{key}`: {cls.title}", cls.result_docs()))
    parts.append(_docs_section('A map defined in a set file (`kind = "map"`; `{x}` stands '
                               "for each state's name)", MAP_RESULT_DOCS))
    parts.append(_docs_section('Random variables defined in a set file (`kind = "moments"`; '
                               "`{r}` stands for each random variable, `{y}` for each "
                               "quantity of `moments`)", MOMENTS_RESULT_DOCS))
    parts.append(_docs_section('Arrays in index notation defined in a set file (`kind = '
                               '"indexed"`; `{t}` stands for each equation\'s target, `{a}` '
                               "for each array whose gradient is derived, `{y}` for the last "
                               "target)", INDEXED_RESULT_DOCS))
    return "".join(parts)


def _docs_section(heading: str, docs: dict[str, str]) -> str:
    rows = [f"| `{k}` | {v.replace('|', '/')} |" for k, v in docs.items()]
    return f"\n## {heading}\n\n| key | what it is |\n|---|---|\n" + "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m derive.export --docs PATH``: write the result keys' documentation."""
    parser = argparse.ArgumentParser(prog="python -m derive.export")
    parser.add_argument("--docs", metavar="PATH", required=True, type=Path,
                        help="write the result keys' documentation (docs/results.md) here")
    args = parser.parse_args(argv)
    args.docs.write_text(results_markdown(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
