"""Bad ``[models.<name>]`` tables in a set file: each is refused in one line that names the
field and what is allowed (``derive.errors.InputError``, exit 2), before anything is written.

The equation-level mistakes (a parse error, an undeclared name, a state read at its own step,
...) are in tests/test_model_equations.py; these are the set file's: the table's own keys
(kind, title, noun, roles, limit), its place in the set (names, ``problems``), what the grammar
refuses of a whole cell (cycles, unused names, the vector form's shapes), and a few
equation bounds seen through a set file.  Some go through ``derive build`` as a user runs it.
"""

from __future__ import annotations

import pytest
from conftest import HEAD, key_tex, set_file, snapshot

from derive.cli import main
from derive.errors import InputError
from derive.sets import parse_set

WHERE = "mine.toml"
F = "f = sigma(w_fx*x + w_fh*h[t-1] + b_f)"
N = "n = tanh(w_nx*x + w_nh*(f*h[t-1]) + b_n)"
H = "h = (1 - f)*h[t-1] + f*n"
#: The issue's minimal gated unit, each key as TOML text.
MGU = {
    "kind": '"recurrent"', "title": '"Minimal gated unit"', "inputs": '["x"]',
    "states": '["h"]', "weights": '["w_fx", "w_fh", "w_nx", "w_nh"]',
    "biases": '["b_f", "b_n"]', "loss_on": '["h"]', "equations": None,
}


def eqs(*equations: str) -> str:
    return "[" + ", ".join(f'"{e}"' for e in equations) + "]"


MGU["equations"] = eqs(F, N, H)


def model(name: str = "mgu", problems: str = '["mgu"]', extra: str = "", **changes) -> str:
    """A set file posing model ``name``: the MGU with ``changes`` (TOML text; None drops
    the key), ``extra`` set-file text before the model's table."""
    table = {**MGU, **changes}
    lines = "".join(f"{k} = {v}\n" for k, v in table.items() if v is not None)
    return f"{HEAD}problems = {problems}\n{extra}\n[models.{name}]\n{lines}"


TOP = 'id = "mine"\ntitle = "T"\ncourse = "C"\nsource = "s"\n'
M = "mine.toml: models.mgu"
#: (id, set file, a fragment the one-line message must hold).
BAD = [
    # -- kind and the words of the key
    ("kind-typo", model(kind='"recurent"'),
     f"{M}.kind: expected one of 'recurrent', 'map', 'graph', 'moments', 'indexed', "
     "got 'recurent'"),
    ("kind-missing", model(kind=None), f"{M}.kind: missing; expected one of 'recurrent'"),
    ("kind-number", model(kind="3"),
     f"{M}.kind: expected one of 'recurrent', 'map', 'graph', 'moments', 'indexed', got 3"),
    ("title-missing", model(title=None), f"{M}.title: missing; expected a non-empty string"),
    ("title-blank", model(title='"  "'), f"{M}.title: expected a non-empty string, got '  '"),
    ("title-number", model(title="5"), f"{M}.title: expected a non-empty string, got 5"),
    ("title-long", model(title='"' + "a" * 121 + '"'),
     f"{M}.title: expected one line of text of at most 120 characters"),
    ("title-newline", model(title='"a\\nb"'), f"{M}.title: expected one line of text"),
    ("title-outside-the-gate", model(title='"A \u2603 cell"'),
     f"{M}.title: expected one line of text of at most 120 characters"),
    ("noun-long", model(noun='"' + "u" * 121 + '"'),
     f"{M}.noun: expected one line of text of at most 120 characters"),
    ("noun-empty", model(noun='""'), f"{M}.noun: expected a non-empty string, got ''"),
    ("unknown-key", model(equation='["h = x"]'),
     f"{M}.equation: unknown key; allowed are kind, title, noun, roles, limit, inputs"),
    # -- roles
    ("roles-missing-one", model(roles='{ f = "a forget gate" }'),
     f"{M}.roles: no role for n, h; give every assigned variable one, or none"),
    ("roles-unassigned", model(roles='{ f = "a", n = "b", h = "c", q = "d" }'),
     f"{M}.roles.q: not an assigned variable; assigned are f, n, h"),
    ("roles-an-input", model(roles='{ f = "a", n = "b", h = "c", x = "d" }'),
     f"{M}.roles.x: not an assigned variable"),
    ("roles-not-a-table", model(roles='"gates"'),
     f"{M}.roles: expected a table giving each of f, n, h a role in words"),
    ("role-not-text", model(roles='{ f = 3, n = "b", h = "c" }'),
     f"{M}.roles.f: expected a non-empty string, got 3"),
    ("role-outside-the-gate", model(roles='{ f = "a \u2603", n = "b", h = "c" }'),
     f"{M}.roles.f: expected one line of text"),
    # -- the regime the key analyses
    ("limit-unassigned", model(limit="{ q = 0 }"),
     f"{M}.limit.q: 'q' is not a variable the cell assigns; allowed are f, n"),
    ("limit-not-a-table", model(limit="3"),
     f"{M}.limit: expected a table such as {{ f = 0 }} naming 1 to 32 variables"),
    ("limit-off-the-range", model(limit="{ f = 2 }"),
     f"{M}.limit.f: expected 0 or 1 (the ends of the range of sigma, which f applies), got 2"),
    ("limit-a-state", model(limit="{ h = 0 }"), f"{M}.limit.h: 'h' is a state"),
    # -- the model's name and its place in the set
    ("name-capitals", model(name="MGU", problems='["MGU"]'),
     "mine.toml: models.MGU: 'MGU' is not allowed as a model's name; use lowercase letters"),
    ("name-digit-first", model(name='"1mgu"', problems='["1mgu"]'),
     "'1mgu' is not allowed as a model's name"),
    ("name-too-long", model(name="m" * 33, problems=f'["{"m" * 33}"]'),
     "is not allowed as a model's name; use lowercase letters, digits and _, starting with a "
     "letter, at most 32"),
    ("not-listed", model(problems='["lstm"]'),
     f"{M}: defined but not listed in problems; list it there, or remove the table"),
    ("listed-undefined", model(problems='["mgu", "mgu2"]'),
     "mine.toml: problems[1]: unknown problem 'mgu2'; known: lstm"),
    ("listed-twice", model(problems='["mgu", "mgu"]'),
     "mine.toml: problems: a problem may appear only once"),
    ("models-not-a-table", TOP + 'problems = ["lstm"]\nmodels = 3\n',
     "mine.toml: models: expected a table of models, one per name"),
    ("model-not-a-table", TOP + 'problems = ["mgu"]\n[models]\nmgu = 3\n',
     f"{M}: expected a table with kind, title and the model"),
    ("params-unknown", model(extra="[params.mgu]\nsteps = 3\n"),
     "mine.toml: params.mgu.steps: unknown parameter; allowed are example"),
    ("labels-unknown", model(extra='[labels.mgu]\nvector = "V"\n'),
     "mine.toml: labels.mgu.vector: allowed are text values for adjoints, weight, map, example"),
    ("notation-unknown-symbol", model(extra='[notation]\nsymbols = { q = "Q" }\n'),
     "notation.symbols.q: no problem of this set prints a symbol of that name; allowed are T, "
     "b_f, b_n, f, h, n"),
    # -- the cell as a whole
    ("cycle", model(equations=eqs("f = sigma(w_fx*x + w_fh*n + b_f)",
                                  "n = tanh(w_nx*x + w_nh*f + b_n)", H)),
     f"{M}.equations[0]: the equations form a cycle (f reads n, n reads f)"),
    ("no-input-no-state", model(equations=eqs(F, "n = tanh(w_nx*2 + w_nh + b_n)", H)),
     f"{M}.equations[1]: 'n' depends on no input and no state"),
    ("unused-weight", model(weights='["w_fx", "w_fh", "w_nx", "w_nh", "w_q"]'),
     f"{M}.weights: 'w_q' is declared but no equation reads it"),
    ("unused-bias", model(biases='["b_f", "b_n", "b_q"]'),
     f"{M}.biases: 'b_q' is declared but no equation reads it"),
    ("unused-input", model(inputs='["x", "u"]'),
     f"{M}.inputs: 'u' is declared but no equation reads it"),
    ("state-never-read", model(states='["h", "c"]', equations=eqs(F, N, "c = tanh(w_nx*x)", H)),
     f"{M}.states: 'c' is never read as c[t-1]"),
    ("variable-never-read", model(equations=eqs(F, N, "k = tanh(w_nx*x)", H)),
     f"{M}.equations[2]: 'k' is assigned but no equation reads it and the loss is not on it"),
    ("loss-on-an-input", model(loss_on='["x"]'),
     f"{M}.loss_on: 'x' is not assigned; assigned are f, h, n"),
    ("loss-on-twice", model(loss_on='["h", "h"]'), f"{M}.loss_on: a name may appear only once"),
    ("input-and-state", model(inputs='["x", "h"]'),
     f"{M}: 'h' is declared in two roles; a name has one"),
    ("bias-and-weight", model(biases='["b_f", "b_n", "w_fx"]'),
     f"{M}: 'w_fx' is declared in two roles"),
    ("biases-not-a-list", model(biases='"b_f"'), f"{M}.biases: expected a list of names"),
    ("states-missing", model(states=None), f"{M}.states: expected at least one name"),
    ("equations-missing", model(equations=None),
     f"{M}.equations: expected a list of 1 to 32 equations"),
    ("equations-a-table", model(equations='{ f = "x" }'),
     f"{M}.equations: expected a list of 1 to 32 equations"),
    # -- the vector form's shapes
    ("vector-weight-plus-input", model(equations=eqs("f = sigma(w_fx + x + w_fh*h[t-1] + b_f)",
                                                     N, H)),
     f"{M}.equations[0]: column 11: the weight 'w_fx' may stand only as a factor of a "
     "product, as in w_fx*x (or left of @)"),
    ("vector-weight-to-a-power", model(equations=eqs("f = sigma(w_fx^1*x + w_fh*h[t-1] + b_f)",
                                                     N, H)),
     f"{M}.equations[0]: column 11: the weight 'w_fx' may stand only as a factor"),
    ("vector-weight-in-a-call", model(equations=eqs(
        "f = sigma(identity(w_fx)*x + w_fh*h[t-1] + b_f)", N, H)),
     f"{M}.equations[0]: column 20: the weight 'w_fx' may stand only as a factor"),
    ("vector-weight-dividing", model(equations=eqs("f = sigma(x/w_fx + w_fh*h[t-1] + b_f)",
                                                   N, H)),
     f"{M}.equations[0]: column 13: the weight 'w_fx' may stand only as a factor"),
    ("matmul-inside-a-product", model(equations=eqs(
        "f = sigma(w_fx @ x * x + w_fh*h[t-1] + b_f)", N, H)),
     f"{M}.equations[0]: column 11: a product with @ may not be a factor of a larger product"),
    ("vector-two-weights", model(equations=eqs("f = sigma(w_fx*w_fh*x + b_f)", N, H)),
     "in the vector form, the equation of f: product of two weights in w_fh*w_fx*x"),
    ("vector-weight-input-state", model(equations=eqs(
        "f = sigma(w_fx*x*h[t-1] + w_fh*h[t-1] + b_f)", N, H)),
     "the equation of f: elementwise product of vectors of different sizes in h[t-1]*w_fx*x"),
    # -- equations through a set file
    ("equation-not-text", model(equations='["f = x", 3]'),
     f"{M}.equations[1]: expected an equation of 1 to 400 characters"),
    ("equation-empty", model(equations='[""]'),
     f"{M}.equations[0]: expected an equation of 1 to 400 characters"),
    ("too-many-equations", model(equations=eqs(*["f = x"] * 33)),
     f"{M}.equations: expected a list of 1 to 32 equations"),
    ("too-deep", model(equations=eqs(F, "n = " + "(" * 17 + "x" + ")" * 17, H)),
     f"{M}.equations[1]: brackets nested 17 deep; at most 16"),
    ("huge-power", model(equations=eqs(F, "n = tanh(w_nx*x + w_nh*(f*h[t-1]) + b_n)^99", H)),
     f"{M}.equations[1]: column 42: power 99; at most 16"),
    ("division-by-zero", model(equations=eqs(F, "n = tanh(w_nx*x/0 + w_nh*(f*h[t-1]) + b_n)", H)),
     f"{M}.equations[1]: column 17: division by zero"),
    ("function-outside-the-registry", model(equations=eqs(
        F, "n = softmax(w_nx*x + w_nh*(f*h[t-1]) + b_n)", H)),
     f"{M}.equations[1]: column 5: unknown function 'softmax'; allowed are sigma, tanh"),
    ("two-steps-back", model(equations=eqs(F, "n = tanh(w_nx*x + w_nh*(f*h[t-2]) + b_n)", H)),
     f"{M}.equations[1]: column 31: unexpected '2'; expected 1"),
    ("input-previous", model(equations=eqs(F, "n = tanh(w_nx*x[t-1] + w_nh*(f*h[t-1]) + b_n)",
                                           H)),
     f"{M}.equations[1]: column 15: x[t-1]: only a state has a previous value; states are h"),
    ("a-weight-assigned", model(equations=eqs("w_fx = x", F, N, H)),
     f"{M}.equations[0]: 'w_fx' is declared as an input, weight or bias and cannot be assigned"),
    ("python-in-an-equation", model(equations=eqs(F, "n = lambda x: x", H)),
     f"{M}.equations[1]: column 12: unexpected 'x'; expected"),
    ("a-dash-for-minus", model(equations=eqs(F, N, "h = (1 \u2013 f)*h[t-1] + f*n")),
     f"{M}.equations[2]: column 8: unexpected character '\u2013'; allowed are names, numbers"),
]


def test_the_base_model_is_accepted():
    """Every case differs from a set file that parses: each message is its own change's."""
    assert parse_set(model(), WHERE).problems == ("mgu",)


def test_at_least_forty_cases():
    assert len(BAD) >= 40 and len({name for name, _, _ in BAD}) == len(BAD)


@pytest.mark.parametrize("text, fragment", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_a_bad_model_table_is_refused_in_one_line(text, fragment):
    with pytest.raises(InputError) as exc:
        parse_set(text, WHERE)
    message = str(exc.value)
    assert "\n" not in message and message.startswith(WHERE) and fragment in message, message


def test_a_title_with_tex_prints_as_text():
    """The text gate does not refuse ``\\input{x}``: it prints the characters themselves."""
    pset = parse_set(model(title="'\\input{x}'"), WHERE)
    tex = key_tex(pset.make_problem("mgu"), handout=True)
    assert "\\textbackslash{}input\\{x\\}" in tex and "\\input{x}" not in tex


#: Cases run through ``derive build`` as a user runs it.
CLI = ["kind-typo", "name-capitals", "cycle", "unused-weight", "vector-two-weights",
       "function-outside-the-registry", "roles-unassigned"]


@pytest.mark.parametrize("name", CLI)
def test_derive_build_refuses_a_bad_model_and_keeps_the_earlier_key(
        name, tmp_path, previous, capsys):
    text, fragment = next((t, f) for n, t, f in BAD if n == name)
    path = set_file(tmp_path, text[len(HEAD):])
    before = snapshot(previous)
    assert main(["build", str(path), "--out", str(previous)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    assert err.startswith("derive: error: ") and err.count("\n") == 1, err
    assert fragment.replace(WHERE, str(path)) in err, err
    assert snapshot(previous) == before
