"""derive: derive, verify and typeset the mathematics of deep learning.

The library surface:

* ``REGISTRY`` and ``get_problem``: the problems; each has ``results`` (SymPy objects by
  stable key) and ``checks`` (the verification evidence);
* ``bundled`` and ``get_set``: the problem sets;
* ``Cell``, ``Adjoints``, ``VectorAdjoints``: the engine (a recurrent cell as data, and its
  backprop-through-time equations in scalar and matrix form);
* ``forward``, ``ScalarSweep``, ``VectorSweep``: numbers from a cell and from its derived
  equations (what ``derive grad`` runs).
"""

from derive.engine.adjoint import Adjoints
from derive.engine.cell import Cell
from derive.engine.numeric import ScalarSweep, VectorSweep, forward
from derive.engine.vector import VectorAdjoints
from derive.problems import REGISTRY, get_problem
from derive.sets import bundled, get_set

__version__ = "0.1.0"

__all__ = [
    "REGISTRY",
    "Adjoints",
    "Cell",
    "ScalarSweep",
    "VectorAdjoints",
    "VectorSweep",
    "bundled",
    "forward",
    "get_problem",
    "get_set",
]
