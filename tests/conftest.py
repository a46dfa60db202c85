"""Shared fixtures: a seeded generator and the problems, derived once per session."""

from __future__ import annotations

import numpy as np
import pytest

from derive.problems import REGISTRY, get_problem


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261122)


@pytest.fixture(scope="session")
def problems() -> dict:
    """Every registered problem, with results derived and checks run once."""
    return {key: get_problem(key) for key in REGISTRY}
