"""The write-up's notation for backprop through time: quantities at a step, Jacobians as
symbols, ordered products and nested sums over steps.

Each is a SymPy matrix expression that prints itself (``_latex``) through the set's
notation; ``relabel`` turns the engine's symbols into them and ``expand_steps`` writes a
sum over steps out for a fixed T.
"""

from __future__ import annotations

from typing import Any

import sympy as sp
from sympy.core.symbol import Str
from sympy.matrices.expressions.matexpr import MatrixExpr

from derive.engine.cell import T as T_END
from derive.engine.cell import VectorQuantity, t
from derive.engine.jacobian import matmul
from derive.engine.vector import n_h, n_x

#: Sizes of the write-up: h, y ∈ R^n and x ∈ R^d.
n = sp.Symbol("n", integer=True, positive=True)
d = sp.Symbol("d", integer=True, positive=True)
#: Step indices of the double sum and of the product of Jacobians (t is the engine's).
k = sp.Symbol("k", integer=True)
j = sp.Symbol("j", integer=True)

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


# -- engine symbols to the write-up's ----------------------------------------------------------
def relabel(expr, step: Any = None):
    """Engine quantities h at t+k to h at ``step + k``; None drops the step (y, x).
    Parameters become plain matrix symbols (W).

    The engine's sizes n_h, n_x become the write-up's n, d.
    """
    sub: dict = {}
    for m in expr.atoms(VectorQuantity):
        if m.role != "value":
            continue
        rows, cols = (sp.sympify(s).xreplace({n_h: n, n_x: d}) for s in m.shape)
        if step is None or m.offset is None:  # a parameter has no step
            sub[m] = sp.MatrixSymbol(m.name, rows, cols)
        else:
            sub[m] = AtStep(m.name, rows, cols, step + m.offset)
    return expr.xreplace(sub).xreplace({n_h: n, n_x: d})


def abbreviate(expr, definition: sp.HadamardProduct, name: AtStep):
    """``expr`` with the product ``definition`` written as ``name``, also where SymPy has
    flattened it into a longer elementwise product (ḡ ⊙ h ⊙ (1 - h))."""

    def swap(e):
        if isinstance(e, sp.HadamardProduct) and set(definition.args) <= set(e.args):
            rest = [a for a in e.args if a not in definition.args]
            return sp.HadamardProduct(*rest, name) if rest else name
        return e

    return expr.replace(lambda e: isinstance(e, sp.HadamardProduct), swap)


def h_at(step: Any) -> AtStep:
    return AtStep("h", n, 1, step)


def loss_row(step: Any) -> Partial:
    """∂ℓ^(t)/∂h^(t), a 1×n row: the loss term of one step read through its state."""
    return Partial(AtStep("ell", 1, 1, step), h_at(step))



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
