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

Order and brackets are printing concerns: the expressions keep SymPy's structure.  Given a
model's ``Ordering`` (the order its equations are written in), sums print their terms and
products their factors in the author's order: w_ix x + w_ih h + b_i, f c + i g; an adjoint
reads "adjoint, then the local derivative", factors in forward order: h̄ o (1 - tanh² c).
Brackets are plain ``( )`` unless what they hold is tall (a fraction, a sum, a matrix).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import sympy as sp
from sympy.core.function import AppliedUndef
from sympy.printing.latex import LatexPrinter

from derive.engine.cell import ParamAdjoint, Quantity, Role, VectorQuantity, t
from derive.errors import InputError
from derive.params import show
from derive.render.texgate import ACCENTS, spelling

# A spelling that opens with an accent: braced alone it could stay one accent atom.
_ACCENTED = re.compile(r"^[\s{]*\\(%s)(?![A-Za-z])" % "|".join(ACCENTS))
# A plain name, printed as SymPy prints a symbol (with the set's spelling, if any).
_PLAIN = re.compile(r"^\w+$")
# What makes the content of a bracket tall enough for \left( \right).
_TALL = re.compile(r"\\(frac|dfrac|sum|prod|int|begin|sqrt|binom|overset|underset)(?![A-Za-z])")
# A standard function's argument as SymPy brackets it: \tanh{\left(c \right)}.
_FUNCTION_ARG = re.compile(r"^(\\[A-Za-z]+(?:\^\{[^{}]*\})?)\{\\left\((.*) \\right\)\}$", re.S)
_DELIMITER = re.compile(r"\\(left|right)(\\[{}|]|\\[A-Za-z]+|[()\[\].|])")


@dataclass(frozen=True)
class Ordering:
    """The order a model writes its symbols in (``CellSpec.written_order``).

    Parameters
    ----------
    written
        Every name as the equations first read it: ``w_ix, x, w_ih, h, b_i, ..., f, c``.
        Terms of a sum print in this order (w_ix x + w_ih h + b_i; f c + i g).
    assigned
        The assigned variables in evaluation order (``i, f, o, g, c, h``): the quantities
        of a product, and the adjoints that lead the terms of a sum, print in this order.
    """

    written: tuple[str, ...] = ()
    assigned: tuple[str, ...] = ()

    def read_rank(self, name: str) -> int:
        """Where ``name`` is first written (after every written name if never)."""
        return self.written.index(name) if name in self.written else len(self.written)

    def assign_rank(self, name: str) -> int:
        """Where ``name`` is assigned (after every variable if it is none: an input)."""
        return self.assigned.index(name) if name in self.assigned else len(self.assigned)


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

    def __init__(
        self, notation: Notation | None = None, ordering: Ordering | None = None, **settings
    ) -> None:
        self.notation = notation or Notation()
        self.ordering = ordering
        settings.setdefault("order", "none")  # print sums in the order they were built
        super().__init__(settings)

    @contextmanager
    def ordered(self, ordering: Ordering | None) -> Iterator[KeyPrinter]:
        """Print in ``ordering`` (a model's written order) inside the block."""
        before, self.ordering = self.ordering, ordering
        try:
            yield self
        finally:
            self.ordering = before

    def doprint(self, expr) -> str:
        return slim_brackets(super().doprint(expr))

    def terms(self, expr) -> list:
        """The terms of sum ``expr`` in printing order (``[expr]`` for no sum)."""
        if not isinstance(expr, sp.Add | sp.MatAdd):
            return [expr]
        return self._as_ordered_terms(expr)

    def _as_ordered_terms(self, expr, order=None):
        args = list(expr.args)
        if self.ordering is None:
            return args if order is None else super()._as_ordered_terms(expr, order)
        return _positive_first(sorted(args, key=self._term_key))

    def _term_key(self, term) -> tuple:
        """A sum's terms: numbers, then terms led by an adjoint (by its step, the loss's
        direct term before adjoints, then by variable), then the rest as written."""
        if term.is_number or isinstance(term, sp.OneMatrix | sp.Identity):
            return (0,)
        leads = [_lead_key(a, self.ordering) for a in sp.preorder_traversal(term)
                 if _is_lead(a)]
        if leads:
            return (1, min(leads))
        # By the quantities first (x before h, f c before i g), then the parameters
        # (w_ix before w_ih); a term of parameters alone (a bias) comes last.
        quantities, params = _names(term)
        rank = self.ordering.read_rank
        first = sorted(map(rank, quantities)) or [len(self.ordering.written) + 1]
        return (2, tuple(first), tuple(sorted(map(rank, params))))

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

    def _print_applied(self, expr, exp=None):
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
        if spelled is not None:
            return spelled
        stepped = _STEPPED.match(expr.name)
        if stepped and stepped[1] in self.notation.symbols:  # a map's state, x^(k)
            return "%s^{(%s)}" % (self.notation.symbols[stepped[1]], stepped[2])
        out = super()._print_Symbol(expr, style)
        # A name of several letters that is no Greek letter (a set's own "lr") is a word:
        # upright, so that it cannot be read as a product l r; so is a map's state "cache".
        if stepped and _WORD.match(stepped[1]) and out.startswith(stepped[1] + "^"):
            return r"\mathrm{%s}%s" % (stepped[1], out[len(stepped[1]):])
        return r"\mathrm{%s}" % out if _WORD.match(out) else out

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
        from derive.feedforward.graph import OnesRow  # it imports the printer's module

        if isinstance(expr.arg, OnesRow):  # (1^T)^T is the column of ones
            return r"\mathbf{1}"
        arg = self._print(expr.arg)
        if not isinstance(expr.arg, sp.MatrixSymbol):
            return r"\left(%s\right)^{\top}" % arg
        return scripted(arg, r"^{\top}")

    def _print_Mul(self, expr):
        # An answer key writes bar u, then the forward quantities, then the weights:
        # bar i i (1 - i) w_ih, not w_ih (1 - i) bar i i.
        coeff, factors = expr.as_coeff_mul()
        if not coeff.is_Integer or any(f.is_Pow and f.exp.is_negative for f in factors):
            return super()._print_Mul(expr)
        quantities = expr.atoms(Quantity, ParamAdjoint) or expr.has(sp.Derivative)
        if not quantities:  # no cell's: a problem's own symbols lead, as before: H (2D - 1)
            ordered = sorted(factors, key=lambda f: not f.is_Symbol)
        else:
            ordered = sorted(factors, key=self._factor_key(factors))
        sign = "- " if coeff == -1 else "" if coeff == 1 else self._print(coeff) + " "
        parts = [r"\left(%s\right)" % self._print(f) if f.is_Add else self._print(f)
                 for f in ordered]
        # An upright word touches its neighbours in TeX's math (rho cache reads "ρcache"):
        # a thin space keeps a word apart from the factors beside it.
        return sign + "".join(
            ((r"\, " if _WORD_START.match(p) or _WORD_END.search(parts[k - 1]) else " ")
             if k else "") + p for k, p in enumerate(parts))

    def _factor_key(self, factors):
        """Order of the factors of a product of a cell's quantities: adjoint (or a derivative
        of one) first; then the quantities by step, latest first, each beside its own
        derivative factor (o (1 - tanh² c), i (1 - i)), in evaluation order; the weights
        last, unless the product is a plain one such as a pre-activation term (w_ix x)."""
        ordering = self.ordering or Ordering()
        plain = not any(f.is_Add or f.is_Pow or _is_lead(f) for f in factors)
        inside = _inside(factors)

        def key(f) -> tuple:
            if _is_lead(f):
                return (0,)
            if f.is_Symbol:  # a weight
                return (-1 if plain else 2, ordering.read_rank(f.name))
            return (1, *_group_key(f, ordering, inside))

        return key

    def _print_Pow(self, expr):
        # A positive decimal needs no brackets under its power: 0.4^{30}, not (0.4)^{30}.
        base = expr.base.args[0] if isinstance(expr.base, sp.UnevaluatedExpr) else expr.base
        if base.is_Rational and base.is_positive and not base.is_Integer:
            out = self._print_Rational(base)
            if "frac" not in out and expr.exp.is_Integer and expr.exp > 0:
                return "%s^{%s}" % (out, self._print(expr.exp))
        return super()._print_Pow(expr)

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

    def _print_MatMul(self, expr):
        # SymPy prints -1 1ᵀ (A ∘ B) as "- 1ᵀ A ∘ B", dropping the brackets it keeps
        # without the sign: the sign goes first, the rest is printed as a product.
        if expr.args[0] == -1 and len(expr.args) > 2:
            out = "- " + self._print_MatMul(sp.MatMul(*expr.args[1:]))
        elif (len(expr.args) == 2 and not expr.args[0].is_Matrix and expr.args[0].is_positive
              and isinstance(expr.args[1], sp.HadamardProduct)):
            # A number times A ⊙ B scales the product: \frac{1}{N} A ⊘ B needs no brackets.
            out = self._print(expr.args[0]) + " " + self._print(expr.args[1])
        else:
            out = super()._print_MatMul(expr)
        # A word (a set's constant "reg") is set upright and, in TeX's math, touches the
        # next factor ("regW"): a thin space keeps them apart.
        return _WORD_FACTOR.sub(r"\1\\, ", out)

    def _print_Determinant(self, expr):
        # det(M), not |M|: bars read as an absolute value beside the scalars around them.
        return r"\det\left(%s\right)" % self._print(expr.arg)

    def _print_OneMatrix(self, expr):
        return r"\mathbf{1}"

    def _print_HadamardProduct(self, expr):
        # Adjoints first, as an answer key writes bar u * du/dv; then as a scalar product.
        ordering, inside = self.ordering or Ordering(), _inside(expr.args)
        # A factor to the power −1 divides: A ⊘ B, written after the factors that multiply.
        over = [a for a in expr.args if isinstance(a, sp.HadamardPower) and a.exp == -1]
        args = sorted(
            (a for a in expr.args if a not in over),
            key=lambda a: (_hadamard_rank(a), *_group_key(a, ordering, inside)),
        )
        out = r" \odot ".join(self.parenthesize(a, 50) for a in args) if args else "1"
        for a in over:
            out += r" \oslash " + self.parenthesize(a.base, 50)
        return out

    def _print_Tuple(self, expr):
        # An index pair as a handout writes it: (G - 1, G - 1).
        return "(%s)" % ", ".join(self._print(a) for a in expr.args)

    def _print_Identity(self, expr):
        return "I"  # the identity as the prose writes it (I, I_D), never a second symbol

    def _print_Function(self, expr, exp=None):
        out = self._print_applied(expr, exp)
        # \tanh(c), not \tanh{\left(c \right)}: the brackets follow the function name.
        m = _FUNCTION_ARG.match(out)
        return r"%s\left(%s\right)" % m.groups() if m else out

    def _print_HadamardPower(self, expr):
        return r"%s^{\odot %s}" % (self.parenthesize(expr.base, 1000), self._print(expr.exp))

    def _print_ElementwiseApplyFunction(self, expr):
        # The Lambda applied, not its body's head: sqrt's body is a power, Pow(z, 1/2).
        return self._print(expr.function(sp.Symbol("__arg__"))).replace(
            self._print(sp.Symbol("__arg__")), self._print(expr.expr)
        )

    def _print_MatAdd(self, expr):
        # 1 - u reads better than -u + 1, I - alpha H better than -alpha H + I.
        if self.ordering is None:
            args = sorted(expr.args, key=lambda a: not isinstance(a, sp.OneMatrix | sp.Identity))
        else:
            args = self._as_ordered_terms(expr)
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
    """Order in an elementwise product: what holds the adjoint first (bar u, or the W^T
    (...) that carries it), then the rest (``_group_key``)."""
    return 0 if any(_is_lead(b) for b in sp.preorder_traversal(a)) else 1


def _positive_first(terms: list) -> list:
    """``terms`` with the first positive one in front: n - h, not - h + n."""
    for i, term in enumerate(terms):
        if not term.could_extract_minus_sign():
            return [term, *terms[:i], *terms[i + 1:]]
    return terms


def _is_lead(a) -> bool:
    """An adjoint, the loss's direct partial, or a derivative of an adjoint (J's entries):
    what a term of the backward equations starts with."""
    if isinstance(a, Quantity | VectorQuantity):
        return a.role in ("adjoint", "loss")
    if isinstance(a, ParamAdjoint):
        return True
    return isinstance(a, sp.Derivative) and _is_lead(a.expr)


def _step_of(q) -> int:
    """``k`` of a quantity at step t + k, or its fixed step (0 for a parameter)."""
    step = q.step
    if step is None:
        return 0
    k = step - t if step.has(t) else step
    return int(k) if k.is_Integer else 0


def _lead_key(a, ordering: Ordering) -> tuple:
    if isinstance(a, sp.Derivative):
        a = a.expr
    if isinstance(a, ParamAdjoint):
        return (0, 1, ordering.read_rank(a.name))
    role = 0 if a.role == "loss" else 1
    return (_step_of(a), role, ordering.assign_rank(_name(a)))


#: What SymPy prints for a plain name of two letters or more with no Greek letter in it.
_WORD = re.compile(r"^[A-Za-z]{2,}$")
#: A map's state before or after a step, as named: ``cache^(k+1)``.
_STEPPED = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)\^\((k|k\+1|n)\)$")
#: A factor that begins with an upright word (a map's state "cache").
_WORD_START = re.compile(r"^\\mathrm\{[A-Za-z]{2,}\}")
_WORD_END = re.compile(r"\\mathrm\{[A-Za-z]{2,}\}(\^\{[^{}]*\})?$")
#: An upright word followed by another factor of a matrix product.
_WORD_FACTOR = re.compile(r"(\\mathrm\{[A-Za-z]{2,}\}) (?=[A-Za-z(]|\\(?!odot|cdot))")


def _name(q) -> str:
    return q.quantity if isinstance(q, Quantity) else q.name


def _names(expr) -> tuple[list[str], list[str]]:
    """The names of the cell's quantities in ``expr``, and of its parameters (weights and
    biases: symbols, or vector quantities of no step)."""
    found = expr.atoms(Quantity, VectorQuantity)
    quantities = [_name(q) for q in found if q.step is not None]
    params = [q.name for q in found if q.step is None]
    return quantities, params + [s.name for s in expr.atoms(sp.Symbol) if s != t]


def _inside(factors) -> frozenset:
    """The quantities that a derivative factor of a product is built of (i in 1 - i)."""
    built = [f for f in factors if not isinstance(f, Quantity | VectorQuantity | sp.Symbol)]
    return frozenset().union(*[f.atoms(Quantity, VectorQuantity) for f in built])


def _group_key(f, ordering: Ordering, inside: frozenset = frozenset()) -> tuple:
    """A factor's place among the forward quantities: its quantity's step (latest first),
    the quantity's place in evaluation order, then (for names the order does not rank) a
    quantity with a derivative factor in ``inside`` first, and the quantity itself before
    a factor built of it (o before tanh c, i before 1 - i)."""
    qs = [q for q in (f.atoms(Quantity) | f.atoms(VectorQuantity)) if not _is_lead(q)]
    if not qs:  # a problem's own symbols (g-bar, y): a symbol before a sum (1 - y)
        return (0, len(ordering.assigned) + 1, True, not isinstance(f, sp.MatrixSymbol))
    q = max(qs, key=lambda q: (-_step_of(q), ordering.assign_rank(_name(q))))
    bare = isinstance(f, Quantity | VectorQuantity)
    return (-_step_of(q), ordering.assign_rank(_name(q)), q not in inside, not bare)


def slim_brackets(latex: str) -> str:
    """``latex`` with every ``\\left( ... \\right)`` pair around content that is not tall
    (no fraction, sum, matrix or root, no tall bracket inside) written ``( ... )``: tall
    brackets around h or 2 D - 1 only make a line uneven."""
    tokens = list(_DELIMITER.finditer(latex))
    partner, stack = {}, []
    for i, m in enumerate(tokens):
        if m.group(1) == "left":
            stack.append(i)
        elif stack:
            partner[stack.pop()] = i
    tall: dict[int, bool] = {}
    for j, i in sorted(partner.items(), key=lambda p: p[1]):  # inner pairs first
        inner = latex[tokens[j].end():tokens[i].start()]
        tall[j] = bool(
            (tokens[j].group(2), tokens[i].group(2)) != ("(", ")")
            or _TALL.search(inner)
            or any(tall.get(k) for k in range(j + 1, i))
        )
    slim = {k for j, i in partner.items() if not tall[j] for k in (j, i)}
    out, pos = [], 0
    for k in sorted(slim):
        m = tokens[k]
        out += [latex[pos:m.start()], m.group(2)]
        pos = m.end()
    return "".join(out) + latex[pos:]


def tex(expr, notation: Notation | None = None) -> str:
    """LaTeX of ``expr`` in ``notation``."""
    return KeyPrinter(notation).doprint(expr)
