"""Writing outputs so that a failure or an interruption never leaves a half-written, mixed
or lost file.

``atomic_write`` replaces one file.  A set's outputs (a key's PDF and its source, a
variants run's folders and index) appear together: they are written into a ``staging``
folder and moved into place by ``swap_in``, under ``locked``, so a reader sees one run's
outputs or another's, never a mix.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno as os_errno
import fcntl
import os
import secrets
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

from derive.errors import InputError


def make_parent(dest: Path) -> None:
    """Create ``dest``'s directory, or fail with a message naming it."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create directory {dest.parent}: {exc.strerror or exc}") from exc


def atomic_write(dest: Path, data: bytes) -> None:
    """Write ``data`` to ``dest`` atomically: a temporary file beside it, then a rename.

    On any failure ``dest`` is left as it was and no temporary file remains.
    """
    make_parent(dest)
    # Same directory as dest, so os.replace is an atomic rename on one filesystem.
    tmp = dest.parent / f".{dest.name}.{secrets.token_hex(8)}.tmp"
    try:
        # os.open with 0o666 lets the umask set the mode; mkstemp would force 0o600.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise InputError(f"cannot write to directory {dest.parent}: {exc.strerror or exc}") from exc
    try:
        with open(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)  # never leave debris next to dest, even on Ctrl-C
        if isinstance(exc, OSError):
            raise InputError(f"cannot write {dest}: {exc.strerror or exc}") from exc
        raise


# -- all-or-nothing folders ------------------------------------------------------------------
#: Prefix of staging folders: hidden, beside the folders they replace (same filesystem), and
#: carrying the pid of the process writing them, so a later run can remove what a killed one left.
STAGING_PREFIX = ".derive-staging-"
_RENAME_EXCHANGE = 2  # renameat2(2) flag: swap two paths atomically (Linux 3.15+)
_AT_FDCWD = -100


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (created if missing): publishers of outputs into one
    folder take turns, so one run's swap never drops another's files."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise InputError(f"cannot use output directory {folder}: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def writable_folder(folder: Path) -> None:
    """Fail now, before any work, if outputs cannot be written under ``folder`` (which is
    not created: a run that fails leaves no trace)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        what = "output directory" if existing == folder else f"cannot create {folder}:"
        raise InputError(f"{what} {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"cannot write to output directory {existing}: permission denied")


@contextlib.contextmanager
def staging(parent: Path) -> Iterator[Path]:
    """A fresh, empty folder in ``parent`` for outputs that are to appear together; it is
    removed on the way out unless ``swap_in`` has moved it into place."""
    writable_folder(parent)
    make_parent(parent / "x")
    _remove_abandoned(parent)
    path = parent / f"{STAGING_PREFIX}{os.getpid()}-{secrets.token_hex(6)}"
    try:
        path.mkdir()
    except OSError as exc:
        raise InputError(f"cannot write to directory {parent}: {exc.strerror or exc}") from exc
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def swap_in(staged: Path, dest: Path) -> None:
    """Replace the folder ``dest`` by ``staged`` in one step; ``staged`` then holds the old
    folder (removed with the staging folder).  Readers see the old folder or the new, never a
    mix; where the system cannot exchange two paths, there is an instant with neither."""
    make_parent(dest / "x")
    try:
        if not dest.exists():
            os.rename(staged, dest)
            staged.mkdir()  # the staging context removes this placeholder
        elif not _exchange(staged, dest):
            old = staged.with_name(staged.name + "-old")
            os.rename(dest, old)
            os.rename(staged, dest)
            os.rename(old, staged)
    except OSError as exc:
        raise InputError(f"cannot replace {dest}: {exc.strerror or exc}") from exc


def copy_into(src: Path, staged: Path, skip: set[str]) -> None:
    """Hard-link the entries of ``src`` (recursively; not those named in ``skip``) into
    ``staged``: files a build does not write survive its swap, at no copying cost.  A file
    that cannot be linked (another filesystem inside ``src``) is copied."""
    if not src.is_dir():
        return
    for entry in src.iterdir():
        if entry.name in skip or entry.name.startswith(STAGING_PREFIX):
            continue
        target = staged / entry.name
        if entry.is_symlink():
            os.symlink(os.readlink(entry), target)
        elif entry.is_dir():
            target.mkdir()
            copy_into(entry, target, set())
        else:
            try:
                os.link(entry, target)
            except OSError:
                shutil.copy2(entry, target)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with renameat2; False where the system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):  # a libc without renameat2 (glibc < 2.28, musl)
        return False
    status = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if status == 0:
        return True
    errno = ctypes.get_errno()
    if errno in (os_errno.EINVAL, os_errno.ENOSYS, os_errno.EOPNOTSUPP):
        return False  # a filesystem without exchange: fall back to two renames
    raise OSError(errno, os.strerror(errno), str(b))


def _remove_abandoned(parent: Path) -> None:
    """Remove staging folders whose writer no longer runs (killed with SIGKILL, say)."""
    for entry in parent.glob(STAGING_PREFIX + "*"):
        pid = entry.name[len(STAGING_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
