"""The error hierarchy of bench.

Every error a user can cause derives from :class:`BenchError`; the CLI prints its
message as one line and exits with status 2. Messages name the file / plugin /
component at fault and say how to fix it.
"""
from __future__ import annotations

import contextlib
import difflib
import errno
from pathlib import Path
from typing import Iterable, Iterator


class BenchError(Exception):
    """Base class: an error caused by input (suite, plugin, arguments), exit status 2."""


class SuiteError(BenchError):
    """A suite file is invalid: unknown key, wrong type, unknown component, bad params."""


class PluginError(BenchError):
    """A plugin is broken: duplicate name, misspelled hook, factory returning the wrong thing."""


class ComponentError(BenchError):
    """A component was asked for something it cannot do (unknown name, wrong kind)."""


class ResultsError(BenchError):
    """A results folder is missing or unreadable."""


class DiskFullError(BenchError):
    """A write failed because its disk (or the user's quota on it) is full.

    Every write of a run is either atomic (exports, kept samples, cached networks) or one SQLite
    transaction per cell, so a full disk loses nothing that was finished: the message says to free
    space and run the same command again.
    """


#: errno values of "the disk is full": no space left, and a disk quota exceeded
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def disk_full(path: Path | str, detail: str = "no space left on device") -> DiskFullError:
    """The one-line error for a write to ``path`` that found its disk full."""
    return DiskFullError(f"the disk is full: cannot write {path} ({detail}); free space on that disk and run the "
                         "same command again: finished cells are kept")


@contextlib.contextmanager
def writing(path: Path | str) -> Iterator[None]:
    """Turn an ``OSError`` of a full disk raised inside the block into :func:`disk_full` for ``path``
    (a failed ``write()`` names no file, so the caller says which one it was writing)."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in DISK_FULL_ERRNOS:
            raise
        raise disk_full(path, exc.strerror or "no space left on device") from None


class SkipCell(Exception):
    """Raised by a component when a cell does not apply (recorded as status ``skipped``).

    Example: a sampler that needs a closed-form CLD marginal on a target lacking it.
    """


class SkipMetric(Exception):
    """Raised by a metric that does not apply to a cell (e.g. ``gaussian_kl`` on a mixture)."""


class Diverged(Exception):
    """Raised when a sampler's particles become non-finite (recorded as status ``diverged``)."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or ``""`` if none is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
