"""A graph's forward pass on arrays, and any formula ``adjoints`` derived, evaluated.

The forward pass is the graph's own definition, written once per operation in NumPy; it
is what the checks differentiate (central differences, complex step).  ``evaluate`` reads
a derived formula (SymPy's matrix expressions: products, sums, transposes, Hadamard
products, entrywise functions, the ones row) on named arrays, so a gradient is what the
printed formula says, not a second implementation of the rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import reduce

import numpy as np
import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from derive.engine.functions import FUNCTIONS, lookup
from derive.engine.functions import numeric as registry
from derive.engine.numeric import lambdify
from derive.errors import InputError
from derive.feedforward.graph import (
    SCALAR,
    AsScalar,
    Graph,
    OnesRow,
    adjoints,
    norm_symbols,
    selection_symbol,
    softmax_symbols,
)
from derive.feedforward.second import DiagColumn


def forward(graph: Graph, given: Mapping[str, object],
            moved: Mapping[str, object] | None = None) -> dict[str, np.ndarray]:
    """Every node's value, from ``given`` (each input, labels, parameter and constant).
    Arrays may be complex (a complex step); labels are integers.  ``moved`` adds to a
    computed node's value right after it is computed (the probe of its adjoint)."""
    # Factors read constants and sizes (1/sqrt(d)).
    scope = {**given, **sizes(graph, given)}
    values: dict[str, np.ndarray] = {}
    for name, node in graph.nodes.items():
        args = [values[a] for a in node.args]
        values[name] = _step(node, args, scope)
        if node.shape == SCALAR and node.op not in LEAVES:  # u vᵀ of two rows: a number
            values[name] = np.asarray(values[name]).reshape(())
        if moved and name in moved:
            values[name] = values[name] + moved[name]
    return values


def _step(node, args, given):
    if node.op in ("input", "param", "const"):
        return np.asarray(given[node.name])
    if node.op == "labels":
        return np.asarray(given[node.name], dtype=int)
    if node.op == "mask":
        return np.asarray(given[node.name], dtype=bool)
    if node.op == "matmul":
        return args[0] @ args[1]
    if node.op in ("add", "sub", "hadamard"):
        a, b = args
        return a + b if node.op == "add" else a - b if node.op == "sub" else a * b
    if node.op == "scale":
        return evaluate(node.coeff, given) * args[0]
    if node.op == "divide":
        return args[0] / args[1]
    if node.op == "shift":
        return args[0] + evaluate(node.coeff, given)
    if node.op == "mean":
        return np.mean(args[0], axis=0, keepdims=True)
    if node.op == "rowmean":
        return np.mean(args[0], axis=1, keepdims=True)
    if node.op == "total":
        return np.sum(args[0])
    if node.op == "fn":
        return FUNCTIONS[node.fn].numpy(args[0])
    if node.op == "softmax_ce":
        scores, labels = args
        return np.mean(log_sum_exp(scores) - scores[np.arange(len(labels)), labels])
    if node.op == "sumsq":
        return np.sum(args[0] * args[0])
    return _structured_step(node, args, given)


def _structured_step(node, args, given):
    if node.op in ("normalize", "rownormalize"):
        axis = 0 if node.op == "normalize" else 1
        centred = args[0] - np.mean(args[0], axis=axis, keepdims=True)
        return centred / deviation(centred, axis, evaluate(node.coeff, given))
    if node.op == "transpose":
        return args[0].T
    if node.op == "softmax":
        return np.exp(args[0] - log_sum_exp(args[0])[:, None])
    if node.op == "masked":
        return np.where(args[1], args[0], -np.inf)
    if node.op == "rows":
        return args[0][args[1]]
    raise ValueError(f"unknown operation {node.op!r}")


def log_sum_exp(scores: np.ndarray) -> np.ndarray:
    """log Σ_j exp(s_ij) for each row, shifted by the row's largest real part (no overflow;
    the shift cancels exactly, so a complex step passes through)."""
    m = np.max(scores.real, axis=1)
    return m + np.log(np.sum(np.exp(scores - m[:, None]), axis=1))


def deviation(centred: np.ndarray, axis: int, eps) -> np.ndarray:
    """sqrt(mean of squares + ε) along ``axis`` (kept), of a centred array; no conjugate,
    so a complex step passes through."""
    return np.sqrt(np.mean(centred * centred, axis=axis, keepdims=True) + eps)


def gradients(graph: Graph, given: Mapping[str, object]) -> dict[str, np.ndarray]:
    """Every adjoint ``adjoints`` derives, evaluated in order on the forward values: by
    name of the node."""
    env = environment(graph, given)
    out = {}
    for name, formula in adjoints(graph).items():
        out[name] = env[graph.nodes[name].bar.name] = evaluate(formula, env)
    return out


def environment(graph: Graph, given: Mapping[str, object],
                moved: Mapping[str, object] | None = None) -> dict[str, object]:
    """What a derived formula reads, by symbol name: every node's value, every size, for
    each cross-entropy P (its scores' rows through softmax) and Y (its labels one-hot), and
    for each normalisation σ; ``moved`` as in ``forward``."""
    values = forward(graph, given, moved)
    env: dict[str, object] = {**values, **sizes(graph, given)}
    for node in graph.nodes.values():
        if node.op == "softmax_ce":
            scores, labels = (graph.nodes[a] for a in node.args)
            p, y = softmax_symbols(scores)
            s = values[scores.name]
            env[p.name] = np.exp(s - log_sum_exp(s)[:, None])
            env[y.name] = np.eye(s.shape[1])[values[labels.name]]
        if node.op == "rows":
            picked = values[node.args[1]]
            env[selection_symbol(graph, node).name] = np.eye(len(values[node.args[0]]))[picked]
        if node.op in ("normalize", "rownormalize"):
            axis = 0 if node.op == "normalize" else 1
            a = values[node.args[0]]
            centred = a - np.mean(a, axis=axis, keepdims=True)
            env[norm_symbols(node).name] = deviation(centred, axis,
                                                     evaluate(node.coeff, env))
    return env


def sizes(graph: Graph, given: Mapping[str, object], partial: bool = False) -> dict[str, int]:
    """Each symbolic size (N, D, ...) as the given arrays fix it; with ``partial``, those
    the arrays given fix (a missing array is skipped).

    Raises
    ------
    InputError
        An array is missing, or its shape is not its node's (each named with the shape
        expected), or two arrays give one size different values.
    """
    out: dict[str, tuple[int, str]] = {}
    for name, node in graph.nodes.items():
        if node.op not in LEAVES:
            continue
        expect = "a number" if node.op == "const" else _show(node, out)
        if name not in given:
            if partial:
                continue
            raise InputError(f"missing {name}: expected {expect}")
        shape = np.shape(given[name])
        want = () if node.op == "const" else (1,) if node.op == "labels" else (1, 1)
        if len(shape) != len(want):
            raise InputError(f"{name}: expected {expect}, got an array of shape {shape}")
        for axis, (dim, n) in enumerate(zip(node.shape, shape, strict=False)):
            if dim.is_Integer and int(dim) != n:
                what = "row" if axis == 0 else "column"
                raise InputError(f"{name}: expected {_show(node, out)}, got {shape} "
                                 f"(it has {dim} {what}{'s' if dim != 1 else ''})")
            seen = out.setdefault(str(dim), (n, name)) if isinstance(dim, sp.Symbol) else None
            if seen and seen[0] != n:
                raise InputError(f"{name}: expected {_show(node, out)}, got {shape} "
                                 f"({dim} is {seen[0]} in {seen[1]})")
    return {k: n for k, (n, _) in out.items()}


LEAVES = ("input", "labels", "param", "const", "mask")


def _show(node, known: dict) -> str:
    dims = [str(known[str(d)][0]) if str(d) in known else str(d) for d in node.shape]
    return dims[0] + " labels" if node.op == "labels" else "×".join(dims)


def evaluate(e: sp.Expr, env: Mapping[str, np.ndarray]):
    """The matrix formula ``e`` on the arrays in ``env`` (by symbol name)."""
    if isinstance(e, AsScalar):
        return np.asarray(evaluate(e.args[0], env)).reshape(())
    if isinstance(e, DiagColumn):
        return np.diag(np.ravel(env[e.column.name]))
    if isinstance(e, OnesRow):
        return np.ones((1, _size(e.shape[1], env)))
    if isinstance(e, sp.MatrixSymbol | sp.Symbol):
        return env[e.name]
    if e.is_Number:
        return float(e)
    if isinstance(e, sp.OneMatrix):
        return np.ones(tuple(_size(d, env) for d in e.shape))
    if isinstance(e, sp.Transpose):
        return np.swapaxes(evaluate(e.arg, env), -1, -2)
    if isinstance(e, sp.MatMul | sp.Mul):
        return reduce(_times, [evaluate(a, env) for a in e.args])
    if isinstance(e, sp.MatAdd | sp.Add):
        return reduce(np.add, [evaluate(a, env) for a in e.args])
    if isinstance(e, sp.HadamardProduct):
        return reduce(np.multiply, [evaluate(a, env) for a in e.args])
    if isinstance(e, sp.HadamardPower):
        return evaluate(e.base, env) ** float(e.exp)
    if isinstance(e, sp.Pow):
        return evaluate(e.base, env) ** float(e.exp)
    if isinstance(e, ElementwiseApplyFunction):
        return _entrywise(e.function, evaluate(e.expr, env))
    if isinstance(e, sp.Function) and (found := lookup(e)) is not None:  # f(a) of a scalar
        return found.numpy(evaluate(e.args[0], env))
    raise ValueError(f"cannot evaluate {type(e).__name__}: {e}")


def _size(d: sp.Expr, env: Mapping[str, object]) -> int:
    return int(d) if d.is_Integer else int(env[str(d)])


def _times(a, b):
    return a @ b if np.ndim(a) == 2 and np.ndim(b) == 2 else a * b


def _entrywise(fn: sp.Lambda, x: np.ndarray) -> np.ndarray:
    (var,) = fn.variables
    body = fn.expr
    found = lookup(body)
    if found is not None and body.args[0] == var:
        return found.numpy(x)
    f = lambdify([var], body, [registry("numpy"), "numpy"])
    return np.zeros_like(x) + f(x)  # a constant derivative (0) as a matrix of x's shape

