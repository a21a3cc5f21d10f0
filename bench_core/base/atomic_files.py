"""Files a reader sees whole or not at all: written to a temporary file and renamed into place.

A kill during the export of a run (or of a report) must never leave a truncated ``results.csv``
that a later ``bench show`` reads as empty: every exported file is written next to its final path
under a temporary name, flushed to disk, and moved over the old one with ``os.replace`` (atomic on
POSIX within one file system). A reader sees the old file or the new one. A full disk leaves the
old file too, and is reported as one line naming the file (:class:`~bench_core.base.errors.DiskFullError`).
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Callable

import numpy as np

from bench_core.base.errors import writing


def write_atomic(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` to fill a temporary file beside ``path``, then rename it to ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with writing(path):
            write(tmp)
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_text_atomic(path: Path, text: str) -> Path:
    """``path.write_text(text)`` (UTF-8), atomically."""
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """``np.savez(path, **arrays)``, atomically (built in memory: ``savez`` would rename a temporary
    file that does not end in ``.npz``)."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return write_atomic(path, lambda tmp: tmp.write_bytes(buffer.getvalue()))
