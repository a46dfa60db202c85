"""A graph as a key writes it: named quantities only, each printed by its name.

An equation's unnamed steps (``X W_1`` inside ``H_1 = relu(X W_1 + b_1)``) are written
inline: their values as the expression they compute (``forward_forms``), their adjoints
substituted into the adjoints that read them (``named_adjoints``).  What a key prints is
then one equation per named quantity, in the names the model gives.
"""

from __future__ import annotations

import sympy as sp

from derive.engine.functions import FUNCTIONS
from derive.engine.vector import apply_elementwise
from derive.feedforward.graph import (
    AsScalar,
    Graph,
    Node,
    OnesRow,
    adjoints,
    norm_symbols,
    selection_symbol,
    softmax_symbols,
    spread,
    widened,
)


class Shown(sp.MatrixSymbol):
    """A graph's matrix printed as the set's notation spells its name (W1 as W_{1})."""

    def _latex(self, printer) -> str:
        return printer._print(sp.Symbol(self.name))


class ShownBar(sp.MatrixSymbol):
    """The adjoint of a graph's matrix: its name under a bar."""

    def _latex(self, printer) -> str:
        return r"\overline{%s}" % printer._print(sp.Symbol(self.name))




class ShownScalar(sp.Symbol):
    """A scalar of the graph (a constant, a loss term), or with ``bar`` its adjoint."""

    def _latex(self, printer) -> str:
        name = self.name.removeprefix("bar_")
        core = printer._print(sp.Symbol(name))
        return r"\overline{%s}" % core if self.name.startswith("bar_") else core


class _Operator(sp.Function):
    """An operation a key writes by its name, \\operatorname{word}(a, b)."""

    WORD = ""

    def _latex(self, printer, exp=None) -> str:
        args = ", ".join(printer._print(a) for a in self.args)
        return r"\operatorname{%s}\left(%s\right)" % (self.WORD, args)


class CE(_Operator):
    """The mean cross-entropy of the rows of scores against labels."""

    nargs, WORD = 2, "CE"


class RowSoftmax(_Operator):
    """Each row of a matrix through softmax."""

    nargs, WORD = 1, "softmax"


class Masked(_Operator):
    """A matrix where a boolean mask holds, −∞ elsewhere."""

    nargs, WORD = 2, "mask"


class EntrySum(sp.Function):
    """The sum of all entries of a matrix, 1ᵀ A 1."""

    nargs = 1

    def _latex(self, printer, exp=None) -> str:
        return r"\mathbf{1}^{\top} %s \mathbf{1}" % printer.parenthesize(self.args[0], 50)


class SumSq(sp.Function):
    """‖A‖², the squared Frobenius norm."""

    nargs = 1

    def _latex(self, printer, exp=None) -> str:
        return r"\lVert %s \rVert^{2}" % printer._print(self.args[0])


def shown(graph: Graph) -> dict[sp.Expr, sp.Expr]:
    """Every node's symbol, adjoint symbol and softmax symbols, as the key prints them."""
    out: dict[sp.Expr, sp.Expr] = {}
    softmaxes = [n for n in graph.nodes.values() if n.op == "softmax_ce"]
    for node in graph.nodes.values():
        # The model's own spelling of a name (eps as epsilon, mask as M), else the name.
        name = graph.spelled.get(node.name, node.name)
        if node.shape == (1, 1):
            out[node.symbol] = ShownScalar(name)
            out[node.bar] = ShownScalar(f"bar_{name}")
        else:
            out[node.symbol] = Shown(name, *node.shape)
            out[node.bar] = ShownBar(name, *node.shape)
    for node in graph.nodes.values():  # a row's adjoint sums over the rows: 1ᵀ
        for k in node.shape if node.shape != (1, 1) else ():
            out[sp.OneMatrix(1, k)] = OnesRow("1", 1, k)
    for node in graph.nodes.values():
        if node.op == "rows":
            e = selection_symbol(graph, node)
            label = graph.spelled.get(node.args[1], node.args[1])
            out[e] = Shown(f"E_{{{label}}}", *e.shape)
    for ce in softmaxes:
        scores = graph.nodes[ce.args[0]]
        p, y = softmax_symbols(scores)
        tag = "" if len(softmaxes) == 1 else f"_{scores.name}"
        out[p], out[y] = Shown(f"P{tag}", *p.shape), Shown(f"Y{tag}", *y.shape)
    norms = normalizations(graph)
    for node in norms:
        sigma, mu = norm_symbols(node), mean_symbol(node)
        # μ and σ, tagged by the normalised quantity where two normalisations (or a node
        # the model calls mu or sigma) would share them.
        tag = "" if len(norms) == 1 and not {"mu", "sigma"} & set(graph.nodes) else \
            f"_{{{node.name}}}"
        out[sigma] = Shown(f"sigma{tag}", *sigma.shape)
        out[mu] = Shown(f"mu{tag}", *mu.shape)
    return out


def normalizations(graph: Graph) -> list[Node]:
    """The graph's normalisation nodes, in order."""
    return [n for n in graph.nodes.values() if n.op in ("normalize", "rownormalize")]


def mean_symbol(node: Node) -> sp.MatrixSymbol:
    """μ of a normalisation (its columns' means, a row; or its rows', a column): only the
    key's text reads it, in the forward form and the definition of σ."""
    return sp.MatrixSymbol(f"mu_{node.name}", *norm_symbols(node).shape)


def norm_parts(node: Node, arg: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """μ and the variance of ``node = normalize(arg)`` written out (the mean over the
    normalised axis, and the mean of the centred squares), as the question defines them."""
    rows, cols = node.shape
    mu = mean_symbol(node)
    if node.op == "normalize":
        mean = lambda t: sp.MatMul(sp.S.One / rows, sp.OneMatrix(1, rows), t)  # noqa: E731
        wide = sp.OneMatrix(rows, 1) * mu
    else:
        mean = lambda t: sp.MatMul(sp.S.One / cols, t, sp.OneMatrix(cols, 1))  # noqa: E731
        wide = mu * sp.OneMatrix(1, cols)
    return mean(arg), mean(sp.HadamardPower(sp.MatAdd(arg, -wide), 2))


def forward_forms(graph: Graph, symbols: dict | None = None) -> dict[str, sp.Expr]:
    """Each node's value in terms of named nodes (a hidden node's written out), in the
    nodes' symbols or, given ``symbols`` (``shown``), in those: built in them, a scalar sum
    keeps the order it is written in (a substitution afterwards would reorder it)."""
    forms: dict[str, sp.Expr] = {}
    symbols = symbols or {}

    def of(name: str) -> sp.Expr:
        symbol = graph.nodes[name].symbol
        return forms[name] if name in graph.hidden else symbols.get(symbol, symbol)

    # The row of ones 1ᵀ as the key prints it (safe to substitute in a matrix's form: no
    # scalar sum in it to reorder).
    ones = {k: v for k, v in symbols.items() if isinstance(k, sp.OneMatrix)}
    for name, node in graph.nodes.items():
        form = _form(node, [of(a) for a in node.args], graph, symbols)
        if node.shape == (1, 1) and isinstance(form, sp.MatrixExpr):
            form = AsScalar(form)  # u vᵀ of two rows is a number
        forms[name] = form.xreplace(ones) if ones and node.shape != (1, 1) else form
    return forms


#: Operations written as a function of their arguments.
_APPLIED = {"total": EntrySum, "transpose": sp.Transpose, "softmax": RowSoftmax,
            "masked": Masked, "softmax_ce": CE}


def _form(node: Node, args: list, graph: Graph, symbols: dict) -> sp.Expr:
    if node.op in _APPLIED:
        return _APPLIED[node.op](*args)
    if node.op in ("input", "labels", "param", "const", "mask"):
        return node.symbol
    if node.op == "matmul":
        return sp.MatMul(*args)
    if node.op in ("add", "sub"):
        a, b = args
        b = widened(b, spread(node.shape, graph.nodes[node.args[1]].shape), node.shape)
        if node.shape == (1, 1):  # as written: CE(S, y) + ..., not SymPy's order
            return sp.Add(a, b if node.op == "add" else -b, evaluate=False)
        return sp.MatAdd(a, b if node.op == "add" else -b)
    if node.op in ("hadamard", "divide"):
        a, b = args
        if node.shape == (1, 1):
            return a * b if node.op == "hadamard" else a / b
        b = widened(b, spread(node.shape, graph.nodes[node.args[1]].shape), node.shape)
        return sp.HadamardProduct(a, b if node.op == "hadamard" else sp.HadamardPower(b, -1))
    if node.op == "shift":
        return sp.MatAdd(args[0], node.coeff * sp.OneMatrix(*node.shape))
    if node.op == "mean":
        rows = graph.nodes[node.args[0]].shape[0]
        return sp.MatMul(sp.S.One / rows, sp.OneMatrix(1, rows), args[0])
    if node.op == "rowmean":
        cols = graph.nodes[node.args[0]].shape[1]
        return sp.MatMul(sp.S.One / cols, args[0], sp.OneMatrix(cols, 1))
    if node.op == "scale":
        if node.shape == (1, 1):
            return sp.Mul(node.coeff, args[0], evaluate=False)
        inner = args[0].args if isinstance(args[0], sp.MatMul) else (args[0],)
        return sp.MatMul(node.coeff, *inner)
    if node.op == "fn":
        fn = FUNCTIONS[node.fn]
        return apply_elementwise(fn, args[0]) if node.shape != (1, 1) else fn(args[0])
    if node.op in ("normalize", "rownormalize"):
        return _norm_form(node, args[0], symbols)
    if node.op == "rows":  # E A, E's rows one-hot at the labels
        return sp.MatMul(symbols.get(e := selection_symbol(graph, node), e), args[0])
    return SumSq(args[0])


def _norm_form(node: Node, arg: sp.Expr, symbols: dict) -> sp.Expr:
    """(A − 1μ) ⊘ 1σ, or (A − μ1ᵀ) ⊘ σ1ᵀ for each row."""
    sigma, mu = (symbols.get(s, s) for s in (norm_symbols(node), mean_symbol(node)))
    rows, cols = node.shape
    if node.op == "normalize":
        mu, sigma = sp.OneMatrix(rows, 1) * mu, sp.OneMatrix(rows, 1) * sigma
    else:
        mu, sigma = mu * sp.OneMatrix(1, cols), sigma * sp.OneMatrix(1, cols)
    return sp.HadamardProduct(sp.MatAdd(arg, -mu), sp.HadamardPower(sigma, -1))


def named_adjoints(graph: Graph) -> dict[str, sp.Expr]:
    """The adjoints of the named nodes, from the loss back, each in named nodes' adjoints
    and forward values (hidden ones inlined)."""
    forms = forward_forms(graph)
    values = {graph.nodes[h].symbol: forms[h] for h in graph.hidden}
    # The loss's adjoint is 1: a key writes P − Y, not L̄ (P − Y).
    inline: dict[sp.Expr, sp.Expr] = {graph.loss.bar: sp.S.One}
    out = {}
    for name, formula in adjoints(graph).items():
        formula = _tidy(formula.xreplace(inline).xreplace(values))
        if name in graph.hidden:
            inline[graph.nodes[name].bar] = formula
        else:
            out[name] = formula
    return out


def _tidy(e: sp.Expr) -> sp.Expr:
    """What inlining leaves: 1 · A is A, an entrywise product with the all-ones matrix,
    1 ⊙ A, is A; a transpose is carried into what it transposes ((Kᵀ)ᵀ is K, (A B)ᵀ is
    Bᵀ Aᵀ), and a product of products is one product."""
    e = e.replace(lambda x: isinstance(x, sp.Transpose), lambda x: x.doit())
    e = e.replace(lambda x: isinstance(x, sp.MatMul) and any(isinstance(a, sp.MatMul)
                                                             for a in x.args),
                  lambda x: sp.MatMul(*_flat(x, sp.MatMul)))
    e = e.replace(lambda x: isinstance(x, sp.HadamardProduct) and any(
        isinstance(a, sp.HadamardProduct) for a in x.args),
        lambda x: sp.HadamardProduct(*_flat(x, sp.HadamardProduct)))
    e = e.replace(lambda x: isinstance(x, sp.MatMul) and x.args[0] == 1 and len(x.args) > 1,
                  lambda x: _joined(sp.MatMul, list(x.args[1:])))
    return e.replace(
        lambda x: isinstance(x, sp.HadamardProduct)
        and any(isinstance(a, sp.OneMatrix) for a in x.args),
        lambda x: _joined(sp.HadamardProduct,
                          [a for a in x.args if not isinstance(a, sp.OneMatrix)]))


def _flat(x: sp.Expr, product) -> list:
    """The factors of nested ``product``s, in order."""
    return [f for a in x.args for f in (_flat(a, product) if isinstance(a, product) else [a])]


def _joined(product, factors: list) -> sp.Expr:
    return factors[0] if len(factors) == 1 else product(*factors)
