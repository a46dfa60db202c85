"""Recurrent-cell problems: BPTT equations of a cell given as data.

``RecurrentProblem`` turns a cell (``make_cell``) into an answer key: the adjoint of every
variable at step t in chain-rule and simplified form, the gradient of every parameter, the
adjoints of the inputs and initial states, the same in matrix notation with biases, the
backward map J of the states' adjoints, their checks, and ``grad`` on numbers.  A problem
for a new cell (LSTM, GRU, ...) is a subclass that only supplies the cell.
"""

from __future__ import annotations

from abc import abstractmethod
from functools import cached_property
from typing import Any

import numpy as np
import sympy as sp

from derive import inputs as inp
from derive.engine.adjoint import Adjoints
from derive.engine.cell import Cell, T, bar, t, timed
from derive.engine.numeric import ScalarSweep, VectorSweep, evaluate_at, forward
from derive.engine.vector import VectorAdjoints, at_absolute_step, n_h, n_x
from derive.gradcheck import (
    METHODS,
    Case,
    backward_map_by_probes,
    gradient_checks,
    make_data,
)
from derive.problems.base import Problem, Result
from derive.verify import Check, rel_error


class RecurrentProblem(Problem):
    """Backprop-through-time equations of a recurrent cell, scalar and vector form."""

    def __init__(self, cases: list[Case] | None = None) -> None:
        self.cases = cases

    @abstractmethod
    def make_cell(self, biases: bool) -> Cell:
        """The cell as data; ``biases`` adds bias vectors (the vector form)."""

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

    def shapes(self) -> dict[str, tuple]:
        """Shape of every quantity of the vector form."""
        return self.vector_adjoints.shapes()

    # -- what the template formats ------------------------------------------------------------
    def check_groups(self) -> list[tuple[str, list[Check]]]:
        """The checks in the tables the key prints: by form, and saturated apart."""
        groups: dict[str, list[Check]] = {}
        for c in self.checks:
            if c.method.split(",")[0] not in METHODS:
                name = "Backward map"
            else:
                name = (
                    "Vector form, with biases" if c.claim.startswith("vector_") else "Scalar form"
                )
                name += ", saturated weights" if c.method.endswith("saturated") else ""
            groups.setdefault(name, []).append(c)
        order = ["Scalar form", "Scalar form, saturated weights", "Vector form, with biases"]
        order += ["Vector form, with biases, saturated weights", "Backward map"]
        return [(name, groups[name]) for name in order if name in groups]

    def _map_entries(self) -> list[tuple[sp.Expr, sp.Expr, sp.Expr]]:
        jac = self.results["backward_map"].expr
        now = [bar(s.name) for s in self.cell.states]
        nxt = [bar(s.name, 1) for s in self.cell.states]
        return [(now[i], nxt[j], jac[i, j]) for i in range(len(now)) for j in range(len(nxt))]

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
            "weight_bar": sp.Symbol("bar:" + self.weights[0]),
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
        return rows + self._map_checks()

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

    # -- numbers ------------------------------------------------------------------------------
    def grad(self, data: Any) -> dict:
        """Evaluate the derived adjoints on the numbers of a ``derive grad`` input.

        The input holds ``weights`` (every parameter by name), each input's sequence, each
        state's initial value as ``<state>0`` and each loss variable's weights as
        ``dL_d<variable>`` (the loss is L = sum_t a_t . v_t).
        """
        cell = self.cell
        keys = ["weights", *[x.name for x in cell.inputs]]
        keys += [f"{s.name}0" for s in cell.states] + [f"dL_d{v.name}" for v in cell.loss_on]
        top = inp.mapping(data, "input", keys)
        weights = inp.mapping(top["weights"], "weights", self.weights, self.biases)
        # Overflow is reported below as one clear error, not as NumPy warnings.
        with np.errstate(all="ignore"):
            if isinstance(weights[self.weights[0]], list):
                out = _grad_vector(self, top, weights)
            else:
                out = _grad_scalar(self, top, weights)
        for key, value in [*((k, v) for k, v in out.items() if k != "grad"), *out["grad"].items()]:
            inp.finite_output(value, f"grad {self.key} ({key})")
        return out


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


def _sequence(value: Any, field: str) -> list:
    if not isinstance(value, list) or not value:
        raise inp.InputError(f"{field}: expected a non-empty list with one entry per step")
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


def _grad_scalar(problem: RecurrentProblem, top: dict, weights: dict) -> dict:
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
    traj = forward(cell, params, inputs, init)
    loss = {v.name: seqs[f"dL_d{v.name}"] for v in cell.loss_on}
    g = ScalarSweep(problem.adjoints).run(traj, params, loss)
    steps = len(next(iter(inputs.values())))
    out = {k: float(v) for k, v in g.params.items()}
    out |= {f"{s}0": float(v) for s, v in g.initial.items()}
    out |= {x: [float(v) for v in g.bars[x][1 : steps + 1]] for x in inputs}
    states = {s.name: [float(v) for v in traj[s.name][1:]] for s in cell.states}
    return {**states, "grad": out}


def _grad_vector(problem: RecurrentProblem, top: dict, weights: dict) -> dict:
    cell, vc = problem.vector_cell, problem.vector_adjoints.vc
    first = problem.weights[0]
    rows = inp.matrix(weights[first], f"weights.{first}").shape[0]
    sizes = {n_h: rows}
    for w in problem.weights:  # the input size from the first weight that multiplies x
        if vc.shape(sp.Symbol(w))[1] == n_x:
            sizes[n_x] = inp.matrix(weights[w], f"weights.{w}").shape[1]
            break
    sizes.setdefault(n_x, rows)

    def dims(name: str) -> tuple[int, int]:
        return tuple(int(sp.sympify(d).subs(sizes)) for d in vc.shape(sp.Symbol(name)))

    params = {k: inp.matrix(weights[k], f"weights.{k}", dims(k)) for k in problem.weights}
    for k in problem.biases:
        given = k in weights
        params[k] = inp.vector(weights[k], f"weights.{k}", rows) if given else np.zeros((rows, 1))
    seqs = {x.name: _sequence(top[x.name], x.name) for x in cell.inputs}
    seqs |= {
        f"dL_d{v.name}": _sequence(top[f"dL_d{v.name}"], f"dL_d{v.name}") for v in cell.loss_on
    }
    _same_length(seqs, "vectors")
    size_of = {x.name: dims(x.name)[0] for x in cell.inputs} | {
        f"dL_d{v.name}": rows for v in cell.loss_on
    }
    seqs = {
        k: [inp.vector(v, f"{k}[{i}]", size_of[k]) for i, v in enumerate(s)]
        for k, s in seqs.items()
    }
    init = {s.name: inp.vector(top[f"{s.name}0"], f"{s.name}0", rows) for s in cell.states}
    inputs = {x.name: seqs[x.name] for x in cell.inputs}
    traj = forward(cell, params, inputs, init)
    loss = {v.name: seqs[f"dL_d{v.name}"] for v in cell.loss_on}
    g = VectorSweep(problem.vector_adjoints).run(traj, params, loss)
    steps = len(next(iter(inputs.values())))
    out = {k: g.params[k].tolist() for k in problem.weights}
    out |= {k: g.params[k].ravel().tolist() for k in problem.biases if k in weights}
    out |= {f"{s}0": v.ravel().tolist() for s, v in g.initial.items()}
    out |= {x: [v.ravel().tolist() for v in g.bars[x][1 : steps + 1]] for x in inputs}
    states = {s.name: [v.ravel().tolist() for v in traj[s.name][1:]] for s in cell.states}
    return {**states, "grad": out}
