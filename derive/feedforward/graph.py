"""A feed-forward graph over matrices and its adjoints, derived by reverse-mode rules.

Nodes are named and come in order; each is an operation on earlier nodes.  Rows are
examples: an input ``X`` is N×D, a layer ``X W + b`` adds the row ``b`` (1×H) to every row
of ``X W``.  A node of shape 1×1 is a scalar.  The last node is the loss, a scalar.

The rules carry the adjoint Ḡ of a node (∂L/∂node, the node's shape) back to its arguments:

    C = A B              Ā += Ḡ Bᵀ                 B̄ += Aᵀ Ḡ
    C = A + B            Ā += Ḡ                    B̄ += Ḡ   (B of A's shape)
    C = A + b            Ā += Ḡ                    b̄ += 1ᵀ Ḡ  (b a row, added to every row;
                                                        Ḡ 1 for a column, to every column)
    C = A − B            Ā += Ḡ                    B̄ −= Ḡ   (or −1ᵀ Ḡ for a row)
    C = A ∘ B            Ā += Ḡ ∘ B                B̄ += Ḡ ∘ A  (entrywise; B̄ summed 1ᵀ for a row)
    C = A ⊘ B            Ā += Ḡ ⊘ B                B̄ −= Ḡ ∘ A ⊘ B²  (likewise)
    C = A + c            Ā += Ḡ                    (c a number or constants, every entry)
    m = mean(A)          Ā += (1/N) 1 m̄            (the mean of A's N rows, a row)
    m = rowmean(A)       Ā += (1/n) m̄ 1ᵀ           (each row's mean, a column)
    s = sum(A)           Ā += s̄ 1 1ᵀ               (all entries summed, a scalar)
    C = c A              Ā += c Ḡ                  (c a number or constants' product)
    C = f(A)             Ā += Ḡ ∘ f'(A)            (f' from the registry, in forward terms)
    L = CE(S, y)         S̄ += L̄ (P − Y) / N        (P: S's rows through softmax; Y: y one-hot)
    R = ‖A‖²             Ā += 2 R̄ A
    C = Aᵀ               Ā += Ḡᵀ
    P = softmax(A)       Ā += P ∘ (Ḡ − (Ḡ ∘ P) 1 1ᵀ)   (each row through softmax: a row's
                         Jacobian is diag(p) − p pᵀ)
    C = mask(A, M)       Ā += Ḡ ∘ M                (M boolean: A where M holds, −∞ elsewhere)
    C = rows(A, k)       Ā += Eᵀ Ḡ                 (C = E A, E's rows one-hot at the labels k)
    Â = norm(A, ε)       Ā += (1/N) (N Ḡ − 1 1ᵀḠ − Â ∘ 1 1ᵀ(Ḡ ∘ Â)) ⊘ 1σ
                         (each column of A centred and scaled over its N rows, σ its
                         standard deviation with ε; ``rownorm`` the same for each row)

The normalisation's rule is the chain through its mean and variance with the terms
collected, using that each column of Â sums to zero; the checks compare it with that chain
(``Graph.expanded``) as well as with differences.

Each rule gives its term in the form a key writes it: the softmax rule is (P − Y)/N, not
the quotient of exponentials the chain rule would give entry by entry.  SymPy's matrix
expressions only hold the results (their own derivatives are not safe, FINDINGS); every
formula is checked numerically against differences of the forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce

import sympy as sp

from derive.engine.functions import FUNCTIONS
from derive.engine.vector import apply_elementwise
from derive.errors import InputError

Shape = tuple[sp.Expr, sp.Expr]
SCALAR: Shape = (sp.S.One, sp.S.One)


@dataclass(frozen=True)
class Node:
    """One named node: its operation, the names of its arguments, its shape, for ``fn``
    the registered function's name and for ``scale`` its factor."""

    name: str
    op: str
    args: tuple[str, ...]
    shape: Shape
    fn: str = ""
    #: ``scale``'s factor: a number, or a product of constants' symbols and numbers.
    coeff: sp.Expr = sp.S.One

    @property
    def symbol(self) -> sp.Expr:
        """The node as SymPy holds it: a Symbol if scalar, else a MatrixSymbol."""
        if self.shape == SCALAR:
            return sp.Symbol(self.name)
        return sp.MatrixSymbol(self.name, *self.shape)

    @property
    def bar(self) -> sp.Expr:
        """The symbol of its adjoint ∂L/∂(node), of the node's shape."""
        if self.shape == SCALAR:
            return sp.Symbol(f"bar_{self.name}")
        return sp.MatrixSymbol(f"bar_{self.name}", *self.shape)


class OnesRow(sp.MatrixSymbol):
    """The row of ones 1ᵀ (1×n) as a symbol: 1ᵀ Ḡ sums Ḡ's rows, and 1 1ᵀ Ḡ stays that
    (SymPy would merge two of its ``OneMatrix`` into one square matrix of ones)."""

    def _latex(self, printer) -> str:
        return r"\mathbf{1}^{\top}"


class AsScalar(sp.Function):
    """A 1×1 matrix expression as the number it holds (u vᵀ of two rows), so that it can
    stand where a graph's scalar node does."""

    nargs = 1
    is_commutative = True

    def _latex(self, printer, exp=None) -> str:
        inner = printer._print(self.args[0])
        return inner if exp is None else r"\left(%s\right)^{%s}" % (inner, exp)


def ones_row(n: sp.Expr) -> OnesRow:
    """1ᵀ of length ``n``."""
    return OnesRow("1", sp.S.One, n)


class Graph:
    """A feed-forward graph, built node by node; shapes are checked as nodes are added."""

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        #: Nodes no equation names (``X @ W1`` inside ``H1 = relu(X @ W1 + b1)``): a key
        #: writes their values and adjoints inline (``derive.feedforward.display``).
        self.hidden: set[str] = set()
        #: Leaves the key gives the gradient in besides the parameters (an input ``x`` of a
        #: layer whose backward pass is asked for).
        self.wrt: list[str] = []
        #: The declared sizes by name (a factor may read one: 1/sqrt(d)).
        self.sizes: dict[str, sp.Symbol] = {}
        #: How a key spells a name the model uses (eps as epsilon, mask as M).
        self.spelled: dict[str, str] = {}

    # -- leaves ---------------------------------------------------------------------------
    def input(self, name: str, rows, cols) -> Node:
        """Data the loss is not differentiated in (``X``: one example per row)."""
        return self._add(Node(name, "input", (), _shape(rows, cols)))

    def labels(self, name: str, rows) -> Node:
        """Integer class labels, one per row (``y``); enter only a cross-entropy."""
        return self._add(Node(name, "labels", (), (sp.sympify(rows), sp.S.One)))

    def param(self, name: str, rows, cols) -> Node:
        """A parameter the key differentiates in (``W``, or a bias row ``b`` of 1×H)."""
        return self._add(Node(name, "param", (), _shape(rows, cols)))

    def mask(self, name: str, rows, cols) -> Node:
        """A boolean matrix (true where an entry is kept), the loss not differentiated in
        it: ``mask(A, M)`` sets A's other entries to −∞."""
        return self._add(Node(name, "mask", (), _shape(rows, cols)))

    def const(self, name: str) -> Node:
        """A scalar constant (a penalty's weight ``reg``)."""
        return self._add(Node(name, "const", (), SCALAR))

    # -- operations -----------------------------------------------------------------------
    def matmul(self, name: str, a: str, b: str) -> Node:
        (r, k), (k2, c) = self._shape(a), self._shape(b)
        if sp.simplify(k - k2) != 0:
            raise InputError(f"{name} = {a} {b}: {a} has {k} columns, {b} has {k2} rows")
        return self._add(Node(name, "matmul", (a, b), (r, c)))

    def add(self, name: str, a: str, b: str) -> Node:
        """``a + b``: equal shapes, or ``b`` a row added to every row of ``a``."""
        return self._add(Node(name, "add", (a, b), self._sum_shape(name, "+", a, b)))

    def sub(self, name: str, a: str, b: str) -> Node:
        """``a − b``: equal shapes, or ``b`` a row taken from every row of ``a``."""
        return self._add(Node(name, "sub", (a, b), self._sum_shape(name, "-", a, b)))

    def hadamard(self, name: str, a: str, b: str) -> Node:
        """``a ∘ b``, entry by entry (for scalars, their product); ``b`` may be a row,
        multiplying every row of ``a``."""
        if self._shape(a)[0] == 1 and self._shape(b)[0] != 1:  # the row second: a ∘ b = b ∘ a
            a, b = b, a
        return self._add(Node(name, "hadamard", (a, b), self._entrywise(name, "*", a, b)))

    def divide(self, name: str, a: str, b: str) -> Node:
        """``a ⊘ b``, entry by entry; ``b`` may be a row, dividing every row of ``a``."""
        return self._add(Node(name, "divide", (a, b), self._entrywise(name, "/", a, b)))

    def shift(self, name: str, coeff: sp.Expr, a: str) -> Node:
        """``a + coeff`` in every entry, ``coeff`` a number or a factor of constants."""
        self._constant_factor(name, coeff)
        return self._add(Node(name, "shift", (a,), self._shape(a), coeff=sp.sympify(coeff)))

    def mean(self, name: str, a: str) -> Node:
        """The mean of the rows of ``a``: a row (1×n)."""
        return self._add(Node(name, "mean", (a,), (sp.S.One, self._shape(a)[1])))

    def rowmean(self, name: str, a: str) -> Node:
        """The mean of each row's entries: a column (N×1)."""
        return self._add(Node(name, "rowmean", (a,), (self._shape(a)[0], sp.S.One)))

    def total(self, name: str, a: str) -> Node:
        """The sum of all entries of ``a``: a scalar."""
        return self._add(Node(name, "total", (a,), SCALAR))

    def _entrywise(self, name: str, op: str, a: str, b: str) -> Shape:
        sa, sb = self._shape(a), self._shape(b)
        if spread(sa, sb) is None:
            what = "product" if op == "*" else "quotient"
            raise InputError(f"{name} = {a} {op} {b}: an entrywise {what} needs equal shapes, "
                             f"a row or a column, not {_show(sa)} and {_show(sb)} (a matrix "
                             "product is @)")
        return sa

    def scale(self, name: str, coeff: sp.Expr | str, a: str) -> Node:
        """``coeff a``: ``coeff`` a number, a constant's name, or a product of constants'
        symbols and numbers (the loss is not differentiated in constants)."""
        if isinstance(coeff, str):
            self._shape(coeff)
            if self.nodes[coeff].op != "const":
                raise InputError(f"{name} = {coeff} {a}: {coeff} is not a constant (declare "
                                 "it so)")
            coeff = self.nodes[coeff].symbol
        self._constant_factor(name, coeff)
        return self._add(Node(name, "scale", (a,), self._shape(a), coeff=sp.sympify(coeff)))

    def _constant_factor(self, name: str, coeff: sp.Expr) -> None:
        consts = {n.symbol for n in self.nodes.values() if n.op == "const"}
        sizes = {d for n in self.nodes.values() for d in n.shape if isinstance(d, sp.Symbol)}
        if not sp.sympify(coeff).free_symbols <= consts | sizes:
            raise InputError(f"{name}: the factor {coeff} reads something that is not a "
                             "constant")

    def _sum_shape(self, name: str, op: str, a: str, b: str) -> Shape:
        sa, sb = self._shape(a), self._shape(b)
        if spread(sa, sb) is None:
            raise InputError(f"{name} = {a} {op} {b}: shapes {_show(sa)} and {_show(sb)} do "
                             "not add (equal shapes, a row 1×n added to every row, or a "
                             "column N×1 to every column)")
        return sa

    def fn(self, name: str, fn: str, a: str) -> Node:
        """A registered function applied to every entry of ``a``."""
        if fn not in FUNCTIONS:
            raise InputError(f"{name} = {fn}({a}): {fn!r} is not a registered function; "
                             f"known: {', '.join(sorted(FUNCTIONS))}")
        return self._add(Node(name, "fn", (a,), self._shape(a), fn))

    def softmax_ce(self, name: str, scores: str, labels: str) -> Node:
        """The mean over rows of −log softmax(scores row)[label]: a scalar."""
        if self.nodes[labels].op != "labels":
            raise InputError(f"{name}: {labels} is not a node of labels")
        if self._shape(scores)[0] != self._shape(labels)[0]:
            raise InputError(f"{name}: {scores} and {labels} have different numbers of rows")
        return self._add(Node(name, "softmax_ce", (scores, labels), SCALAR))

    def sumsq(self, name: str, a: str) -> Node:
        """‖a‖², the sum of the squares of its entries: a scalar."""
        return self._add(Node(name, "sumsq", (a,), SCALAR))

    def transpose(self, name: str, a: str) -> Node:
        """``aᵀ``."""
        rows, cols = self._shape(a)
        return self._add(Node(name, "transpose", (a,), (cols, rows)))

    def rows(self, name: str, a: str, labels: str) -> Node:
        """The rows of ``a`` that the integer labels pick, in their order (a row may be
        picked twice): E ``a``, with E's row k one-hot at label k."""
        if self.nodes[labels].op != "labels":
            raise InputError(f"{name}: {labels} is not declared among the labels")
        return self._add(Node(name, "rows", (a, labels),
                              (self._shape(labels)[0], self._shape(a)[1])))

    def softmax(self, name: str, a: str) -> Node:
        """Each row of ``a`` through softmax."""
        return self._add(Node(name, "softmax", (a,), self._shape(a)))

    def masked(self, name: str, a: str, mask: str) -> Node:
        """``a`` where the mask holds, −∞ elsewhere (a softmax then gives those entries
        weight 0)."""
        if self.nodes[mask].op != "mask":
            raise InputError(f"{name}: {mask} is not declared among the masks")
        if self._shape(mask) != self._shape(a):
            raise InputError(f"{name}: the mask {mask} is {_show(self._shape(mask))}, "
                             f"{a} is {_show(self._shape(a))}")
        return self._add(Node(name, "masked", (a, mask), self._shape(a)))

    def normalize(self, name: str, a: str, eps: sp.Expr, over: str = "rows") -> Node:
        """``a`` with each column centred and scaled over the rows (``over="rows"``: batch
        normalisation) or each row over its columns (``"columns"``: layer normalisation),
        ``eps`` (numbers and constants) added to the variance."""
        self._constant_factor(name, eps)
        op = "normalize" if over == "rows" else "rownormalize"
        return self._add(Node(name, op, (a,), self._shape(a), coeff=sp.sympify(eps)))

    def expanded(self) -> Graph:
        """The same graph with every normalisation written as its parts (mean, centring,
        variance, square root, quotient): the chain rule through them is an independent
        derivation of the normalisation's rule."""
        g = Graph()
        g.hidden, g.wrt, g.sizes = set(self.hidden), list(self.wrt), dict(self.sizes)
        g.spelled = dict(self.spelled)
        for node in self.nodes.values():
            if node.op not in ("normalize", "rownormalize"):
                g.nodes[node.name] = node
                continue
            (a,), n, mean = node.args, node.name, g.mean if node.op == "normalize" else g.rowmean
            mean(f"{n}__mu", a)
            g.sub(f"{n}__c", a, f"{n}__mu")
            g.hadamard(f"{n}__c2", f"{n}__c", f"{n}__c")
            mean(f"{n}__v", f"{n}__c2")
            g.shift(f"{n}__ve", node.coeff, f"{n}__v")
            g.fn(f"{n}__s", "sqrt", f"{n}__ve")
            g.divide(n, f"{n}__c", f"{n}__s")
        return g

    # -- reading --------------------------------------------------------------------------
    @property
    def loss(self) -> Node:
        """The last node, which must be a scalar."""
        last = list(self.nodes.values())[-1]
        if last.shape != SCALAR:
            raise InputError(f"the last node {last.name} is the loss and must be a scalar, "
                             f"not {_show(last.shape)}")
        return last

    def params(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.op == "param"]

    def targets(self) -> list[Node]:
        """What the key gives the loss's gradient in: the inputs named in ``wrt``, then the
        parameters, each in the order declared."""
        wrt = [n for n in self.nodes.values() if n.op == "input" and n.name in self.wrt]
        return wrt + self.params()

    def _shape(self, name: str) -> Shape:
        if name not in self.nodes:
            raise InputError(f"{name!r} is used before it is defined")
        return self.nodes[name].shape

    def _add(self, node: Node) -> Node:
        if node.name in self.nodes:
            raise InputError(f"{node.name!r} is defined twice")
        for a in node.args:
            self._shape(a)
        self.nodes[node.name] = node
        return node


def adjoints(graph: Graph) -> dict[str, sp.Expr]:
    """Every differentiable node's adjoint as the sum of its consumers' rule terms, in the
    consumers' adjoint symbols (``Node.bar``) and forward quantities: the chain-rule form a
    key writes, one equation per node, from the loss (whose adjoint is 1) back to the
    parameters, so each reads only adjoints before it."""
    loss = graph.loss
    terms: dict[str, list[sp.Expr]] = {n: [] for n in graph.nodes}
    for node in reversed(list(graph.nodes.values())):
        for arg, term in _rule(graph, node):
            terms[arg].append(term)
    out = {loss.name: sp.S.One}
    for name in reversed(graph.nodes):  # each after every node it reads
        # Only what _keep lets through has terms (no input outside ``wrt``, no constant).
        if name != loss.name and terms[name]:
            out[name] = reduce(lambda a, b: a + b, terms[name])
    return out


def _rule(graph: Graph, node: Node) -> list[tuple[str, sp.Expr]]:
    """The terms ``node``'s rule gives each differentiable argument."""
    g, args = node.bar, [graph.nodes[a] for a in node.args]
    if node.op == "matmul":
        a, b = args
        return _keep(graph, [(a, g * b.symbol.T), (b, a.symbol.T * g)])
    if node.op in ("add", "sub"):
        a, b = args
        tb = collected(g, spread(node.shape, b.shape), node.shape)
        return _keep(graph, [(a, g), (b, tb if node.op == "add" else -tb)])
    if node.op in ("hadamard", "divide"):
        return _keep(graph, _entrywise_rule(node, g, *args))
    if node.op == "shift":
        return _keep(graph, [(args[0], g)])
    if node.op in ("mean", "rowmean"):
        (a,) = args
        rows, cols = a.shape
        term = (sp.MatMul(sp.S.One / rows, sp.OneMatrix(rows, 1), g) if node.op == "mean"
                else sp.MatMul(sp.S.One / cols, g, sp.OneMatrix(1, cols)))
        return _keep(graph, [(a, term)])
    if node.op == "total":
        (a,) = args
        return _keep(graph, [(a, g * sp.OneMatrix(*a.shape))])
    if node.op == "scale":
        (a,) = args
        return _keep(graph, [(a, node.coeff * g)])
    if node.op == "fn":
        (a,) = args
        d = _fprime(node, a)
        return _keep(graph, [(a, g * d if node.shape == SCALAR else sp.HadamardProduct(g, d))])
    if node.op == "softmax_ce":
        s, _ = args
        p, y = softmax_symbols(s)
        # P − Y as written (SymPy's canonical order would print −Y + P).
        return _keep(graph, [(s, sp.MatMul(g / s.shape[0], sp.MatAdd(p, -y)))])
    if node.op == "sumsq":
        (a,) = args
        return _keep(graph, [(a, 2 * g * a.symbol)])
    return _keep(graph, _structured_rule(node, g, args))


def _structured_rule(node: Node, g: sp.Expr, args: list[Node]) -> list[tuple[Node, sp.Expr]]:
    """The rules of the operations that act on a whole row or column, and of the
    transpose and the mask."""
    if node.op in ("normalize", "rownormalize"):
        return [(args[0], _normalize_rule(node, g))]
    if node.op == "transpose":
        return [(args[0], g if node.shape == SCALAR else sp.Transpose(g))]
    if node.op == "softmax":
        p, cols = node.symbol, node.shape[1]
        spread_sum = sp.MatMul(sp.HadamardProduct(g, p), sp.OneMatrix(cols, 1), ones_row(cols))
        return [(args[0], sp.HadamardProduct(p, sp.MatAdd(g, -spread_sum)))]
    if node.op == "masked":
        a, m = args
        return [(a, sp.HadamardProduct(g, m.symbol))]
    if node.op == "rows":  # each row of Ḡ goes back to the row it was picked from
        return [(args[0], sp.MatMul(sp.Transpose(selection_symbol(None, node, args[0])), g))]
    return []


def selection_symbol(graph: Graph | None, node: Node, source: Node | None = None
                     ) -> sp.MatrixSymbol:
    """E of ``node = rows(A, labels)``: K×V, row k one-hot at label k (named after the
    labels, ``E_outside``)."""
    source = source or graph.nodes[node.args[0]]
    return sp.MatrixSymbol(f"E_{node.args[1]}", node.shape[0], source.shape[0])


def _normalize_rule(node: Node, g: sp.Expr) -> sp.Expr:
    """Ā of Â = norm(A): (1/n) (n Ḡ − S(Ḡ) − Â ∘ S(Ḡ ∘ Â)) ⊘ σ spread, with S the sum
    over the normalised axis spread back over it (1 1ᵀ over rows, · 1 1ᵀ over columns)."""
    rows, cols = node.shape
    sigma = norm_symbols(node)
    if node.op == "normalize":
        n, total = rows, lambda t: sp.MatMul(sp.OneMatrix(rows, 1), ones_row(rows), t)
        wide = sp.OneMatrix(rows, 1) * sigma
    else:
        n, total = cols, lambda t: sp.MatMul(t, sp.OneMatrix(cols, 1), ones_row(cols))
        wide = sigma * ones_row(cols)
    xh = node.symbol
    inner = sp.MatAdd(sp.MatMul(n, g), sp.MatMul(-1, total(g)),
                      sp.MatMul(-1, sp.HadamardProduct(xh, total(sp.HadamardProduct(g, xh)))))
    return sp.MatMul(sp.S.One / n, sp.HadamardProduct(inner, sp.HadamardPower(wide, -1)))


def norm_symbols(node: Node) -> sp.MatrixSymbol:
    """σ of a normalisation: its columns' standard deviations with ε (a row), or its rows'
    (a column), named after the node (``sigma_Xh``)."""
    rows, cols = node.shape
    shape = (sp.S.One, cols) if node.op == "normalize" else (rows, sp.S.One)
    return sp.MatrixSymbol(f"sigma_{node.name}", *shape)


def _entrywise_rule(node: Node, g: sp.Expr, a: Node, b: Node) -> list[tuple[Node, sp.Expr]]:
    """The terms of ``a ∘ b`` or ``a ⊘ b`` (``b`` equal in shape, or a row: its term is then
    summed over the rows, 1ᵀ(...))."""
    if node.shape == SCALAR:
        if node.op == "hadamard":
            return [(a, g * b.symbol), (b, g * a.symbol)]
        return [(a, g / b.symbol), (b, -g * a.symbol / b.symbol**2)]
    how = spread(node.shape, b.shape)
    wide = widened(b.symbol, how, node.shape)
    if node.op == "hadamard":
        ta, tb = sp.HadamardProduct(g, wide), sp.HadamardProduct(g, a.symbol)
    else:
        ta = sp.HadamardProduct(g, sp.HadamardPower(wide, -1))
        tb = -sp.HadamardProduct(g, a.symbol, sp.HadamardPower(wide, -2))
    return [(a, ta), (b, collected(tb, how, node.shape))]


def spread(shape: Shape, of: Shape) -> str | None:
    """How a value of shape ``of`` fills ``shape`` in a sum or an entrywise product:
    "same", "row" (1×n, in every row), "column" (N×1, in every column), or None."""
    if of == shape:
        return "same"
    if of[0] == 1 and of[1] == shape[1]:
        return "row"
    if of[1] == 1 and of[0] == shape[0]:
        return "column"
    return None


def widened(v: sp.Expr, how: str | None, shape: Shape) -> sp.Expr:
    """``v`` spread over ``shape``: a row as 1 v, a column as v 1ᵀ."""
    if how == "row":
        return sp.OneMatrix(shape[0], 1) * v
    if how == "column":
        return v * sp.OneMatrix(1, shape[1])
    return v


def collected(t: sp.Expr, how: str | None, shape: Shape) -> sp.Expr:
    """A term for the spread value, summed back to its own shape: 1ᵀ t for a row, t 1
    for a column."""
    if how == "row":
        return sp.OneMatrix(1, shape[0]) * t
    if how == "column":
        return t * sp.OneMatrix(shape[1], 1)
    return t


def softmax_symbols(scores: Node) -> tuple[sp.MatrixSymbol, sp.MatrixSymbol]:
    """P, the rows of ``scores`` through softmax, and Y, the labels one-hot: named after the
    scores (``P_S``, ``Y_S``) so that two cross-entropies do not share them."""
    return (sp.MatrixSymbol(f"P_{scores.name}", *scores.shape),
            sp.MatrixSymbol(f"Y_{scores.name}", *scores.shape))


def _fprime(node: Node, arg: Node) -> sp.MatrixExpr:
    """f'(A) of ``node = f(A)``, entrywise, in forward terms (u = f(z) is the node); of a
    scalar, f'(a) itself."""
    u, z = sp.symbols("u z")
    d = FUNCTIONS[node.fn].derivative(u, z)
    apply = (lambda f, x: f(x)) if node.shape == SCALAR else apply_elementwise
    if d.free_symbols <= {z}:
        return apply(sp.Lambda(z, d), arg.symbol)
    if d.free_symbols <= {u}:
        return apply(sp.Lambda(u, d), node.symbol)
    raise InputError(f"{node.name}: the derivative of {node.fn} reads both its argument and "
                     "its value, which an entrywise formula of one matrix cannot hold")


def _keep(graph: Graph, pairs: list[tuple[Node, sp.Expr]]) -> list[tuple[str, sp.Expr]]:
    # Inputs (unless named in ``wrt``), labels and constants get no adjoint: the loss is
    # not differentiated in them.
    return [(n.name, t) for n, t in pairs if n.op not in ("input", "labels", "const", "mask")
            or (n.op == "input" and n.name in graph.wrt)]


def _shape(rows, cols) -> Shape:
    return (sp.sympify(rows), sp.sympify(cols))


def _show(shape: Shape) -> str:
    return f"{shape[0]}×{shape[1]}"
