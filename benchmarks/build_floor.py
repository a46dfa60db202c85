"""1. ``derive build`` against its floor, LaTeX alone on the same files.

Each round runs ``python -m derive build --out DIR`` (every bundled set, PDF) in a cold
process, then compiles the ``answer-key.tex`` files that build wrote with the build's own
latexmk command: one after the other (the floor of the target), and two at a time (a
context row: the build may overlap two sets' LaTeX on two cores).
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.config import Config
from benchmarks.floor import compile_all, run_derive
from benchmarks.timing import Row, at_most, median, timed
from derive.sets import bundled

TARGET = 2.0
#: A set that defines its one problem, a minimal gated unit, in the file.
MODEL_SET = Path(__file__).resolve().parent / "model_cell.toml"
#: The quick run builds the set that builds fastest (three small problems).
QUICK_SET = "lmu_ex5"


def run(cfg: Config) -> tuple[list[Row], dict]:
    sets = [QUICK_SET] if cfg.quick else []  # no set named: derive builds every bundled set
    names = sets or list(bundled())
    builds, floors, pairs = [], [], []
    for r in range(cfg.slow_repeats):
        out = cfg.work / f"build-{r}"
        builds.append(
            timed(lambda out=out: run_derive(["build", *sets, "--out", str(out)], cfg.work))[0]
        )
        texs = sorted(out.glob("*/answer-key.tex"))
        if len(texs) != len(names):
            raise RuntimeError(f"expected {len(names)} answer keys in {out}, found {len(texs)}")
        floors.append(timed(lambda texs=texs: compile_all(texs))[0])
        pairs.append(timed(lambda texs=texs: compile_all(texs, 2))[0])
    build, floor, pair = median(builds), median(floors), median(pairs)
    detail = (
        f"build {build:.2f} s (cold process) / LaTeX alone {floor:.2f} s; sets {', '.join(names)}"
    )
    rows = [
        at_most("derive build / LaTeX alone", build / floor, TARGET, "x", detail),
        Row(
            "derive build / LaTeX alone, 2 latexmk at a time",
            build / pair,
            "x",
            detail=f"LaTeX alone {pair:.2f} s with two processes",
        ),
    ]
    model_row, model_data = _model_cell(cfg)
    data = {"sets": names, "build_s": builds, "latex_s": floors, "latex_2_s": pairs,
            "model_cell": model_data}
    return [*rows, model_row], data


def _model_cell(cfg: Config) -> tuple[Row, dict]:
    """A set defining its own cell (``model_cell.toml``): the build to PDF, against LaTeX
    alone on the key it wrote.  One small document, so what derive adds (starting,
    parsing the model, deriving, checking) weighs most here."""
    builds, floors = [], []
    for r in range(cfg.slow_repeats):
        out = cfg.work / f"model-{r}"
        builds.append(timed(lambda out=out: run_derive(["build", str(MODEL_SET), "--out",
                                                        str(out)], cfg.work))[0])
        (tex,) = sorted(out.glob("*/answer-key.tex"))
        floors.append(timed(lambda tex=tex: compile_all([tex]))[0])
    build, floor = median(builds), median(floors)
    detail = f"build {build:.2f} s (cold process) / LaTeX alone {floor:.2f} s; {MODEL_SET.name}"
    row = at_most("derive build of a set-file cell / LaTeX alone", build / floor, TARGET,
                  "x", detail)
    return row, {"build_s": builds, "latex_s": floors}
