"""A cold ``derive`` command and its floor: LaTeX alone on the .tex files the command wrote.

The floor compiles each file as one would by hand: ``latexmk -pdf``, which runs pdflatex
until the cross-references settle, with the options and environment ``derive build`` gives
pdflatex (``derive.render.passes``), in a fresh temporary directory as job ``answer-key``.
So a build and its floor differ by what derive adds (starting Python, importing, deriving,
checking, rendering) and by what it saves: derive starts its pdflatex runs on the
preamble while it derives, which latexmk cannot.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from derive.render import passes

TIMEOUT = 120.0


def compile_tex(tex: Path) -> None:
    """Compile one .tex file with latexmk; raise if LaTeX fails."""
    latexmk = shutil.which("latexmk")
    if latexmk is None or shutil.which("pdflatex") is None:
        raise RuntimeError("the floor needs latexmk and pdflatex on PATH")
    # -norc: no latexmkrc changes the command being timed.
    cmd = [latexmk, "-norc", "-pdf", *passes.PDFLATEX_OPTIONS, passes.SOURCE]
    with tempfile.TemporaryDirectory(prefix="derive-bench-") as tmp:
        work = Path(tmp)
        (work / passes.SOURCE).write_text(tex.read_text(encoding="utf-8"), "utf-8")
        done = subprocess.run(cmd, cwd=work, env=passes.tex_env(), capture_output=True,
                              timeout=TIMEOUT, stdin=subprocess.DEVNULL, check=False)
        if done.returncode != 0 or not (work / passes.PDF).is_file():
            output = done.stdout.decode("utf-8", "replace")
            raise RuntimeError(f"LaTeX failed on {tex} (status {done.returncode}):\n"
                               f"{output[-2000:]}")


def compile_all(files: list[Path], jobs: int = 1) -> None:
    """Compile ``files``, ``jobs`` latexmk processes at a time."""
    if jobs == 1:
        for f in files:
            compile_tex(f)
        return
    # Threads suffice: each one waits on its own latexmk process.
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(compile_tex, files))


def run_derive(args: list[str], cwd: Path) -> None:
    """Run ``python -m derive ARGS`` in a new process; raise with its output if it fails."""
    proc = subprocess.run(
        [sys.executable, "-m", "derive", *args], cwd=cwd, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"derive {' '.join(args)} exited with {proc.returncode}:\n{proc.stderr[-2000:]}"
        )
