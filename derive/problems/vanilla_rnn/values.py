"""Numbers from the derived expressions of backprop through time.

``evaluate`` extends the engine's ``MatrixEvaluator`` by the notation's classes: a quantity
at a step reads a series, a loss row reads the loss weights, sums and ordered products run
over their steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from derive.engine.functions import sigma
from derive.engine.numeric import MatrixEvaluator
from derive.instances.rnn_sequence import logistic
from derive.problems.vanilla_rnn.notation import AtStep, OrderedProduct, Partial, StepSum


@dataclass
class Values:
    """Numbers for the symbols of a derived expression (vectors as (m, 1) columns)."""

    params: dict[str, np.ndarray]
    series: dict[str, list[np.ndarray]]  # name -> values at steps 0, 1, ..., T
    loss_rows: list[np.ndarray]  # ∂ℓ^(t)/∂h^(t) at t = 0, 1, ..., T (entry 0 unused)
    definitions: dict[str, tuple[sp.Symbol, sp.MatrixExpr]]  # σ' at a step from h
    sizes: dict[sp.Symbol, int]


def evaluate(e: Any, values: Values, env: dict | None = None) -> Any:
    """The number (array) a derived expression stands for; ``env`` fixes bound indices."""
    return _Evaluator(values, env or {})(e)


class _Evaluator(MatrixEvaluator):
    """The engine's evaluator plus this problem's classes: steps, sums and products."""

    def __init__(self, values: Values, env: dict) -> None:
        super().__init__(lambda m: values.params[m.name], {sigma: logistic}, values.sizes)
        self.values, self.env = values, env

    def rule(self, e):
        values, env = self.values, self.env
        if isinstance(e, AtStep):
            step = int(e.step.xreplace(env))
            if e.name in values.definitions:
                index, body = values.definitions[e.name]
                return _Evaluator(values, {**env, index: sp.Integer(step)})(body)
            return values.series[e.name][step]
        if isinstance(e, Partial):
            if isinstance(e.num, AtStep) and e.num.name == "ell":
                return values.loss_rows[int(e.num.step.xreplace(env))]
            raise TypeError(f"{e} is a symbol of the chain rule, not a number: substitute it")
        if isinstance(e, StepSum):
            return _sum_over(e.function, list(reversed(e.limits)), values, env)
        if isinstance(e, OrderedProduct):
            lo, hi = (int(a.xreplace(env)) for a in e.args[2:])
            out = np.eye(int(sp.sympify(e.rows).xreplace(values.sizes)))
            for v in range(hi, lo - 1, -1):  # latest step on the left
                out = out @ _Evaluator(values, {**env, e.index: sp.Integer(v)})(e.factor)
            return out
        return NotImplemented


def _sum_over(body, limits, values: Values, env: dict):
    (var, lo, hi), rest = limits[0], limits[1:]
    total = 0.0
    for v in range(int(lo.xreplace(env)), int(hi.xreplace(env)) + 1):
        inner = {**env, var: sp.Integer(v)}
        total = total + (
            _sum_over(body, rest, values, inner) if rest else evaluate(body, values, inner)
        )
    return total
