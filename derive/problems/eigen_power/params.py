"""eigen_power's data: the default W, the sizes of the regimes'
table and plot, and the generator of symmetric matrices for variants."""

from __future__ import annotations

from typing import Any

import sympy as sp

from derive.engine.exact_matrix import with_eigenvalues
from derive.errors import InputError
from derive.params import exact_number

#: The default W and power (a decomposition to check is stated only by a set file).
HANDOUT_W = [["0.58", "0.24"], ["0.24", "0.72"]]
HANDOUT_N = 30
#: Largest power a set may ask for (exact entries of W^n grow with n).
MAX_N = 200
#: The eigenvector directions of generated matrices: a rotation with rational cos and sin.
ROTATION = ("4/5", "3/5")
#: Most matrices the generator makes: one per version at most (derive.variants.MAX_VERSIONS).
MAX_MATRICES = 1000
#: Powers k at which the regimes' norms are tabulated (n is the set's power).
NORM_STEPS = (1, 10, None, 100)
#: Powers k = 1 .. PLOT_STEPS at which the regimes' norms are plotted.
PLOT_STEPS = 40
#: Relative accuracy of the plotted norms: far finer than the plot's 0.01 mm.
PLOT_TOL = 1e-6
#: Digits of the longest numerator or denominator W^n may have to be printed exactly (the
#: handout's W^30 has 31; a 2x2 matrix of 40-digit fractions still fits the line).
PRINTED_DIGITS = 40
#: The matrix with all eigenvalues 1 but a single eigenvector: not diagonalizable (a Jordan
#: block), and the symbol of its powers.
DEFECTIVE = "unit, defective"
K = sp.Symbol("k", positive=True)


def slug(name: str) -> str:
    """A regime's name as part of a result key ("unit, defective" -> "unit_defective")."""
    return name.replace(", ", "_")


def symmetric_candidates(spec: Any, where: str) -> list[list[list[str]]]:
    """Symmetric W = R diag(a, b) R^T for every pair of eigenvalues on two grids.

    ``spec`` is ``{eigenvalues = [{min, max, step}, {min, max, step}], rotation = [c, s]}``
    (rotation optional, c^2 + s^2 = 1, default 4/5, 3/5): rational eigenvectors keep W^n exact.
    """
    if not isinstance(spec, dict) or set(spec) - {"eigenvalues", "rotation"}:
        raise InputError(f"{where}: expected a table with keys eigenvalues and rotation")
    rotation = spec.get("rotation", ROTATION)
    if not isinstance(rotation, list | tuple) or len(rotation) != 2:
        raise InputError(f"{where}.rotation: expected [cos, sin], two exact numbers")
    c, s = (exact_number(v, f"{where}.rotation[{i}]") for i, v in enumerate(rotation))
    if c**2 + s**2 != 1:
        raise InputError(f"{where}.rotation: cos^2 + sin^2 must be exactly 1, got {c}, {s}")
    grids = spec.get("eigenvalues")
    if not isinstance(grids, list) or len(grids) != 2:
        raise InputError(f"{where}.eigenvalues: expected two ranges {{min, max, step}}")
    values = [_grid(g, f"{where}.eigenvalues[{i}]") for i, g in enumerate(grids)]
    count = len(values[0]) * len(values[1])
    if count > MAX_MATRICES:  # each costs a symbolic product: refuse before making them
        raise InputError(
            f"{where}.eigenvalues: the grids give {count} matrices; at most {MAX_MATRICES}"
        )
    rot = sp.Matrix([[c, -s], [s, c]])
    out = []
    for a in values[0]:
        for b in values[1]:
            w = with_eigenvalues(rot, [a, b])
            out.append([[str(v) for v in row] for row in w.tolist()])
    return out


def _grid(spec: Any, where: str) -> list[sp.Rational]:
    if not isinstance(spec, dict) or set(spec) != {"min", "max", "step"}:
        raise InputError(f"{where}: expected a table {{min, max, step}}")
    lo, hi, step = (exact_number(spec[k], f"{where}.{k}") for k in ("min", "max", "step"))
    if step <= 0 or hi < lo or (hi - lo) / step > 100:
        raise InputError(f"{where}: expected min <= max and 0 < step, at most 100 steps")
    return [lo + i * step for i in range(int((hi - lo) / step) + 1)]
