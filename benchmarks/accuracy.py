"""4. Verification quality: the derived LSTM gradients against derive.verify.gradcheck.

For each case, every adjoint (every variable and input at every step, every parameter, the
initial states) is compared with a complex step of the forward pass and with a 60-digit
mpmath central difference ("float64 grads": derive's float64 numbers, what a user gets;
"50-digit grads": the derived equations themselves evaluated in 50 digits).  Random weights
are uniform in [-1, 1], saturated ones in [-10, 10]; the seeds are fixed in advance.

Two context rows say where float64 error comes from on the scalar cases: the complex-step
reference against mpmath (how well float64 does the forward pass itself) and JAX's float64
gradient against mpmath (what standard reverse mode gets on the same data).
"""

from __future__ import annotations

import numpy as np

from benchmarks.config import Config
from benchmarks.peers import WEIGHTS, Sequences, jax_gradient, why_missing
from benchmarks.timing import NO_TARGET, Row, at_most, missing
from derive.problems.lstm import LSTM
from derive.verify import rel_error
from derive.verify.gradcheck import (
    METHODS,
    Case,
    Data,
    check_case,
    derived,
    make_data,
    probes,
    reference,
)

#: Targets: the key's own tolerances for mild weights; the row names say what is compared.
TARGETS = {m: METHODS[m] for m in ("complex step", "float64 vs mpmath", "mpmath 50 digits")}
NAMES = {
    "complex step": "float64 grads vs complex step",
    "float64 vs mpmath": "float64 grads vs 60-digit mpmath",
    "mpmath 50 digits": "50-digit grads vs 60-digit mpmath",
}
SATURATED_SCALE = 10.0
KINDS = ("random", "saturated")
#: The claims a peer's gradient covers (derive's cover every adjoint at every step too).
PEER_CLAIMS = {**{f"{w}_bar": ("w", i) for i, w in enumerate(WEIGHTS)}, "x_bar": ("x", None)}
PEER_CLAIMS |= {"h0_bar": ("h0", None), "c0_bar": ("c0", None)}


def cases(steps: int, quick: bool) -> list[tuple[str, bool, Case]]:
    """(kind, vector form, case) of every case run."""
    out = []
    scalar_seeds = [41] if quick else [41, 42, 43]
    for kind, scale, offset in zip(KINDS, (1.0, SATURATED_SCALE), (0, 10), strict=True):
        out += [(kind, False, Case(steps, scale=scale, seed=s + offset)) for s in scalar_seeds]
        out.append((kind, True, Case(steps, 3, 2, scale=scale, seed=47 + offset)))
    return out


def run(cfg: Config) -> tuple[list[Row], dict]:
    steps = cfg.pick(20, 3)
    problem = LSTM()
    worst: dict[tuple[str, str], tuple[float, str]] = {}
    data: dict = {"T": steps, "cases": []}
    for kind, vector, case in cases(steps, cfg.quick):
        cell = problem.vector_cell if vector else problem.cell
        errors = check_case(cell, case, tuple(TARGETS))
        for (claim, method), err in errors.items():
            if err >= worst.get((method, kind), (-1.0, ""))[0]:
                worst[method, kind] = (err, f"{claim}, {case.describe()}")
        data["cases"].append(
            {
                "case": case.describe(),
                "kind": kind,
                "worst": {m: max(e for (_, mm), e in errors.items() if mm == m) for m in TARGETS},
            }
        )
    rows = []
    for method, target in TARGETS.items():
        for kind in KINDS:
            err, where = worst[method, kind]
            name = f"{NAMES[method]}, {kind} weights, T={steps}"
            rows.append(at_most(name, err, target, "rel", f"worst: {where}"))
    scalar = [(k, c) for k, vector, c in cases(steps, cfg.quick) if not vector]
    context, data["context"] = context_rows(problem, scalar)
    return rows + context, data


def context_rows(problem: LSTM, scalar: list[tuple[str, Case]]) -> tuple[list[Row], dict]:
    """Complex-step reference and JAX against the 60-digit reference, per kind of weights."""
    why = why_missing("jax")
    worst: dict[str, float] = {}
    for kind, case in scalar:
        for what, err in case_errors(problem.cell, case, with_jax=not why).items():
            worst[f"{what}, {kind}"] = max(worst.get(f"{what}, {kind}", 0.0), err)
    steps = scalar[0][1].T
    rows = []
    for kind in KINDS:
        rows.append(
            Row(
                f"complex-step reference vs 60-digit mpmath, {kind}, T={steps}",
                worst[f"reference, {kind}"],
                "rel",
                detail="float64 forward pass alone (scalar cases): how far float64 can go",
            )
        )
        name = f"JAX float64 grads vs 60-digit mpmath, {kind}, T={steps}"
        if why:
            rows.append(missing(name, NO_TARGET, why))
            continue
        detail = f"derive on the same claims (weights, x, h0, c0): {worst[f'derive, {kind}']:.1e}"
        rows.append(Row(name, worst[f"jax, {kind}"], "rel", detail=detail))
    return rows, worst


def case_errors(cell, case: Case, with_jax: bool) -> dict[str, float]:
    """Worst error against the 60-digit reference: of the complex-step reference, and (with
    JAX) of JAX's and derive's float64 gradients on the claims JAX gives."""
    data = make_data(cell, case)
    plist = probes(cell, case, data)
    exact = reference(cell, data, plist, "float64 vs mpmath")
    complex_step = reference(cell, data, plist, "complex step")
    ours = derived(cell, case, data)
    theirs = jax_gradient(_sequence(data))[0]() if with_jax else None
    out = {"reference": 0.0} | ({"jax": 0.0, "derive": 0.0} if with_jax else {})
    for claim in dict.fromkeys(p[0] for p in plist):
        mask = np.array([p[0] == claim for p in plist])
        out["reference"] = max(out["reference"], rel_error(complex_step[mask], exact[mask]))
        if theirs is None or claim not in PEER_CLAIMS:
            continue
        key, index = PEER_CLAIMS[claim]
        value = np.asarray(theirs[key]) if index is None else np.asarray(theirs[key])[index]
        out["jax"] = max(out["jax"], rel_error(value, exact[mask]))
        out["derive"] = max(out["derive"], rel_error(ours[claim], exact[mask]))
    return out


def _sequence(data: Data) -> Sequences:
    """A scalar case's data as the peers take it."""
    first = {k: float(v[0, 0]) for k, v in data.initial.items()}
    return Sequences(
        {k: float(v[0, 0]) for k, v in data.params.items()},
        np.array([float(v[0, 0]) for v in data.inputs["x"]]),
        np.array([float(v[0, 0]) for v in data.loss_grads["h"]]),
        first["h"],
        first["c"],
    )
