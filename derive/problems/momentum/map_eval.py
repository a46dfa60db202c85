"""One step of a map defined as data, on numbers (``derive eval`` of an optimizer).

The input names each state (``w``, ``v``), the gradient at each state the map reads it at
(``dw`` for ∇J(w)), each constant (``lr``) and the step counter if the map has one (``t``,
the steps completed before this one); the output holds every state after the step and the
counter increased.  The step is the map's own parse trees run in order
(``derive.model.maps.run``), with ∇J looked up in the given gradients.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from derive import inputs
from derive.errors import InputError
from derive.model.maps import Grad, MapSpec, old, run
from derive.params import show

#: The largest step counter accepted (a float64 power of a rate stays exact enough).
MAX_STEP = 10**9


def gradient_names(spec: MapSpec, where: str) -> dict[str, str]:
    """``{state: field}`` for each state the map takes ∇J at (``w`` -> ``dw``); a gradient
    at any other point cannot be given as numbers."""
    out = {}
    for e in spec.equations:
        for g in e.rhs.atoms(Grad):
            point = g.args[1]
            states = [x for x in spec.states if point == old(x)]
            if not states:
                raise InputError(f"{where}: the map takes the gradient at {point}, not at a "
                                 "state; a step on numbers needs the gradient at a state")
            out[states[0]] = f"d{states[0]}"
    return out


def evaluate(spec: MapSpec, data: Any, where: str) -> dict[str, Any]:
    """The state after one step of ``spec`` from the state, gradients and constants in
    ``data``; every mistake is one line naming the field."""
    grads = gradient_names(spec, where)
    scalars = [c for c in spec.constants if c != spec.step]
    required = [*spec.states, *grads.values(), *scalars, *([spec.step] if spec.step else [])]
    inputs.mapping(data, "input", required)
    first = spec.states[0]
    state = {first: _array(data[first], first)}
    shape = state[first].shape
    for name in [*spec.states[1:], *grads.values()]:
        state[name] = _array(data[name], name, shape, first)
    values = {c: inputs.number(data[c], c) for c in scalars}
    if spec.step:
        values[spec.step] = float(_count(data[spec.step], spec.step))
    at = {x: state[f] for x, f in grads.items()}
    with np.errstate(all="ignore"):
        out = run(spec, {x: state[x] for x in spec.states}, values,
                  lambda u: _gradient_at(u, at, state))
    result: dict[str, Any] = {x: inputs.finite_output(out[x], x).tolist() for x in spec.states}
    if spec.step:
        result[spec.step] = int(values[spec.step]) + 1
    return result


def _gradient_at(point: np.ndarray, at: dict[str, np.ndarray], state: dict) -> np.ndarray:
    """The given gradient at ``point``, which is one of the states as given."""
    for x, g in at.items():
        if point is state[x]:  # run hands over the state's own array, unchanged
            return g
    raise AssertionError("the gradient is read at a state it was not given for")


def _array(value: Any, field: str, shape: tuple[int, ...] | None = None,
           like: str = "") -> np.ndarray:
    """A vector (a list of numbers) or a matrix (a list of equal rows), as floats."""
    if isinstance(value, list) and value and all(isinstance(r, list) for r in value):
        out = inputs.matrix(value, field, most=inputs.MAX_SIDE)
    else:
        if isinstance(value, list) and len(value) > inputs.MAX_SIDE**2:
            raise InputError(f"{field}: expected at most {inputs.MAX_SIDE**2} numbers")
        out = inputs.vector(value, field).ravel()
    if shape is not None and out.shape != shape:
        want, got = "×".join(map(str, shape)), "×".join(map(str, out.shape))
        raise InputError(f"{field}: expected the shape of {like}, {want}, got {got}")
    return out


def _count(value: Any, field: str) -> int:
    """The step counter: a whole number of completed steps."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_STEP:
        raise InputError(f"{field}: expected the number of completed steps, a whole number "
                         f"from 0 to {MAX_STEP}, got {show(value)}")
    return value
