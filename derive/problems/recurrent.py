"""Recurrent-cell problems: BPTT equations of a cell given as data.

``RecurrentProblem`` turns a cell (``make_cell``) into an answer key: the adjoint of every
variable at step t in chain-rule and simplified form, the gradient of every parameter, the
adjoints of the inputs and initial states, the same in matrix notation with biases, the
backward map J of the states' adjoints, and the claims that check them.  A problem for a
new cell (LSTM, GRU, MGU, ...) is a subclass that supplies the cell and a few labels; the
generic templates (``recurrent.tex.j2``, ``recurrent.question.tex.j2``) print it.

**Worked example** (parameter ``example``, from a set file, read by ``derive.example``):
the derived equations evaluated on given scalar numbers, checked against the cell's
assignments run by an mpmath interpreter (``derive.example_run``).  ``derive grad`` on
numbers is ``derive.grad``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from functools import cache, cached_property, partial
from typing import Any, ClassVar

import sympy as sp

from derive import grad as grad_command
from derive.engine.adjoint import Adjoints
from derive.engine.cell import Cell, T, bar, param_bar, t, timed, vector_quantity
from derive.engine.numeric import ScalarSweep, forward, stable_forms, sweep_for
from derive.engine.spec import CellSpec
from derive.engine.vector import VectorAdjoints, at_absolute_step
from derive.example import parse_example
from derive.example_run import SATURATION, ExampleRun, float_matrix
from derive.params import Param, Raw
from derive.problems import recurrent_limit
from derive.problems.base import Problem, Result
from derive.problems.recurrent_docs import (
    CELL_CLAIM_NAMES,
    cell_result_docs,
    consumers,
    gated,
    local_rules,
)
from derive.verify import Check, Claim, apart, rel_error
from derive.verify.gradcheck import (  # scalar_data: lstm.py reads it from here
    METHODS,
    SATURATED,
    Case,
    backward_map_by_probes,
    compare_at,
    gradient_claims,
    scalar_data,
)
from derive.verify.routes import DERIVED_DPS, REFERENCE_DPS

#: A group of claims as the key prints it: its heading and its claims.
ClaimGroup = tuple[str, list[Claim]]


class RecurrentProblem(Problem):
    """Backprop-through-time equations of a recurrent cell, scalar and vector form."""

    SHOWN, CLAIM_NAMES = ("example",), CELL_CLAIM_NAMES
    PARAMS = (
        Param(
            "example",
            Raw(dict, "a table with weights, the input sequence, initial states and dL_dh"),
            None,
            "a worked numeric example, as for derive grad: weights by name (weights = {...}), "
            "inputs x (1 to 20 steps), initial states (h0, ...) and dL_dh at each step",
        ),
    )

    #: The cell as data: its names and equations.
    CELL: ClassVar[CellSpec]
    #: Besides the cell's own: the number of steps and the vector sizes.
    SYMBOLS = ("T", "n_h", "n_x", "u", "z")  # u = f(z): the local derivatives
    #: One pair of templates serves every cell (``recurrent.tex.j2``, ``.question.tex.j2``).
    TEMPLATE: ClassVar[str | None] = "recurrent"
    #: What the question calls the cell ("gated recurrent unit") and each assigned variable.
    NOUN: ClassVar[str] = "recurrent cell"
    ROLES: ClassVar[tuple[str, ...]] = ()
    #: The parts a set may label and score (``[labels.<key>]``, ``[points.<key>]``).
    LABELS: ClassVar[tuple[str, ...]] = ("adjoints", "weight", "map", "example")
    #: The heading of the backward map's evidence.
    MAP_GROUP: ClassVar[str] = "Backward map"
    #: A regime the key analyses (``derive.problems.recurrent_limit``): variable -> the end
    #: of its range it is held at (``{"f": 0}``), as ``derive.model.limit.parse_limit`` reads
    #: a set file's ``limit``; None for none.  Setting it adds the part ``limit`` to LABELS.
    LIMIT: ClassVar[dict[str, int] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        recurrent_limit.install(cls)  # a regime: its part in LABELS, its claims' names

    @classmethod
    def result_docs(cls) -> dict[str, str]:
        return cell_result_docs(cls.CELL, cls.LIMIT) | cls.RESULTS

    @classmethod
    def symbols(cls) -> frozenset[str]:
        """The cell's inputs, variables, weights and biases, with ``SYMBOLS``."""
        return _cell_names(cls) | super().symbols()

    def __init__(self, example: dict | None = None, cases: list[Case] | None = None) -> None:
        self.cases = cases
        where = f"params.{self.key}.example"
        self.example = None if example is None else parse_example(self.cell, example, where)
        self.example_run = None
        if self.example is not None:
            self.example_run = ExampleRun(self.cell, self.example)
            self.example_run.refuse_saturated_gates(where)

    def written_order(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The cell's equations as written (``CellSpec.written_order``)."""
        return self.CELL.written_order()

    def make_cell(self, biases: bool) -> Cell:
        """The cell built from ``CELL``; ``biases`` adds bias vectors (the vector form)."""
        return self.CELL.build(biases)

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
        if self.LIMIT is not None:
            out.update(recurrent_limit.derive_limit(self, out))
        if self.example is not None:
            out.update(self._derive_example())
        return out

    def _derive_vector(self) -> dict[str, Result]:
        va, out = self.vector_adjoints, {}
        for name, e in {**va.variables, **va.inputs}.items():
            out[f"vector_{name}_bar"] = Result(f"vector_{name}_bar", e, va.vc.bar(sp.Symbol(name)))
        for name, e in va.params.items():
            lhs = va.vc.bar(sp.Symbol(name))  # a parameter's gradient: no step
            out[f"vector_{name}_bar"] = Result(f"vector_{name}_bar", sp.Sum(e, (t, 1, T)), lhs)
        for s in self.cell.states:
            e = at_absolute_step(va.initial(s.name), 0)
            lhs = vector_quantity(s.name, va.vc.shape(s), "adjoint", step=0)
            out[f"vector_{s.name}0_bar"] = Result(f"vector_{s.name}0_bar", e, lhs)
        return out

    def _derive_example(self) -> dict[str, Result]:
        """Forward values, adjoints per step and weight gradients of the example (float64)."""
        fwd, adj, grad = self.example_run.tables(self.weights)
        return {
            "example_forward": Result("example_forward", float_matrix(fwd.values()), value=fwd),
            "example_adjoints": Result("example_adjoints", float_matrix(adj.values()), value=adj),
            "example_grad": Result("example_grad", float_matrix([grad.values()]), value=grad),
        }

    def shapes(self) -> dict[str, tuple]:
        """Shape of every quantity of the vector form."""
        return self.vector_adjoints.shapes()

    # -- claims -------------------------------------------------------------------------------
    def default_cases(self) -> list[Case]:
        scalar = [Case(1, seed=1), Case(2, seed=2), Case(7, seed=3), Case(50, seed=4)]
        scalar += [Case(3, scale=10, seed=5), Case(50, scale=10, seed=6), Case(3, seed=7)]
        vector = [Case(1, 3, 2, seed=8), Case(7, 3, 2, seed=9), Case(50, 3, 2, seed=10)]
        vector += [Case(50, 3, 2, scale=10, seed=11), Case(3, 2, 2, seed=12)]
        return scalar + vector

    @cached_property
    def claim_groups(self) -> list[ClaimGroup]:
        """Every claim, in the groups the key prints (measured once, on first use; the
        vector form's in a second process where one can be forked, ``verify.apart``)."""
        cases = self.cases or self.default_cases()
        groups: dict[str, Callable[[], list[Claim]]] = {}
        for form, vector in (("Scalar form", False), ("Vector form, with biases", True)):
            cell, prefix = (self.vector_cell, "vector_") if vector else (self.cell, "")
            for tail, steep in (("", False), (", saturated weights", True)):
                picked = [c for c in cases if c.vector == vector and (c.scale > 1) == steep]
                groups[form + tail] = partial(gradient_claims, cell, picked, prefix=prefix)
        groups[self.MAP_GROUP] = lambda: list(self.map_claims())
        if self.example is not None:
            groups["Worked example"] = lambda: list(self._example_claims())
        away = [i for i, name in enumerate(groups) if name.startswith("Vector form")]
        return list(zip(groups, apart.measured(list(groups.values()), away), strict=True))

    def claims(self) -> Iterator[Claim]:
        for _, claims in self.claim_groups:
            yield from claims

    def check_groups(self) -> list[tuple[str, list[Check]]]:
        """The checks in the tables the key prints, grouped as their claims are."""
        headings = [name for name, claims in self.claim_groups for _ in claims]
        groups: dict[str, list[Check]] = {}
        for name, check in zip(headings, self.checks, strict=True):
            groups.setdefault(name, []).append(check)
        return list(groups.items())

    def map_claims(self) -> Iterator[Claim]:
        """The claims about the backward map J (subclasses add their own analysis of J)."""
        sizes = "T = 8, every step, |w| \u2264 1 or 5, seeds 14, 15"
        route = "complex step on the forward pass"
        yield Claim("backward_map", route, sizes, 1e-11, lambda: self._map_error(8))
        if self.LIMIT is not None:
            yield from recurrent_limit.limit_claims(self)

    def _map_error(self, steps: int) -> float:
        """The derived backward map J against J read off the forward pass at every step (J
        in its float64-stable form: 1 - h^2 of a saturated h = tanh(z) is sech(z)^2)."""
        worst, jac = 0.0, stable_forms(self.cell, self.results["backward_map"].expr)
        for case in (Case(steps, seed=14), Case(steps, scale=5, seed=15)):
            params, inputs, init = scalar_data(self.cell, case)
            traj = forward(self.cell, params, inputs, init)
            for k in range(2, steps + 1):
                probed = backward_map_by_probes(self.cell, params, inputs, init, k)
                worst = max(worst, compare_at(jac, traj, params, k - 1, probed))
        return worst

    def _example_claims(self) -> Iterator[Claim]:
        """The example's numbers against the cell's assignments run by the interpreter.

        Both sides start from the cell's assignments, so these claims check the derived
        equations and their evaluation, not the assignments themselves (a typo there would
        pass; tests/test_recurrent_example.py keeps a hand-written forward pass per cell).

        Forward values: the interpreted pass at 60 digits.  Gradients and adjoints: its
        complex-step derivatives and its 60-digit central differences, the latter also
        against the derived equations evaluated at 50 digits (the formulas themselves).
        """
        run, r = self.example_run, self.results
        names = [v.name for v in self.cell.variables]
        fwd = r["example_forward"].value
        ref = run.interpreted_forward()
        err = rel_error([fwd[v] for v in names], [ref[v] for v in names])
        sizes = f"T={self.example.steps}, the example's numbers"
        method = f"float64 vs the cell's stated equations evaluated at {REFERENCE_DPS} digits"
        yield Claim.measured("example_forward", method, sizes, err, METHODS["complex step"])
        yield from self._example_gradient_claims()

    def _example_gradient_claims(self) -> Iterator[Claim]:
        """``example_grad`` and ``example_adjoints`` by the three routes of _example_claims."""
        run, r = self.example_run, self.results
        adj = r["example_adjoints"].value
        probes = [("w", name) for name in self.weights]
        probes += [(k, v) for v in adj for k in range(1, self.example.steps + 1)]
        got = [r["example_grad"].value[name] for name in self.weights]
        got += [v for vals in adj.values() for v in vals]
        deep = run.deep_differences(probes)
        refs = {
            "complex step of the forward pass from the stated equations": run.complex_steps(probes),
            f"float64 vs {REFERENCE_DPS}-digit central differences of the same pass": deep,
        }
        deep_got = run.derived_deep(probes)
        # Beyond SATURATION float64 keeps fewer digits of the slopes: the house's saturated
        # tolerances apply.  Both float64 routes measure the same round-off: one tolerance.
        saturated = run.steepest > SATURATION
        tol = (SATURATED if saturated else METHODS)["complex step"]
        tail = ", saturated" if saturated else ""
        sizes = f"T={self.example.steps}, the example's numbers, max |z| = {run.steepest:.3g}"
        n = len(self.weights)
        for claim, part in (("example_grad", slice(0, n)), ("example_adjoints", slice(n, None))):
            for m, ref in refs.items():
                yield Claim.measured(claim, m + tail, sizes, rel_error(got[part], ref[part]), tol)
            err = rel_error(deep_got[part], deep[part])
            method = f"derived equations at {DERIVED_DPS} digits vs those differences"
            yield Claim.measured(claim, method, sizes, err, METHODS["mpmath 50 digits"])

    # -- what the templates format ------------------------------------------------------------
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
        r, rules = self.results, local_rules(self.cell)
        vc = self.vector_adjoints.vc
        vstep = {s: vc.sym(s) for s in self.cell.at_step(0)}
        variables = list(reversed(self.cell.variables))
        inputs = [x.name for x in self.cell.inputs]
        return {
            **super().context(),
            "forward": self._forward_at_t(),
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
            "consumers": consumers(self.cell),
            "states_now": [bar(s.name) for s in self.cell.states],
            "states_next": [bar(s.name, 1) for s in self.cell.states],
            "backward_map_entries": self._map_entries(),
            "check_groups": [(n, g) for n, g in self.check_groups() if g],
            "example": self._example_context(),
            "local_rules": rules,
            "gated": gated(rules),
            "regime": None if self.LIMIT is None else recurrent_limit.context(self),
        }

    def stated(self) -> dict[str, Any]:
        """Which states the loss reads: part of the given cell (``CellSpec``)."""
        return {"loss_reads": [s in self.cell.loss_on for s in self.cell.states]}

    def _forward_at_t(self) -> list[tuple[sp.Expr, sp.Expr]]:
        step = self.cell.at_step(0)
        return [(step[u], e.xreplace(step)) for u, e in self.cell.assignments]

    def _example_context(self) -> dict[str, Any] | None:
        """The example's given numbers and computed tables, as the key prints them."""
        if self.example is None:
            return None
        r = self.results
        values = (r[f"example_{k}"].value for k in ("forward", "adjoints", "grad"))
        tables = self.example.tables(*values)
        return {**tables, "reference_digits": REFERENCE_DPS, "derived_digits": DERIVED_DPS}

    def question_data(self) -> dict[str, Any]:
        """The given cell (its assignments at step t) and the quantities the parts ask for."""
        states = self.cell.states
        return {
            "noun": self.NOUN,
            "roles": list(self.ROLES),
            "n_states": len(states),
            # Whether the cell uses the logistic sigmoid, which the question names.
            "sigmoid": gated(local_rules(self.cell)),
            "forward": self._forward_at_t(),
            "inputs": [timed(x.name) for x in self.cell.inputs],
            "loss_on": [timed(v.name) for v in self.cell.loss_on],
            # Asked for, not answered: the adjoints' names, latest assignment first.
            "adjoints": [bar(v.name) for v in reversed(self.cell.variables)],
            "weights": [sp.Symbol(w) for w in self.weights],
            "weight_bar": param_bar(self.weights[0]),
            "states_now": [bar(s.name) for s in states],
            "states_next": [bar(s.name, 1) for s in states],
            "example": None if self.example is None else self.example.question(),
            "regime": None if self.LIMIT is None else recurrent_limit.values(self.cell, self.LIMIT),
        }

    # -- numbers ------------------------------------------------------------------------------
    def grad(self, data: Any, backend: str = "auto") -> dict:
        """The derived adjoints on the numbers of a ``derive grad`` input (``derive.grad``)."""
        return grad_command.grad(self, data, backend)


@cache
def _cell_names(cls: type[RecurrentProblem]) -> frozenset[str]:
    # make_cell reads nothing from the instance (a cell is the class's), so an
    # uninitialised one serves and no parameter is parsed.
    bare = cls.__new__(cls)
    cells = (bare.make_cell(biases=False), bare.make_cell(biases=True))
    return frozenset(s.name for c in cells for s in (*c.inputs, *c.variables, *c.params))
