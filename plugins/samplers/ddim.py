"""DDIM (Song, Meng, Ermon 2021) on the 1000-level linear schedule; see :mod:`.ou_diffusion`."""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import Tensor

from bench_core import ScoreEstimate, StepCallback, hookimpl, nonnegative_float, tensor_size

from .noise_blocks import BlockNoise
from .ou_diffusion import OUDiffusion, check_betas
from .schedules import REFERENCE_LEVELS, evenly_spaced_levels, linear_beta_alpha_bars, ou_time


def ddim(score: ScoreEstimate, x0: Tensor, *, alpha_bars: Sequence[float], eta: float, generator: torch.Generator,
         callback: Optional[StepCallback] = None) -> Tensor:
    """DDIM (Song, Meng, Ermon, ICLR 2021, eq. 12 and 16), written with the score.

    ``alpha_bars`` is the decreasing subsequence visited (noisiest last); sampling runs from its last
    entry to its first, then one step to ``alpha_bar = 1``. One step from ``ab = ab_t`` to ``ab' = ab_prev``:
    ``x0_hat = (x + (1 - ab) s) / sqrt(ab)``, ``eps_hat = -sqrt(1 - ab) s``,
    ``x' = sqrt(ab') x0_hat + sqrt(1 - ab' - sigma^2) eps_hat + sigma z``,
    ``sigma = eta sqrt((1 - ab') / (1 - ab)) sqrt(1 - ab / ab')``. ``eta = 0`` is deterministic (no noise is
    drawn; the probability-flow-like sampler); noise is drawn only at steps with ``sigma > 0`` (never at the
    last step, where ``sigma = 0``). ``callback(step, -0.5 log ab', x)``.
    """
    ab = [float(v) for v in alpha_bars]
    x = x0.clone()
    noise = BlockNoise(x)
    for step, i in enumerate(range(len(ab) - 1, -1, -1), start=1):
        now, prev = ab[i], (ab[i - 1] if i > 0 else 1.0)
        sigma = eta * math.sqrt((1.0 - prev) / (1.0 - now) * (1.0 - now / prev))
        # x' = c_x x + c_s s + sigma z: x0_hat and eps_hat expanded, so one fused in-place update
        c_x = math.sqrt(prev / now)
        c_s = c_x * (1.0 - now) - math.sqrt(max(1.0 - prev - sigma**2, 0.0) * (1.0 - now))
        # eta = 0 (sigma = 0) draws nothing
        for xb, db, z in noise.steps(score, x, ou_time(now), generator=generator if sigma > 0.0 else None):
            xb.mul_(c_x).add_(db, alpha=c_s)
            if z is not None:
                xb.add_(z, alpha=sigma)
        if callback is not None:
            callback(step, ou_time(prev), x)
    return x


class DDIM(OUDiffusion):
    """DDIM (:func:`ddim`, Song, Meng, Ermon 2021) on the 1000-level linear schedule of Ho et al. (2020).

    The ``n_steps`` levels visited are :func:`~.schedules.evenly_spaced_levels` ``(n_steps, 1000)``:
    ``round(1000 - i * 999 / (n_steps - 1))``, from level 1000 (``T = t_1000`` = 5.06) down to level 1,
    then a final step to ``alpha_bar = 1``: ``n_steps`` score queries. ``eta = 0`` (default) is
    deterministic; ``eta = 1`` injects the posterior-variance noise (ancestral-like); ``0 <= eta <= 1``.

    Parameters
    ----------
    n_steps : int, default 100
        Levels visited (score queries), evenly spaced from 1000 down to 1.
    eta : float, default 0.0
        0: deterministic DDIM; 1: ancestral-like noise.
    beta_min, beta_max : float, default 1e-4, 0.02
        Ends of the 1000-level linear beta schedule.
    """

    def __init__(self, n_steps: int = 100, eta: float = 0.0, beta_min: float = 1e-4, beta_max: float = 0.02) -> None:
        self.n_steps = tensor_size("n_steps", n_steps, what="the time grid")
        self.eta = nonnegative_float("eta", eta)
        if self.eta > 1.0:  # sigma^2 <= 1 - alpha_bar_prev holds for eta <= 1 only
            raise ValueError(f"parameter 'eta' must be in [0, 1], got {eta!r}")
        self.beta_min, self.beta_max = check_betas(beta_min, beta_max)
        self.levels = evenly_spaced_levels(self.n_steps, REFERENCE_LEVELS)
        schedule = linear_beta_alpha_bars(REFERENCE_LEVELS, self.beta_min, self.beta_max)
        # increasing level order (noisiest last), as ddim() expects
        self.alpha_bars = schedule[torch.tensor(self.levels[::-1]) - 1]
        self.T = float(ou_time(self.alpha_bars[-1]))

    def score_times(self) -> list[tuple[float, float]]:
        t = [0.0] + [float(v) for v in ou_time(self.alpha_bars)]
        return [(t[k], t[k] - t[k - 1]) for k in range(len(t) - 1, 0, -1)]

    def sample(self, score: ScoreEstimate, x0: Tensor, *, generator: torch.Generator,
               callback: Optional[StepCallback] = None) -> Tensor:
        return ddim(score, x0, alpha_bars=self.alpha_bars, eta=self.eta, generator=generator, callback=callback)


@hookimpl
def register_samplers(register):
    register("ddim", DDIM, description="DDIM (Song, Meng, Ermon 2021) on the 1000-level linear schedule")
