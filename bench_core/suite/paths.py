"""Paths in component params are relative to the suite file that names them.

While a plan is built or a cell runs, :func:`suite_directory` holds the folder of the suite
file; a factory turns a path param into an absolute path with :func:`resolve_suite_path`.
"""
from __future__ import annotations

import contextlib
import contextvars
from pathlib import Path
from typing import Iterator, Optional, Union

_SUITE_DIR: contextvars.ContextVar[Optional[Path]] = contextvars.ContextVar("bench_suite_dir", default=None)


@contextlib.contextmanager
def suite_directory(suite_path: Union[str, Path]) -> Iterator[None]:
    """Make relative params resolve against the folder of ``suite_path`` inside the block."""
    token = _SUITE_DIR.set(Path(suite_path).resolve().parent)
    try:
        yield
    finally:
        _SUITE_DIR.reset(token)


def resolve_suite_path(path: Union[str, Path]) -> Path:
    """``path`` itself when absolute; else relative to the current suite's folder (the working
    directory when no suite is being read)."""
    path = Path(path).expanduser()
    if path.is_absolute():
        return path
    base = _SUITE_DIR.get()
    return (base / path) if base is not None else path.resolve()
