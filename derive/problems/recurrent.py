"""Recurrent-cell problems: BPTT equations of a cell given as data.

``RecurrentProblem`` turns a cell (``make_cell``) into an answer key: the adjoint of every
variable at step t in chain-rule and simplified form, the gradient of every parameter, the
adjoints of the inputs and initial states, the same in matrix notation with biases, the
backward map J of the states' adjoints, their checks, and ``grad`` on numbers.  A problem
for a new cell (LSTM, GRU, ...) is a subclass that only supplies the cell, and a plain
step function (``plain_step``) if it is to carry a worked example.

**Worked example** (parameter ``example``, from a set file).  Given scalar weights, an
input sequence, initial states and the weights a_t of a linear loss L = sum_t a_t h_t, the
derived equations are evaluated in float64 by the engine's compiled sweep (the same code
as ``derive grad --backend numpy``; the default C backend agrees to round-off): forward
values and adjoints per step and the weights' gradients.
They are checked against a forward pass written out by hand (``plain_step``, no engine),
differentiated by complex step and by 50-digit mpmath central differences.
"""

from __future__ import annotations

import cmath
import itertools
import math
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any

import mpmath
import numpy as np
import sympy as sp

from derive import inputs as inp
from derive.engine.adjoint import Adjoints
from derive.engine.cell import Cell, T, bar, loss_grad, param_bar, t, timed
from derive.engine.functions import NUMERIC, textbook
from derive.engine.native import NativeUnavailable, NoCompiler, native_gradient, warn
from derive.engine.numeric import (
    Gradients,
    ScalarSweep,
    VectorSweep,
    evaluate_at,
    forward,
    sweep_for,
)
from derive.engine.vector import VectorAdjoints, at_absolute_step, n_h, n_x
from derive.errors import InputError
from derive.gradcheck import (
    COMPLEX_H,
    DERIVED_DPS,
    METHODS,
    REFERENCE_DPS,
    REFERENCE_H,
    SATURATED,
    Case,
    backward_map_by_probes,
    gradient_checks,
    make_data,
)
from derive.params import Param, Raw, exact_number, show
from derive.problems.base import Problem, Result
from derive.verify import Check, rel_error

#: What computes ``derive grad``'s numbers: C if it can run here, C, or NumPy.
BACKENDS = ("auto", "c", "numpy")
#: ``derive grad``'s longest sequence in the scalar form: 10^5 steps of the LSTM take about a
#: second on either backend and print 8 MB.
GRAD_MAX_T = 100_000
#: The vector form (matrices) runs step by step in NumPy, about 0.3 ms a step: 10^4 steps
#: of the LSTM take 4 s and 120 MB (10^5 took 28 s and 480 MB).
GRAD_MAX_T_VECTOR = 10_000
#: The largest number of rows or columns of a matrix of the vector form (the LSTM's eight
#: 256 x 256 weights are half a million numbers in, and as many out).
GRAD_MAX_SIZE = 256
#: The most numbers the vector form's sequences hold together, T x (sizes of the inputs and
#: loss weights at one step): the printed states and adjoints stay under about 30 MB.
GRAD_MAX_SERIES = 500_000
#: A worked example's longest sequence.
EXAMPLE_MAX_T = 20
#: The largest magnitude of any number of a worked example.
EXAMPLE_MAX_ABS = 10
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


class RecurrentProblem(Problem):
    """Backprop-through-time equations of a recurrent cell, scalar and vector form."""

    PARAMS = (
        Param(
            "example",
            Raw(dict, "a table with weights, the input sequence, initial states and dL_dh"),
            None,
            "a worked numeric example, as for derive grad: every weight by name (weights = "
            "{...}), the inputs x (1 to 20 steps), the initial states (h0, ...) and dL_dh, the "
            "loss's coefficient of h at each step",
        ),
    )

    #: Besides the cell's own: the number of steps and the vector sizes.
    SYMBOLS = ("T", "n_h", "n_x")

    @classmethod
    def symbols(cls) -> frozenset[str]:
        """The cell's inputs, variables, weights and biases, with ``SYMBOLS``."""
        return _cell_names(cls) | super().symbols()

    def __init__(self, example: dict | None = None, cases: list[Case] | None = None) -> None:
        self.cases = cases
        where = f"params.{self.key}.example"
        self.example = None if example is None else parse_example(self.cell, example, where)
        if self.example is not None:
            self._refuse_saturated_gates(where)

    @abstractmethod
    def make_cell(self, biases: bool) -> Cell:
        """The cell as data; ``biases`` adds bias vectors (the vector form)."""

    def plain_step(self, w: dict, x: dict, prev: dict, lib: Any, bump: dict) -> dict:
        """One step of the cell written out by hand: the independent forward pass.

        ``w`` holds the weights, ``x`` the inputs and ``prev`` the states of the previous
        step; ``lib`` supplies ``exp`` and ``tanh`` (math, cmath or mpmath); ``bump`` adds a
        number to a variable right after it is computed.  Returns every assigned variable.
        """
        raise NotImplementedError(f"{self.key}: a worked example needs a plain_step")

    @cached_property
    def cell(self) -> Cell:
        return self.make_cell(biases=False)

    @cached_property
    def vector_cell(self) -> Cell:
        return self.make_cell(biases=True)

    @cached_property
    def adjoints(self) -> Adjoints:
        return Adjoints(self.cell)

    @cached_property
    def vector_adjoints(self) -> VectorAdjoints:
        return VectorAdjoints(self.vector_cell)

    @property
    def scalar_sweep(self) -> ScalarSweep:
        """The scalar adjoint equations compiled once per cell (shared with the checks)."""
        return sweep_for(self.cell)

    @property
    def weights(self) -> list[str]:
        return [p.name for p in self.cell.params]

    @property
    def biases(self) -> list[str]:
        return [p.name for p, kind in self.vector_cell.params.items() if kind == "bias"]

    # -- derivation ---------------------------------------------------------------------------
    def derive(self) -> dict[str, Result]:
        out: dict[str, Result] = {}
        adj = self.adjoints
        for name, a in {**adj.variables, **adj.params, **adj.inputs}.items():
            out[f"{name}_bar"] = Result(f"{name}_bar", a.expr, a.lhs, a.chain)
        for s in self.cell.states:
            e = adj.variables[s.name].at_initial_step
            out[f"{s.name}0_bar"] = Result(f"{s.name}0_bar", e, bar(s.name).subs(t, 0))
        out.update(self._derive_vector())
        cols, jac = adj.backward_map()
        out["backward_map"] = Result("backward_map", jac, sp.Matrix(cols))
        if self.example is not None:
            out.update(self._derive_example())
        return out

    def _derive_vector(self) -> dict[str, Result]:
        va, out = self.vector_adjoints, {}
        for name, e in {**va.variables, **va.inputs}.items():
            out[f"vector_{name}_bar"] = Result(f"vector_{name}_bar", e, va.vc.bar(sp.Symbol(name)))
        for name, e in va.params.items():
            lhs = sp.MatrixSymbol("bar:" + name, *va.vc.shape(sp.Symbol(name)))
            out[f"vector_{name}_bar"] = Result(f"vector_{name}_bar", sp.Sum(e, (t, 1, T)), lhs)
        for s in self.cell.states:
            e = at_absolute_step(va.initial(s.name), 0)
            lhs = sp.MatrixSymbol(f"bar:{s.name}@=0", *va.vc.shape(s))
            out[f"vector_{s.name}0_bar"] = Result(f"vector_{s.name}0_bar", e, lhs)
        return out

    # -- the worked example -------------------------------------------------------------------
    @cached_property
    def example_trajectory(self) -> dict:
        """The example's forward pass by the engine (float64): every variable per step."""
        w, x, init, _ = self.example.floats()
        return forward(self.cell, w, x, init)

    @cached_property
    def example_sweep(self) -> Gradients:
        """The derived adjoint equations evaluated on the example (float64)."""
        w, _, _, a = self.example.floats()
        return self.scalar_sweep.run(self.example_trajectory, w, a)

    @cached_property
    def example_arguments(self) -> list[tuple[int, str, bool, float]]:
        """(step, variable, whether it is a gate, |z|) for every sigma(z) and tanh(z) in
        the example's forward pass: a gate is a variable assigned sigma(z) or tanh(z).
        Read by the constructor's refusal and by the checks' choice of tolerance."""
        traj, cell = self.example_trajectory, self.cell
        w = self.example.floats()[0]
        at_t = cell.at_step(0)  # the cell's local symbols as quantities at step t
        out = []
        for k in range(1, self.example.steps + 1):
            for u, e in cell.assignments:
                for f in e.atoms(*NUMERIC):
                    z = abs(float(evaluate_at(f.args[0].xreplace(at_t), traj, w, k)))
                    out.append((k, u.name, f == e, z))
        return out

    def _refuse_saturated_gates(self, where: str) -> None:
        for k, name, gate, z in self.example_arguments:
            if gate and z > EXAMPLE_MAX_Z:
                raise InputError(
                    f"{where}: the gate {name} saturates at step {k} (|pre-activation| = "
                    f"{z:.3g}); a worked example keeps every gate within |z| <= "
                    f"{EXAMPLE_MAX_Z:g}, where float64 still resolves its slope well enough to "
                    "check the example: use smaller weights, inputs or h0"
                )

    def _derive_example(self) -> dict[str, Result]:
        """Forward values, adjoints per step and weight gradients of the example (float64)."""
        traj, g = self.example_trajectory, self.example_sweep
        steps = range(1, self.example.steps + 1)
        names = [v.name for v in self.cell.variables]
        fwd = {v: [float(traj[v][k]) for k in steps] for v in names}
        adj = {v: [float(g.bars[v][k]) for k in steps] for v in reversed(names)}
        grad = {w: float(g.params[w]) for w in self.weights}
        return {
            "example_forward": Result("example_forward", _float_rows(fwd.values()), value=fwd),
            "example_adjoints": Result("example_adjoints", _float_rows(adj.values()), value=adj),
            "example_grad": Result("example_grad", _float_rows([grad.values()]), value=grad),
        }

    def _example_context(self) -> dict[str, Any] | None:
        """The example's tables for the key: given numbers exact, computed ones to 6 digits."""
        ex = self.example
        if ex is None:
            return None
        r = self.results
        fwd, adj = r["example_forward"].value, r["example_adjoints"].value
        steps = range(ex.steps)
        return {
            **self._example_question(),
            "forward_head": [timed(x) for x in ex.inputs] + [timed(v) for v in fwd],
            "forward_rows": [
                (k + 1, [s[k] for s in ex.inputs.values()], [sig6(s[k]) for s in fwd.values()])
                for k in steps
            ],
            "adjoint_head": [loss_grad(v) for v in ex.loss] + [bar(v) for v in adj],
            "adjoint_rows": [
                (k + 1, [s[k] for s in ex.loss.values()], [sig6(s[k]) for s in adj.values()])
                for k in steps
            ],
            "grad": [(param_bar(w), sig6(v)) for w, v in r["example_grad"].value.items()],
            "reference_digits": REFERENCE_DPS,
            "derived_digits": DERIVED_DPS,
        }

    def _example_question(self) -> dict[str, Any] | None:
        """The example's given numbers, exact, as a question states them."""
        ex = self.example
        if ex is None:
            return None
        given = {**ex.inputs, **ex.loss}
        return {
            "T": ex.steps,
            "weights": [(sp.Symbol(w), v) for w, v in ex.weights.items()],
            "initial": [(timed(s, -t), v) for s, v in ex.initial.items()],
            "head": [timed(x) for x in ex.inputs] + [loss_grad(v) for v in ex.loss],
            "rows": [(k + 1, [s[k] for s in given.values()]) for k in range(ex.steps)],
            "loss_on": [timed(v) for v in ex.loss],
        }

    def shapes(self) -> dict[str, tuple]:
        """Shape of every quantity of the vector form."""
        return self.vector_adjoints.shapes()

    # -- what the template formats ------------------------------------------------------------
    def check_groups(self) -> list[tuple[str, list[Check]]]:
        """The checks in the tables the key prints: by form, and saturated apart."""
        groups: dict[str, list[Check]] = {}
        for c in self.checks:
            if c.claim.startswith("example_"):
                name = "Worked example"
            elif c.method.split(",")[0] not in METHODS:
                name = "Backward map"
            else:
                name = (
                    "Vector form, with biases" if c.claim.startswith("vector_") else "Scalar form"
                )
                name += ", saturated weights" if c.method.endswith("saturated") else ""
            groups.setdefault(name, []).append(c)
        order = ["Scalar form", "Scalar form, saturated weights", "Vector form, with biases"]
        order += ["Vector form, with biases, saturated weights", "Backward map", "Worked example"]
        return [(name, groups[name]) for name in order if name in groups]

    def _map_entries(self) -> list[tuple[sp.Expr, sp.Expr, sp.Expr]]:
        """J's entries as a key prints them: where an earlier entry (a sum) appears inside a
        later one, it is written as that entry's partial derivative, as a hand derivation
        would (the LSTM's dc/dc holds dh/dc whole: c reaches h(t) through o tanh c)."""
        jac = self.results["backward_map"].expr
        now = [bar(s.name) for s in self.cell.states]
        nxt = [bar(s.name, 1) for s in self.cell.states]
        out, named = [], {}
        for i, j in itertools.product(range(len(now)), range(len(nxt))):
            entry = jac[i, j]
            out.append((now[i], nxt[j], entry.xreplace(named)))
            if isinstance(entry, sp.Add):
                named[entry] = sp.Derivative(now[i], nxt[j])
        return out

    def context(self) -> dict[str, Any]:
        r = self.results
        step = self.cell.at_step(0)
        vc = self.vector_adjoints.vc
        vstep = {s: vc.sym(s) for s in step}
        variables = list(reversed(self.cell.variables))
        inputs = [x.name for x in self.cell.inputs]
        return {
            **super().context(),
            "forward": [(step[u], e.xreplace(step)) for u, e in self.cell.assignments],
            "vector_forward": [
                (vstep[u], vc.to_vec(e, 0)) for u, e in self.vector_cell.assignments
            ],
            "adjoints": [r[f"{v.name}_bar"] for v in variables],
            "weights_bar": [r[f"{w}_bar"] for w in self.weights],
            "rest": [r[f"{s.name}0_bar"] for s in self.cell.states]
            + [r[f"{x}_bar"] for x in inputs],
            "vector_adjoints": [r[f"vector_{v.name}_bar"] for v in variables],
            "vector_params": [r[f"vector_{p}_bar"] for p in (*self.weights, *self.biases)],
            "vector_rest": [r[f"vector_{x}_bar"] for x in inputs]
            + [r[f"vector_{s.name}0_bar"] for s in self.cell.states],
            "shapes": [(vc.sym(sp.Symbol(n)), *shape) for n, shape in self.shapes().items()],
            "inputs": [timed(x) for x in inputs],
            "states_now": [bar(s.name) for s in self.cell.states],
            "states_next": [bar(s.name, 1) for s in self.cell.states],
            "backward_map_entries": self._map_entries(),
            "check_groups": [(n, g) for n, g in self.check_groups() if g],
            "example": self._example_context(),
        }

    def question_data(self) -> dict[str, Any]:
        """The given cell (its assignments at step t) and the quantities the parts ask for."""
        step = self.cell.at_step(0)
        return {
            "forward": [(step[u], e.xreplace(step)) for u, e in self.cell.assignments],
            "inputs": [timed(x.name) for x in self.cell.inputs],
            "loss_on": [timed(v.name) for v in self.cell.loss_on],
            # Asked for, not answered: the adjoints' names, latest assignment first.
            "adjoints": [bar(v.name) for v in reversed(self.cell.variables)],
            "weights": [sp.Symbol(w) for w in self.weights],
            "weight_bar": param_bar(self.weights[0]),
            "example": self._example_question(),
        }

    # -- verification -------------------------------------------------------------------------
    def default_cases(self) -> list[Case]:
        scalar = [Case(1, seed=1), Case(2, seed=2), Case(7, seed=3), Case(50, seed=4)]
        scalar += [Case(3, scale=10, seed=5), Case(50, scale=10, seed=6), Case(3, seed=7)]
        vector = [Case(1, 3, 2, seed=8), Case(7, 3, 2, seed=9), Case(50, 3, 2, seed=10)]
        vector += [Case(50, 3, 2, scale=10, seed=11), Case(3, 2, 2, seed=12)]
        return scalar + vector

    def verify(self) -> list[Check]:
        cases = self.cases or self.default_cases()
        rows = gradient_checks(self.cell, [c for c in cases if not c.vector])
        rows += gradient_checks(self.vector_cell, [c for c in cases if c.vector], prefix="vector_")
        rows += self._map_checks()
        return rows if self.example is None else rows + self._example_checks()

    def _map_checks(self, steps: int = 8) -> list[Check]:
        """The derived backward map J against J read off the forward pass at every step."""
        worst = 0.0
        jac = self.results["backward_map"].expr
        for case in (Case(steps, seed=14), Case(steps, scale=5, seed=15)):
            params, inputs, init = scalar_data(self.cell, case)
            traj = forward(self.cell, params, inputs, init)
            for k in range(2, steps + 1):
                probed = backward_map_by_probes(self.cell, params, inputs, init, k)
                worst = max(worst, compare_at(jac, traj, params, k - 1, probed))
        sizes = f"T={steps}, every step, |w| up to 1,5, seeds 14,15"
        return [Check("backward_map", "complex step on the forward pass", sizes, worst, 1e-11)]

    def _example_checks(self) -> list[Check]:
        """The example's numbers against a forward pass written out by hand (``plain_step``).

        Forward values: that pass in float64.  Gradients and adjoints: its complex-step
        derivatives and its 50-digit mpmath central differences, the latter also against
        the derived equations evaluated at 50 digits (which tests the formulas themselves).
        """
        ex = self.example
        w, x, init, _ = ex.floats()
        names = [v.name for v in self.cell.variables]
        plain = plain_run(self, w, x, init, math)
        got = [self.results["example_forward"].value[v] for v in names]
        err = rel_error(got, [[row[v] for row in plain] for v in names])
        sizes = f"T={ex.steps}, the example's numbers"
        method = "float64 vs a forward pass written out by hand"
        return [
            Check("example_forward", method, sizes, err, METHODS["complex step"]),
            *self._example_gradient_checks(),
        ]

    def _example_gradient_checks(self) -> list[Check]:
        """``example_grad`` and ``example_adjoints`` by the three routes of _example_checks."""
        r, (w, x, init, a) = self.results, self.example.floats()
        probes = self._example_probes()
        got = [r["example_grad"].value[name] for name in self.weights]
        got += [v for vals in r["example_adjoints"].value.values() for v in vals]
        # The step of gradcheck's complex-step route: no subtraction, so any tiny h will do.
        h = COMPLEX_H
        cs = [plain_loss(self, w, x, init, a, cmath, p, 1j * h).imag / h for p in probes]
        deep, deep_got = self._example_mpmath(probes)
        refs = {
            "complex step of the hand-written pass": cs,
            "float64 vs 50-digit central differences of that pass": deep,
        }
        # Beyond SATURATION float64 keeps fewer digits of the slopes: the house's saturated
        # tolerances apply.  Both float64 routes measure the same round-off: one tolerance.
        steep = max(z for *_, z in self.example_arguments)
        saturated = steep > SATURATION
        tol = (SATURATED if saturated else METHODS)["complex step"]
        tail = ", saturated" if saturated else ""
        sizes = f"T={self.example.steps}, the example's numbers, max |z| = {steep:.3g}"
        n, rows = len(self.weights), []
        for claim, part in (("example_grad", slice(0, n)), ("example_adjoints", slice(n, None))):
            rows += [
                Check(claim, m + tail, sizes, rel_error(got[part], ref[part]), tol)
                for m, ref in refs.items()
            ]
            err = rel_error(deep_got[part], deep[part])
            method = "derived equations at 50 digits vs those differences"
            rows.append(Check(claim, method, sizes, err, METHODS["mpmath 50 digits"]))
        return rows

    def _example_probes(self) -> list[tuple]:
        """Every derivative the example checks, in result order: ``("w", name)`` perturbs a
        weight, ``(k, name)`` a variable right after step k computes it (its adjoint)."""
        out: list[tuple] = [("w", name) for name in self.weights]
        adj = self.results["example_adjoints"].value
        return out + [(k, v) for v in adj for k in range(1, self.example.steps + 1)]

    def _example_mpmath(self, probes: list[tuple]) -> tuple[list, list]:
        """Central differences of the hand-written pass and the derived equations, at the
        precisions and step of gradcheck's 50-digit routes, on the exact given numbers."""
        with mpmath.workdps(REFERENCE_DPS):
            h = mpmath.mpf(REFERENCE_H)
            w, x, init, a = self.example.mp()
            ref = []
            for p in probes:
                up = plain_loss(self, w, x, init, a, mpmath, p, h)
                down = plain_loss(self, w, x, init, a, mpmath, p, -h)
                ref.append((up - down) / (2 * h))
        with mpmath.workdps(DERIVED_DPS):
            w, x, init, a = self.example.mp()
            traj = forward(self.cell, w, x, init, "mpmath")
            g = sweep_for(self.cell, "mpmath").run(traj, w, a)
            got = [g.params[n] if k == "w" else g.bars[n][k] for k, n in probes]
            # The sweep hands back some 0-d object arrays; unwrap them at this precision
            # (mpf() outside this block would round to 15 digits).
            got = [mpmath.mpf(np.asarray(v).item()) for v in got]
        return ref, got

    # -- numbers ------------------------------------------------------------------------------
    def grad(self, data: Any, backend: str = "auto") -> dict:
        """Evaluate the derived adjoints on the numbers of a ``derive grad`` input.

        The input holds ``weights`` (every parameter by name), each input's sequence, each
        state's initial value as ``<state>0`` and each loss variable's weights as
        ``dL_d<variable>`` (the loss is L = sum_t a_t . v_t).  ``backend`` is ``c`` (the
        equations compiled to C, ``derive.engine.native``; scalar cell only), ``numpy``
        (``ScalarSweep``/``VectorSweep``) or ``auto`` (C when it can run here, else NumPy);
        the output's ``backend`` says which ran.  Sequences are bounded (``GRAD_MAX_T`` steps;
        the vector form ``GRAD_MAX_T_VECTOR``, ``GRAD_MAX_SIZE``, ``GRAD_MAX_SERIES``): beyond
        a bound, an ``InputError`` that gives it.
        """
        if backend not in BACKENDS:
            raise InputError(f"backend: {backend!r} is unknown; use one of {', '.join(BACKENDS)}")
        cell = self.cell
        keys = ["weights", *[x.name for x in cell.inputs]]
        keys += [f"{s.name}0" for s in cell.states] + [f"dL_d{v.name}" for v in cell.loss_on]
        top = inp.mapping(data, "input", keys)
        weights = inp.mapping(top["weights"], "weights", self.weights, self.biases)
        # Overflow is reported below as one clear error, not as NumPy warnings.
        with np.errstate(all="ignore"):
            if isinstance(weights[self.weights[0]], list):
                if backend == "c":
                    raise InputError(
                        "--backend c: the vector form (matrices) runs on NumPy only; use "
                        "--backend auto or numpy"
                    )
                out, used = _bounded(self, lambda: (_grad_vector(self, top, weights), "numpy"))
            else:
                try:
                    out, used = _bounded(self, lambda: _grad_scalar(self, top, weights, backend))
                except OverflowError:  # plain floats raise where arrays would give inf
                    inp.finite_output([math.inf], f"grad {self.key}")
        for key, value in [*((k, v) for k, v in out.items() if k != "grad"), *out["grad"].items()]:
            inp.finite_output(value, f"grad {self.key} ({key})")
        return {**out, "backend": used}


def scalar_data(cell: Cell, case: Case) -> tuple[dict, dict, dict]:
    """A case's random data as plain floats: parameters, input sequences, initial states."""
    data = make_data(cell, case)
    params = {k: float(v[0, 0]) for k, v in data.params.items()}
    inputs = {k: [float(v[0, 0]) for v in seq] for k, seq in data.inputs.items()}
    return params, inputs, {k: float(v[0, 0]) for k, v in data.initial.items()}


def compare_at(expr, traj, params, k: int, ref: np.ndarray) -> float:
    """Error of a derived expression evaluated at step k against ``ref``; inf if it
    cannot be evaluated there (a wrong step index reads past the sequence)."""
    try:
        got = np.array(evaluate_at(expr, traj, params, k), dtype=float)
    except (IndexError, KeyError, TypeError):
        return float("inf")
    return rel_error(got, ref)


# -- the worked example: given numbers, the hand-written pass, printing -----------------------
@dataclass(frozen=True)
class Example:
    """A worked example's given numbers, exact as stated (SymPy rationals).

    ``inputs`` and ``loss`` hold one number per step: each input's sequence and, for each
    variable the loss reads, the weights a_t of L = sum_t a_t v_t.
    """

    weights: dict[str, sp.Rational]
    inputs: dict[str, list[sp.Rational]]
    initial: dict[str, sp.Rational]
    loss: dict[str, list[sp.Rational]]

    @property
    def steps(self) -> int:
        return len(next(iter(self.inputs.values())))

    def _convert(self, number: Callable) -> tuple[dict, dict, dict, dict]:
        def each(d: dict) -> dict:
            return {
                k: [number(v) for v in x] if isinstance(x, list) else number(x)
                for k, x in d.items()
            }

        return each(self.weights), each(self.inputs), each(self.initial), each(self.loss)

    def floats(self) -> tuple[dict, dict, dict, dict]:
        """Weights, inputs, initial states and loss weights in float64."""
        return self._convert(float)

    def mp(self) -> tuple[dict, dict, dict, dict]:
        """The same as mpmath numbers at the working precision (exact rationals divided)."""
        return self._convert(lambda v: mpmath.mpf(int(v.p)) / int(v.q))


@cache
def _cell_names(cls: type[RecurrentProblem]) -> frozenset[str]:
    # make_cell reads nothing from the instance (a cell is the class's), so an
    # uninitialised one serves and no parameter is parsed.
    bare = cls.__new__(cls)
    cells = (bare.make_cell(biases=False), bare.make_cell(biases=True))
    return frozenset(s.name for c in cells for s in (*c.inputs, *c.variables, *c.params))


def parse_example(cell: Cell, raw: Any, where: str) -> Example:
    """A worked example from untrusted data (a set file), every field checked.

    ``raw`` has the keys of a ``derive grad`` input for the scalar cell: ``weights`` (each
    weight by name), each input's sequence, each state's initial value as ``<state>0`` and
    ``dL_d<variable>`` for each variable the loss reads.  Numbers are exact (integers,
    decimals, fractions as text) with |v| <= EXAMPLE_MAX_ABS; sequences have 1 to
    EXAMPLE_MAX_T entries, all the same length.
    """
    inputs = [x.name for x in cell.inputs]
    states = [f"{s.name}0" for s in cell.states]
    losses = [f"dL_d{v.name}" for v in cell.loss_on]
    _keys(raw, ["weights", *inputs, *states, *losses], where, "key")
    weights = [p.name for p in cell.weights]
    _keys(raw["weights"], weights, f"{where}.weights", "weight")
    seqs = {k: _example_sequence(raw[k], f"{where}.{k}") for k in (*inputs, *losses)}
    first = next(iter(seqs))
    for k, v in seqs.items():
        if len(v) != len(seqs[first]):
            raise InputError(
                f"{where}.{k}: expected {len(seqs[first])} numbers, one per step as "
                f"{first} has, got {len(v)}"
            )
    return Example(
        {k: _example_number(raw["weights"][k], f"{where}.weights.{k}") for k in weights},
        {k: seqs[k] for k in inputs},
        {k[:-1]: _example_number(raw[k], f"{where}.{k}") for k in states},
        {k[len("dL_d") :]: seqs[k] for k in losses},
    )


def _keys(table: Any, required: list[str], where: str, noun: str) -> None:
    if not isinstance(table, dict):
        raise InputError(
            f"{where}: expected a table with the {noun}s {', '.join(required)}, got {show(table)}"
        )
    for k in required:
        if k not in table:
            raise InputError(f"{where}.{k}: missing; required are {', '.join(required)}")
    for k in table:
        if k not in required:
            # A bias is a natural guess; say why it is refused.
            why = " (the worked example uses the scalar cell, without biases)"
            why = why if noun == "weight" and str(k).startswith("b_") else ""
            raise InputError(f"{where}.{k}: unknown {noun}{why}; allowed are {', '.join(required)}")


def _example_sequence(value: Any, where: str) -> list[sp.Rational]:
    if not isinstance(value, list) or not 1 <= len(value) <= EXAMPLE_MAX_T:
        got = f"a list of {len(value)}" if isinstance(value, list) else show(value)
        raise InputError(
            f"{where}: expected a list of 1 to {EXAMPLE_MAX_T} numbers (one per step), got {got}"
        )
    return [_example_number(v, f"{where}[{i}]") for i, v in enumerate(value)]


def _example_number(value: Any, where: str) -> sp.Rational:
    x = exact_number(value, where)
    if abs(x) > EXAMPLE_MAX_ABS:
        raise InputError(
            f"{where}: {show(value)} is out of range; allowed is |x| <= {EXAMPLE_MAX_ABS}"
        )
    return x


#: The logistic sigmoid in its textbook form 1 / (1 + exp(-z)), ``plain_sigma(z, lib)``, for
#: the hand-written passes (``plain_step``); the engine uses its stable form instead.
plain_sigma = textbook("sigma")


def plain_run(
    problem: RecurrentProblem,
    w: dict,
    x: dict,
    init: dict,
    lib: Any,
    probe: tuple | None = None,
    delta: Any = 0,
) -> list[dict]:
    """Every variable at every step of the hand-written pass (``problem.plain_step``).

    ``probe`` adds ``delta`` to a weight (``("w", name)``) or to a variable right after
    step k computes it (``(k, name)``).
    """
    w = dict(w)
    if probe is not None and probe[0] == "w":
        w[probe[1]] = w[probe[1]] + delta
    prev, rows = dict(init), []
    for k in range(1, len(next(iter(x.values()))) + 1):
        bump = {probe[1]: delta} if probe is not None and probe[0] == k else {}
        row = problem.plain_step(w, {n: v[k - 1] for n, v in x.items()}, prev, lib, bump)
        prev = {s: row[s] for s in prev}
        rows.append(row)
    return rows


def plain_loss(
    problem: RecurrentProblem,
    w: dict,
    x: dict,
    init: dict,
    a: dict,
    lib: Any,
    probe: tuple | None = None,
    delta: Any = 0,
) -> Any:
    """L = sum_t a_t v_t over the hand-written pass, with ``delta`` added at ``probe``."""
    rows = plain_run(problem, w, x, init, lib, probe, delta)
    return sum(ak * row[v] for v, seq in a.items() for ak, row in zip(seq, rows, strict=True))


def sig6(value: float) -> str:
    """``value`` to 6 significant digits as LaTeX math: 0.123457, -2.5, 1.5\\times 10^{-7}."""
    text = f"{value:.6g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        return rf"{mantissa}\times 10^{{{int(exponent)}}}"
    return "0" if text == "-0" else text


def _float_rows(rows) -> sp.Matrix:
    return sp.Matrix([[sp.Float(v) for v in row] for row in rows])


def _bounded(problem: RecurrentProblem, evaluate: Callable[[], tuple]) -> tuple:
    """``evaluate()``; running out of memory is reported as one line, not a traceback (the
    bounds on the input keep it rare: a machine with little memory free)."""
    try:
        return evaluate()
    except MemoryError:
        raise InputError(
            f"grad {problem.key}: not enough memory for this input; give fewer steps or "
            "smaller matrices"
        ) from None


def _sequence(value: Any, field: str, most: int = GRAD_MAX_T, form: str = "") -> list:
    if not isinstance(value, list) or not value:
        raise inp.InputError(f"{field}: expected a non-empty list with one entry per step")
    if len(value) > most:
        raise inp.InputError(f"{field}: expected at most {most} steps{form}, got {len(value)}")
    return value


def _same_length(seqs: dict[str, list], noun: str) -> int:
    lengths = {len(v) for v in seqs.values()}
    if len(lengths) > 1:
        first = next(iter(seqs))
        for k, v in seqs.items():
            if len(v) != len(seqs[first]):
                raise inp.InputError(
                    f"{k}: expected {len(seqs[first])} {noun} (one per step of {first}), "
                    f"got {len(v)}"
                )
    return lengths.pop()


def _grad_scalar(
    problem: RecurrentProblem, top: dict, weights: dict, backend: str
) -> tuple[dict, str]:
    """The scalar cell's ``derive grad`` output, and the backend that computed it."""
    cell = problem.cell
    if any(b in weights for b in problem.biases):
        raise inp.InputError(
            f"weights: biases {', '.join(problem.biases)} need the vector form (matrices)"
        )
    params = {k: inp.number(weights[k], f"weights.{k}") for k in problem.weights}
    seqs = {x.name: _sequence(top[x.name], x.name) for x in cell.inputs}
    seqs |= {
        f"dL_d{v.name}": _sequence(top[f"dL_d{v.name}"], f"dL_d{v.name}") for v in cell.loss_on
    }
    _same_length(seqs, "numbers")
    seqs = {k: [inp.number(v, f"{k}[{i}]") for i, v in enumerate(s)] for k, s in seqs.items()}
    init = {s.name: inp.number(top[f"{s.name}0"], f"{s.name}0") for s in cell.states}
    inputs = {x.name: seqs[x.name] for x in cell.inputs}
    loss = {v.name: seqs[f"dL_d{v.name}"] for v in cell.loss_on}
    run = _native_run(cell, params, inputs, init, loss, backend)
    used = "c" if run is not None else "numpy"
    if run is None:
        traj = forward(cell, params, inputs, init)
        run = traj, problem.scalar_sweep.run(traj, params, loss)
    traj, g = run
    steps = len(next(iter(inputs.values())))
    out = {k: float(v) for k, v in g.params.items()}
    out |= {f"{s}0": float(v) for s, v in g.initial.items()}
    out |= {x: [float(v) for v in g.bars[x][1 : steps + 1]] for x in inputs}
    states = {s.name: [float(v) for v in traj[s.name][1:]] for s in cell.states}
    return {**states, "grad": out}, used


def _native_run(
    cell: Cell, params: dict, inputs: dict, init: dict, loss: dict, backend: str
) -> tuple | None:
    """The compiled C gradient (``derive.engine.native``), or None to run NumPy instead:
    ``numpy`` asked for, or ``auto`` where C cannot run.  ``c`` where it cannot run is the
    user's error."""
    if backend == "numpy":
        return None
    states = [s.name for s in cell.states]
    try:  # only what the output shows: the states and the inputs' adjoints
        return native_gradient(cell, params, inputs, init, loss, values=states, bars=list(inputs))
    except (NativeUnavailable, ValueError) as exc:
        why = " ".join(str(exc).split())[:500]  # the compiler's messages, on one line
        if backend == "c":
            raise InputError(f"--backend c: the C backend cannot run here: {why}") from None
        # No compiler, or a cell the C printer has no form for (ValueError): NumPy is the
        # plan, not a failure.  Anything else (the compile, the cache, the spot check) is
        # something to mend, and auto says so rather than quietly running slower.
        if isinstance(exc, NativeUnavailable) and not isinstance(exc, NoCompiler):
            warn(f"the C backend cannot run here ({why}); using NumPy")
        return None


def _grad_vector(problem: RecurrentProblem, top: dict, weights: dict) -> dict:
    cell, vc = problem.vector_cell, problem.vector_adjoints.vc
    first, most = problem.weights[0], GRAD_MAX_SIZE
    rows = inp.matrix(weights[first], f"weights.{first}", most=most).shape[0]
    sizes = {n_h: rows}
    for w in problem.weights:  # the input size from the first weight that multiplies x
        if vc.shape(sp.Symbol(w))[1] == n_x:
            sizes[n_x] = inp.matrix(weights[w], f"weights.{w}", most=most).shape[1]
            break
    sizes.setdefault(n_x, rows)

    def dims(name: str) -> tuple[int, int]:
        return tuple(int(sp.sympify(d).subs(sizes)) for d in vc.shape(sp.Symbol(name)))

    params = {k: inp.matrix(weights[k], f"weights.{k}", dims(k)) for k in problem.weights}
    for k in problem.biases:
        given = k in weights
        params[k] = inp.vector(weights[k], f"weights.{k}", rows) if given else np.zeros((rows, 1))
    form = (GRAD_MAX_T_VECTOR, " in the vector form (matrices)")
    seqs = {x.name: _sequence(top[x.name], x.name, *form) for x in cell.inputs}
    seqs |= {
        f"dL_d{v.name}": _sequence(top[f"dL_d{v.name}"], f"dL_d{v.name}", *form)
        for v in cell.loss_on
    }
    steps = _same_length(seqs, "vectors")
    size_of = {x.name: dims(x.name)[0] for x in cell.inputs} | {
        f"dL_d{v.name}": rows for v in cell.loss_on
    }
    if steps * sum(size_of.values()) > GRAD_MAX_SERIES:
        raise inp.InputError(
            f"{', '.join(size_of)}: {steps} steps of {sum(size_of.values())} numbers are "
            f"{steps * sum(size_of.values())}; the vector form takes at most "
            f"{GRAD_MAX_SERIES} numbers in its sequences"
        )
    seqs = {
        k: [inp.vector(v, f"{k}[{i}]", size_of[k]) for i, v in enumerate(s)]
        for k, s in seqs.items()
    }
    init = {s.name: inp.vector(top[f"{s.name}0"], f"{s.name}0", rows) for s in cell.states}
    inputs = {x.name: seqs[x.name] for x in cell.inputs}
    traj = forward(cell, params, inputs, init)
    loss = {v.name: seqs[f"dL_d{v.name}"] for v in cell.loss_on}
    g = VectorSweep(problem.vector_adjoints).run(traj, params, loss)
    out = {k: g.params[k].tolist() for k in problem.weights}
    out |= {k: g.params[k].ravel().tolist() for k in problem.biases if k in weights}
    out |= {f"{s}0": v.ravel().tolist() for s, v in g.initial.items()}
    out |= {x: [v.ravel().tolist() for v in g.bars[x][1 : steps + 1]] for x in inputs}
    states = {s.name: [v.ravel().tolist() for v in traj[s.name][1:]] for s in cell.states}
    return {**states, "grad": out}
