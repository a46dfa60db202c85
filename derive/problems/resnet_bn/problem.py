"""ResnetBN: the two orderings, the experiment that measures their gains, and its results."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import sympy as sp

from derive.errors import InputError
from derive.instances.bnstack import EPS, Instance, make_instance, measure
from derive.params import Custom, Int, Kind, Param, Quote, show
from derive.problems.base import Problem, Result
from derive.problems.resnet_bn import claims
from derive.problems.resnet_bn.decision import easier_ordering, growth, log_range
from derive.problems.resnet_bn.structure import (
    OP_NAMES,
    ORDERINGS,
    STACK_BLOCKS,
    block_formula,
    skip_stack,
    skip_term,
)
from derive.verify import Claim

#: Defaults of the experiment (the handout states none).  A batch of 64 keeps each 64×64×64
#: product under OpenBLAS's threading threshold: threaded, these small products ran 10-50×
#: slower on a busy 2-core machine.
WIDTH, BATCH = 64, 64
DEPTHS = (1, 2, 4, 8, 16, 32, 64)
SEED = 20261122
#: Allowed ranges: where float64 determines the gains, and small enough that the problem
#: builds in seconds (all at their maxima: about 10 s).  Stack (2)'s gain grows by 1.2 to 2
#: per block, fastest for small batches, and float64 rounding grows with it: past depth 64, or
#: below a batch of 32, the gains reach 1e9 to 1e13 and rounding decides their digits (see
#: ``ROUNDING_SENSITIVITY``).  Below width 8 single features dominate BatchNorm's statistics:
#: stacks of width 2 die out (every gain 0 for most seeds), width 4 changes the decision from
#: seed to seed and loses the reverse pass's own digits in nearly constant features.
WIDTH_RANGE, BATCH_RANGE, DEPTH_RANGE, COUNT_RANGE = (8, 128), (32, 256), (1, 64), (2, 10)

DIGITS = 3  # significant digits of measured values in the key (the JSON keeps all)


# -- parameters -----------------------------------------------------------------------------------
WIDTH_KIND, BATCH_KIND, SEED_KIND = Int(*WIDTH_RANGE), Int(*BATCH_RANGE), Int(0, 2**32 - 1)
DEPTHS_TEXT = (
    f"a list of {COUNT_RANGE[0]} to {COUNT_RANGE[1]} increasing block counts from "
    f"{DEPTH_RANGE[0]} to {DEPTH_RANGE[1]}"
)


def parse_depths(value: Any, where: str) -> tuple[int, ...]:
    """The stack depths to measure: a short increasing list of block counts."""
    lo, hi = COUNT_RANGE
    if not isinstance(value, list | tuple) or not lo <= len(value) <= hi:
        raise InputError(f"{where}: expected {DEPTHS_TEXT}, got {show(value)}")
    depth = Int(*DEPTH_RANGE)
    out = tuple(depth.parse(v, f"{where}[{i}]") for i, v in enumerate(value))
    if any(a >= b for a, b in itertools.pairwise(out)):
        raise InputError(f"{where}: expected {DEPTHS_TEXT}, got {show(value)} (not increasing)")
    return out


class ResnetBN(Problem):
    """Which residual-block ordering of BN, ReLU and the addition keeps gradients in check."""

    CLAIM_NAMES: ClassVar[dict[str, str]] = {
        "skip_term": "skip-path Jacobian of a block", "skip_path_stack": "skip-path "
        "Jacobian of a stack", "grad_norms": "gradient gains", "log_gain_range":
        "range of $\\log_{10}$ gain", "growth": "growth rates", "grad_norm_ratio":
        "deepest gain ratio", "easier": "the easier ordering", "explodes": "which gain explodes",
    }

    key = "resnet_bn"
    title = "Residual blocks: where BatchNorm and ReLU go"
    MAIN = "grad_norm_ratio"
    RESULTS: ClassVar[dict[str, str]] = {
        "skip_term": "The skip path's Jacobian term of one block in each ordering.",
        "skip_path_stack": "The skip path's Jacobian through a stack of blocks in each ordering.",
        "grad_norms": "The measured gradient gains G(L) by depth for both orderings.",
        "log_gain_range": "For each ordering, the spread of log10 G(L) over the depths measured.",
        "growth": "For each ordering, the gain's growth per block and its log-log slope.",
        "grad_norm_ratio": "The deepest stack's gain of ordering 2 over that of ordering 1.",
        "explodes": "For each ordering, whether the gain grows with depth.",
        "easier": "The ordering that trains more easily (1 or 2).",
    }
    #: Names the printer spells through the set's notation (``Problem.symbols``).
    SYMBOLS = ("D", "D_1", "D_2", "D_3", "J", "J_1", "J_2", "J_3", "W_1", "W_2", "x")
    #: The heading, and the one part (the answer with its justification).
    LABELS = ("title", "answer")
    WHOLE = "answer"
    #: What an original may print: its figure of the two blocks, as its text keeps it.
    ORIGINAL: ClassVar[dict[str, Kind]] = {
        "figure": Quote("the labels of the original's figure, in the order kept"),
    }
    # The handout fixes none of these: they size the experiment.
    PARAMS = (
        Param(
            "width",
            WIDTH_KIND,
            WIDTH,
            "units of each fully connected Weight layer (8 to 128; narrower stacks die out or "
            "decide by seed)",
        ),
        Param(
            "batch",
            BATCH_KIND,
            BATCH,
            "examples per batch, BatchNorm's statistics (32 to 256; smaller batches explode "
            "faster than float64 can follow)",
        ),
        Param(
            "depths",
            Custom(parse_depths, DEPTHS_TEXT),
            DEPTHS,
            "stack depths L measured (up to 64: deeper, rounding decides the gains' digits)",
        ),
        Param("seed", SEED_KIND, SEED, "seed of the weights, the input batch and R"),
    )

    def __init__(
        self,
        width: int = WIDTH,
        batch: int = BATCH,
        depths: Sequence[int] = DEPTHS,
        seed: int = SEED,
    ) -> None:
        # Set files arrive parsed; direct callers get the same checks and messages.
        self.width = WIDTH_KIND.parse(width, "width")
        self.batch = BATCH_KIND.parse(batch, "batch")
        self.depths = parse_depths(depths, "depths")
        self.seed = SEED_KIND.parse(seed, "seed")

    # -- derivation ---------------------------------------------------------------------------
    @cached_property
    def instance(self) -> Instance:
        return make_instance(self.width, self.batch, self.depths[-1], self.seed)

    @cached_property
    def measured(self) -> dict[int, tuple[list[float], list[np.ndarray]]]:
        """Per ordering: gains at each depth and the input gradients."""
        return {k: measure(ops, self.instance, self.depths) for k, ops in ORDERINGS.items()}

    @cached_property
    def gains(self) -> dict[int, list[float]]:
        """Per ordering: the gains at each depth (read, never changed, by every caller)."""
        return {k: g for k, (g, _) in self.measured.items()}

    def derive(self) -> dict[str, Result]:
        return {**self._structure(), **self._measurement(), **self._decision()}

    def _structure(self) -> dict[str, Result]:
        """1. The skip terms of one block and of a stack, from the operation lists."""
        skip = {k: skip_term(ops) for k, ops in ORDERINGS.items()}
        stack = {k: skip_stack(ops, STACK_BLOCKS) for k, ops in ORDERINGS.items()}
        return {
            "skip_term": Result(
                "skip_term",
                sp.Tuple(*skip.values()),
                value={f"ordering_{k}": s for k, s in skip.items()},
            ),
            "skip_path_stack": Result(
                "skip_path_stack",
                sp.Tuple(*stack.values()),
                value={"blocks": STACK_BLOCKS}
                | {f"ordering_{k}": s for k, s in stack.items()},
            ),
        }

    def _measurement(self) -> dict[str, Result]:
        """2. The gains G(L) of both stacks at every depth (the table and the plot)."""
        gains = self.gains
        table = sp.Matrix(
            [
                [d, sp.Float(gains[1][i], DIGITS), sp.Float(gains[2][i], DIGITS)]
                for i, d in enumerate(self.depths)
            ]
        )
        value = {"depths": list(self.depths)} | {f"ordering_{k}": g for k, g in gains.items()}
        return {"grad_norms": Result("grad_norms", table, value=value)}

    def _decision(self) -> dict[str, Result]:
        """3. How the gains move with depth, their ratio at the deepest stack, the decision."""
        gains = self.gains
        ranges = {k: log_range(g) for k, g in gains.items()}
        rates = {k: growth(self.depths, g) for k, g in gains.items()}
        ratio = gains[2][-1] / gains[1][-1]
        easier = easier_ordering(gains)
        rounded = [
            sp.Tuple(sp.Float(r["per_block"], DIGITS), sp.Float(r["loglog_slope"], DIGITS))
            for r in rates.values()
        ]
        return {
            "log_gain_range": Result(
                "log_gain_range",
                sp.Tuple(*[sp.Float(v, DIGITS) for v in ranges.values()]),
                value={f"ordering_{k}": v for k, v in ranges.items()},
            ),
            "growth": Result(
                "growth",
                sp.Tuple(*rounded),
                value={f"ordering_{k}": r for k, r in rates.items()},
            ),
            "grad_norm_ratio": Result("grad_norm_ratio", sp.Float(ratio, DIGITS), value=ratio),
            # Whether each gain still grows per block deep in the stack (explodes) or shrinks.
            "explodes": Result(
                "explodes",
                sp.Tuple(*[sp.true if r["per_block"] > 1 else sp.false for r in rates.values()]),
                value={f"ordering_{k}": r["per_block"] > 1 for k, r in rates.items()},
            ),
            "easier": Result("easier", sp.Integer(easier), value=easier),
        }

    # -- claims and template data -------------------------------------------------------------
    def claims(self) -> Iterable[Claim]:
        return claims.claims(self)

    def context(self) -> dict[str, Any]:
        r = self.results
        blocks = [self._block(i, k, ops) for i, (k, ops) in enumerate(ORDERINGS.items())]
        easier = r["easier"].value
        other = next(k for k in ORDERINGS if k != easier)
        by_key = dict(zip(ORDERINGS, blocks, strict=True))
        return {
            **super().context(),
            "blocks": blocks,
            "easier": by_key[easier],
            "other": by_key[other],
            "rows": r["grad_norms"].expr.tolist(),
            "ratio": r["grad_norm_ratio"].expr,
            "rounding_sensitivity": self.stated()["rounding_sensitivity"],
            "sizes": {
                "width": self.width,
                "batch": self.batch,
                "seed": self.seed,
                "depth_max": self.depths[-1],
                "depth_prev": self.depths[-2],
                "eps": EPS,
                "stack_blocks": STACK_BLOCKS,
                "small": claims.SMALL_TEXT,
            },
        }

    def stated(self) -> dict[str, Any]:
        """The batch norm's ε, the rounding the measured rates agree to, and which branches
        end in a ReLU (read off the given orderings)."""
        return {
            "eps": EPS,
            "rounding_sensitivity": claims.ROUNDING_SENSITIVITY,
            "relu_ends_branch": [ops[ops.index("add") - 1] == "relu" for ops in ORDERINGS.values()],
        }

    def _block(self, i: int, k: int, ops: Sequence[str]) -> dict[str, Any]:
        """What the key says of ordering ``k`` (the ``i``-th), from its results."""
        r = self.results
        skip = r["skip_term"].expr.args[i]
        rates = r["growth"].expr.args[i]
        return {
            "label": f"({k})",
            "formula": block_formula(ops),
            "skip": skip,
            # What the skip path passes through (the operations ``skip_term`` multiplies).
            "after": [OP_NAMES[op] for op in ops[ops.index("add") + 1 :]],
            "stack": r["skip_path_stack"].expr.args[i],
            # A branch that ends in a ReLU can only add a non-negative vector to x.
            "nonnegative_branch": self.stated()["relu_ends_branch"][i],
            "range": r["log_gain_range"].expr.args[i],
            "per_block": rates[0],
            "slope": rates[1],
            "explodes": r["explodes"].value[f"ordering_{k}"],
        }

    def question_data(self) -> dict[str, Any]:
        """The two blocks as the handout lists them (operation names, in order)."""
        return {
            "orderings": [(f"({k})", [OP_NAMES[op] for op in ops]) for k, ops in ORDERINGS.items()]
        }
