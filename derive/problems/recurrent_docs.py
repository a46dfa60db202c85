"""What each result of a recurrent problem is (``RecurrentProblem.result_docs``): the keys
follow the cell's names, so their descriptions are written from the cell's data; and what
the key says of the cell itself (who reads each state, the local derivatives it uses)."""

from __future__ import annotations

import sympy as sp

from derive.engine.cell import Cell, timed
from derive.engine.functions import applied, sigma
from derive.engine.spec import CellSpec


def consumers(cell: Cell) -> list[tuple[sp.Expr, list[sp.Expr], bool]]:
    """Per state: what reads it (at its own step and the next), and whether the loss does."""
    out = []
    for s in cell.states:
        now = [timed(u.name) for u in cell.consumers(s)]
        later = [timed(u.name, 1) for u in cell.consumers(cell.prev[s])]
        out.append((timed(s.name), now + later, s in cell.loss_on))
    return out


def local_rules(cell: Cell) -> list[tuple[sp.Expr, sp.Expr]]:
    """(f(z), du/dz for u = f(z)) of each function the cell applies, in order of first
    use, from the registry's rules (``Elementwise.derivative``)."""
    u, z = sp.Symbol("u"), sp.Symbol("z")
    used = applied(e for _, e in cell.assignments)
    return [(f.sympy(z), f.derivative(u, z)) for f in used if f.name != "identity"]


def cell_result_docs(spec: CellSpec, limit: dict[str, int] | None = None) -> dict[str, str]:
    """Result key -> one line, for every key ``RecurrentProblem.derive`` gives ``spec``
    (in the regime ``limit`` too, when one is named)."""
    cell = spec.build()
    variables = [u.name for u, _ in cell.assignments]
    out = {f"{u}_bar": f"The adjoint of {u} at step t, dL/d{u}(t), in forward quantities."
           for u in variables}
    out |= {f"{w}_bar": f"The gradient dL/d{w}: a sum over the steps." for w in spec.weights}
    out |= {f"{x}_bar": f"The adjoint of the input {x} at step t." for x in spec.inputs}
    out |= {f"{s}0_bar": f"The gradient by the initial state {s}(0)." for s in spec.states}
    vector = [*variables, *spec.inputs, *spec.weights, *spec.biases]
    out |= {f"vector_{n}_bar": f"{n}_bar in matrix form (vectors and weight matrices)."
            for n in vector}
    out |= {f"vector_{s}0_bar": f"{s}0_bar in matrix form." for s in spec.states}
    out["backward_map"] = (
        "The Jacobian of the states' adjoints at t by those at t + 1 (the backward map)."
    )
    example = "at every step; null unless `example` is given"
    out["example_forward"] = f"The worked example's forward values {example}."
    out["example_adjoints"] = f"The worked example's adjoints {example}."
    out["example_grad"] = "The worked example's weight gradients; null unless `example` is given."
    return out | (limit_docs(spec, limit) if limit else {})


def limit_docs(spec: CellSpec, limit: dict[str, int]) -> dict[str, str]:
    """The results of the regime ``limit`` (``derive.problems.recurrent_limit``)."""
    regime = ", ".join(f"{u} = {v}" for u, v in limit.items())
    fixed = "null unless the map in the regime is constant"
    out = {"backward_map_limit": f"The backward map J with {regime} at steps t and t + 1."}
    out |= {f"{s}_bar_limit": f"The adjoint of {s} at step t in that regime, through the "
            "states' adjoints at t + 1." for s in spec.states}
    out["backward_map_limit_constant"] = (
        "Whether J in the regime is one fixed matrix (no forward values left in it).")
    out["backward_map_limit_eigenvalues"] = f"Its eigenvalues, with multiplicity; {fixed}."
    out["backward_map_limit_idempotent"] = f"Whether it is its own square; {fixed}."
    out["backward_map_limit_powers"] = (
        f"J^k; value: what the powers do to a gradient (unchanged, fixed, vanish, explode, "
        f"bounded, grow); {fixed}.")
    out["weights_bar_limit"] = (
        "Each weight's summand in the regime; value: whether its gradient vanishes there.")
    return out


#: What the evidence tables call a recurrent cell's claims that no left-hand side names.
CELL_CLAIM_NAMES: dict[str, str] = {
    "backward_map": "the backward map",
    "example_forward": "the example's forward values",
    "example_grad": "the example's weight gradients",
    "example_adjoints": "the example's adjoints",
}

#: The same for the results of a regime (``RecurrentProblem.LIMIT``).
LIMIT_CLAIM_NAMES: dict[str, str] = {
    "backward_map_limit": "the backward map in the regime",
    "backward_map_limit_constant": "whether that map is constant",
    "backward_map_limit_eigenvalues": "its eigenvalues",
    "backward_map_limit_idempotent": "whether it is its own square",
    "backward_map_limit_powers": "its powers",
    "weights_bar_limit": "the weight gradients in the regime",
}


def gated(rules: list[tuple[sp.Expr, sp.Expr]]) -> bool:
    """Whether ``local_rules`` hold the logistic sigmoid: only then do the key and the
    question name sigma and gates."""
    return any(isinstance(f, sigma) for f, _ in rules)
