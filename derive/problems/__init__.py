"""The registry of problems: key -> class.  Adding a bundled problem is one line here.

Problems from elsewhere join it two ways:

* ``register(cls)`` (``derive.register``): a ``Problem`` subclass defined in Python.  The
  build's workers receive what was registered by reference (module and name), so such a
  class must be importable there unless the build runs in one process;
* an **entry-point plugin**: a distribution declaring, in its ``pyproject.toml``,

      [project.entry-points."derive.problems"]
      elman = "derive_demo_plugin:Elman"

  where the name is the problem's key.  Every installed plugin is loaded when this module
  is first imported (the registry is built), in every process, the build's workers
  included.  A plugin that cannot be loaded (its module fails to import, its object is no
  ``Problem``, its key is taken or is not the entry point's name) is skipped with one line
  on standard error naming the plugin and its distribution; the bundled problems and the
  other plugins stay.
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from derive.errors import InputError
from derive.problems.base import Problem, Result
from derive.problems.binary_adder import BinaryAdder
from derive.problems.cnn_params import CNNParams
from derive.problems.conv_pool import ConvPool
from derive.problems.dropout import Dropout
from derive.problems.eigen_power import EigenPower
from derive.problems.gru import GRU
from derive.problems.init_variance import Init
from derive.problems.lstm import LSTM
from derive.problems.lstm_cell import LSTMCell
from derive.problems.mdrnn import MDRNN
from derive.problems.mgu import MGU
from derive.problems.momentum import Momentum
from derive.problems.pixelcnn_mdrnn import PixelCNNMDRNN
from derive.problems.resnet_bn import ResnetBN
from derive.problems.vanilla_rnn import VanillaRNN

REGISTRY: dict[str, type[Problem]] = {
    "lstm": LSTM,
    "gru": GRU,
    "mgu": MGU,
    "eigen_power": EigenPower,
    "binary_adder": BinaryAdder,
    "lstm_cell": LSTMCell,
    "vanilla_rnn": VanillaRNN,
    "momentum": Momentum,
    "mdrnn": MDRNN,
    "cnn_params": CNNParams,
    "conv_pool": ConvPool,
    "resnet_bn": ResnetBN,
    "pixelcnn_mdrnn": PixelCNNMDRNN,
    "dropout": Dropout,
    "init": Init,
}
#: The keys of the bundled problems (``register`` never replaces one of these by accident).
BUNDLED = frozenset(REGISTRY)
#: The entry-point group plugins declare their problems in.
GROUP = "derive.problems"
#: A problem's key names a set file's tables (``[params.<key>]``) and a template: the
#: shape of a set id.
KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
#: Problems ``register`` added in this process, by key: handed to the build's workers
#: (``derive.workers``), which load the bundled problems and the plugins themselves.
ADDED: dict[str, type[Problem]] = {}
#: Why each plugin that could not be loaded was skipped, by its name (its problem's key).
SKIPPED: dict[str, str] = {}


def get_problem(key: str) -> Problem:
    """A fresh instance of the registered problem ``key``."""
    if key not in REGISTRY:
        if key in SKIPPED:
            raise InputError(f"problem {key!r} is not available: {SKIPPED[key]}")
        raise InputError(f"unknown problem {key!r}; known problems: {', '.join(REGISTRY)}")
    return REGISTRY[key]()


def register(problem: type[Problem], *, replace: bool = False) -> type[Problem]:
    """Add the ``Problem`` subclass ``problem`` to the registry under its ``key``.

    Once registered, sets name it in ``problems`` and ``get_problem`` makes it, like a
    bundled problem.  Returns the class, so this serves as a class decorator.

    Parameters
    ----------
    problem
        A concrete subclass of ``derive.Problem`` with a ``key`` shaped like a set id
        (``^[a-z][a-z0-9_]{0,63}$``), a ``title``, and its templates: derive's
        (``TEMPLATE``, such as ``"recurrent"``) or its own (``TEMPLATE_DIR``).
    replace
        Replace the problem registered under the same key (a bundled one included);
        without it, a key already taken is an error.

    Raises
    ------
    InputError
        One line naming the class and what is wrong.
    """
    fault = unfit(problem)
    if fault is None:
        taken = REGISTRY.get(problem.key)
        if taken is not None and taken is not problem and not replace:
            kind = "a bundled problem" if problem.key in BUNDLED else "another problem"
            fault = (
                f"the key {problem.key!r} of {_name(problem)} is taken by {kind} "
                f"({_name(taken)}); choose another key, or pass replace=True"
            )
    if fault is not None:
        raise InputError(f"register: {fault}")
    REGISTRY[problem.key] = problem
    ADDED[problem.key] = problem
    SKIPPED.pop(problem.key, None)
    return problem


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def unfit(problem: object) -> str | None:
    """What makes ``problem`` unfit for the registry (one line), or None if nothing."""
    if not (isinstance(problem, type) and issubclass(problem, Problem)):
        return (
            f"{problem!r} is not a subclass of derive.Problem (a class with a key, a title, "
            "derive() and claims())"
        )
    key, title = getattr(problem, "key", None), getattr(problem, "title", None)
    if not isinstance(key, str) or not KEY.match(key):
        return (
            f"{_name(problem)}.key is {key!r}; a key is a lower-case letter, then up to 63 "
            "lower-case letters, digits or _"
        )
    if not isinstance(title, str) or not title.strip():
        return f"{_name(problem)}.title is {title!r}; give the problem's heading as text"
    if inspect.isabstract(problem):
        missing = ", ".join(sorted(problem.__abstractmethods__))
        return f"{_name(problem)} does not define {missing}"
    return _missing_template(problem)


def _missing_template(problem: type[Problem]) -> str | None:
    from derive.render.document import template_dir  # the registry is no problem module

    name, own = problem.TEMPLATE or problem.key, problem.TEMPLATE_DIR
    folder = template_dir() / "problems" if own is None else Path(own)
    for tail in (".tex.j2", ".question.tex.j2"):
        if not (folder / f"{name}{tail}").is_file():
            where = "derive's templates" if own is None else f"its TEMPLATE_DIR {folder}"
            return (
                f"{_name(problem)} has no template {name}{tail} in {where}; set TEMPLATE to "
                "one of derive's (such as 'recurrent') or TEMPLATE_DIR to a folder of its own"
            )
    return None


def load_plugins(points: Iterable[EntryPoint] | None = None) -> dict[str, str]:
    """Register the problem of every entry point of the group ``derive.problems`` (default:
    those installed); returns why each one that could not be loaded was skipped."""
    skipped = {}
    for point in entry_points(group=GROUP) if points is None else points:
        try:
            _load(point)
        except Exception as exc:  # a plugin's failure is its own: report it, keep the rest
            why = " ".join(str(exc).split()) or type(exc).__name__
            skipped[point.name] = f"plugin {point.name!r} ({_distribution(point)}): {why}"
    return skipped


def _load(point: EntryPoint) -> None:
    try:
        problem = point.load()
    except Exception as exc:
        detail = " ".join(str(exc).split())
        raise InputError(
            f"{point.value} cannot be loaded: {type(exc).__name__}: {detail}"
        ) from None
    fault = unfit(problem)
    if fault is not None:
        raise InputError(fault)
    if problem.key != point.name:
        raise InputError(
            f"{point.value} has the key {problem.key!r}; the entry point's name must be the "
            "problem's key"
        )
    taken = REGISTRY.get(point.name)
    if taken is not None and taken is not problem:  # its module may register it itself
        raise InputError(f"the key {point.name!r} is taken by {_name(taken)}")
    REGISTRY[point.name] = problem


def _distribution(point: EntryPoint) -> str:
    dist = point.dist
    return "an unknown distribution" if dist is None else f"distribution {dist.name} {dist.version}"


def _report(skipped: dict[str, str]) -> None:
    # The build's forkserver (which imports derive._preload) loads the same plugins once
    # more: the command has already said why one was skipped.
    if "derive._preload" in sys.modules:
        return
    for why in skipped.values():
        print(f"derive: warning: {why}; skipped", file=sys.stderr)


SKIPPED.update(load_plugins())
_report(SKIPPED)

__all__ = ["REGISTRY", "Problem", "Result", "get_problem", "load_plugins", "register", "unfit"]
