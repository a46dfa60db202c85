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
see FINDINGS); ``values.evaluate`` turns them into numbers for the claims, which compare
with complex steps and central differences of a plain NumPy forward pass
(``derive.instances.rnn_sequence``) and with the engine's adjoint sweep.

The package: ``notation`` (quantities at a step, Jacobians as symbols, ordered products and
sums over steps), ``values`` (their numbers), ``problem`` (this module: the derivation in
steps and the claims).
"""
from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import sympy as sp

from derive.engine.cell import Cell, t
from derive.engine.cell import T as T_END
from derive.engine.functions import sigma
from derive.engine.jacobian import Diag, jacobian_from_vjp, vjp_of
from derive.engine.vector import VectorCell, n_h
from derive.errors import InputError
from derive.instances.rnn_sequence import STEPS, SequenceData, states
from derive.params import Int, Kind, Param, Quote
from derive.problems.base import Problem, Result, json_number
from derive.problems.vanilla_rnn.claims import claims_of
from derive.problems.vanilla_rnn.notation import (
    AtStep,
    OrderedProduct,
    Partial,
    StepSum,
    abbreviate,
    d,
    expand_steps,
    h_at,
    j,
    k,
    loss_row,
    n,
    relabel,
)
from derive.problems.vanilla_rnn.values import Values, evaluate
from derive.verify import Claim

MAX_T = 8  # the written-out sum has T(T+1)/2 terms; beyond this it no longer fits a page
#: The number of terms of the double sum for T steps: one per pair 1 <= k <= t <= T.
N_TERMS = T_END * (T_END + 1) / 2

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


def forward_equation(cell: Cell, step: Any = None) -> tuple[Any, Any]:
    """The cell's one assignment in vector form, (lhs, rhs), in the write-up's symbols."""
    vc = VectorCell(cell)
    ((u, rhs),) = cell.assignments
    return relabel(vc.sym(u, 0), step), relabel(vc.to_vec(rhs, 0), step)


def sigma_prime_max() -> Result:
    """The largest value of sigma'(z), derived: sigma' = s(1 - s) with s = sigma(z) in
    (0, 1), maximised at its critical point (the ends give 0)."""
    z, u = sp.Symbol("z"), sp.Symbol("s")
    derivative = sp.diff(sigma(z), z).subs(sigma(z), u)  # s (1 - s), from sigma's own rule
    candidates = [derivative.subs(u, c) for c in sp.solve(sp.diff(derivative, u), u)]
    candidates += [derivative.subs(u, 0), derivative.subs(u, 1)]
    top = max(candidates)
    return Result("sigma_prime_max", top, sp.Symbol(r"\max\sigma'"), value=json_number(top))


class VanillaRNN(Problem):
    """∂L/∂W of h^(t) = σ(W h^(t-1) + U x^(t)) as a double sum of Jacobian products."""

    CLAIM_NAMES: ClassVar[dict[str, str]] = {
        "sigma_prime_max": "largest slope $\\max \\sigma'$", "dL_dW_T3": "{lhs} written out",
        "n_terms": "number of terms of the sum",
        "norm_bound": "the contraction bound on $\\lVert W \\rVert_2$",
    }

    key = "vanilla_rnn"
    title = "Backpropagation through time in a vanilla RNN (sums of Jacobian products)"
    MAIN = "jacobian_y_x"
    RESULTS: ClassVar[dict[str, str]] = {
        "jacobian_y_x": "The Jacobian of a layer y = sigma(W x), in vector form.",
        "dL_dW": "dL/dW as a double sum over steps of products of Jacobians.",
        "dL_dW_T{T}": "That sum written out for the set's T (the key carries T, e.g. dL_dW_T3).",
        "n_terms": "The number of terms of the double sum, T(T+1)/2; value at the set's T.",
        "sigma_prime_max": "The largest value of sigma'.",
        "norm_bound": "1/max sigma': below this norm of W every per-step factor contracts.",
    }
    #: Names the printer spells through the set's notation (``Problem.symbols``).
    SYMBOLS = ("L", "U", "W", "a", "d", "ell", "gbar", "h", "j", "n", "sigma_prime", "u", "x", "y")

    SHOWN = ("T",)
    PARAMS = (Param("T", Int(1, MAX_T), 3, "sequence length of the written-out sum (5-2 a)"),)
    #: The problem's heading and its three parts, as a set's handout numbers them.
    LABELS = ("title", "jacobian", "gradient", "expanded")
    #: What an original handout may print: its formula for the gradient (part b).
    ORIGINAL: ClassVar[dict[str, Kind]] = {
        "gradient": Quote("the original's formula for dL/dW, as it prints it"),
    }

    def __init__(self, T: int = 3) -> None:  # noqa: N803 - the handout's T
        if isinstance(T, bool) or not isinstance(T, int) or not 1 <= T <= MAX_T:
            raise InputError(f"T: expected a whole number of steps from 1 to {MAX_T}, got {T!r}")
        self.T = T

    @property
    def cell(self) -> Cell:
        """The RNN cell (a fresh one: the engine caches compiled sweeps on it)."""
        return rnn_cell()

    @property
    def expanded_key(self) -> str:
        """The key of the sum written out for this T (``dL_dW_T3``)."""
        return f"dL_dW_T{self.T}"

    # -- derivation ----------------------------------------------------------------------------
    @cached_property
    def layer(self) -> dict[str, Any]:
        """Step 1: the layer's VJP from the engine and the Jacobian read off it."""
        vjp, gbar = vjp_of(layer_cell(), "y", "x", gbar="gbar")
        return {
            "vjp": relabel(vjp),
            "gbar": gbar,
            "jacobian": relabel(jacobian_from_vjp(vjp, gbar)),
        }

    @cached_property
    def rnn_rules(self) -> dict[str, Any]:
        """Step 2: per-step Jacobian at j and immediate partial at k, with σ' named."""
        cell = rnn_cell()
        vjp_h, gbar = vjp_of(cell, "h", "h_prev", gbar="gbar")
        vjp_w, _ = vjp_of(cell, "h", "W", gbar="gbar")
        per_step = relabel(jacobian_from_vjp(vjp_h, gbar), j)
        immediate = relabel(jacobian_from_vjp(vjp_w, gbar), k)
        # The engine writes σ'(z) through the forward value, h ⊙ (1 - h): name it σ'.
        (diag,) = per_step.atoms(Diag)
        fprime = diag.args[0]
        sp_j, sp_k = AtStep("sigma_prime", n, 1, j), AtStep("sigma_prime", n, 1, k)
        at_k = fprime.xreplace({h_at(j): h_at(k)})
        return {
            "per_step": per_step.xreplace({fprime: sp_j}),
            "immediate": immediate.xreplace({at_k: sp_k}),
            "sigma_prime": (sp_j, fprime),
            "vjp_h": relabel(vjp_h, j),
            "vjp_w": abbreviate(relabel(vjp_w, k), at_k, sp_k),
            "gbar": gbar.xreplace({n_h: n}),
        }

    @cached_property
    def chain(self) -> dict[str, Any]:
        """Step 3: the chain rule over steps, as symbols, and the rule for ∂h^(t)/∂h^(k)."""
        w = sp.MatrixSymbol("W", n, n)
        across = Partial(h_at(t), h_at(k))
        one_step = Partial(h_at(j), h_at(j - 1))
        immediate = Partial(h_at(k), w, immediate=True)
        return {
            "W": w,
            "across": across,
            "one_step": one_step,
            "immediate": immediate,
            "across_rule": OrderedProduct(one_step, j, k + 1, t),
            "sum": StepSum(sp.MatMul(loss_row(t), across, immediate), (k, 1, t), (t, 1, T_END)),
        }

    def derive(self) -> dict[str, Result]:
        layer, rules, chain = self.layer, self.rnn_rules, self.chain
        x, y = sp.MatrixSymbol("x", d, 1), sp.MatrixSymbol("y", n, 1)
        out = {"jacobian_y_x": Result("jacobian_y_x", layer["jacobian"], Partial(y, x))}
        # Substitute the engine's results into the chain rule (nothing is typed in).
        explicit = chain["sum"].xreplace(
            {
                chain["across"]: OrderedProduct(rules["per_step"], j, k + 1, t),
                chain["immediate"]: rules["immediate"],
            }
        )
        lhs = Partial(sp.MatrixSymbol("L", 1, 1), chain["W"])
        out["dL_dW"] = Result("dL_dW", explicit, lhs, chain["sum"])
        # Step 4: written out for the given T; the chain form keeps one factor per step.
        stepwise = chain["sum"].xreplace({chain["across"]: chain["across_rule"]})
        key = self.expanded_key
        out[key] = Result(key, expand_steps(explicit, self.T), lhs, expand_steps(stepwise, self.T))
        count = N_TERMS.xreplace({T_END: self.T})
        out["n_terms"] = Result("n_terms", N_TERMS, sp.Symbol("N_T"), value=json_number(count))
        out["sigma_prime_max"] = sigma_prime_max()
        # Below this spectral norm of W every per-step factor contracts: 1/(1/4) = 4.
        bound = 1 / out["sigma_prime_max"].expr
        out["norm_bound"] = Result("norm_bound", bound, None, value=json_number(bound))
        return out

    # -- numbers of the derived expressions ----------------------------------------------------
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

    # -- claims --------------------------------------------------------------------------------
    def claims(self) -> Iterator[Claim]:
        return claims_of(self)

    # -- the question, and what the template formats -------------------------------------------
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

    def context(self) -> dict[str, Any]:
        given, rules, chain = self.question_data(), self.rnn_rules, self.chain
        sp_j, fprime = rules["sigma_prime"]
        u = sp.MatrixSymbol("u", n, 1)
        return {
            **super().context(),
            **{name: given[name] for name in ("T", "layer_forward", "rnn_forward")},
            **{name: rules[name] for name in ("vjp_h", "vjp_w", "gbar", "per_step", "immediate")},
            **{name: chain[name] for name in ("one_step", "across", "across_rule")},
            "T_key": self.expanded_key,
            "n_terms": self.results["n_terms"].value,
            **self.stated(),
            "layer_vjp": self.layer["vjp"],
            "layer_gbar": self.layer["gbar"],
            "layer_shapes": self._layer_shapes(),
            "sigma_prime": sp_j,
            "sigma_prime_max": self.results["sigma_prime_max"].expr,
            "norm_bound": self.results["norm_bound"].expr,
            "sigma_prime_def": fprime,
            "immediate_lhs": chain["immediate"],
            "across_explicit": OrderedProduct(rules["per_step"], j, k + 1, t),
            # uᵀ ∂⁺h^(k)/∂W reshaped to n×n is the engine's VJP with ḡ = u: the BPTT update.
            "u_T": u.T,
            "contraction": rules["vjp_w"].xreplace({rules["gbar"]: u}),
            "chain_shapes": [
                (m, *m.shape) for m in (loss_row(t), chain["across"], chain["immediate"])
            ],
            "q": self._quantities(),
        }

    def stated(self) -> dict[str, Any]:
        """The steps of the two routes the key names (``derive.verify.routes``)."""
        return {"cs_step": STEPS["complex step"], "cd_step": STEPS["central difference"]}

    def _layer_shapes(self) -> list[tuple]:
        x, y = sp.MatrixSymbol("x", d, 1), sp.MatrixSymbol("y", n, 1)
        jac = self.results["jacobian_y_x"]
        shapes = [(m, *m.shape) for m in (y, x, sp.MatrixSymbol("W", n, d), jac.expr.args[0])]
        return [*shapes, (jac.lhs, *jac.expr.shape)]

    def _quantities(self) -> dict[str, Any]:
        """Quantities the prose names, so that they follow the set's notation too."""
        return {
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
        }
