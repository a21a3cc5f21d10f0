"""Langevin-family samplers."""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from bench_core import ScoreEstimate, StepCallback, hookimpl, positive_float, positive_int

from .noise_blocks import BlockNoise


def ula(score: ScoreEstimate, x0: Tensor, *, step_size: float, n_steps: int,
        generator: torch.Generator, callback: Optional[StepCallback] = None) -> Tensor:
    """Unadjusted Langevin algorithm (Roberts & Tweedie 1996; Durmus & Moulines 2017).

    ``x_{k+1} = x_k + h s(x_k, 0) + sqrt(2 h) xi_k`` with ``xi_k ~ N(0, I)``; the score is
    queried at ``t = 0``. ``callback(k, k * h, x)`` sees the state after step k.
    """
    x = x0.clone()
    noise = BlockNoise(x)
    scale = math.sqrt(2.0 * step_size)
    for k in range(1, n_steps + 1):
        for xb, db, z in noise.steps(score, x, 0.0, generator=generator):
            xb.add_(db, alpha=step_size).add_(z, alpha=scale)
        if callback is not None:
            callback(k, k * step_size, x)
    return x


class ULA:
    """The unadjusted Langevin algorithm with a fixed step size (see :func:`ula`).

    Parameters
    ----------
    step_size : float, default 0.0025
        The step h (the paper's Table 1 and Section 4 value).
    n_steps : int, default 1000
        Number of steps, each one score query at t = 0.
    """

    family = "langevin"

    def __init__(self, step_size: float = 0.0025, n_steps: int = 1000) -> None:
        self.step_size = positive_float("step_size", step_size)
        self.n_steps = positive_int("n_steps", n_steps)

    def sample(self, score: ScoreEstimate, x0: Tensor, *, generator: torch.Generator,
               callback: Optional[StepCallback] = None) -> Tensor:
        return ula(score, x0, step_size=self.step_size, n_steps=self.n_steps,
                   generator=generator, callback=callback)


@hookimpl
def register_samplers(register):
    register("ula", ULA, description="unadjusted Langevin algorithm (score at t = 0)")
