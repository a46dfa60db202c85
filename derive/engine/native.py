"""The derived gradient of a scalar cell compiled to C: forward pass and backward sweep as one loop.

``native_for(cell)`` generates one C function per cell from the cell's data and the derived
equations, compiles it with the system C compiler and loads it with ``ctypes``:

* the forward pass prints each right-hand side of ``cell.assignments`` with SymPy's C99
  printer;
* the backward sweep prints ``numeric.sweep_outputs`` (the equations ``ScalarSweep``
  evaluates, in the float64-stable forms of ``stable_forms``) after ``sympy.cse``, and the
  initial states' adjoints ``stable_forms(cell, adjoint.from_next_step)`` at t = 0.

Semantics are those of ``forward`` + ``ScalarSweep.run``: step 0 holds the initial states
(gates and inputs are 0 there), values beyond step T repeat step T's (the adjoints there are
0), the loss's direct partial by v at step t is ``loss_grads[v][t-1]``, and a parameter's
gradient is its per-step term summed over t = T, ..., 1.  Only the rounding can differ: the
C library's exp/tanh/cosh against NumPy's.

One call runs B independent sequences of length T sharing the parameters (B = 1 for one
sequence).  Each sequence runs its forward pass and backward sweep in a private work array of
(T + 1 + PAD) rows, one row per step with a slot for every input, variable, loss weight,
adjoint and hoisted function value, so its data stays in cache; the batch is the outer loop,
split over threads by OpenMP.  A sequence's results never depend on the others or on the
number of threads.

Function values that depend on forward quantities only (``sigma(-z)``, ``sech(c)``, ...) are
*hoisted*: shifted to the step that can form them, evaluated once per step in the forward
loop right after the step's assignments, and read from the work array by the sweep, which
would otherwise evaluate each twice (at t + 1 for the state adjoints, at t for the gate and
weight terms).  Evaluated beside the assignments, a call both need (tanh(c), the exp of
sigma(z) and sigma(-z)) is made once.  None of this changes a number: the same function of
the same argument, computed the same way.

The compiled library is cached on disk by the SHA-256 of (source, compiler command, flags,
compiler version), in ``$DERIVE_CACHE``, ``$XDG_CACHE_HOME/derive-keys`` or
``~/.cache/derive-keys``.  Nothing in the cache is trusted for being there:

* the folder (made with mode 0700) is used only if it is a real folder of this user that no
  one else may write; otherwise derive warns in one line and compiles into a private
  temporary folder of the process;
* each library ends with the HMAC-SHA256 of its name and bytes under the folder's secret key
  (``key``, mode 0600, made on first use), checked before the library is loaded, and loaded
  through the descriptor it was read by; a library that fails the check, or does not load,
  is compiled again (once: if the new one fails too, ``NativeUnavailable``);
* the compiler runs through ``procs.run`` with ``COMPILE_TIMEOUT``, in a temporary folder,
  and must write a shared object;
* on its first use in a process a library must agree with the NumPy sweep on a small fixed
  case (``NativeGradient._spot_check``).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import errno
import hashlib
import hmac
import math
import os
import secrets
import shlex
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import sympy as sp
from sympy.printing.c import C99CodePrinter

from derive import procs
from derive.engine.cell import Cell, Quantity, quantity, t
from derive.engine.functions import c_names, c_prelude
from derive.engine.numeric import (
    Gradients,
    adjoint_names,
    adjoints_for,
    forward,
    per_cell,
    stable_forms,
    sweep_argument,
    sweep_for,
    sweep_outputs,
)
from derive.readers import read_at_most
from derive.verify import rel_error

#: Flags that keep results independent of the machine: no -march=native, no fast-math, no
#: fused multiply-add contraction (which would round differently from NumPy).  Not setting
#: errno changes no value; it lets the compiler treat exp and cosh as pure functions and
#: evaluate a call common to the forward pass and the hoisted values once.
FLAGS = (
    "-O2",
    "-fPIC",
    "-shared",
    "-std=c99",
    "-fno-fast-math",
    "-ffp-contract=off",
    "-fno-math-errno",
)
#: OpenMP splits the batch over threads; each sequence runs alone in one thread.
OPENMP = ("-fopenmp",)
INSTALL = "install a C compiler, e.g. apt-get install gcc libc6-dev"

#: The C prelude: headers, then the registry's own C functions (derive_sigma, ...).
PRELUDE = """\
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

""" + c_prelude()


class NativeUnavailable(RuntimeError):  # noqa: N818 - reads as a state, like the brief
    """The C backend cannot run here: no compiler, the compile failed, or the library failed
    its checks (the message says)."""


class NoCompiler(NativeUnavailable):
    """There is no C compiler at all (the one case ``--backend auto`` passes over silently)."""


# -- the compiler ----------------------------------------------------------------------------
#: Seconds that ``cc --version`` or one compile may take before the compiler is killed.
COMPILE_TIMEOUT = 120.0
#: Part of every library's name: a library laid out by another version is never looked at.
FORMAT = "derive-native-2"
#: The name of the function every library exports.
SYMBOL = "derive_gradient"
#: A compiled library larger than this is refused (the LSTM's is about 20 KB).
MAX_LIBRARY = 64 * 2**20
#: A cached library is the compiler's output, this mark, then the HMAC-SHA256 of its name
#: and that output under the cache folder's key (the dynamic loader ignores bytes past the
#: ELF segments, so the file loads as it is).
TRAILER = b"\0derive-hmac-sha256\0"
_TAG = hashlib.sha256().digest_size
#: The cache folder's secret key: made on first use, readable by its owner only.
KEY_FILE = "key"
_KEY_BYTES = 32
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # a FIFO cannot block
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def compiler() -> list[str]:
    """The C compiler command: ``$CC`` (may carry arguments) or ``cc`` on the PATH."""
    given = os.environ.get("CC", "").strip()
    words = shlex.split(given) if given else ["cc"]
    found = shutil.which(words[0])
    if found is None:
        where = f"$CC is {given!r}, not found" if given else "'cc' is not on the PATH"
        raise NoCompiler(f"no C compiler ({where}); {INSTALL}")
    return [found, *words[1:]]


def available() -> bool:
    """Whether a C compiler is there (a compile can still fail: see ``NativeUnavailable``)."""
    try:
        compiler()
    except NativeUnavailable:
        return False
    return True


def cache_dir() -> Path:
    """Where compiled libraries are kept."""
    if os.environ.get("DERIVE_CACHE"):
        return Path(os.environ["DERIVE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "derive-keys"


def warn(message: str) -> None:
    """``message`` as one line on standard error."""
    print(f"derive: warning: {' '.join(message.split())}", file=sys.stderr)


@dataclass(frozen=True)
class Library:
    """A compiled library, verified and loaded: where it lies, its handle, its digest and
    the compiler that made it."""

    path: Path
    dll: ctypes.CDLL
    digest: bytes
    compiler: tuple[str, ...]


def build(source: str, flags: tuple[str, ...] = FLAGS + OPENMP) -> Library:
    """The shared library compiled from ``source``, verified and loaded.

    From the cache if a library there carries the digest of its bytes under the folder's
    key, else compiled into it.  A cache folder that anyone but its user may write (or that
    cannot be written) is not used: the library is compiled into a folder of this process
    instead, with a one-line warning.

    Raises
    ------
    NoCompiler
        No C compiler.
    NativeUnavailable
        The compiler failed, timed out or wrote no shared library, or the library it wrote
        does not load.
    """
    cmd = compiler()
    compiled: list[bytes] = []  # compiled once, even if the cache then cannot take it

    def compile_once() -> bytes:
        if not compiled:
            compiled.append(_compile(cmd, source, flags))
        return compiled[0]

    folder = _open_folder()
    try:
        return _build_in(folder, cmd, source, flags, compile_once)
    except OSError as exc:  # read-only, full, or a folder where a file should be
        if folder.private:
            raise NativeUnavailable(f"cannot write into {folder.path}: {exc}") from None
        why = exc.strerror or exc
        warn(f"cannot use the cache folder {folder.path} ({why}); compiling without the cache")
    finally:
        folder.close()
    return _build_privately(cmd, source, flags, compile_once)


def _build_privately(cmd, source: str, flags: tuple[str, ...], compile_once) -> Library:
    """``build`` in a folder of this process alone, when the cache folder cannot be used."""
    private = _private_folder()
    try:
        return _build_in(private, cmd, source, flags, compile_once)
    except OSError as exc:
        raise NativeUnavailable(f"cannot write into {private.path}: {exc}") from None
    finally:
        private.close()


def _build_in(
    folder: _Folder,
    cmd: list[str],
    source: str,
    flags: tuple[str, ...],
    compile_once: Callable[[], bytes],
) -> Library:
    """The library of ``source`` from ``folder``, or compiled into it (once: a library that
    fails its checks is compiled again, and if that one fails too, NativeUnavailable)."""
    key = _key(folder)
    blob = "\0".join([FORMAT, *cmd, *flags, _version(cmd, folder), source])
    name = f"native-{hashlib.sha256(blob.encode()).hexdigest()[:40]}.so"
    path = folder.path / name
    try:
        return Library(path, *_load(folder, name, key), tuple(cmd))
    except FileNotFoundError:
        unfit = None
    except _Unfit as exc:
        unfit = str(exc)
    body = compile_once()
    try:
        folder.write(name, body + TRAILER + _digest(key, name, body))
    except OSError as exc:
        if unfit is None:
            raise
        # One warning for both: build() then compiles into a private folder.
        why = f"{name} there is unfit ({unfit}) and cannot be replaced: {exc.strerror or exc}"
        raise OSError(exc.errno, why) from None
    if unfit is not None:
        warn(f"the cached library {path} was not loaded ({unfit}); compiled it again")
    try:
        return Library(path, *_load(folder, name, key), tuple(cmd))
    except (FileNotFoundError, _Unfit) as exc:
        folder.remove(name)  # nothing broken stays cached
        raise NativeUnavailable(f"the library just compiled does not load: {exc}") from None


def load_signed(name: str, most: int) -> bytes | None:
    """The bytes derive stored as ``name`` in the cache folder (``store_signed``), if they
    carry their digest under the folder's key; None if absent, unfit or unreadable.  For
    derive's own compiled data (the templates' code), trusted as its libraries are."""
    try:
        folder = _open_folder()
    except NativeUnavailable:  # not even a private folder: nothing cached
        return None
    try:
        fd, data = folder.read(name, most + len(TRAILER) + _TAG)
        os.close(fd)
        key = _key(folder)
    except (OSError, _Unfit):
        return None
    finally:
        folder.close()
    end = len(data) - len(TRAILER) - _TAG
    body, mark, tag = data[:end], data[end:-_TAG], data[-_TAG:]
    if end < 0 or mark != TRAILER or not hmac.compare_digest(tag, _digest(key, name, body)):
        return None
    return body


def store_signed(name: str, data: bytes) -> None:
    """Keep ``data`` as ``name`` in the cache folder, signed; nothing if it cannot be."""
    try:
        folder = _open_folder()
    except NativeUnavailable:
        return
    try:
        folder.write(name, data + TRAILER + _digest(_key(folder), name, data))
    except OSError:  # read-only or full: the cache is only a saving
        pass
    finally:
        folder.close()


class _Unfit(Exception):  # noqa: N818 - a state of a file, like NativeUnavailable
    """A file of the cache that is there but not to be trusted; the message says why."""


class _Folder:
    """A cache folder, open: every file in it is reached through one descriptor of the folder,
    so a folder put in place of the one checked is never read or written."""

    def __init__(self, path: Path, fd: int, private: bool = False) -> None:
        self.path, self.fd, self.private = path, fd, private
        self.uid = os.fstat(fd).st_uid  # the owner of every file trusted here

    def close(self) -> None:
        os.close(self.fd)

    def read(self, name: str, most: int) -> tuple[int, bytes]:
        """An open descriptor of the file ``name`` and its bytes.

        Raises ``FileNotFoundError`` if there is none, and ``_Unfit`` if it is not a regular
        file of the folder's owner that no one else may write, or is larger than ``most``.
        """
        try:
            fd = os.open(name, _READ, dir_fd=self.fd)
        except FileNotFoundError:
            raise
        except OSError as exc:  # ELOOP: a symbolic link
            raise _Unfit(f"cannot open it: {exc.strerror}") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise _Unfit("not a regular file")
            if st.st_uid != self.uid or st.st_mode & 0o022:
                raise _Unfit("someone other than the folder's owner may write it")
            data = read_at_most(fd, most + 1)
            if len(data) > most:
                raise _Unfit(f"larger than {most} bytes")
        except BaseException:
            os.close(fd)
            raise
        return fd, data

    def write(self, name: str, data: bytes, replace: bool = True) -> None:
        """``data`` as the file ``name`` (mode 0600), whole or not at all: written under a
        temporary name, then renamed (or, with ``replace=False``, linked: ``FileExistsError``
        if ``name`` is there)."""
        tmp = f".{name}.{secrets.token_hex(8)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp, flags, 0o600, dir_fd=self.fd)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            if replace:
                os.replace(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
            else:
                os.link(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=self.fd)

    def remove(self, name: str) -> None:
        with contextlib.suppress(OSError):
            os.unlink(name, dir_fd=self.fd)


def _owner() -> int:
    """The user a cache folder must belong to (a function, so that a test can pose as
    another user)."""
    return os.geteuid()


def _open_folder() -> _Folder:
    """``cache_dir()`` (made with mode 0700 if missing) if it is a folder of this user that no
    one else may write; else, with a one-line warning, a private folder of this process."""
    try:
        path = cache_dir()
    except RuntimeError as exc:  # no home folder, and no variable naming one
        warn(f"no cache folder ({exc}); compiling without the cache")
        return _private_folder()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
        if path.is_symlink():
            raise NotADirectoryError(errno.ELOOP, "a symbolic link")
        fd = os.open(path, _DIR)
    except OSError as exc:
        why = f"cannot use the cache folder {path} ({exc.strerror or exc})"
    else:
        st = os.fstat(fd)
        if st.st_uid == _owner() and not st.st_mode & 0o022:
            return _Folder(path, fd)
        os.close(fd)
        who = "belongs to another user" if st.st_uid != _owner() else "may be written by others"
        why = f"the cache folder {path} {who} (mode {stat.S_IMODE(st.st_mode):o})"
    warn(f"{why}; compiling without the cache")
    return _private_folder()


_PRIVATE: dict[int, Path] = {}  # by process id: a forked child makes its own


def _private_folder() -> _Folder:
    """A folder of this process alone (mode 0700, removed at exit)."""
    pid = os.getpid()
    if pid not in _PRIVATE:
        try:
            _PRIVATE[pid] = Path(tempfile.mkdtemp(prefix="derive-keys-"))
        except OSError as exc:
            raise NativeUnavailable(f"no folder to compile into: {exc}") from None
        atexit.register(_remove_private, pid)
    return _Folder(_PRIVATE[pid], os.open(_PRIVATE[pid], _DIR), private=True)


def _remove_private(pid: int) -> None:
    if os.getpid() == pid:
        shutil.rmtree(_PRIVATE.pop(pid), ignore_errors=True)


def _key(folder: _Folder) -> bytes:
    """The folder's secret key, made on first use.  A new key is linked into place, never
    renamed over another: two processes starting at once end with the same key."""
    for _ in range(3):
        try:
            fd, key = folder.read(KEY_FILE, _KEY_BYTES)
        except FileNotFoundError:
            with contextlib.suppress(FileExistsError):
                folder.write(KEY_FILE, secrets.token_bytes(_KEY_BYTES), replace=False)
            continue
        except _Unfit:
            key = b""
        else:
            readable = os.fstat(fd).st_mode & 0o077
            os.close(fd)
            if len(key) == _KEY_BYTES and not readable:
                return key
        # Damaged or readable by others: a new key (every library is then compiled again).
        folder.write(KEY_FILE, secrets.token_bytes(_KEY_BYTES))
    raise OSError(errno.EAGAIN, f"the key {folder.path / KEY_FILE} keeps changing")


def _digest(key: bytes, name: str, body: bytes) -> bytes:
    # The name is signed too: a library of another source renamed to this one is refused.
    return hmac.new(key, name.encode() + b"\0" + body, hashlib.sha256).digest()


def _load(folder: _Folder, name: str, key: bytes) -> tuple[ctypes.CDLL, bytes]:
    """The library ``name`` loaded, if its digest is right; ``_Unfit`` (why) if not."""
    fd, data = folder.read(name, MAX_LIBRARY + len(TRAILER) + _TAG)
    loaded = False
    try:
        end = len(data) - len(TRAILER) - _TAG
        body, mark, tag = data[:end], data[end:-_TAG], data[-_TAG:]
        if not _is_shared_object(body):
            raise _Unfit("not a shared library")
        if mark != TRAILER or not hmac.compare_digest(tag, _digest(key, name, body)):
            raise _Unfit("its digest is missing or wrong")
        # dlopen the very file whose bytes were checked, through the open descriptor: what
        # the name points to meanwhile does not matter, and the file itself cannot change
        # (only its owner, this user, may write it, and derive replaces, never rewrites).
        # Without /proc the name is loaded: the folder is this user's alone.
        by_fd = f"/proc/self/fd/{fd}"
        try:
            dll = ctypes.CDLL(by_fd if os.path.exists(by_fd) else str(folder.path / name))
        except OSError as exc:
            raise _Unfit(f"it does not load: {exc}") from None
        # The descriptor stays open for the life of the process: dlopen finds a library
        # loaded before by the *name* asked for, so /proc/self/fd/N must never name another.
        _LOADED.append(fd)
        loaded = True
        if not hasattr(dll, SYMBOL):
            raise _Unfit(f"it has no function {SYMBOL}")
    finally:
        if not loaded:
            os.close(fd)
    return dll, tag


_LOADED: list[int] = []  # descriptors of the libraries loaded by this process


def _is_shared_object(body: bytes) -> bool:
    """An ELF file of type ET_DYN (a shared object)."""
    if len(body) < 64 or body[:4] != b"\x7fELF" or body[5] not in (1, 2):
        return False
    return int.from_bytes(body[16:18], "little" if body[5] == 1 else "big") == 3


def _version(cmd: list[str], folder: _Folder) -> str:
    """``cc --version``, remembered in the folder by the compiler binary's path, size and
    mtime, so that loading a cached library never runs the compiler."""
    real = os.path.realpath(cmd[0])
    try:
        st = os.stat(real)
    except OSError as exc:  # gone since compiler() found it
        raise NativeUnavailable(f"cannot run {cmd[0]}: {exc.strerror}; {INSTALL}") from None
    stamp = hashlib.sha256(f"{real}\0{st.st_size}\0{st.st_mtime_ns}\0{cmd}".encode()).hexdigest()
    memo = f"cc-{stamp[:32]}.version"
    try:
        fd, text = folder.read(memo, 1 << 16)
        os.close(fd)
        return text.decode("utf-8")
    except (FileNotFoundError, _Unfit, UnicodeDecodeError):
        pass
    out = _run([*cmd, "--version"], f"{Path(cmd[0]).name} --version")
    folder.write(memo, out.encode())
    return out


def _run(cmd: list[str], what: str, cwd: str | None = None) -> str:
    """The output of ``cmd``, run with the compile timeout; ``NativeUnavailable`` if it
    cannot start, times out or fails."""
    try:
        done = procs.run(cmd, timeout=COMPILE_TIMEOUT, cwd=cwd)
    except procs.Timeout as exc:
        raise NativeUnavailable(f"{what}: {exc}") from None
    except OSError as exc:
        raise NativeUnavailable(f"cannot run {cmd[0]}: {exc.strerror or exc}; {INSTALL}") from None
    out = done.output.decode("utf-8", "replace").strip()
    if done.returncode != 0:
        raise NativeUnavailable(f"{what} failed:\n{out}")
    return out


def _compile(cmd: list[str], source: str, flags: tuple[str, ...]) -> bytes:
    """The shared object ``cmd`` makes of ``source``, compiled in a temporary folder that is
    removed however the compile ends (a timeout or an interruption included)."""
    with procs.scratch("derive-cc-") as work:
        Path(work, "cell.c").write_text(source, encoding="utf-8")
        # Relative names: the library's bytes do not depend on the temporary folder's name.
        _run([*cmd, *flags, "-o", "cell.so", "cell.c", "-lm"], "the C compiler", cwd=work)
        try:
            fd = os.open(Path(work, "cell.so"), _READ)
        except OSError:
            raise NativeUnavailable(f"{cmd[0]} exited 0 but wrote no library") from None
        try:
            body = read_at_most(fd, MAX_LIBRARY + 1)
        finally:
            os.close(fd)
    if len(body) > MAX_LIBRARY or not _is_shared_object(body):
        what = f"{len(body)} bytes" if body else "an empty file"
        raise NativeUnavailable(f"{cmd[0]} exited 0 but wrote {what}, not a shared library")
    return body


# -- the plan: slots of a step row and what each block reads -------------------------------
@dataclass
class Layout:
    """The slots of one row of the work array (one row per step) and the hoisted values."""

    cell: Cell
    aux: list[sp.Expr] = field(default_factory=list)  # hoisted, shifted to their own step

    @cached_property
    def slots(self) -> dict[tuple[str, str], int]:
        cell = self.cell
        names = [("traj", x.name) for x in cell.inputs] + [("traj", u.name) for u in cell.variables]
        names += [("loss", v.name) for v in cell.loss_on]
        names += [("bar", n) for n in self.bar_names]
        return {k: j for j, k in enumerate(names)}

    @property
    def bar_names(self) -> list[str]:
        return adjoint_names(self.cell)

    def slot(self, kind: str, name: str) -> int:
        if kind == "aux":
            return len(self.slots) + int(name)
        return self.slots[kind, name]

    @property
    def width(self) -> int:
        return len(self.slots) + len(self.aux)

    def first_row(self, kind: str, name: str) -> int:
        """The first row that holds a value: hoisted values need the rows they read."""
        if kind != "aux":
            return 0
        return -min((_offset(a) for a in _timed(self.aux[int(name)])), default=0)


def _timed(e: sp.Expr) -> set[Quantity]:
    return e.atoms(Quantity)


def _offset(a: Quantity) -> int:
    return int(a.offset)


def _hoist(e: sp.Expr, layout: Layout) -> sp.Expr:
    """``e`` with every function of forward quantities alone replaced by a hoisted value."""
    if isinstance(e, Quantity) or not e.args:
        return e
    timed = _timed(e)
    if isinstance(e, sp.Function) and timed and all(sweep_argument(a)[0] == "traj" for a in timed):
        top = max(_offset(a) for a in timed)
        own = e.subs(t, t - top)  # the value at the step that computes it
        if own not in layout.aux:
            layout.aux.append(own)
        return quantity(str(layout.aux.index(own)), "hoisted", top)
    return e.func(*[_hoist(a, layout) for a in e.args])


# -- printing C ------------------------------------------------------------------------------
_PRINTER = C99CodePrinter({"user_functions": c_names()})


def c_code(e: sp.Expr) -> str:
    """The C text of ``e`` (the registry names the C form of each function)."""
    try:
        return _PRINTER.doprint(_negated_arguments(e))
    except NotImplementedError as exc:  # a function with no C form: say which
        raise ValueError(f"no C form for {e}: {exc}") from None


def _negated_arguments(e: sp.Expr) -> sp.Expr:
    """``f(-a - b)`` written ``f(-(a + b))``: the same number (negation is exact and rounding
    symmetric), and the compiler then sees the pre-activation ``a + b`` that the forward
    pass computes, so sigma(-z) shares the exp of sigma(z)."""
    if isinstance(e, Quantity) or not e.args:
        return e
    args = [_negated_arguments(a) for a in e.args]
    if isinstance(e, sp.Function) and len(args) == 1:
        z = args[0]
        if z.is_Add and all(a.could_extract_minus_sign() for a in z.args):
            return e.func(sp.Mul(-1, -z, evaluate=False))
    return e.func(*args)


def _token(offset: int) -> str:
    return "0" if offset == 0 else ("p" if offset > 0 else "m") + str(abs(offset))


def _cname(layout: Layout, kind: str, name: str, offset: int) -> str:
    # Generated, never the cell's own names (which may be any text): a parameter by its
    # position, anything else by its slot and step.  Every name carries a prefix and an
    # underscore, so none can clash with C words, with <math.h> (j0, y1, ...), with the
    # cse_ temporaries or with one another.
    if kind == "param":
        return f"p_{[p.name for p in layout.cell.params].index(name)}"
    prefix = {"traj": "v", "loss": "l", "bar": "b", "aux": "a"}[kind]
    return f"{prefix}_{layout.slot(kind, name)}_{_token(offset)}"


def _symbols(exprs: list[sp.Expr], layout: Layout) -> dict[sp.Expr, sp.Symbol]:
    """Each argument of ``exprs`` (timed atom or parameter) as a C-named symbol."""
    out = {}
    for e in exprs:
        for a in _timed(e) | (e.free_symbols - {t}):
            out[a] = sp.Symbol(_cname(layout, *sweep_argument(a)))
    return out


def _comment(text: str) -> str:
    """``text`` safe inside a C comment: ASCII, and no ``*/`` to end it."""
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    return "".join(c if c.isprintable() else "?" for c in text).replace("*/", "* /")


def _reads(
    args: Mapping[sp.Expr, sp.Symbol], layout: Layout, step: str, have: Collection[str] = ()
) -> list[str]:
    """Declarations that load each timed argument from its row relative to ``step``
    (parameters, and the names in ``have``, are declared already)."""
    lines = []
    for a, s in sorted(args.items(), key=lambda kv: kv[1].name):
        if a.is_Symbol or s.name in have:
            continue
        kind, name, offset = sweep_argument(a)
        lines.append(
            f"const double {s.name} = AT({_row(step, offset)}, {layout.slot(kind, name)});"
        )
    return lines


def _row(step: str, offset: int) -> str:
    if step.isdigit():
        return str(int(step) + offset)
    return step if offset == 0 else f"{step} {'+' if offset > 0 else '-'} {abs(offset)}"


def _block(
    exprs: list[sp.Expr], layout: Layout, step: str, have: Collection[str] = ()
) -> tuple[list[str], list[str]]:
    """Statements that prepare ``exprs`` at ``step`` (loads, ``sympy.cse`` temporaries) and
    each expression's C text."""
    args = _symbols(exprs, layout)
    subs, reduced = sp.cse([e.xreplace(args) for e in exprs], sp.numbered_symbols("cse_"))
    lines = _reads(args, layout, step, have) + [f"const double {s} = {c_code(v)};" for s, v in subs]
    return lines, [c_code(v) for v in reduced]


def _check_reads(exprs: list[sp.Expr], layout: Layout, first: int, what: str) -> int:
    """The largest step offset read; an error if a read at step ``first`` precedes the data."""
    top = 1  # the adjoints at T + 1 are read as zeros
    for e in exprs:
        for a in _timed(e):
            kind, name, offset = sweep_argument(a)
            if first + offset < layout.first_row(kind, name):
                raise ValueError(f"{what} reads {a} at step {first}, before the sequence starts")
            top = max(top, offset)
    return top


# -- the generated function --------------------------------------------------------------------
@dataclass
class Program:
    """The C source of one cell's gradient and the order of its arguments."""

    source: str
    params: list[str]
    values: list[str]  # forward series (the assigned variables)
    bars: list[str]  # adjoint series (variables, then inputs)
    inputs: list[str]
    states: list[str]
    loss_on: list[str]


def program(cell: Cell) -> Program:
    """Generate the C source of ``cell``'s forward pass and backward sweep.

    The equations are the cell's shared derivation (``adjoints_for``), the ones the NumPy
    sweep evaluates.  Raises ``ValueError`` if an equation has no C form or reads a step
    before the sequence.
    """
    adj = adjoints_for(cell)
    layout = Layout(cell)
    sweep = {k: _hoist(e, layout) for k, e in sweep_outputs(adj).items()}
    initial = [
        _hoist(stable_forms(cell, adj.variables[s.name].from_next_step), layout)
        for s in cell.states
    ]
    if any(layout.first_row("aux", str(j)) > 1 for j in range(len(layout.aux))):
        # A function of one step's right-hand side reads steps t - 1 and t only.
        raise ValueError(f"cell {cell.name!r}: a hoisted value reads two steps back")
    pad = max(
        _check_reads(list(sweep.values()), layout, 1, "the backward sweep"),
        _check_reads(initial, layout, 0, "an initial state's adjoint"),
    )
    params = [p.name for p in cell.params]
    return Program(
        _assemble(cell, layout, pad, _body(cell, layout, sweep, initial, params)),
        params,
        [u.name for u in cell.variables],
        layout.bar_names,
        [x.name for x in cell.inputs],
        [s.name for s in cell.states],
        [v.name for v in cell.loss_on],
    )


def _body(cell: Cell, layout: Layout, sweep: dict, initial: list, params: list[str]) -> list:
    """The statements of one sequence: setup, forward pass, sweep, initial adjoints, results."""
    return [
        f"double acc[{max(len(params), 1)}] = {{0}};",
        *[
            f"const double {_cname(layout, 'param', p, 0)} = params[{j}];"
            for j, p in enumerate(params)
        ],
        "/* inputs, loss weights and initial states */",
        *_setup(cell, layout),
        "/* forward pass: the assignments, then the step's hoisted values */",
        *_loop("k = 1; k <= T; ++k", _forward(cell, layout)),
        *_repeat_last(cell, layout),
        *_aux_tail(layout),
        "/* backward sweep, t = T, ..., 1 */",
        *_loop("k = T; k >= 1; --k", _sweep(sweep, layout, params)),
        "/* the initial states' adjoints (t = 0) */",
        *_initial(initial, layout),
        "/* results */",
        *_outputs(cell, layout, params),
    ]


def _loop(head: str, lines: list[str]) -> list[str]:
    return [f"for ({head}) {{", *_indent(lines), "}"]


def _setup(cell: Cell, layout: Layout) -> list[str]:
    """Zeroed rows (step 0 and beyond T), initial states, inputs and loss weights."""
    lines = [
        "memset(work, 0, NW * sizeof(double));",
        "memset(&AT(T + 1, 0), 0, PAD * NW * sizeof(double));",
    ]
    lines += [
        f"AT(0, {layout.slot('traj', s.name)}) = initial[{j} * B + b];"
        for j, s in enumerate(cell.states)
    ]
    copy = [
        f"AT(k, {layout.slot('traj', x.name)}) = series[({j} * B + b) * T + k - 1];"
        for j, x in enumerate(cell.inputs)
    ]
    copy += [
        f"AT(k, {layout.slot('loss', v.name)}) = series[({j} * B + b) * T + k - 1];"
        for j, v in enumerate(cell.loss_on, start=len(cell.inputs))
    ]
    return [*lines, *_loop("k = 1; k <= T; ++k", copy)]


def _forward(cell: Cell, layout: Layout) -> list[str]:
    """The assignments in order, each stored in its slot of row k, then the hoisted values
    of row k: in one block, so the compiler evaluates a function common to both once
    (tanh(c) of h = o tanh(c); the exp(-|z|) of sigma(z) and sigma(-z))."""
    loads = [(x, 0) for x in cell.inputs] + [(s, -1) for s in cell.prev]
    have = [_cname(layout, "traj", v.name, k) for v, k in loads]
    lines = [
        f"const double {n} = AT({_row('k', k)}, {layout.slot('traj', v.name)});"
        for n, (v, k) in zip(have, loads, strict=True)
    ]
    step = cell.at_step(0)
    for u, e in cell.assignments:
        e = e.xreplace(step)
        target = _cname(layout, "traj", u.name, 0)
        lines.append(f"const double {target} = {c_code(e.xreplace(_symbols([e], layout)))};")
        lines.append(f"AT(k, {layout.slot('traj', u.name)}) = {target};")
        have.append(target)
    return lines + _hoisted(layout, range(len(layout.aux)), "k", have)


def _repeat_last(cell: Cell, layout: Layout) -> list[str]:
    """Rows past T hold step T's values (as the NumPy sweep's padding): the sweep reads
    them only times a zero adjoint, and a 0 there could meet an infinite factor (sqrt's
    slope 1/(2u)), whose product is NaN."""
    slots = [layout.slot("traj", v.name) for v in (*cell.inputs, *cell.variables)]
    return [
        "/* past step T the values repeat step T's */",
        *_loop("k = T + 1; k <= T + PAD; ++k", [f"AT(k, {j}) = AT(T, {j});" for j in slots]),
    ]


def _hoisted(
    layout: Layout, which: range | list[int], step: str, have: Collection[str] = ()
) -> list[str]:
    """Statements that store the hoisted values ``which`` of the row at ``step``."""
    if not which:
        return []
    lines, values = _block([layout.aux[j] for j in which], layout, step, have)
    slots = [layout.slot("aux", str(j)) for j in which]
    return lines + [f"AT({step}, {s}) = {v};" for s, v in zip(slots, values, strict=True)]


def _aux_tail(layout: Layout) -> list[str]:
    """The hoisted values of the rows the forward pass does not reach: beyond T (from the
    zeros read there), and at step 0 those that need nothing before it."""
    if not layout.aux:
        return []
    at_zero = [j for j in range(len(layout.aux)) if layout.first_row("aux", str(j)) == 0]
    return [
        "/* hoisted values of the rows the forward pass does not reach */",
        *_loop("k = T + 1; k <= T + PAD; ++k", _hoisted(layout, range(len(layout.aux)), "k")),
        *(["{", *_indent(_hoisted(layout, at_zero, "0")), "}"] if at_zero else []),
    ]


def _sweep(sweep: dict, layout: Layout, params: list[str]) -> list[str]:
    lines, values = _block(list(sweep.values()), layout, "k")
    for lhs, v in zip(sweep, values, strict=True):
        if isinstance(lhs, Quantity):  # an adjoint at step t
            lines.append(f"AT(k, {layout.slot('bar', lhs.quantity)}) = {v};")
        else:  # a parameter's term, summed over the steps
            lines.append(f"acc[{params.index(lhs.name)}] += {v};")
    return lines


def _initial(initial: list[sp.Expr], layout: Layout) -> list[str]:
    lines, values = _block(initial, layout, "0")
    lines += [f"initial_bars[{j} * B + b] = {v};" for j, v in enumerate(values)]
    return ["{", *_indent(lines), "}"]


def _outputs(cell: Cell, layout: Layout, params: list[str]) -> list[str]:
    lines = [f"grads[{j} * B + b] = acc[{j}];" for j in range(len(params))]
    for j, u in enumerate(cell.variables):
        lines.append(
            f"if (values[{j}]) for (k = 0; k <= T; ++k) "
            f"values[{j}][b * (T + 1) + k] = AT(k, {layout.slot('traj', u.name)});"
        )
    for j, n in enumerate(layout.bar_names):
        lines.append(
            f"if (bars[{j}]) for (k = 0; k <= T + 1; ++k) "
            f"bars[{j}][b * (T + 2) + k] = AT(k, {layout.slot('bar', n)});"
        )
    return lines


def _assemble(cell: Cell, layout: Layout, pad: int, body: list[str]) -> str:
    names = {j: f"{kind} {name}" for (kind, name), j in layout.slots.items()}
    names |= {layout.slot("aux", str(j)): f"hoisted {e}" for j, e in enumerate(layout.aux)}
    slots = [f" *   {j:2d}  {_comment(names[j])}" for j in range(layout.width)]
    head = [
        f"/* derive: gradient of the scalar cell {_comment(repr(cell.name))}, generated from "
        "its equations.",
        " * Work array of a sequence: one row per step 0..T+PAD; slots of a row:",
        *slots,
        " */",
        f"#define NW {layout.width}",
        f"#define PAD {pad}",
        "#define AT(k, s) work[(k) * NW + (s)]",
    ]
    return "\n".join([PRELUDE, *head, "", SEQUENCE_HEAD, *_indent(body), "}", "", ENTRY, ""])


SEQUENCE_HEAD = """\
/* One sequence b of the batch: forward pass and backward sweep in its own work array, so
   its data stays in cache. */
static void sequence(int64_t T, int64_t B, int64_t b, const double *params,
                     const double *series, const double *initial, double *const *values,
                     double *const *bars, double *grads, double *initial_bars,
                     double *restrict work)
{
    int64_t k;"""

ENTRY = """\
/* B sequences of T steps.  series: [inputs, then loss weights][B][T]; initial,
   initial_bars: [state][B]; grads: [parameter][B]; values[j]: [B][T+1] (steps 0..T) and
   bars[j]: [B][T+2] (steps 0..T+1), or NULL: not stored.  Every sequence's data is
   contiguous.  Returns 0, or -1 if a work array could not be allocated. */
int derive_gradient(int64_t T, int64_t B, int threads, const double *params,
                    const double *series, const double *initial, double *const *values,
                    double *const *bars, double *grads, double *initial_bars)
{
    int failed = 0;
    #pragma omp parallel num_threads(threads) if (threads > 1 && B > 1)
    {
        double *work = malloc((size_t)(T + 1 + PAD) * NW * sizeof(double));
        int64_t b;
        /* dynamic: a thread that the system holds back leaves its sequences to the other */
        #pragma omp for schedule(dynamic)
        for (b = 0; b < B; ++b) {
            if (work)
                sequence(T, B, b, params, series, initial, values, bars, grads, initial_bars,
                         work);
            else {
                #pragma omp atomic write
                failed = 1;
            }
        }
        free(work);
    }
    return failed ? -1 : 0;
}"""


def _indent(lines: list[str], by: str = "    ") -> list[str]:
    return [by + line for line in lines]


# -- running it ----------------------------------------------------------------------------------
_VOID = ctypes.c_void_p
#: T, B, threads, params, series, initial, values[], bars[], grads, initial_bars
_ARGTYPES = [ctypes.c_int64, ctypes.c_int64, ctypes.c_int] + [_VOID] * 7
#: Threads that share a batch by default: every core this process may run on.
THREADS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
#: The batch is split over threads from this many sequence-steps (about 1.5 ms on one core):
#: below it, waking a sleeping thread and joining it gains little.
PARALLEL_FROM = 20_000


#: The spot check of a library, on its first use in a process: one sequence of SPOT_STEPS
#: steps drawn from SPOT_SEED (weights uniform in [-1, 1], the rest normal), C against NumPy.
SPOT_STEPS, SPOT_SEED = 6, 20261122
#: The mixed relative error allowed there.  The two round differently (the C library's
#: exp/tanh/cosh against NumPy's): on such data they differed by at most 1.2e-13 over 40
#: seeds of lstm and gru (tests/test_native.py); a cell of one's own may cancel more, so the
#: bound leaves a factor of 100.  A wrong library misses by far more (1e-3 and up).
SPOT_TOLERANCE = 1e-11
_SPOT_CHECKED: set[bytes] = set()  # digests of the libraries checked in this process


class NativeGradient:
    """One cell's compiled forward pass and backward sweep.

    Parameters
    ----------
    cell
        The scalar cell; its equations are derived (``Adjoints``) and compiled here.
    flags
        Compiler flags (the default adds OpenMP to ``FLAGS``).
    """

    def __init__(self, cell: Cell, flags: tuple[str, ...] = FLAGS + OPENMP) -> None:
        self.cell = cell
        self.program = program(cell)
        # Idle OpenMP threads sleep rather than spin (read once, when the OpenMP runtime
        # loads with the library; an explicit setting wins).  Spinning held a core another
        # process needed: on this 2-core machine, with one core busy, two threads then took
        # twice as long as one (T = 100, batch 1000: 15 ms against 8); sleeping, as long as one.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        lib = build(self.program.source, flags)
        self.library, self._dll = lib.path, lib.dll
        self._fn = getattr(self._dll, SYMBOL)
        self._fn.argtypes = _ARGTYPES
        self._fn.restype = ctypes.c_int
        if lib.digest not in _SPOT_CHECKED:
            self._spot_check(lib.compiler)
            _SPOT_CHECKED.add(lib.digest)

    def _spot_check(self, cmd: tuple[str, ...]) -> None:
        """The library against the NumPy sweep (``forward`` + ``ScalarSweep``) on one small
        fixed case: a library that loads but computes something else (a miscompiling
        compiler, a wrong ``$CC``) is refused, not trusted."""
        cell, prog = self.cell, self.program
        rng = np.random.default_rng(SPOT_SEED)
        params = {p.name: float(rng.uniform(-1, 1)) for p in cell.params}
        inputs = {x.name: rng.normal(size=SPOT_STEPS).tolist() for x in cell.inputs}
        initial = {s.name: float(rng.normal(scale=0.5)) for s in cell.states}
        loss = {v.name: rng.normal(size=SPOT_STEPS).tolist() for v in cell.loss_on}
        traj = forward(cell, params, inputs, initial)
        runs = [self.run(params, inputs, initial, loss, threads=1)]
        runs.append((traj, sweep_for(cell).run(traj, params, loss)))

        def flat(values: dict, g: Gradients) -> np.ndarray:
            return np.concatenate(
                [np.asarray(values[v][: SPOT_STEPS + 1], dtype=float) for v in prog.values]
                + [np.asarray(g.bars[v][1 : SPOT_STEPS + 1], dtype=float) for v in prog.bars]
                + [np.array([float(g.params[p]) for p in prog.params])]
                + [np.array([float(g.initial[s]) for s in prog.states])]
            )

        err = rel_error(*(flat(*r) for r in runs))
        if not err <= SPOT_TOLERANCE:
            raise NativeUnavailable(
                f"the compiled library {self.library} disagrees with the NumPy sweep on a "
                f"fixed test case (mixed relative error {err:.1e}, allowed "
                f"{SPOT_TOLERANCE:.0e}): the C compiler ({shlex.join(cmd)}) miscompiles it"
            )

    def run(
        self,
        params: Mapping[str, float],
        inputs: Mapping[str, object],
        initial: Mapping[str, object],
        loss_grads: Mapping[str, object],
        values: Collection[str] | None = None,
        bars: Collection[str] | None = None,
        threads: int | None = None,
    ) -> tuple[dict[str, np.ndarray], Gradients]:
        """Forward pass and backward sweep of one sequence or a batch; see ``native_gradient``."""
        prog = self.program
        given = [inputs[k] for k in prog.inputs] + [loss_grads[k] for k in prog.loss_on]
        arrays = _series(given, [*prog.inputs, *(f"loss weight {k}" for k in prog.loss_on)])
        steps, batch = (len(arrays[0]), 1) if arrays[0].ndim == 1 else arrays[0].shape
        keep_v = prog.values if values is None else [v for v in prog.values if v in values]
        keep_b = prog.bars if bars is None else [v for v in prog.bars if v in bars]
        arena = _arena(prog, arrays, (len(keep_v), len(keep_b)), params, initial)
        out_v, out_b, grads, init_bars = arena.arrays[3:]
        at = arena.addresses
        status = self._fn(
            steps,
            batch,
            threads or (THREADS if batch * steps >= PARALLEL_FROM else 1),
            *at[:3],
            _pointers(at[3], out_v, keep_v, prog.values),
            _pointers(at[4], out_b, keep_b, prog.bars),
            *at[5:],
        )
        if status != 0:
            raise MemoryError(f"no memory for the work arrays of {batch} sequences of {steps}")
        outs = (out_v, out_b, grads, init_bars)
        return _results(prog, keep_v, keep_b, outs, single=arrays[0].ndim == 1)


def _results(prog: Program, keep_v: list, keep_b: list, outs: tuple, single: bool):
    """The output arrays by name: 1-D series and plain floats for one sequence, steps
    first (as the (T, B) input) for a batch."""
    out_v, out_b, grads, init_bars = outs
    if single:
        out_v, out_b, grads, init_bars = out_v[:, 0], out_b[:, 0], grads[:, 0], init_bars[:, 0]
        grads, init_bars = grads.tolist(), init_bars.tolist()
    else:
        out_v, out_b = out_v.transpose(0, 2, 1), out_b.transpose(0, 2, 1)
    return dict(zip(keep_v, out_v, strict=True)), Gradients(
        dict(zip(keep_b, out_b, strict=True)),
        dict(zip(prog.params, grads, strict=True)),
        dict(zip(prog.states, init_bars, strict=True)),
    )


def _arena(prog: Program, arrays: list, kept: tuple[int, int], params, initial) -> _Arena:
    """The arrays of one call, the inputs filled in: parameters, series, initial states,
    then the outputs (values, adjoints, gradients, initial states' adjoints)."""
    steps, batch = (len(arrays[0]), 1) if arrays[0].ndim == 1 else arrays[0].shape
    n_p, n_s = len(prog.params), len(prog.states)
    shapes = [(n_p,), (len(arrays), batch, steps), (n_s, batch)]
    shapes += [(kept[0], batch, steps + 1), (kept[1], batch, steps + 2)]
    arena = _Arena([*shapes, (n_p, batch), (n_s, batch)])
    par, series, init = arena.arrays[:3]
    par[:] = [float(params[p]) for p in prog.params]
    for j, a in enumerate(arrays):
        series[j] = a.T  # a sequence per row: its data contiguous (1-D broadcasts)
    for j, s in enumerate(prog.states):
        init[j] = _per_sequence(initial[s], batch, s)
    return arena


def _series(given: list, names: list[str]) -> list[np.ndarray]:
    """Inputs and loss weights as arrays of one shape: (T,) for one sequence, (T, B)."""
    arrays = [np.asarray(v, dtype=float) for v in given]
    shape = arrays[0].shape
    if any(a.shape != shape for a in arrays) or len(shape) not in (1, 2) or 0 in shape:
        got = ", ".join(f"{n} {a.shape}" for n, a in zip(names, arrays, strict=True))
        raise ValueError(
            f"expected every input and loss weight as T >= 1 numbers or a (T, B) array of one "
            f"shape; got {got}"
        )
    return arrays


def _per_sequence(value: object, batch: int, what: str) -> np.ndarray:
    a = np.asarray(value, dtype=float)
    if a.shape not in ((), (batch,)):
        raise ValueError(f"initial[{what!r}]: expected a number or {batch} numbers, got {a.shape}")
    return a


class _Arena:
    """Every array of one call carved from one buffer: an array's address costs about 1 us
    to look up, which is much of a short sequence's time."""

    def __init__(self, shapes: list[tuple[int, ...]]) -> None:
        sizes = [math.prod(s) for s in shapes]
        starts = [sum(sizes[:j]) for j in range(len(sizes))]
        buf = np.empty(sum(sizes))
        base = buf.ctypes.data
        self.arrays = [
            buf[a : a + n].reshape(s) for a, n, s in zip(starts, sizes, shapes, strict=True)
        ]
        self.addresses = [base + a * buf.itemsize for a in starts]


def _pointers(base: int, block: np.ndarray, kept: list[str], names: list[str]) -> ctypes.Array:
    """The address of each series of ``names`` in ``block`` (NULL if not kept: not stored)."""
    size = block[0].nbytes if len(block) else 0
    rows = [base + kept.index(n) * size if n in kept else None for n in names]
    return (_VOID * max(len(rows), 1))(*rows)


def native_for(cell: Cell) -> NativeGradient:
    """``cell``'s compiled gradient, generated and loaded once per cell."""
    return per_cell(cell, ("native",), lambda: NativeGradient(cell))


def native_gradient(
    cell: Cell,
    params: Mapping[str, float],
    inputs: Mapping[str, object],
    initial: Mapping[str, object],
    loss_grads: Mapping[str, object],
    values: Collection[str] | None = None,
    bars: Collection[str] | None = None,
    threads: int | None = None,
) -> tuple[dict[str, np.ndarray], Gradients]:
    """The forward pass and derived backward sweep of a scalar cell, compiled to C.

    Parameters
    ----------
    cell
        A scalar cell (``RecurrentProblem.cell``).
    params
        Every parameter's value (a number), shared by all sequences.
    inputs, loss_grads
        Each input's values and each loss variable's dL/dv at steps 1..T: a list of numbers
        (one sequence) or a (T, B) array (B sequences, one per column).
    initial
        Each state's value at step 0: a number, or B numbers.
    values, bars
        Names of the forward series and adjoint series to return (default: all).
    threads
        Threads sharing the batch (default: every core from ``PARALLEL_FROM`` sequence-steps).

    Returns
    -------
    (dict, Gradients)
        The forward values of each variable over steps 0..T (as ``forward``), and the
        adjoints over steps 0..T+1, parameter gradients and initial states' adjoints (as
        ``ScalarSweep.run``).  One sequence gives 1-D arrays and floats; a batch gives
        (T+1, B) and (T+2, B) arrays and a gradient per sequence, (B,).

    Raises ``NativeUnavailable`` if there is no C compiler (``NoCompiler``), the compile
    fails, or the library fails its checks (see ``build``) or the spot check.
    """
    return native_for(cell).run(params, inputs, initial, loss_grads, values, bars, threads)
