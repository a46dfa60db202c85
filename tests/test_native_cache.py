"""The compiled-code cache is verified before anything in it is loaded (derive.engine.native).

A cache folder is used only if it is this user's and no one else may write it; every library
in it carries the HMAC-SHA256 of its name and bytes under the folder's key; a library that
fails a check is compiled again, and if that fails too the C backend is unavailable (auto
then runs NumPy, with one line saying why).  The compiler runs with a timeout, and a library
is spot-checked against NumPy on its first use in a process.

Runs that could crash the interpreter (a truncated library gave a Bus error) or hang (a
compiler that never ends) run in a subprocess.
"""

from __future__ import annotations

import hmac
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from derive import procs
from derive.cli import main
from derive.engine import native
from derive.engine.native import NativeGradient, NativeUnavailable
from derive.problems.gru import GRU
from derive.verify import rel_error

pytestmark = pytest.mark.skipif(not native.available(), reason="no C compiler")

REPO = Path(__file__).resolve().parents[1]
#: The system compiler by its full path: the library's name depends on the compiler
#: command, so the tests and the subprocesses they start must name it alike.
CC = shutil.which("cc") or "cc"
DATA = {
    "weights": {"w_zx": 0.1, "w_zh": 0.2, "w_rx": 0.3, "w_rh": 0.4, "w_nx": -0.4, "w_nh": 0.9},
    "x": [1, -2, 0.5],
    "h0": 0.25,
    "dL_dh": [1, 0.5, -1],
}
#: What NumPy gives for DATA; C agrees to 5e-13 (tests/test_native.py).
REFERENCE = GRU().grad(DATA, backend="numpy")


@pytest.fixture
def cache(tmp_path: Path, monkeypatch) -> Path:
    """A cache folder of this test alone (made by the code under test)."""
    path = tmp_path / "cache"
    monkeypatch.setenv("DERIVE_CACHE", str(path))
    monkeypatch.setenv("CC", CC)
    return path


@pytest.fixture
def input_file(tmp_path: Path) -> Path:
    path = tmp_path / "in.json"
    path.write_text(json.dumps(DATA), encoding="utf-8")
    return path


def genuine(cache: Path) -> Path:
    """The GRU's library, compiled into ``cache`` by derive in another process; its path.

    Not in this one: the tests then overwrite the file in place, and a process that has it
    mapped would run the new bytes (pytest crashed at exit with SIGSEGV or SIGBUS)."""
    code = (
        "from derive.engine.native import NativeGradient\n"
        "from derive.problems.gru import GRU\n"
        "print(NativeGradient(GRU().cell).library)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    lib = Path(run.stdout.strip())
    assert lib.parent == cache and lib.is_file()
    return lib


def agrees(out: dict) -> bool:
    """``out`` (derive grad's output) matches NumPy's to round-off."""
    keys = ["h", *sorted(REFERENCE["grad"])]
    got = np.concatenate([np.ravel(out[k] if k == "h" else out["grad"][k]) for k in keys])
    want = np.concatenate(
        [np.ravel(REFERENCE[k] if k == "h" else REFERENCE["grad"][k]) for k in keys]
    )
    return rel_error(got, want) <= 5e-13


def grad_here(capsys, path: Path, backend: str) -> tuple[int, dict | None, str]:
    """``derive grad gru`` in this process: status, output, standard error."""
    status = main(["grad", "gru", "--input", str(path), "--backend", backend])
    out, err = capsys.readouterr()
    return status, (json.loads(out) if out else None), err


def grad_apart(
    cache: Path, path: Path, backend: str = "c", prelude: str = "", timeout: float = 120, **env
) -> tuple[subprocess.CompletedProcess, float]:
    """``derive grad gru`` in a new process (after ``prelude``, Python run first); the
    finished process and the seconds it took."""
    script = f"import sys\n{prelude}\nfrom derive.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    argv = ["grad", "gru", "--input", str(path), "--backend", backend]
    env = {"DERIVE_CACHE": str(cache), "CC": CC, "PATH": "/usr/bin:/bin", "HOME": str(cache)} | env
    start = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-c", script, *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=timeout,
        check=False,
    )
    return run, time.monotonic() - start


def shared_object(tmp_path: Path, source: str, name: str = "other.so") -> Path:
    """``source`` compiled into a shared library by the system compiler (not by derive)."""
    (tmp_path / "other.c").write_text(source, encoding="utf-8")
    lib = tmp_path / name
    subprocess.run([CC, "-shared", "-fPIC", "-o", str(lib), str(tmp_path / "other.c")], check=True)
    return lib


def script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body, encoding="utf-8")
    path.chmod(0o755)
    return path


PLANTED = r"""
#include <stdint.h>
#include <stdio.h>
__attribute__((constructor)) static void planted(void)
{
    FILE *f = fopen("MARKER", "w");
    if (f) { fputs("planted code ran\n", f); fclose(f); }
}
int derive_gradient(int64_t T, int64_t B, int threads, void *a, void *b, void *c, void *d,
                    void *e, void *f, void *g)
{
    return 0;  /* the outputs are left as they are: garbage */
}
"""


# -- what is in the cache ----------------------------------------------------------------------
def test_a_new_cache_is_private_and_every_library_signed(cache: Path) -> None:
    lib = genuine(cache)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    key = cache / native.KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_bytes()) == 32
    assert stat.S_IMODE(lib.stat().st_mode) == 0o600
    data = lib.read_bytes()
    tag, body = data[-32:], data[: -32 - len(native.TRAILER)]
    assert data[-32 - len(native.TRAILER) : -32] == native.TRAILER
    want = hmac.new(key.read_bytes(), lib.name.encode() + b"\0" + body, "sha256").digest()
    assert tag == want and body.startswith(b"\x7fELF")


def test_planted_library_is_not_loaded(cache: Path, input_file: Path, tmp_path: Path) -> None:
    """A library put at the exact name derive would load: its constructor never runs, the
    genuine library is compiled in its place, and the output is right."""
    lib = genuine(cache)
    marker = tmp_path / "planted-code-ran"
    shutil.copyfile(shared_object(tmp_path, PLANTED.replace("MARKER", str(marker))), lib)
    run, _ = grad_apart(cache, input_file)
    assert run.returncode == 0, run.stderr
    assert not marker.exists()
    out = json.loads(run.stdout)
    assert out["backend"] == "c" and agrees(out)
    assert (
        run.stderr.count("\n") == 1
        and "was not loaded (its digest is missing or wrong)" in run.stderr
    )
    assert grad_apart(cache, input_file)[0].stderr == ""  # the genuine one is cached now


def test_truncated_library_is_compiled_again(cache: Path, input_file: Path) -> None:
    lib = genuine(cache)
    data = lib.read_bytes()
    lib.write_bytes(data[: len(data) // 2])  # the same inode, as a full disk leaves it
    run, _ = grad_apart(cache, input_file)
    assert run.returncode == 0, run.stderr  # was -7 (SIGBUS) / exit 135
    out = json.loads(run.stdout)
    assert out["backend"] == "c" and agrees(out) and "was not loaded" in run.stderr
    assert lib.read_bytes() != data[: len(data) // 2]


def test_library_without_the_function_is_compiled_again(
    cache: Path, input_file: Path, tmp_path: Path
) -> None:
    lib = genuine(cache)
    shutil.copyfile(shared_object(tmp_path, "int something_else(void) { return 1; }\n"), lib)
    run, _ = grad_apart(cache, input_file)
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    out = json.loads(run.stdout)
    assert out["backend"] == "c" and agrees(out)


def test_signed_library_that_does_not_load_is_compiled_again(cache: Path, tmp_path: Path, capsys):
    """A library whose digest is right but that has no derive_gradient (signed here with the
    folder's key): loading it fails, and it is compiled again rather than crashed on."""
    lib = genuine(cache)
    body = shared_object(tmp_path, "int something_else(void) { return 1; }\n").read_bytes()
    key = (cache / native.KEY_FILE).read_bytes()
    tag = hmac.new(key, lib.name.encode() + b"\0" + body, "sha256").digest()
    lib.write_bytes(body + native.TRAILER + tag)
    again = NativeGradient(GRU().cell)
    assert "has no function derive_gradient" in capsys.readouterr().err
    params = DATA["weights"]
    _, g = again.run(params, {"x": DATA["x"]}, {"h": DATA["h0"]}, {"h": DATA["dL_dh"]})
    assert (
        rel_error(
            np.array(list(g.params.values())), np.array([REFERENCE["grad"][k] for k in g.params])
        )
        <= 5e-13
    )


def test_folder_at_the_library_path(cache: Path, input_file: Path) -> None:
    lib = genuine(cache)
    lib.unlink()
    lib.mkdir()
    (lib / "keep").write_text("not derive's", encoding="utf-8")
    run, _ = grad_apart(cache, input_file)
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    out = json.loads(run.stdout)
    assert out["backend"] == "c" and agrees(out)
    assert run.stderr.count("\n") == 1 and "compiling without the cache" in run.stderr
    assert (lib / "keep").read_text(encoding="utf-8") == "not derive's"  # left alone


# -- the cache folder itself ---------------------------------------------------------------------
def _uses_no_cache(cache: Path, capsys, input_file: Path, why: str) -> None:
    status, out, err = grad_here(capsys, input_file, "c")
    assert status == 0 and out["backend"] == "c" and agrees(out)
    assert err.count("\n") == 1 and why in err and "compiling without the cache" in err
    assert not list(cache.glob("native-*"))  # nothing written into it, nothing read


def test_cache_folder_writable_by_others(cache: Path, capsys, input_file: Path) -> None:
    cache.mkdir(mode=0o700)
    cache.chmod(0o777)
    _uses_no_cache(cache, capsys, input_file, "may be written by others")


@pytest.mark.parametrize("how", ["simulated", "chown"])
def test_cache_folder_of_another_user(cache: Path, capsys, input_file: Path, monkeypatch, how):
    cache.mkdir(mode=0o700)
    if how == "chown":
        if os.geteuid() != 0:
            pytest.skip("giving a folder to another user needs root; 'simulated' covers it")
        os.chown(cache, 65534, 65534)
    else:
        monkeypatch.setattr(native, "_owner", lambda: os.geteuid() + 1)
    _uses_no_cache(cache, capsys, input_file, "belongs to another user")


def test_cache_folder_that_is_a_symbolic_link(cache: Path, capsys, input_file: Path, tmp_path):
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    cache.symlink_to(tmp_path / "elsewhere")
    _uses_no_cache(cache, capsys, input_file, "a symbolic link")
    assert not list((tmp_path / "elsewhere").iterdir())


# -- the compiler ------------------------------------------------------------------------------
def test_compiler_that_writes_nothing(cache: Path, capsys, input_file: Path, tmp_path, monkeypatch):
    monkeypatch.setenv("CC", str(script(tmp_path / "silent-cc", "exit 0\n")))
    status, out, err = grad_here(capsys, input_file, "auto")
    # NumPy's sums follow SymPy's order of terms, which a process's expression cache can
    # change: the output agrees with the reference to round-off (as the C backend's must).
    assert status == 0 and out["backend"] == "numpy" and agrees(out)
    assert err.count("\n") == 1 and err.startswith("derive: warning: the C backend cannot run")
    assert "exited 0 but wrote no library" in err
    status, out, err = grad_here(capsys, input_file, "c")
    assert status == 2 and out is None and err.count("\n") == 1
    assert err.startswith("derive: error: --backend c:") and "wrote no library" in err
    assert not list(cache.glob("native-*")) and not list(cache.glob("*.tmp"))


def test_compiler_output_without_the_function(
    cache: Path, capsys, input_file: Path, tmp_path, monkeypatch
):
    """A compiler that makes a shared library, but not of derive's source: refused after one
    try, nothing cached."""
    # Only the compile runs in derive's scratch folder; --version runs wherever derive is.
    body = (
        f'case "$1" in --version) exec {CC} --version ;; esac\n'
        f"echo 'int f(void) {{ return 0; }}' > cell.c\nexec {CC} \"$@\"\n"
    )
    fake = script(tmp_path / "other-cc", body)
    monkeypatch.setenv("CC", str(fake))
    status, out, err = grad_here(capsys, input_file, "c")
    assert status == 2 and out is None and err.count("\n") == 1
    assert "does not load: it has no function derive_gradient" in err
    assert not list(cache.glob("native-*"))


def test_compiler_that_hangs_is_killed(cache: Path, input_file: Path, tmp_path: Path) -> None:
    """A compiler that never finishes is killed with its children after COMPILE_TIMEOUT; its
    temporary folder is removed and nothing is left in the cache."""
    pid_file = tmp_path / "sleep.pid"
    body = (
        'case "$1" in --version) echo fake cc 1.0 ;;\n'
        f"*) sleep 300 & echo $! > {pid_file}; wait ;; esac\n"
    )
    hang = script(tmp_path / "hanging-cc", body)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    prelude = "import derive.engine.native as n; n.COMPILE_TIMEOUT = 1.0"
    run, seconds = grad_apart(
        cache, input_file, "auto", prelude, timeout=60, CC=str(hang), TMPDIR=str(scratch)
    )
    assert run.returncode == 0 and json.loads(run.stdout)["backend"] == "numpy", run.stderr
    assert seconds < 30
    assert run.stderr.count("\n") == 1 and "ran longer than 1 s and was killed" in run.stderr
    assert not list(scratch.iterdir()) and not list(cache.glob("*.tmp"))
    sleeper = Path(f"/proc/{pid_file.read_text().strip()}/stat")
    assert not sleeper.exists() or sleeper.read_text().split(")")[-1].split()[0] == "Z"


def test_interrupted_compile_leaves_no_temporary_files(cache: Path, tmp_path, monkeypatch):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    real = procs.run

    def interrupted(cmd, **kwargs):
        if "--version" in cmd:
            return real(cmd, **kwargs)
        assert list(scratch.iterdir())  # the compile's folder is there while it runs
        raise procs.Interrupted(2)

    monkeypatch.setattr(procs, "run", interrupted)
    with pytest.raises(procs.Interrupted):
        native.build("int derive_gradient(void) { return 0; }\n")
    assert not list(scratch.iterdir()) and not list(cache.glob("*.tmp"))


# -- the spot check ----------------------------------------------------------------------------
def test_spot_check_refuses_a_miscompiled_library(cache: Path, capsys, input_file, monkeypatch):
    """A compiler that computes something else (here tanh made sinh): the library loads and
    has its function, but disagrees with NumPy on the first use, and is not used."""
    monkeypatch.setenv("CC", f"{CC} -Dtanh=sinh")
    status, out, err = grad_here(capsys, input_file, "auto")
    assert status == 0 and out["backend"] == "numpy" and agrees(out)
    assert err.count("\n") == 1 and "disagrees with the NumPy sweep" in err
    status, out, err = grad_here(capsys, input_file, "c")
    assert status == 2 and out is None and err.count("\n") == 1
    assert "--backend c" in err and "disagrees with the NumPy sweep" in err


def test_spot_check_passes_the_genuine_library(cache: Path) -> None:
    """The check is not vacuous either way: the genuine library passes it, well inside."""
    gradient = NativeGradient(GRU().cell)
    gradient._spot_check(tuple(native.compiler()))  # raises if it disagreed
    with pytest.raises(NativeUnavailable, match="disagrees"):
        perturbed = NativeGradient(GRU().cell)
        perturbed.run = lambda *a, **k: _shifted(NativeGradient.run(perturbed, *a, **k))
        perturbed._spot_check(tuple(native.compiler()))


def _shifted(result):
    traj, g = result
    return traj, type(g)(g.bars, {k: v * (1 + 1e-9) for k, v in g.params.items()}, g.initial)
