"""One ``bench run`` per output folder at a time.

Two runs writing one folder would compute every cell twice and race on the exports. The first run
holds an exclusive ``fcntl`` lock on ``<out>/.bench-run.lock`` (with its PID and command line in the
file) until it exits; a second run refuses at once, naming the folder and the holder. The kernel
drops the lock when the holder dies, even by SIGKILL, so a stale lock never blocks a resume.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from pathlib import Path
from typing import Iterator

from bench_core.base.errors import BenchError, writing

LOCK_NAME = ".bench-run.lock"


@contextlib.contextmanager
def run_lock(out_dir: Path) -> Iterator[None]:
    """Hold the folder's run lock for the duration of the ``with`` block."""
    path = Path(out_dir) / LOCK_NAME
    handle = open(path, "a+")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise BenchError(f"{out_dir} is being written by another bench run ({holder}); wait for it to "
                             "finish, or pass another --out") from None
        with writing(path):
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}: {' '.join(sys.argv)[:200]}")
            handle.flush()
        yield
    finally:
        handle.close()  # releases the lock
