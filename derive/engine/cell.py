"""A recurrent cell as data.

A cell is an ordered list of assignments ``u = E`` evaluated once per time step.  Each
right-hand side ``E`` is a SymPy expression in

* the step's inputs (``x``),
* the previous values of the carried states (``h_prev``, ``c_prev``),
* the parameters (weights and biases), shared by every step,
* variables assigned earlier in the same step.

Read as scalars, the assignments are the univariate cell of the handouts.  Read as vectors,
a product of a weight with other factors is a matrix-vector product, any other product is
elementwise (Hadamard), and functions apply elementwise: the same data gives both forms.

Time enters only when a derivation needs it: ``at(u, k)`` is ``u`` at step ``t + k`` as the
SymPy function application ``u(t + k)``, so shifting a result by a step is ``subs(t, t+1)``
and a sum over steps is a real ``Sum`` over ``t``.  Read as vectors, the same quantities are
``VectorQuantity`` matrix symbols (``vector_quantity``).  Either kind carries the cell
symbol's name, its role (value, adjoint, the loss's direct partial) and its step as data,
so a cell's symbols may be named anything: no name is encoded in a string and parsed back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import ClassVar, Literal

import sympy as sp
from sympy.core.cache import cacheit
from sympy.core.function import AppliedUndef, UndefinedFunction
from sympy.core.symbol import Str

from derive.engine.functions import entry, lookup
from derive.errors import InputError

t = sp.Symbol("t", integer=True)
T = sp.Symbol("T", integer=True, positive=True)
#: The loss, as a symbol: it appears only inside derivative notation.
L = sp.Symbol("L")

Kind = Literal["input", "state", "gate", "weight", "bias"]


Role = Literal["value", "adjoint", "loss", "hoisted"]


class Quantity(AppliedUndef):
    """A scalar quantity of a cell at a step: ``u(t + k)``, its adjoint or the loss's direct
    partial by it.

    The cell symbol's name (``quantity``) and the ``role`` are data of the quantity's class
    (one class per name and role, as ``sympy.Function(name)`` makes one per name); the step
    is its one argument, so ``subs(t, t + 1)`` shifts it and a ``Sum`` over ``t`` runs over it.  The
    printers read the data (``KeyPrinter._print_Quantity``); nothing reads SymPy's name of
    the class, which only orders the terms of sums and products (as it always has).
    """

    quantity: ClassVar[str]  # the cell symbol's name
    role: ClassVar[Role]

    @property
    def base(self) -> str:
        """The name of the cell symbol this is a quantity of (``c`` for bar c at t + 1)."""
        return self.quantity

    @property
    def step(self) -> sp.Expr:
        """The step: ``t + k`` (relative) or a number (a fixed step)."""
        return self.args[0]

    @property
    def offset(self) -> sp.Expr:
        """``k`` of step ``t + k`` (``step - t`` for a fixed step)."""
        return self.args[0] - t


#: SymPy's name of each role's class: it decides the canonical order of terms, so it is
#: kept as it was when these were plain functions named so (outputs do not change).  The
#: same spelling orders vector quantities (``VectorQuantity.sort_name``).  Never parsed.
_SORT_NAME = {"value": "{}", "adjoint": "bar:{}", "loss": "dL:{}", "hoisted": "aux:{}"}
#: What the sort names spell with: a cell symbol's name escapes them (``_escaped``).
_SPECIAL = str.maketrans({"\\": "\\\\", ":": "\\:", "@": "\\@"})


def _escaped(name: str) -> str:
    """``name`` with ``\\``, ``:`` and ``@`` escaped by a backslash, so that the sort names
    of different quantities differ (the value of ``bar:h`` is ``bar\\:h``, the adjoint of
    ``h`` is ``bar:h``) while an ordinary name, holding none of these, stays itself."""
    return name.translate(_SPECIAL)


def sort_name(name: str, role: Role) -> str:
    """The name SymPy orders (and srepr prints) quantity ``name`` in ``role`` by."""
    return _SORT_NAME[role].format(_escaped(name))


@cache
def quantity_class(name: str, role: Role = "value") -> type[Quantity]:
    """The class of quantity ``name`` in ``role``; apply it to a step."""
    return UndefinedFunction(sort_name(name, role), (Quantity,), quantity=name, role=role)


def quantity(name: str, role: Role = "value", k: int | sp.Expr = 0) -> Quantity:
    """Quantity ``name`` in ``role`` at step ``t + k``."""
    return quantity_class(name, role)(t + k)


def timed(name: str, k: int | sp.Expr = 0) -> sp.Expr:
    """The quantity called ``name`` at step ``t + k``."""
    return quantity(name, "value", k)


def bar(name: str, k: int | sp.Expr = 0) -> sp.Expr:
    """The adjoint dL/d(name) at step ``t + k``."""
    return quantity(name, "adjoint", k)


def loss_grad(name: str, k: int | sp.Expr = 0) -> sp.Expr:
    """The direct partial derivative of the loss by ``name`` at step ``t + k``."""
    return quantity(name, "loss", k)


class ParamAdjoint(sp.Symbol):
    """The gradient dL/dw of parameter ``w`` (summed over the steps): a symbol of its own
    class, named as the parameter, so it never equals the parameter itself."""

    role: ClassVar[Role] = "adjoint"


def param_bar(name: str) -> ParamAdjoint:
    """The gradient dL/d(name) of a parameter."""
    return ParamAdjoint(name)


class VectorQuantity(sp.MatrixSymbol):
    """A quantity of a cell read as a vector (or a weight as a matrix): ``u`` at step t+k,
    its adjoint or the loss's direct partial by it, with its shape.

    Name, role and step are arguments of the expression (``name``, ``role``, ``step``), so
    ``xreplace({t: 0})`` moves every relative step to a fixed one and a substitution of the
    sizes keeps them.  ``name`` is the cell symbol's name, as SymPy's ``MatrixSymbol.name``
    is; ``step`` is ``t + k`` (relative), a number (a fixed step) or None (a parameter, shared
    by every step).  Printers and evaluators read these attributes.

    Only ``sort_key``, ``srepr`` and ``str`` see the quantity as the ``MatrixSymbol`` these
    were before they were typed (``sort_name``): SymPy's canonical order of terms and the
    exported srepr strings stay what they were.  Nothing reads that name back.
    """

    def __new__(cls, name, rows, cols, role: Role | Str = "value", step=None) -> VectorQuantity:
        # Rebuilt by SymPy (xreplace, subs) from its arguments: Str and Tuple come back.
        name = name if isinstance(name, Str) else Str(name)
        role = role if isinstance(role, Str) else Str(role)
        if role.name not in _SORT_NAME:
            raise ValueError(f"unknown role {role.name!r} of a vector quantity")
        if not isinstance(step, sp.Tuple):
            step = sp.Tuple() if step is None else sp.Tuple(sp.sympify(step))
        rows, cols = sp.sympify(rows), sp.sympify(cols)
        return sp.Basic.__new__(cls, name, rows, cols, role, step)

    @property
    def role(self) -> Role:
        """``value``, ``adjoint`` or ``loss`` (the loss's direct partial)."""
        return self.args[3].name

    @property
    def step(self) -> sp.Expr | None:
        """``t + k``, a fixed step, or None for a parameter."""
        return self.args[4][0] if self.args[4] else None

    @property
    def offset(self) -> sp.Expr | None:
        """``k`` of step ``t + k`` (``step - t`` for a fixed step; None for a parameter)."""
        return None if self.step is None else self.step - t

    @property
    def sort_name(self) -> str:
        """The name SymPy ordered this by when it was a plain ``MatrixSymbol``: ``bar:c@1``
        for bar c at t + 1, ``c@=0`` for c at the fixed step 0 (see the class)."""
        name = sort_name(self.name, self.role)
        if self.step is None:
            return name
        return f"{name}@{self.offset}" if self.step.has(t) else f"{name}@={self.step}"

    def _sort_symbol(self) -> sp.MatrixSymbol:
        return sp.MatrixSymbol(self.sort_name, *self.shape)

    @cacheit
    def sort_key(self, order=None):
        # The sort name orders; the data breaks ties between names the sort names confuse.
        return (*self._sort_symbol().sort_key(order), (self.name, self.role))

    def _sympyrepr(self, printer) -> str:
        return printer._print(self._sort_symbol())

    def _sympystr(self, printer) -> str:
        return self.sort_name


def vector_quantity(
    name: str,
    shape: tuple[sp.Expr | int, sp.Expr | int],
    role: Role = "value",
    step: int | sp.Expr | None = None,
) -> VectorQuantity:
    """Vector quantity ``name`` of ``shape`` in ``role`` at ``step`` (``t + k`` for step
    t+k, a number for a fixed step, None for a parameter)."""
    return VectorQuantity(name, *shape, role, step)


@dataclass(frozen=True)
class Cell:
    """A recurrent cell: ordered assignments over inputs, previous states and parameters.

    Parameters
    ----------
    name
        Registry name of the cell (``lstm``).
    inputs
        Input symbols of one step.
    states
        Carried states, each one of the assigned variables; ``prev[s]`` is the symbol
        that stands for its value at the previous step.
    params
        Parameters with their kind: ``weight`` multiplies a variable (a matrix in vector
        form) and ``bias`` is added (a vector).
    assignments
        ``(variable, expression)`` pairs in evaluation order.
    loss_on
        Variables the loss reads directly at every step (the hidden state).
    """

    name: str
    inputs: tuple[sp.Symbol, ...]
    states: tuple[sp.Symbol, ...]
    prev: dict[sp.Symbol, sp.Symbol]
    params: dict[sp.Symbol, Literal["weight", "bias"]]
    assignments: tuple[tuple[sp.Symbol, sp.Expr], ...]
    loss_on: tuple[sp.Symbol, ...]
    #: For a cell written as text: ``interpreted(backend, perturbed)`` is a forward step
    #: read off the text itself (``derive.model.interpret``), which the forward pass, and
    #: so every check, runs instead of code generated from ``assignments``.
    interpreted: Callable[[str, bool], Callable] | None = field(
        default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._validate()

    # -- structure -----------------------------------------------------------------------
    @property
    def variables(self) -> tuple[sp.Symbol, ...]:
        """Assigned variables in evaluation order."""
        return tuple(u for u, _ in self.assignments)

    @property
    def weights(self) -> tuple[sp.Symbol, ...]:
        """The parameters of kind ``weight``, in the order of ``params``."""
        return tuple(p for p, kind in self.params.items() if kind == "weight")

    def rhs(self, u: sp.Symbol) -> sp.Expr:
        """The right-hand side assigned to variable ``u``."""
        return dict(self.assignments)[u]

    def kind(self, s: sp.Symbol) -> Kind:
        """What role symbol ``s`` plays in the cell."""
        if s in self.params:
            return self.params[s]
        if s in self.inputs:
            return "input"
        if s in self.states or s in self.prev.values():
            return "state"
        if s in self.variables:
            return "gate"
        raise KeyError(s)

    def state_of(self, s: sp.Symbol) -> sp.Symbol | None:
        """The state whose previous value ``s`` stands for, if any."""
        for state, p in self.prev.items():
            if p == s:
                return state
        return None

    def consumers(self, v: sp.Symbol) -> tuple[sp.Symbol, ...]:
        """Assigned variables whose right-hand side reads ``v``."""
        return tuple(u for u, e in self.assignments if v in e.free_symbols)

    # -- time ----------------------------------------------------------------------------
    def at_step(self, k: int = 0) -> dict[sp.Symbol, sp.Expr]:
        """Substitution from the cell's local symbols to quantities at step ``t + k``."""
        sub: dict[sp.Symbol, sp.Expr] = {s: timed(s.name, k) for s in self.inputs}
        sub.update({u: timed(u.name, k) for u in self.variables})
        sub.update({p: timed(s.name, k - 1) for s, p in self.prev.items()})
        return sub

    def forward_rewrites(self) -> dict[sp.Expr, sp.Expr]:
        """``{f(z): u}`` for every assignment ``u = f(z)`` with ``f`` registered (sqrt, a
        ``Pow``, too: with ``{1/sqrt(z): 1/u}``, the form its derivative holds).

        Applying it to a derivative writes sigma'(z) as ``i*(1 - i)``, tanh'(z) as
        ``1 - g**2`` and sqrt'(p) as ``1/(2 r)``: in terms of the forward quantities, as an
        answer key (and the vector form) does.
        """
        out: dict[sp.Expr, sp.Expr] = {}
        for u, e in self.assignments:
            if lookup(e) is not None:
                out[e] = u
                if isinstance(e, sp.Pow):  # sqrt(z)' = 1/(2 sqrt(z)) holds z**(-1/2)
                    out[1 / e] = 1 / u
        return out

    # -- checks --------------------------------------------------------------------------
    def _validate(self) -> None:
        names = [*self.inputs, *self.prev.values(), *self.params, *self.variables]
        for s in names:
            # Any name: quantities carry it as data, generated code names its variables
            # itself, and a name reaches TeX only through texgate (``Notation.base``).
            if not s.name:
                raise InputError(f"cell {self.name!r}: a symbol has an empty name")
        if len({s.name for s in names}) != len(names):
            raise InputError(f"cell {self.name!r}: a symbol name is used twice")
        known = set(self.inputs) | set(self.prev.values()) | set(self.params)
        for u, e in self.assignments:
            for f in e.atoms(sp.Function):
                entry(f)  # an unregistered function: the error says how to add it
            unknown = e.free_symbols - known
            if unknown:
                names = ", ".join(sorted(s.name for s in unknown))
                raise InputError(
                    f"cell {self.name!r}: the assignment of {u} reads {names} before it is "
                    "assigned; allowed are inputs, previous states, parameters and earlier "
                    "assignments"
                )
            known.add(u)
        for s in self.states:
            if s not in self.variables or s not in self.prev:
                raise InputError(
                    f"cell {self.name!r}: state {s} needs an assignment and a previous symbol"
                )
