"""What one run of the harness measures: sizes and repetitions, full or quick."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: Runs per figure: fast benchmarks, and those taking seconds to a minute per run.
REPEATS = 5
SLOW_REPEATS = 3


@dataclass(frozen=True)
class Config:
    """``quick``: tiny sizes and one run of each (what the test uses)."""

    quick: bool
    work: Path  # scratch directory for builds

    @property
    def repeats(self) -> int:
        return 1 if self.quick else REPEATS

    @property
    def slow_repeats(self) -> int:
        return 1 if self.quick else SLOW_REPEATS

    def pick(self, full, quick):
        """``full`` normally, ``quick`` in a quick run."""
        return quick if self.quick else full
