"""Init: the model (fan-in and fan-out), its derivation, its claims and template data."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from typing import Any, ClassVar

import sympy as sp

from derive import inputs
from derive.errors import InputError
from derive.params import Int, Param, show
from derive.problems.base import Problem, Result, json_float, json_number
from derive.problems.init_variance import algebra as a
from derive.problems.init_variance import claims as ic
from derive.verify import Claim
from derive.verify.routes import SAMPLING_SIGMAS

#: The handout's sizes, and the largest a set may give.
DEFAULT_IN, DEFAULT_OUT, MAX_FAN = 100, 50, 4096
#: derive eval's rules: the variance result and, for uniform weights, the bound result.
RULES = {"xavier": ("xavier_sigma2", None), "xavier_uniform": ("xavier_sigma2", "xavier_bound"),
         "he": ("he_sigma2", None), "he_uniform": ("he_sigma2", "he_bound")}
MAX_EVAL_FAN = 10**9

RESULTS: dict[str, str] = {
    "forward_variance": "Var(z_j) = n_in sigma^2 v for v = E[x_i^2].",
    "forward_sigma2": "The sigma^2 that preserves the forward variance: 1/n_in.",
    "backward_variance": "Var(xbar_i) = n_out sigma^2 g for g the upstream gradient's variance.",
    "backward_sigma2": "The sigma^2 that preserves the backward variance: 1/n_out.",
    "xavier_sigma2": "Xavier's compromise: 2/(n_in + n_out).",
    "uniform_variance": "Var U(-a, a) = a^2/3.",
    "xavier_bound": "The Xavier uniform bound: sqrt(6/(n_in + n_out)).",
    "relu_ratio": "E[relu(z)^2] / Var(z) for z symmetric about 0: 1/2.",
    "he_gain": "Var(z') / Var(z) across a ReLU and a layer: n_in sigma^2 / 2.",
    "he_sigma2": "He's variance: 2/n_in.",
    "he_bound": "The He uniform bound: sqrt(6/n_in).",
    "lecun_relu_gain": "The per-layer gain with sigma^2 = 1/n_in after ReLUs: 1/2.",
    "xavier_at": "Xavier's variance at the given sizes (exact).",
    "xavier_std_at": "Its standard deviation (exact).",
    "xavier_bound_at": "The Xavier uniform bound at the given sizes (exact).",
    "he_at": "He's variance at the given n_in (exact).",
    "he_std_at": "Its standard deviation (exact).",
    "he_bound_at": "The He uniform bound at the given n_in (exact).",
    "stack_profile": "Sampled E[m_l / m_1] at layers 5, 10, 15, 20 of deep stacks (xavier, he, "
                     "lecun_relu): measured means.",
}


class Init(Problem):
    """Xavier and He initialisation from preserving variances through a layer."""

    key = "init"
    title = "Weight initialisation that preserves variance"
    MAIN = "he_sigma2"
    RESULTS: ClassVar[dict[str, str]] = RESULTS
    CLAIM_NAMES: ClassVar[dict[str, str]] = {
        "forward_variance": "$\\operatorname{Var}(z_j)$", "forward_sigma2": "forward $\\sigma^2$",
        "backward_variance": "$\\operatorname{Var}(\\bar{x}_i)$",
        "backward_sigma2": "backward $\\sigma^2$", "xavier_sigma2": "Xavier's $\\sigma^2$",
        "uniform_variance": "$\\operatorname{Var} U(-a, a)$", "xavier_bound": "Xavier's bound",
        "relu_ratio": "$E[\\operatorname{relu}(z)^2] / \\operatorname{Var}(z)$",
        "he_gain": "gain through a ReLU layer", "he_sigma2": "He's $\\sigma^2$",
        "he_bound": "He's bound", "lecun_relu_gain": "gain with $\\sigma^2 = 1/n_{in}$, ReLU",
        "xavier_at": "Xavier's $\\sigma^2$, given sizes", "xavier_std_at": "Xavier's $\\sigma$",
        "xavier_bound_at": "Xavier's bound, given sizes", "he_at": "He's $\\sigma^2$, given "
        "$n_{in}$", "he_std_at": "He's $\\sigma$", "he_bound_at": "He's bound, given $n_{in}$",
        "stack_profile": "the deep stacks' second moments",
    }
    SYMBOLS = ("a", "g", "n_in", "n_out", "sigma", "v")
    LABELS = ("title", "forward", "backward", "relu")
    SHOWN = ("n_in", "n_out")
    PARAMS = (
        Param("n_in", Int(1, MAX_FAN), DEFAULT_IN,
              "a layer's inputs (fan-in) in the worked numbers"),
        Param("n_out", Int(1, MAX_FAN), DEFAULT_OUT,
              "a layer's outputs (fan-out) in the worked numbers"),
    )

    def __init__(self, n_in: int = DEFAULT_IN, n_out: int = DEFAULT_OUT) -> None:
        self.n_in, self.n_out = n_in, n_out

    @cached_property
    def formulas(self) -> dict[str, sp.Expr]:
        """The symbolic results (``algebra.derivation``)."""
        return a.derivation()

    # -- derivation ---------------------------------------------------------------------------
    def derive(self) -> dict[str, Result]:
        f, s2 = self.formulas, a.SIGMA**2
        lhs = {"forward_sigma2": s2, "backward_sigma2": s2, "xavier_sigma2": s2, "he_sigma2": s2,
               "xavier_bound": a.A, "he_bound": a.A}
        out = {k: Result(k, e, lhs.get(k), value=e) for k, e in f.items()}
        sizes = {a.N_IN: self.n_in, a.N_OUT: self.n_out}
        for rule in ("xavier", "he"):
            var = sp.simplify(f[f"{rule}_sigma2"].subs(sizes))
            bound = sp.sqrt(sp.simplify(f[f"{rule}_bound"].subs(sizes) ** 2))
            numbers = {f"{rule}_at": var, f"{rule}_std_at": sp.sqrt(var),
                       f"{rule}_bound_at": bound}
            out.update({k: Result(k, v, value=json_number(v)) for k, v in numbers.items()})
        out["stack_profile"] = self._profile()
        return out

    @cached_property
    def profiles(self) -> dict:
        return ic.stack_profiles(self.formulas)

    def _profile(self) -> Result:
        means = {name: [json_float(p[layer][0]) for layer in ic.PROFILE_LAYERS]
                 for name, p in self.profiles.items()}
        rows = sp.Matrix([[sp.Float(v) for v in vs] for vs in means.values()])
        return Result("stack_profile", rows, value={"layer": list(ic.PROFILE_LAYERS), **means})

    # -- claims -------------------------------------------------------------------------------
    def claims(self) -> Iterator[Claim]:
        f, r = self.formulas, self.results
        numbers = {k: r[k].expr for k in r if k.endswith("_at")}
        yield from ic.enumeration_claims(f)
        yield from ic.integration_claims(f, numbers)
        yield from ic.layer_claims(f, (self.n_in, self.n_out))
        yield from ic.uniform_claims(f, (self.n_in, self.n_out))
        yield from ic.stack_claims(f, self.profiles)

    # -- numbers in and out (derive eval) -----------------------------------------------------
    def eval(self, data: Any) -> dict[str, Any]:
        """``variance``, ``std`` (and ``bound`` for a uniform rule) of ``rule`` at
        ``fan_in`` and ``fan_out`` (JSON), from the key's formulas, with their exact text."""
        inputs.mapping(data, "input", ["rule", "fan_in"], ["fan_out"])
        rule = data["rule"]
        if rule not in RULES:
            raise InputError(f"input.rule: expected one of {', '.join(RULES)}, got {show(rule)}")
        sizes = {a.N_IN: _fan(data["fan_in"], "input.fan_in")}
        if rule.startswith("xavier"):
            if "fan_out" not in data:
                raise InputError("input: missing key 'fan_out'; the xavier rules need fan_in "
                                 "and fan_out")
            sizes[a.N_OUT] = _fan(data["fan_out"], "input.fan_out")
        elif "fan_out" in data:
            _fan(data["fan_out"], "input.fan_out")  # checked, though the he rules ignore it
        var_key, bound_key = RULES[rule]
        exact = {"variance": self.formulas[var_key].subs(sizes)}
        exact["std"] = sp.sqrt(exact["variance"])
        if bound_key:
            exact["bound"] = self.formulas[bound_key].subs(sizes).doit()
        return {**{k: float(v) for k, v in exact.items()}, "exact": {k: str(v) for k, v in
                                                                   exact.items()}}

    # -- rendering ----------------------------------------------------------------------------
    def question_data(self) -> dict[str, Any]:
        return {"n_in": self.n_in, "n_out": self.n_out}

    def context(self) -> dict[str, Any]:
        return {**super().context(), "n_in": self.n_in, "n_out": self.n_out, **self.stated()}

    def stated(self) -> dict[str, Any]:
        """The settings of the checks."""
        return {"stack": dict(ic.STACK), "profile_layers": list(ic.PROFILE_LAYERS),
                "draws": ic.DRAWS, "sigmas": SAMPLING_SIGMAS, "digits": ic.DPS,
                "terms": list(ic.TERMS), "seed": ic.SEED}


def _fan(value: Any, field: str) -> int:
    """A whole number of units, 1 to ``MAX_EVAL_FAN``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_EVAL_FAN:
        raise InputError(f"{field}: expected a whole number from 1 to {MAX_EVAL_FAN}, got "
                         f"{show(value)}")
    return value
