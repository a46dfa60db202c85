"""derive: derive, verify and typeset the mathematics of deep learning.

The library surface:

* ``REGISTRY`` and ``get_problem``: the problems; each has ``results`` (SymPy objects by
  stable key) and ``checks`` (the verification evidence);
* ``Problem`` (what every problem subclasses: its parameters, ``derive()``, ``claims()``)
  and ``Result`` (one derived result); ``register(cls)`` adds a problem of your own to the
  registry, so that sets name it and the build makes it.  A package of your own can do
  the same for the installed ``derive`` command with an entry point in the group
  ``derive.problems`` (``name = "module:Class"``, the name being the problem's key):
  ``derive.problems`` states the contract;
* ``bundled`` and ``get_set``: the problem sets;
* ``CellSpec`` (a recurrent cell as names and equations), ``Cell``, ``Adjoints``,
  ``VectorAdjoints``: the engine (a cell as data, and its backprop-through-time equations
  in scalar and matrix form); ``RecurrentProblem`` turns a ``CellSpec`` into a problem;
* ``FUNCTIONS`` and ``Elementwise``: the registry of elementwise functions (add one with
  ``derive.engine.functions.register``);
* ``Claim``: a claim about a result; ``derive.verify.verify`` checks a problem's claims
  by the routes of ``derive.verify.routes``;
* ``forward``, ``ScalarSweep``, ``VectorSweep``: numbers from a cell and from its derived
  equations (what ``derive grad`` runs);
* ``parse_model``: the problem class of a model written as a set file's ``[models.<name>]``
  table (TOML text or a dict): a recurrent cell or a map, parsed by a grammar;
* ``from_export``: the SymPy expression of a ``sympy`` text in ``derivations.json``
  (``derive.export`` states the file's contract and holds its schema).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Each public name and the module that defines it.  They load on first use (PEP 562), so
#: ``import derive.cli`` stays light: the command line can start a build's worker server
#: before SymPy is imported, and ``derive --help`` answers at once.
_EXPORTS = {
    "Adjoints": "derive.engine.adjoint",
    "Cell": "derive.engine.cell",
    "CellSpec": "derive.engine.spec",
    "Claim": "derive.verify.claims",
    "Elementwise": "derive.engine.functions",
    "FUNCTIONS": "derive.engine.functions",
    "Problem": "derive.problems.base",
    "RecurrentProblem": "derive.problems.recurrent",
    "REGISTRY": "derive.problems",
    "Result": "derive.problems.base",
    "ScalarSweep": "derive.engine.numeric",
    "VectorAdjoints": "derive.engine.vector",
    "VectorSweep": "derive.engine.numeric",
    "bundled": "derive.sets",
    "forward": "derive.engine.numeric",
    "from_export": "derive.export",
    "get_problem": "derive.problems",
    "get_set": "derive.sets",
    "parse_model": "derive.model.defined",
    "register": "derive.problems",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'derive' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
