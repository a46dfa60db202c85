"""``derive grad``: a recurrent problem's derived adjoints evaluated on numbers.

The input (JSON) holds ``weights`` (every parameter by name), each input's sequence, each
state's initial value as ``<state>0`` and each loss variable's weights as ``dL_d<variable>``
(the loss is L = sum_t a_t . v_t).  Scalar weights run the scalar cell, on the C backend
(``derive.engine.native``) or NumPy (``ScalarSweep``); matrices run the vector form with
biases, on NumPy (``VectorSweep``).  The output holds the states per step and ``grad``:
every parameter's gradient, the initial states' and the inputs' adjoints.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import sympy as sp

from derive import inputs as inp
from derive.engine.cell import Cell
from derive.engine.native import NativeUnavailable, NoCompiler, native_gradient, warn
from derive.engine.numeric import VectorSweep, forward, generated
from derive.engine.vector import n_h, n_x
from derive.errors import InputError

if TYPE_CHECKING:
    from derive.problems.recurrent import RecurrentProblem

#: What computes ``derive grad``'s numbers: C if it can run here, C, or NumPy.
BACKENDS = ("auto", "c", "numpy")
#: ``derive grad``'s longest sequence in the scalar form: 10^5 steps of the LSTM take about a
#: second on either backend and print 8 MB.
GRAD_MAX_T = 100_000
#: The vector form (matrices) runs step by step in NumPy, about 0.3 ms a step: 10^4 steps
#: of the LSTM take 4 s and 120 MB (10^5 took 28 s and 480 MB).
GRAD_MAX_T_VECTOR = 10_000
#: The largest number of rows or columns of a matrix of the vector form (the LSTM's eight
#: 256 x 256 weights are half a million numbers in, and as many out).
GRAD_MAX_SIZE = 256
#: The most numbers the vector form's sequences hold together, T x (sizes of the inputs and
#: loss weights at one step): the printed states and adjoints stay under about 30 MB.
GRAD_MAX_SERIES = 500_000


def grad(problem: RecurrentProblem, data: Any, backend: str = "auto") -> dict:
    """Evaluate ``problem``'s derived adjoints on the numbers of a ``derive grad`` input.

    ``backend`` is ``c`` (scalar cell only), ``numpy`` or ``auto`` (C when it can run here,
    else NumPy); the output's ``backend`` says which ran.  Sequences are bounded
    (``GRAD_MAX_T`` steps; the vector form ``GRAD_MAX_T_VECTOR``, ``GRAD_MAX_SIZE``,
    ``GRAD_MAX_SERIES``): beyond a bound, an ``InputError`` that gives it.
    """
    if backend not in BACKENDS:
        raise InputError(f"backend: {backend!r} is unknown; use one of {', '.join(BACKENDS)}")
    cell = problem.cell
    inputs, states, losses = inp.cell_keys(cell)
    top = inp.mapping(data, "input", ["weights", *inputs, *states, *losses])
    weights = inp.mapping(top["weights"], "weights", problem.weights, problem.biases)
    # Overflow is reported below as one clear error, not as NumPy warnings.
    with np.errstate(all="ignore"):
        if isinstance(weights[problem.weights[0]], list):
            if backend == "c":
                raise InputError(
                    "--backend c: the vector form (matrices) runs on NumPy only; use "
                    "--backend auto or numpy"
                )
            out, used = _bounded(problem, lambda: (_grad_vector(problem, top, weights), "numpy"))
        else:
            try:
                out, used = _bounded(problem, lambda: _grad_scalar(problem, top, weights, backend))
            except OverflowError:  # plain floats raise where arrays would give inf
                inp.finite_output([math.inf], f"grad {problem.key}")
    for key, value in [*((k, v) for k, v in out.items() if k != "grad"), *out["grad"].items()]:
        inp.finite_output(value, f"grad {problem.key} ({key})")
    return {**out, "backend": used}


def _bounded(problem: RecurrentProblem, evaluate: Callable[[], tuple]) -> tuple:
    """``evaluate()``; running out of memory is reported as one line, not a traceback (the
    bounds on the input keep it rare: a machine with little memory free)."""
    try:
        return evaluate()
    except MemoryError:
        raise InputError(
            f"grad {problem.key}: not enough memory for this input; give fewer steps or "
            "smaller matrices"
        ) from None


def _sequence(value: Any, field: str, most: int = GRAD_MAX_T, form: str = "") -> list:
    if not isinstance(value, list) or not value:
        raise inp.InputError(f"{field}: expected a non-empty list with one entry per step")
    if len(value) > most:
        raise inp.InputError(f"{field}: expected at most {most} steps{form}, got {len(value)}")
    return value


def _same_length(seqs: dict[str, list], noun: str) -> int:
    lengths = {len(v) for v in seqs.values()}
    if len(lengths) > 1:
        first = next(iter(seqs))
        for k, v in seqs.items():
            if len(v) != len(seqs[first]):
                raise inp.InputError(
                    f"{k}: expected {len(seqs[first])} {noun} (one per step of {first}), "
                    f"got {len(v)}"
                )
    return lengths.pop()


def _sequences(cell: Cell, top: dict, *form) -> dict[str, list]:
    """Each input's and each loss weight's sequence, bounded, by its field name."""
    seqs = {x.name: _sequence(top[x.name], x.name, *form) for x in cell.inputs}
    loss = (f"dL_d{v.name}" for v in cell.loss_on)
    return seqs | {k: _sequence(top[k], k, *form) for k in loss}


def _grad_scalar(
    problem: RecurrentProblem, top: dict, weights: dict, backend: str
) -> tuple[dict, str]:
    """The scalar cell's ``derive grad`` output, and the backend that computed it."""
    cell = problem.cell
    if any(b in weights for b in problem.biases):
        raise inp.InputError(
            f"weights: biases {', '.join(problem.biases)} need the vector form (matrices)"
        )
    params = {k: inp.number(weights[k], f"weights.{k}") for k in problem.weights}
    seqs = _sequences(cell, top)
    steps = _same_length(seqs, "numbers")
    seqs = {k: [inp.number(v, f"{k}[{i}]") for i, v in enumerate(s)] for k, s in seqs.items()}
    init = {s.name: inp.number(top[f"{s.name}0"], f"{s.name}0") for s in cell.states}
    inputs = {x.name: seqs[x.name] for x in cell.inputs}
    loss = {v.name: seqs[f"dL_d{v.name}"] for v in cell.loss_on}
    run = _native_run(cell, params, inputs, init, loss, backend)
    used = "c" if run is not None else "numpy"
    if run is None:
        traj = forward(generated(cell), params, inputs, init)
        run = traj, problem.scalar_sweep.run(traj, params, loss)
    traj, g = run
    out = {k: float(v) for k, v in g.params.items()}
    out |= {f"{s}0": float(v) for s, v in g.initial.items()}
    out |= {x: [float(v) for v in g.bars[x][1 : steps + 1]] for x in inputs}
    states = {s.name: [float(v) for v in traj[s.name][1:]] for s in cell.states}
    return {**states, "grad": out}, used


def _native_run(
    cell: Cell, params: dict, inputs: dict, init: dict, loss: dict, backend: str
) -> tuple | None:
    """The compiled C gradient (``derive.engine.native``), or None to run NumPy instead:
    ``numpy`` asked for, or ``auto`` where C cannot run.  ``c`` where it cannot run is the
    user's error."""
    if backend == "numpy":
        return None
    states = [s.name for s in cell.states]
    try:  # only what the output shows: the states and the inputs' adjoints
        return native_gradient(cell, params, inputs, init, loss, values=states, bars=list(inputs))
    except (NativeUnavailable, ValueError) as exc:
        why = " ".join(str(exc).split())[:500]  # the compiler's messages, on one line
        if backend == "c":
            raise InputError(f"--backend c: the C backend cannot run here: {why}") from None
        # No compiler, or a cell the C printer has no form for (ValueError): NumPy is the
        # plan, not a failure.  Anything else (the compile, the cache, the spot check) is
        # something to mend, and auto says so rather than quietly running slower.
        if isinstance(exc, NativeUnavailable) and not isinstance(exc, NoCompiler):
            warn(f"the C backend cannot run here ({why}); using NumPy")
        return None


def _vector_params(problem: RecurrentProblem, weights: dict) -> tuple[dict, dict]:
    """The vector form's parameters as arrays (biases not given are zero), and the sizes
    n_h (rows of the first weight) and n_x (columns of the first weight that multiplies x)."""
    vc, most = problem.vector_adjoints.vc, GRAD_MAX_SIZE
    first = problem.weights[0]
    # The weights that give the sizes are parsed once (bounded by ``most``) and kept.
    seen = {first: inp.matrix(weights[first], f"weights.{first}", most=most)}
    rows = seen[first].shape[0]
    sizes = {"rows": rows, n_x: rows}
    for w in problem.weights:
        if vc.shape(sp.Symbol(w))[1] == n_x:
            if w not in seen:
                seen[w] = inp.matrix(weights[w], f"weights.{w}", most=most)
            sizes[n_x] = seen[w].shape[1]
            break
    dims = _dims(problem, sizes)
    params = {
        k: inp.shaped(seen[k], f"weights.{k}", dims(k)) if k in seen
        else inp.matrix(weights[k], f"weights.{k}", dims(k))
        for k in problem.weights
    }
    for k in problem.biases:
        given = k in weights
        params[k] = inp.vector(weights[k], f"weights.{k}", rows) if given else np.zeros((rows, 1))
    return params, sizes


def _dims(problem: RecurrentProblem, sizes: dict) -> Callable[[str], tuple[int, int]]:
    vc = problem.vector_adjoints.vc
    subs = {n_h: sizes["rows"], n_x: sizes[n_x]}

    def dims(name: str) -> tuple[int, int]:
        return tuple(int(sp.sympify(d).subs(subs)) for d in vc.shape(sp.Symbol(name)))

    return dims


def _vector_sequences(problem: RecurrentProblem, top: dict, sizes: dict) -> tuple[dict, int]:
    """The vector form's sequences as column vectors, bounded, and the number of steps."""
    cell, rows = problem.vector_cell, sizes["rows"]
    seqs = _sequences(cell, top, GRAD_MAX_T_VECTOR, " in the vector form (matrices)")
    steps = _same_length(seqs, "vectors")
    dims = _dims(problem, sizes)
    size_of = {x.name: dims(x.name)[0] for x in cell.inputs}
    size_of |= {f"dL_d{v.name}": rows for v in cell.loss_on}
    total = steps * sum(size_of.values())
    if total > GRAD_MAX_SERIES:
        raise inp.InputError(
            f"{', '.join(size_of)}: {steps} steps of {sum(size_of.values())} numbers are "
            f"{total}; the vector form takes at most {GRAD_MAX_SERIES} numbers in its sequences"
        )
    seqs = {
        k: [inp.vector(v, f"{k}[{i}]", size_of[k]) for i, v in enumerate(s)]
        for k, s in seqs.items()
    }
    return seqs, steps


def _grad_vector(problem: RecurrentProblem, top: dict, weights: dict) -> dict:
    """The vector form's ``derive grad`` output (NumPy)."""
    cell = problem.vector_cell
    params, sizes = _vector_params(problem, weights)
    seqs, steps = _vector_sequences(problem, top, sizes)
    init = {
        s.name: inp.vector(top[f"{s.name}0"], f"{s.name}0", sizes["rows"]) for s in cell.states
    }
    inputs = {x.name: seqs[x.name] for x in cell.inputs}
    traj = forward(generated(cell), params, inputs, init)
    loss = {v.name: seqs[f"dL_d{v.name}"] for v in cell.loss_on}
    g = VectorSweep(problem.vector_adjoints).run(traj, params, loss)
    out = {k: g.params[k].tolist() for k in problem.weights}
    out |= {k: g.params[k].ravel().tolist() for k in problem.biases if k in weights}
    out |= {f"{s}0": v.ravel().tolist() for s, v in g.initial.items()}
    out |= {x: [v.ravel().tolist() for v in g.bars[x][1 : steps + 1]] for x in inputs}
    states = {s.name: [v.ravel().tolist() for v in traj[s.name][1:]] for s in cell.states}
    return {**states, "grad": out}
