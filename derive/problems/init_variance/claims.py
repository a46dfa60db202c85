"""The claims of the init key, each checked without its derivation.

* **Exact enumeration**: inputs and weights on small finite supports (the input with a
  nonzero mean, the weights symmetric), every combination for n = 1, 2, 3 terms, in rational
  arithmetic: the variance of a layer's output, of its backward gradient, and of a layer
  after a ReLU of a symmetric input, against the formulas.
* **Numerical integration** at 30 digits: the variance of U(-a, a), E[relu(z)^2] / Var(z)
  for several symmetric densities (normal, uniform, Laplace), and the worked numbers.
* **Sampling** with a seeded generator, the error in standard errors of the sample mean:
  one output entry per independent draw of x and a weight column; uniform weights; and deep
  stacks of independent layers (``STACK``), one replicate per stack, where by the tower
  property E[m_l / m_1] = gain^(l - 1) exactly (m_l: the mean square of layer l).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from fractions import Fraction

import mpmath
import numpy as np
import sympy as sp

from derive.problems.init_variance import algebra as a
from derive.verify import Claim, rel_error
from derive.verify.routes import SAMPLING_SIGMAS, sampled

#: Finite supports (equally likely values): an input with mean 1/2, symmetric weights and
#: upstream gradients, and a symmetric pre-activation for the ReLU.
X_VALUES = (Fraction(-1), Fraction(1, 2), Fraction(2))
W_VALUES = (Fraction(-3, 2), Fraction(3, 2))
G_VALUES = (Fraction(-2), Fraction(0), Fraction(2))
Z_VALUES = (Fraction(-2), Fraction(-1), Fraction(1), Fraction(2))
TERMS = (1, 2, 3)
SEED, DRAWS = 20261202, 4000
#: The deep stacks: width, depth, independent replicates, rows per replicate, the layers
#: the key tabulates.
STACK = {"width": 64, "depth": 20, "replicates": 200, "rows": 8}
PROFILE_LAYERS = (5, 10, 15, 20)
#: Sizes the single-layer sampling runs at besides the given ones.
OTHER_SIZES = ((30, 70), (1, 1))
DPS, QUAD_TOL, EXACT = 30, 1e-25, 0.0


def _moment(values: tuple[Fraction, ...], k: int) -> Fraction:
    return sum(v**k for v in values) / len(values)


def _enumerated_variance(left: tuple, right: tuple, n: int, relu: bool = False) -> Fraction:
    """Var(sum_k f(u_k) w_k) over every combination of n values of u and of w."""
    total, square, count = Fraction(0), Fraction(0), 0
    for us in itertools.product(left, repeat=n):
        for ws in itertools.product(right, repeat=n):
            s = sum((max(u, 0) if relu else u) * w for u, w in zip(us, ws, strict=True))
            total, square, count = total + s, square + s * s, count + 1
    return square / count - (total / count) ** 2


def _at(expr: sp.Expr, values: dict) -> Fraction:
    v = sp.Rational(sp.simplify(expr.xreplace({k: sp.Rational(str(x)) for k, x in values.items()})))
    return Fraction(int(v.p), int(v.q))


def enumeration_claims(f: dict[str, sp.Expr]) -> Iterator[Claim]:
    """Layer variances on finite supports against the formulas, exactly."""
    s2, v, g = _moment(W_VALUES, 2), _moment(X_VALUES, 2), _moment(G_VALUES, 2)
    tau2 = _moment(Z_VALUES, 2)
    bad = dict.fromkeys(("forward_variance", "backward_variance", "he_gain"), 0)
    for n in TERMS:
        values = {a.N_IN: n, a.N_OUT: n, a.SIGMA: None, a.V: v, a.G: g}
        rules = {k: f[k].subs(a.SIGMA**2, sp.Rational(str(s2))) for k in bad}
        bad["forward_variance"] += (_enumerated_variance(X_VALUES, W_VALUES, n)
                                    != _at(rules["forward_variance"], _known(values)))
        bad["backward_variance"] += (_enumerated_variance(G_VALUES, W_VALUES, n)
                                     != _at(rules["backward_variance"], _known(values)))
        he = _enumerated_variance(Z_VALUES, W_VALUES, n, relu=True) / tau2
        bad["he_gain"] += he != _at(rules["he_gain"], _known(values))
    sizes = (f"every combination of n = {', '.join(map(str, TERMS))} terms; x in "
             f"{_set(X_VALUES)}, W in {_set(W_VALUES)}, the gradient in {_set(G_VALUES)}, "
             f"z in {_set(Z_VALUES)}")
    for key, count in bad.items():
        yield Claim.measured(key, "exact enumeration of a layer's output variance", sizes,
                             count, EXACT)


def _known(values: dict) -> dict:
    return {k: x for k, x in values.items() if x is not None}


def _set(values: tuple) -> str:
    return "{" + ", ".join(map(str, values)) + "}"


def integration_claims(f: dict[str, sp.Expr], numbers: dict[str, sp.Expr]) -> Iterator[Claim]:
    """Moments by numerical integration at ``DPS`` digits against the exact results."""
    with mpmath.workdps(DPS):
        def uniform_var(bound: mpmath.mpf) -> mpmath.mpf:
            return mpmath.quad(lambda w: w**2 / (2 * bound), [-bound, bound])

        bounds = [mpmath.mpf(1) / 5, mpmath.mpf(1), mpmath.mpf(3)]
        got = [uniform_var(b) for b in bounds]
        want = [mpmath.mpf(sp.N(f["uniform_variance"].subs(a.A, sp.Rational(str(b))), DPS))
                for b in ("1/5", "1", "3")]
        yield _quad("uniform_variance", got, want, "a = 1/5, 1, 3")
        half = [_relu_fraction(d) for d in _densities()]
        ratio = mpmath.mpf(sp.N(f["relu_ratio"], DPS))
        yield _quad("relu_ratio", half, [ratio] * len(half),
                    "normal (tau = 1/2, 1, 3), uniform on (-1, 1), Laplace (b = 1)")
        for rule in ("xavier", "he"):
            bound = mpmath.mpf(sp.N(numbers[f"{rule}_bound_at"], DPS))
            var = mpmath.mpf(sp.N(numbers[f"{rule}_at"], DPS))
            std = mpmath.mpf(sp.N(numbers[f"{rule}_std_at"], DPS))
            where = "the given sizes"
            yield _quad(f"{rule}_at", [uniform_var(bound)], [var], where)
            yield _quad(f"{rule}_bound_at", [uniform_var(bound)], [bound**2 / 3], where)
            yield _quad(f"{rule}_std_at", [mpmath.quad(lambda z, s=std: z**2 * _normal(z, s),
                                                       [-mpmath.inf, mpmath.inf])], [var], where)


def _normal(z: mpmath.mpf, s: mpmath.mpf) -> mpmath.mpf:
    return mpmath.exp(-(z**2) / (2 * s**2)) / mpmath.sqrt(2 * mpmath.pi * s**2)


def _densities() -> list:
    """Symmetric densities with their support."""
    out = [(_normal_with(mpmath.mpf(s)), mpmath.inf) for s in ("0.5", "1", "3")]
    out.append((lambda z: mpmath.mpf(1) / 2, mpmath.mpf(1)))
    out.append((lambda z: mpmath.exp(-abs(z)) / 2, mpmath.inf))
    return out


def _normal_with(s: mpmath.mpf):
    return lambda z: _normal(z, s)


def _relu_fraction(density: tuple) -> mpmath.mpf:
    """E[relu(z)^2] / Var(z): z^2 over the positive half of the density, over the whole."""
    f, top = density
    half = mpmath.quad(lambda z: z**2 * f(z), [0, top])
    whole = mpmath.quad(lambda z: z**2 * f(z), [-top, 0, top])
    return half / whole


def _quad(key: str, got: list, want: list, sizes: str) -> Claim:
    error = max(rel_error(np.array([g], dtype=object), np.array([w], dtype=object))
                for g, w in zip(got, want, strict=True))
    return Claim.measured(key, f"numerical integration, {DPS} digits", sizes, error, QUAD_TOL)


def _z(mean: float, err: float, exact: float) -> float:
    return abs(mean - exact) / err


def layer_claims(f: dict[str, sp.Expr], sizes: tuple[int, int]) -> Iterator[Claim]:
    """One output entry per independent draw: E[z^2] and E[xbar^2] against the formulas,
    and the gains at the preserving variances; uniform weights' variance."""
    rng, worst = np.random.default_rng(SEED), {}
    for n_in, n_out in (sizes, *OTHER_SIZES):
        xavier = float(f["xavier_sigma2"].subs({a.N_IN: n_in, a.N_OUT: n_out}))
        cases = {  # key: (terms, E[u^2], mean of u, sigma^2, formula's value)
            "forward_variance": (n_in, 1.25, 0.5, xavier, n_in * xavier * 1.25),
            "backward_variance": (n_out, 1.0, 0.0, xavier, n_out * xavier * 1.0),
            "forward_sigma2": (n_in, 1.0, 0.0, float(f["forward_sigma2"].subs(a.N_IN, n_in)),
                               1.0),
            "backward_sigma2": (n_out, 1.0, 0.0,
                                float(f["backward_sigma2"].subs(a.N_OUT, n_out)), 1.0),
        }
        for key, (n, second, mu, s2, exact) in cases.items():
            sd = math.sqrt(second - mu**2)

            def draw(g, k, n=n, mu=mu, sd=sd, s2=s2):
                u = mu + sd * g.standard_normal((k, n))
                return np.sum(u * math.sqrt(s2) * g.standard_normal((k, n)), axis=1) ** 2

            mean, err = sampled(draw, DRAWS, rng)
            worst[key] = max(worst.get(key, 0.0), _z(mean, err, exact))
    tried = "; ".join(f"{i}x{o}" for i, o in (sizes, *OTHER_SIZES))
    what = f"{DRAWS} draws of x and a weight column each, n_in x n_out = {tried}, seed {SEED}"
    for key, z in worst.items():
        yield Claim.measured(key, _SAMPLING, what, z, SAMPLING_SIGMAS)


_SAMPLING = f"sampling: |sample mean - formula| in standard errors (at most {SAMPLING_SIGMAS:g})"


def uniform_claims(f: dict[str, sp.Expr], sizes: tuple[int, int]) -> Iterator[Claim]:
    """Weights drawn from U(-a, a) at the derived bounds: their variance against the rule."""
    rng = np.random.default_rng(SEED + 1)
    subs = {a.N_IN: sizes[0], a.N_OUT: sizes[1]}
    for rule in ("xavier", "he"):
        bound = float(f[f"{rule}_bound"].subs(subs))
        mean, err = sampled(lambda g, k, b=bound: g.uniform(-b, b, k) ** 2, DRAWS * 10, rng)
        z = _z(mean, err, float(f[f"{rule}_sigma2"].subs(subs)))
        yield Claim.measured(f"{rule}_bound", _SAMPLING,
                             f"{DRAWS * 10} weights, the given sizes, seed {SEED + 1}", z,
                             SAMPLING_SIGMAS)


def stack_profiles(f: dict[str, sp.Expr]) -> dict[str, dict[int, tuple[float, float]]]:
    """Deep stacks of independent square layers, per rule: layer -> (mean of m_l / m_1 over
    replicates, its standard error).  Each rule draws its own stacks: a ReLU is positively
    homogeneous, so shared draws would make one rule's ratios a fixed multiple of another's."""
    n, depth, reps, rows = (STACK[k] for k in ("width", "depth", "replicates", "rows"))
    sub = {a.N_IN: n, a.N_OUT: n}
    rules = {"xavier": (float(f["xavier_sigma2"].subs(sub)), False),
             "he": (float(f["he_sigma2"].subs(sub)), True),
             "lecun_relu": (float(f["forward_sigma2"].subs(sub)), True)}
    rng = np.random.default_rng(SEED + 2)
    out = {}
    for name, (s2, relu) in rules.items():
        h, squares = rng.standard_normal((reps, rows, n)), []
        for layer in range(depth):
            z = h @ (math.sqrt(s2) * rng.standard_normal((reps, n, n)))
            squares.append(np.mean(z**2, axis=(1, 2)))
            h = np.maximum(z, 0.0) if relu and layer < depth - 1 else z
        ratios = np.array(squares) / squares[0]  # (depth, reps)
        out[name] = {layer: sampled(lambda _g, _k, r=ratios[layer - 1]: r, reps, rng)
                     for layer in PROFILE_LAYERS}
    return out


def stack_claims(f: dict[str, sp.Expr], profiles: dict) -> Iterator[Claim]:
    """E[m_l / m_1] = gain^(l - 1): the rules (gain 1) and sigma^2 = 1/n_in after ReLUs."""
    # Xavier's and He's variances are claimed to preserve the second moment (gain 1);
    # 1/n_in after ReLUs is claimed to scale it by the derived gain per layer.
    gains = {"xavier": 1.0, "he": 1.0, "lecun_relu": float(f["lecun_relu_gain"])}
    keys = {"xavier": "xavier_sigma2", "he": "he_sigma2", "lecun_relu": "lecun_relu_gain"}
    sizes = (f"{STACK['replicates']} independent stacks of {STACK['depth']} layers of width "
             f"{STACK['width']}, {STACK['rows']} rows each, seed {SEED + 2}")
    worst_all = 0.0
    for name, profile in profiles.items():
        # Layer 1 is the reference (m_1 / m_1 = 1): no spread to test.
        z = max(_z(m, e, gains[name] ** (layer - 1)) for layer, (m, e) in profile.items()
                if layer > 1)
        worst_all = max(worst_all, z)
        yield Claim.measured(keys[name], _SAMPLING + ", at layers " +
                             ", ".join(map(str, PROFILE_LAYERS)), sizes, z, SAMPLING_SIGMAS)
    yield Claim.measured("stack_profile", _SAMPLING, sizes, worst_all, SAMPLING_SIGMAS)
