"""Checkpoints in time: ``[suite] checkpoints_t``, recorded at the nearest step of each sampler.

Samplers with different step sizes or grids line up in time, not in steps. The sampler reports the
time after every step through its callback (Langevin time increases from 0; a diffusion sampler's
OU time decreases from its horizon T). A checkpoint time ``tc`` is recorded once, at whichever of
the two steps around it is nearer in time. To measure the earlier one after the fact, the particles
are copied at a step only when a pending ``tc`` lies within four step lengths ahead, so a run with
a few checkpoints makes a few copies, not one per step. Should a grid's step grow more than
fourfold at once, the later step is used (never more than one step late). A ``tc`` beyond the
sampler's range is not recorded.
"""
from __future__ import annotations

from typing import Iterable

from torch import Tensor

LOOKAHEAD_STEPS = 4.0  # copy the particles when a pending checkpoint is this many step lengths ahead


class TimeCheckpoints:
    """Decides, step by step, which ``(step, t, x)`` to measure for the checkpoint times ``times``."""

    def __init__(self, times: Iterable[float], start: float, x0: Tensor) -> None:
        self.pending = sorted(set(float(t) for t in times))
        self.step, self.t, self.saved = 0, float(start), x0  # x0 is never modified: no copy needed

    def at_start(self) -> bool:
        """Whether a checkpoint time is the start time itself (recorded at step 0)."""
        due = [tc for tc in self.pending if tc == self.t]
        self.pending = [tc for tc in self.pending if tc not in due]
        return bool(due)

    def advance(self, step: int, t: float, x: Tensor) -> list[tuple[int, float, Tensor]]:
        """Call after each step with its time and particles; returns the measurements now due."""
        t = float(t)
        low, high = min(self.t, t), max(self.t, t)
        due: dict[int, tuple[int, float, Tensor]] = {}
        for tc in [tc for tc in self.pending if low <= tc <= high]:
            self.pending.remove(tc)
            if abs(tc - self.t) < abs(tc - t) and self.saved is not None:
                due[self.step] = (self.step, self.t, self.saved)
            else:
                due[step] = (step, t, x)
        length = abs(t - self.t)
        direction = 1.0 if t >= self.t else -1.0
        soon = any(0 <= (tc - t) * direction <= LOOKAHEAD_STEPS * length for tc in self.pending)
        self.step, self.t, self.saved = step, t, (x.clone() if soon else None)
        return [due[k] for k in sorted(due)]
