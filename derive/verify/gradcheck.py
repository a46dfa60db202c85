"""Gradient checks of a cell's derived adjoints by routes that never differentiate.

Every reference here perturbs the *forward pass* and watches the loss: a probe adds ``δ``
to one entry of a parameter, an initial state, an input at a step, or an assigned variable
right after it is computed at a step (the last gives that variable's adjoint at that step).
All probes of a case run as one batch (a leading array axis), so a check of every adjoint
at every step of a 50-step sequence is a single forward pass per method.

Methods and why their tolerances differ:

* complex step, ``Im L(δ = ih) / h`` with ``h = 1e-30``: no subtraction, so it is accurate
  to round-off (sigma and tanh are analytic);
* central difference, ``(L(h) - L(-h)) / 2h`` with ``h = 1e-6``: truncation ``O(h²)`` plus
  round-off ``O(ε/h)``;
* mpmath at 50 digits: central difference with ``h = 1e-25`` in 60-digit arithmetic
  against the derived equations evaluated in 50-digit arithmetic, which tests the formulas
  themselves far beyond float64; and the same reference against the float64 evaluation,
  which measures what a user of ``derive grad`` gets.

Where each runs: complex step on every case; central differences on cases of at most 64
entries per adjoint series (``central_applies``); the 50-digit routes up to T = 3.  Up to
T = 64 every adjoint at every step is a probe of its own; beyond, each adjoint series is
probed along random directions (cost linear in T), parameters and initial states still
entry by entry.

Tolerances were set from the worst errors measured over the cases of ``derive check``
for the LSTM and the GRU, with margin for other BLAS builds.  Saturated cases (weights up
to 10) get their own rows: large higher derivatives raise the truncation error of
differences, and the complex-step reference itself loses a little in complex arithmetic.
The derived side does not: the sweeps evaluate sigma'(z) and tanh'(z) from the
pre-activation (``numeric.stable_forms``), not as u(1 - u) and 1 - u^2 from the stored
gate, which cancel near saturation.  Measured worst (mild / saturated): complex step
9.5e-14 / 3.3e-13, central difference 1.5e-6 / 4.6e-4, float64 against 50 digits
7.1e-15 / 7.4e-15 (2.0e-11 saturated before the stable forms); the 50-digit route stays
far below its tolerance in both.
"""

from __future__ import annotations

from dataclasses import dataclass

import mpmath
import numpy as np
import sympy as sp

from derive.engine.cell import Cell
from derive.engine.numeric import evaluate_at, forward, loss, sweep_for, vector_adjoints_for
from derive.engine.vector import n_h, n_x
from derive.verify import Check, Claim, rel_error, routes
from derive.verify.routes import CENTRAL_STEP, COMPLEX_STEP, DERIVED_DPS

#: (method, tolerance) of each route.
METHODS = {
    "complex step": 1e-12,
    "central difference": 1e-5,
    "mpmath 50 digits": 1e-25,
    "float64 vs mpmath": 1e-13,
}
#: Tolerances for saturated cases (|w| > 1), where differences and the complex-step
#: reference lose accuracy.
SATURATED = {
    "complex step": 1e-11,
    "central difference": 5e-3,
    "mpmath 50 digits": 1e-25,
    "float64 vs mpmath": 1e-12,
}
#: Up to this length every adjoint at every step is probed on its own (one batch entry
#: each, so the cost grows as T^2); beyond it each adjoint series is checked along
#: DIRECTIONS random directions over all its steps at once (cost linear in T), while
#: parameters and initial states are still probed entry by entry.
EXHAUSTIVE_T = 64
DIRECTIONS = 3
#: Methods slow enough (50-digit arithmetic) to run on short sequences only.
SLOW = ("mpmath 50 digits", "float64 vs mpmath")
MAX_SLOW_T = 3


@dataclass(frozen=True)
class Case:
    """One random problem: sequence length, sizes (None: scalar form), weight scale, seed."""

    T: int
    n_h: int | None = None
    n_x: int | None = None
    scale: float = 1.0
    seed: int = 0

    @property
    def vector(self) -> bool:
        return self.n_h is not None

    def describe(self) -> str:
        form = f"n_h={self.n_h}, n_x={self.n_x}" if self.vector else "scalar"
        return f"T={self.T}, {form}, |w|<={self.scale:g}, seed {self.seed}"


@dataclass
class Data:
    """Parameters, inputs, initial states and loss weights of a case, as (n, m) arrays."""

    params: dict
    inputs: dict
    initial: dict
    loss_grads: dict


def make_data(cell: Cell, case: Case) -> Data:
    """Random data for ``case``: weights uniform in [-scale, scale], the rest normal."""
    rng = np.random.default_rng(case.seed)
    vc = vector_adjoints_for(cell).vc  # derived once per cell, as the sweeps use it
    n = {n_h: case.n_h or 1, n_x: case.n_x or 1}

    def size(expr) -> int:
        return int(sp.sympify(expr).subs(n))

    params = {}
    for p in cell.params:
        rows, cols = (size(d) for d in vc.shape(p))
        params[p.name] = rng.uniform(-case.scale, case.scale, (rows, cols))
    col = {s.name: size(vc.shape(s)[0]) for s in (*cell.inputs, *cell.variables)}
    inputs = {
        x.name: [rng.normal(size=(col[x.name], 1)) for _ in range(case.T)] for x in cell.inputs
    }
    initial = {s.name: rng.normal(scale=0.5, size=(col[s.name], 1)) for s in cell.states}
    loss_grads = {
        v.name: [rng.normal(size=(col[v.name], 1)) for _ in range(case.T)] for v in cell.loss_on
    }
    return Data(params, inputs, initial, loss_grads)


def _scalars(d: dict):
    return {
        k: ([float(a[0, 0]) for a in v] if isinstance(v, list) else float(v[0, 0]))
        for k, v in d.items()
    }


def derived(cell: Cell, case: Case, data: Data, backend: str = "numpy") -> dict[str, np.ndarray]:
    """Every adjoint the engine derives, evaluated on ``data``: claim -> flat array."""
    conv = to_mp if backend == "mpmath" else (lambda v: v)
    if case.vector:
        d = {k: conv(getattr(data, k)) for k in ("params", "inputs", "initial", "loss_grads")}
    else:
        d = {k: _scalars(getattr(data, k)) for k in ("params", "inputs", "initial", "loss_grads")}
        if backend == "mpmath":
            d = {k: to_mp(v) for k, v in d.items()}
    # One compiled sweep per cell, backend and form: not once per case and method.
    sweep = sweep_for(cell, backend, case.vector)
    traj = forward(cell, d["params"], d["inputs"], d["initial"], backend)
    g = sweep.run(traj, d["params"], d["loss_grads"])
    out = {}
    for name, series in g.bars.items():
        out[f"{name}_bar"] = _flat(series[1 : case.T + 1])
    out.update({f"{p}_bar": _flat([v]) for p, v in g.params.items()})
    out.update({f"{s}0_bar": _flat([v]) for s, v in g.initial.items()})
    return out


def _flat(values: list) -> np.ndarray:
    # Steps of equal shape stack into one (steps, ...) array: step-major, as concatenated.
    shapes = {np.shape(v) for v in values}
    if len(shapes) == 1:
        return np.asarray(values).reshape(-1)
    parts = [np.asarray(v).reshape(-1) for v in values]
    return np.concatenate(parts) if parts else np.zeros(0)


def to_mp(v):
    """``v`` (a number, array, or dict or list of them) with mpmath numbers elementwise."""
    if isinstance(v, dict):
        return {k: to_mp(x) for k, x in v.items()}
    if isinstance(v, list):
        return [to_mp(x) for x in v]
    if isinstance(v, np.ndarray):
        return np.vectorize(mpmath.mpf, otypes=[object])(v)
    return mpmath.mpf(v)


# -- probes: the reference route ---------------------------------------------------------------
def probes(cell: Cell, case: Case, data: Data) -> list[tuple[str, str, str, int, tuple]]:
    """(claim, kind, name, step, index) of every entry a check compares, in derived order.

    Beyond ``EXHAUSTIVE_T`` steps an adjoint series is probed along random directions:
    kind ``"<kind> dir"``, step 0 and, in place of the index, the direction, a ``(T, rows)``
    array of standard normal weights (seeded by the case).
    """
    out = []
    rng = np.random.default_rng([case.seed, case.T, 7919])
    for v in [*reversed(cell.variables), *cell.inputs]:
        kind = "input" if v in cell.inputs else "var"
        rows = (case.n_x if kind == "input" else case.n_h) or 1
        if case.T > EXHAUSTIVE_T:
            dirs = rng.normal(size=(DIRECTIONS, case.T, rows))
            out += [(f"{v.name}_bar", f"{kind} dir", v.name, 0, r) for r in dirs]
            continue
        steps = range(1, case.T + 1)
        out += [(f"{v.name}_bar", kind, v.name, k, (j, 0)) for k in steps for j in range(rows)]
    for p, w in data.params.items():
        out += [(f"{p}_bar", "param", p, 0, idx) for idx in np.ndindex(w.shape)]
    for s, v in data.initial.items():
        out += [(f"{s}0_bar", "initial", s, 0, idx) for idx in np.ndindex(v.shape)]
    return out


def reference_losses(cell: Cell, data: Data, plist: list, delta, backend: str = "numpy"):
    """The loss of every probe's perturbed forward pass, as one batch.

    ``delta`` is one step for every probe, or (NumPy) a sequence of one step per probe.
    """
    batch = len(plist)
    dtype = object if backend == "mpmath" else (complex if np.iscomplexobj(delta) else float)
    steps_of = list(delta) if isinstance(delta, list | tuple | np.ndarray) else [delta] * batch
    conv = to_mp if backend == "mpmath" else (lambda v: v)
    batched = _Batch(data, batch, dtype, conv)
    for b, probe in enumerate(plist):
        batched.add(b, probe, steps_of[b])
    inputs, perturb = batched.finish()
    loss_grads = {k: [conv(a) for a in seq] for k, seq in data.loss_grads.items()}
    traj = forward(cell, batched.params, inputs, batched.initial, backend, perturb)
    return loss(traj, loss_grads)


class _Batch:
    """A case's data lifted to a batch of probes (a leading axis), each probe's step added."""

    def __init__(self, data: Data, batch: int, dtype, conv) -> None:
        self.data, self.batch, self.dtype, self.conv = data, batch, dtype, conv
        self.params = {k: np.asarray(conv(v), dtype=dtype) for k, v in data.params.items()}
        # Each input sequence lifted in one go: (T, batch, rows, 1), then one view per step.
        self.inputs = {
            k: list(self.lift(np.stack(seq)).swapaxes(0, 1)) for k, seq in data.inputs.items()
        }
        self.initial = {k: self.lift(v) for k, v in data.initial.items()}
        self.perturb: dict = {}
        # Direction probes touch every step: one (T, batch, rows, 1) array per series, split
        # into steps at the end, instead of T small updates per probe.
        self.along: dict[tuple[str, str], np.ndarray] = {}

    def lift(self, a):
        return np.repeat(np.asarray(self.conv(a), dtype=self.dtype)[None], self.batch, axis=0)

    def add(self, b: int, probe: tuple, delta) -> None:
        _, kind, name, k, idx = probe
        if kind == "param":
            if self.params[name].ndim == 2:
                self.params[name] = self.lift(self.data.params[name])
            self.params[name][(b, *idx)] += delta
        elif kind == "input":
            self.inputs[name][k - 1][(b, *idx)] += delta
        elif kind == "initial":
            self.initial[name][(b, *idx)] += delta
        elif kind.endswith(" dir"):
            steps, rows = idx.shape
            shape = (steps, self.batch, rows, 1)
            arr = self.along.setdefault((kind, name), np.zeros(shape, dtype=self.dtype))
            arr[:, b] += delta * idx[:, :, None]
        else:
            rows = next(iter(self.data.initial.values())).shape[0]  # every variable: n_h rows
            shape = (self.batch, rows, 1)
            slot = self.perturb.setdefault((name, k), np.zeros(shape, dtype=self.dtype))
            slot[(b, *idx)] += delta

    def finish(self) -> tuple[dict, dict]:
        """The perturbed inputs, and the perturbation of each (variable, step)."""
        inputs, perturb = self.inputs, self.perturb
        for (kind, name), arr in self.along.items():
            if kind == "input dir":
                inputs[name] = [x + d for x, d in zip(inputs[name], arr, strict=True)]
            else:
                for k, d in enumerate(arr, start=1):
                    perturb[name, k] = perturb[name, k] + d if (name, k) in perturb else d
        return inputs, perturb


def float_references(cell: Cell, data: Data, plist: list) -> dict[str, np.ndarray]:
    """Complex step and central difference for every probe, from ONE batched forward pass.

    The batch holds each probe three times, with steps ``ih``, ``+h`` and ``-h``, all in
    complex arithmetic: the per-step cost of a forward pass is mostly fixed overhead, so
    one pass over 3n probes costs little more than one over n.  A real step in complex
    arithmetic leaves every imaginary part exactly zero.  The routes read their
    perturbations' losses off that one batch.
    """
    n = len(plist)
    ih, h = 1j * COMPLEX_STEP, CENTRAL_STEP
    steps = [ih] * n + [h + 0j] * n + [-h + 0j] * n
    losses = reference_losses(cell, data, plist * 3, np.array(steps))
    batch = {ih: losses[:n], h: np.real(losses[n : 2 * n]), -h: np.real(losses[2 * n :])}
    return {
        "complex step": routes.complex_step(batch.__getitem__),
        "central difference": routes.central_difference(batch.__getitem__),
    }


def central_applies(case: Case) -> bool:
    """Central differences run on cases of at most ``EXHAUSTIVE_T`` entries per adjoint
    series.  They are a coarse cross-check (tolerance 1e-5) of the complex step, which
    alone probes the larger cases; so every row of a method covers the same cases."""
    return case.T * max(case.n_h or 1, case.n_x or 1) <= EXHAUSTIVE_T


def reference(cell: Cell, data: Data, plist: list, method: str) -> np.ndarray:
    """dL/d(probe) for every probe by ``method``."""

    def batch(backend: str = "numpy"):
        return lambda delta: reference_losses(cell, data, plist, delta, backend)

    if method == "complex step":
        return routes.complex_step(batch())
    if method == "central difference":
        return routes.central_difference(batch())
    if method in SLOW:
        return routes.high_precision_difference(batch("mpmath"))
    raise ValueError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")


def check_case(cell: Cell, case: Case, methods=tuple(METHODS)) -> dict[tuple[str, str], float]:
    """Worst error per (claim, method) on one case."""
    data = make_data(cell, case)
    plist = probes(cell, case, data)
    claims = list(dict.fromkeys(p[0] for p in plist))
    out = {}
    refs: dict[str, np.ndarray] = {}
    evaluated: dict[str, dict] = {}
    if {"complex step", "central difference"} <= set(methods):
        refs |= float_references(cell, data, plist)
    for method in methods:
        # Both 50-digit methods share one reference; every float64 method one evaluation.
        key = "mpmath" if method in SLOW else method
        if key not in refs:
            refs[key] = reference(cell, data, plist, method)
        ref = refs[key]
        backend = "mpmath" if method == "mpmath 50 digits" else "numpy"
        if backend not in evaluated:
            with mpmath.workdps(DERIVED_DPS):  # used by the mpmath backend only
                evaluated[backend] = derived(cell, case, data, backend)
        got = evaluated[backend]
        scales = _difference_scales(plist, ref, method)
        for claim in claims:
            mask = np.array([p[0] == claim for p in plist])
            picked = [p for p in plist if p[0] == claim]
            out[claim, method] = _error(got[claim], ref[mask], picked, scales.get(claim))
    return out


#: Routes that difference the loss: their error is absolute, on the loss's scale.
DIFFERENCES = ("central difference", "mpmath 50 digits")


def _difference_scales(plist: list, ref: np.ndarray, method: str) -> dict[str, float]:
    """Per claim, the scale a difference route judges it against: the largest reference
    entry of its kind in the case (the parameters' gradients, or the adjoints).  A
    difference of losses errs in absolute terms, so a component far below the others of
    its kind (a weight behind a saturated gate) is judged against them, not itself.  The
    complex step and float64 evaluation judge each claim against itself ({})."""
    if method not in DIFFERENCES:
        return {}
    param = np.array([p[1] == "param" for p in plist])
    largest = {kind: float(np.max(np.abs(ref[param == kind]), initial=0))
               for kind in (True, False)}
    return {p[0]: largest[p[1] == "param"] for p in plist}


def _error(got: np.ndarray, ref: np.ndarray, plist: list, scale: float | None = None) -> float:
    """Worst error of a claim's derived values against its probes' reference values.

    Entry probes: the mixed relative error (with ``scale``, the case's gradient scale, in
    its floor).  Direction probes: the derived projection ``r . got`` against the
    reference, relative to ``|r| . |got|``, the size of the terms the projection sums (a
    cancelling sum would otherwise inflate the relative error).
    """
    if not plist[0][1].endswith(" dir"):
        return rel_error(got, ref, scale=scale)
    dirs = np.array([p[4].reshape(-1) for p in plist])
    proj = dirs @ got
    # Differences before any conversion to float64 (50-digit values keep their digits).
    scale = (np.abs(dirs) @ np.abs(got)).astype(float)
    diff = np.abs(proj - ref).astype(float)
    if not (np.all(np.isfinite(diff)) and np.all(np.isfinite(scale))):
        return float("inf")
    return float(np.max(np.where(scale > 0, diff / np.where(scale > 0, scale, 1), diff)))


def gradient_checks(
    cell: Cell, cases: list[Case], methods=tuple(METHODS), prefix: str = ""
) -> list[Check]:
    """One ``Check`` per claim and method: the worst error over all ``cases``."""
    worst: dict[tuple[str, str], float] = {}
    ran: dict[tuple[str, str], list[Case]] = {}
    tolerance: dict[str, float] = {}
    for case in cases:
        use = [m for m in methods if m not in SLOW or case.T <= MAX_SLOW_T]
        if not central_applies(case):
            use = [m for m in use if m != "central difference"]
        for (claim, method), err in check_case(cell, case, use).items():
            label = f"{method}, saturated" if case.scale > 1 else method
            tolerance[label] = (SATURATED if case.scale > 1 else METHODS)[method]
            worst[claim, label] = max(worst.get((claim, label), 0.0), err)
            ran.setdefault((claim, label), []).append(case)
    rows = []
    for (claim, label), err in worst.items():
        sizes = _summary(ran[claim, label])
        rows.append(Check(prefix + claim, label, sizes, err, tolerance[label]))
    return rows


def gradient_claims(
    cell: Cell, cases: list[Case], methods=tuple(METHODS), prefix: str = ""
) -> list[Claim]:
    """``gradient_checks`` as claims: each error measured in the one shared run."""
    return [
        Claim.measured(c.claim, c.method, c.sizes, c.max_rel_error, c.tolerance)
        for c in gradient_checks(cell, cases, methods, prefix)
    ]


def _summary(cases: list[Case]) -> str:
    lengths = sorted({c.T for c in cases})
    forms = sorted({
        "scalar" if not c.vector else f"{c.n_h} hidden and {c.n_x} input units" for c in cases
    })
    scales = sorted({c.scale for c in cases})
    seeds = sorted({c.seed for c in cases})
    # Words and numbers an evidence table prints as they stand (no code names, no braces).
    text = (
        f"T = {', '.join(map(str, lengths))}; {'; '.join(forms)}; "
        f"|w| \u2264 {' or '.join(f'{s:g}' for s in scales)}; seeds {', '.join(map(str, seeds))}"
    )
    if lengths[-1] > EXHAUSTIVE_T:
        text += (
            f"; adjoint series beyond T={EXHAUSTIVE_T} along {DIRECTIONS} random directions each"
        )
    return text


def backward_map_by_probes(cell: Cell, params: dict, inputs: dict, initial: dict, k: int):
    """J = d(bar s(k-1)) / d(bar s(k)) over the states s, from the forward pass alone.

    For a loss that reads only state s_j at step k, the adjoints at k are
    A[i, j] = d s_j(k) / d s_i(k) (a perturbation of s_i right after it is computed), and
    those at k-1 are B[i, j] = d s_j(k) / d s_i(k-1).  The backward map sends A to B, so
    J = B A^-1; A is triangular with a unit diagonal.  Every entry is a complex step.
    """
    states = [s.name for s in cell.states]
    upto = {name: seq[:k] for name, seq in inputs.items()}

    def d(out: str, node: tuple[str, int]) -> float:
        def g(delta):
            return forward(cell, params, upto, initial, perturb={node: delta})[out][k]

        return float(routes.complex_step(g))

    a = np.array([[d(sj, (si, k)) for sj in states] for si in states])
    b = np.array([[d(sj, (si, k - 1)) for sj in states] for si in states])
    return b @ np.linalg.inv(a)


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
