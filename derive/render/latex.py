"""LaTeX for derived results, in the notation of the set that shows them.

One printer, ``KeyPrinter``, a subclass of SymPy's ``LatexPrinter``.  It reads the engine's
typed quantities (``Quantity``: i at step t+1, its adjoint, the loss's direct partial by h;
``VectorQuantity``: the same as vectors; ``ParamAdjoint``) by their name, role and step, and
spells every symbol
through the set's ``Notation``: CSC421 writes ``w_{ix}`` and ``i^{(t)}``, CSE 891 writes
``w_{xi}``, the LMU exercise writes ``C_t``.  Symbol spellings pass ``texgate.spelling``
before they reach the printer, since it prints them verbatim; where the printer attaches a
step or a power to a spelling that already carries such a script, it braces the spelling
(a prime needs no braces: the gate admits primes only where LaTeX merges a following ^).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

import sympy as sp
from sympy.core.function import AppliedUndef
from sympy.printing.latex import LatexPrinter

from derive.engine.cell import Quantity, Role, VectorQuantity, t
from derive.errors import InputError
from derive.params import show
from derive.render.texgate import ACCENTS, spelling

# A spelling that opens with an accent: braced alone it could stay one accent atom.
_ACCENTED = re.compile(r"^[\s{]*\\(%s)(?![A-Za-z])" % "|".join(ACCENTS))
# A plain name, printed as SymPy prints a symbol (with the set's spelling, if any).
_PLAIN = re.compile(r"^\w+$")


@dataclass(frozen=True)
class Notation:
    """How a set spells its symbols.

    Parameters
    ----------
    symbols
        Engine name -> LaTeX spelling (``w_ix`` -> ``w_{xi}``).  Names not listed print as
        SymPy would.
    time
        ``superscript`` writes ``h^{(t)}``, ``subscript`` writes ``h_{t}``.
    """

    symbols: dict[str, str] = field(default_factory=dict)
    time: Literal["superscript", "subscript"] = "superscript"

    def __post_init__(self) -> None:
        for name, spelled in self.symbols.items():
            spelling(spelled, f"notation.symbols.{name}")
        if self.time not in ("superscript", "subscript"):
            raise InputError(
                f"notation.time: {show(self.time)} is not allowed; use 'superscript' or "
                "'subscript'"
            )

    def base(self, name: str) -> str:
        """The spelling of symbol ``name``: the set's, else SymPy's, which must pass texgate
        as a set's does (a cell's names are any text: ``c@1`` needs a spelling)."""
        spelled = self.symbols.get(name)
        if spelled is None:
            spelled = spelling(sp.latex(sp.Symbol(name)), f"symbol {name!r} (no spelling given)")
        return spelled

    def step(self, offset: sp.Expr | int | None) -> str:
        """The mark of step ``t + offset``: ``^{(t + 1)}`` or ``_{t + 1}`` (none for ``None``)."""
        if offset is None:
            return ""
        step = sp.latex(t + offset)
        return f"_{{{step}}}" if self.time == "subscript" else f"^{{({step})}}"

    def at(self, name: str, offset: sp.Expr | int | None, base: str | None = None) -> str:
        """``name`` (or LaTeX ``base`` for it) at step ``t + offset`` (no step for ``None``)."""
        base, step = self.base(name) if base is None else base, self.step(offset)
        return scripted(base, step) if step else base


class KeyPrinter(LatexPrinter):
    """``sympy.latex`` with the engine's naming conventions and a set's notation."""

    def __init__(self, notation: Notation | None = None, **settings) -> None:
        self.notation = notation or Notation()
        settings.setdefault("order", "none")  # print sums in the order they were built
        super().__init__(settings)

    def _decorate(self, role: Role, core: str, step: str = "") -> str:
        if role == "adjoint":
            return r"\overline{%s}" % core
        if role == "loss":
            # The loss's direct dependence on one step: L = sum_t ell^(t), so the direct
            # term of bar h(t) is d ell^(t) / d h(t) (bar h itself is the total derivative).
            return r"\frac{\partial \ell%s}{\partial %s}" % (step, core)
        return core

    def _print_Quantity(self, expr, exp=None):
        offset = expr.offset
        core = self.notation.at(expr.quantity, offset)
        out = self._decorate(expr.role, core, self.notation.step(offset))
        return out if exp is None else r"\left(%s\right)^{%s}" % (out, exp)

    def _print_Function(self, expr, exp=None):
        # SymPy's Printer dispatches an applied undefined function from AppliedUndef on, past
        # the classes between: a Quantity is sent on from here.
        if isinstance(expr, Quantity):
            return self._print_Quantity(expr, exp)
        # A function of t that is no quantity of a cell (lstm_cell's c(j)): u at a step.
        if isinstance(expr, AppliedUndef) and _PLAIN.match(expr.func.__name__):
            offset = expr.args[0] - t
            out = self.notation.at(expr.func.__name__, offset)
            return out if exp is None else r"\left(%s\right)^{%s}" % (out, exp)
        return super()._print_Function(expr, exp)

    def _print_ParamAdjoint(self, expr):
        return self._decorate("adjoint", self.notation.base(expr.name))

    def _print_Symbol(self, expr, style="plain"):
        # By name: a problem's symbols carry assumptions (D positive), a set's spelling none.
        spelled = self.notation.symbols.get(expr.name)
        return spelled if spelled is not None else super()._print_Symbol(expr, style)

    def _print_VectorQuantity(self, expr):
        offset = expr.offset  # a fixed step s prints as t + (s - t)
        if offset is None and expr.shape[1] != 1:  # a weight matrix: W_{ix} for w_{ix}
            return self._decorate(expr.role, _matrix_case(self.notation.base(expr.name)))
        core = self.notation.at(expr.name, offset)
        return self._decorate(expr.role, core, self.notation.step(offset))

    def _print_MatrixSymbol(self, expr):
        # A matrix symbol of a problem's own (J, delta, gbar): spelled as a parameter is.
        if not _PLAIN.match(expr.name):
            return super()._print_MatrixSymbol(expr)
        base = self.notation.base(expr.name)
        return _matrix_case(base) if expr.shape[1] != 1 else base

    def _print_Derivative(self, expr):
        ((var, count),) = expr.variable_count
        num = self._print(expr.expr)
        den = self._print(var)
        if count == 1:
            return r"\frac{\partial %s}{\partial %s}" % (num, den)
        power = f"^{{{count}}}"
        return r"\frac{\partial%s %s}{\partial %s}" % (power, num, scripted(den, power))

    def _print_Transpose(self, expr):
        arg = self._print(expr.arg)
        if not isinstance(expr.arg, sp.MatrixSymbol):
            return r"\left(%s\right)^{\top}" % arg
        return scripted(arg, r"^{\top}")

    def _print_Mul(self, expr):
        # An answer key writes bar u, then the forward quantities, then the weights:
        # bar i i (1 - i) w_ih, not w_ih (1 - i) bar i i.
        coeff, factors = expr.as_coeff_mul()
        if coeff != 1 or any(f.is_Pow and f.exp.is_negative for f in factors):
            return super()._print_Mul(expr)
        inside = set().union(*[f.atoms(AppliedUndef) for f in factors if f.is_Add or f.is_Pow])
        # In a plain product such as a pre-activation term, the weight leads: w_ix x.
        plain = not inside and not any(_rank_adjoint(f) for f in factors)
        ordered = sorted(
            factors, key=lambda f: -1 if plain and f.is_Symbol else _factor_rank(f, inside)
        )
        return " ".join(
            r"\left(%s\right)" % self._print(f) if f.is_Add else self._print(f) for f in ordered
        )

    def _print_Rational(self, expr):
        # A rational with a terminating decimal expansion prints as that decimal, as a
        # handout writes it (0.58, not 29/50); others stay fractions.
        q = int(expr.q)
        for f in (2, 5):
            while q % f == 0:
                q //= f
        if q != 1:
            return super()._print_Rational(expr)
        digits = 0
        while (expr * 10**digits).q != 1:
            digits += 1
        # Integer arithmetic: exact for any number of digits (Decimal would round at 28).
        scaled = abs(int(expr.p)) * 10**digits // int(expr.q)
        whole, frac = divmod(scaled, 10**digits)
        sign = "-" if expr.p < 0 else ""
        return f"{sign}{whole}.{frac:0{digits}d}" if digits else f"{sign}{whole}"

    def _print_OneMatrix(self, expr):
        return r"\mathbf{1}"

    def _print_HadamardProduct(self, expr):
        # Adjoints first, as an answer key writes bar u * du/dv.
        args = sorted(expr.args, key=_hadamard_rank)
        return r" \odot ".join(self.parenthesize(a, 50) for a in args)

    def _print_HadamardPower(self, expr):
        return r"%s^{\odot %s}" % (self.parenthesize(expr.base, 1000), self._print(expr.exp))

    def _print_ElementwiseApplyFunction(self, expr):
        fn = expr.function.expr.func
        return self._print(fn(sp.Symbol("__arg__"))).replace(
            self._print(sp.Symbol("__arg__")), self._print(expr.expr)
        )

    def _print_MatAdd(self, expr):
        # 1 - u reads better than -u + 1.
        args = sorted(expr.args, key=lambda a: not isinstance(a, sp.OneMatrix))
        out = self._print(args[0])
        for a in args[1:]:
            s = self._print(a)
            out += " " + s if s.startswith("-") else " + " + s
        return out.replace("+ -", "- ")


def scripted(base: str, script: str) -> str:
    """``base`` with the sub- or superscript ``script`` (``_{t}``, ``^{\\top}``) attached:
    ``base`` is braced first if it already carries one of that kind anywhere (a prime is a
    superscript), so that no spelling makes a double script: ``{h'_{t}}^{\\top}``."""
    kinds = "_" if script.startswith("_") else "^'"
    return (brace(base) if any(k in base for k in kinds) else base) + script


def brace(latex: str) -> str:
    """``latex`` as one atom that takes a script of its own: ``{C_1}`` for ``C_1``.

    A group that holds a single accent atom is no atom of its own in TeX: the accent, with
    its scripts, takes the group's place (tex.web par. 1186), so ``{\\tilde{C}_1}_{t}`` is a
    double subscript.  An empty atom first keeps the group: ``{{}\\tilde{C}_1}_{t}``.
    """
    return "{{}%s}" % latex if _ACCENTED.match(latex) else "{%s}" % latex


def _matrix_case(base: str) -> str:
    # A matrix is written upper case: W_{ix} for w_{ix}.
    return base[:1].upper() + base[1:]


def _hadamard_rank(a) -> int:
    """Order in an elementwise product: adjoint, quantities, derivative factors."""
    if isinstance(a, sp.MatrixSymbol):
        return 0 if isinstance(a, VectorQuantity) and a.role == "adjoint" else 1
    return 2


def _rank_adjoint(f) -> bool:
    return isinstance(f, Quantity) and f.role in ("adjoint", "loss")


def _factor_rank(f, inside: set) -> int:
    """Order of a factor in a product: adjoint, gate, its derivative factor, the rest."""
    if _rank_adjoint(f):
        return 0
    if isinstance(f, AppliedUndef):
        return 1 if f in inside else 3
    if f.is_Symbol:
        return 4
    return 2 if f.is_Add or f.is_Pow else 3


def tex(expr, notation: Notation | None = None) -> str:
    """LaTeX of ``expr`` in ``notation``."""
    return KeyPrinter(notation).doprint(expr)
