"""Dropout: the model (drop probability p), its derivation, its claims and template data."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from functools import cached_property
from typing import Any, ClassVar

import sympy as sp

from derive.params import Exact, Int, Param
from derive.problems.base import Problem, Result, json_number
from derive.problems.dropout import algebra as a
from derive.problems.dropout import claims as dc
from derive.problems.dropout.evaluate import evaluate
from derive.verify import Claim
from derive.verify.routes import SAMPLING_SIGMAS

#: The handout's drop probability, and the range a set may give: sampling needs both
#: outcomes of a unit to occur often (p = 1/1000 already needs a million masks).
DEFAULT_P = sp.Rational(1, 2)
P_RANGE = (sp.Rational(1, 1000), sp.Rational(999, 1000))
#: Entries of the enumerated input: 2^n masks (n = 12: 4096 of them).
DEFAULT_N, MAX_N = 4, 12

RESULTS: dict[str, str] = {
    "mask_mean": "E[m_i] = 1 - p, from the Bernoulli mask.",
    "mask_square": "E[m_i^2] = 1 - p (m_i is 0 or 1).",
    "mean_general": "E[y_i] for y = s m x with any training scale s: s (1 - p) x_i.",
    "scale": "The training scale s with E[y_i] = x_i, the test-time output: 1/(1 - p).",
    "mean": "E[y_i] of inverted dropout: x_i.",
    "second_moment": "E[y_i^2] of inverted dropout: x_i^2/(1 - p).",
    "variance": "Var(y_i) of inverted dropout: p x_i^2/(1 - p).",
    "backward": "dL/dx_i at a fixed mask: m_i ybar_i/(1 - p).",
    "plain_mean": "E[y_i] when training applies the mask alone: (1 - p) x_i.",
    "test_scale": "The test-time scale c that matches it, c x_i = E[m_i x_i]: 1 - p.",
    "scale_value": "The training scale at the given p (exact).",
    "variance_factor": "Var(y_i)/x_i^2 at the given p (exact).",
}


class Dropout(Problem):
    """Inverted dropout: why it scales by 1/(1 - p), its mean and variance, its backward."""

    key = "dropout"
    title = "Inverted dropout"
    MAIN = "variance"
    RESULTS: ClassVar[dict[str, str]] = RESULTS
    CLAIM_NAMES: ClassVar[dict[str, str]] = {
        "mask_mean": "$E[m_i]$", "mask_square": "$E[m_i^2]$",
        "mean_general": "$E[y_i]$, any scale $s$", "scale": "the scale $s$",
        "mean": "$E[y_i]$", "second_moment": "$E[y_i^2]$", "variance": "$\\operatorname{Var}(y_i)$",
        "backward": "$\\bar{x}_i$", "plain_mean": "$E[m_i x_i]$",
        "test_scale": "the test-time scale $c$", "scale_value": "the scale at the given $p$",
        "variance_factor": "$\\operatorname{Var}(y_i)/x_i^2$ at the given $p$",
    }
    SYMBOLS = ("c", "m_i", "p", "s", "x_i", "xbar_i", "ybar_i")
    LABELS = ("title", "scale", "moments", "backward", "plain")
    OPTIONAL = ("plain",)
    SHOWN = ("p",)
    PARAMS = (
        Param("p", Exact(*P_RANGE), DEFAULT_P,
              "the probability of dropping a unit (1/1000 to 999/1000)"),
        Param("n", Int(1, MAX_N), DEFAULT_N,
              "entries of the input whose 2^n masks the exact check enumerates"),
    )

    def __init__(self, p: sp.Rational = DEFAULT_P, n: int = DEFAULT_N) -> None:
        self.p, self.n = sp.Rational(p), n

    @cached_property
    def formulas(self) -> dict[str, sp.Expr]:
        """The symbolic results (``algebra.derivation``)."""
        return a.derivation()

    # -- derivation ---------------------------------------------------------------------------
    def derive(self) -> dict[str, Result]:
        f = self.formulas
        lhs = {"scale": a.S, "test_scale": a.T, "backward": a.XBAR}
        out = {k: Result(k, e, lhs.get(k), value=e) for k, e in f.items()}
        numbers = {"scale_value": f["scale"], "variance_factor": f["variance"] / a.X**2}
        for key, expr in numbers.items():
            v = a.at_p(expr, self.p)
            out[key] = Result(key, v, value=json_number(v))
        return out

    # -- claims -------------------------------------------------------------------------------
    def claims(self) -> Iterator[Claim]:
        f, p = self.formulas, Fraction(str(self.p))
        values = {k: self.results[k].expr for k in ("scale_value", "variance_factor")}
        yield from dc.enumeration_claims(f, p, self.n)
        yield from dc.number_claims(values, p, self.n)
        yield from dc.sampling_claims(f, p, self.n)
        yield from dc.backward_claims(f["backward"], p)

    # -- numbers in and out (derive eval) -----------------------------------------------------
    def eval(self, data: Any) -> dict[str, Any]:
        """``out`` and ``grad.x`` for ``x``, ``p``, ``mask`` and optional ``dout`` (JSON), by
        the key's rules: y = s m x with the derived s, and the derived backward."""
        forward = sp.lambdify((a.M, a.X, a.P), self.formulas["scale"] * a.M * a.X, "numpy")
        backward = sp.lambdify((a.M, a.YBAR, a.P), self.formulas["backward"], "numpy")
        return evaluate(data, forward, backward)

    # -- rendering ----------------------------------------------------------------------------
    def question_data(self) -> dict[str, Any]:
        return {"p": self.p}

    def context(self) -> dict[str, Any]:
        return {**super().context(), "p": self.p, **self.stated()}

    def stated(self) -> dict[str, Any]:
        """The settings of the checks: sizes, probabilities, scales, samples, seed."""
        p = Fraction(str(self.p))
        return {
            "n": self.n, "masks": 2**self.n, "other_p": [sp.Rational(str(q)) for q in dc.OTHER_P],
            "samples": dc.samples(p), "seed": dc.SEED, "sigmas": SAMPLING_SIGMAS,
        }
