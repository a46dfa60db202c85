"""Every documented parameter range is honoured: at each end of it, the problem derives,
every check passes, and the key, the handout and the JSON export are made.

Discovered from each problem's ``PARAMS`` (integer and exact-number parameters with
bounds), so a new problem or parameter is covered with no edit here.  eigen_power and
resnet_bn sweep their ranges' corners in their own tests, with the special matrices and
sizes those need.
"""

from __future__ import annotations

import json

import pytest

from derive.build import export_problem
from derive.params import Exact, Int
from derive.problems import REGISTRY
from derive.render.document import render
from derive.render.latex import Notation
from derive.sets import ProblemSet

OWN_SWEEPS = {"eigen_power", "resnet_bn"}
#: What an end needs beside it to be a valid instance: a convolution's stride must divide
#: the padded input's overhang, and the pool's stride the convolution's output.
COMPANIONS = {
    ("conv_pool", "stride", 1): {"pool": [1, 1, 1]},
    ("conv_pool", "stride", 4): {"input_shape": [2, 3, 9, 9], "pool": [1, 1, 1]},
    ("conv_pool", "pad", 0): {"pool": [1, 1, 1]},
}


def _ends() -> list[tuple[str, str, object]]:
    out = []
    for key, cls in REGISTRY.items():
        if key in OWN_SWEEPS:
            continue
        for p in cls.PARAMS:
            if isinstance(p.kind, Int | Exact) and p.kind.lo is not None:
                ends = (p.kind.lo, p.kind.hi)
                if isinstance(p.kind, Exact) and p.kind.open:
                    continue  # an open range has no end to try
                out += [(key, p.name, v if isinstance(v, int) else str(v)) for v in ends]
    return out


@pytest.mark.parametrize(("key", "name", "value"), _ends(), ids=lambda v: str(v))
def test_each_end_of_each_range_is_verified_and_rendered(key: str, name: str, value) -> None:
    problem = REGISTRY[key].from_params({name: value, **COMPANIONS.get((key, name, value), {})})
    failed = [f"{c.claim} ({c.method})" for c in problem.checks if not c.passed]
    assert failed == []
    pset = ProblemSet("k", "K", "C", "s", (key,), Notation())
    assert render(pset, [problem]) and render(pset, [problem], handout=True)
    json.dumps(export_problem(pset, problem), allow_nan=False)


def test_the_ends_are_found() -> None:
    found = {(key, name) for key, name, _ in _ends()}
    assert {("binary_adder", "bits"), ("mdrnn", "grid"), ("momentum", "beta")} <= found
