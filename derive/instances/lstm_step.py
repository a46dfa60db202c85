"""One LSTM step in the LMU form, in plain NumPy, on random weights: the reference route.

Every gate reads the concatenation [h_{t-1}, x_t] (the handout's W_f [h_{t-1}, x_t]), so
the step shares no code with the engine's cell, which splits each W_k into blocks.
``step_jacobian`` and ``run_jacobian`` differentiate it by the routes of
``derive.verify.routes``; ``evaluate`` turns a derived expression into numbers on the same
instance; ``sample_float`` and ``sample_mpmath`` find the smallest value each quantity of
the step takes on many random steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import mpmath
import numpy as np
import sympy as sp

from derive.engine.cell import VectorQuantity
from derive.engine.functions import FUNCTIONS
from derive.engine.matrix_terms import SigmaPrime, TanhPrime
from derive.engine.numeric import MatrixEvaluator
from derive.engine.vector import n_h
from derive.verify import rel_error
from derive.verify.gradcheck import to_mp
from derive.verify.routes import central_difference, complex_step

#: LMU's gate letters; the candidate C̃ is the engine's ``g`` and reads W_c, b_c.
GATES = ("f", "i", "o", "c")
#: The quantities next to the handout's figure, in the order (b) discusses them.
FIGURE = ("f", "i", "o", "g", "c", "h")
#: The routes a derived Jacobian is compared with, by the name the evidence prints.
ROUTES = {"complex step": complex_step, "central difference": central_difference}

_np_sigma = FUNCTIONS["sigma"].numpy

#: The numeric forms of the matrix-term functions; registered functions are the
#: registry's NumPy forms (``MatrixEvaluator`` looks them up).
NUMERIC = {
    SigmaPrime: lambda z: _np_sigma(z) * (1 - _np_sigma(z)),
    TanhPrime: lambda z: 1 - np.tanh(z) ** 2,
}


def evaluate(e: Any, env: dict[Any, np.ndarray]) -> Any:
    """A derived matrix expression evaluated with NumPy; ``env`` maps ``(name, k)`` to the
    value of quantity ``name`` at step t+k, and names to parameters and other symbols."""
    return MatrixEvaluator(lambda m: env[_key(m)], NUMERIC, {n_h: env["n_h"]})(e)


def _key(m: sp.MatrixSymbol) -> Any:
    if not isinstance(m, VectorQuantity) or m.offset is None:
        return m.name  # a parameter, or a symbol of the problem's own (delta)
    if m.role != "value":
        raise KeyError(f"no value of {m} on one step")
    return m.name, int(m.offset)


@dataclass(frozen=True)
class StepData:
    """Weights W_k (n_h × (n_h + n_x), acting on [h, x]) and biases b_k of one LSTM."""

    weights: dict[str, np.ndarray]
    biases: dict[str, np.ndarray]

    @property
    def n_h(self) -> int:
        return self.weights["f"].shape[-2]

    def env(self) -> dict[str, Any]:
        """The engine's names for the split blocks W_kh, W_kx and the biases."""
        out: dict[str, Any] = {"n_h": self.n_h}
        for k in GATES:
            out[f"W_{k}h"] = self.weights[k][..., :, : self.n_h]
            out[f"W_{k}x"] = self.weights[k][..., :, self.n_h :]
            out[f"b_{k}"] = self.biases[k]
        return out


def random_step_data(
    rng: np.random.Generator, nh: int, nx: int, scale: float = 1.0, bias: dict | None = None
) -> StepData:
    """Weights uniform in [-scale, scale], biases normal (or the constants in ``bias``)."""
    weights = {k: rng.uniform(-scale, scale, (nh, nh + nx)) for k in GATES}
    biases = {k: rng.normal(size=(nh, 1)) for k in GATES}
    for k, v in (bias or {}).items():
        biases[k] = np.full((nh, 1), float(v))
    return StepData(weights, biases)


def lstm_step(data: StepData, c_prev, o_prev, x, sig=_np_sigma, tanh=np.tanh) -> dict[str, Any]:
    """One LSTM step in the LMU form: every gate reads the concatenation [h_{t-1}, x_t].

    Vectors are ``(..., n, 1)`` columns; leading axes are a batch.  Written without the
    engine, as an independent route for the checks.
    """
    h_prev = o_prev * tanh(c_prev)
    x = np.broadcast_to(x, (*h_prev.shape[:-2], *x.shape[-2:]))
    hx = np.concatenate([h_prev, x], axis=-2)
    z = {k: data.weights[k] @ hx + data.biases[k] for k in GATES}
    f, i, o = sig(z["f"]), sig(z["i"]), sig(z["o"])
    c_tilde = tanh(z["c"])
    c = f * c_prev + i * c_tilde
    return {"h_prev": h_prev, "f": f, "i": i, "o": o, "g": c_tilde, "c": c, "h": o * tanh(c)}


def step_env(data: StepData, c_prev, o_prev, x) -> dict[Any, Any]:
    """Values of every matrix symbol of the derived results at one step."""
    s = lstm_step(data, c_prev, o_prev, x)
    env = data.env()
    env.update({(k, 0): s[k] for k in ("f", "i", "o", "g", "c", "h")})
    env.update({("c", -1): c_prev, ("o", -1): o_prev, ("x", 0): x})
    env["delta"] = o_prev * (1 - np.tanh(c_prev) ** 2)
    return env


def step_jacobian(data: StepData, c_prev, o_prev, x, method: str) -> np.ndarray:
    """dC_t/dC_{t-1} (rows C_t) from the NumPy step by the route ``method``, all columns
    in one batch (a batch of unit columns e_j as the perturbation)."""
    basis = np.eye(data.n_h)[:, :, None]
    cols = ROUTES[method](lambda d: lstm_step(data, c_prev + d * basis, o_prev, x)["c"])
    return cols[:, :, 0].T  # column j is dC_t/d(C_{t-1})_j


def run_jacobian(data: StepData, c0, o0, xs: list, k: int, method: str = "complex step"):
    """dC_T/dC_k over a run of the NumPy step (every path, through h and o too)."""
    basis = np.eye(data.n_h)[:, :, None]

    def run(delta):
        kind = np.result_type(c0.dtype, delta)  # complex under a complex step
        c, o = c0.astype(kind), o0.astype(kind)
        for step, x in enumerate(xs):
            if step == k:
                c = c + delta * basis
            s = lstm_step(data, c, o, x)
            c, o = s["c"], s["o"]
        return c

    return ROUTES[method](run)[:, :, 0].T


#: Cases of the Jacobian checks: (n_h, n_x, weight scale, seed).
JACOBIAN_CASES = ((1, 1, 1.0, 0), (3, 2, 1.0, 1), (5, 4, 1.0, 2), (8, 3, 2.0, 3), (4, 6, 0.5, 4))


def random_step(case: tuple) -> tuple[StepData, np.ndarray, np.ndarray, np.ndarray]:
    """Weights, C_{t-1}, o_{t-1} and x_t of a case ``(n_h, n_x, weight scale, seed)``."""
    nh, nx, scale, seed = case
    rng = np.random.default_rng(seed)
    data = random_step_data(rng, nh, nx, scale)
    c_prev, o_prev = rng.normal(size=(nh, 1)), rng.uniform(0, 1, (nh, 1))
    return data, c_prev, o_prev, rng.normal(size=(nx, 1))


def describe(cases) -> str:
    """The sizes, weight scales and seeds of cases, for evidence."""
    sizes = ", ".join(f"({nh}, {nx})" for nh, nx, _, _ in cases)
    scales = " or ".join(sorted({f"{s:g}" for _, _, s, _ in cases}))
    seeds = ", ".join(str(s) for *_, s in cases)
    return f"(hidden, input) units {sizes}; |W| \u2264 {scales}; seeds {seeds}"


def jacobian_errors(jac: sp.MatrixExpr, cases=JACOBIAN_CASES) -> dict[str, float]:
    """Worst mixed relative error of a derived dC_t/dC_{t-1} against each route."""
    worst = dict.fromkeys(ROUTES, 0.0)
    for case in cases:
        data, c_prev, o_prev, x = random_step(case)
        got = evaluate(jac, step_env(data, c_prev, o_prev, x))
        for m in worst:
            worst[m] = max(worst[m], rel_error(got, step_jacobian(data, c_prev, o_prev, x, m)))
    return worst


def row_sum_errors(row_sums: sp.MatrixExpr, printed: sp.MatrixExpr, cases=JACOBIAN_CASES,
                   method: str = "complex step") -> dict[str, float]:
    """``row_sums`` (a derived J 1) and ``printed`` (the handout's formula) against the row
    sums of the Jacobian by ``method``: the worst error of each, the smallest of ``printed``."""
    out = {"row_sums": 0.0, "printed": 0.0, "printed_least": math.inf}
    for case in cases:
        data, c_prev, o_prev, x = random_step(case)
        env = step_env(data, c_prev, o_prev, x)
        ones = step_jacobian(data, c_prev, o_prev, x, method) @ np.ones_like(c_prev)
        got = rel_error(evaluate(row_sums, env), ones)
        wrong = rel_error(evaluate(printed, env), ones)
        out["row_sums"] = max(out["row_sums"], got)
        out["printed"] = max(out["printed"], wrong)
        out["printed_least"] = min(out["printed_least"], wrong)
    return out


# -- runs with saturated gates ------------------------------------------------------------------
#: Biases that saturate f at 1 and i at 0 (weights in [-0.5, 0.5]).
SATURATING = {"f": 30.0, "i": -30.0}


#: The saturated run: T steps, its sizes, weight bound and seed.
SATURATED_STEPS = 50
SATURATED_NH, SATURATED_NX = 4, 3
SATURATED_SCALE = 0.5
SATURATED_SEED = 7
SATURATED = (
    f"T = {SATURATED_STEPS}, {SATURATED_NH} hidden and {SATURATED_NX} input units, biases "
    + ", ".join(f"{v:g} ({k})" for k, v in SATURATING.items())
    + f", |W| \u2264 {SATURATED_SCALE:g}, seed {SATURATED_SEED}"
)


def saturated_instance(steps: int = SATURATED_STEPS) -> tuple[StepData, Any, Any, list]:
    """Weights, C_0, o_0 and the inputs of the saturated run (sizes and seed: ``SATURATED``)."""
    nh, nx = SATURATED_NH, SATURATED_NX
    rng = np.random.default_rng(SATURATED_SEED)
    data = random_step_data(rng, nh, nx, SATURATED_SCALE, bias=SATURATING)
    c0, o0 = rng.normal(size=(nh, 1)), rng.uniform(0, 1, (nh, 1))
    return data, c0, o0, [rng.normal(size=(nx, 1)) for _ in range(steps)]


def gate_gap(steps: int = SATURATED_STEPS, digits: int | None = None) -> Any:
    """max(1 - f, i) over the saturated run: in float64, or in mpmath at ``digits``."""
    data, c, o, xs = saturated_instance(steps)
    sig, tanh = _np_sigma, np.tanh
    if digits is not None:
        sig, tanh = _mp_sigma, _mp_tanh
        data, c, o, xs = _data_to_mp(data), to_mp(c), to_mp(o), to_mp(xs)
    with mpmath.workdps(digits or mpmath.mp.dps):
        gap = 0
        for x in xs:
            s = lstm_step(data, c, o, x, sig=sig, tanh=tanh)
            gap = max(gap, np.max(1 - s["f"]), np.max(s["i"]))
            c, o = s["c"], s["o"]
    return gap if digits is not None else float(gap)


def saturated_run(one_step: sp.MatrixExpr, steps: int = SATURATED_STEPS) -> dict[str, Any]:
    """Errors of dC_T/dC_k against I on a run with f near 1 and i near 0: by complex step
    through the whole run, and as the product of the derived one-step Jacobian."""
    data, c0, o0, xs = saturated_instance(steps)
    eye = np.eye(data.n_h)
    by_cs = max(
        float(np.max(np.abs(run_jacobian(data, c0, o0, xs, k) - eye)))
        for k in (0, steps // 2, steps - 1)
    )
    product, c, o = eye, c0, o0
    for x in xs:
        env = step_env(data, c, o, x)
        product = evaluate(one_step, env) @ product
        c, o = env[("c", 0)], env[("o", 0)]
    return {
        "complex_step": by_cs,
        "derived_product": float(np.max(np.abs(product - eye))),
        "sizes": f"{SATURATED}; gates within {gate_gap(steps):.1e} of f = 1, i = 0",
    }


# -- sampling the signs -------------------------------------------------------------------------
@dataclass(frozen=True)
class SamplingRun:
    """A sampling run: ``batch`` random steps at each of ``scales``, of sizes (nh, nx)."""

    seed: int
    batch: int
    nh: int
    nx: int
    scales: tuple[float, ...]

    @property
    def steps(self) -> int:
        return self.batch * len(self.scales)

    @property
    def scaled_by(self) -> str:
        s = [f"{v:g}" for v in self.scales]
        return ", ".join(s[:-1]) + " or " + s[-1] if len(s) > 1 else s[0]


SAMPLE_FLOAT = SamplingRun(seed=11, batch=10000, nh=4, nx=3, scales=(1.0, 5.0))
SAMPLE_MPMATH = SamplingRun(seed=12, batch=40, nh=3, nx=2, scales=(1.0, 10.0, 100.0, 1000.0))
#: Digits of the mpmath sampling.
SAMPLE_DPS = 30

SAMPLING = {
    "float64": (
        "sampling in float64: decisions against the smallest value seen",
        f"{SAMPLE_FLOAT.steps} random steps, {SAMPLE_FLOAT.nh} hidden and {SAMPLE_FLOAT.nx} input "
        "units, "
        f"weights, biases, inputs and states scaled by {SAMPLE_FLOAT.scaled_by}",
    ),
    "mpmath": (
        f"sampling at {SAMPLE_DPS} digits: decisions against the smallest value seen",
        f"{SAMPLE_MPMATH.steps} random steps, {SAMPLE_MPMATH.nh} hidden and {SAMPLE_MPMATH.nx} "
        "input units, "
        f"scaled by {SAMPLE_MPMATH.scaled_by}",
    ),
}


def _random_batch(rng: np.random.Generator, batch: int, nh: int, nx: int, scale: float):
    """Per-sample weights, biases, inputs and states, all scaled by ``scale``."""
    data = StepData(
        {k: scale * rng.uniform(-1, 1, (batch, nh, nh + nx)) for k in GATES},
        {k: scale * rng.normal(size=(batch, nh, 1)) for k in GATES},
    )
    c_prev = scale * rng.normal(size=(batch, nh, 1))
    o_prev = rng.uniform(0, 1, (batch, nh, 1))
    x = scale * rng.normal(size=(batch, nx, 1))
    return data, c_prev, o_prev, x


def _log_sigma_exp(z):
    # exp(log σ(z)): relative accuracy down to σ ~ 1e-308, where 0.5 (1 + tanh(z/2))
    # already rounds to 0 below z ~ -37 and would fake a zero gate.
    return np.exp(-np.logaddexp(0.0, -z))


def sample_float(run: SamplingRun = SAMPLE_FLOAT) -> dict[str, mpmath.mpf]:
    """The smallest value of each figure quantity over random float64 steps."""
    rng = np.random.default_rng(run.seed)
    low = dict.fromkeys(FIGURE, math.inf)
    for scale in run.scales:
        s = lstm_step(*_random_batch(rng, run.batch, run.nh, run.nx, scale), sig=_log_sigma_exp)
        for n in FIGURE:
            low[n] = min(low[n], float(np.min(s[n])))
    return {n: mpmath.mpf(v) for n, v in low.items()}


#: The registry's mpmath sigma and tanh, elementwise on object arrays.
_mp_sigma = np.vectorize(FUNCTIONS["sigma"].mpmath, otypes=[object])
_mp_tanh = np.vectorize(FUNCTIONS["tanh"].mpmath, otypes=[object])


def _data_to_mp(data: StepData) -> StepData:
    return StepData(to_mp(data.weights), to_mp(data.biases))


def sample_mpmath(run: SamplingRun = SAMPLE_MPMATH, dps: int = SAMPLE_DPS) -> dict[str, mpmath.mpf]:
    """The smallest value of each figure quantity over random steps at ``dps`` digits."""
    # Large magnitudes push σ below float64's smallest number; mpmath's exponent does not
    # underflow, so a gate's sign is measured, not rounded to 0.
    rng = np.random.default_rng(run.seed)
    low = {n: mpmath.inf for n in FIGURE}
    with mpmath.workdps(dps):
        for scale in run.scales:
            data, c_prev, o_prev, x = _random_batch(rng, run.batch, run.nh, run.nx, scale)
            s = lstm_step(_data_to_mp(data), to_mp(c_prev), to_mp(o_prev), to_mp(x),
                          sig=_mp_sigma, tanh=_mp_tanh)
            for n in FIGURE:
                low[n] = min(low[n], min(s[n].ravel()))
    return low
