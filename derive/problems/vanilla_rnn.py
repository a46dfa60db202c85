"""Backprop through time in a vanilla RNN as a sum of Jacobian products (LMU 5-1, 5-2 a).

Per step t = 1, ..., T, with h^(0) given and L = sum_t ℓ^(t)(h^(t)):

    h^(t) = σ(W h^(t-1) + U x^(t)),    h ∈ R^n, x ∈ R^d, W ∈ R^{n×n}, U ∈ R^{n×d}.

Derivatives are in numerator layout: ∂a/∂b has one row per entry of a and one column per
entry of b, so ∂ℓ/∂h is a 1×n row.  A derivative with respect to the matrix W is taken with
respect to its entries read row by row (W_ab in column (a-1)n + b), so ∂L/∂W is a 1×n²
row; reshaped row by row it is the n×n gradient.

Derivation, in steps, each from the engine's reverse-mode rules (``VectorCell.vjp``):

1. (5-1 a) the one-assignment cell y = σ(W x) gives x̄ = Wᵀ(ḡ ⊙ y ⊙ (1 - y)); reading
   the Jacobian off a VJP (``derive.engine.jacobian``) gives ∂y/∂x = diag(y ⊙ (1 - y)) W.
2. The RNN cell gives, by the same rules, the per-step Jacobian ∂h^(j)/∂h^(j-1) =
   diag(σ'^(j)) W and the immediate partial ∂⁺h^(k)/∂W = diag(σ'^(k)) ⊗ h^(k-1)ᵀ (h^(k-1)
   held fixed), with σ'^(j) = h^(j) ⊙ (1 - h^(j)).
3. (5-1 b) ∂L/∂W = Σ_t Σ_{k≤t} (∂ℓ^(t)/∂h^(t)) (∂h^(t)/∂h^(k)) (∂⁺h^(k)/∂W), with
   ∂h^(t)/∂h^(k) the ordered product of the per-step Jacobians for j = t, ..., k+1.
4. (5-2 a) the same sum written out for a given T: T(T+1)/2 terms.

SymPy matrix expressions only hold the results (its own matrix derivatives are unreliable,
see FINDINGS); the evaluator below turns them into numbers for the checks, which compare
with complex steps and central differences of a plain NumPy forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import sympy as sp
from sympy.core.symbol import Str
from sympy.matrices.expressions.matexpr import MatrixExpr

from derive.engine.cell import Cell, t
from derive.engine.cell import T as T_END
from derive.engine.functions import NUMERIC, sigma
from derive.engine.jacobian import Diag, jacobian_from_vjp, matmul, vjp_of
from derive.engine.numeric import MatrixEvaluator, VectorSweep
from derive.engine.numeric import forward as engine_forward
from derive.engine.vector import VectorAdjoints, VectorCell, n_h, n_x
from derive.errors import InputError
from derive.params import Int, Param
from derive.problems.base import Problem, Result, json_number
from derive.verify import Check, rel_error

#: Sizes of the write-up: h, y ∈ R^n and x ∈ R^d.
n = sp.Symbol("n", integer=True, positive=True)
d = sp.Symbol("d", integer=True, positive=True)
#: Step indices of the double sum and of the product of Jacobians (t is the engine's).
k = sp.Symbol("k", integer=True)
j = sp.Symbol("j", integer=True)
MAX_T = 8  # the written-out sum has T(T+1)/2 terms; beyond this it no longer fits a page

# Spellings of names that are not plain letters.
_SPELLING = {"sigma_prime": r"\sigma'", "ell": r"\ell"}


# -- symbols at a step, and the notation of the write-up ---------------------------------------
class AtStep(sp.MatrixSymbol):
    """A vector quantity at a (symbolic or fixed) step: ``h`` at ``k - 1`` is h^(k-1).

    A MatrixSymbol, so that the printer's transpose reads ``{h^{(k-1)}}^{\\top}``; the step
    is a fourth argument, so ``xreplace({k: 2})`` moves it to a fixed step.
    """

    def __new__(cls, name: str | Str, rows: Any, cols: Any, step: Any) -> AtStep:
        name = Str(name) if isinstance(name, str) else name
        return sp.Basic.__new__(cls, name, sp.sympify(rows), sp.sympify(cols), sp.sympify(step))

    @property
    def step(self) -> sp.Expr:
        return self.args[3]

    def _latex(self, printer) -> str:
        return _at(printer, self.name, self.step)


def _at(printer, name: str, step: sp.Expr) -> str:
    notation = getattr(printer, "notation", None)
    if notation is None:  # plain sympy.latex
        return "%s^{(%s)}" % (_SPELLING.get(name, name), sp.latex(step))
    # The set's notation places the step (h^{(t)} or h_{t}); the base may be respelled.
    return notation.at(name, step - t, notation.symbols.get(name) or _SPELLING.get(name))


class Partial(MatrixExpr):
    """The Jacobian ∂num/∂den in numerator layout, as an unevaluated symbol.

    ``immediate`` marks ∂⁺: the derivative through the direct dependence only, other
    arguments (the previous state) held fixed.  A matrix ``den`` counts entry by entry,
    row by row, so ∂h/∂W is n × n².
    """

    def __new__(cls, num: sp.MatrixExpr, den: sp.MatrixExpr, immediate: bool | Str = False):
        if not isinstance(immediate, Str):  # rebuilt by xreplace: the flag is already a Str
            immediate = Str("+" if immediate else "")
        return sp.Basic.__new__(cls, num, den, immediate)

    @property
    def num(self) -> sp.MatrixExpr:
        return self.args[0]

    @property
    def den(self) -> sp.MatrixExpr:
        return self.args[1]

    @property
    def immediate(self) -> bool:
        return self.args[2].name == "+"

    @property
    def shape(self) -> tuple[sp.Expr, sp.Expr]:
        return (self.num.rows * self.num.cols, self.den.rows * self.den.cols)

    def _latex(self, printer) -> str:
        plus = "^{+}" if self.immediate else ""
        num, den = printer._print(self.num), printer._print(self.den)
        return r"\frac{\partial%s %s}{\partial %s}" % (plus, num, den)


class OrderedProduct(MatrixExpr):
    """F(hi) F(hi - 1) ... F(lo): a product of matrices, latest step on the left.

    Empty (the identity) when lo > hi.  Printed with its order spelled out, because Π alone
    does not say in which order matrices multiply.
    """

    def __new__(cls, factor: sp.MatrixExpr, index: sp.Symbol, lo: Any, hi: Any):
        return sp.Basic.__new__(cls, factor, index, sp.sympify(lo), sp.sympify(hi))

    @property
    def factor(self) -> sp.MatrixExpr:
        return self.args[0]

    @property
    def index(self) -> sp.Symbol:
        return self.args[1]

    @property
    def shape(self) -> tuple[sp.Expr, sp.Expr]:
        return self.factor.shape

    def factors(self) -> list[sp.MatrixExpr]:
        """The factors for integer limits, in multiplication order."""
        lo, hi = self.args[2], self.args[3]
        if not (lo.is_Integer and hi.is_Integer):
            raise ValueError(f"limits {lo}, {hi} are not integers: substitute the steps first")
        return [self.factor.xreplace({self.index: sp.Integer(v)}) for v in range(hi, lo - 1, -1)]

    def _latex(self, printer) -> str:
        # Plain sympy.latex orders the limits as written by hand: k + 1, not 1 + k.
        lo, hi = (sp.latex(a) for a in self.args[2:])
        i = printer._print(self.index)
        return r"\left[\prod_{%s = %s, \dots, %s} %s\right]" % (
            i,
            hi,
            lo,
            printer._print(self.factor),
        )


class StepSum(sp.Sum):
    """A Sum whose limits print as nested sums, outermost first: Σ_t Σ_{k=1}^{t}."""

    def _latex(self, printer) -> str:
        out = printer._print(self.function)
        for v, lo, hi in self.limits:  # innermost first
            v, lo, hi = (sp.latex(a) for a in (v, lo, hi))
            out = r"\sum_{%s=%s}^{%s} %s" % (v, lo, hi, out)
        return out


# -- the cells, as data ------------------------------------------------------------------------
def layer_cell() -> Cell:
    """y = σ(W x): one assignment, x an input, W a weight (exercise 5-1 a)."""
    x, y, w = sp.symbols("x y W")
    return Cell("layer", (x,), (), {}, {w: "weight"}, ((y, sigma(w * x)),), ())


def rnn_cell() -> Cell:
    """h = σ(W h_prev + U x): the vanilla RNN (no bias, as in the handout)."""
    x, h, h_prev, w, u = sp.symbols("x h h_prev W U")
    return Cell(
        name="vanilla_rnn",
        inputs=(x,),
        states=(h,),
        prev={h: h_prev},
        params={w: "weight", u: "weight"},
        assignments=((h, sigma(w * h_prev + u * x)),),
        loss_on=(h,),
    )


# -- engine symbols to the write-up's ----------------------------------------------------------
def _relabel(expr, step: Any = None):
    """Engine symbols ``h@k`` (h at t+k) to h at ``step + k``; None drops the step (y, x).

    The engine's sizes n_h, n_x become the write-up's n, d.
    """
    sub: dict = {}
    for m in expr.atoms(sp.MatrixSymbol):
        name, sep, off = m.name.partition("@")
        if not sep:
            continue
        rows, cols = (sp.sympify(s).xreplace({n_h: n, n_x: d}) for s in m.shape)
        if step is None:
            sub[m] = sp.MatrixSymbol(name, rows, cols)
        else:
            sub[m] = AtStep(name, rows, cols, step + int(off))
    return expr.xreplace(sub).xreplace({n_h: n, n_x: d})


def _abbreviate(expr, definition: sp.HadamardProduct, name: AtStep):
    """``expr`` with the product ``definition`` written as ``name``, also where SymPy has
    flattened it into a longer elementwise product (ḡ ⊙ h ⊙ (1 - h))."""

    def swap(e):
        if isinstance(e, sp.HadamardProduct) and set(definition.args) <= set(e.args):
            rest = [a for a in e.args if a not in definition.args]
            return sp.HadamardProduct(*rest, name) if rest else name
        return e

    return expr.replace(lambda e: isinstance(e, sp.HadamardProduct), swap)


def forward_equation(cell: Cell, step: Any = None) -> tuple[Any, Any]:
    """The cell's one assignment in vector form, (lhs, rhs), in the write-up's symbols."""
    vc = VectorCell(cell)
    ((u, rhs),) = cell.assignments
    return _relabel(vc.sym(u, 0), step), _relabel(vc.to_vec(rhs, 0), step)


def h_at(step: Any) -> AtStep:
    return AtStep("h", n, 1, step)


def loss_row(step: Any) -> Partial:
    """∂ℓ^(t)/∂h^(t), a 1×n row: the loss term of one step read through its state."""
    return Partial(AtStep("ell", 1, 1, step), h_at(step))


# -- numbers from the derived expressions ------------------------------------------------------
@dataclass
class Values:
    """Numbers for the symbols of a derived expression (vectors as (m, 1) columns)."""

    params: dict[str, np.ndarray]
    series: dict[str, list[np.ndarray]]  # name -> values at steps 0, 1, ..., T
    loss_rows: list[np.ndarray]  # ∂ℓ^(t)/∂h^(t) at t = 0, 1, ..., T (entry 0 unused)
    definitions: dict[str, tuple[sp.Symbol, sp.MatrixExpr]]  # σ' at a step from h
    sizes: dict[sp.Symbol, int]


def evaluate(e: Any, values: Values, env: dict | None = None) -> Any:
    """The number (array) a derived expression stands for; ``env`` fixes bound indices."""
    return _Evaluator(values, env or {})(e)


def sigma_prime_max() -> Result:
    """The largest value of sigma'(z), derived: sigma' = s(1 - s) with s = sigma(z) in
    (0, 1), maximised at its critical point (the ends give 0)."""
    z, u = sp.Symbol("z"), sp.Symbol("s")
    derivative = sp.diff(sigma(z), z).subs(sigma(z), u)  # s (1 - s), from sigma's own rule
    candidates = [derivative.subs(u, c) for c in sp.solve(sp.diff(derivative, u), u)]
    candidates += [derivative.subs(u, 0), derivative.subs(u, 1)]
    top = max(candidates)
    return Result("sigma_prime_max", top, sp.Symbol(r"\max\sigma'"), value=json_number(top))


class _Evaluator(MatrixEvaluator):
    """The engine's evaluator plus this problem's classes: steps, sums and products."""

    def __init__(self, values: Values, env: dict) -> None:
        super().__init__(lambda m: values.params[m.name], {sigma: _logistic}, values.sizes)
        self.values, self.env = values, env

    def rule(self, e):
        values, env = self.values, self.env
        if isinstance(e, AtStep):
            step = int(e.step.xreplace(env))
            if e.name in values.definitions:
                index, body = values.definitions[e.name]
                return _Evaluator(values, {**env, index: sp.Integer(step)})(body)
            return values.series[e.name][step]
        if isinstance(e, Partial):
            if isinstance(e.num, AtStep) and e.num.name == "ell":
                return values.loss_rows[int(e.num.step.xreplace(env))]
            raise TypeError(f"{e} is a symbol of the chain rule, not a number: substitute it")
        if isinstance(e, StepSum):
            return _sum_over(e.function, list(reversed(e.limits)), values, env)
        if isinstance(e, OrderedProduct):
            lo, hi = (int(a.xreplace(env)) for a in e.args[2:])
            out = np.eye(int(sp.sympify(e.rows).xreplace(values.sizes)))
            for v in range(hi, lo - 1, -1):  # latest step on the left
                out = out @ _Evaluator(values, {**env, e.index: sp.Integer(v)})(e.factor)
            return out
        return NotImplemented


def _sum_over(body, limits, values: Values, env: dict):
    (var, lo, hi), rest = limits[0], limits[1:]
    total = 0.0
    for v in range(int(lo.xreplace(env)), int(hi.xreplace(env)) + 1):
        inner = {**env, var: sp.Integer(v)}
        total = total + (
            _sum_over(body, rest, values, inner) if rest else evaluate(body, values, inner)
        )
    return total


def expand_steps(expr: StepSum, steps: int) -> sp.MatAdd:
    """A sum over steps written out for T = ``steps``: one term per (t, k), t outermost.

    Ordered products with fixed limits become explicit products; the empty one (k = t) is
    the identity and disappears.
    """
    limits = list(reversed(expr.limits))  # outermost first
    terms = []

    def walk(level: int, env: dict) -> None:
        if level == len(limits):
            terms.append(_instantiate(expr.function, env))
            return
        var, lo, hi = limits[level]
        lo, hi = (int(a.xreplace(env)) for a in (lo, hi))
        for v in range(lo, hi + 1):
            walk(level + 1, {**env, var: sp.Integer(v)})

    walk(0, {T_END: sp.Integer(steps)})
    return sp.MatAdd(*terms)


def _instantiate(e, env: dict):
    e = e.xreplace(env)
    if isinstance(e, OrderedProduct):
        return [_instantiate(f, {}) for f in e.factors()]
    if isinstance(e, sp.MatMul):
        parts = []
        for a in e.args:
            got = _instantiate(a, {})
            parts.extend(got if isinstance(got, list) else [got])
        return matmul(*parts)
    return e


# -- the plain forward pass: the reference, which knows nothing of the formulas ----------------
@dataclass(frozen=True)
class SequenceData:
    """One random RNN problem: weights, inputs x^(1..T), h^(0), loss weights a^(1..T)."""

    W: np.ndarray
    U: np.ndarray
    xs: list[np.ndarray]
    h0: np.ndarray
    a: list[np.ndarray]


def random_sequence(
    size_n: int, size_d: int, steps: int, seed: int, scale: float = 1.0
) -> SequenceData:
    """Weights N(0, scale²/n) and N(0, 1/d), inputs N(0, 1), h^(0) N(0, 1/4), a N(0, 1)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(scale=scale / np.sqrt(size_n), size=(size_n, size_n))
    u = rng.normal(scale=1 / np.sqrt(size_d), size=(size_n, size_d))
    xs = [rng.normal(size=(size_d, 1)) for _ in range(steps)]
    h0 = rng.normal(scale=0.5, size=(size_n, 1))
    a = [rng.normal(size=(size_n, 1)) for _ in range(steps)]
    return SequenceData(w, u, xs, h0, a)


def case_data(case: tuple) -> SequenceData:
    """The sequence of a case ``(n, d, T, weight scale, seed)``."""
    size_n, size_d, steps, scale, seed = case
    return random_sequence(size_n, size_d, steps, seed, scale)


# The engine's numeric sigma: analytic (complex steps pass through) and overflow-free.
_logistic = NUMERIC[sigma]["numpy"]


def states(seq: SequenceData, w: np.ndarray | None = None) -> list[np.ndarray]:
    """h^(0), ..., h^(T) of the forward pass (``w`` replaces W, real or complex)."""
    w = seq.W if w is None else w
    hs = [seq.h0]
    for x in seq.xs:
        hs.append(_logistic(w @ hs[-1] + seq.U @ x))
    return hs


def loss(seq: SequenceData, w: np.ndarray | None = None):
    """L = Σ_t a^(t)ᵀ h^(t), so that ∂ℓ^(t)/∂h^(t) = a^(t)ᵀ."""
    hs = states(seq, w)
    return sum(np.sum(a * h) for a, h in zip(seq.a, hs[1:], strict=True))


#: Central-difference step: near ε^(1/3), where truncation and round-off balance.  Measured
#: worst errors over the cases below, h = 1e-4 / 1e-5 / 1e-6: 6e-8 / 3e-8 / 3e-7.
STEP = 1e-5
#: Complex step: no subtraction, so the step can be tiny and the result exact to round-off.
CS_STEP = 1e-30


def loss_gradient(seq: SequenceData, method: str) -> np.ndarray:
    """dL/dW entry by entry from the forward pass alone: complex step or central difference."""
    size = seq.W.shape[0]
    out = np.zeros((size, size))
    for idx in np.ndindex(out.shape):
        if method == "complex step":
            h = CS_STEP
            w = seq.W.astype(complex)
            w[idx] += 1j * h
            out[idx] = np.imag(loss(seq, w)) / h
        else:
            h = STEP  # truncation O(h²) against round-off O(ε/h)
            up, down = seq.W.copy(), seq.W.copy()
            up[idx] += h
            down[idx] -= h
            out[idx] = (loss(seq, up) - loss(seq, down)) / (2 * h)
    return out


def layer_jacobian(w: np.ndarray, x: np.ndarray, method: str) -> np.ndarray:
    """∂σ(Wx)/∂x column by column from σ(Wx) alone."""
    cols = []
    for i in range(x.shape[0]):
        e = np.zeros_like(x)
        e[i] = 1.0
        if method == "complex step":
            cols.append(np.imag(_logistic(w @ (x + 1j * CS_STEP * e))) / CS_STEP)
        else:
            up, down = _logistic(w @ (x + STEP * e)), _logistic(w @ (x - STEP * e))
            cols.append((up - down) / (2 * STEP))
    return np.hstack(cols)


#: Tolerances: a complex step is exact to round-off (worst measured 4e-14); central
#: differences carry truncation O(h²) and round-off O(ε/h) (worst 3e-8); two float64
#: evaluations of the same gradient differ by round-off only (worst 6e-14).
TOL = {"complex step": 1e-12, "central difference": 1e-6, "float64": 1e-12}

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


class VanillaRNN(Problem):
    """∂L/∂W of h^(t) = σ(W h^(t-1) + U x^(t)) as a double sum of Jacobian products."""

    key = "vanilla_rnn"
    title = "Backpropagation through time in a vanilla RNN (sums of Jacobian products)"
    #: Names the printer spells through the set's notation (``Problem.symbols``).
    SYMBOLS = ("L", "U", "W", "a", "d", "ell", "gbar", "h", "j", "n", "sigma_prime", "u", "x", "y")

    PARAMS = (Param("T", Int(1, MAX_T), 3, "sequence length of the written-out sum (5-2 a)"),)

    def __init__(self, T: int = 3) -> None:  # noqa: N803 - the handout's T
        if isinstance(T, bool) or not isinstance(T, int) or not 1 <= T <= MAX_T:
            raise InputError(f"T: expected a whole number of steps from 1 to {MAX_T}, got {T!r}")
        self.T = T

    # -- derivation ----------------------------------------------------------------------------
    @cached_property
    def layer(self) -> dict[str, Any]:
        """Step 1: the layer's VJP from the engine and the Jacobian read off it."""
        vjp, gbar = vjp_of(layer_cell(), "y", "x", gbar="gbar")
        return {
            "vjp": _relabel(vjp),
            "gbar": gbar,
            "jacobian": _relabel(jacobian_from_vjp(vjp, gbar)),
        }

    @cached_property
    def rnn_rules(self) -> dict[str, Any]:
        """Step 2: per-step Jacobian at j and immediate partial at k, with σ' named."""
        cell = rnn_cell()
        vjp_h, gbar = vjp_of(cell, "h", "h_prev", gbar="gbar")
        vjp_w, _ = vjp_of(cell, "h", "W", gbar="gbar")
        per_step = _relabel(jacobian_from_vjp(vjp_h, gbar), j)
        immediate = _relabel(jacobian_from_vjp(vjp_w, gbar), k)
        # The engine writes σ'(z) through the forward value, h ⊙ (1 - h): name it σ'.
        (diag,) = per_step.atoms(Diag)
        fprime = diag.args[0]
        sp_j, sp_k = AtStep("sigma_prime", n, 1, j), AtStep("sigma_prime", n, 1, k)
        at_k = fprime.xreplace({h_at(j): h_at(k)})
        return {
            "per_step": per_step.xreplace({fprime: sp_j}),
            "immediate": immediate.xreplace({at_k: sp_k}),
            "sigma_prime": (sp_j, fprime),
            "vjp_h": _relabel(vjp_h, j),
            "vjp_w": _abbreviate(_relabel(vjp_w, k), at_k, sp_k),
            "gbar": gbar.xreplace({n_h: n}),
        }

    @cached_property
    def chain(self) -> dict[str, Any]:
        """Step 3: the chain rule over steps, as symbols, and the rule for ∂h^(t)/∂h^(k)."""
        w = sp.MatrixSymbol("W", n, n)
        across = Partial(h_at(t), h_at(k))
        one_step = Partial(h_at(j), h_at(j - 1))
        term = sp.MatMul(loss_row(t), across, Partial(h_at(k), w, immediate=True))
        return {
            "W": w,
            "across": across,
            "one_step": one_step,
            "across_rule": OrderedProduct(one_step, j, k + 1, t),
            "sum": StepSum(term, (k, 1, t), (t, 1, T_END)),
        }

    def derive(self) -> dict[str, Result]:
        layer, rules, chain = self.layer, self.rnn_rules, self.chain
        x, y = sp.MatrixSymbol("x", d, 1), sp.MatrixSymbol("y", n, 1)
        out = {"jacobian_y_x": Result("jacobian_y_x", layer["jacobian"], Partial(y, x))}
        w = chain["W"]
        immediate_k = Partial(h_at(k), w, immediate=True)
        # Substitute the engine's results into the chain rule (nothing is typed in).
        explicit = chain["sum"].xreplace(
            {
                chain["across"]: OrderedProduct(rules["per_step"], j, k + 1, t),
                immediate_k: rules["immediate"],
            }
        )
        lhs = Partial(sp.MatrixSymbol("L", 1, 1), w)
        out["dL_dW"] = Result("dL_dW", explicit, lhs, chain["sum"])
        # Step 4: written out for the given T; the chain form keeps one factor per step.
        stepwise = chain["sum"].xreplace({chain["across"]: chain["across_rule"]})
        key = f"dL_dW_T{self.T}"
        out[key] = Result(key, expand_steps(explicit, self.T), lhs, expand_steps(stepwise, self.T))
        out["sigma_prime_max"] = sigma_prime_max()
        return out

    # -- verification --------------------------------------------------------------------------
    def values(self, seq: SequenceData) -> Values:
        """Numbers for the derived expressions on one sequence (states from the forward pass)."""
        index, body = self.rnn_rules["sigma_prime"]
        return Values(
            params={"W": seq.W, "U": seq.U},
            series={"h": states(seq)},
            loss_rows=[np.zeros((1, seq.W.shape[0]))] + [a.T for a in seq.a],
            definitions={index.name: (index.step, body)},
            sizes={n: seq.W.shape[0], d: seq.U.shape[1]},
        )

    def gradient(self, expr: Any, seq: SequenceData) -> np.ndarray:
        """A derived ∂L/∂W (1×n² row) evaluated on ``seq`` and reshaped to n×n, row by row."""
        env = {T_END: sp.Integer(len(seq.xs))}
        row = np.asarray(evaluate(expr, self.values(seq), env))
        size = seq.W.shape[0]
        return row.reshape(size, size)

    def gradient_checks(self, claim: str, expr: Any, cases=GRADIENT_CASES) -> list[Check]:
        """``expr`` (a derived ∂L/∂W) against complex steps and central differences."""
        worst = dict.fromkeys(("complex step", "central difference"), 0.0)
        for case in cases:
            seq = case_data(case)
            try:
                got = self.gradient(expr, seq)
            except (IndexError, ValueError, TypeError):  # a wrong formula may not even fit
                got = np.full(seq.W.shape, np.inf)
            for method in worst:
                worst[method] = max(worst[method], rel_error(got, loss_gradient(seq, method)))
        sizes = _describe(cases)
        return [
            Check(claim, f"{m} on the forward pass", sizes, e, TOL[m]) for m, e in worst.items()
        ]

    def verify(self) -> list[Check]:
        r = self.results
        rows = self._layer_checks(r["jacobian_y_x"].expr)
        rows += self._bound_checks(float(r["sigma_prime_max"].value))
        rows += self.gradient_checks("dL_dW", r["dL_dW"].expr)
        rows.append(self._sweep_check(r["dL_dW"].expr))
        key = f"dL_dW_T{self.T}"
        cases = [(nn, dd, self.T, 1.0, s) for nn, dd, s in ((1, 2, 21), (3, 2, 22), (6, 4, 23))]
        cases.append((4, 3, self.T, 3.0, 24))
        rows += self.gradient_checks(key, r[key].expr, cases)
        worst = 0.0
        for case in cases:
            seq = case_data(case)
            expanded, double = (self.gradient(r[c].expr, seq) for c in (key, "dL_dW"))
            worst = max(worst, rel_error(expanded, double))
        method = "the double sum dL_dW evaluated at this T"
        rows.append(Check(key, method, _describe(cases), worst, TOL["float64"]))
        return rows

    def _layer_checks(self, jac: Any) -> list[Check]:
        worst = dict.fromkeys(("complex step", "central difference"), 0.0)
        for size_n, size_d, seed in LAYER_CASES:
            rng = np.random.default_rng(seed)
            w = rng.normal(scale=2 / np.sqrt(size_d), size=(size_n, size_d))
            x = rng.normal(size=(size_d, 1))
            values = Values(
                {"W": w, "x": x, "y": _logistic(w @ x)}, {}, [], {}, {n: size_n, d: size_d}
            )
            got = evaluate(jac, values)
            for method in worst:
                ref = layer_jacobian(w, x, method)
                worst[method] = max(worst[method], rel_error(got, ref))
        sizes = "(n, d) in " + ", ".join(f"({a},{b})" for a, b, _ in LAYER_CASES)
        sizes += "; seeds " + ",".join(str(s) for *_, s in LAYER_CASES)
        return [
            Check("jacobian_y_x", f"{m} on sigma(Wx)", sizes, e, TOL[m]) for m, e in worst.items()
        ]

    def _bound_checks(self, bound: float) -> list[Check]:
        """sigma' <= bound on a dense grid, and ||diag(sigma'_j) W||_2 <= bound ||W||_2."""
        z = np.linspace(-40, 40, 800_001)  # contains 0, where the maximum sits
        s = _logistic(z)
        grid = float(abs(np.max(s * (1 - s)) - bound) / bound)
        excess = 0.0
        for case in GRADIENT_CASES:
            seq = case_data(case)
            hs = states(seq)
            limit = bound * np.linalg.norm(seq.W, 2)
            for h in hs[1:]:
                factor = np.diag((h * (1 - h)).ravel()) @ seq.W
                excess = max(excess, np.linalg.norm(factor, 2) / limit - 1.0)
        return [
            Check(
                "sigma_prime_max",
                "max of sigma(z)(1 - sigma(z)) on a grid, |z| <= 40",
                "800001 points",
                grid,
                1e-12,
            ),
            Check(
                "sigma_prime_max",
                "||diag(sigma'_j) W||_2 / (bound ||W||_2) - 1 at every step",
                _describe(GRADIENT_CASES),
                max(excess, 0.0),
                1e-12,
            ),
        ]

    def _sweep_check(self, expr: Any) -> Check:
        """The double sum against the engine's own BPTT recursion (adjoint sweep)."""
        adj = VectorAdjoints(rnn_cell())
        worst = 0.0
        for case in GRADIENT_CASES:
            seq = case_data(case)
            params = {"W": seq.W, "U": seq.U}
            traj = engine_forward(adj.cell, params, {"x": seq.xs}, {"h": seq.h0})
            swept = VectorSweep(adj).run(traj, params, {"h": seq.a}).params["W"]
            worst = max(worst, rel_error(self.gradient(expr, seq), swept))
        method = "BPTT sweep (the adjoint recursion, step by step)"
        return Check("dL_dW", method, _describe(GRADIENT_CASES), worst, TOL["float64"])

    def question_data(self) -> dict[str, Any]:
        """The given RNN and layer (equations and sizes), T, and the derivatives asked for."""
        x, y = sp.MatrixSymbol("x", d, 1), sp.MatrixSymbol("y", n, 1)
        w, u = sp.MatrixSymbol("W", n, n), sp.MatrixSymbol("U", n, d)
        return {
            "T": self.T,
            "rnn_forward": forward_equation(rnn_cell(), t),
            "layer_forward": forward_equation(layer_cell()),
            "rnn_sizes": [(m, *m.shape) for m in (h_at(t), AtStep("x", d, 1, t), w, u)],
            "layer_sizes": [(m, *m.shape) for m in (y, x, sp.MatrixSymbol("W", n, d))],
            "jacobian": Partial(y, x),
            "gradient": Partial(sp.MatrixSymbol("L", 1, 1), w),
            "q": {"h_0": h_at(0), "h_t": h_at(t), "ell_t": AtStep("ell", 1, 1, t)},
        }

    # -- what the template formats -------------------------------------------------------------
    def context(self) -> dict[str, Any]:
        layer, rules, chain = self.layer, self.rnn_rules, self.chain
        x, y, w = sp.MatrixSymbol("x", d, 1), sp.MatrixSymbol("y", n, 1), chain["W"]
        jac = self.results["jacobian_y_x"]
        sp_j, fprime = rules["sigma_prime"]
        immediate = Partial(h_at(k), w, immediate=True)
        u = sp.MatrixSymbol("u", n, 1)
        return {
            **super().context(),
            "T": self.T,
            "T_key": f"dL_dW_T{self.T}",
            "n_terms": self.T * (self.T + 1) // 2,
            "cs_step": CS_STEP,
            "cd_step": STEP,
            "layer_forward": forward_equation(layer_cell()),
            "rnn_forward": forward_equation(rnn_cell(), t),
            "layer_vjp": layer["vjp"],
            "layer_gbar": layer["gbar"],
            "layer_shapes": [
                (m, *m.shape) for m in (y, x, sp.MatrixSymbol("W", n, d), jac.expr.args[0])
            ]
            + [(jac.lhs, *jac.expr.shape)],
            "sigma_prime": sp_j,
            "sigma_prime_max": self.results["sigma_prime_max"].expr,
            "sigma_prime_def": fprime,
            "vjp_h": rules["vjp_h"],
            "vjp_w": rules["vjp_w"],
            "gbar": rules["gbar"],
            "one_step": chain["one_step"],
            "per_step": rules["per_step"],
            "immediate_lhs": immediate,
            "immediate": rules["immediate"],
            "across": chain["across"],
            "across_rule": chain["across_rule"],
            "across_explicit": OrderedProduct(rules["per_step"], j, k + 1, t),
            # uᵀ ∂⁺h^(k)/∂W reshaped to n×n is the engine's VJP with ḡ = u: the BPTT update.
            "u_T": u.T,
            "contraction": rules["vjp_w"].xreplace({rules["gbar"]: u}),
            "chain_shapes": [(m, *m.shape) for m in (loss_row(t), chain["across"], immediate)],
            # Quantities the prose names, so that they follow the set's notation too.
            "q": {
                "h_t": h_at(t),
                "h_k": h_at(k),
                "h_km1": h_at(k - 1),
                "h_j": h_at(j),
                "h_jm1": h_at(j - 1),
                "h_0": h_at(0),
                "x_j": AtStep("x", d, 1, j),
                "ell_t": AtStep("ell", 1, 1, t),
                "a_t_T": AtStep("a", n, 1, t).T,
                "sp_k": AtStep("sigma_prime", n, 1, k),
                "loss_row": loss_row(t),
            },
        }


def _describe(cases) -> str:
    parts = [f"({a},{b},{c})" for a, b, c, *_ in cases]
    scales = sorted({c[3] for c in cases})
    seeds = ",".join(str(c[4]) for c in cases)
    return (
        f"(n, d, T) in {', '.join(parts)}; weight scale "
        f"{','.join(f'{s:g}' for s in scales)}; seeds {seeds}"
    )
