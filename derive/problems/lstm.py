"""LSTM backprop through time (CSC421 HW3 Q1; hw7 Q2; CSE 891 HW3 Q2).

The univariate cell of the handouts, per step t:

    i = σ(w_ix x + w_ih h_prev)      f = σ(w_fx x + w_fh h_prev)
    o = σ(w_ox x + w_oh h_prev)      g = tanh(w_gx x + w_gh h_prev)
    c = f c_prev + i g               h = o tanh(c)

with a loss that reads h at every step.  The vector form adds biases b_i, b_f, b_o, b_g.
Everything below is derived by the engine from this data; nothing is typed in.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import sympy as sp

from derive.engine.cell import Cell, bar, loss_grad, param_bar, t, timed
from derive.engine.functions import sigma
from derive.engine.numeric import evaluate_at, forward
from derive.engine.spec import CellSpec
from derive.params import Kind, Quote
from derive.problems.base import Result
from derive.problems.recurrent import RecurrentProblem, scalar_data
from derive.problems.recurrent_limit import idempotence_claim, vanishing
from derive.verify import Claim
from derive.verify.gradcheck import Case, backward_map_by_probes, make_data, probes, reference

GATES = ("i", "f", "o", "g")
WEIGHTS = tuple(f"w_{g}{s}" for g in GATES for s in ("x", "h"))
BIASES = tuple(f"b_{g}" for g in GATES)


#: Gate values in the limit of the optional question.
LIMIT = {"f": 1, "i": 0, "o": 0}


class LSTM(RecurrentProblem):
    """Backprop-through-time equations of the univariate and vector LSTM, and the limit."""

    key = "lstm"
    title = "LSTM gradient (backprop through time)"
    MAIN = "w_ix_bar"
    RESULTS: ClassVar[dict[str, str]] = {
        "h_bar_limit": "The adjoint of h with f = 1, i = 0, o = 0 at every step.",
        "c_bar_limit": "The adjoint of c in that limit.",
        "backward_map_limit": "The backward map in that limit.",
        "backward_map_limit_idempotent": "Whether the limit map is its own square.",
        "h_bar_limit_terms": (
            "Each term of the adjoint of h beside the factor that vanishes in the limit."
        ),
        "c_bar_limit_terms": "Each term of the adjoint of c beside its vanishing factor.",
        "weights_bar_limit": "The weight gradients in the limit: every one vanishes (value 0).",
    }
    LABELS = ("adjoints", "weight", "optional", "example")
    OPTIONAL = ("optional",)  # the limit: no other part builds on it
    CLAIM_NAMES = RecurrentProblem.CLAIM_NAMES | {  # the limit's claims are the LSTM's own
        "backward_map_limit": "its saturated limit", "h_bar_limit": "limit of {lhs}",
        "c_bar_limit": "limit of {lhs}", "weights_bar_limit": "the weight gradients in the limit",
        "backward_map_limit_idempotent": "the limit map squared is itself",
    }
    #: A source's cell equations as its text reads (flagged where extraction damaged them),
    #: and an original solution's conclusion on the limit, quoted in instructors' notes.
    ORIGINAL: ClassVar[dict[str, Kind]] = {
        "equations": Quote("the original handout's cell equations, as its text reads"),
        "limit_claim": Quote("the original solution's conclusion on the optional part"),
    }

    TEMPLATE = "lstm"
    NOUN = "LSTM"
    # The limit's checks join the backward map's group (they are about J).
    MAP_GROUP = "Backward map and its limit"

    CELL = CellSpec(
        name="lstm",
        inputs=("x",),
        states=("h", "c"),
        weights=WEIGHTS,
        biases=BIASES,
        equations=lambda s: (
            ("i", sigma(s.w_ix * s.x + s.w_ih * s.h_prev + s.b_i)),
            ("f", sigma(s.w_fx * s.x + s.w_fh * s.h_prev + s.b_f)),
            ("o", sigma(s.w_ox * s.x + s.w_oh * s.h_prev + s.b_o)),
            ("g", sp.tanh(s.w_gx * s.x + s.w_gh * s.h_prev + s.b_g)),
            ("c", s.f * s.c_prev + s.i * s.g),
            ("h", s.o * sp.tanh(s.c)),
        ),
        loss_on=("h",),
    )

    def derive(self) -> dict[str, Result]:
        out = super().derive()
        out.update(self._limit(out))
        return out

    def _limit(self, derived: dict[str, Result]) -> dict[str, Result]:
        """The optional question: the backward recurrence when f -> 1, i -> 0, o -> 0."""
        jac = derived["backward_map"].expr
        at = {timed(g, k): v for g, v in LIMIT.items() for k in (0, 1)}
        forms = self.adjoints.through_states()
        later = {k.subs(t, t + 1): v.subs(t, t + 1) for k, v in forms.items()}
        gates = {bar(g, 1): later[bar(g, 1)] for g in GATES}
        out = {}
        for s in ("h", "c"):
            full = forms[bar(s)].xreplace(gates)
            out[f"{s}_bar_limit"] = Result(f"{s}_bar_limit", sp.expand(full.subs(at)), bar(s), full)
        out.update(self._limit_terms(derived, forms, gates, at))
        lim = jac.subs(at).applyfunc(sp.simplify)
        out["backward_map_limit"] = Result(
            "backward_map_limit", lim, None, value=[[_num(v) for v in row] for row in lim.tolist()]
        )
        # Whether J's limit is its own square, so that the product over any number of steps
        # is that same matrix: the key says so only when this result holds.
        key = "backward_map_limit_idempotent"
        out[key] = Result(key, lim * lim, None, value=bool((lim * lim - lim).is_zero_matrix))
        return out

    def _limit_terms(
        self, derived: dict[str, Result], forms: dict, gates: dict, at: dict
    ) -> dict[str, Result]:
        """The limit term by term: each term of bar h(t) and bar c(t) (bar h's with the gate
        adjoints of step t+1 written through bar c(t+1), bar h(t+1)) beside its factors that
        tend to 0; and each weight's gradient, whose summand (the gate adjoints of step t
        written through bar c(t), bar h(t)) has such a factor too."""
        out = {}
        for s, sub in (("h", gates), ("c", {})):
            rows = []
            for term in sp.Add.make_args(derived[f"{s}_bar"].expr):
                full = term.xreplace(sub)
                rows.append(sp.Tuple(term, full, sp.Tuple(*vanishing(full, at))))
            key = f"{s}_bar_limit_terms"
            out[key] = Result(key, sp.Tuple(*rows), bar(s))
        now = {bar(g): forms[bar(g)] for g in GATES}
        rows = []
        for w in self.weights:
            summand = derived[f"{w}_bar"].expr.function
            full = summand.xreplace(now)
            rows.append(sp.Tuple(param_bar(w), full, sp.Tuple(*vanishing(full, at))))
        out["weights_bar_limit"] = Result("weights_bar_limit", sp.Tuple(*rows), value=0)
        return out

    def map_claims(self) -> Iterator[Claim]:
        yield from super().map_claims()
        yield from self.limit_claims()

    def context(self) -> dict[str, Any]:
        r = self.results
        lim = r["backward_map_limit"].expr
        return {
            **super().context(),
            "limit": {timed(g): v for g, v in LIMIT.items()},
            "limit_c_gain": lim[-1, -1],
            "limit_h_from_next": list(lim[0, :]),
            "limit_idempotent": r["backward_map_limit_idempotent"].value,
        }

    def question_data(self) -> dict[str, Any]:
        """The recurrent question's data and the gate values of the optional part.

        The optional part replaces the backward map's part, so the question names no state
        adjoint of step t+1 (one of them, bar c(t+1), is the answer of the limit of bar c).
        """
        data = super().question_data()
        del data["states_now"], data["states_next"]
        return {**data, "limit": {timed(g): v for g, v in LIMIT.items()}}

    def limit_claims(self, steps: int = 30) -> Iterator[Claim]:
        """The limit results against the forward pass of a run with saturated gates.

        With x = 1 at every step, w_fx = 25 and w_ix = w_ox = -25, every gate is within
        1.4e-11 of f = 1, i = 0, o = 0.  At each step, J is read off the forward pass by
        complex-step probes and compared with (1) the derived limit of J, (2) the
        coefficients of the derived limits of bar h and bar c and (3), for the limit's
        idempotence, the product of the probed J over the steps so far with the limit; and
        the derived limit of bar h (the loss's direct term alone) is compared with
        complex-step adjoints.
        """
        case = Case(steps, seed=13)
        params, inputs, init = scalar_data(self.cell, case)
        params.update(SATURATING)
        inputs = {"x": [1.0] * steps}
        err = self._limit_errors(params, inputs, init, steps)
        sizes = (f"T = {steps}, x = 1, forget-gate input weight 25, input- and output-gate "
                 f"input weights -25, seed {case.seed}, every step")
        method = "complex step on the forward pass: J at saturated gates"
        departure = err.pop("backward_map_limit_idempotent")
        for key, value in err.items():
            yield Claim.measured(key, method, sizes, value, 1e-8)
        yield from self._loss_term_claims(case, params, inputs["x"], sizes)
        yield from self._term_claims(params, inputs, init, steps, sizes)
        stated = self.results["backward_map_limit_idempotent"].value
        yield idempotence_claim(stated, departure, method, sizes)

    def _limit_errors(self, params: dict, inputs: dict, init: dict, steps: int) -> dict:
        """Worst absolute errors of the limit results against J probed at every step."""
        r = self.results
        nxt = [bar(s.name, 1) for s in self.cell.states]
        rows = {
            s.name: np.array(sp.Matrix([r[f"{s.name}_bar_limit"].expr]).jacobian(nxt).tolist(),
                             dtype=float).ravel()
            for s in self.cell.states
        }
        lim = np.array(r["backward_map_limit"].value, dtype=float)
        err = dict.fromkeys(("backward_map_limit", "h_bar_limit", "c_bar_limit"), 0.0)
        err["backward_map_limit_idempotent"] = 0.0
        product = np.eye(len(self.cell.states))
        for k in range(2, steps + 1):
            probed = backward_map_by_probes(self.cell, params, inputs, init, k)
            product = product @ probed
            worst = {"backward_map_limit": probed - lim, "backward_map_limit_idempotent":
                     product - lim}
            worst |= {f"{s.name}_bar_limit": probed[i] - rows[s.name]
                      for i, s in enumerate(self.cell.states)}
            for key, diff in worst.items():
                err[key] = max(err[key], float(np.max(np.abs(diff))))
        return err

    def _term_claims(self, params: dict, inputs: dict, init: dict, steps: int,
                     sizes: str) -> Iterator[Claim]:
        """The term-by-term limit: every factor said to vanish is within the run's distance
        of 0 at every step, and the terms of an adjoint add up to it exactly."""
        r = self.results
        traj = forward(self.cell, params, inputs, init)
        whole = {"h_bar_limit_terms": r["h_bar"].expr, "c_bar_limit_terms": r["c_bar"].expr}
        method = "forward pass at saturated gates: the factors said to vanish"
        for key in ("h_bar_limit_terms", "c_bar_limit_terms", "weights_bar_limit"):
            rows = r[key].expr
            factors = [f for row in rows for f in row[2]]
            worst = max(abs(float(evaluate_at(f, traj, params, k)))
                        for f in factors for k in range(1, steps))
            # A split of an adjoint must add up to it (exactly): a lost term counts as 1.
            if key in whole and sp.expand(sum(row[0] for row in rows) - whole[key]) != 0:
                worst = max(worst, 1.0)
            yield Claim.measured(key, method, sizes, worst, 1e-8)

    def _loss_term_claims(self, case: Case, params: dict, xs: list,
                          sizes: str) -> Iterator[Claim]:
        """bar h(t) in the limit is the loss's direct term: derived form vs complex step;
        and every weight's gradient is near 0 (complex step, relative to the loss's scale)."""
        data = make_data(self.cell, case)
        data.params.update({k: np.array([[v]]) for k, v in params.items()})
        data.inputs["x"] = [np.array([[v]]) for v in xs]
        plist = probes(self.cell, case, data)
        ref = reference(self.cell, data, plist, "complex step")
        h_bar = ref[np.array([p[0] == "h_bar" for p in plist])]
        a = [float(v[0, 0]) for v in data.loss_grads["h"]]
        expr = self.results["h_bar_limit"].expr
        derived = [float(expr.xreplace({loss_grad("h"): a[k]})) for k in range(case.T)]
        err = float(np.max(np.abs(h_bar - derived)) / np.max(np.abs(a)))
        # One route for both: the run's adjoints and gradients against the derived limits
        # (bar h(t) -> its loss term, every weight's gradient -> 0).
        method = "complex step: the adjoint of h(t) and the weight gradients against their limits"
        yield Claim.measured("h_bar_limit", method, sizes, err, 1e-8)
        weights = ref[np.array([p[1] == "param" for p in plist])]
        err = float(np.max(np.abs(weights)) / np.max(np.abs(a)))
        yield Claim.measured("weights_bar_limit", method, sizes, err, 1e-8)


#: Weights that drive the gates to the limit of the optional question (with x = 1).
SATURATING = {
    "w_fx": 25.0,
    "w_fh": 0.1,
    "w_ix": -25.0,
    "w_ih": 0.1,
    "w_ox": -25.0,
    "w_oh": 0.1,
    "w_gx": 1.0,
    "w_gh": 0.1,
}


def _num(v: sp.Expr):
    return int(v) if v.is_Integer else float(v) if v.is_Number else None


def lstm_cell(biases: bool = False) -> Cell:
    """The LSTM cell; ``biases`` adds b_i, b_f, b_o, b_g (the vector form)."""
    return LSTM.CELL.build(biases)
