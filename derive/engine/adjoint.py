"""Backprop-through-time (adjoint) equations of a cell, derived once per step.

For a loss ``L`` summed over steps, the adjoint of a quantity ``v`` at step ``t`` is

    bar v(t) = dL/dv(t) [if the loss reads v]
             + sum over consumers u of v in step t      bar u(t)   * du(t)/dv(t)
             + sum over consumers u of v_prev in step t+1  bar u(t+1) * du(t+1)/dv(t)

and the gradient of a parameter ``w`` is ``sum_t sum_u bar u(t) * du(t)/dw``.  Each local
partial ``du/dv`` is ``sympy.diff`` of one right-hand side of the cell (never of an unrolled
recurrence, whose size grows about sixfold per step), rewritten in forward quantities by
``Cell.forward_rewrites``.  The result does not depend on the sequence length.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import sympy as sp

from derive.engine.cell import Cell, T, bar, loss_grad, param_bar, t, timed


@dataclass(frozen=True)
class Term:
    """One chain-rule term ``bar u(t+step) * du(t+step)/dv``.

    ``partial`` is the local derivative already written in forward quantities at the
    consumer's step.
    """

    consumer: sp.Symbol
    step: int
    wrt: sp.Expr
    partial: sp.Expr

    @property
    def chain(self) -> sp.Expr:
        """The term in chain-rule notation, derivative left unevaluated."""
        u = timed(self.consumer.name, self.step)
        return bar(self.consumer.name, self.step) * sp.Derivative(u, self.wrt)

    @property
    def value(self) -> sp.Expr:
        """The term with the local derivative carried out."""
        return bar(self.consumer.name, self.step) * self.partial


@dataclass(frozen=True)
class Adjoint:
    """The adjoint equation of one quantity: a loss term and chain-rule terms."""

    name: str
    lhs: sp.Expr
    terms: tuple[Term, ...]
    loss_term: sp.Expr | None = None
    summed: bool = False

    def _wrap(self, parts: list[sp.Expr]) -> sp.Expr:
        total = sp.Add(*parts, evaluate=False) if len(parts) > 1 else (parts or [sp.S.Zero])[0]
        return sp.Sum(total, (t, 1, T)) if self.summed else total

    @property
    def chain(self) -> sp.Expr:
        """Chain-rule form: the sum over consumers of bar u * du/dv."""
        loss = [self.loss_term] if self.loss_term is not None else []
        return self._wrap(loss + [term.chain for term in self.terms])

    @property
    def expr(self) -> sp.Expr:
        """Simplified form: every local derivative carried out in forward quantities."""
        loss = [self.loss_term] if self.loss_term is not None else []
        return self._wrap(loss + [term.value for term in self.terms])

    @property
    def from_next_step(self) -> sp.Expr:
        """The terms that arrive from step t+1: all an initial state (t = 0) receives."""
        return self._later(lambda e: e)

    @property
    def at_initial_step(self) -> sp.Expr:
        """The adjoint of the state's initial value (t = 0), terms in consumer order."""
        return self._later(lambda e: e.subs(t, 0))

    def _later(self, map_term) -> sp.Expr:
        later = [map_term(term.value) for term in self.terms if term.step == 1]
        return sp.Add(*later, evaluate=False) if len(later) > 1 else sp.Add(*later)


def local_partial(cell: Cell, u: sp.Symbol, v: sp.Symbol, step: int) -> sp.Expr:
    """``du/dv`` from the right-hand side of ``u``, in forward quantities at ``t+step``."""
    d = sp.diff(cell.rhs(u), v).xreplace(cell.forward_rewrites())
    return d.xreplace(cell.at_step(step))


def _terms(cell: Cell, v: sp.Symbol, wrt: sp.Expr) -> list[Term]:
    terms = [Term(u, 0, wrt, local_partial(cell, u, v, 0)) for u in cell.consumers(v)]
    if v in cell.prev:
        p = cell.prev[v]
        terms += [Term(u, 1, wrt, local_partial(cell, u, p, 1)) for u in cell.consumers(p)]
    return terms


class Adjoints:
    """Every adjoint equation and parameter gradient of a cell.

    Parameters
    ----------
    cell
        The cell to differentiate.  Nothing is derived until a result is asked for.
    """

    def __init__(self, cell: Cell) -> None:
        self.cell = cell

    @cached_property
    def variables(self) -> dict[str, Adjoint]:
        """Adjoints of the assigned variables, in the order a backward sweep computes them."""
        out = {}
        for v in reversed(self.cell.variables):
            wrt = timed(v.name, 0)
            loss = loss_grad(v.name, 0) if v in self.cell.loss_on else None
            out[v.name] = Adjoint(v.name, bar(v.name), tuple(_terms(self.cell, v, wrt)), loss)
        return out

    @cached_property
    def inputs(self) -> dict[str, Adjoint]:
        """Adjoints of the inputs at step t."""
        return {
            x.name: Adjoint(x.name, bar(x.name), tuple(_terms(self.cell, x, timed(x.name))))
            for x in self.cell.inputs
        }

    @cached_property
    def params(self) -> dict[str, Adjoint]:
        """Parameter gradients, each a sum over the steps t = 1..T."""
        return {
            w.name: Adjoint(w.name, param_bar(w.name), tuple(_terms(self.cell, w, w)), summed=True)
            for w in self.cell.params
        }

    def through_states(self) -> dict[sp.Expr, sp.Expr]:
        """Each variable's adjoint at step t written through the states' adjoints.

        Gate adjoints are substituted away; what remains refers to state adjoints (at t
        and t+1), forward quantities and the loss.
        """
        states = {bar(s.name) for s in self.cell.states}
        out: dict[sp.Expr, sp.Expr] = {}
        for adj in self.variables.values():
            gates = {k: v for k, v in out.items() if k not in states}
            out[adj.lhs] = adj.expr.xreplace(gates)
        return out

    def state_rows(self) -> dict[sp.Expr, sp.Expr]:
        """Each state's adjoint at step t written through the states' adjoints at t+1 alone
        (with forward quantities and the loss's direct terms): one step of the backward
        sweep, with every other adjoint eliminated."""
        forms = self.through_states()
        later = {k.subs(t, t + 1): v.subs(t, t + 1) for k, v in forms.items()}
        gates_later = {
            bar(u.name, 1): later[bar(u.name, 1)]
            for u in self.cell.variables
            if u not in self.cell.states
        }
        rows: dict[sp.Expr, sp.Expr] = {}
        for adj in self.variables.values():  # sweep order: a state may read an earlier one
            if adj.lhs in {bar(s.name) for s in self.cell.states}:
                rows[adj.lhs] = forms[adj.lhs].xreplace(gates_later).xreplace(rows)
        return rows

    def backward_map(self) -> tuple[list[sp.Expr], sp.Matrix]:
        """The Jacobian of the states' adjoints at t by the states' adjoints at t+1.

        This is the linear map the backward sweep applies once per step; its products over
        steps decide whether gradients explode or vanish.  Rows and columns follow the
        order of ``Cell.states``.
        """
        rows = self.state_rows()
        cols = [bar(s.name, 1) for s in self.cell.states]
        return cols, sp.Matrix([rows[bar(s.name)] for s in self.cell.states]).jacobian(cols)
