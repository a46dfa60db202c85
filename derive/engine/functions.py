"""The registry of elementwise functions: everything the engine knows about each, in one entry.

In the spirit of autograd's ``defvjp``, one ``Elementwise`` entry per function gives

1. its SymPy form (a ``sympy.Function`` subclass where SymPy has none that suits, as
   ``sigma``: an opaque logistic keeps results in the form an answer key uses and makes
   ``diff`` several times faster than differentiating ``1/(1 + exp(-z))``);
2. its derivative written in forward quantities, ``derivative(u, z)`` with ``u = f(z)``
   (``u (1 - u)`` for sigma, ``1 - u^2`` for tanh, the pre-activation form ``step(z)`` for
   ReLU); for the classes defined here ``fdiff`` reads it, for SymPy's own it agrees with
   SymPy's (a test checks both);
3. its stable float form: ``stable(u, z)`` maps a derivative factor that loses digits in
   float64 near saturation (``1 - u`` for u = sigma(z)) to an equal form computed from the
   pre-activation (``sigma(-z)``);
4. its NumPy (real or complex arrays; analytic, so complex-step differentiation applies),
   mpmath, ``math`` (plain floats, where NumPy's per-call overhead would dominate) and C
   spellings (a C function of its own in ``c_source`` where ``<math.h>`` has none);
5. its domain, range and monotonicity, for interval arithmetic: ``exact`` gives its exact
   value at a number or at +-oo;
6. whether it ``saturates`` (sigma, tanh): flat far from 0, where float64 keeps few digits
   of its slope, so a worked example bounds its argument.

A function that is not registered fails with a message that names this file and the entry
to add (``entry``).  To add one: write an ``Elementwise`` and ``register`` it below.
"""

from __future__ import annotations

import cmath
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

import mpmath
import numpy as np
import sympy as sp

from derive.errors import InputError

Monotone = Literal["increasing", "nondecreasing", "decreasing"] | None
REALS = sp.Interval(-sp.oo, sp.oo)


@dataclass(frozen=True)
class Elementwise:
    """Everything the engine knows about one elementwise function (see the module doc)."""

    name: str
    sympy: Callable[[sp.Expr], sp.Expr]
    derivative: Callable[[sp.Expr, sp.Expr], sp.Expr]
    numpy: Callable
    mpmath: Callable
    math: Callable
    c: str
    exact: Callable[[sp.Expr], sp.Expr]
    range: sp.Interval
    monotone: Monotone
    domain: sp.Interval = REALS
    stable: Callable[[sp.Expr, sp.Expr], dict] = field(default=lambda u, z: {})
    c_source: str = ""
    #: A gate's activation: its slope vanishes at both ends, where float64 resolves it
    #: poorly (``derive.example_run`` bounds the arguments of these).
    saturates: bool = False

    def __call__(self, z: sp.Expr) -> sp.Expr:
        return self.sympy(z)

    def spelling(self, backend: str) -> Callable:
        """The numeric form for ``backend``: ``numpy``, ``mpmath`` or ``math``."""
        if backend not in ("numpy", "mpmath", "math"):
            raise ValueError(f"unknown backend {backend!r}; use 'numpy', 'mpmath' or 'math'")
        return getattr(self, backend)


#: Every registered function, by name.
FUNCTIONS: dict[str, Elementwise] = {}
_BY_CLASS: dict[type, Elementwise] = {}


def register(f: Elementwise) -> Elementwise:
    """Add ``f`` to the registry (its SymPy class, if applying it makes one, is its key)."""
    FUNCTIONS[f.name] = f
    applied = f.sympy(sp.Symbol("z"))
    if isinstance(applied, sp.Function):
        _BY_CLASS[type(applied)] = f
    return f


def lookup(e: sp.Expr) -> Elementwise | None:
    """The entry of the elementwise function applied in ``e``, or None if ``e`` is none."""
    if isinstance(e, sp.Pow) and e.exp == sp.S.Half:
        return FUNCTIONS["sqrt"]
    return _BY_CLASS.get(type(e))


def applied(exprs: Iterable[sp.Expr]) -> list[Elementwise]:
    """The registered functions applied anywhere in ``exprs``, in order of first use."""
    seen: dict[str, Elementwise] = {}
    for e in exprs:
        for sub in sp.preorder_traversal(e):
            found = lookup(sub)
            if found is not None:
                seen.setdefault(found.name, found)
    return list(seen.values())


def entry(e: sp.Expr) -> Elementwise:
    """Like ``lookup``, but a function that is not registered is an error saying how to add it."""
    found = lookup(e)
    if found is None and isinstance(e, sp.Pow):
        raise InputError(
            f"no vector form for {e}: of the powers only integer ones and sqrt (a registered "
            "function) apply elementwise"
        )
    if found is None:
        name = type(e).__name__
        raise InputError(
            f"the elementwise function {name} is not in the registry: add an Elementwise "
            f"entry for {name} (SymPy form, derivative, stable form, NumPy/mpmath/math/C "
            "spellings, range and monotonicity) with register(...) in "
            "derive/engine/functions.py"
        )
    return found


def argument(e: sp.Expr) -> sp.Expr:
    """The argument ``z`` of an applied elementwise function ``f(z)``."""
    return e.args[0]


def is_elementwise(e: sp.Expr) -> bool:
    """Whether ``e`` applies a function (registered or not: ``entry`` then says what to add)."""
    return isinstance(e, sp.Function) or lookup(e) is not None


def _applied(name: str) -> Callable:
    # fdiff of the classes below reads the registry: the derivative is written once.
    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return FUNCTIONS[name].derivative(self, self.args[0])

    return fdiff


def _evalf(name: str) -> Callable:
    # evalf reads the registry's mpmath form: SymPy has no numeric form of the classes
    # below, and without one sigma(0.3).evalf() stays sigma(0.3) (a derived expression
    # evaluated at numbers, as a check does, would not be a number).
    def _eval_evalf(self, prec: int) -> sp.Expr | None:
        z = self.args[0]._eval_evalf(prec)
        if z is None or not z.is_number:
            return None
        with mpmath.workprec(prec):
            return sp.Expr._from_mpmath(FUNCTIONS[name].mpmath(z._to_mpmath(prec)), prec)

    return _eval_evalf


# -- SymPy forms of the functions SymPy lacks ----------------------------------------------
def powered(latex: str, exp: str | None) -> str:
    """A function's LaTeX raised to ``exp`` (SymPy's printer passes the power of f(z)^n to
    f's own printing, as it writes sin^2)."""
    return latex if exp is None else r"\left(%s\right)^{%s}" % (latex, exp)


class sigma(sp.Function):  # noqa: N801 - reads like the math
    """The logistic function 1/(1 + exp(-z))."""

    nargs = 1
    fdiff = _applied("sigma")
    _eval_evalf = _evalf("sigma")

    def _eval_rewrite_as_exp(self, z, **kwargs):
        return 1 / (1 + sp.exp(-z))

    def _latex(self, printer, exp=None) -> str:
        return powered(r"\sigma\left(%s\right)" % printer._print(self.args[0]), exp)


class step(sp.Function):  # noqa: N801
    """The indicator of z > 0 (1 for z > 0, else 0): the derivative of ReLU, with the
    subgradient 0 taken at z = 0.  Printed as ``step(z)``, not as SymPy's Heaviside (whose
    value at 0 is a convention of its own); its derivative is 0 wherever it has one."""

    nargs = 1
    fdiff = _applied("step")
    _eval_evalf = _evalf("step")

    def _latex(self, printer, exp=None) -> str:
        return powered(r"\operatorname{step}\left(%s\right)" % printer._print(self.args[0]), exp)


class relu(sp.Function):  # noqa: N801
    """max(0, z).  Its derivative is ``step(z)``: 1 for z > 0 and 0 for z <= 0, so the
    subgradient at 0 is 0 (as PyTorch and JAX take it)."""

    nargs = 1
    fdiff = _applied("relu")
    _eval_evalf = _evalf("relu")

    def _latex(self, printer, exp=None) -> str:
        return powered(r"\operatorname{ReLU}\left(%s\right)" % printer._print(self.args[0]), exp)


class softplus(sp.Function):  # noqa: N801
    """log(1 + exp(z)), whose derivative is sigma(z)."""

    nargs = 1
    fdiff = _applied("softplus")
    _eval_evalf = _evalf("softplus")

    def _eval_rewrite_as_exp(self, z, **kwargs):
        return sp.log(1 + sp.exp(z))

    def _latex(self, printer, exp=None) -> str:
        arg = printer._print(self.args[0])
        return powered(r"\operatorname{softplus}\left(%s\right)" % arg, exp)


class identity(sp.Function):  # noqa: N801
    """The identity: ``identity(z)`` is ``z`` itself, so it never stays in an expression."""

    nargs = 1

    @classmethod
    def eval(cls, z):
        return z


# -- numeric forms ------------------------------------------------------------------------
def _np_sigma(z):
    # 1/(1 + e^-z) for Re z >= 0 and e^z/(1 + e^z) below: the exponent's real part is
    # never positive, so nothing overflows, and both halves keep full *relative* accuracy,
    # also for sigma near 0 (a closed gate), where 0.5*(1 + tanh(z/2)) loses digits to
    # cancellation.  Each half is analytic, so complex-step differentiation applies.
    if isinstance(z, float | complex):  # one number: math/cmath, no array overhead
        exp = math.exp if isinstance(z, float) else cmath.exp
        if z.real < 0:
            e = exp(z)
            return e / (1.0 + e)
        return 1.0 / (1.0 + exp(-z))
    z = np.asarray(z)
    if z.size == 0 or z.real.min() > -700:
        # 1/(1 + e^-z) keeps full relative accuracy for either sign; only its overflow far
        # left (inf, and NaN for complex z) needs the two-sided form below.
        return 1.0 / (1.0 + np.exp(-z))
    neg = z.real < 0
    e = np.exp(np.where(neg, z, -z))
    return np.where(neg, e, 1.0) / (1.0 + e)


def _np_sech(z):
    # 1/cosh(z) where cosh cannot overflow, else 2 e / (1 + e^2) with e = exp(-|z|) (the
    # sign taken on the real part: analytic on each half-plane), which never overflows.
    # Not the latter everywhere: under a complex step near z = 0 its derivative cancels.
    if isinstance(z, float | complex):
        if abs(z.real) < 700:
            return 1.0 / (math.cosh(z) if isinstance(z, float) else cmath.cosh(z))
        e = (math.exp if isinstance(z, float) else cmath.exp)(-z if z.real >= 0 else z)
        return 2.0 * e / (1.0 + e * e)
    z = np.asarray(z)
    near = np.abs(z.real) < 700
    out = 1.0 / np.cosh(np.where(near, z, 0))
    if not near.all():
        e = np.exp(np.where(z.real >= 0, -z, z))
        out = np.where(near, out, 2.0 * e / (1.0 + e * e))
    return out


def _math_sigma(z: float) -> float:
    # The NumPy form's scalar branch for plain floats, without its type tests.
    if z < 0:
        e = math.exp(z)
        return e / (1.0 + e)
    return 1.0 / (1.0 + math.exp(-z))


def _math_sech(z: float) -> float:
    if abs(z) < 700:
        return 1.0 / math.cosh(z)
    e = math.exp(-abs(z))
    return 2.0 * e / (1.0 + e * e)


def _np_relu(z):
    # The sign taken on the real part: analytic on each half, so a complex step applies.
    # A true zero, not 0 * z (NaN at z = -inf); NaN fails ``<= 0`` and passes through, as
    # in every other spelling.
    z = np.asarray(z)
    return np.where(z.real <= 0, np.zeros_like(z), z)


def _np_step(z):
    z = np.asarray(z)
    one, zero = np.ones_like(z), np.zeros_like(z)
    return np.where(z.real > 0, one, np.where(z.real <= 0, zero, z))  # NaN stays NaN


def _log1p(w):
    # NumPy's complex log1p is log(1 + w), which loses the digits of a small w; this
    # (Kahan's) keeps them, for real and complex w alike.
    if not np.iscomplexobj(w):
        return np.log1p(w)
    one = 1 + w
    safe = np.where(one == 1, 2, one)
    # An infinite or NaN w gives NaN here as in NumPy's own functions, without a warning.
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(one == 1, w, np.log(safe) * w / (safe - 1))


def _np_softplus(z):
    # max(z, 0) + log1p(e^-|z|): nothing overflows and log1p keeps the small values'
    # digits (log(1 + e^z) rounds to 0 below z = -37).  Analytic on each half-plane.
    z = np.asarray(z)
    right = z.real > 0
    return np.where(right, z, np.zeros_like(z)) + _log1p(np.exp(np.where(right, -z, z)))


def _math_softplus(z: float) -> float:
    return (z if z > 0 else 0.0) + math.log1p(math.exp(-abs(z)))


def _math_relu(z: float) -> float:
    return 0.0 if z <= 0 else z  # NaN passes through


def _math_step(z: float) -> float:
    return 1.0 if z > 0 else 0.0 if z <= 0 else z


def _mp_zero(z):
    # A zero of z's type, not 0 * z (NaN at z = -inf).
    return mpmath.mpc(0) if isinstance(z, mpmath.mpc) else mpmath.mpf(0)


def _mp_relu(z):
    return _mp_zero(z) if mpmath.re(z) <= 0 else z


def _mp_step(z):
    if mpmath.re(z) > 0:
        return _mp_zero(z) + 1
    return _mp_zero(z) if mpmath.re(z) <= 0 else z


_C_SIGMA = """\
/* 1/(1 + e^-z) for z >= 0 and e^z/(1 + e^z) below: e^-|z| never overflows and both halves
   keep full relative accuracy (the engine's NumPy sigma).  One exp and one division, the
   halves differing only in the numerator: no branch to mispredict when signs vary. */
static inline double derive_sigma(double z)
{
    const double e = exp(-fabs(z));
    const double num = z >= 0 ? 1.0 : e;
    return num / (1.0 + e);
}
"""

_C_SECH = """\
/* cosh overflows to inf for large |z|, so sech goes cleanly to 0. */
static inline double derive_sech(double z)
{
    return 1.0 / cosh(z);
}
"""

_C_RELU = """\
/* max(0, z); its derivative, the indicator of z > 0 (0 at z = 0).  A NaN fails both
   comparisons and passes through, as in the NumPy forms. */
static inline double derive_relu(double z)
{
    return z <= 0 ? 0.0 : z;
}

static inline double derive_step(double z)
{
    return z > 0 ? 1.0 : (z <= 0 ? 0.0 : z);
}
"""

_C_SOFTPLUS = """\
/* max(z, 0) + log1p(e^-|z|): no overflow, and the digits of small values kept. */
static inline double derive_softplus(double z)
{
    return (z > 0 ? z : 0.0) + log1p(exp(-fabs(z)));
}
"""


# -- the registry -----------------------------------------------------------------------------
OPEN_UNIT = sp.Interval.open(0, 1)
POSITIVE = sp.Interval.open(0, sp.oo)
NONNEGATIVE = sp.Interval(0, sp.oo)

register(
    Elementwise(
        "sigma",
        sigma,
        derivative=lambda u, z: u * (1 - u),
        # 1 - sigma(z) = sigma(-z): no cancellation when the gate is open (u near 1).
        stable=lambda u, z: {1 - u: sigma(-z)},
        numpy=_np_sigma,
        mpmath=lambda z: 1 / (1 + mpmath.exp(-z)),
        math=_math_sigma,
        c="derive_sigma",
        c_source=_C_SIGMA,
        exact=lambda z: 1 / (1 + sp.exp(-z)),
        range=OPEN_UNIT,
        monotone="increasing",
        saturates=True,
    )
)
register(
    Elementwise(
        "tanh",
        sp.tanh,
        derivative=lambda u, z: 1 - u**2,
        # 1 - tanh(z)^2 = sech(z)^2: no cancellation near |u| = 1.
        stable=lambda u, z: {1 - u**2: sp.sech(z) ** 2},
        numpy=np.tanh,
        mpmath=mpmath.tanh,
        math=math.tanh,
        c="tanh",
        exact=sp.tanh,
        range=sp.Interval.open(-1, 1),
        monotone="increasing",
        saturates=True,
    )
)
register(
    Elementwise(
        "sech",  # in the stable form of tanh's derivative
        sp.sech,
        derivative=lambda u, z: -u * sp.tanh(z),
        numpy=_np_sech,
        mpmath=mpmath.sech,
        math=_math_sech,
        c="derive_sech",
        c_source=_C_SECH,
        exact=sp.sech,
        range=sp.Interval.Lopen(0, 1),
        monotone=None,
    )
)
register(
    Elementwise(
        "relu",
        relu,
        derivative=lambda u, z: step(z),
        numpy=_np_relu,
        mpmath=_mp_relu,
        math=_math_relu,
        c="derive_relu",
        c_source=_C_RELU,
        exact=lambda z: sp.Max(0, z),
        range=NONNEGATIVE,
        monotone="nondecreasing",
    )
)
register(
    Elementwise(
        "step",  # the derivative of relu (its own C source is relu's)
        step,
        derivative=lambda u, z: sp.S.Zero,
        numpy=_np_step,
        mpmath=_mp_step,
        math=_math_step,
        c="derive_step",
        exact=lambda z: sp.Piecewise((1, z > 0), (0, True)),
        range=sp.Interval(0, 1),
        monotone="nondecreasing",
    )
)
register(
    Elementwise(
        "softplus",
        softplus,
        derivative=lambda u, z: sigma(z),
        numpy=_np_softplus,
        mpmath=lambda z: mpmath.log1p(mpmath.exp(z)),
        math=_math_softplus,
        c="derive_softplus",
        c_source=_C_SOFTPLUS,
        exact=lambda z: sp.log(1 + sp.exp(z)),
        range=POSITIVE,
        monotone="increasing",
    )
)
register(
    Elementwise(
        "exp",
        sp.exp,
        derivative=lambda u, z: u,
        numpy=np.exp,
        mpmath=mpmath.exp,
        math=math.exp,
        c="exp",
        exact=sp.exp,
        range=POSITIVE,
        monotone="increasing",
    )
)
register(
    Elementwise(
        "log",
        sp.log,
        derivative=lambda u, z: 1 / z,
        numpy=np.log,
        mpmath=mpmath.log,
        math=math.log,
        c="log",
        exact=lambda z: -sp.oo if z == 0 else sp.log(z),  # the end of the domain: a limit
        domain=POSITIVE,
        range=REALS,
        monotone="increasing",
    )
)
register(
    Elementwise(
        "sqrt",  # SymPy's sqrt(z) is Pow(z, 1/2): ``lookup`` knows it by that
        sp.sqrt,
        derivative=lambda u, z: 1 / (2 * u),
        numpy=np.sqrt,
        mpmath=mpmath.sqrt,
        math=math.sqrt,
        c="sqrt",
        exact=sp.sqrt,
        domain=NONNEGATIVE,
        range=NONNEGATIVE,
        monotone="increasing",
    )
)
register(
    Elementwise(
        "identity",  # identity(z) is z: it needs no rule of the engine, only this entry
        identity,
        derivative=lambda u, z: sp.S.One,
        numpy=lambda z: z,
        mpmath=lambda z: z,
        math=lambda z: z,
        c="",
        exact=lambda z: z,
        range=REALS,
        monotone="increasing",
    )
)


def numeric(backend: str) -> dict[str, Callable]:
    """Every registered function's numeric form for ``backend``, by name."""
    return {name: f.spelling(backend) for name, f in FUNCTIONS.items()}


def c_prelude() -> str:
    """The C definitions of the registered functions that ``<math.h>`` lacks."""
    return "\n".join(f.c_source for f in FUNCTIONS.values() if f.c_source)


def c_names() -> dict[str, str]:
    """The C name of each function whose C name is not its SymPy name (``sigma`` ->
    ``derive_sigma``), as SymPy's C printer takes them (``user_functions``)."""
    return {n: f.c for n, f in FUNCTIONS.items() if f.c and f.c != n}
