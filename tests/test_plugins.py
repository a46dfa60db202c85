"""Problems from outside derive: ``derive.register`` and entry-point plugins.

The plugin is a real package (``tests/plugin/derive_demo_plugin``: an Elman network, a
cell derive does not bundle), built by its declared backend and installed into a folder
of its own; the installed command lists it, builds it in a set (in worker processes) and
runs ``derive grad`` on it, checked against autograd on a forward pass written here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib.metadata import distributions
from pathlib import Path

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad as autograd_grad

import derive
from derive import problems as registry
from derive import workers
from derive.build import build
from derive.errors import InputError
from derive.problems import REGISTRY, Problem, Result, get_problem, load_plugins
from derive.render.document import render_problem
from derive.render.latex import Notation
from derive.render.pdf import pdf_text
from derive.sets import ProblemSet, parse_set

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "tests" / "plugin" / "derive_demo_plugin"
README = ROOT / "README.md"


@pytest.fixture
def clean_registry(monkeypatch):
    """The registry as it was before the test, whatever the test registers."""
    saved = [dict(t) for t in (registry.REGISTRY, registry.ADDED, registry.SKIPPED)]
    monkeypatch.syspath_prepend(str(PLUGIN))  # the plugin's module, importable
    yield
    for table, old in zip((registry.REGISTRY, registry.ADDED, registry.SKIPPED), saved,
                          strict=True):
        table.clear()
        table.update(old)


def _elman():
    from derive_demo_plugin import Elman

    return Elman


# -- derive.register --------------------------------------------------------------------------
def test_a_registered_problem_is_named_by_sets_and_builds(clean_registry, tmp_path):
    elman = _elman()
    assert derive.register(elman) is elman and REGISTRY["elman"] is elman
    assert get_problem("elman").key == "elman"
    text = 'id = "rnn"\ntitle = "T"\ncourse = "C"\nsource = "S"\nproblems = ["elman"]\n'
    pset = parse_set(text, "s.toml")
    (tex,) = build(pset, tmp_path, "tex")
    text = tex.read_text()
    assert "Elman network" in text and r"\tanh" in text and "FAIL" not in text


class _NoDerive(Problem):
    key, title = "no_derive", "A problem without a derivation"


class _NoTemplate(_NoDerive):
    key = "no_template"

    def derive(self) -> dict[str, Result]:
        return {}


@pytest.mark.parametrize(("given", "says"), [
    (42, "42 is not a subclass of derive.Problem"),
    (dict, "is not a subclass of derive.Problem"),
    (type("Upper", (_NoTemplate,), {"key": "Elman"}), "key is 'Elman'; a key is a lower-case"),
    (type("Digit", (_NoTemplate,), {"key": "1x"}), "key is '1x'"),
    (type("Dash", (_NoTemplate,), {"key": "a-b"}), "key is 'a-b'"),
    (type("Long", (_NoTemplate,), {"key": "a" * 65}), "up to 63 lower-case letters"),
    (type("Untitled", (_NoTemplate,), {"title": " "}), "title is ' '; give the problem's"),
    (_NoDerive, "_NoDerive does not define derive"),
    (_NoTemplate, "has no template no_template.tex.j2 in derive's templates; set TEMPLATE"),
    (type("Own", (_NoTemplate,), {"TEMPLATE_DIR": "/nowhere"}), "in its TEMPLATE_DIR /nowhere"),
])
def test_register_refuses_what_is_no_problem_in_one_line(clean_registry, given, says):
    before = dict(REGISTRY)
    with pytest.raises(InputError, match=r"^register: ") as err:
        derive.register(given)
    assert says in str(err.value) and "\n" not in str(err.value)
    assert REGISTRY == before


def test_register_replaces_a_taken_key_only_when_asked(clean_registry):
    lstm = REGISTRY["lstm"]
    mine = type("MyLSTM", (lstm,), {"key": "lstm", "title": "My LSTM"})
    with pytest.raises(InputError, match="'lstm' of .*MyLSTM is taken by a bundled problem "
                                         r"\(derive.problems.lstm.LSTM\); .* replace=True"):
        derive.register(mine)
    assert REGISTRY["lstm"] is lstm
    derive.register(mine, replace=True)
    assert REGISTRY["lstm"] is mine and get_problem("lstm").title == "My LSTM"
    derive.register(mine)  # the same class again is no clash


def test_a_problem_may_ship_its_own_templates(clean_registry, tmp_path):
    (tmp_path / "sum.question.tex.j2").write_text("What is $2 + 3$?\n")
    # A template of its own may use derive's, here the macros every problem's heading uses.
    (tmp_path / "sum.tex.j2").write_text(
        '((* import "macros.tex.j2" as m *))(((question)))\nIt is '
        '$(((results["sum"].expr|tex)))$.\n'
    )

    class Sum(Problem):
        key, title, MAIN, TEMPLATE_DIR = "sum", "A sum", "sum", tmp_path

        def derive(self) -> dict[str, Result]:
            return {"sum": Result("sum", derive_sum())}

        def context(self) -> dict:
            return {"results": self.results}

    derive.register(Sum)
    assert Sum().template == "plugins/sum/sum.tex.j2"
    pset = ProblemSet("s", "S", "C", "test", ("sum",), Notation())
    text = render_problem(pset, Sum(), 1)
    assert "What is $2 + 3$?" in text and "It is $5$." in text and "A sum" in text


def derive_sum():
    import sympy as sp

    return sp.Integer(2) + sp.Integer(3)


def _registered_keys() -> list[str]:
    return list(REGISTRY)


def test_workers_know_what_was_registered(clean_registry, tmp_path, monkeypatch):
    derive.register(_elman())
    assert "elman" in workers.run_in_child(_registered_keys)

    # A class a worker cannot import (its module gone from the path) fails in one line.
    (tmp_path / "gone_soon.py").write_text(
        "from derive_demo_plugin import Elman\n\nclass Gone(Elman):\n    key = 'gone'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    from gone_soon import Gone

    derive.register(Gone)
    sys.path.remove(str(tmp_path))
    with pytest.raises(InputError, match="a worker process cannot import a registered problem"):
        workers.run_in_child(_registered_keys)
    del registry.ADDED["gone"], sys.modules["gone_soon"]

    class Local(_NoTemplate):
        key, TEMPLATE = "local", "recurrent"

    derive.register(Local)
    with pytest.raises(InputError, match="local cannot be sent to worker processes"):
        workers.run_in_child(_registered_keys)


# -- entry points -----------------------------------------------------------------------------
def _distribution(folder: Path, name: str, entries: dict[str, str]) -> None:
    """An installed distribution's metadata: what ``importlib.metadata`` reads."""
    info = folder / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entries.items())
    (info / "entry_points.txt").write_text(f"[derive.problems]\n{lines}")


BROKEN = {
    "nomod": "no_such_module_here:Problem",
    "notproblem": "json:dumps",
    "misnamed": "derive_demo_plugin:Elman",
    "lstm": "clash_here:Clash",
}


def test_a_plugin_that_fails_is_skipped_with_a_line_naming_it(
    clean_registry, tmp_path, monkeypatch
):
    (tmp_path / "clash_here.py").write_text(
        "from derive.problems.lstm import LSTM\n\nclass Clash(LSTM):\n    key = 'lstm'\n"
    )
    _distribution(tmp_path, "broken", BROKEN)
    _distribution(tmp_path, "demo", {"elman": "derive_demo_plugin:Elman"})
    monkeypatch.syspath_prepend(str(tmp_path))
    points = [p for d in distributions(path=[str(tmp_path)]) for p in d.entry_points]
    skipped = load_plugins(points)
    assert REGISTRY["elman"] is _elman() and REGISTRY["lstm"].__name__ == "LSTM"
    assert set(skipped) == set(BROKEN)
    for name, why in skipped.items():
        assert why.startswith(f"plugin {name!r} (distribution broken 1.0): ") and "\n" not in why
    assert "ModuleNotFoundError: No module named 'no_such_module_here'" in skipped["nomod"]
    assert "is not a subclass of derive.Problem" in skipped["notproblem"]
    assert "has the key 'elman'; the entry point's name must be" in skipped["misnamed"]
    assert "taken by derive.problems.lstm.LSTM" in skipped["lstm"]
    registry.SKIPPED.update(skipped)
    with pytest.raises(InputError, match="problem 'nomod' is not available: plugin 'nomod'"):
        get_problem("nomod")


# -- the installed command --------------------------------------------------------------------
def _elman_loss(w, x, h0, a):
    """L = sum_t a_t y_t of the Elman network, written again from its equations."""
    h, total = h0, 0.0
    for xt, at in zip(x, a, strict=True):
        h = anp.tanh(w[0] * xt + w[1] * h)
        total = total + at / (1 + anp.exp(-w[2] * h))
    return total


@pytest.mark.pdf
def test_the_installed_command_lists_builds_and_differentiates_a_plugin(tmp_path):
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-deps", "--no-build-isolation", "--no-index", "--target", str(site), str(PLUGIN)],
        check=True, capture_output=True,
    )
    _distribution(site, "broken", {"nomod": "no_such_module_here:Problem"})
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]),
               DERIVE_CACHE=str(tmp_path / "cache"))

    def run(*args: str, stdin: str = "") -> str:
        done = subprocess.run([sys.executable, "-m", "derive", *args], input=stdin, env=env,
                              cwd=tmp_path, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        # The broken plugin, once (the build's forkserver loads the plugins again, quietly).
        assert done.stderr.splitlines() == [
            "derive: warning: plugin 'nomod' (distribution broken 1.0): "
            "no_such_module_here:Problem cannot be loaded: ModuleNotFoundError: No module "
            "named 'no_such_module_here'; skipped"
        ]
        return done.stdout

    listed = run("list")
    assert re.search(r"^problem  elman +Elman network gradient", listed, re.M)
    assert re.search(r"^problem  lstm ", listed, re.M)  # the bundled problems stay
    (tmp_path / "rnn.toml").write_text(
        'id = "rnn"\ntitle = "Recurrent nets"\ncourse = "C"\nsource = "S"\n'
        'problems = ["elman", "cnn_params"]\n'  # two problems: each built in a worker
    )
    run("build", "rnn.toml", "--out", "out", "--jobs", "2")
    tex = (tmp_path / "out" / "rnn" / "answer-key.tex").read_text()
    assert (tmp_path / "out" / "rnn" / "answer-key.pdf").stat().st_size > 0
    assert "Elman network gradient" in tex and "FAIL" not in tex
    numbers = {"weights": {"w_hx": 0.5, "w_hh": -0.3, "w_yh": 1.2}, "x": [1, -0.5, 2],
               "h0": 0.1, "dL_dy": [1, 0, -2]}
    got = json.loads(run("grad", "elman", "--input", "-", stdin=json.dumps(numbers)))["grad"]
    args = (np.array([0.5, -0.3, 1.2]), np.array([1, -0.5, 2]), 0.1, [1, 0, -2])
    want = [autograd_grad(_elman_loss, i)(*args) for i in range(3)]
    np.testing.assert_allclose([got["w_hx"], got["w_hh"], got["w_yh"]], want[0], rtol=1e-12)
    np.testing.assert_allclose(got["x"], want[1], rtol=1e-12)
    np.testing.assert_allclose(got["h0"], want[2], rtol=1e-12)


def _readme_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Your own problem in Python (a plugin)"):]
    return re.findall(r"```(?:toml|python)\n(.*?)```", section, re.S)


def test_the_readme_shows_the_plugin_as_it_is():
    assert _readme_blocks()[:2] == [
        (PLUGIN / "pyproject.toml").read_text(encoding="utf-8"),
        (PLUGIN / "derive_demo_plugin" / "__init__.py").read_text(encoding="utf-8"),
    ]


@pytest.mark.pdf
def test_the_readme_register_example_builds_in_workers(clean_registry, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rnn.toml").write_text(
        'id = "rnn"\ntitle = "Recurrent nets"\ncourse = "C"\nsource = "S"\n'
        'problems = ["elman", "cnn_params"]\n'
    )
    exec(compile(_readme_blocks()[2], "README.md", "exec"), {})  # our own text, not input
    key = pdf_text(tmp_path / "build" / "rnn" / "answer-key.pdf")
    assert "Elman network gradient" in key and "FAIL" not in key
