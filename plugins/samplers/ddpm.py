"""DDPM reverse process: ancestral sampling (Ho et al. 2020) or the exponential integrator of the
reverse OU SDE (Chen et al. 2023); see :mod:`.ou_diffusion` for the shared interface."""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from bench_core import ScoreEstimate, StepCallback, choice, hookimpl, refuse_unused, tensor_size

from .noise_blocks import BlockNoise
from .ou_diffusion import OUDiffusion, check_betas
from .schedules import GRID_KINDS, linear_beta_alpha_bars, ou_time, time_grid, time_span

DISCRETIZATIONS = ("ancestral", "exponential")
#: the params each discretization reads (besides ``discretization``)
USES = {"ancestral": ("n_steps", "beta_min", "beta_max"), "exponential": ("n_steps", "T", "t_min", "grid")}
#: the defaults of the params only one discretization reads (None in the signature: not written)
DEFAULTS = {"beta_min": 1e-4, "beta_max": 0.02, "T": 10.0, "t_min": 1e-3, "grid": "geometric"}

def ddpm_ancestral(score: ScoreEstimate, x0: Tensor, *, alpha_bars: Tensor, generator: torch.Generator,
                   callback: Optional[StepCallback] = None) -> Tensor:
    """Ancestral sampling of Ho, Jain, Abbeel (2020, Algorithm 2), written with the score.

    With ``eps = -sqrt(1 - alpha_bar_k) s``, Algorithm 2's step is
    ``x_{k-1} = (x_k + beta_k s(x_k, t_k)) / sqrt(alpha_k) + sqrt(beta_k) z`` for ``k = K .. 1``
    (``sigma_k^2 = beta_k``), with no noise at ``k = 1``. ``alpha_bars`` [K] is decreasing,
    ``alpha_k = alpha_bar_k / alpha_bar_{k-1}`` (``alpha_bar_0 = 1``), ``t_k = -0.5 log alpha_bar_k``.
    ``callback(K - k + 1, t_{k-1}, x)`` sees the state after each step (``t_0 = 0``).
    """
    ab = [float(v) for v in alpha_bars]
    x = x0.clone()
    noise = BlockNoise(x)
    for step, k in enumerate(range(len(ab) - 1, -1, -1), start=1):
        previous = ab[k - 1] if k > 0 else 1.0
        alpha = ab[k] / previous
        beta = 1.0 - alpha
        # Algorithm 2 returns the mean of the last step (z = 0 at t = 1)
        for xb, db, z in noise.steps(score, x, ou_time(ab[k]), generator=generator if k > 0 else None):
            xb.add_(db, alpha=beta).div_(math.sqrt(alpha))
            if z is not None:
                xb.add_(z, alpha=math.sqrt(beta))
        if callback is not None:
            callback(step, ou_time(previous), x)
    return x


def ou_exponential_integrator(score: ScoreEstimate, x0: Tensor, *, times: Tensor, generator: torch.Generator,
                              callback: Optional[StepCallback] = None) -> Tensor:
    """Exponential integrator of the reverse OU SDE (Chen, Chewi, Li, Li, Salim, Zhang, ICLR 2023).

    The reverse SDE ``dy = (y + 2 s(y, t)) dtau + sqrt(2) dB`` (``t = T - tau``) with the score frozen at
    the grid point ``t_k`` is linear in ``y`` and integrates exactly over ``h = t_k - t_{k+1}``:
    ``y <- e^h y + 2 (e^h - 1) s(y, t_k) + sqrt(e^{2h} - 1) z``. ``times`` is the decreasing grid
    ``t_0 = T > ... > t_N``; the output is the state at ``t_N``; ``callback(k + 1, t_{k+1}, y)``.
    """
    grid = [float(v) for v in times]
    x = x0.clone()
    noise = BlockNoise(x)
    for k in range(len(grid) - 1):
        h = grid[k] - grid[k + 1]
        for xb, db, z in noise.steps(score, x, grid[k], generator=generator):
            xb.mul_(math.exp(h)).add_(db, alpha=2.0 * math.expm1(h)).add_(z, alpha=math.sqrt(math.expm1(2.0 * h)))
        if callback is not None:
            callback(k + 1, grid[k + 1], x)
    return x


class DDPM(OUDiffusion):
    """DDPM reverse process: ``discretization = "ancestral"`` (:func:`ddpm_ancestral`, Ho et al. 2020) or
    ``"exponential"`` (:func:`ou_exponential_integrator`, Chen et al. ICLR 2023).

    Each discretization reads its own params, and a param it does not read is refused (ValueError
    naming it): ancestral uses ``n_steps`` (levels of the linear schedule, rescaled as
    :func:`linear_betas` says), ``beta_min`` and ``beta_max``, and its horizon is ``T = t_K`` (5.06 at
    1000 levels); exponential uses ``n_steps``, ``T``, ``t_min`` (early stopping: the output is the
    state at ``t_min``, an approximation of ``p_{t_min}``) and ``grid`` ("geometric", steps
    proportional to t, or "uniform"). The attribute ``T`` is the horizon either way.

    Parameters
    ----------
    discretization : {"ancestral", "exponential"}, default "ancestral"
        Ho et al.'s Algorithm 2, or the exponential integrator of Chen et al.
    n_steps : int, default 1000
        Levels (ancestral) or grid steps (exponential): the number of score queries.
    beta_min, beta_max : float, default 1e-4, 0.02
        Ends of the linear beta schedule (ancestral only; default 1e-4 and 0.02).
    T : float, default 10.0
        Horizon in OU time (exponential only; default 10.0).
    t_min : float, default 1e-3
        Early-stopping time of the returned samples (exponential only; default 1e-3).
    grid : {"geometric", "uniform"}, default "geometric"
        Time grid of the exponential integrator (exponential only; default "geometric").
    """

    def __init__(self, discretization: str = "ancestral", n_steps: int = 1000, beta_min: Optional[float] = None,
                 beta_max: Optional[float] = None, T: Optional[float] = None, t_min: Optional[float] = None,
                 grid: Optional[str] = None) -> None:
        self.discretization = choice("discretization", discretization, DISCRETIZATIONS)
        given = {"beta_min": beta_min, "beta_max": beta_max, "T": T, "t_min": t_min, "grid": grid}
        refuse_unused("discretization", self.discretization, given, USES[self.discretization])
        value = {name: DEFAULTS[name] if v is None else v for name, v in given.items()}
        self.n_steps = tensor_size("n_steps", n_steps, what="the time grid")
        if self.discretization == "ancestral":
            self.beta_min, self.beta_max = check_betas(value["beta_min"], value["beta_max"])
            self.alpha_bars = linear_beta_alpha_bars(self.n_steps, self.beta_min, self.beta_max)
            self.T = float(ou_time(self.alpha_bars[-1]))
        else:
            self.grid = choice("grid", value["grid"], GRID_KINDS)
            self.T, self.t_min = time_span(value["T"], value["t_min"])
            self.times = time_grid(self.T, self.t_min, self.n_steps, self.grid)

    def score_times(self) -> list[tuple[float, float]]:
        if self.discretization == "ancestral":
            t = [0.0] + [float(v) for v in ou_time(self.alpha_bars)]
            return [(t[k], t[k] - t[k - 1]) for k in range(len(t) - 1, 0, -1)]
        t = [float(v) for v in self.times]
        return [(t[k], t[k] - t[k + 1]) for k in range(len(t) - 1)]

    def sample(self, score: ScoreEstimate, x0: Tensor, *, generator: torch.Generator,
               callback: Optional[StepCallback] = None) -> Tensor:
        if self.discretization == "ancestral":
            return ddpm_ancestral(score, x0, alpha_bars=self.alpha_bars, generator=generator, callback=callback)
        return ou_exponential_integrator(score, x0, times=self.times, generator=generator, callback=callback)


@hookimpl
def register_samplers(register):
    register("ddpm", DDPM, description="DDPM reverse process: ancestral (Ho et al. 2020) or exponential integrator")
