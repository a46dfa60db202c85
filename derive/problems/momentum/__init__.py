"""Reversibility of gradient descent with momentum (CSC421 homework 3, question 3).

The map s = (θ, p) ↦ s' on D-dimensional vectors, one update after the other::

    p' = β p − α ∇J(θ)        (first update, F1)
    θ' = θ + p'               (second update, F2)

Inverse, solved by SymPy from the two equations (θ first: ∇J needs the old θ)::

    θ = θ' − p',    p = (p' + α ∇J(θ)) / β

Jacobian ∂s'/∂s = F2 F1 with H the Hessian of J at θ, in block form for symbolic D::

    F1 = [[I, 0], [−αH, βI]],   F2 = [[I, I], [0, I]],   det = det F2 · det F1 = β^D

The determinant comes from a block-triangular rule (never from expanding a determinant);
``claims`` instantiates the blocks for D = 1..4 and differentiates the real map numerically,
``reversal`` runs the map forward and back in float64 and in mpmath.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from functools import cached_property
from typing import Any, ClassVar

import mpmath
import numpy as np
import sympy as sp

from derive.params import Exact, Int, Kind, Param, Quote
from derive.problems.base import Problem, Result
from derive.problems.momentum import claims as mc
from derive.problems.momentum.model import (
    ALPHA,
    ALPHA_EXACT,
    BETA,
    BETA_EXACT,
    D,
    H,
    alpha,
    beta,
    block_det,
    first_factor,
    forward,
    grad_j,
    hess_j,
    inverse_map,
    p,
    p_next,
    second_factor,
    solve_inverse,
    theta,
    theta_next,
    updates,
)
from derive.problems.momentum.reversal import float_reversal, mp_reversal
from derive.verify import Claim

__all__ = [
    "ALPHA",
    "BETA",
    "D",
    "H",
    "Momentum",
    "alpha",
    "beta",
    "block_det",
    "first_factor",
    "forward",
    "grad_j",
    "hess_j",
    "second_factor",
]

VOLUME_D = 1000
REVERSAL_D = 8
REVERSAL_STEPS = (1, 10, 50, 100, 200, 300)
SEED = 20261122
#: Digits of the reference for β^-D (a float64 power is good to ~1e-16 relative).
VOLUME_DPS = 50
#: A float64 β^-D carries a few ulps of the power's rounding.
VOLUME_TOL = 1e-14
#: The exact-arithmetic round trip: 40 digits beyond the amplification leave ~1e-40.
REVERSAL_TOL = 1e-25


class Momentum(Problem):
    """Inverse and Jacobian determinant of the momentum update, and what β^D means."""

    CLAIM_NAMES: ClassVar[dict[str, str]] = {
        "inverse_theta": "inverse, {lhs}", "inverse_p": "inverse, {lhs}",
        "jacobian_factors": "the two factors of $J$", "jacobian": "$J$ as one block matrix",
        "factor_dets": "determinants of the factors", "det_jacobian": "determinant of $J$",
        "volume_factor": "the volume factor", "reversal_error": "reversing the steps in float64",
    }

    key = "momentum"
    title = "Reversibility of gradient descent with momentum"
    MAIN = "det_jacobian"
    RESULTS: ClassVar[dict[str, str]] = {
        "inverse_theta": "theta_k from the next step's theta and p.",
        "inverse_p": "p_k from the next step's theta and p.",
        "jacobian_factors": "The Jacobian of one step as a product of two block factors.",
        "jacobian": "The Jacobian of one step, block by block.",
        "factor_dets": "The determinants of the two factors.",
        "det_jacobian": "The determinant of the Jacobian, beta^D.",
        "volume_factor": (
            "beta^D at the set's beta and D: how much a step shrinks volume, and how much its "
            "inverse grows it."
        ),
        "reversal_error": (
            "Relative error after k steps forward and k back in float64, by k; null where the run"
            " overflowed."
        ),
    }
    LABELS = ("inverse", "det")
    #: The question of a step's volume factor, within part (b): a set may leave it out.
    OPTIONAL = ("volume",)
    ORIGINAL: ClassVar[dict[str, Kind]] = {
        "updates": Quote("the original handout's two updates, as its text reads"),
        "sample_det": Quote("the sample solution's argument for the determinant, as written"),
    }
    #: Names the printer spells through the set's notation (``Problem.symbols``).
    SYMBOLS = ("D", "H", "alpha", "beta", "p^(k)", "p^(k+1)", "theta^(k)", "theta^(k+1)")

    SHOWN = ("beta", "volume_D")  # alpha only sets the reversal experiment
    PARAMS = (
        # Bounds keep the experiments' trajectories finite in float64 (a larger step diverges
        # on the test function) and the 50-digit reference meaningful.
        Param(
            "alpha",
            Exact(sp.Integer(0), sp.Rational(1, 2)),
            ALPHA_EXACT,
            "learning rate of the numeric experiments (0 <= alpha <= 1/2)",
        ),
        Param(
            "beta",
            Exact(sp.Rational(1, 2), sp.Rational(99, 100)),
            BETA_EXACT,
            "momentum of the numeric experiments (1/2 <= beta <= 99/100)",
        ),
        Param("volume_D", Int(1, 5000), VOLUME_D, "D of the volume factor beta^D"),
    )

    def __init__(
        self,
        alpha: sp.Rational = ALPHA_EXACT,
        beta: sp.Rational = BETA_EXACT,
        volume_D: int = VOLUME_D,  # noqa: N803 - the handout's D
    ) -> None:
        #: The numbers of the experiments (the derivation itself is symbolic).
        self.a, self.b, self.volume_d = float(alpha), float(beta), volume_D
        self.exact_b = sp.Rational(beta)

    # -- derivation ---------------------------------------------------------------------------
    @cached_property
    def inverse(self) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
        """θ, p in terms of s' (and p with ∇J at the recovered θ), solved in that order."""
        return solve_inverse()

    @property
    def reversal_digits(self) -> int:
        """Reversing k steps amplifies rounding by up to beta^-k: 40 digits beyond that."""
        return 40 + math.ceil(REVERSAL_STEPS[-1] * math.log10(1 / self.b))

    def _beta_mp(self) -> mpmath.mpf:
        """β exactly as given, in the current mpmath precision (not through a float)."""
        return mpmath.mpf(int(self.exact_b.p)) / int(self.exact_b.q)

    @cached_property
    def factors(self) -> tuple[sp.BlockMatrix, sp.BlockMatrix]:
        """(F2, F1): the Jacobian is F2·F1."""
        return second_factor(), first_factor()

    def derive(self) -> dict[str, Result]:
        th, p_chain, p_expr = self.inverse
        f2, f1 = self.factors
        det1, det2 = block_det(f1), block_det(f2)
        return {
            "inverse_theta": Result("inverse_theta", th, theta),
            "inverse_p": Result("inverse_p", p_expr, p, chain=p_chain),
            "jacobian_factors": Result(
                "jacobian_factors", sp.MatMul(f2, f1, evaluate=False), sp.Symbol("J")
            ),
            # The product the key prints after F2 F1, block by block.
            "jacobian": Result("jacobian", sp.block_collapse(f2 * f1), sp.Symbol("J")),
            "factor_dets": Result(
                "factor_dets", sp.Tuple(det2, det1), value=[det2, det1]
            ),
            "det_jacobian": Result("det_jacobian", det2 * det1, value=det2 * det1),
            "volume_factor": self._volume_factor(),
            "reversal_error": self._reversal_error(),
        }

    def _volume_factor(self) -> Result:
        with mpmath.workdps(30):  # beta^D to float64 accuracy (a 53-bit power loses digits)
            shrink = self._beta_mp() ** self.volume_d
        value = {
            "beta": self.b,
            "D": self.volume_d,
            "shrink": float(shrink),
            "grow": float(1 / shrink),
        }
        return Result("volume_factor", sp.Float(str(shrink), 6), value=value)

    def _reversal_error(self) -> Result:
        rows = list(zip(REVERSAL_STEPS, self.reversal[0], strict=True))
        return Result(
            "reversal_error",
            sp.Matrix([[k, sp.Float(e, 3)] for k, e in rows]),
            # JSON has no inf: a run that overflowed (nothing recovered) is null.
            value=[[k, e if math.isfinite(e) else None] for k, e in rows],
        )

    @cached_property
    def reversal(self) -> tuple[list[float], list[float]]:
        """Relative error of s after k forward then k inverse steps: float64, and mpmath
        (the last k, at ``reversal_digits``)."""
        s0 = np.random.default_rng(SEED).standard_normal(2 * REVERSAL_D)
        out64 = float_reversal(s0, self.inverse_map(), REVERSAL_STEPS, self.a, self.b)
        # The same experiment in exact-enough digits: the inverse is exact, so the float64
        # error is rounding amplified by the inverse, not a wrong formula.
        out_mp = mp_reversal(s0, REVERSAL_STEPS[-1], self.a, self.b, self.reversal_digits)
        return out64, [out_mp]

    def inverse_map(self):
        """The derived inverse, compiled: s' ↦ s with the numeric ∇J."""
        return inverse_map(self.inverse)

    # -- claims -------------------------------------------------------------------------------
    def claims(self) -> Iterator[Claim]:
        r = self.results
        # One generator, drawn in this order: the round trips' states, then the Jacobians'.
        rng = np.random.default_rng(SEED)
        round_trips = [rng.standard_normal(2 * n) for n in mc.INVERSE_DIMS]
        jacobians = [rng.standard_normal(2 * n) for n in mc.JACOBIAN_DIMS]
        yield from mc.inverse_claims(self.inverse_map(), self.a, self.b, round_trips)
        yield mc.symbolic_inverse_claim(self.inverse)
        det = r["det_jacobian"].expr
        dets = r["factor_dets"].expr.args
        counts = mc.explicit_counts(self.factors, r["jacobian"].expr, dets, det)
        yield from mc.explicit_claims(counts)
        yield from mc.numeric_jacobian_claims(self.factors, det, self.a, self.b, jacobians)
        yield Claim(
            "volume_factor",
            f"{VOLUME_DPS}-digit arithmetic: the volume factor",
            f"beta = {self.exact_b}, D = {self.volume_d}",
            VOLUME_TOL,
            self._volume_error,
        )
        yield Claim(
            "reversal_error",
            f"{self.reversal_digits}-digit arithmetic: the same k steps reversed",
            f"D = {REVERSAL_D}, k = {REVERSAL_STEPS[-1]}",
            REVERSAL_TOL,
            lambda: self.reversal[1][0],
        )

    def _volume_error(self) -> float:
        """The printed β^-D against a 50-digit power."""
        with mpmath.workdps(VOLUME_DPS):
            ref = self._beta_mp() ** (-self.volume_d)
            grow = mpmath.mpf(self.results["volume_factor"].value["grow"])
            return float(abs(grow - ref) / ref)

    # -- rendering ----------------------------------------------------------------------------
    def question_data(self) -> dict[str, Any]:
        """The two updates (the given map), the state and its next value."""
        return {
            "updates": [sp.Eq(u.lhs, _tidy(u.rhs), evaluate=False) for u in updates()],
            "theta": theta,
            "p": p,
            "theta_next": theta_next,
            "p_next": p_next,
            "D": D,
            # The numbers part (b) asks the volume factor for (what a version varies).
            "beta": self.exact_b,
            "volume_D": self.volume_d,
        }

    def context(self) -> dict[str, Any]:
        f2, f1 = self.factors
        r = self.results
        errors = [e for _, e in zip(REVERSAL_STEPS, self.reversal[0], strict=True)]
        return {
            **super().context(),
            "f1": f1,
            "f2": f2,
            "product": r["jacobian"].expr,
            "det_f1": r["factor_dets"].expr.args[1],
            "det_f2": r["factor_dets"].expr.args[0],
            "volume": r["volume_factor"].value,
            # The result's own numbers (a run that overflowed is an infinite error, printed
            # as such), not its JSON value, where JSON's lack of inf made it null.
            "reversal": list(zip(REVERSAL_STEPS, errors, strict=True)),
            **self.stated(),
            # The exact round trip's error is the reversal claim's own evidence.
            "reversal_mp": next(
                c.max_rel_error
                for c in self.checks
                if c.claim == "reversal_error"
                and c.method.startswith(f"{self.reversal_digits}-digit")
            ),
            "alpha_value": self.a,
        }

    def stated(self) -> dict[str, Any]:
        """The reversal run's dimension and digits: settings of the experiment."""
        return {"reversal_d": REVERSAL_D, "reversal_digits": self.reversal_digits}


def _tidy(e: sp.Expr) -> sp.Expr:
    # Display order only: α, β before what they scale, θ before p in a sum.
    if isinstance(e, sp.Mul):
        factors = sorted(map(_tidy, e.args), key=lambda a: a not in (alpha, beta, -1))
        return sp.Mul(*factors, evaluate=False)
    if isinstance(e, sp.Add):
        return sp.Add(*sorted(map(_tidy, e.args), key=lambda a: a != theta), evaluate=False)
    return e
