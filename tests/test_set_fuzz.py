"""Property: any TOML document, parsed as a set file, gives a set or one line of InputError.

Documents are generated over the real keys (top-level fields, every problem's parameters,
``[vary]`` specs and generators, notation, labels) with random values of every TOML kind:
integers small, at the 64-bit edges and far beyond, decimals, number-like and other strings,
booleans, dates, arrays and nested tables, deep nesting.  A set that parses is also asked for
its variants plan and each problem's instance, the other entry points a set file's data
reaches.  Nothing else may come out: no TypeError, ValueError, RecursionError, and no
message of two lines.  Seeded (``derandomize``) so a run is reproducible.
"""

from __future__ import annotations

import datetime
import json
import tomllib
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from derive.errors import InputError
from derive.params import to_toml
from derive.problems import REGISTRY
from derive.problems.recurrent import RecurrentProblem
from derive.sets import _KEYS, parse_set
from derive.variants import plan

PROBLEMS = sorted(REGISTRY)
PARAMS = {key: [p.name for p in cls.PARAMS] for key, cls in REGISTRY.items()}


def _example(key: str) -> dict:
    """A valid worked example for the recurrent problem ``key``, from its cell's names."""
    cell = REGISTRY[key].CELL
    return {
        "weights": {w: "1/4" for w in cell.weights},
        "x": [1, Decimal("-0.5")],
        **{f"{s}0": Decimal("0.1") for s in cell.states},
        **{f"dL_d{v}": [1, -2] for v in cell.loss_on},
    }


#: Valid raw values of parameters without a default (for the others: the default).
SAMPLES = {
    **{(key, "example"): _example(key) for key, cls in REGISTRY.items()
       if issubclass(cls, RecurrentProblem)},
    ("eigen_power", "given_Q"): [["4/5", "-3/5"], ["3/5", "4/5"]],
    ("eigen_power", "given_Lambda"): [Decimal("0.5"), 1],
    ("binary_adder", "example"): [19, 23],
    ("binary_adder", "given_weights"): {
        "U": [[1, 1]] * 3, "W": [[0, 1, 0]] * 3, "b_h": ["-0.5", "-1.5", "-2.5"],
        "V": [1, -1, 1], "b_y": "-0.5",
    },
    ("cnn_params", "defaults"): {"conv_padding": 1, "pool_stride": 2},
    ("pixelcnn_mdrnn", "pixel"): [4, 4],
}


#: A valid ``[vary.eigen_power] W`` generator table.
GENERATOR = {
    "eigenvalues": [
        {"min": "0.1", "max": "0.5", "step": "0.1"},
        {"min": Decimal("0.6"), "max": Decimal("1.4"), "step": Decimal("0.2")},
    ],
    "rotation": ["4/5", "3/5"],
}


def _valid(key: str, name: str) -> object:
    if (key, name) in SAMPLES:
        return SAMPLES[key, name]
    default = next(p.default for p in REGISTRY[key].PARAMS if p.name == name)
    return tomllib.loads("v = " + to_toml(default), parse_float=Decimal)["v"]


# -- a TOML writer for generated data (inline tables only: always valid TOML) -----------------
class Raw(str):
    """TOML text put in as it is (huge integers, deep nesting: what no writer would emit)."""


def toml_value(value: object) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | datetime.date):
        return str(value) if isinstance(value, int) else value.isoformat()
    if isinstance(value, Decimal):
        return str(value) if value.is_finite() else {"Infinity": "inf"}.get(str(value), "nan")
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }"
    raise TypeError(type(value))


def toml_string(text: str) -> str:
    # JSON's escapes are TOML's, but for characters beyond the BMP (surrogate pairs in JSON)
    # and DEL (which JSON leaves as it is): keep those literal, and escape DEL.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_document(data: dict) -> str:
    return "".join(f"{toml_string(k)} = {toml_value(v)}\n" for k, v in data.items())


# -- values ---------------------------------------------------------------------------------------
EDGES = [0, 1, -1, 2, 3, 200, 201, 10**6, 10**6 + 1, 2**63 - 1, 2**63, -(2**63) - 1, 10**30]
NUMBER_TEXT = ["3/5", "-0.25", "1e-3", "1/0", "0.5", "1/2", "1e999", "0x10", "", " ", "nan"]
DECIMALS = ["0.5", "0.1", "-2.5", "1e5", "1e-400", "1e400", "inf", "-inf", "nan", "0.0", "3.0"]
#: Text the parser must reject in one line, not by a traceback or a hang.
HOSTILE = [
    "9" * 5000,  # beyond Python's int digit limit
    "[" * 40 + "]" * 40,  # deeper than any set file
    "[" * 400 + "]" * 400,  # deep enough to exhaust a recursive walk
    "{ a = " * 30 + "1" + " }" * 30,
    "{ " + ".".join(["a"] * 40) + " = 1 }",  # a dotted key: tomllib's cost is its square
    "{ " + ".".join(["a"] * 8) + " = 1 }",
    "1." + "1" * 200,
    "1e-99999",
]

ints = st.one_of(st.integers(-5, 300), st.sampled_from(EDGES), st.integers())
decimals = st.one_of(
    st.sampled_from(DECIMALS).map(Raw),
    st.decimals(allow_nan=False, allow_infinity=False, places=3).map(lambda d: Raw(f"{d:f}"))
    .filter(lambda t: "." in t or t.lstrip("-").isdigit()),
)
texts = st.one_of(
    st.sampled_from(NUMBER_TEXT),
    st.sampled_from(["conv3-16", "maxpool2", "fc-10", "lstm", "superscript", "w_{ix}", "a\nb"]),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=12),
)
scalars = st.one_of(
    ints, decimals, texts, ints, decimals, texts, st.booleans(), st.dates(),
    st.sampled_from(HOSTILE).map(Raw),
)
real_keys = st.sampled_from(
    sorted({*_KEYS, *(n for ns in PARAMS.values() for n in ns), "min", "max", "step"})
)
keys = st.one_of(
    real_keys, real_keys, real_keys, st.text(st.characters(exclude_categories=("Cs",)), max_size=6)
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def mutated(draw: st.DrawFn, value: object, depth: int = 0) -> object:
    """``value`` with a few of its parts replaced, dropped, added or wrapped."""
    move = draw(st.sampled_from(["keep"] * 2 + ["inside"] * 4 + ["replace", "wrap"]))
    if move == "replace" or (move == "inside" and depth > 4):
        return draw(values)
    if move == "wrap":
        return [value]
    if move == "inside" and isinstance(value, dict) and value:
        out = dict(value)
        key = draw(st.sampled_from(sorted(out)))
        if draw(st.booleans()):
            out[key] = draw(mutated(out[key], depth + 1))
        elif draw(st.booleans()):
            del out[key]
        else:
            out[draw(keys)] = draw(values)
        return out
    if move == "inside" and isinstance(value, list) and value:
        out = list(value)
        i = draw(st.integers(0, len(out) - 1))
        if draw(st.booleans()):
            out[i] = draw(mutated(out[i], depth + 1))
        elif draw(st.booleans()):
            del out[i]
        else:
            out.append(out[i])
        return out
    return value


def param_value(key: str, name: str) -> st.SearchStrategy:
    """Mostly a near-valid value of the parameter, sometimes anything."""
    return st.one_of(mutated(_valid(key, name)), mutated(_valid(key, name)), values)


def vary_value(key: str, name: str) -> st.SearchStrategy:
    """A near-valid ``[vary]`` entry: a list of (mutated) valid values, a (mutated) range,
    a (mutated) generator table, or anything."""
    valid = _valid(key, name)
    kinds = [st.lists(mutated(valid), max_size=4), mutated([valid, valid]), vary_spec]
    if isinstance(valid, int | str | Decimal):
        kinds.append(mutated({"min": valid, "max": valid, "step": "1/10"}))
        kinds.append(mutated({"min": valid, "max": valid}))
    if (key, name) == ("eigen_power", "W"):
        kinds += [mutated(GENERATOR)] * 3
    return st.one_of(*kinds)


@st.composite
def problem_table(draw: st.DrawFn, key: str, value) -> dict:
    names = draw(st.lists(st.sampled_from(PARAMS[key] or ["x"]), max_size=3, unique=True))
    out = {n: draw(value(key, n)) if n in PARAMS[key] else draw(values) for n in names}
    if not draw(st.sampled_from([True] * 9 + [False])):
        out[draw(keys)] = draw(values)
    return out


# -- set files over the real structure -----------------------------------------------------------
def _per_problem(names: list[str], field: st.SearchStrategy) -> st.SearchStrategy:
    return st.dictionaries(
        st.sampled_from(names or ["lstm"]) | keys, st.one_of(field, values), max_size=3
    )


@st.composite
def _tables(draw: st.DrawFn, problems: list[str], value) -> object:
    """``[params]`` or ``[vary]``: a table for the first problem of the set, perhaps for
    others (sometimes for a problem not in the set, or not a table at all)."""
    if not draw(st.sampled_from([True] * 9 + [False])):
        return draw(values)
    names = [problems[0], *draw(st.lists(st.sampled_from(problems), max_size=2, unique=True))]
    names = list(dict.fromkeys(names))
    if not draw(st.sampled_from([True] * 9 + [False])):
        names.append(draw(keys))
    return {
        n: draw(problem_table(n, value)) if n in PARAMS else draw(values) for n in names
    }


range_specs = st.fixed_dictionaries(
    {"min": st.one_of(ints, decimals, texts), "max": st.one_of(ints, decimals, texts)},
    optional={"step": st.one_of(ints, decimals, texts), "by": ints},
)
generator_specs = st.fixed_dictionaries(
    {},
    optional={
        "eigenvalues": st.one_of(st.lists(range_specs, max_size=3), values),
        "rotation": st.one_of(st.lists(st.one_of(ints, decimals, texts), max_size=3), values),
    },
)
vary_spec = st.one_of(st.lists(values, max_size=4), range_specs, generator_specs, values)


def _mostly(draw: st.DrawFn, usual: object, other: st.SearchStrategy) -> object:
    """``usual`` nine times in ten, else a value of ``other``: most documents get past the
    top-level fields to the parameters."""
    return usual if draw(st.sampled_from([True] * 9 + [False])) else draw(other)


@st.composite
def set_files(draw: st.DrawFn, focus: str) -> str:
    """A set file whose first problem is ``focus``, its params and vary mostly about it."""
    others = draw(st.lists(st.sampled_from(PROBLEMS), max_size=2, unique=True))
    problems = list(dict.fromkeys([focus, *others]))
    data: dict = {
        "id": _mostly(draw, "mine", values),
        "title": _mostly(draw, "T", values),
        "course": "C",
        "source": "S",
        "problems": _mostly(draw, problems, values),
    }
    optional = {
        "params": _tables(problems, param_value),
        "vary": _tables(problems, vary_value),
        "notation": st.one_of(
            st.fixed_dictionaries(
                {}, optional={"time": st.one_of(texts, values), "symbols": values}
            ),
            values,
        ),
        "labels": _per_problem(
            [p for p in problems if REGISTRY[p].LABELS],
            st.dictionaries(st.sampled_from(["adjoints", "weights", "compare"]) | keys, values),
        ),
        "out_of_scope": st.one_of(st.lists(texts, max_size=2), values),
    }
    for key, strategy in optional.items():
        if draw(st.booleans() if key not in ("params", "vary") else st.just(True)):
            data[key] = draw(strategy)
    if not draw(st.sampled_from([True] * 19 + [False])):
        data[draw(keys)] = draw(values)
    return toml_document(data)


def _one_line_or_result(call) -> object:
    try:
        return call()
    except InputError as exc:
        text = str(exc)
        assert text and "\n" not in text and "\r" not in text, repr(text)
        assert "Traceback" not in text
        return None


@pytest.mark.parametrize("focus", PROBLEMS)
@settings(
    derandomize=True,
    database=None,
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(data=st.data())
def test_any_set_file_parses_or_fails_in_one_line(focus: str, data: st.DataObject) -> None:
    text = data.draw(set_files(focus), label="set file")
    pset = _one_line_or_result(lambda: parse_set(text, "fuzz.toml"))
    if pset is None:
        return
    options = _one_line_or_result(lambda: plan(pset)) or {}
    for key in pset.problems:
        _one_line_or_result(lambda key=key: pset.make_problem(key))
    # The first candidate of every varied parameter, as a version would get it.
    drawn: dict = {}
    for (key, name), values_ in options.items():
        drawn.setdefault(key, dict(pset.params.get(key, {})))[name] = values_[0]
    for key, given_ in drawn.items():
        _one_line_or_result(lambda key=key, given_=given_: REGISTRY[key].from_params(given_))


def test_the_generator_reaches_valid_sets() -> None:
    """The property above is only worth something if some documents get past parse_set."""
    text = toml_document(
        {
            "id": "mine",
            "title": "T",
            "course": "C",
            "source": "S",
            "problems": ["eigen_power"],
            "vary": {"eigen_power": {"n": [3, 4]}},
        }
    )
    assert parse_set(text, "x").vary == {"eigen_power": {"n": [3, 4]}}


# -- systematic: every single edit of valid data, through every entry point -----------------------
#: Values of the wrong kind (or at an edge) put in place of each part of valid data.
WRONG = [
    [], {}, [[]], [{}], [1, 2], [[1, 2], [3]], {"a": 1}, {"min": 1}, 0, -1, 3, 2**63 - 1,
    -(2**63), True, False, "", " ", "x", "1/0", "3/5", Decimal("0.5"), Decimal("2.5"),
    Decimal("1e30"), Decimal("nan"), Decimal("-inf"), datetime.date(2020, 1, 1),
]


def _paths(tree: object, path: tuple = ()) -> list[tuple]:
    """The path of every part of ``tree`` below its root."""
    out = []
    if isinstance(tree, dict):
        items = list(tree.items())
    else:
        items = list(enumerate(tree)) if isinstance(tree, list) else []
    for key, item in items:
        out.append((*path, key))
        out += _paths(item, (*path, key))
    return out


def _edit(tree: object, path: tuple, new: object) -> object:
    """A copy of ``tree`` with the part at ``path`` replaced by ``new`` (deleted for DROP,
    doubled for TWICE)."""
    if not path:
        return new
    copy = dict(tree) if isinstance(tree, dict) else list(tree)
    head, rest = path[0], path[1:]
    if rest:
        copy[head] = _edit(copy[head], rest, new)
    elif new is DROP:
        del copy[head]
    elif new is TWICE:
        copy.insert(head, copy[head]) if isinstance(copy, list) else None
    else:
        copy[head] = new
    return copy


DROP, TWICE = object(), object()


#: Fewer wrong values deep inside (a matrix entry, a weight): the same parsers read them.
WRONG_DEEP = [[], {}, "x", "1/0", True, Decimal("nan"), 2**63 - 1]


def _edits(tree: object) -> list[object]:
    return [
        _edit(tree, p, new)
        for p in _paths(tree)
        for new in [*(WRONG if len(p) < 3 else WRONG_DEEP), DROP, TWICE]
    ]


def _given(key: str) -> dict:
    return {name: _valid(key, name) for name in PARAMS[key]}


@pytest.mark.parametrize("key", PROBLEMS)
def test_every_edit_of_valid_parameters_is_built_or_refused_in_one_line(key: str) -> None:
    cls = REGISTRY[key]
    assert cls.from_params(_given(key)) is not None  # the unedited data is valid
    for given_ in [*_edits(_given(key)), *({n: w} for n in PARAMS[key] for w in WRONG)]:
        _one_line_or_result(lambda given_=given_: cls.from_params(given_))


def _vary_specs(key: str) -> dict[str, object]:
    out = {}
    for p in REGISTRY[key].PARAMS:
        valid = _valid(key, p.name)
        out[p.name] = [valid, valid]
        if p.generate is not None:
            out[p.name + " (generator)"] = GENERATOR
        if isinstance(valid, int | str | Decimal) and not isinstance(valid, bool):
            out[p.name + " (range)"] = {"min": valid, "max": valid, "step": "1/10"}
    return out


@pytest.mark.parametrize("key", PROBLEMS)
def test_every_edit_of_a_valid_vary_entry_is_planned_or_refused_in_one_line(key: str) -> None:
    from derive.variants import candidates, identity

    params = {p.name: p for p in REGISTRY[key].PARAMS}
    for label, spec in _vary_specs(key).items():
        param = params[label.split(" ")[0]]
        built = set()
        where = f"vary.{key}.{param.name}"
        for edited in [spec, *_edits(spec), *WRONG]:
            found = _one_line_or_result(lambda p=param, e=edited, w=where: candidates(p, e, w))
            for value in found or []:  # a version gets it: its problem is built (once per value)
                if identity(value) not in built:
                    built.add(identity(value))
                    given_ = {param.name: value}
                    _one_line_or_result(lambda g=given_: REGISTRY[key].from_params(g))


#: A valid set file using every top-level field.
DOCUMENT = {
    "id": "mine",
    "title": "T",
    "course": "C",
    "source": "S",
    "problems": ["lstm", "mdrnn", "eigen_power"],
    "out_of_scope": ["5-4"],
    "notation": {"time": "subscript", "symbols": {"w_ix": "w_{xi}"}},
    "labels": {"lstm": {"adjoints": "(a)"}, "mdrnn": {"compare": "(c)"}},
    "params": {"eigen_power": {"n": 12}, "mdrnn": {"grid": 4}},
    "vary": {
        "eigen_power": {
            "n": {"min": 3, "max": 5},
            "W": {"eigenvalues": [{"min": 0, "max": "1/2", "step": "1/2"}] * 2},
        }
    },
}


def test_every_edit_of_a_valid_set_file_parses_or_is_refused_in_one_line() -> None:
    assert len(plan(parse_set(toml_document(DOCUMENT), "x"))[("eigen_power", "W")]) == 4
    for path in _paths(DOCUMENT):
        for new in [*WRONG, DROP, TWICE]:
            edited = toml_document(_edit(DOCUMENT, path, new))
            pset = _one_line_or_result(lambda e=edited: parse_set(e, "x.toml"))
            if pset is not None and path[0] == "vary":
                _one_line_or_result(lambda p=pset: plan(p))
