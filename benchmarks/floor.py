"""A cold ``derive`` command and its floor: LaTeX alone on the .tex files the command wrote.

The floor compiles each file exactly as ``derive build`` does: ``derive.render.pdf``'s own
command, options and environment (``_command`` and ``_run``), in a fresh temporary
directory as job ``answer-key``.  So a build and its floor differ only by what derive adds:
starting Python, importing, deriving, checking, rendering.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from derive.render import pdf

TIMEOUT = 120.0


def compile_tex(tex: Path) -> None:
    """Compile one .tex file the way ``pdf.compile_pdf`` does; raise if LaTeX fails."""
    engine = pdf.find_engine()
    if engine is None:
        raise RuntimeError(pdf.INSTALL_HINT)
    with tempfile.TemporaryDirectory(prefix="derive-bench-") as tmp:
        work = Path(tmp)
        (work / f"{pdf.JOB_NAME}.tex").write_text(tex.read_text(encoding="utf-8"), "utf-8")
        status, output = pdf._run(pdf._command(engine), work, TIMEOUT)
        if status != 0 or not (work / f"{pdf.JOB_NAME}.pdf").is_file():
            raise RuntimeError(f"LaTeX failed on {tex} (status {status}):\n{output[-2000:]}")


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
