"""What each result of a recurrent problem is (``RecurrentProblem.result_docs``): the keys
follow the cell's names, so their descriptions are written from the cell's data."""

from __future__ import annotations

from derive.engine.spec import CellSpec


def cell_result_docs(spec: CellSpec) -> dict[str, str]:
    """Result key -> one line, for every key ``RecurrentProblem.derive`` gives ``spec``."""
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
    return out


#: What the evidence tables call a recurrent cell's claims that no left-hand side names.
CELL_CLAIM_NAMES: dict[str, str] = {
    "backward_map": "the backward map",
    "example_forward": "the example's forward values",
    "example_grad": "the example's weight gradients",
    "example_adjoints": "the example's adjoints",
}
