"""Numbers from a cell: the forward pass, and the derived adjoint equations evaluated.

The forward pass reads the cell's assignments directly (a product with a weight is a
matrix-vector product, other products are elementwise).  It knows nothing of derivatives,
so finite differences and complex steps of it are independent checks of the adjoints.

Two evaluators of the *derived* equations run the backward sweep t = T, ..., 1:

* ``ScalarSweep`` compiles the scalar adjoint equations once per cell with
  ``sympy.lambdify(..., cse=True)``; it works elementwise, so a batch of sequences is a
  batch of arrays.
* ``VectorSweep`` evaluates the matrix-notation equations of ``VectorAdjoints`` with NumPy,
  vectors as ``(n, 1)`` columns.

Both use the same convention: step 0 holds the initial states; the loss reads
``dL/d(name)(t)`` from ``loss_grads[name][t]``.
"""

from __future__ import annotations

import builtins
import dataclasses
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, cached_property, reduce

import mpmath
import numpy as np
import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from derive.engine.adjoint import Adjoints
from derive.engine.cell import Cell, ParamAdjoint, Quantity, VectorQuantity, param_bar, t
from derive.engine.functions import argument, entry, lookup, numeric
from derive.engine.jacobian import Diag
from derive.engine.vector import U, VectorAdjoints, VectorCell, Z, as_vector

Array = np.ndarray
Trajectory = dict[str, list]


def _by_name(backend: str) -> dict[str, Callable]:
    """The registered functions' numeric forms by name: generated code calls each so
    (lambdify prints sigma(z) by its class's name)."""
    fns = numeric(backend)
    if backend == "mpmath":
        return {n: np.vectorize(fn, otypes=[object]) for n, fn in fns.items()}
    return fns


_PLAIN = {float, int}


def _plain(*groups) -> bool:
    """Whether every value given is a Python float or int, which ``math`` evaluates as
    NumPy would (never complex, an array, a NumPy scalar or a bool).  Groups are mappings
    or sequences whose values may themselves be sequences: every entry is looked at, as
    one complex entry would otherwise lose its imaginary part."""
    for g in groups:
        for v in g.values() if isinstance(g, Mapping) else g:
            if not (set(map(type, v)) if isinstance(v, list | tuple) else {type(v)}) <= _PLAIN:
                return False
    return True


# -- the forward pass ------------------------------------------------------------------------
#: What is compiled once per cell, by (id of the cell, what): the cell is kept with its entry
#: so that its id cannot be reused while the entry lives.
_PER_CELL: dict[tuple[int, tuple], tuple[Cell, object]] = {}


def per_cell(cell: Cell, what: tuple, make: Callable[[], object]) -> object:
    """``make()`` once per ``cell`` and ``what``: compiled code every caller shares."""
    key = (id(cell), what)
    hit = _PER_CELL.get(key)
    if hit is None or hit[0] is not cell:
        hit = _PER_CELL[key] = (cell, make())
    return hit[1]


def sweep_for(cell: Cell, backend: str = "numpy", vector: bool = False):
    """The cell's compiled backward sweep (scalar or vector form), derived once.

    An mpmath sweep holds constants made at the precision it was compiled in, so the
    current precision is part of its key.
    """
    dps = mpmath.mp.dps if backend == "mpmath" else 0

    def make():
        if vector:
            return VectorSweep(vector_adjoints_for(cell), backend)
        return ScalarSweep(adjoints_for(cell), backend)

    return per_cell(cell, ("sweep", backend, vector, dps), make)


def adjoints_for(cell: Cell) -> Adjoints:
    """The cell's scalar adjoint equations, derived once per cell."""
    return per_cell(cell, ("adjoints",), lambda: Adjoints(cell))


def vector_adjoints_for(cell: Cell) -> VectorAdjoints:
    """The cell's matrix-notation adjoint equations, derived once per cell."""
    return per_cell(cell, ("vector adjoints",), lambda: VectorAdjoints(cell))


def lambdify(args, exprs, modules: list | str, cse: bool = False) -> Callable:
    """``sympy.lambdify`` as derive calls it everywhere: ``"numpy"`` given as the module
    itself (the code printed is NumPy's, without lambdify's ``from numpy import *``, 60 ms
    that imported numpy.f2py, numpy.ma, numpy.testing and more), and no expression printed
    into the docstring (a third of lambdify's time; nothing reads those docstrings)."""
    listed = [modules] if isinstance(modules, str) else modules
    return sp.lambdify(args, exprs, [np if m == "numpy" else m for m in listed], cse=cse,
                       docstring_limit=0)


def lambdify_apart(args: list, exprs, modules: list, cse: bool = True) -> Callable:
    """``sympy.lambdify(args, exprs, modules)``, with every argument named like a name the
    generated code reads (a function as ``sigma`` or ``exp``, a module) replaced by a Dummy
    of its name: a weight called ``sigma`` would otherwise hide the function.

    Only such arguments are replaced, so the code of every other cell, and its rounding,
    stays what it was (a Dummy orders after the ``cse`` symbols, a Symbol by its name).
    """
    fn = lambdify(args, exprs, modules, cse=cse)
    read = set(fn.__globals__) | set(dir(builtins))
    clash = {a: sp.Dummy(a.name) for a in args if isinstance(a, sp.Symbol) and a.name in read}
    if not clash:
        return fn
    exprs = [e.xreplace(clash) for e in exprs] if isinstance(exprs, list) else exprs.xreplace(clash)
    return lambdify([clash.get(a, a) for a in args], exprs, modules, cse=cse)


def like_numpy(fast: Callable, numpy: Callable[[], Callable]) -> Callable:
    """``fast`` (compiled for ``math``, on plain floats) with NumPy's semantics: where
    ``math`` raises (``exp(800)``, ``log(-1)``, a division by 0) NumPy gives inf or nan, so
    that call is made again by ``numpy()`` (the same code compiled for NumPy) on float64."""

    def call(*args):
        try:
            return fast(*args)
        except (ArithmeticError, ValueError):  # OverflowError, ZeroDivisionError, domain
            return numpy()(*map(np.float64, args))

    return call


def _compiled_step(cell: Cell, perturbed: bool, kind: str = "numpy") -> Callable:
    """One step of the univariate cell as ONE compiled NumPy function.

    Its arguments are the inputs, the previous states and the parameters (in that order),
    then, if ``perturbed``, one value added to each variable right after it is computed; it
    returns every assigned variable in order.  Later right-hand sides read earlier
    variables through ``cse``, so nothing is computed twice, and a step costs one call.
    """

    def make() -> Callable:
        names = _by_name(kind)
        args = [*cell.inputs, *cell.prev.values(), *cell.params]
        value: dict[sp.Symbol, sp.Expr] = {}
        taken = {s.name for s in (*args, *cell.variables)}
        for u, e in cell.assignments:
            value[u] = e.xreplace(value)
            if perturbed:
                # A plain symbol, named apart from the cell's own (a Dummy's numbering
                # would make the generated code, and its rounding, depend on history).
                name = f"delta_{u.name}"
                while name in taken:
                    name = "d" + name
                taken.add(name)
                delta = sp.Symbol(name)
                value[u] += delta
                args.append(delta)
        outs = [value[u] for u in cell.variables]
        return lambdify_apart(args, outs, [names, kind])

    return per_cell(cell, ("step", perturbed, kind), make)


def _matvec(w, v):
    # Scalars stand for 1x1 matrices: the univariate cell of the handouts.
    return w * v if np.ndim(w) == 0 else w @ v


def forward(
    cell: Cell,
    params: Mapping[str, Array],
    inputs: Mapping[str, Sequence[Array]],
    initial: Mapping[str, Array],
    backend: str = "numpy",
    perturb: Mapping[tuple[str, int], Array] | None = None,
) -> Trajectory:
    """Run the cell over a sequence.

    Parameters
    ----------
    params
        Weights as ``(rows, cols)`` arrays, biases as ``(n, 1)`` columns; scalars for the
        univariate cell.  A leading batch axis runs many sequences at once.
    inputs
        Each input's values at steps 1..T.
    initial
        Each state's value at step 0.
    backend
        ``numpy`` (real or complex arrays) or ``mpmath`` (object arrays of ``mpf``).
    perturb
        ``{(variable, step): delta}`` added to a variable right after it is computed: the
        derivative of the loss by that delta is the variable's adjoint at that step.

    Returns
    -------
    dict
        Every input and assigned variable as a list over steps 0..T (index 0 holds the
        initial states; other variables there are zero).
    """
    perturb = perturb or {}
    # The univariate cell in float64/complex arithmetic runs its compiled scalar step
    # (lambdify); otherwise a generated step reads it as vectors (matrix products), with
    # NumPy or mpmath functions.  1x1 weights (with or without a batch axis) are the
    # univariate cell too: there a matrix product is a product.
    scalar = backend == "numpy" and all(np.shape(v)[-2:] in ((), (1, 1)) for v in params.values())
    return _forward_compiled(cell, params, inputs, initial, perturb, not scalar, backend)


def _vector_step(cell: Cell, perturbed: bool, backend: str = "numpy") -> Callable:
    """One step of the cell read as vectors, as ONE generated NumPy function.

    Same arguments and result as ``_compiled_step``; the source spells out the vector
    reading of each right-hand side node by node (a product with a weight is ``W @ (...)``,
    other products and functions elementwise).
    """

    def make() -> Callable:
        fns = _by_name(backend)
        names = {
            s: f"a{i}" for i, s in enumerate([*cell.inputs, *cell.prev.values(), *cell.params])
        }
        args = list(names.values())
        lines = []
        for i, (u, e) in enumerate(cell.assignments):
            names[u] = f"v{i}"
            lines.append(f"    v{i} = {_vector_source(cell, e, names, backend == 'mpmath')}")
            if perturbed:
                args.append(f"d{i}")
                lines.append(f"    v{i} = v{i} + d{i}")
        outs = ", ".join(names[u] for u in cell.variables)
        src = f"def step({', '.join(args)}):\n" + "\n".join(lines) + f"\n    return ({outs},)\n"
        # The source is built above from the cell alone (generated names a0, v0, ..., the
        # registry's function names, numbers printed by repr): no user text is executed.
        space = dict(fns, _matvec=_matvec, mpf=mpmath.mpf)
        exec(compile(src, f"<vector step of {cell.name}>", "exec"), space)
        return space["step"]

    return per_cell(cell, ("vector step", perturbed, backend), make)


def _vector_source(
    cell: Cell, e: sp.Expr, names: Mapping[sp.Symbol, str], exact: bool = False
) -> str:
    """Python source of a right-hand side read as vectors (see ``_vector_step``); with
    ``exact`` (mpmath) rational constants are exact at the working precision."""
    if e.is_Symbol:
        return names[e]
    if e.is_Number:
        return _number_source(e, exact)
    if isinstance(e, sp.Add):
        return "(" + " + ".join(_vector_source(cell, a, names, exact) for a in e.args) + ")"
    if isinstance(e, sp.Mul):
        weights = [f for f in e.args if f.is_Symbol and cell.kind(f) == "weight"]
        rest = [_vector_source(cell, f, names, exact) for f in e.args if f not in weights]
        prod = "(" + " * ".join(rest) + ")"
        return f"_matvec({names[weights[0]]}, {prod})" if weights else prod
    if isinstance(e, sp.Pow) and e.exp.is_Integer:
        return f"({_vector_source(cell, e.base, names, exact)} ** {int(e.exp)})"
    return f"{entry(e).name}({_vector_source(cell, argument(e), names, exact)})"


def _is_constant(e) -> bool:
    """A scalar without free symbols: a number, or a constant such as ``sqrt(2)``."""
    return not isinstance(e, sp.MatrixExpr) and not e.free_symbols


def _number_source(e: sp.Expr, exact: bool) -> str:
    """A number as Python source: its float64 ``repr``, or for mpmath (``exact``) a
    non-integer rational as ``mpf(p) / q``, computed at the working precision when the
    code runs (as a float, 1/3 would keep 53 bits)."""
    if exact and e.is_Rational and not e.is_Integer:
        return f"(mpf({int(e.p)}) / {int(e.q)})"
    return repr(float(e) if e.is_real else complex(e))


def generated(cell: Cell) -> Cell:
    """``cell`` running its compiled forward pass: ``derive grad`` and a worked example's
    printed values evaluate generated code (a cell written as text reads its own text only
    where that reading is the independent route: the checks' references)."""
    return cell if cell.interpreted is None else dataclasses.replace(cell, interpreted=None)


def _forward_compiled(
    cell: Cell, params, inputs, initial, perturb, vector: bool = False, backend: str = "numpy"
) -> Trajectory:
    """``forward`` by one compiled call per step."""
    steps = len(next(iter(inputs.values())))
    if cell.interpreted is not None:  # a cell written as text: its equations' own reading
        step = cell.interpreted("mpmath" if backend == "mpmath" else "numpy", bool(perturb))
    elif vector:
        step = _vector_step(cell, bool(perturb), backend)
    else:
        # One sequence of plain floats runs on ``math``: NumPy's per-call overhead on
        # single numbers would be most of the time.
        plain = _plain(params, initial, inputs, perturb)
        step = _compiled_step(cell, bool(perturb), "math" if plain else "numpy")
        if plain:
            step = like_numpy(step, lambda: _compiled_step(cell, bool(perturb), "numpy"))
    fixed = [params[p.name] for p in cell.params]
    series = [inputs[x.name] for x in cell.inputs]
    state = [initial[s.name] for s in cell.prev]  # in the order of cell.prev
    where = [cell.variables.index(s) for s in cell.prev]
    # Each variable's perturbation at every step (0 where none), looked up once.
    deltas = [[perturb.get((u.name, k), 0) for k in range(1, steps + 1)] for u in cell.variables]
    rows: list[list] = []
    for k in range(1, steps + 1):
        extra = [d[k - 1] for d in deltas] if perturb else []
        vals = step(*[x[k - 1] for x in series], *state, *fixed, *extra)
        rows.append(vals)
        state = [vals[i] for i in where]
    traj: Trajectory = {x.name: [0 * inputs[x.name][0], *inputs[x.name]] for x in cell.inputs}
    for i, u in enumerate(cell.variables):
        column = [r[i] for r in rows]
        first = initial[u.name] if u in cell.states else 0 * column[0]
        traj[u.name] = [first, *column]
    return traj


def loss(traj: Trajectory, loss_grads: Mapping[str, Sequence[Array]]):
    """The loss L = sum over steps and loss variables of a_t . v_t (a scalar)."""
    total = 0
    for name, weights in loss_grads.items():
        # All steps at once: (T, [batch,] rows, 1) products, summed over steps and over
        # the vector's entries only (a leading batch axis stays).
        a = np.asarray(weights)
        u = np.asarray(traj[name][1 : len(weights) + 1])
        if u.ndim > a.ndim:  # a batch axis after the step axis: the weights broadcast over it
            a = a.reshape(a.shape[:1] + (1,) * (u.ndim - a.ndim) + a.shape[1:])
        elif u.ndim < a.ndim:  # plain numbers against (n, 1) weights: a number per step
            u = u.reshape(u.shape + (1,) * (a.ndim - u.ndim))
        v = a * u
        total = total + np.sum(v, axis=(0, -2, -1) if v.ndim >= 3 else 0)
    return total


def evaluate_at(expr, traj: Trajectory, params: Mapping[str, float], k: int):
    """A derived scalar expression (or matrix) at step t = k of a scalar trajectory."""
    sub = {}
    for a in sp.Matrix([expr]).atoms(Quantity):
        sub[a] = traj[a.quantity][k + int(a.offset)]
    sub |= {sp.Symbol(n): v for n, v in params.items()}
    return sp.sympify(expr.xreplace(sub)).evalf()  # a lone atom comes back a plain number


# -- evaluating the derived equations ---------------------------------------------------------
@dataclass
class Gradients:
    """The result of a backward sweep: adjoints per step and parameter gradients."""

    bars: dict[str, list]  # adjoint of every variable and input, steps 0..T
    params: dict[str, object]
    initial: dict[str, object]


def stable_forms(cell: Cell, expr: sp.Expr) -> sp.Expr:
    """``expr`` with each derivative factor in a form float64 evaluates to full accuracy.

    The answer key writes sigma'(z) = u(1 - u) and tanh'(z) = 1 - g^2 from the stored gate
    values; near saturation (u close to 1) ``1 - u`` keeps only the absolute accuracy of
    ``u``, so every digit lost to the cancellation is lost from the gradient (about
    eps / (1 - u) relative).  Numbers are computed from the pre-activation instead:
    ``1 - u = sigma(-z)`` and ``1 - tanh(z)^2 = sech(z)^2``.  Equal as formulas; only the
    rounding differs.
    """
    gates = {u.name: e for u, e in cell.assignments if lookup(e) is not None}
    sub: dict[sp.Expr, sp.Expr] = {}
    for a in expr.atoms(Quantity):
        e = gates.get(a.quantity) if a.role == "value" else None
        if e is not None:
            z = argument(e).xreplace(cell.at_step(int(a.offset)))
            sub.update(entry(e).stable(a, z))
    for f in expr.atoms(sp.Function):  # a function of a quantity: tanh(c) of h = o tanh(c)
        found = lookup(f)
        if found is not None:
            sub.update(found.stable(f, argument(f)))
    return expr.xreplace(sub)


def sweep_outputs(adjoints: Adjoints) -> dict[sp.Expr, sp.Expr]:
    """What one step of the backward sweep computes, in sweep order, in stable forms.

    Keys are the adjoints at step t (``bar(h)``, ...) and ``param_bar(w)`` symbols for
    each parameter's per-step term (summed over steps by the caller); each value reads
    only forward quantities, loss derivatives, parameters and adjoints at step t + 1 (the
    adjoints of step t computed before it are substituted in).
    """
    cell = adjoints.cell
    exprs: dict[sp.Expr, sp.Expr] = {}
    for a in adjoints.variables.values():  # sweep order: later bars read earlier ones
        exprs[a.lhs] = stable_forms(cell, a.expr).xreplace(exprs)
    outs = dict(exprs)
    outs.update(
        {a.lhs: stable_forms(cell, a.expr).xreplace(exprs) for a in adjoints.inputs.values()}
    )
    for name, a in adjoints.params.items():
        outs[param_bar(name)] = stable_forms(cell, a.expr.function).xreplace(exprs)
    return outs


class ScalarSweep:
    """The scalar adjoint equations compiled to one NumPy function per step."""

    def __init__(self, adjoints: Adjoints, backend: str = "numpy") -> None:
        self.adj = adjoints
        self.cell = adjoints.cell
        self.backend = backend
        self._by_kind: dict[str, tuple] = {}

    def _modules(self, kind: str) -> list:
        return [_by_name(kind), kind]

    @property
    def _compiled(self) -> tuple[list[sp.Expr], Callable, list[str], dict]:
        """The sweep compiled for the backend (what ``run`` uses on arrays)."""
        return self._compiled_for(self.backend)

    def _compiled_for(self, kind: str) -> tuple[list[sp.Expr], Callable, list[str], dict]:
        """The sweep compiled for ``kind`` (the backend, or ``math`` for plain floats):
        arguments, step function, output names, and each initial state's adjoint."""
        if kind not in self._by_kind:
            args, fn, names = self._compile(kind)
            initial = self._compile_initial(kind)
            if kind == "math":  # where math raises, NumPy's inf and nan (compiled if needed)
                fn = like_numpy(fn, lambda: self._compiled_for("numpy")[1])
                initial = {
                    s: (a, like_numpy(f, lambda s=s: self._compiled_for("numpy")[3][s][1]))
                    for s, (a, f) in initial.items()
                }
            self._by_kind[kind] = (args, fn, names, initial)
        return self._by_kind[kind]

    def _compile(self, kind: str) -> tuple[list[sp.Expr], Callable, list[str]]:
        outs = sweep_outputs(self.adj)
        atoms = set()
        for e in outs.values():
            atoms |= e.atoms(Quantity) | (e.free_symbols - {t})
        args = sorted(atoms, key=sp.default_sort_key)
        dummies = [sp.Dummy(str(a)) for a in args]
        sub = dict(zip(args, dummies, strict=True))
        exprs = [e.xreplace(sub) for e in outs.values()]
        fn = lambdify(dummies, exprs, self._modules(kind), cse=True)
        return args, fn, list(outs)

    def _compile_initial(self, kind: str) -> dict[str, tuple]:
        out = {}
        for s in self.cell.states:
            e = stable_forms(self.cell, self.adj.variables[s.name].from_next_step)
            args = sorted(e.atoms(Quantity) | (e.free_symbols - {t}), key=sp.default_sort_key)
            out[s.name] = (args, lambdify_apart(args, e, self._modules(kind), cse=False))
        return out

    def run(self, traj: Trajectory, params: Mapping[str, object], loss_grads: Mapping) -> Gradients:
        """Backward sweep over a trajectory of scalars (or of equal-shaped arrays)."""
        plain = self.backend == "numpy" and _plain(params, traj, loss_grads)
        kind = "math" if plain else self.backend
        args, fn, names, initial_fns = self._compiled_for(kind)
        steps = len(traj[self.cell.inputs[0].name]) - 1
        zero = 0 * traj[self.cell.variables[0].name][1]
        bars: dict[str, list] = {n: [zero] * (steps + 2) for n in adjoint_names(self.cell)}
        series = _Padded(traj, params, loss_grads, bars, steps, zero)
        where = [sweep_argument(a) for a in args]
        _step(1 + min((off for kind, _, off in where if kind != "param"), default=0))
        reads = [(series(kind, name), offset) for kind, name, offset in where]
        # Each output is an adjoint series (stored at step k) or a parameter's term (summed
        # over the steps, in the order t = T, ..., 1).
        series_out = [(i, bars[n.quantity]) for i, n in enumerate(names) if isinstance(n, Quantity)]
        param_out = [(i, n.name) for i, n in enumerate(names) if isinstance(n, ParamAdjoint)]
        sums = [zero for _ in param_out]
        for k in range(steps, 0, -1):
            vals = fn(*[s[k + o] for s, o in reads])
            for i, out in series_out:
                out[k] = vals[i]
            for j, (i, _) in enumerate(param_out):
                sums[j] = sums[j] + vals[i]
        grads = {p: zero for p in params}
        grads.update({p: v for (_, p), v in zip(param_out, sums, strict=True)})
        initial = {}
        for s, (a_args, f) in initial_fns.items():  # at t = 0, from the same padded series
            at = [(kind, name, _step(off)) for kind, name, off in map(sweep_argument, a_args)]
            initial[s] = f(*[series(kind, name)[k] for kind, name, k in at])
        return Gradients(bars, grads, initial)


class _Padded:
    """Every argument of the scalar sweep as a series read as ``series[k + offset]``:
    parameters are constant series, and the series are padded where the equations read
    before step 1 (loss) or after step T, so the per-step loop of ``ScalarSweep.run`` is one
    list comprehension and one call.  Adjoint series are the sweep's own lists, filled in
    place as it goes.  Past step T the adjoints and loss weights are 0 and the values repeat
    step T's: every term there is multiplied by a zero adjoint, and a value of 0 could lie
    where a factor is infinite (sqrt's slope 1/(2u)), making the product NaN."""

    def __init__(self, traj, params, loss_grads, bars: dict, steps: int, zero) -> None:
        self.traj, self.params, self.loss_grads, self.bars = traj, params, loss_grads, bars
        self.steps, self.zero = steps, zero
        self.made: dict[tuple[str, str], list] = {}

    def __call__(self, kind: str, name: str) -> list:
        if (kind, name) not in self.made:
            self.made[kind, name] = self._make(kind, name)
        return self.made[kind, name]

    def _make(self, kind: str, name: str) -> list:
        steps, zero = self.steps, self.zero
        if kind == "bar":
            return self.bars[name]
        if kind == "param":
            return [self.params[name]] * (steps + 2)
        if kind == "loss":
            return [zero, *self.loss_grads[name][:steps], zero]
        return [*self.traj[name][: steps + 1], self.traj[name][steps]]


class MatrixEvaluator:
    """Numbers from a SymPy matrix expression: the one evaluator every problem uses.

    Parameters
    ----------
    symbol
        Value of a ``MatrixSymbol`` (looked up by the caller's naming scheme).
    fns
        Numeric form of each elementwise function, by SymPy class.
    sizes
        Numbers for symbolic dimensions; without them ``OneMatrix`` evaluates to ``1.0``,
        which broadcasts against the vector it meets.

    A problem with matrix-expression classes of its own subclasses this and overrides
    ``rule``, which is tried first.
    """

    def __init__(self, symbol: Callable, fns: Mapping, sizes: Mapping | None = None) -> None:
        self.symbol = symbol
        self.fns = fns
        self.sizes = dict(sizes or {})

    def rule(self, e):
        """A subclass's rule for ``e``, or ``NotImplemented`` to use the general ones."""
        return NotImplemented

    def __call__(self, e):
        special = self.rule(e)
        if special is not NotImplemented:
            return special
        if isinstance(e, sp.MatrixSymbol):
            return self.symbol(e)
        if _is_constant(e):  # a number, or a coefficient such as sqrt(2)
            return float(e) if e.is_real else complex(e)
        if isinstance(e, sp.OneMatrix | sp.Identity | sp.ZeroMatrix):
            return self._constant(e)
        if isinstance(e, Diag):
            return np.diag(np.ravel(self(e.args[0])))
        if isinstance(e, sp.Transpose):
            return self(e.arg).T
        if isinstance(e, sp.MatMul):
            return reduce(_matmul, [self(a) for a in e.args])
        if isinstance(e, sp.MatAdd):
            return sum(self(a) for a in e.args)
        if isinstance(e, sp.HadamardProduct):
            return reduce(operator.mul, [self(a) for a in e.args])
        if isinstance(e, sp.HadamardPower):
            return self(e.base) ** int(e.exp)
        if isinstance(e, sp.KroneckerProduct):
            return reduce(np.kron, [self(a) for a in e.args])
        if isinstance(e, ElementwiseApplyFunction):
            f = e.function.expr
            fn = self.fns.get(type(f)) or entry(f).numpy  # the registry's, unless given
            return fn(self(e.expr))
        raise TypeError(f"cannot evaluate {type(e).__name__}: add a rule for it")

    def _constant(self, e):
        try:
            rows, cols = (int(sp.sympify(s).xreplace(self.sizes)) for s in e.shape)
        except TypeError:  # symbolic size: ones and zeros stand in as numbers (broadcast)
            if isinstance(e, sp.OneMatrix | sp.ZeroMatrix):
                return 1.0 if isinstance(e, sp.OneMatrix) else 0.0
            raise
        if isinstance(e, sp.Identity):
            return np.eye(rows)
        return (np.ones if isinstance(e, sp.OneMatrix) else np.zeros)((rows, cols))


def _matmul(a, b):
    # Numbers scale; arrays multiply as matrices.
    return a * b if np.ndim(a) == 0 or np.ndim(b) == 0 else a @ b


def vector_stable_forms(
    vc: VectorCell, expr: sp.MatrixExpr, memo: dict | None = None
) -> sp.MatrixExpr:
    """The matrix-notation counterpart of ``stable_forms``: ``1 - u`` for ``u = σ(z)`` as
    ``σ(-z)``, and ``1 - g∘g`` for ``g = tanh(z)`` (or ``tanh(c)``) as ``sech(z)∘sech(z)``.

    ``memo`` keeps each quantity's rewrite between calls: building matrix expressions is
    the slow part, and the equations of one cell share most of them.
    """
    memo = {} if memo is None else memo
    sub: dict[sp.MatrixExpr, sp.MatrixExpr] = {}
    for a in [*expr.atoms(sp.MatrixSymbol), *expr.atoms(ElementwiseApplyFunction)]:
        if a not in memo:
            memo[a] = _vector_rewrite(vc, a)
        sub.update(memo[a])
    return expr.xreplace(sub)


def _vector_rewrite(vc: VectorCell, a: sp.MatrixExpr) -> dict:
    """{printed form: stable form} of the derivative factors made of ``a``: a function
    applied elementwise, or a quantity assigned one (see ``stable_forms``)."""
    if isinstance(a, ElementwiseApplyFunction):
        f = a.function.expr
        u, z = a, a.expr
    else:
        if not isinstance(a, VectorQuantity) or a.role != "value" or a.step is None:
            return {}
        f = {u.name: e for u, e in vc.cell.assignments}.get(a.name)
        if f is None or lookup(f) is None:
            return {}
        u, z = a, vc.to_vec(argument(f), int(a.offset))
    found = lookup(f)
    if found is None:
        return {}
    pairs = found.stable(U, Z).items()
    return {as_vector(p, {U: u, Z: z}): as_vector(r, {U: u, Z: z}) for p, r in pairs}



class VectorSweep:
    """The matrix-notation adjoint equations evaluated with NumPy, one step at a time.

    The equations are evaluated in ``vector_stable_forms``: the printed ones, with each
    derivative factor computed from the pre-activation.
    """

    def __init__(self, adjoints: VectorAdjoints, backend: str = "numpy") -> None:
        self.adj = adjoints
        self.cell = adjoints.cell
        self.backend = backend
        self.fns = _by_name(backend)

    def _stable_equations(self) -> tuple[dict, dict, dict]:
        vc, memo = self.adj.vc, {}

        def stable(eqs: Mapping) -> dict:
            return {n: vector_stable_forms(vc, e, memo) for n, e in eqs.items()}

        bars = stable({**self.adj.variables, **self.adj.inputs})
        initial = stable({s.name: self.adj.initial(s.name) for s in self.cell.states})
        return bars, stable(self.adj.params), initial

    @cached_property
    def _compiled(self) -> tuple[dict, dict, dict]:
        """Each equation as (matrix symbols it reads, generated function of them)."""

        def comp(eqs: dict) -> dict:
            exact = self.backend == "mpmath"
            return {n: _matrix_function(e, self.fns, exact) for n, e in eqs.items()}

        # The equations depend on the cell alone: one set per cell, whichever backend asks.
        equations = per_cell(self.cell, ("vector equations",), self._stable_equations)
        return tuple(comp(eqs) for eqs in equations)

    def run(self, traj: Trajectory, params: Mapping[str, Array], loss_grads: Mapping) -> Gradients:
        """Backward sweep over a trajectory of ``(n, 1)`` columns."""
        steps = len(traj[self.cell.inputs[0].name]) - 1
        names = adjoint_names(self.cell)
        bars: dict[str, list] = {n: [0 * traj[n][1]] * (steps + 2) for n in names}
        grads = {p: 0 * v for p, v in params.items()}
        padded: dict[str, list] = {}

        def series(m: VectorQuantity) -> tuple[list, int]:
            # (values by step, offset): read as values[k + offset]; past the ends zero
            # adjoints and loss weights, and values that repeat step T's (as ``_Padded``).
            if m.step is None:
                return [params[m.name]] * (steps + 2), 0
            key, name = (m.role, m.name), m.name
            if key not in padded and m.role == "adjoint":
                padded[key] = bars[name]  # filled in place as the sweep goes
            elif key not in padded and m.role == "loss":
                lg = loss_grads[name][:steps]
                padded[key] = [0 * lg[0], *lg, 0 * lg[0]]
            elif key not in padded:
                padded[key] = [*traj[name][: steps + 1], traj[name][steps]]
            return padded[key], int(m.offset)

        bar_eqs, param_eqs, initial_eqs = (
            _reads(eqs, first, series) for eqs, first in zip(self._compiled, (1, 1, 0), strict=True)
        )
        for k in range(steps, 0, -1):
            for n, fn, where in bar_eqs:
                bars[n][k] = _shaped(fn(*[v[k + o] for v, o in where]), bars[n][k])
            for p, fn, where in param_eqs:
                grads[p] = grads[p] + fn(*[v[k + o] for v, o in where])
        initial = {s: _shaped(fn(*[v[o] for v, o in where]), 0 * traj[s][0])
                   for s, fn, where in initial_eqs}
        return Gradients(bars, grads, initial)


def _shaped(value, zero):
    """``value`` with the shape of ``zero``: a zero adjoint compiles to the number 0."""
    return value if np.ndim(value) else zero + value


def _reads(eqs: dict, first: int, series: Callable) -> list:
    """(name, function, [(series, offset) it reads]) of each equation, checked to read
    nothing before step 0 when evaluated from step ``first`` on."""
    out = []
    for n, (args, fn) in eqs.items():
        where = [series(a) for a in args]
        _step(first + min((o for _, o in where), default=0))
        out.append((n, fn, where))
    return out


def _matrix_function(
    e: sp.MatrixExpr, fns: Mapping, exact: bool = False
) -> tuple[list[sp.MatrixSymbol], Callable]:
    """A matrix expression as a generated Python function of the matrix symbols it reads
    (returned in the order of its arguments).

    The source spells out what ``MatrixEvaluator`` does node by node, in the same order of
    operations (so the numbers agree to the bit), without walking the tree at every step.
    """
    symbols = sorted(e.atoms(sp.MatrixSymbol), key=sp.default_sort_key)
    names = {m: f"a{i}" for i, m in enumerate(symbols)}
    space = dict(fns, mpf=mpmath.mpf)
    space |= {"_matmul": _matmul, "_diag": lambda v: np.diag(np.ravel(v)), "_kron": np.kron}
    body = _matrix_source(e, names, space, exact)
    src = f"def f({', '.join(names.values())}):\n    return {body}\n"
    # Generated from a derived expression (names a0, a1, ... and the registry's function
    # names; numbers printed by repr): no user text is executed; lambdify compiles the same way.
    exec(compile(src, "<adjoint equation>", "exec"), space)
    return symbols, space["f"]


def _matrix_source(e, names: Mapping, space: dict, exact: bool = False) -> str:
    """Python source of one node of a matrix expression (see ``MatrixEvaluator``); with
    ``exact`` (mpmath) rational constants are exact (``_number_source``)."""
    if isinstance(e, sp.MatrixSymbol):
        return names[e]
    if e.is_Number:
        return _number_source(e, exact)
    if _is_constant(e):  # a coefficient such as sqrt(2), at the working precision
        const = f"c{len(space)}"
        space[const] = mpmath.mpf(e.evalf(mpmath.mp.dps + 5)) if exact else float(e)
        return const
    if isinstance(e, sp.OneMatrix | sp.Identity | sp.ZeroMatrix):
        const = f"c{len(space)}"
        space[const] = MatrixEvaluator(lambda m: None, {})._constant(e)
        return const
    if isinstance(e, sp.HadamardPower):
        return f"({_matrix_source(e.base, names, space, exact)} ** {int(e.exp)})"
    if isinstance(e, ElementwiseApplyFunction):
        inner = _matrix_source(e.expr, names, space, exact)
        return f"{entry(e.function.expr).name}({inner})"
    parts = [_matrix_source(a, names, space, exact) for a in e.args]
    if isinstance(e, Diag):
        return f"_diag({parts[0]})"
    if isinstance(e, sp.Transpose):
        return f"({parts[0]}).T"
    if isinstance(e, sp.MatMul | sp.KroneckerProduct):
        fn = "_matmul" if isinstance(e, sp.MatMul) else "_kron"
        return reduce(lambda a, b: f"{fn}({a}, {b})", parts)
    if isinstance(e, sp.MatAdd):
        return "(" + " + ".join(parts) + ")"
    if isinstance(e, sp.HadamardProduct):
        return "(" + " * ".join(parts) + ")"
    raise TypeError(f"cannot evaluate {type(e).__name__}: add a rule for it")


_KINDS = {"value": "traj", "adjoint": "bar", "loss": "loss", "hoisted": "aux"}


@cache
def sweep_argument(a: sp.Expr) -> tuple[str, str, int]:
    """(kind, name, step offset) of what an equation of the sweep reads: a parameter
    (``param``), a forward value (``traj``), an adjoint (``bar``), a direct loss derivative
    (``loss``) or a value hoisted by the C backend (``aux``), at step t + offset."""
    if a.is_Symbol:
        return "param", a.name, 0
    return _KINDS[a.role], a.quantity, int(a.offset)


def _step(k: int) -> int:
    # A negative index would silently read the end of a Python list.
    if k < 0:
        raise IndexError(f"an equation reads step {k}, before the sequence starts")
    return k


def adjoint_names(cell: Cell) -> list[str]:
    """The quantities whose adjoints a sweep keeps per step: variables, then inputs."""
    return [u.name for u in cell.variables] + [x.name for x in cell.inputs]
