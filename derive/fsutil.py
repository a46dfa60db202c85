"""Writing outputs so that a failure never leaves a half-written or lost file."""

from __future__ import annotations

import os
import secrets
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
