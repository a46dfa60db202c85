"""6. The momentum determinant: a symbolic-D rule whose cost does not depend on D.

* The block-triangular rule (``momentum.block_det`` on both factors) at symbolic D and at
  D = 10, 1000, 10^6: its time must stay flat.  SymPy's cache is cleared before each call.
* The whole momentum derivation (``Momentum(volume_D=d).results``) at the smallest and
  largest D a set file may give.
* The numeric confirmation at D = 1000: central differences of the real update map (the key's
  own check, at a larger D), ``slogdet`` of that 2D x 2D Jacobian against log of the derived
  determinant at D = 1000.
"""

from __future__ import annotations

import math

import numpy as np
import sympy as sp
from sympy.core.cache import clear_cache

from benchmarks.config import Config
from benchmarks.timing import Row, at_most, median, timed
from derive.problems import momentum as m
from derive.verify.routes import central_difference, jacobian

#: "Does not grow with D": the same bound as a derivation independent of T (section 2).
FLAT = 1.2
#: The key's tolerance for slogdet of the central-difference Jacobian.
SLOGDET_TOL = 1e-7
SIZES = (10, 1000, 10**6)
RULE_REPEATS = 50
SEED = 6


def rule_repeats(cfg: Config) -> int:
    return cfg.pick(RULE_REPEATS, 3)


def rule(n) -> sp.Expr:
    """det F2 * det F1 at size ``n`` (symbolic or a number) by the block rule."""
    hess = m.H if n is m.D else sp.MatrixSymbol("H", n, n)
    return m.block_det(m.second_factor(n)) * m.block_det(m.first_factor(n, hess))


def rule_seconds(sizes: tuple, repeats: int) -> dict[str, float]:
    """Median seconds of the rule at each size, the sizes taken in turn each round."""
    times: dict[str, list[float]] = {str(n): [] for n in sizes}
    for _ in range(repeats):
        for n in sizes:
            clear_cache()
            times[str(n)].append(timed(lambda n=n: rule(n))[0])
    return {k: median(v) for k, v in times.items()}


def derivation_seconds(volume_d: int) -> float:
    clear_cache()
    return timed(lambda: m.Momentum(volume_D=volume_d).results)[0]


def run(cfg: Config) -> tuple[list[Row], dict]:
    repeats = rule_repeats(cfg)
    symbolic = rule(m.D)
    for n in SIZES:  # the rule at a number is the symbolic result at that number
        if rule(n) != symbolic.subs(m.D, n):
            raise AssertionError(f"block rule at D={n} differs from the symbolic result")
    rule_s = rule_seconds((m.D, *SIZES), repeats)
    spread = max(rule_s[str(n)] for n in SIZES) / min(rule_s[str(n)] for n in SIZES)
    sizes = next(p.kind for p in m.Momentum.PARAMS if p.name == "volume_D")
    low, high = sizes.lo, sizes.hi
    derivation = {d: [] for d in (low, high)}
    for _ in range(cfg.slow_repeats):
        for d in derivation:
            derivation[d].append(derivation_seconds(d))
    deriv = {d: median(v) for d, v in derivation.items()}
    numeric = confirm(cfg.pick(1000, 100), symbolic)
    rows = [
        at_most(
            f"det rule time, slowest / fastest of D = {', '.join(map(str, SIZES))}",
            spread,
            FLAT,
            "x",
            f"symbolic D {rule_s[str(m.D)] * 1e6:.0f} us; "
            + ", ".join(f"D={n}: {rule_s[str(n)] * 1e6:.0f} us" for n in SIZES),
        ),
        at_most(
            f"momentum derivation, volume_D={high} / {low}",
            deriv[high] / deriv[low],
            FLAT,
            "x",
            f"{deriv[low]:.2f} s vs {deriv[high]:.2f} s (includes its float64/mpmath reversal)",
        ),
        at_most(
            f"slogdet of the map's Jacobian vs derived det, D={numeric['D']}",
            numeric["error"],
            SLOGDET_TOL,
            "",
            f"log det {numeric['logdet']:.6f} vs {numeric['claim']:.6f}; central differences "
            f"{numeric['jacobian_s']:.2f} s, slogdet {numeric['slogdet_s']:.3f} s",
        ),
    ]
    data = {
        "det": str(symbolic),
        "rule_s": rule_s,
        "derivation_s": {str(d): v for d, v in derivation.items()},
        "numeric": numeric,
    }
    return rows, data


def confirm(n: int, det: sp.Expr) -> dict:
    """slogdet of the central-difference Jacobian of the real map at size n vs log det."""
    s = np.random.default_rng(SEED).standard_normal(2 * n)
    jac_s, jac = timed(
        lambda: jacobian(lambda v: m.forward(v, m.ALPHA, m.BETA), s, route=central_difference)
    )
    slog_s, (sign, logdet) = timed(lambda: np.linalg.slogdet(jac))
    claim = float(sp.log(det.subs({m.D: n, m.beta: sp.Rational(str(m.BETA))})).evalf(30))
    error = abs(float(logdet) - claim) if sign == 1 else math.inf
    return {
        "D": n,
        "logdet": float(logdet),
        "claim": claim,
        "error": error,
        "jacobian_s": jac_s,
        "slogdet_s": slog_s,
    }
