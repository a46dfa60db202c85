"""Errors a user can cause, each with the exit status the command line returns for it.

A `DeriveError` is a user's mistake or a missing tool: the CLI prints its message on one
line and exits with `exit_code`, no traceback.  Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_NO_TEX = 3
EXIT_LATEX_FAILED = 4
#: A bug in derive (not the user's doing): the traceback is printed.
EXIT_INTERNAL = 70
#: Standard output was closed before derive finished writing (128 + SIGPIPE, as a shell
#: reports a program ended by SIGPIPE).
EXIT_BROKEN_PIPE = 141


class DeriveError(Exception):
    """A failure caused by input or environment, reported without a traceback."""

    exit_code: int = EXIT_USAGE


class InputError(DeriveError):
    """Malformed user input: a file, a field, a name or an option value."""

    exit_code = EXIT_USAGE


class NoTexEngineError(DeriveError):
    """No LaTeX engine on the machine; `pdf` output cannot be built."""

    exit_code = EXIT_NO_TEX


class LatexError(DeriveError):
    """LaTeX ran and failed; the message carries the relevant lines of its log."""

    exit_code = EXIT_LATEX_FAILED


class ChecksFailedError(DeriveError):
    """A verification failed: the result it checks must not be trusted."""

    exit_code = EXIT_CHECK_FAILED


class WorkerLost(DeriveError):  # noqa: N818 - reads as what happened
    """A worker process ended before it answered (killed from outside, out of memory)."""

    exit_code = EXIT_INTERNAL
