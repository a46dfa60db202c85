"""Profiles of the paths behind missed targets, with pyinstrument (``--profile DIR``).

Cold commands (a build, variants) are profiled in their own process by ``python -m
pyinstrument``; the gradient and the long-sequence verification in this process.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks import variants
from benchmarks.config import Config
from benchmarks.gradient import DeriveGradient
from benchmarks.peers import make_sequences
from derive.problems.lstm import LSTM
from derive.verify.gradcheck import Case


def write_profiles(folder: Path, cfg: Config) -> list[Path]:
    """Write one text profile per slow path into ``folder``; return their paths."""
    from pyinstrument import Profiler

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    # One process for the variants, so the profile sees every version's work.
    count = cfg.pick(4, 1)
    commands = {
        "build": ["build", "--out", str(cfg.work / "profile-build")],
        "variants": [
            "build", str(variants.SET_FILE), "--variants", str(count), "--jobs", "1",
            "--out", str(cfg.work / "profile-variants"),
        ],
    }  # fmt: skip
    for name, args in commands.items():
        path = folder / f"{name}.txt"
        cmd = [sys.executable, "-m", "pyinstrument", "-r", "text", "-o", str(path)]
        subprocess.run([*cmd, "-m", "derive", *args], check=True, capture_output=True)
        written.append(path)
    steps = cfg.pick(1000, 30)
    dg = DeriveGradient()
    seq = make_sequences(steps, None, seed=3)
    in_process = {
        f"gradient-T{steps}": lambda: dg.run(seq),
        f"lstm-verify-T{steps}": lambda: LSTM(cases=[Case(steps, seed=1)]).checks,
    }
    for name, fn in in_process.items():
        profiler = Profiler()
        with profiler:
            fn()
        path = folder / f"{name}.txt"
        path.write_text(profiler.output_text(unicode=False, color=False), encoding="utf-8")
        written.append(path)
    return written
