"""What a moments quantity may hold besides a polynomial in its random variables: a sum of
independent copies (``sum(n, w*x)``) and a function of one variable (``relu(z)``).

Both are *generators* of the quantity's polynomial, beside the plain variables: the
quantity is a polynomial in them, and they are independent of each other because no
random variable is read by two of them (``check_independent``).  Their moments come from
``derive.problems.moments.aggregate``:

    Copies(n, T)   sum_{k=1}^{n} T_k, T_k the k-th of n independent copies of T: each
                   random variable in T drawn afresh for each k (cumulants add up)
    f(a r + b)     a registered function of one variable r, at an affine argument with
                   numeric coefficients (its moments are integrals against r's density)
"""

from __future__ import annotations

from collections.abc import Iterator

import sympy as sp

from derive.engine.functions import FUNCTIONS, lookup
from derive.errors import InputError

#: The letters a sum's copies are counted with, by depth (a sum inside a sum takes the next).
LETTERS = ("k", "l", "m")


class Copies(sp.Function):
    """``Copies(n, T, tag, depth, randoms)``: a sum of ``n`` independent copies of ``T``;
    ``tag`` tells two written sums apart (equal text is still two draws), ``depth`` picks
    the letter the copies are counted by, ``randoms`` are T's random variables (each
    printed as its k-th copy)."""

    nargs = 5
    is_commutative = True
    is_real = True

    @property
    def count(self) -> sp.Expr:
        return self.args[0]

    @property
    def body(self) -> sp.Expr:
        return self.args[1]

    @property
    def letter(self) -> str:
        return LETTERS[int(self.args[3])]

    def indexed(self) -> sp.Expr:
        """The body with each random variable ``r`` written as its k-th copy ``r_k``."""
        return self.body.xreplace({r: sp.Symbol(f"{r.name}_{self.letter}", real=True)
                                   for r in self.args[4]})

    def _latex(self, printer, exp=None) -> str:
        k = self.letter
        body = printer._print(self.indexed())
        if self.body.is_Add:
            body = r"\left(%s\right)" % body
        inner = r"\sum_{%s=1}^{%s} %s" % (k, printer._print(self.count), body)
        return inner if exp is None else r"\Bigl(%s\Bigr)^{%s}" % (inner, exp)


def generators(expr: sp.Expr, randoms: set[sp.Symbol]) -> list[sp.Expr]:
    """The quantity's generators at its top level, in a fixed order: the sums of copies,
    the functions of a variable and the plain variables read outside both."""
    found: dict[sp.Expr, None] = {}
    for g in _top(expr, randoms):
        found.setdefault(g, None)
    return sorted(found, key=sp.default_sort_key)


def _top(expr: sp.Expr, randoms: set[sp.Symbol]) -> Iterator[sp.Expr]:
    if isinstance(expr, Copies) or (lookup(expr) is not None
                                    and expr.free_symbols & randoms):
        yield expr
    elif isinstance(expr, sp.Symbol):
        if expr in randoms:
            yield expr
    else:
        for a in expr.args:
            yield from _top(a, randoms)


def consumed(g: sp.Expr, randoms: set[sp.Symbol]) -> set[sp.Symbol]:
    """The random variables a generator reads."""
    return g.free_symbols & randoms


def check_independent(expr: sp.Expr, randoms: set[sp.Symbol], where: str) -> None:
    """Refuse a quantity in which one random variable is read by two generators (``z``
    and ``relu(z)``, or ``w`` inside two sums): they would not be independent."""
    gens = generators(expr, randoms)
    for i, g in enumerate(gens):
        for h in gens[i + 1:]:
            shared = consumed(g, randoms) & consumed(h, randoms)
            if shared:
                r = sorted(s.name for s in shared)[0]
                raise InputError(f"{where}: {r!r} is read both in {_said(g)} and in "
                                 f"{_said(h)}; a sum of copies and a function of a variable "
                                 "must each read random variables nothing else reads, so "
                                 "that they are independent")
    for g in gens:
        if isinstance(g, Copies):
            check_independent(g.body, randoms, where)


def function_name(g: sp.Expr) -> str:
    """The registered name of the function applied in ``g``."""
    return lookup(g).name


def _said(g: sp.Expr) -> str:
    if isinstance(g, Copies):
        return f"sum({g.count}, ...)"
    if isinstance(g, sp.Symbol):
        return g.name
    entry = lookup(g)
    return f"{entry.name}(...)" if entry else str(g)


def piecewise_polynomial(name: str) -> bool:
    """Whether a registered function is a polynomial on each piece of the line (relu,
    step, identity): its moments against a normal density are then closed forms."""
    t = sp.Symbol("t", real=True)
    form = sp.piecewise_fold(FUNCTIONS[name].exact(t).rewrite(sp.Piecewise))
    pieces = form.args if isinstance(form, sp.Piecewise) else ((form, True),)
    return all(sp.sympify(e).is_polynomial(t) for e, _ in pieces)


def affine(arg: sp.Expr, r: sp.Symbol) -> tuple[sp.Rational, sp.Rational] | None:
    """``(a, b)`` with ``arg = a r + b``, both numbers and ``a`` nonzero, or None."""
    poly = sp.Poly(arg, r) if arg.is_polynomial(r) else None
    if poly is None or poly.degree() != 1:
        return None
    a, b = poly.coeff_monomial(r), poly.coeff_monomial(1)
    if not (a.is_Rational and b.is_Rational):
        return None
    return a, b


class Terms:
    """Builds the sums and checks the functions of one equation's right-hand side: the
    variables' families, the constants used as counts (gathered here), and the tags of
    the sums, numbered from ``start`` in the order they are written."""

    def __init__(self, families: dict[str, str], counts: set[str], start: int) -> None:
        self.families, self.counts, self.tag, self.depth = families, counts, start, 0

    def copies(self, build, t) -> sp.Expr:
        """``sum(n, body)``: n a whole number or a constant, the body read in the random
        variables themselves (an earlier quantity in them would leave its copies unclear)."""
        count_tree, body_tree = t.children
        count = self._count(build, count_tree)
        for tok in body_tree.scan_values(lambda v: getattr(v, "type", "") == "NAME"):
            if str(tok) in build.noisy:
                raise build._fail(tok, f"{str(tok)!r} depends on random variables; inside "
                                       "sum(n, ...) write the random variables themselves, "
                                       "so that each copy draws them afresh")
        if self.depth == len(LETTERS):
            raise build._fail(tok, f"sums nest at most {len(LETTERS)} deep")
        self.depth += 1
        body = build.expr(body_tree)
        self.depth -= 1
        if not body.free_symbols & build.randoms:
            raise InputError(f"{build.where}: sum({count}, ...) of no random variable; that "
                             f"is {count} times its body: write it so")
        self.tag += 1
        randoms = sorted(body.free_symbols & build.randoms, key=str)
        return Copies(count, body, sp.Integer(self.tag), sp.Integer(self.depth),
                      sp.Tuple(*randoms))

    def _count(self, build, tree) -> sp.Expr:
        tok = tree.children[0] if tree.children else None
        if tree.data == "number" and str(tok).isdigit() and int(str(tok)) >= 1:
            return sp.Integer(int(str(tok)))
        if tree.data == "name" and build.roles.get(str(tok)) == "constant":
            self.counts.add(str(tok))
            return sp.Symbol(str(tok), real=True)
        constants = [n for n, r in build.roles.items() if r == "constant"]
        raise InputError(f"{build.where}: sum(n, ...) counts its copies by a whole number "
                         f"of at least 1 or a constant ({', '.join(constants) or 'none'}), "
                         "written alone")

    def check_call(self, build, tok, arg: sp.Expr) -> None:
        """A function of a random variable: of one variable, named as itself, at an affine
        argument; of a normal one only a piecewise polynomial function."""
        name = str(tok)
        quantities = sorted(s.name for s in arg.free_symbols if s.name in build.noisy)
        if quantities:
            raise build._fail(tok, f"{name}(...) of {quantities[0]!r}, which depends on "
                                   "random variables; a function may read one random "
                                   "variable, by its name")
        inside = sorted((s for s in arg.free_symbols & build.randoms), key=str)
        if len(inside) > 1:
            raise build._fail(tok, f"{name}(...) of {inside[0]} and {inside[1]}; a function "
                                   "may read one random variable")
        r = inside[0]
        family = self.families[r.name]
        if affine(arg, r) is None:
            raise build._fail(tok, f"{name}(...) of {arg}; its argument must be a r + b with "
                                   f"a, b numbers, r the random variable {r}")
        if family == "uniform" or (family == "normal" and name in FUNCTIONS
                                   and not piecewise_polynomial(name)):
            allowed = [f for f in FUNCTIONS if piecewise_polynomial(f)]
            raise build._fail(tok, f"{name}(...) of the {family} variable {r}; a function of "
                                   "a normal variable may be one whose pieces are "
                                   f"polynomials ({', '.join(allowed)}), of a Bernoulli "
                                   "variable any")
