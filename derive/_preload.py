"""What a build's forkserver loads once, so that no worker loads it again (``workers``).

Importing derive does not import everything a job needs: the first ``lambdify`` pulls in
NumPy's and the standard library's modules worth about 45 ms, the templates compile in
about 70 ms and the model grammars build in about 25 ms, all of which every fresh worker
would pay again.  Doing it here, before the server forks, makes it free for them.
"""

from __future__ import annotations

import sympy as sp

import derive.build  # noqa: F401 - the import is the point
from derive.engine.numeric import lambdify
from derive.model import build_grammars
from derive.render.document import precompile

_x = sp.Symbol("x")
lambdify([_x], [_x + 1], "numpy", cse=True)(1.0)
precompile()
build_grammars()
