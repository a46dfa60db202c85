"""5. Per-student variants: seconds per verified version (answer key and handout PDF).

Each round runs ``python -m derive build benchmarks/variants.toml --variants N --jobs 2``
in a cold process (the command line calls ``derive.build.build_variants``; a fresh process
also keeps its fork-based pool away from threads a peer library may have started here),
then compiles the 2N .tex files it wrote with two latexmk processes at a time and binds
their PDFs into the two files for printing, as the run does: the floor.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.config import Config
from benchmarks.floor import compile_all, run_derive
from benchmarks.timing import Row, at_most, median, timed
from derive.render import pdf

SET_FILE = Path(__file__).with_name("variants.toml")
SET_ID = "bench_variants"
JOBS = 2
TARGET = 1.5


def arguments(out: Path, count: int) -> list[str]:
    return [
        "build", str(SET_FILE), "--variants", str(count), "--seed", "bench",
        "--jobs", str(JOBS), "--out", str(out),
    ]  # fmt: skip


def bind(root: Path) -> None:
    """The run's two bound files made again from its PDFs (LaTeX's share of them)."""
    for stem in ("handout", "answer-key"):
        pdf.combine([p.read_bytes() for p in sorted(root.glob(f"*/{stem}.pdf"))])


def run(cfg: Config) -> tuple[list[Row], dict]:
    count = cfg.pick(30, 2)
    builds, floors = [], []
    for r in range(cfg.slow_repeats):
        out = cfg.work / f"variants-{r}"
        builds.append(timed(lambda out=out: run_derive(arguments(out, count), cfg.work))[0])
        texs = sorted((out / SET_ID / "variants").glob("*/*.tex"))
        if len(texs) != 2 * count:
            raise RuntimeError(f"expected {2 * count} .tex files under {out}, found {len(texs)}")
        root = out / SET_ID / "variants"
        floors.append(timed(lambda texs=texs, root=root: (compile_all(texs, JOBS), bind(root)))[0])
    per, floor = median(builds) / count, median(floors) / count
    detail = (
        f"{per:.2f} s per version vs LaTeX alone {floor:.2f} s; {count} versions, "
        f"{JOBS} processes, set {SET_FILE.name}"
    )
    rows = [at_most("variants: per version / LaTeX alone", per / floor, TARGET, "x", detail)]
    data = {"versions": count, "jobs": JOBS, "build_s": builds, "latex_s": floors}
    return rows, data
