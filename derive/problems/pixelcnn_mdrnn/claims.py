"""The claims of ``PixelCNNMDRNN``, each checked by a route that shares no step with its
derivation (every route exact, tolerance 0, its error a count of failures):

* counts: the instantiated graphs at further sizes; SymPy sums over the filters' offsets
  of the positions where each offset fits (a closed form by another route); taps of the
  mask arrays built the usual way, (H − |a|)₊(W − |b|)₊, at any size;
* orders: SymPy limits of exact / bound along every direction of growth;
* steps: a round-by-round parallel simulation;
* fields: NumPy adjoint (backward) propagation through masks built as k×k arrays, and
  through a linear MDRNN, for receptive fields, blind spots and contexts.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from functools import cache
from typing import TYPE_CHECKING

import sympy as sp

from derive.engine.graph import polynomial_function, same_growth
from derive.engine.grid import BELOW, NORTH, WEST, count_failures, rounds
from derive.instances.gridsim import mask_array, mask_taps, masked_connections, tap_connections
from derive.problems.pixelcnn_mdrnn.fields import field_claims
from derive.problems.pixelcnn_mdrnn.model import (
    BASE,
    CHECK_C,
    CHECK_D,
    CHECK_HW,
    CHECK_K,
    SLOWER,
    H,
    W,
    at_sizes,
    c,
    d,
    describe,
    fits_filter,
    k,
    literal_mdrnn,
    mdrnn,
    mdrnn_connections,
    pixelcnn,
    pixelcnn_connections,
)
from derive.verify import Claim
from derive.verify.evidence import describe_sizes
from derive.verify.routes import count_mismatch, failures, nonzero_entries

if TYPE_CHECKING:
    from derive.problems.pixelcnn_mdrnn.problem import PixelCNNMDRNN

__all__ = ["count_claims", "example_claims", "field_claims", "order_claims", "step_claims"]

GRAPHS = "instantiated graphs: connections counted edge by edge"
WHERE = describe()
#: Filter sizes of the MDRNN's counts and of the PixelCNN's steps (fewer than ``CHECK_K``).
FEW_K = (1, 3, 5)
#: Sizes of the MDRNNs' step simulations.
RNN_STEP_D, RNN_STEP_HW = range(1, 6), range(1, 9)
#: The single layers (d = 1, one channel) the per-layer counts are checked on.
SINGLE = {"d": 1, "c": 1}
#: One channel: the mask change is checked on these.
GREY = {"c": 1}
#: The example's steps are simulated on its instantiated graphs up to this many units.
SIMULATED_UNITS = 50_000


@cache
def offset_sum(kind: str) -> sp.Expr:
    """Σ over a mask's offsets (a, b) of the positions where it fits, (H − |a|)(W − |b|),
    for symbolic k = 2r + 1 (valid for H, W ≥ r)."""
    a, b, r = sp.symbols("a b r", integer=True, positive=True)
    full_row = W + 2 * power_sum(W - b, b, r)  # offsets −r..r of one row
    above = power_sum((H - a) * full_row, a, r)  # the r rows above the centre
    left = H * power_sum(W - b, b, r)  # the centre row, left of the centre
    total = above + left + (H * W if kind == "B" else 0)
    return sp.expand(total.xreplace({r: (k - 1) / 2}))


def power_sum(expr: sp.Expr, var: sp.Symbol, n: sp.Symbol) -> sp.Expr:
    """Σ_{var=1}^{n} expr for a polynomial expr, term by term (SymPy's sums of powers)."""
    poly = sp.Poly(sp.expand(expr), var)
    return sp.expand(sum(v * sp.summation(var**e, (var, 1, n)) for (e,), v in poly.terms()))


def inside() -> list[dict[str, int]]:
    """The checked sizes where the filter fits the image."""
    grid = itertools.product(CHECK_D, CHECK_K, CHECK_HW, CHECK_HW, CHECK_C)
    points = ({"d": a, "k": b, "H": h, "W": w, "c": e} for a, b, h, w, e in grid)
    return [s for s in points if fits_filter(s)]


def count_claims(p: PixelCNNMDRNN) -> Iterator[Claim]:
    """Connections against the graphs and against sums over the offsets."""
    r = p.results
    # The result as the key states it: c^2 (S_A + (d - 1) S_B).
    pix = sp.expand(r["pixelcnn_connections"].expr)
    by_offsets = c**2 * (offset_sum("A") + (d - 1) * offset_sum("B"))
    yield Claim(
        "pixelcnn_connections",
        GRAPHS,
        WHERE,
        0.0,
        lambda: count_failures(pix, pixelcnn_connections, inside()),
    )
    yield Claim(
        "pixelcnn_connections",
        "symbolic sum over the mask offsets of the positions each reaches",
        "symbolic, k = 2r + 1, H, W >= r",
        0.0,
        lambda: nonzero_entries(pix - by_offsets),
    )
    yield from _layer_claims(p)
    yield from _mask_change_claims(p)
    yield from _mdrnn_count_claims(p)


def _mdrnn_count_claims(p: PixelCNNMDRNN) -> Iterator[Claim]:
    rnn = sp.expand(p.results["mdrnn_connections"].expr)
    rnn_points = [
        {"d": a, "k": b, "H": h, "W": w}
        for a, b, h, w in itertools.product(CHECK_D, FEW_K, CHECK_HW, CHECK_HW)
    ]
    rnn_sum = d * k**2 * sum((H - abs(a)) * (W - abs(b)) for a, b in (BELOW, WEST, NORTH))
    yield Claim(
        "mdrnn_connections",
        GRAPHS,
        describe_sizes(HW=CHECK_HW, d=CHECK_D, k=FEW_K),
        0.0,
        lambda: count_failures(rnn, mdrnn_connections, rnn_points),
    )
    yield Claim(
        "mdrnn_connections",
        "symbolic sum over the three sources' offsets of the positions each reaches",
        "symbolic",
        0.0,
        lambda: nonzero_entries(rnn - rnn_sum),
    )


def _layer_claims(p: PixelCNNMDRNN) -> Iterator[Claim]:
    """S_A and S_B; the exact count on images too small for the filter."""
    s_a, s_b = (sp.expand(e) for e in p.results["pixelcnn_layer_connections"].expr)
    single = [s for s in inside() if s.items() >= SINGLE.items()]

    by_kinds = ((polynomial_function(s_a), "AA"), (polynomial_function(s_b), "BB"))

    def layers_agree(s: dict[str, int]) -> bool:
        return all(
            f(s) == pixelcnn(1, s["k"], s["H"], s["W"], kinds).connections()
            for f, kinds in by_kinds
        )

    yield Claim(
        "pixelcnn_layer_connections",
        "instantiated graphs: one layer of mask A, one of mask B",
        describe(**SINGLE),
        0.0,
        lambda: failures(single, layers_agree),
    )
    yield Claim(
        "pixelcnn_layer_connections",
        "symbolic sum over the mask offsets of the positions each reaches",
        "symbolic, k = 2r + 1, H, W >= r",
        0.0,
        lambda: nonzero_entries(sp.Matrix([s_a - offset_sum("A"), s_b - offset_sum("B")])),
    )
    yield Claim(
        "pixelcnn_small_images",
        "mask arrays tap by tap: sizes where a tap leaves the image, "
        "and where the exact count is wrong",
        "the checked sizes, c = 1",
        0.0,
        lambda: _small_image_error(p),
    )


def _small_image_error(p: PixelCNNMDRNN) -> int:
    """|sizes − recounted| + |wrong − recounted| over the checked range, c = 1."""
    formula = polynomial_function(sp.expand(p.results["pixelcnn_connections"].expr))
    sizes = wrong = 0
    for layers, size, h, w in itertools.product(CHECK_D, CHECK_K, CHECK_HW, CHECK_HW):
        taps = [mask_taps(mask_array(size, kind)) for kind in "AB"]
        if not any(abs(a) > h or abs(b) > w for a, b in taps[1]):
            continue
        sizes += 1
        count = tap_connections(taps[0], h, w) + (layers - 1) * tap_connections(taps[1], h, w)
        wrong += formula({"d": layers, "k": size, "H": h, "W": w, "c": 1}) != count
    stated = p.results["pixelcnn_small_images"].value
    return abs(stated["sizes"] - sizes) + abs(stated["wrong"] - wrong)


def _mask_change_claims(p: PixelCNNMDRNN) -> Iterator[Claim]:
    change_b, change_a = (e.doit() for e in p.results["pixelcnn_mask_change"].expr)
    first_b, later_a = polynomial_function(change_b), polynomial_function(change_a)

    def holds(s: dict[str, int]) -> bool:
        ab = pixelcnn_connections(s)
        return pixelcnn_connections(s, "BB") - ab == first_b(s) and ab - pixelcnn_connections(
            s, "AA"
        ) == later_a(s)

    per_layer = offset_sum("B") - offset_sum("A")
    yield Claim(
        "pixelcnn_mask_change",
        "instantiated graphs with all-B and all-A stacks",
        describe(**GREY),
        0.0,
        lambda: failures([s for s in inside() if s.items() >= GREY.items()], holds),
    )
    yield Claim(
        "pixelcnn_mask_change",
        "symbolic: mask B minus mask A offset sums",
        "symbolic",
        0.0,
        lambda: nonzero_entries(
            sp.Matrix([change_b - c**2 * per_layer, change_a - (d - 1) * c**2 * per_layer])
        ),
    )


GROWTH = "symbolic: exact / bound has a positive finite limit along each growth direction"


def order_claims(p: PixelCNNMDRNN) -> Iterator[Claim]:
    """Each bound against its exact count along every direction of growth."""
    f, r = p.fits, p.results
    cases = {
        "pixelcnn_connections_order": (f["pixelcnn_connections"], [d, k, H, W, c], SLOWER),
        "pixelcnn_steps_order": (f["pixelcnn_steps"], [d, k, H, W], []),
        "mdrnn_connections_order": (f["mdrnn_connections"], [d, k, H, W], []),
        "mdrnn_steps_order": (f["mdrnn_steps"], [d, k, H, W], []),
        "grey_pixelcnn_connections_order": (
            f["pixelcnn_connections"].subs(c, 1),
            [d, k, H, W],
            SLOWER,
        ),
    }
    for key, (exact, symbols, slower) in cases.items():
        bound = r[key].expr.args[0]
        yield Claim(
            key,
            GROWTH,
            "every size growing at rate 0, 1 or 2"
            + (", k no faster than H and W" if slower else ""),
            0.0,
            lambda e=exact, b=bound, x=symbols, s=slower: len(same_growth(e, b, x, BASE, s)),
        )
    yield Claim(
        "pixelcnn_mask_change",
        "symbolic: all-B and all-A counts / the bound have positive finite limits; "
        "the mask-A sum is 0 at k = 1",
        "every size growing at rate 0, 1 or 2, k from 3, no faster than H and W",
        0.0,
        lambda: _mask_change_growth(p),
    )


def _mask_change_growth(p: PixelCNNMDRNN) -> int:
    # Either other mask choice keeps the order once k > 1 (at k = 1, mask A has no weight
    # and an all-A stack no connection).
    r = p.results
    pix = sp.expand(r["pixelcnn_connections"].expr)
    bound = r["pixelcnn_connections_order"].expr.args[0]
    first_b, all_a = (sp.expand(e.doit()) for e in r["pixelcnn_mask_change"].expr)
    wider = {**BASE, k: sp.Integer(3)}
    bad = sum(
        len(same_growth(e, bound, [d, k, H, W, c], wider, SLOWER))
        for e in (pix + first_b, pix - all_a)
    )
    return bad + (p.results["pixelcnn_layer_connections"].expr[0].xreplace({k: 1}) != 0)


SIMULATION = "simulation: rounds of a machine computing every ready unit"


def step_claims(p: PixelCNNMDRNN) -> Iterator[Claim]:
    """Steps against the round-by-round simulation."""
    r = p.results
    pix_sizes = [
        {"d": a, "k": b, "H": h, "W": w}
        for a, b, h, w in itertools.product(CHECK_D, FEW_K, CHECK_HW, CHECK_HW)
    ]
    rnn_sizes = [
        {"d": a, "H": h, "W": w}
        for a, h, w in itertools.product(RNN_STEP_D, RNN_STEP_HW, RNN_STEP_HW)
    ]
    rnn_text = describe_sizes(d=RNN_STEP_D, HW=RNN_STEP_HW)
    models = (
        (
            "pixelcnn_steps",
            lambda s: rounds(pixelcnn(s["d"], s["k"], s["H"], s["W"])),
            pix_sizes,
            describe_sizes(d=CHECK_D, k=FEW_K, HW=CHECK_HW),
        ),
        (
            "mdrnn_steps",
            lambda s: rounds(mdrnn(s["d"], s["H"], s["W"])),
            rnn_sizes,
            rnn_text,
        ),
        (
            "literal_mdrnn_steps",
            lambda s: rounds(literal_mdrnn(s["d"], s["H"], s["W"])),
            rnn_sizes,
            rnn_text,
        ),
    )
    for key, count, points, sizes in models:
        yield Claim(
            key,
            SIMULATION,
            sizes,
            0.0,
            lambda e=r[key].expr, f=count, x=points: count_failures(e, f, x),
        )


def example_claims(p: PixelCNNMDRNN) -> Iterator[Claim]:
    """The example's numbers by taps (connections) and simulation (steps); the units."""
    s, counts = p.example, p.results["example_comparison"].value["counts"]
    sizes = ", ".join(f"{key} = {v}" for key, v in s.items())
    pix = s["c"] ** 2 * (
        masked_connections(s["k"], "A", s["H"], s["W"])
        + (s["d"] - 1) * masked_connections(s["k"], "B", s["H"], s["W"])
    )
    rnn = s["d"] * s["k"] ** 2 * tap_connections((BELOW, WEST, NORTH), s["H"], s["W"])
    yield Claim(
        "example_comparison",
        "masks row by row and the three MDRNN sources, tap by tap: connections",
        sizes,
        0.0,
        lambda: abs(counts["pixelcnn_connections"] - pix) + abs(counts["mdrnn_connections"] - rnn),
    )
    # Instantiating is the route for the steps; a huge example would not fit in memory.
    if s["d"] * s["H"] * s["W"] <= SIMULATED_UNITS:
        yield Claim(
            "example_comparison",
            SIMULATION + ": steps",
            sizes,
            0.0,
            lambda: (
                abs(counts["pixelcnn_steps"] - rounds(pixelcnn(s["d"], s["k"], s["H"], s["W"])))
                + abs(counts["mdrnn_steps"] - rounds(mdrnn(s["d"], s["H"], s["W"])))
            ),
        )
    units = p.results["activations"].value
    at = at_sizes({"d": p.layers, "H": p.height, "W": p.width})
    yield Claim(
        "activations",
        "one unit per layer and pixel, d H W, against the graphs' units",
        f"figure: {p.height} x {p.width}, d = {p.layers}",
        0.0,
        lambda: sum(count_mismatch(d * H * W, at, n) for n in units.values()),
    )
