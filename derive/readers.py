"""Reading files a user names (set files, rosters, ``derive grad`` input): bounded, regular
files only, UTF-8.

A path may name anything: a FIFO (reading it would wait for a writer forever), a device
(``/dev/zero`` never ends), a directory, or a file far too large to be what was meant.
``read_text`` refuses all of these in one line before reading more than its bound.
"""

from __future__ import annotations

import functools
import os
import stat
from pathlib import Path

from derive.errors import InputError

#: The largest set file or roster read: far beyond any real one (a set file of every
#: problem with every parameter is a few kilobytes; 1000 ids are 65 KB).
MAX_TEXT_BYTES = 1 << 20
_BOM = "\ufeff"


def read_text(
    path: str | Path, what: str, limit: int = MAX_TEXT_BYTES, instead: str = ""
) -> str:
    """The UTF-8 text of the regular file ``path`` (a leading BOM dropped), at most ``limit``
    bytes; else an ``InputError`` "cannot read <what> <path>: <why>" (``instead``: what to
    give instead of a pipe or a device, added to that message).

    The file is opened non-blocking and checked with ``fstat`` after opening, so neither a
    FIFO nor a device can make this wait, and a file swapped after the first check is seen.
    """
    # "cannot read <what> <path>", with no doubled space when ``what`` is empty (a path's
    # own spaces are kept: the message must name the file as it is).
    fail = " ".join(s for s in ("cannot read", what, str(path)) if s)
    regular = functools.partial(_require_regular, fail=fail, instead=instead)
    try:
        # stat first: opening some devices has effects of its own (a terminal, a tape).
        regular(os.stat(path))
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise InputError(f"{fail}: {exc.strerror or exc}") from None
    except ValueError:  # a NUL byte in the path
        raise InputError(f"{fail}: not a valid file name") from None
    try:
        regular(os.fstat(fd))
        data = read_at_most(fd, limit + 1)
    except OSError as exc:
        raise InputError(f"{fail}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise InputError(f"{fail}: larger than {_size(limit)}, the most it may be")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{fail}: not UTF-8 text (byte {exc.start})") from None
    return text[1:] if text.startswith(_BOM) else text


def _require_regular(info: os.stat_result, fail: str, instead: str) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"{fail}: Is a directory")
    if not stat.S_ISREG(info.st_mode):
        hint = f"; {instead}" if instead else ""
        raise InputError(f"{fail}: not a regular file (a pipe, socket or device){hint}")


def read_at_most(fd: int, count: int) -> bytes:
    """Up to ``count`` bytes from the open file ``fd`` (fewer at its end)."""
    chunks, got = [], 0
    while got < count:
        chunk = os.read(fd, min(count - got, 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _size(limit: int) -> str:
    if limit % (1 << 20) == 0:
        return f"{limit >> 20} MiB"
    if limit % (1 << 10) == 0:
        return f"{limit >> 10} KiB"
    return f"{limit} bytes"
