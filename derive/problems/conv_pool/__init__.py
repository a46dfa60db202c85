"""A convolution layer followed by max-pooling: output shapes and the backward pass.

The layer (``model``): x (N×C×H×W) padded by P zeros on each side of its spatial axes to
xpad, correlated with w (F×C×HH×WW) at stride S, plus b (F), gives out (N×F×H′×W′);
max-pooling with HP×WP windows at stride S_p gives y (N×F×H″×W″).  The key derives

* the sides H′ = 1 + (H + 2P − HH)/S and W′ likewise, from the general rule
  ⌊(n + 2p − k)/s⌋ + 1 of ``derive.cnn_spec`` where the stride divides (a layer where it
  does not is refused: its last windows would not fit), and the pool's H″, W″;
* db, dw, dxpad and dx (L = Σ dout ⊙ out), as adjoints of the correlation and of the
  padding by the index-substitution rule (``rules.adjoint``), and max-pooling's backward
  pass as the adjoint of its selection map M: each window's gradient goes to its first
  maximum in row-major order (a subgradient at a tie), overlapping windows adding up;

and checks each against naive loops, complex steps, central differences and explicit
matrices (``claims``, ``claims_grad``).

``derive eval conv_pool --input FILE`` reads a JSON object: ``x`` (N×C×H×W nested lists),
``w`` (F×C×HH×WW), ``b`` (F), ``stride`` and ``pad`` (whole numbers), optionally
``pool_height``, ``pool_width`` and ``pool_stride`` (all three or none: with them the
layer ends in the pool), and ``dout``, the gradient of the loss with respect to the layer's
last output (N×F×H′×W′, or N×F×H″×W″ with the pool; default all ones).  It prints ``out``
(the last output: pooled with a pool) and ``grad`` with ``x``, ``w`` and ``b``, each by
the derived formulas.  Bad input is one line naming the field and its expected shape
(``given``).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import sympy as sp

from derive import inputs
from derive.errors import InputError
from derive.params import Custom, Int, Param, show
from derive.problems.base import Problem, Result
from derive.problems.conv_pool import claims as cl
from derive.problems.conv_pool import claims_grad as cg
from derive.problems.conv_pool import given
from derive.problems.conv_pool import model as mo
from derive.problems.conv_pool.numeric import Geometry, forward_backward
from derive.verify import Claim

#: The key's layer: stride and padding both matter, and the pool halves the output.
DEFAULTS = {"input_shape": [2, 3, 7, 7], "filter_shape": [4, 3, 3], "stride": 2, "pad": 1,
            "pool": [2, 2, 2]}
#: Bounds of a set file's layer, so that every claim's naive loops stay quick.
BOUNDS = {"input_shape": (4, 4, 16, 16), "filter_shape": (8, 7, 7), "pool": (4, 4, 4)}
GRADIENTS = ("db", "dw", "dxpad", "dx", "pool_backward")


def _sizes(name: str, fields: str) -> Custom:
    top = BOUNDS[name]

    def parse(value: Any, where: str) -> list[int]:
        if not (isinstance(value, list) and len(value) == len(top) and all(
                isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= t
                for v, t in zip(value, top, strict=True))):
            raise InputError(f"{where}: expected {fields} as whole numbers from 1 to "
                             f"{', '.join(map(str, top))}, got {show(value)}")
        return list(value)

    return Custom(parse, f"a list {fields} of whole numbers up to {list(top)}")


class ConvPool(Problem):
    """Shapes and backward pass of a strided, padded convolution and a max-pool."""

    key = "conv_pool"
    title = "Backpropagation through convolution and max-pooling"
    MAIN = "dxpad"
    LABELS = ("title", "shapes", "forward", "backward", "pooling")
    RESULTS: ClassVar[dict[str, str]] = {
        "H_out": "The convolution's output height: 1 + (H + 2P - HH)/S.",
        "W_out": "The convolution's output width: 1 + (W + 2P - WW)/S.",
        "H_pool": "The pooled height: 1 + (H' - HP)/S_p.",
        "W_pool": "The pooled width: 1 + (W' - WP)/S_p.",
        "shapes": "The layer's arrays (x, xpad, w, b, out, y) and their shapes.",
        "conv": "The convolution as a correlation of the padded input with the kernel.",
        "db": "The bias gradient: dout summed over n, i, j.",
        "dw": "The kernel gradient: the padded input correlated with dout.",
        "dxpad": "The padded input's gradient: dout, spread by the stride, convolved with w.",
        "dx": "The input's gradient: the part of dxpad inside the padding.",
        "pool_backward": "The pool's backward pass: each window's dy routed to its maximum.",
    }
    CLAIM_NAMES: ClassVar[dict[str, str]] = {
        "shapes": "the layer's shapes", "conv": "the correlation {lhs}",
        "pool_backward": "the pool's {lhs}"}
    #: Names the printer spells through the set's notation (``Problem.symbols``).
    SYMBOLS = ("H", "H'", "H''", "HH", "HP", "M", "P", "S", "S_p", "W", "W'", "W''", "WP",
               "WW", "a", "b", "b'", "c", "db", "dout", "dw", "dx", "dxpad", "dy", "f", "h",
               "i", "j", "k", "n", "out", "w", "x", "xpad", "y")
    SHOWN = ("input_shape", "filter_shape", "stride", "pad", "pool")
    PARAMS = (
        Param("input_shape", _sizes("input_shape", "[N, C, H, W]"),
              DEFAULTS["input_shape"], "x's shape: batch, channels, height, width"),
        Param("filter_shape", _sizes("filter_shape", "[F, HH, WW]"),
              DEFAULTS["filter_shape"], "w's filters, height and width (channels: x's)"),
        Param("stride", Int(1, 4), DEFAULTS["stride"], "the convolution's stride S"),
        Param("pad", Int(0, 3), DEFAULTS["pad"], "zeros padded on each side, P"),
        Param("pool", _sizes("pool", "[HP, WP, S_p]"), DEFAULTS["pool"],
              "the pool's window height, width and stride"),
    )

    def __init__(self, input_shape: list[int] = DEFAULTS["input_shape"],
                 filter_shape: list[int] = DEFAULTS["filter_shape"],
                 stride: int = DEFAULTS["stride"], pad: int = DEFAULTS["pad"],
                 pool: list[int] = DEFAULTS["pool"]) -> None:
        (n, c, h, w), (f, hh, ww) = input_shape, filter_shape
        self.geometry = Geometry(n, c, f, h, w, hh, ww, stride, pad, tuple(pool))
        given.check_geometry(self.geometry, given.PARAM_FIELDS)

    # -- derivation ---------------------------------------------------------------------------
    @cached_property
    def maps(self) -> dict:
        """The derived adjoints as maps (``rules.LinearMap``), by result key."""
        return mo.derive_maps()

    @cached_property
    def rules(self) -> dict[str, sp.Expr]:
        """The side rules, by result key."""
        return {"H_out": mo.side_rule(mo.H, mo.HH, mo.P, mo.S),
                "W_out": mo.side_rule(mo.W, mo.WW, mo.P, mo.S),
                "H_pool": mo.side_rule(mo.H1, mo.HP, 0, mo.S_p),
                "W_pool": mo.side_rule(mo.W1, mo.WP, 0, mo.S_p)}

    def derive(self) -> dict[str, Result]:
        lhs = {"H_out": mo.H1, "W_out": mo.W1, "H_pool": mo.H2, "W_pool": mo.W2}
        out = {k: Result(k, e, lhs[k]) for k, e in self.rules.items()}
        shapes = self.shapes()
        out["shapes"] = Result("shapes", sp.Tuple(*(sp.Tuple(*s) for s in shapes.values())),
                               value=shapes)
        out["conv"] = Result("conv", mo.CONV.rhs, mo.CONV.lhs)
        for key in GRADIENTS:
            out[key] = Result(key, self.maps[key].rhs, self.maps[key].lhs)
        return out

    def shapes(self) -> dict[str, list[int]]:
        """Each array's shape on the layer, the outputs' by the side rules."""
        g, s = self.geometry, self.geometry.sizes(self.rules)
        return {"x": [g.N, g.C, g.H, g.W], "xpad": [g.N, g.C, g.H + 2 * g.P, g.W + 2 * g.P],
                "w": [g.F, g.C, g.HH, g.WW], "b": [g.F],
                "out": [g.N, g.F, s[mo.H1], s[mo.W1]], "y": [g.N, g.F, s[mo.H2], s[mo.W2]]}

    # -- claims -------------------------------------------------------------------------------
    def claims(self) -> Iterator[Claim]:
        rng = np.random.default_rng(cl.SEED)
        g = self.checked()
        yield from cl.side_claims(self.rules, self.geometry)
        yield cl.shapes_claim(self.results["shapes"].value, self.geometry)
        yield from cg.grad_claims(self.maps, self.rules, g, rng)
        yield from cg.pool_claims(self.maps, self.rules, g, rng)

    def checked(self) -> Geometry:
        """The layer the gradient claims run on: this one, with the batch capped at 1 and
        the channels and filters at 2 where its naive loops would otherwise be slow."""
        g = self.geometry
        cost = g.N * g.F * g.C * g.H * g.W * g.HH * g.WW * g.N * g.C * g.H * g.W
        if cost <= cl.BUDGET:
            return g
        return Geometry(1, min(g.C, 2), min(g.F, 2), *(
            g.H, g.W, g.HH, g.WW, g.S, g.P, g.pool))

    # -- numbers in and out (derive eval) -----------------------------------------------------
    def eval(self, data: Any) -> dict[str, Any]:
        """The layer's output and the gradients of x, w and b on ``data`` (see the module),
        by the derived formulas."""
        g, arrays, dout = given.read(data)
        sizes = g.sizes(self.rules)
        last = (mo.H2, mo.W2) if g.pool else (mo.H1, mo.W1)
        shape = (g.N, g.F, sizes[last[0]], sizes[last[1]])
        if dout is None:
            dout = np.ones(shape)
        given.check_upstream(dout, shape, g.pool is not None)
        got = forward_backward(self.maps, g, sizes, arrays, dout)
        out = got["pooled"] if g.pool else got["conv"]
        grad = {"x": got["dx"].tolist(), "w": got["dw"].tolist(), "b": got["db"].tolist()}
        inputs.finite_output(np.concatenate([out.ravel(), got["dx"].ravel(),
                                             got["dw"].ravel(), got["db"]]), "the gradient")
        return {"out": out.tolist(), "grad": grad}

    # -- rendering ----------------------------------------------------------------------------
    def question_data(self) -> dict[str, Any]:
        g = self.geometry
        return {"input_shape": [g.N, g.C, g.H, g.W], "filter_shape": [g.F, g.C, g.HH, g.WW],
                "stride": g.S, "pad": g.P, "pool": list(g.pool), "sym": mo.NAMES}

    def context(self) -> dict[str, Any]:
        r = self.results
        return {
            **super().context(),
            "shapes": r["shapes"].value,
            "conv_terms": [t.expr for t in mo.CONV.terms],
            "pad_equation": (mo.PAD.lhs, mo.PAD.rhs),
            **self.question_data(),
            **self.stated(),
        }

    def stated(self) -> dict[str, Any]:
        """The checks' seed, the gap between pool inputs, and whether the gradient checks
        run on a smaller batch and fewer channels than the layer's (``checked``)."""
        return {"seed": cl.SEED, "gap": cl.GAP, "capped": self.checked() != self.geometry}
