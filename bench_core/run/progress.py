"""Progress display: a live bar on a terminal, plain lines otherwise (logs, CI)."""
from __future__ import annotations

import sys
import time
from typing import Optional, TextIO


class Progress:
    """Cells done out of the total and, for in-process cells, steps within the current cell."""

    def __init__(self, total: int, *, stream: Optional[TextIO] = None, live: Optional[bool] = None) -> None:
        self.total, self.done = total, 0
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.started = time.perf_counter()
        self._last_draw = 0.0
        self.current = ""
        self.step, self.n_steps = 0, None

    def start_cell(self, label: str, n_steps: Optional[int]) -> None:
        self.current, self.step, self.n_steps = label, 0, n_steps
        self._draw(force=True)

    def on_step(self, step: int) -> None:
        self.step = step
        self._draw()

    def finish_cell(self, label: str, status: str, wall_s: float, reason: str = "") -> None:
        self.done += 1
        if self.live:
            self._clear()
        if not self.live or status != "done":
            detail = f": {reason}" if reason and status != "done" else ""
            self.stream.write(f"[{self.done}/{self.total}] {status} {wall_s:.1f}s {label}{detail}\n")
        self._draw(force=True)

    def close(self) -> None:
        if self.live:
            self._clear()
        self.stream.flush()

    def _clear(self) -> None:
        self.stream.write("\r\033[K")

    def _draw(self, force: bool = False) -> None:
        if not self.live:
            return
        now = time.perf_counter()
        if not force and now - self._last_draw < 0.1:  # redraw at most 10 times a second
            return
        self._last_draw = now
        width = 24
        filled = int(width * self.done / max(self.total, 1))
        bar = "#" * filled + "." * (width - filled)
        steps = ""
        if self.current and self.step:
            steps = f" step {self.step}" + (f"/{self.n_steps}" if self.n_steps else "")
        elapsed = now - self.started
        line = f"[{bar}] {self.done}/{self.total} cells {elapsed:.0f}s{steps} {self.current}"
        self.stream.write("\r\033[K" + line[:160])
        self.stream.flush()
