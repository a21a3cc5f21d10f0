"""Annealed Langevin dynamics (Song & Ermon 2019) on geometric OU noise levels; see :mod:`.ou_diffusion`."""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import Tensor

from bench_core import ScoreEstimate, StepCallback, hookimpl, positive_float, positive_int, tensor_size

from .noise_blocks import BlockNoise
from .ou_diffusion import OUDiffusion
from .schedules import time_grid, time_span


def annealed_langevin(score: ScoreEstimate, x0: Tensor, *, times: Sequence[float], step_sizes: Sequence[float],
                      steps_per_level: int, generator: torch.Generator,
                      callback: Optional[StepCallback] = None) -> Tensor:
    """Annealed Langevin dynamics (Song & Ermon, NeurIPS 2019, Algorithm 1), in OU time.

    For each level ``t_i`` (decreasing) run ``steps_per_level`` ULA steps on ``p_{t_i}``:
    ``x <- x + a_i s(x, t_i) + sqrt(2 a_i) z`` (``a_i`` is Algorithm 1's ``alpha_i / 2``).
    ``callback(j, t_i, x)`` after every Langevin step ``j = 1 .. L * steps_per_level``.
    """
    x = x0.clone()
    noise = BlockNoise(x)
    step = 0
    for t, a in zip((float(v) for v in times), (float(v) for v in step_sizes)):
        scale = math.sqrt(2.0 * a)
        for _ in range(steps_per_level):
            for xb, db, z in noise.steps(score, x, t, generator=generator):
                xb.add_(db, alpha=a).add_(z, alpha=scale)
            step += 1
            if callback is not None:
                callback(step, t, x)
    return x


def annealed_step_sizes(times: Sequence[float], step_size: float) -> list[float]:
    """Song & Ermon's ``a_i = h sigma_i^2 / sigma_L^2`` (``h = step_size``, their ``epsilon``) with the OU
    noise variance ``sigma_i^2 = 1 - e^{-2 t_i}``.

    Why this is stable for every target: ``p_t`` is ``p_0`` scaled by ``e^{-t}`` convolved with
    ``N(0, sigma_t^2 I)``, so ``-hess log p_t <= I / sigma_t^2``. Hence ``a_i L_i <= h / sigma_L^2`` at
    every level, whatever the target: ULA's stability condition ``a L < 2`` holds at all levels once it
    holds for ``h / sigma_L^2``.
    """
    variances = [-math.expm1(-2.0 * float(t)) for t in times]
    return [step_size * v / variances[-1] for v in variances]


class AnnealedLangevin(OUDiffusion):
    """Annealed Langevin dynamics (:func:`annealed_langevin`, Song & Ermon 2019) on OU noise levels.

    Levels: the geometric grid :func:`~.schedules.time_grid` ``(T, t_min, n_levels - 1, "geometric")``
    (Song & Ermon's geometric noise sequence: for small t, ``sigma_t^2 ~ 2t``). Steps ``a_i`` from
    :func:`annealed_step_sizes`: ``step_size`` (h) is the ULA step at the last level, and
    ``a_i L_i <= h / sigma_L^2`` at every level for every target. The output is the state after the
    last level (it approximates ``p_{t_min}``; no final denoising step). ``score_times()`` lists each level once,
    ``(t_i, t_i - t_{i+1})`` with ``t_{L+1} = 0`` (so the h_i sum to T: the last level stands for
    ``[0, t_L]``), though the score is queried ``steps_per_level`` times there; the callback counts every
    Langevin step (``n_levels * steps_per_level``, the attribute ``n_steps``), with ``t`` the level of
    the state.

    Default ``step_size = 2e-3``: with ``t_min = 1e-3``, ``h / sigma_L^2 = 1.001``, so every step has
    ``a_i L_i <~ 1``, the largest ULA step that does not overshoot on a quadratic (stability needs
    ``< 2``, enforced). Smaller steps are *less* accurate here: the Langevin time per level,
    ``M a_i ~ 2 M h t_i / sigma_L^2`` for small ``t_i``, then falls behind the drift of ``p_t``'s mean.
    Exact law with the exact score on ``N(3 * 1, I_50)``, defaults otherwise: KL 0.0063 (h = 2e-3),
    0.020 (1e-3), 0.074 (5e-4), 0.43 (2e-4); the remaining error is that annealing lag (the mean trails
    by 0.016 per coordinate); the step-size error is ~8x smaller in W2 (tests/test_diffusion_samplers.py).

    Parameters
    ----------
    T : float, default 5.0
        Noisiest level, in OU time.
    t_min : float, default 1e-3
        Least noisy level (the output approximates p_{t_min}).
    n_levels : int, default 100
        Geometric noise levels from T down to t_min.
    steps_per_level : int, default 10
        ULA steps at each level.
    step_size : float, default 2e-3
        ULA step h at the last level; a_i = h sigma_i^2 / sigma_L^2 (Song & Ermon's epsilon).

    Attributes
    ----------
    n_steps : int
        Langevin steps in all, ``n_levels * steps_per_level`` (each one score query); set by those two
        params, not a param itself.
    """

    #: old param names, answered by `bench check` with the new one
    renamed = {"eps": "step_size"}

    def __init__(self, T: float = 5.0, t_min: float = 1e-3, n_levels: int = 100, steps_per_level: int = 10,
                 step_size: float = 2e-3) -> None:
        self.T, self.t_min = time_span(T, t_min)
        self.n_levels = tensor_size("n_levels", n_levels, what="the noise levels")
        if self.n_levels < 2:
            raise ValueError(f"parameter 'n_levels' must be >= 2 (levels from T down to t_min), got {n_levels!r}")
        self.steps_per_level = positive_int("steps_per_level", steps_per_level)
        self.n_steps = self.n_levels * self.steps_per_level
        self.step_size = positive_float("step_size", step_size)
        self.times = time_grid(self.T, self.t_min, self.n_levels - 1, "geometric")
        self.step_sizes = annealed_step_sizes(self.times.tolist(), self.step_size)
        bound = self.step_size / -math.expm1(-2.0 * self.t_min)  # sup over levels and targets of a_i L_i
        if bound >= 2.0:
            raise ValueError(f"parameter 'step_size' = {step_size!r} allows a_i L_i up to step_size / sigma_L^2 = "
                             f"{bound:.4g} (sigma_L^2 = 1 - e^{{-2 t_min}}); it must be < 2, beyond which ULA can "
                             "diverge")

    def score_times(self) -> list[tuple[float, float]]:
        t = [float(v) for v in self.times] + [0.0]
        return [(t[i], t[i] - t[i + 1]) for i in range(len(t) - 1)]

    def sample(self, score: ScoreEstimate, x0: Tensor, *, generator: torch.Generator,
               callback: Optional[StepCallback] = None) -> Tensor:
        return annealed_langevin(score, x0, times=self.times.tolist(), step_sizes=self.step_sizes,
                                 steps_per_level=self.steps_per_level, generator=generator, callback=callback)


@hookimpl
def register_samplers(register):
    register("annealed_langevin", AnnealedLangevin,
             description="annealed Langevin dynamics (Song & Ermon 2019) on geometric OU noise levels")
