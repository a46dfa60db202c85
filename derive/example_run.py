"""A worked example evaluated: the derived equations on its numbers, and the references.

The derived side is the engine's compiled sweep in float64 (the same code as ``derive grad
--backend numpy``): forward values and adjoints per step and the weights' gradients.  The
references never use it: the cell's assignments run by the mpmath interpreter
(``derive.verify.interpret``), differentiated through ``derive.verify.routes`` by complex
step and by 60-digit central differences; the derived equations are also evaluated at 50
digits against the latter, which tests the formulas themselves.

A *probe* names one derivative: ``("w", name)`` perturbs a weight, ``(k, name)`` a variable
right after step k computes it (its adjoint at step k).
"""

from __future__ import annotations

from functools import cached_property

import mpmath
import numpy as np
import sympy as sp

from derive.engine.cell import Cell
from derive.engine.functions import lookup
from derive.engine.numeric import Gradients, evaluate_at, forward, generated, sweep_for
from derive.errors import InputError
from derive.example import Example
from derive.verify import routes
from derive.verify.interpret import Interpreter

#: The largest |pre-activation| of a gate in a worked example.  Beyond it the slopes
#: sigma'(z) = u(1 - u) and 1 - u^2 (below 2.5e-3 and 2.5e-5 at 6) are differences of
#: numbers near 1, float64 keeps few of their digits, and when every gate saturates even
#: the largest gradient is made of them: at |z| = 8 the worst constructed case reached a
#: third of the saturated tolerance, at 10 it failed; at 6 it stays 50 times below.
EXAMPLE_MAX_Z = 6.0
#: The largest |z| of any sigma(z) or tanh(z) in an example that counts as unsaturated:
#: sigma'(3) = 0.045 and tanh'(3) = 0.0099 (the house's mild cases, |w| <= 1 and x of order
#: 1, stay about this far in).  Beyond it the checks use the saturated tolerances.
SATURATION = 3.0

Probe = tuple


class ExampleRun:
    """The worked example ``example`` of ``cell``, derived and referenced."""

    def __init__(self, cell: Cell, example: Example) -> None:
        self.cell, self.example = cell, example
        self.interpreter = Interpreter(cell)

    @cached_property
    def trajectory(self) -> dict:
        """The forward pass by the engine (float64): every variable per step."""
        w, x, init, _ = self.example.floats()
        return forward(generated(self.cell), w, x, init)

    @cached_property
    def gradients(self) -> Gradients:
        """The derived adjoint equations evaluated on the example (float64)."""
        w, _, _, a = self.example.floats()
        return sweep_for(self.cell).run(self.trajectory, w, a)

    @cached_property
    def arguments(self) -> list[tuple[int, str, bool, float]]:
        """(step, variable, whether it is a gate, |z|) for every saturating function
        (sigma, tanh: ``Elementwise.saturates``) applied in the forward pass: a gate is a
        variable assigned one.  ReLU, exp or log may take any argument."""
        traj, cell = self.trajectory, self.cell
        w = self.example.floats()[0]
        at_t = cell.at_step(0)  # the cell's local symbols as quantities at step t
        out = []
        for k in range(1, self.example.steps + 1):
            for u, e in cell.assignments:
                for f in _saturating(e):
                    z = abs(float(evaluate_at(f.args[0].xreplace(at_t), traj, w, k)))
                    out.append((k, u.name, f == e, z))
        return out

    @property
    def steepest(self) -> float:
        """The largest |z| of any sigma(z) or tanh(z) of the forward pass (0 if none)."""
        return max((z for *_, z in self.arguments), default=0.0)

    def refuse_saturated_gates(self, where: str) -> None:
        """An ``InputError`` if a gate's |pre-activation| exceeds ``EXAMPLE_MAX_Z``."""
        for k, name, gate, z in self.arguments:
            if gate and z > EXAMPLE_MAX_Z:
                raise InputError(
                    f"{where}: the gate {name} saturates at step {k} (|pre-activation| = "
                    f"{z:.3g}); a worked example keeps every gate within |z| <= "
                    f"{EXAMPLE_MAX_Z:g}, where float64 still resolves its slope well enough to "
                    "check the example: use smaller weights, inputs or h0"
                )

    def tables(self, weights: list[str]) -> tuple[dict, dict, dict]:
        """Forward values and adjoints per step (latest variable first), weight gradients."""
        traj, g = self.trajectory, self.gradients
        steps = range(1, self.example.steps + 1)
        names = [v.name for v in self.cell.variables]
        fwd = {v: [float(traj[v][k]) for k in steps] for v in names}
        adj = {v: [float(g.bars[v][k]) for k in steps] for v in reversed(names)}
        return fwd, adj, {w: float(g.params[w]) for w in weights}

    # -- references ----------------------------------------------------------------------
    def interpreted_forward(self) -> dict[str, list]:
        """Every variable per step by the interpreter, exact inputs at REFERENCE_DPS."""
        with mpmath.workdps(routes.REFERENCE_DPS):
            w, x, init, _ = self.example.mp()
            rows = self.interpreter.run(w, x, init)
        return {v.name: [row[v.name] for row in rows] for v in self.cell.variables}

    def _loss_at(self, numbers: tuple, probe: Probe):
        """The interpreted loss as a function of the perturbation δ at ``probe``."""
        w, x, init, a = numbers
        kind, name = probe

        def g(delta):
            if kind == "w":
                return self.interpreter.loss({**w, name: w[name] + delta}, x, init, a)
            return self.interpreter.loss(w, x, init, a, {(kind, name): delta})

        return g

    def complex_steps(self, probes: list[Probe]) -> list[float]:
        """dL/d(probe) by complex step of the interpreted pass (float64 inputs)."""
        numbers = self.example.floats()
        out = []
        with mpmath.workprec(53):  # float64's precision, as the derived side has
            for p in probes:
                g = self._loss_at(numbers, p)
                out.append(float(routes.complex_step(lambda d, g=g: complex(g(d)))))
        return out

    def deep_differences(self, probes: list[Probe]) -> list:
        """dL/d(probe) by 60-digit central differences of the interpreted pass."""
        with mpmath.workdps(routes.REFERENCE_DPS):
            numbers = self.example.mp()
            return [routes.high_precision_difference(self._loss_at(numbers, p)) for p in probes]

    def derived_deep(self, probes: list[Probe]) -> list:
        """The derived equations at DERIVED_DPS digits, one value per probe."""
        with mpmath.workdps(routes.DERIVED_DPS):
            w, x, init, a = self.example.mp()
            traj = forward(self.cell, w, x, init, "mpmath")
            g = sweep_for(self.cell, "mpmath").run(traj, w, a)
            got = [g.params[n] if k == "w" else g.bars[n][k] for k, n in probes]
            # The sweep hands back some 0-d object arrays; unwrap them at this precision
            # (mpf() outside this block would round to 15 digits).
            return [mpmath.mpf(np.asarray(v).item()) for v in got]


def _saturating(e: sp.Expr) -> list[sp.Expr]:
    """The applications of saturating functions in ``e`` (sigma(z), tanh(z))."""
    return [f for f in e.atoms(sp.Function) if (found := lookup(f)) and found.saturates]


def float_matrix(rows) -> sp.Matrix:
    """Rows of floats as a SymPy matrix (the symbolic form of a numeric result)."""
    return sp.Matrix([[sp.Float(v) for v in row] for row in rows])
