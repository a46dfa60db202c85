"""A recurrent cell in a regime its author names (``RecurrentProblem.LIMIT``), for any cell.

A regime sets saturating variables to an end of their range at steps t and t+1
(``derive.model.limit``: ``f = 0`` for a gate f = σ(z)); their derivative factors
(σ' = f(1 - f), tanh' = 1 - n^2) then vanish.  Derived, by substituting the values into the
cell's own results:

1. ``backward_map_limit``: the backward map J in the regime, and each state's adjoint
   ``<state>_bar_limit`` (through the states' adjoints at t+1 and the loss);
2. ``backward_map_limit_constant``: whether J is then one fixed matrix; if so its
   ``_eigenvalues``, whether it is ``_idempotent`` and its powers J^k (``_powers``, whose
   value says what they do to a gradient: ``unchanged`` J = I, ``fixed`` J^2 = J,
   ``vanish`` all |λ| < 1, ``explode`` some |λ| > 1, ``bounded`` |λ| <= 1 with the unit
   ones semisimple, ``grow`` a Jordan block at |λ| = 1);
3. ``weights_bar_limit``: each weight's summand in the regime, and whether it vanishes.

The claims run the cell with each limited variable's argument shifted by ±``SHIFT`` (so it is
within e^-25 of its end) and compare with complex-step probes of that forward pass.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np
import sympy as sp

from derive.engine.cell import Cell, Quantity, bar, param_bar, timed
from derive.engine.functions import argument
from derive.engine.numeric import evaluate_at, forward
from derive.errors import InputError
from derive.model.limit import ends, parse_limit, saturating
from derive.problems.base import Result, json_number, json_rows, truth
from derive.problems.recurrent_docs import LIMIT_CLAIM_NAMES
from derive.verify import Claim
from derive.verify.gradcheck import (
    Case,
    backward_map_by_probes,
    make_data,
    probes,
    reference,
    scalar_data,
)

#: The number of steps J^k is written for.
K = sp.Symbol("k", integer=True, positive=True)
#: How far a limited variable's argument is moved towards its end (σ(z - 30) < 1e-11 for
#: the |z| < 5 of the runs): far enough for the claims' 1e-8, near enough for float64.
SHIFT = 30
TOLERANCE = 1e-8
STEPS, SEED = 16, 13


def install(cls: type) -> None:
    """A problem class's regime: ``LIMIT`` checked as a set file's would be, the part
    ``limit`` added to its ``LABELS`` (after ``map``), its claims' names and their group."""
    if cls.LIMIT is None:
        return
    cls.LIMIT = parse_limit(cls.CELL, cls.LIMIT, f"{cls.__name__}.LIMIT")
    if "limit" not in cls.LABELS:
        parts = list(cls.LABELS)
        parts.insert(parts.index("map") + 1 if "map" in parts else len(parts), "limit")
        cls.LABELS = tuple(parts)
    if K.name not in cls.SYMBOLS:  # the part prints the number of steps k
        cls.SYMBOLS = (*cls.SYMBOLS, K.name)
    if cls.MAP_GROUP == "Backward map":
        cls.MAP_GROUP = "Backward map and the regime"
    states = {f"{s}_bar_limit": "{lhs} in the regime" for s in cls.CELL.states}
    cls.CLAIM_NAMES = cls.CLAIM_NAMES | LIMIT_CLAIM_NAMES | states


def values(cell: Cell, limit: dict[str, int]) -> list[tuple[sp.Expr, int, sp.Expr]]:
    """The regime as the question and the key state it: each variable at step t, its value
    and where its argument tends (-oo for the lower end of the range, oo for the upper)."""
    kinds = saturating(cell)
    return [(timed(u), v, sp.oo if v == ends(kinds[u])[1] else -sp.oo)
            for u, v in limit.items()]


def context(problem: Any) -> dict[str, Any]:
    """What the key's part on the regime prints (results only, arranged)."""
    r, cell = problem.results, problem.cell
    lim, kinds = r["backward_map_limit"].expr, saturating(cell)
    step = cell.at_step(0)
    constant = r["backward_map_limit_constant"].value
    rows = zip(r["weights_bar_limit"].expr, r["weights_bar_limit"].value.values(), strict=True)
    rows = list(rows)
    return {
        "values": values(cell, problem.LIMIT),
        # The derivative factors that vanish, as the registry writes them (f(1 - f)).
        "factors": [kinds[u].derivative(timed(u), argument(cell.rhs(sp.Symbol(u))).xreplace(step))
                    for u in problem.LIMIT],
        "map": lim[0, 0] if lim.shape == (1, 1) else lim,
        "adjoints": [r[f"{s.name}_bar_limit"] for s in cell.states],
        "constant": constant,
        "eigenvalues": list(r["backward_map_limit_eigenvalues"].expr) if constant else None,
        "powers": _powers_context(r) if constant else None,
        "k": K,
        "vanishing": [(row[0], row[1], row[3]) for row, zero in rows if zero],
        "remaining": [(row[0], row[2]) for row, zero in rows if not zero],
    }


def _powers_context(r: dict[str, Result]) -> dict[str, Any]:
    power = r["backward_map_limit_powers"]
    one = power.expr.shape == (1, 1)  # a single state: J and J^k are numbers
    return {"expr": power.expr[0, 0] if one else power.expr, "label": power.value,
            "idempotent": r["backward_map_limit_idempotent"].value}


def at_limit(limit: dict[str, int]) -> dict[sp.Expr, int]:
    """The regime's values at steps t and t+1, as a substitution."""
    return {timed(u, k): v for u, v in limit.items() for k in (0, 1)}


def _zeroed(e: sp.Expr) -> sp.Expr:
    # A sum whose terms cancel once the values are in is written 0, else as it stands.
    return sp.S.Zero if sp.expand(e) == 0 else e


def derive_limit(problem: Any, derived: dict[str, Result]) -> dict[str, Result]:
    """Every result of the regime ``problem.LIMIT`` (see the module's docstring)."""
    at = at_limit(problem.LIMIT)
    lim = derived["backward_map"].expr.xreplace(at).applyfunc(_zeroed)
    if lim.has(sp.zoo, sp.nan, sp.oo, -sp.oo):  # a factor 1/f at f = 0: no finite limit
        raise InputError(f"limit: the backward map of {problem.CELL.name} has no finite value "
                         "in this regime (a derivative divides by a limited variable)")
    constant = all(e.is_number for e in lim)
    out = {"backward_map_limit": Result("backward_map_limit", lim,
                                        value=json_rows(lim) if constant else None)}
    rows = problem.adjoints.state_rows()
    for s in problem.cell.states:
        key, full = f"{s.name}_bar_limit", rows[bar(s.name)]
        out[key] = Result(key, _zeroed(full.xreplace(at)), bar(s.name), full)
    out["backward_map_limit_constant"] = truth("backward_map_limit_constant", constant)
    if constant:
        out |= _powers(lim)
    out["weights_bar_limit"] = _weights(problem, derived, at)
    return out


def vanishing(term: sp.Expr, at: dict) -> list[sp.Expr]:
    """The factors of a product that are 0 at the regime's values."""
    return [a for a in sp.Mul.make_args(term) if a.subs(at) == 0]


def _powers(lim: sp.Matrix) -> dict[str, Result]:
    """Eigenvalues, idempotence and powers of a constant limit map."""
    eig = sorted(lim.eigenvals(multiple=True), key=sp.default_sort_key)
    key = "backward_map_limit_eigenvalues"
    out = {key: Result(key, sp.Tuple(*eig), value=[json_number(v) for v in eig])}
    out |= {"backward_map_limit_idempotent": truth("backward_map_limit_idempotent",
                                                   (lim * lim - lim).is_zero_matrix)}
    power = (lim**K).applyfunc(sp.simplify)
    out["backward_map_limit_powers"] = Result(
        "backward_map_limit_powers", power, sp.MatPow(sp.MatrixSymbol("J", *lim.shape), K),
        value=regime(lim, eig),
    )
    return out


def regime(lim: sp.Matrix, eig: list[sp.Expr]) -> str:
    """What the powers of a constant map do (the labels of the module's docstring)."""
    n = lim.rows
    if lim == sp.eye(n):
        return "unchanged"
    if not lim.is_zero_matrix and (lim * lim - lim).is_zero_matrix:
        return "fixed"
    radius = max(sp.Abs(v) for v in eig)
    if bool(radius < 1):
        return "vanish"
    if bool(radius > 1):
        return "explode"
    unit = [v for v in dict.fromkeys(eig) if sp.Abs(v) == 1]
    semisimple = all(len((lim - v * sp.eye(n)).nullspace()) == eig.count(v) for v in unit)
    return "bounded" if semisimple else "grow"


def _weights(problem: Any, derived: dict[str, Result], at: dict) -> Result:
    """Each weight's summand with the non-state adjoints written through the states' (at
    step t), in the regime, beside the factors that are 0 there."""
    states = {bar(s.name) for s in problem.cell.states}
    now = {k: v for k, v in problem.adjoints.through_states().items() if k not in states}
    rows, vanish = [], {}
    for w in problem.weights:
        full = derived[f"{w}_bar"].expr.function.xreplace(now)
        limited = _zeroed(full.xreplace(at))
        # A factor f^2 that is 0 is named by its base f.
        zero = [a.base if a.is_Pow else a for a in vanishing(full, at)]
        rows.append(sp.Tuple(param_bar(w), full, limited, sp.Tuple(*zero)))
        vanish[w] = limited == 0
    return Result("weights_bar_limit", sp.Tuple(*rows), value=vanish)


# -- claims ----------------------------------------------------------------------------------
def shifted(cell: Cell, limit: dict[str, int]) -> Cell:
    """The cell with each limited variable's argument moved by ±``SHIFT`` towards its end."""
    kinds = saturating(cell)
    pairs, moves = [], {}
    for u, e in cell.assignments:
        if u.name in limit:
            moves[u.name] = (1 if limit[u.name] == ends(kinds[u.name])[1] else -1) * SHIFT
            e = e.func(argument(e) + moves[u.name])
        pairs.append((u, e))
    # A cell written as text runs its own reading, moved the same way.
    interpreted = cell.interpreted and cell.interpreted.shifted(moves)
    return dataclasses.replace(cell, assignments=tuple(pairs), interpreted=interpreted)


def _gap(got: Any, ref: Any, scale: float = 1.0) -> float:
    """Worst absolute difference, relative to the reference (or ``scale``) beyond 1."""
    got, ref = np.asarray(got, dtype=complex), np.asarray(ref, dtype=complex)
    if got.shape != ref.shape or not np.all(np.isfinite(got)):
        return float("inf")
    scale = max(1.0, scale, float(np.max(np.abs(ref), initial=0.0)))
    return float(np.max(np.abs(got - ref), initial=0.0) / scale)


def held(key: str, stated: Any, departure: float, method: str, sizes: str,
         departs: str, tolerance: float = TOLERANCE) -> Claim:
    """A stated yes or no against a measured departure from what a yes says.

    A stated True is checked by the departure (``<= tolerance``); a stated False holds
    when the run departs (``departs`` says how; 1 failure when it does not), and any other
    value fails.
    """
    if stated is True:
        return Claim.measured(key, method, sizes, departure, tolerance)
    wrong = not (stated is False and departure > tolerance)
    return Claim.measured(key, f"{method}: {departs}", sizes, float(wrong), 0.0)


def idempotence_claim(stated: Any, departure: float, method: str, sizes: str,
                      tolerance: float = TOLERANCE) -> Claim:
    """The stated idempotence of J's limit against the product of the probed J.

    The product of J over k steps stays at the limit for every k exactly when the limit is
    its own square, so the run measures the fact as ``departure <= tolerance`` (the worst
    distance of the products from the limit), as ``held`` reads it.
    """
    return held("backward_map_limit_idempotent", stated, departure, method, sizes,
                "the products of J depart from the limit", tolerance)


@dataclasses.dataclass
class Run:
    """The shifted cell's forward pass on one random case, with J probed at every step."""

    cell: Cell
    case: Case
    params: dict
    inputs: dict
    initial: dict
    traj: dict
    probed: list  # J at steps 2..T (mapping the adjoints of step k to those of k-1)

    @classmethod
    def of(cls, problem: Any, steps: int = STEPS, seed: int = SEED) -> Run:
        cell, case = shifted(problem.cell, problem.LIMIT), Case(steps, seed=seed)
        params, inputs, initial = scalar_data(cell, case)
        traj = forward(cell, params, inputs, initial)
        probed = [backward_map_by_probes(cell, params, inputs, initial, k)
                  for k in range(2, steps + 1)]
        return cls(cell, case, params, inputs, initial, traj, probed)


def limit_claims(problem: Any) -> Iterator[Claim]:
    """The regime's results against the forward pass of the shifted cell."""
    run, r = Run.of(problem), problem.results
    names = ", ".join(problem.LIMIT)
    sizes = (f"T = {run.case.T}, |w| \u2264 1, seed {run.case.seed}, every step; the "
             f"arguments of {names} shifted by {SHIFT} towards the regime")
    method = "complex step on the forward pass: J probed at every step"
    lim = r["backward_map_limit"].expr
    gap = max(_gap(j, np.array(evaluate_at(lim, run.traj, run.params, k), dtype=float))
              for k, j in enumerate(run.probed, 1))
    yield Claim.measured("backward_map_limit", method, sizes, gap, TOLERANCE)
    spread = max(_gap(j, run.probed[0]) for j in run.probed)
    stated = r["backward_map_limit_constant"].value
    yield held("backward_map_limit_constant", stated, spread, f"{method}, its spread", sizes,
               "J differs between steps")
    if "backward_map_limit_powers" in r:
        yield from _power_claims(r, run, method, sizes)
    yield from _adjoint_claims(problem, run, sizes)


def _power_claims(r: dict, run: Run, method: str, sizes: str) -> Iterator[Claim]:
    """Eigenvalues (the characteristic polynomial of each probed J), idempotence and J^k
    (the products of the probed J over k steps)."""
    eig = np.array([complex(v) for v in r["backward_map_limit_eigenvalues"].expr])
    poly = max(_gap(np.poly(j), np.poly(eig)) for j in run.probed)
    yield Claim.measured("backward_map_limit_eigenvalues", f"{method}: its characteristic "
                         "polynomial", sizes, poly, TOLERANCE)
    lim = np.array(r["backward_map_limit"].value, dtype=float)
    power = r["backward_map_limit_powers"].expr
    product, departure, gap = np.eye(len(lim)), 0.0, 0.0
    for k, j in enumerate(run.probed, 1):
        product = product @ j
        departure = max(departure, _gap(product, lim))
        gap = max(gap, _gap(product, _numbers(power.subs(K, k))))
    route = f"{method}: products over k = 1..{len(run.probed)} steps"
    yield Claim.measured("backward_map_limit_powers", route, sizes, gap, TOLERANCE)
    stated = r["backward_map_limit_idempotent"].value
    yield idempotence_claim(stated, departure, route, sizes)


def _numbers(m: sp.Matrix) -> np.ndarray:
    """A matrix of numbers as complex floats; NaN where an entry is no number."""
    try:
        return np.array(m, dtype=complex)
    except TypeError:
        return np.full(m.shape, np.nan)


def _adjoint_claims(problem: Any, run: Run, sizes: str) -> Iterator[Claim]:
    """The states' adjoints and the weights' gradients in the regime, evaluated on the run
    with the adjoints read off it, against complex steps of its loss.

    A gradient said to vanish is, on the run, the run's distance from the regime times the
    adjoints it sums: it is measured relative to the largest adjoint of the run (a state
    that grows step by step makes its adjoints large).
    """
    data = make_data(run.cell, run.case)
    plist = probes(run.cell, run.case, data)
    ref = reference(run.cell, data, plist, "complex step")
    bars: dict[str, dict[int, float]] = {}
    grads = {}
    for (_, kind, name, k, _), v in zip(plist, ref, strict=True):
        if kind == "var":
            bars.setdefault(name, {})[k] = float(v)
        elif kind == "param":
            grads[name] = float(v)
    losses = {n: [float(a[0, 0]) for a in seq] for n, seq in data.loss_grads.items()}
    r, steps = problem.results, range(1, run.case.T + 1)

    def value(expr: sp.Expr, k: int) -> float:
        return _evaluate(expr, run, bars, losses, k)

    method = "complex step on the forward pass: the adjoints read off it"
    for s in problem.cell.states:  # steps 1..T-1: at T the loss's term is all there is
        expr, before = r[f"{s.name}_bar_limit"].expr, steps[:-1]
        gap = _gap([value(expr, k) for k in before], [bars[s.name][k] for k in before])
        yield Claim.measured(f"{s.name}_bar_limit", method, sizes, gap, TOLERANCE)
    rows = r["weights_bar_limit"].expr
    got = [sum(value(row[2], k) for k in steps) for row in rows]
    largest = max(abs(v) for series in bars.values() for v in series.values())
    gap = _gap(got, [grads[row[0].name] for row in rows], largest)
    yield Claim.measured("weights_bar_limit", f"{method}, summed over the steps", sizes, gap,
                         TOLERANCE)


def _evaluate(expr: sp.Expr, run: Run, bars: dict, losses: dict, k: int) -> float:
    """A derived scalar at step t = k of the run: forward values, adjoints (0 past the
    last step) and the loss's direct terms by their steps."""
    sub: dict[Any, Any] = {}
    for a in sp.sympify(expr).atoms(Quantity):
        j = k + int(a.offset)
        if a.role == "adjoint":
            sub[a] = bars[a.quantity].get(j, 0.0)
        elif a.role == "loss":
            sub[a] = losses[a.quantity][j - 1]
        else:
            sub[a] = run.traj[a.quantity][j]
    sub |= {sp.Symbol(n): v for n, v in run.params.items()}
    return float(sp.N(sp.sympify(expr).xreplace(sub)))  # a lone atom comes back a number
