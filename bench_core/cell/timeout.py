"""``[suite] cell_timeout``: a cell that runs longer is ended and recorded ``failed``.

Enforced in the process that runs the cell, whatever the executor (the driver for ``local``, a
worker for ``process`` and ``ray``): an interval timer (``setitimer``) raises :class:`CellTimeout`
in the cell's thread when the time is up. A sampler stuck in Python code, in ``time.sleep`` or
between torch calls is interrupted at once; one stuck inside a single native call is interrupted
when that call returns. Where no timer can be set (the cell does not run on a process's main
thread), the runner checks the deadline at every step instead. :class:`CellTimeout` derives from
``BaseException`` so that a plugin's ``except Exception`` cannot swallow it.
"""
from __future__ import annotations

import contextlib
import signal
import threading
import time
from typing import Callable, Iterator, Optional


class CellTimeout(BaseException):
    """The cell ran past ``cell_timeout``."""


class Deadline:
    """When the cell must end; :meth:`check` raises once it has passed (the per-step fallback)."""

    def __init__(self, seconds: Optional[float], step: Callable[[], int]) -> None:
        self.seconds, self.step = seconds, step
        self.end = time.monotonic() + seconds if seconds else None

    def message(self) -> str:
        return f"exceeded cell_timeout = {self.seconds:g} s at step {self.step()}"

    def check(self) -> None:
        if self.end is not None and time.monotonic() > self.end:
            raise CellTimeout(self.message())


@contextlib.contextmanager
def cell_deadline(seconds: Optional[float], step: Callable[[], int]) -> Iterator[Deadline]:
    """Arm the timer for ``seconds`` (None: no limit) for the ``with`` block; always disarmed after."""
    deadline = Deadline(seconds, step)
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield deadline
        return

    def expire(signum: int, frame: object) -> None:
        raise CellTimeout(deadline.message())

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield deadline
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
