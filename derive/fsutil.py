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

from derive import procs
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
#: Prefix of staging folders: hidden, beside the folders they replace (same filesystem).  Its
#: writer holds a lock on it for as long as it runs, so a later run can tell a folder a
#: killed run left behind (and remove it) from one still being written.
STAGING_PREFIX = ".derive-staging-"
#: Suffix of an earlier folder set aside by the two-rename fallback of ``swap_in``: never
#: removed automatically (were the run killed between the renames, it is the only copy).
SET_ASIDE = "-old"
_RENAME_EXCHANGE = 2  # renameat2(2) flag: swap two paths atomically (Linux 3.15+)
_AT_FDCWD = -100
_published: list[Path] = []


def published() -> list[Path]:
    """The folders this process has swapped into place so far, in order."""
    return list(_published)


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (created if missing): publishers of outputs into one
    folder take turns, so one run's swap never drops another's files."""
    make_parent(folder / "x")
    try:
        fd = _lock_fd(folder, blocking=True)
    except OSError as exc:
        raise InputError(f"cannot lock output directory {folder}: {exc.strerror or exc}") from exc
    try:
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _lock_fd(folder: Path, blocking: bool) -> int:
    """An open descriptor holding an exclusive flock on ``folder``.  On filesystems that lock
    only files opened for writing (NFS), a lock file inside it stands in for the folder."""
    flags = fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, flags)
        return fd
    except OSError as exc:
        os.close(fd)
        if exc.errno in (os_errno.EWOULDBLOCK, os_errno.EAGAIN):
            raise
    fd = os.open(folder / ".derive-lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, flags)
    except BaseException:
        os.close(fd)
        raise
    return fd


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


def real_folder(dest: Path) -> Path:
    """Where outputs for the folder ``dest`` really go: through a symbolic link at ``dest``
    (the swap replaces the folder it names, not the link); refused if ``dest`` is a file."""
    if dest.is_symlink():
        dest = dest.resolve()
    if dest.exists() and not dest.is_dir():
        raise InputError(f"output folder {dest} is a file, not a directory")
    return dest


@contextlib.contextmanager
def staging(parent: Path) -> Iterator[Path]:
    """A fresh, empty folder in ``parent`` for outputs that are to appear together, locked
    while this runs; removed on the way out (after ``swap_in`` it holds the old folder)."""
    writable_folder(parent)
    make_parent(parent / "x")
    _remove_abandoned(parent)
    path = parent / f"{STAGING_PREFIX}{secrets.token_hex(8)}"
    try:
        path.mkdir()
        fd = _lock_fd(path, blocking=False)  # new: nobody else can hold it
    except OSError as exc:
        _remove(path)
        raise InputError(f"cannot write to directory {parent}: {exc.strerror or exc}") from exc
    try:
        yield path
    finally:
        _remove(path)
        os.close(fd)


def swap_in(staged: Path, dest: Path) -> None:
    """Replace the folder ``dest`` by ``staged`` in one step; ``staged`` then holds the old
    folder (removed with the staging folder).  Readers see the old folder or the new, never a
    mix; where the system cannot exchange two paths, the old folder is renamed aside first,
    and put back if the second rename fails."""
    make_parent(dest)
    with procs.critical():  # an interruption waits until both names are right
        if procs.received() is not None:  # a LaTeX thread finishing after the signal
            raise procs.Interrupted(procs.received())
        try:
            if not dest.exists():
                os.rename(staged, dest)
                staged.mkdir()  # the staging context removes this placeholder
            elif not _exchange(staged, dest):
                _swap_by_renames(staged, dest)
        except OSError as exc:
            raise InputError(f"cannot replace {dest}: {exc.strerror or exc}") from exc
        _published.append(dest)


def _swap_by_renames(staged: Path, dest: Path) -> None:
    aside = staged.with_name(staged.name + SET_ASIDE)
    os.rename(dest, aside)
    try:
        os.rename(staged, dest)
    except OSError:
        os.rename(aside, dest)
        raise
    os.rename(aside, staged)


def copy_into(src: Path, staged: Path, skip: set[str]) -> None:
    """Hard-link the entries of ``src`` (recursively; not those named in ``skip``) into
    ``staged``: files a build does not write survive its swap, at no copying cost.  A file
    that cannot be linked (another filesystem inside ``src``) is copied."""
    if not src.is_dir():
        return
    try:
        _copy_tree(src, staged, skip)
    except OSError as exc:
        where = exc.filename or src
        raise InputError(f"cannot keep {where} in the new outputs: {exc.strerror or exc}") from exc


def _copy_tree(src: Path, staged: Path, skip: set[str]) -> None:
    for entry in src.iterdir():
        if entry.name in skip or entry.name.startswith(STAGING_PREFIX):
            continue
        target = staged / entry.name
        if entry.is_symlink():
            os.symlink(os.readlink(entry), target)
        elif entry.is_dir():
            target.mkdir()
            _copy_tree(entry, target, set())
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
    """Remove staging folders whose writer no longer runs (killed with SIGKILL, say): those
    nobody holds a lock on."""
    for entry in parent.glob(STAGING_PREFIX + "*"):
        if entry.name.endswith(SET_ASIDE) or entry.is_symlink() or not entry.is_dir():
            continue
        try:
            fd = _lock_fd(entry, blocking=False)
        except OSError:  # locked: still being written (or gone meanwhile)
            continue
        try:
            _remove(entry)
        finally:
            os.close(fd)


def _remove(path: Path) -> None:
    """Remove ``path``, a folder tree or anything else, as far as possible."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()
