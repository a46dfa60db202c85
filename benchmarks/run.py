"""The benchmark harness: ``python -m benchmarks [--quick] [--out PATH] [--only KEYS]``.

Runs every section, prints one table (name, measured value, target, met) and writes the
table with the raw measurements to ``build/benchmarks.json``.  Targets that are missed are
reported, not failed: the exit status is nonzero only when a benchmark could not run or a
cross-check (a peer's gradient against derive's, say) disagrees.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

from benchmarks import accuracy, build_floor, gradient, length, momentum_det, variants
from benchmarks.config import REPEATS, SLOW_REPEATS, Config
from benchmarks.timing import Row, Section, fmt, timed
from derive.fsutil import atomic_write


def _median_of(n: int) -> str:
    return "1 run" if n == 1 else f"median of {n} runs"


Runner = Callable[[Config], tuple[list[Row], dict]]
#: key -> (title, runner, how its figures are taken), in the order of the issue.
SECTIONS: dict[str, tuple[str, Runner, Callable[[Config], str]]] = {
    "build": (
        "Build against its floor",
        build_floor.run,
        lambda c: _median_of(c.slow_repeats),
    ),
    "length": (
        "Derivation independent of length",
        length.run,
        lambda c: _median_of(c.repeats),
    ),
    "gradient": (
        "The derived gradient as code (scalar LSTM)",
        gradient.run,
        lambda c: _median_of(c.repeats),
    ),
    "accuracy": (
        "Verification quality",
        accuracy.run,
        lambda c: "worst over fixed-seed cases; no timing",
    ),
    "variants": (
        "Variants against their LaTeX floor",
        variants.run,
        lambda c: _median_of(c.slow_repeats),
    ),
    "momentum": (
        "Momentum determinant",
        momentum_det.run,
        lambda c: (
            f"rule: {_median_of(momentum_det.rule_repeats(c))}; "
            f"derivation: {_median_of(c.slow_repeats)}; slogdet: 1 run"
        ),
    ),
}


def run_section(key: str, cfg: Config) -> Section:
    title, runner, how = SECTIONS[key]
    section = Section(key, title, how(cfg))
    before = os.getloadavg()[0]
    section.seconds, (section.rows, section.data) = timed(lambda: runner(cfg))
    section.load = (before, os.getloadavg()[0])
    return section


def machine() -> dict:
    """What the numbers were taken on."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name in ("sympy", "numpy", "mpmath", "jax", "jaxlib", "torch"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": versions,
        "tex": _first_line(["pdflatex", "--version"]),
        "latexmk": _first_line(["latexmk", "-v"]),
    }


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _first_line(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    lines = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    return lines[0] if lines else "unknown"


def table(sections: list[Section], info: dict, quick: bool) -> str:
    """The printed table: one block per section, one line per row."""
    head = ["#", "benchmark", "value", "target", "met", "details"]
    lines: list[list[str]] = []
    for i, s in enumerate(sections, start=1):
        load = f"load {s.load[0]:.1f} -> {s.load[1]:.1f}"
        lines.append([f"{i}.", f"{s.title} ({s.how}; {load}; {s.seconds:.0f} s)"])
        for r in s.rows:
            met = {True: "yes", False: "NO", None: "-"}[r.met]
            lines.append(["", r.name, fmt(r.value, r.unit), r.target, met, r.detail])
    widths = [max(len(x[c]) for x in [head, *lines] if len(x) > 2 or c == 0) for c in range(5)]
    out = [
        f"derive benchmarks ({'quick' if quick else 'full'}) on {info['cpu']}, "
        f"{info['cores']} cores, {info['memory_gib']} GiB, Python {info['python']}",
        "  ".join(h.ljust(w) for h, w in zip(head, [*widths, 0], strict=True)).rstrip(),
    ]
    for x in lines:
        if len(x) == 2:  # a section heading spans the row
            out.append(f"{x[0].ljust(widths[0])}  {x[1]}")
        else:
            out.append("  ".join(v.ljust(w) for v, w in zip(x, [*widths, 0], strict=True)))
    met = [r.met for s in sections for r in s.rows if r.met is not None]
    out.append(f"targets met: {sum(met)} of {len(met)}")
    return "\n".join(line.rstrip() for line in out)


def document(sections: list[Section], info: dict, cfg: Config, argv: list[str]) -> dict:
    return {
        "command": " ".join(["python -m benchmarks", *argv]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "quick": cfg.quick,
        "machine": info,
        "sections": {s.key: s.as_dict() for s in sections},
    }


def _keys(text: str) -> list[str]:
    keys = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in keys if k not in SECTIONS]
    if unknown or not keys:
        raise argparse.ArgumentTypeError(
            f"unknown section {unknown[0] if unknown else text!r}; choose from "
            + ", ".join(SECTIONS)
        )
    return keys


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=(
            f"Benchmark derive against its floor and its peers. Every figure is a median of "
            f"{REPEATS} runs ({SLOW_REPEATS} for builds); --quick uses tiny sizes and one run."
        ),
    )
    p.add_argument("--quick", action="store_true", help="tiny sizes, one run each (the test)")
    p.add_argument("--out", default="build/benchmarks.json", metavar="PATH", help="JSON file")
    p.add_argument(
        "--only", type=_keys, metavar="KEYS", help=f"comma-separated sections: {','.join(SECTIONS)}"
    )
    p.add_argument(
        "--profile",
        metavar="DIR",
        help="also write pyinstrument profiles of the slow paths to DIR (needs pyinstrument)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    info = machine()
    with tempfile.TemporaryDirectory(prefix="derive-bench-") as tmp:
        cfg = Config(quick=args.quick, work=Path(tmp))
        sections = []
        for key in args.only or list(SECTIONS):
            print(f"running {key} ...", file=sys.stderr, flush=True)
            sections.append(run_section(key, cfg))
        if args.profile:
            from benchmarks.profile import write_profiles

            for path in write_profiles(Path(args.profile), cfg):
                print(f"profile: {path}", file=sys.stderr)
    print(table(sections, info, cfg.quick))
    doc = document(sections, info, cfg, argv)
    out = Path(args.out)
    text = json.dumps(doc, indent=2, allow_nan=False, default=_json_default) + "\n"
    atomic_write(out, text.encode())
    print(f"wrote {out}")
    return 0


def _json_default(value):
    # NumPy scalars from the measurements; non-finite numbers become null.
    number = float(value)
    return number if math.isfinite(number) else None
