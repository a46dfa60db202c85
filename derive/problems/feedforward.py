"""A feed-forward network defined as a graph over matrices (``kind = "graph"``).

The key derives, from the loss back, the adjoint of every quantity the equations name and
the gradient of every parameter, in matrix notation with shapes (``derive.feedforward``).
Each gradient is checked at fixed random data for three seeds: its printed formula,
evaluated on the data, against a complex step and a central difference through the
network's forward pass, entry by entry.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import sympy as sp

from derive import inputs
from derive.errors import InputError
from derive.feedforward import Graph, numeric
from derive.feedforward import display as shown_as
from derive.feedforward.graph import norm_symbols as graph_norm_symbol
from derive.feedforward.graph import selection_symbol as graph_selection
from derive.feedforward.graph import spread
from derive.problems import feedforward_ce as second_order
from derive.problems.base import Problem, Result
from derive.verify import Claim, rel_error, routes
from derive.verify.gradcheck import METHODS

#: Each declared size's value in the checks, in the order the sizes are declared.
CHECK_SIZES = (5, 4, 3, 6, 2, 7)
SEEDS = (11, 12, 13)
#: Complex step and central difference, with the tolerances every gradient check uses.
TOLERANCES = {m: METHODS[m] for m in ("complex step", "central difference")}
#: The third route where a rule collects a chain (a normalisation): the chain itself, in
#: the same floating point, so it agrees to rounding.
CHAIN = "chain rule through its parts"
CHAIN_TOL = METHODS["complex step"]


class GraphProblem(Problem):
    """Backpropagation through a feed-forward network given as equations over matrices."""

    GRAPH: ClassVar[Graph]
    #: Leaves ``derive eval`` fills when the input leaves them out, with the value of every
    #: entry (``dout = 1``: the gradient of the sum of the outputs).
    OPTIONAL: ClassVar[dict[str, float]] = {}
    #: The computed quantities ``derive eval`` returns in place of the loss.
    OUTPUTS: ClassVar[tuple[str, ...]] = ()
    #: The scores of a cross-entropy whose Hessian (and log-sum-exp shift) the key
    #: derives (``derive.problems.feedforward_ce``), or "".
    HESSIAN: ClassVar[str] = ""
    #: (input key, model): derive eval hands an input holding the key to the set's other
    #: model (``ALTERNATIVE_CLASS``, set by the set), or None.
    ALTERNATIVE: ClassVar[tuple[str, str] | None] = None
    TEMPLATE: ClassVar[str | None] = "graph"
    LABELS = ("backward", "gradients")
    NOUN: ClassVar[str] = "network"

    # -- derivation ---------------------------------------------------------------------------
    @cached_property
    def adjoints(self) -> dict[str, sp.Expr]:
        """The named quantities' adjoints from the loss back (the loss's own is left out)."""
        named = shown_as.named_adjoints(self.GRAPH)
        named.pop(self.GRAPH.loss.name)
        return named

    def derive(self) -> dict[str, Result]:
        """Each named quantity's adjoint, in the names the key prints (W1 as W_1)."""
        nodes = self.GRAPH.nodes
        out = {f"{n}_bar": Result(f"{n}_bar", self._show(e), self._show(nodes[n].bar))
               for n, e in self.adjoints.items()}
        return out | (second_order.results(self) if self.HESSIAN else {})

    # -- claims -------------------------------------------------------------------------------
    def claims(self) -> Iterator[Claim]:
        sizes = self.check_sizes()
        text = ", ".join(f"{k} = {v}" for k, v in sizes.items())
        text += f"; seeds {', '.join(map(str, SEEDS))}"
        errors = self._errors(sizes)
        through = self._through_rules()
        chain = self._chain_errors(sizes) if through else {}
        for name in self.shown_order():
            for method, tol in TOLERANCES.items():
                yield Claim.measured(f"{name}_bar", f"{method} on the forward pass", text,
                                     errors[name, method], tol)
            if name in through:
                yield Claim.measured(f"{name}_bar", CHAIN, text, chain[name], CHAIN_TOL)
        if self.HESSIAN:
            yield from second_order.claims(self)

    def _through_rules(self) -> set[str]:
        """The named quantities whose adjoint passes through a normalisation's rule: what
        a normalisation reads, and what that reads, back to the leaves."""
        nodes, out = self.GRAPH.nodes, set()
        stack = [a for n in nodes.values() if n.op in ("normalize", "rownormalize")
                 for a in n.args]
        while stack:
            name = stack.pop()
            if name not in out:
                out.add(name)
                stack.extend(nodes[name].args)
        return out & set(self.adjoints)

    def _chain_errors(self, sizes: dict[str, int]) -> dict[str, float]:
        """Each formula's worst error over the seeds against the chain rule through the
        parts of every normalisation (its mean, variance and quotient, each by its own
        rule), evaluated on the same data."""
        expanded, worst = self.GRAPH.expanded(), {}
        for seed in SEEDS:
            given = self.data(sizes, np.random.default_rng(seed))
            derived = self.evaluated(given, sizes)
            chained = numeric.gradients(expanded, given)
            for name in self.adjoints:
                err = rel_error(derived[name], chained[name])
                worst[name] = max(worst.get(name, 0.0), err)
        return worst

    def shown_order(self) -> list[str]:
        """The named quantities in the key's order: from the loss back, then the
        parameters as declared."""
        targets = [p.name for p in self.GRAPH.targets()]
        return [n for n in self.adjoints if n not in targets] + targets

    def check_sizes(self) -> dict[str, int]:
        """The declared sizes' values in the checks (N = 5, D = 4, ...)."""
        symbols = sorted({d for n in self.GRAPH.nodes.values() for d in n.shape
                          if isinstance(d, sp.Symbol)}, key=self._declared)
        return dict(zip(map(str, symbols), CHECK_SIZES, strict=False))

    def _declared(self, s: sp.Symbol) -> int:
        order = list(self.TABLE.get("sizes", []))
        return order.index(s.name) if s.name in order else len(order)

    def _errors(self, sizes: dict[str, int]) -> dict[tuple[str, str], float]:
        """Each claim's worst error over the seeds.  A central difference errs in absolute
        terms, on the loss's scale, so it judges a claim against the largest entry of its
        kind in the case (the parameters' gradients, or the other adjoints), as every
        gradient check does (``Reading the evidence``); the complex step, itself."""
        worst: dict[tuple[str, str], float] = {}
        params = {p.name for p in self.GRAPH.targets()}
        for seed in SEEDS:
            given = self.data(sizes, np.random.default_rng(seed))
            derived = self.evaluated(given, sizes)
            for method in TOLERANCES:
                refs = {n: self._reference(given, n, method) for n in self.adjoints}
                largest = {kind: max(float(np.max(np.abs(r))) for n, r in refs.items()
                                     if (n in params) == kind) for kind in (True, False)
                           if any((n in params) == kind for n in refs)}
                for name, ref in refs.items():
                    scale = largest[name in params] if method == "central difference" else None
                    err = rel_error(derived[name], ref, scale=scale)
                    worst[name, method] = max(worst.get((name, method), 0.0), err)
        return worst

    def data(self, sizes: dict[str, int], rng: np.random.Generator) -> dict[str, Any]:
        """Random arrays for every leaf: entries of inputs and parameters from N(0, 1),
        labels uniform over the columns of the scores they index, constants in [0.1, 1]."""
        given: dict[str, Any] = {}
        for name, node in self.GRAPH.nodes.items():
            dims = tuple(int(d) if d.is_Integer else sizes[str(d)] for d in node.shape)
            if node.op in ("input", "param"):
                given[name] = rng.normal(size=dims)
            elif node.op == "labels":
                given[name] = rng.integers(0, self._classes(name, sizes), size=dims[0])
            elif node.op == "const":
                given[name] = float(rng.uniform(0.1, 1.0))
            elif node.op == "mask":  # about a third masked; every row keeps an entry
                keep = rng.random(dims) < 0.7
                keep[np.arange(dims[0]), np.arange(dims[0]) % dims[1]] = True
                given[name] = keep
        return given

    def _classes(self, labels: str, sizes: dict[str, int]) -> int:
        for node in self.GRAPH.nodes.values():
            if node.args[1:] == (labels,) and node.op in ("softmax_ce", "rows"):
                # A cross-entropy's scores have a column per class; rows picks a row.
                read = self.GRAPH.nodes[node.args[0]].shape
                n = read[1] if node.op == "softmax_ce" else read[0]
                return int(n) if n.is_Integer else sizes[str(n)]
        return 2

    def evaluated(self, given: dict[str, Any], sizes: dict[str, int]) -> dict[str, np.ndarray]:
        """The key's formulas (``adjoints``, as printed) evaluated on ``given``."""
        env = numeric.environment(self.GRAPH, given)
        env[self.GRAPH.loss.bar.name] = 1.0
        out = {}
        for name, formula in self.adjoints.items():
            out[name] = env[self.GRAPH.nodes[name].bar.name] = numeric.evaluate(formula, env)
        return out

    def _reference(self, given: dict[str, Any], name: str, method: str) -> np.ndarray:
        """∂L/∂(each entry of ``name``) by ``method``: a parameter's entry moved, or a
        computed quantity's right after it is computed, in the forward pass."""
        route = routes.complex_step if method == "complex step" else routes.central_difference
        node, loss = self.GRAPH.nodes[name], self.GRAPH.loss.name
        shape = tuple(self.data_shape(node, given))
        out = np.zeros(shape)
        for idx in np.ndindex(shape):
            unit = np.zeros(shape)
            unit[idx] = 1.0

            def probe(d, unit=unit):
                if node.op == "param":
                    moved = {**given, name: np.asarray(given[name], dtype=float) + d * unit}
                    return numeric.forward(self.GRAPH, moved)[loss]
                return numeric.forward(self.GRAPH, given, {name: d * unit})[loss]

            out[idx] = route(probe)
        return out

    def data_shape(self, node, given: dict[str, Any]) -> tuple[int, ...]:
        """The shape of ``node``'s value on ``given``."""
        sizes = numeric.sizes(self.GRAPH, given)
        return tuple(int(d) if d.is_Integer else sizes[str(d)] for d in node.shape)

    # -- numbers in and out (derive eval) -----------------------------------------------------
    def eval(self, data: Any) -> dict[str, Any]:
        """The loss and every parameter's gradient on ``data`` (JSON: each leaf by its name;
        a 1×n row may be a flat list), by the key's formulas; one-line errors name a
        missing, ragged or mis-shaped array with its expected shape."""
        alternative = getattr(self, "ALTERNATIVE", None)
        if alternative and isinstance(data, dict) and alternative[0] in data:
            return self.ALTERNATIVE_CLASS().eval(data)
        g = self.GRAPH
        leaves = [n for n in g.nodes.values() if n.op in numeric.LEAVES]
        inputs.mapping(data, "input", [n.name for n in leaves if n.name not in self.OPTIONAL],
                       list(self.OPTIONAL))
        given = {n.name: _leaf(n, data[n.name]) for n in leaves if n.name in data}
        for name, fill in self.OPTIONAL.items():  # an upstream gradient of ones, say
            if name not in given:
                node = g.nodes[name]
                known = numeric.sizes(g, given, partial=True)
                dims = [known[str(d)] if str(d) in known else int(d) for d in node.shape]
                given[name] = (fill if node.op == "const" else np.full(dims, bool(fill))
                               if node.op == "mask" else np.full(dims, float(fill)))
        sizes = numeric.sizes(g, given)
        for n in leaves:
            if n.op == "labels":
                _labels_in_range(n.name, given[n.name], self._classes(n.name, sizes))
            if n.op == "mask" and not np.all(np.any(given[n.name], axis=1)):
                row = int(np.argmin(np.any(given[n.name], axis=1)))
                raise InputError(f"input.{n.name}[{row}]: the mask keeps no entry of this "
                                 "row; a softmax needs at least one")
        loss = float(numeric.forward(g, given)[g.loss.name])
        derived = self.evaluated(given, sizes)
        grads = {p.name: _plain(derived[p.name], p) for p in g.targets()}
        values = numeric.forward(g, given) if self.OUTPUTS else {}
        out = {n: _plain(values[n], g.nodes[n]) for n in self.OUTPUTS} or {"loss": loss}
        return inputs.finite_output({**out, "grad": grads}, "the gradient")

    # -- rendering ----------------------------------------------------------------------------
    @cached_property
    def shown(self) -> dict[sp.Expr, sp.Expr]:
        return shown_as.shown(self.GRAPH)

    def question_data(self) -> dict[str, Any]:
        """The equations (each named quantity's value), the leaves with their shapes."""
        g, forms = self.GRAPH, shown_as.forward_forms(self.GRAPH, self.shown)
        computed = [n for n in g.nodes.values() if n.op not in numeric.LEAVES
                    and n.name not in g.hidden]
        return {
            "noun": self.NOUN,
            "equations": [(self._show(n.symbol), forms[n.name]) for n in computed],
            "inputs": self._leaves("input"), "params": self._leaves("param"),
            "targets": [(self._show(n.symbol), n.shape) for n in g.targets()],
            "norms": [self._norm(n, forms) for n in shown_as.normalizations(g)],
            "hessian": self._show(g.nodes[self.HESSIAN].symbol) if self.HESSIAN else None,
            "labels": self._leaves("labels"), "constants": self._leaves("const"),
            "masks": self._leaves("mask"),
            "selections": [(self._show(graph_selection(g, n)),
                            self._show(g.nodes[n.args[1]].symbol),
                            self._show(g.nodes[n.args[0]].symbol),
                            g.nodes[n.args[1]].shape[0] == 1)  # one label: one row
                           for n in g.nodes.values() if n.op == "rows"],
            "ce_rows": next((g.nodes[n.args[0]].shape[0] for n in g.nodes.values()
                             if n.op == "softmax_ce"), None),
            # The letter the question's "for any quantity" uses: one the model does not.
            "any": next(c for c in ("V", "Z", "T", "G", "Q", "R")
                        if c not in {*g.nodes, *g.sizes, *self.GRAPH.spelled.values()}),
            "ce_label": next((self._show(g.nodes[n.args[1]].symbol) for n in g.nodes.values()
                              if n.op == "softmax_ce"), None),
            "uses_softmax": any(n.op == "softmax" for n in g.nodes.values()),
            "uses_transpose": any(n.op == "transpose" for n in g.nodes.values()),
            "loss": self._show(g.loss.symbol),
            "uses_ce": any(n.op == "softmax_ce" for n in g.nodes.values()),
            "uses_fn": any(n.op == "fn" for n in g.nodes.values()),
            "uses_sumsq": any(n.op == "sumsq" for n in g.nodes.values()),
            "ones": any(isinstance(a, sp.OneMatrix) for f in forms.values()
                        for a in sp.preorder_traversal(f)),
            # How a row or a column fills a matrix, for each way the equations use.
            "spreads": sorted({how for n in g.nodes.values() if len(n.args) == 2
                               and n.op in ("add", "sub", "hadamard", "divide")
                               and (how := spread(n.shape, g.nodes[n.args[1]].shape))
                               in ("row", "column")}, reverse=True),
        }

    def _norm(self, node, forms: dict[str, sp.Expr]) -> dict[str, Any]:
        """What the question says of one normalisation: μ and σ with their definitions,
        the axis and the number of entries each statistic is taken over."""
        arg = self.GRAPH.nodes[node.args[0]]
        mu, var = shown_as.norm_parts(node, self._show(arg.symbol))
        rows = node.op == "normalize"
        return {"node": self._show(node.symbol), "arg": self._show(arg.symbol),
                "mu": self._show(shown_as.mean_symbol(node)), "mu_def": self._show(mu),
                "sigma": self._show(graph_norm_symbol(node)), "var": self._show(var),
                "each": "column" if rows else "row", "over": node.shape[0 if rows else 1],
                "eps": self._show(node.coeff)}

    def _leaves(self, op: str) -> list[tuple[sp.Expr, tuple]]:
        return [(self._show(n.symbol), n.shape) for n in self.GRAPH.nodes.values()
                if n.op == op]

    def _show(self, e: sp.Expr) -> sp.Expr:
        return e.xreplace(self.shown)

    def context(self) -> dict[str, Any]:
        g, r = self.GRAPH, self.results
        params = {p.name for p in g.targets()}
        non_params = [n for n in self.adjoints if n not in params]
        rows = {n: (r[f"{n}_bar"].lhs, r[f"{n}_bar"].expr, g.nodes[n].shape)
                for n in self.adjoints}
        return {
            **super().context(),
            "backward": [row for n, row in rows.items() if n not in params],
            # In the order the parameters are declared.
            "gradients": [rows[p.name] for p in g.targets()],
            # Where step(z) first appears, the key says what it is.
            "step": next((part for part, names in (("backward", non_params),
                                                   ("gradients", list(params)))
                          if any("step" in str(self.adjoints[n]) for n in names)), None),
            **self.stated(),
            **(second_order.context(self) if self.HESSIAN else {}),
        }

    def stated(self) -> dict[str, Any]:
        """The sizes and seeds of the checks."""
        return {"check_sizes": list(self.check_sizes().items()), "seeds": list(SEEDS)}


def _leaf(node, value: Any) -> Any:
    """One leaf's JSON value as an array of its node's kind (numbers checked finite)."""
    field = f"input.{node.name}"
    if node.op == "const":
        return inputs.number(value, field)
    if node.op == "mask":
        return _mask(value, field)
    if node.op == "labels":
        if node.shape[0] == 1 and isinstance(value, int) and not isinstance(value, bool):
            value = [value]  # one label given as a number
        if not isinstance(value, list) or not value or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise InputError(f"{field}: expected a non-empty list of whole-number labels")
        return np.array(value, dtype=int)
    if node.shape[0] == 1 and isinstance(value, list) and value and not isinstance(value[0], list):
        value = [value]  # a row given as a flat list
    return inputs.matrix(value, field, most=inputs.MAX_SIDE)


def _mask(value: Any, field: str) -> np.ndarray:
    """A matrix of booleans (true: the entry is kept), rows of equal length."""
    ok = isinstance(value, list) and value and all(
        isinstance(r, list) and r and all(isinstance(v, bool) for v in r) for r in value)
    if not ok:
        raise InputError(f"{field}: expected a matrix of true/false as a non-empty list of rows")
    if len({len(r) for r in value}) != 1:
        raise InputError(f"{field}: ragged matrix; every row needs the same, nonzero length")
    if max(len(value), len(value[0])) > inputs.MAX_SIDE:
        raise InputError(f"{field}: expected at most {inputs.MAX_SIDE} rows and columns")
    return np.array(value, dtype=bool)


def _labels_in_range(name: str, labels: np.ndarray, classes: int) -> None:
    bad = [i for i, v in enumerate(labels) if not 0 <= v < classes]
    if bad:
        i = bad[0]
        raise InputError(f"input.{name}[{i}]: expected a class index 0..{classes - 1}, "
                         f"got {labels[i]}")


def _plain(value: np.ndarray, node) -> list:
    """An array as JSON lists, a 1×n row as a flat list."""
    return value[0].tolist() if node.shape[0] == 1 else value.tolist()
