"""The claims of the vanilla RNN problem, each checked by a route on a plain forward pass.

* ``jacobian_y_x``: complex step and central differences of σ(Wx);
* ``sigma_prime_max``: a dense grid of σ', and the norm of every per-step factor;
* ``norm_bound``: every per-step factor contracts when ||W||_2 is just below the bound;
* ``dL_dW``: complex step and central differences of the loss, and the engine's BPTT sweep;
* ``dL_dW_T<T>``: the same routes, and the double sum at this T;
* ``n_terms``: the terms of the written-out sum, counted.

Where two routes share a run (one evaluation of the derived formula per case), the run is
measured once and read by both claims; each derived formula is evaluated once per case
(``_gradient``), whichever claims read it.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

import numpy as np

from derive.engine.cell import T as T_END
from derive.engine.numeric import VectorSweep
from derive.engine.numeric import forward as engine_forward
from derive.engine.vector import VectorAdjoints
from derive.instances.rnn_sequence import (
    ROUTES,
    case_data,
    describe,
    layer_jacobian,
    logistic,
    loss_gradient,
    states,
)
from derive.problems.vanilla_rnn.notation import d, n
from derive.problems.vanilla_rnn.values import Values, evaluate
from derive.verify import Claim, rel_error
from derive.verify.routes import TOLERANCE, count_mismatch

if TYPE_CHECKING:
    from derive.problems.vanilla_rnn.problem import VanillaRNN

#: Tolerances: a complex step is exact to round-off (worst measured 4e-14); central
#: differences carry truncation O(h²) and round-off O(ε/h) (worst 3e-8 at
#: SUMMED_CENTRAL_STEP); two float64 evaluations of the same gradient differ by round-off
#: only (worst 6e-14).
TOL = {**{m: TOLERANCE[m] for m in ROUTES}, "float64": 1e-12}

#: (n, d, T, weight scale, seed) of the gradient cases.
GRADIENT_CASES = (
    (1, 1, 1, 1.0, 1),
    (2, 3, 3, 1.0, 2),
    (3, 2, 6, 1.0, 3),
    (5, 4, 8, 1.0, 4),
    (10, 6, 10, 1.0, 5),
    (8, 10, 10, 1.0, 6),
    (6, 3, 10, 3.0, 7),
)
#: (n, d, seed) of the layer-Jacobian cases.
LAYER_CASES = ((1, 1, 11), (3, 2, 12), (2, 5, 13), (10, 7, 14), (6, 6, 15))


def expanded_cases(steps: int) -> list[tuple]:
    """(n, d, T, weight scale, seed) of the checks of the sum written out for T = ``steps``."""
    cases = [(nn, dd, steps, 1.0, s) for nn, dd, s in ((1, 2, 21), (3, 2, 22), (6, 4, 23))]
    return [*cases, (4, 3, steps, 3.0, 24)]


def terms(expr: Any) -> tuple:
    """The terms of a written-out sum (one term is a sum of one)."""
    return expr.args if expr.is_MatAdd else (expr,)


def claims_of(problem: VanillaRNN) -> Iterator[Claim]:
    """Every claim of ``problem``, in the order of its evidence table."""
    r, key = problem.results, problem.expanded_key
    cases = expanded_cases(problem.T)
    yield from layer_claims(r["jacobian_y_x"].expr)
    yield from bound_claims(float(r["sigma_prime_max"].value))
    yield norm_bound_claim(float(r["norm_bound"].value))
    yield from gradient_claims(problem, "dL_dW", r["dL_dW"].expr)
    yield sweep_claim(problem, r["dL_dW"].expr)
    yield from gradient_claims(problem, key, r[key].expr, cases)
    method = "the double sum evaluated at this T"
    yield Claim(key, method, describe(cases), TOL["float64"], lambda: _expanded_gap(problem))
    yield Claim(
        "n_terms",
        "exact: the terms of the written-out sum counted",
        f"T = {problem.T}",
        TOLERANCE["exact"],
        lambda: count_mismatch(r["n_terms"].expr, {T_END: problem.T}, len(terms(r[key].expr))),
    )


#: Per problem: the derived formulas evaluated so far, by (formula, case).
_RUNS: WeakKeyDictionary[VanillaRNN, dict[tuple, np.ndarray]] = WeakKeyDictionary()


def _gradient(problem: VanillaRNN, expr: Any, case: tuple) -> np.ndarray:
    """``problem.gradient(expr, ...)`` on the sequence of ``case``, evaluated once (a formula
    that does not fit raises each time it is asked)."""
    runs = _RUNS.setdefault(problem, {})
    if (expr, case) not in runs:
        runs[expr, case] = problem.gradient(expr, case_data(case))
    return runs[expr, case]


def _gradient_or_inf(problem: VanillaRNN, expr: Any, case: tuple) -> np.ndarray:
    try:
        return _gradient(problem, expr, case)
    except (IndexError, ValueError, TypeError):  # a wrong formula may not even fit
        return np.full(case_data(case).W.shape, np.inf)


def gradient_claims(problem: VanillaRNN, key: str, expr: Any,
                    cases=GRADIENT_CASES) -> list[Claim]:
    """``expr`` (a derived ∂L/∂W) against each route on the forward pass (one shared run)."""

    @cache
    def worst() -> dict[str, float]:
        out = dict.fromkeys(ROUTES, 0.0)
        for case in cases:
            seq, got = case_data(case), _gradient_or_inf(problem, expr, case)
            for m in out:
                out[m] = max(out[m], rel_error(got, loss_gradient(seq, m)))
        return out

    sizes = describe(cases)
    return [
        Claim(key, f"{m} on the forward pass", sizes, TOL[m], lambda m=m: worst()[m])
        for m in ROUTES
    ]


def _expanded_gap(problem: VanillaRNN) -> float:
    """The written-out sum against the double sum at this T, on the same sequences."""
    r, worst = problem.results, 0.0
    for case in expanded_cases(problem.T):
        expanded = _gradient(problem, r[problem.expanded_key].expr, case)
        worst = max(worst, rel_error(expanded, _gradient(problem, r["dL_dW"].expr, case)))
    return worst


def layer_claims(jac: Any) -> list[Claim]:
    """``jac`` as ∂σ(Wx)/∂x against each route on σ(Wx) (one shared run)."""

    @cache
    def worst() -> dict[str, float]:
        out = dict.fromkeys(ROUTES, 0.0)
        for size_n, size_d, seed in LAYER_CASES:
            rng = np.random.default_rng(seed)
            w = rng.normal(scale=2 / np.sqrt(size_d), size=(size_n, size_d))
            x = rng.normal(size=(size_d, 1))
            values = Values({"W": w, "x": x, "y": logistic(w @ x)}, {}, [], {},
                            {n: size_n, d: size_d})
            got = evaluate(jac, values)
            for m in out:
                out[m] = max(out[m], rel_error(got, layer_jacobian(w, x, m)))
        return out

    sizes = "(n, d) in " + ", ".join(f"({a},{b})" for a, b, _ in LAYER_CASES)
    sizes += "; seeds " + ",".join(str(s) for *_, s in LAYER_CASES)
    return [
        Claim("jacobian_y_x", f"{m} on the layer's map", sizes, TOL[m], lambda m=m: worst()[m])
        for m in ROUTES
    ]


def bound_claims(bound: float) -> list[Claim]:
    """sigma' <= bound on a dense grid, and ||diag(sigma'_j) W||_2 <= bound ||W||_2."""

    def grid() -> float:
        z = np.linspace(-40, 40, 800_001)  # contains 0, where the maximum sits
        s = logistic(z)
        return float(abs(np.max(s * (1 - s)) - bound) / bound)

    def excess() -> float:
        worst = 0.0
        for seq in map(case_data, GRADIENT_CASES):
            limit = bound * np.linalg.norm(seq.W, 2)
            for h in states(seq)[1:]:
                factor = np.diag((h * (1 - h)).ravel()) @ seq.W
                worst = max(worst, np.linalg.norm(factor, 2) / limit - 1.0)
        return worst

    return [
        Claim("sigma_prime_max", "largest slope of the sigmoid on a grid over [-40, 40]",
              "800001 points", 1e-12, grid),
        Claim("sigma_prime_max",
              "spectral norm of each step's factor against the bound, every step",
              describe(GRADIENT_CASES), 1e-12, excess),
    ]


def norm_bound_claim(bound: float) -> Claim:
    """With ||W||_2 just below ``bound``, every per-step factor diag(sigma'_j) W contracts:
    the largest factor norm seen, less 1 (0 when all are below 1), is the error."""

    def excess() -> float:
        worst = 0.0
        for seq in map(case_data, GRADIENT_CASES):
            w = seq.W * (0.999 * bound / np.linalg.norm(seq.W, 2))
            for h in states(seq, w)[1:]:
                factor = np.diag((h * (1 - h)).ravel()) @ w
                worst = max(worst, np.linalg.norm(factor, 2) - 1.0)
        return max(worst, 0.0)

    method = "||diag(sigma'_j) W||_2 - 1 at every step, W scaled to ||W||_2 = 0.999 bound"
    return Claim("norm_bound", method, describe(GRADIENT_CASES), 0.0, excess)


def sweep_claim(problem: VanillaRNN, expr: Any) -> Claim:
    """The double sum against the engine's own BPTT recursion (adjoint sweep)."""

    def gap() -> float:
        adj, worst = VectorAdjoints(problem.cell), 0.0
        for case in GRADIENT_CASES:
            seq = case_data(case)
            params = {"W": seq.W, "U": seq.U}
            traj = engine_forward(adj.cell, params, {"x": seq.xs}, {"h": seq.h0})
            swept = VectorSweep(adj).run(traj, params, {"h": seq.a}).params["W"]
            worst = max(worst, rel_error(_gradient(problem, expr, case), swept))
        return worst

    method = "BPTT sweep (the adjoint recursion, step by step)"
    return Claim("dL_dW", method, describe(GRADIENT_CASES), TOL["float64"], gap)
