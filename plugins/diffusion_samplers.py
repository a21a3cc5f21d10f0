"""Diffusion-family samplers: they invert the forward OU process from ``N(0, I)`` at a horizon T.

Forward process (DESIGN section 3): ``x_t = e^{-t} x_0 + sqrt(1 - e^{-2t}) z``, ``alpha_bar = e^{-2t}``.
Every sampler here exposes the same interface: ``family = "diffusion"``, ``process = "ou"``, the
horizon ``T``, ``score_times()`` (the OU time ``t_k`` of each score query, in query order, and the
length ``h_k`` of OU time that query covers; ``sum h_k = T - final time``, except annealed Langevin whose
last level covers ``[0, t_min]``), ``forward_coefficients(t)``
and ``sample(score, x0, *, generator, callback)``. ``x0`` (drawn from N(0, I) by the runner) is
cloned, never redrawn or modified. The update rules are pure functions below (explicit generator).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import Tensor

from bench_core import hookimpl
from bench_core.protocols import ScoreEstimate, StepCallback

from ._params import choice, nonnegative_float, positive_float, positive_int
from .schedules import (GRID_KINDS, REFERENCE_LEVELS, evenly_spaced_levels, linear_beta_alpha_bars, ou_coefficients,
                        ou_time, time_grid)

DISCRETIZATIONS = ("ancestral", "exponential")


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
    noise = torch.empty_like(x)
    for step, k in enumerate(range(len(ab) - 1, -1, -1), start=1):
        previous = ab[k - 1] if k > 0 else 1.0
        alpha = ab[k] / previous
        beta = 1.0 - alpha
        drift = score(x, ou_time(ab[k]))
        x.add_(drift, alpha=beta).div_(math.sqrt(alpha))
        if k > 0:  # Algorithm 2 returns the mean of the last step (z = 0 at t = 1)
            noise.normal_(generator=generator)
            x.add_(noise, alpha=math.sqrt(beta))
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
    noise = torch.empty_like(x)
    for k in range(len(grid) - 1):
        h = grid[k] - grid[k + 1]
        drift = score(x, grid[k])
        noise.normal_(generator=generator)
        x.mul_(math.exp(h)).add_(drift, alpha=2.0 * math.expm1(h)).add_(noise, alpha=math.sqrt(math.expm1(2.0 * h)))
        if callback is not None:
            callback(k + 1, grid[k + 1], x)
    return x


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
    noise = torch.empty_like(x)
    for step, i in enumerate(range(len(ab) - 1, -1, -1), start=1):
        now, prev = ab[i], (ab[i - 1] if i > 0 else 1.0)
        sigma = eta * math.sqrt((1.0 - prev) / (1.0 - now) * (1.0 - now / prev))
        # x' = c_x x + c_s s + sigma z: x0_hat and eps_hat expanded, so one fused in-place update
        c_x = math.sqrt(prev / now)
        c_s = c_x * (1.0 - now) - math.sqrt(max(1.0 - prev - sigma**2, 0.0) * (1.0 - now))
        drift = score(x, ou_time(now))
        x.mul_(c_x).add_(drift, alpha=c_s)
        if sigma > 0.0:
            noise.normal_(generator=generator)
            x.add_(noise, alpha=sigma)
        if callback is not None:
            callback(step, ou_time(prev), x)
    return x


def annealed_langevin(score: ScoreEstimate, x0: Tensor, *, times: Sequence[float], step_sizes: Sequence[float],
                      steps_per_level: int, generator: torch.Generator,
                      callback: Optional[StepCallback] = None) -> Tensor:
    """Annealed Langevin dynamics (Song & Ermon, NeurIPS 2019, Algorithm 1), in OU time.

    For each level ``t_i`` (decreasing) run ``steps_per_level`` ULA steps on ``p_{t_i}``:
    ``x <- x + a_i s(x, t_i) + sqrt(2 a_i) z`` (``a_i`` is Algorithm 1's ``alpha_i / 2``).
    ``callback(j, t_i, x)`` after every Langevin step ``j = 1 .. L * steps_per_level``.
    """
    x = x0.clone()
    noise = torch.empty_like(x)
    step = 0
    for t, a in zip((float(v) for v in times), (float(v) for v in step_sizes)):
        scale = math.sqrt(2.0 * a)
        for _ in range(steps_per_level):
            drift = score(x, t)
            noise.normal_(generator=generator)
            x.add_(drift, alpha=a).add_(noise, alpha=scale)
            step += 1
            if callback is not None:
                callback(step, t, x)
    return x


def annealed_step_sizes(times: Sequence[float], eps: float) -> list[float]:
    """Song & Ermon's ``a_i = eps sigma_i^2 / sigma_L^2`` with the OU noise variance ``sigma_i^2 = 1 - e^{-2 t_i}``.

    Why this is stable for every target: ``p_t`` is ``p_0`` scaled by ``e^{-t}`` convolved with
    ``N(0, sigma_t^2 I)``, so ``-hess log p_t <= I / sigma_t^2``. Hence ``a_i L_i <= eps / sigma_L^2`` at
    every level, whatever the target: ULA's stability condition ``a L < 2`` holds at all levels once it
    holds for ``eps / sigma_L^2``.
    """
    variances = [-math.expm1(-2.0 * float(t)) for t in times]
    return [eps * v / variances[-1] for v in variances]


class _OUDiffusion:
    """Shared part of the interface: the family, the forward process and its coefficients."""

    family = "diffusion"
    process = "ou"
    T: float

    def forward_coefficients(self, t: float) -> tuple[float, float]:
        """``(a_t, sigma_t) = (e^{-t}, sqrt(1 - e^{-2t}))``: ``x_t = a_t x_0 + sigma_t z``."""
        return ou_coefficients(t)


def _check_betas(beta_min: object, beta_max: object) -> tuple[float, float]:
    low, high = positive_float("beta_min", beta_min), positive_float("beta_max", beta_max)
    if high >= 1.0:
        raise ValueError(f"parameter 'beta_max' must be < 1, got {beta_max!r}")
    if low > high:
        raise ValueError(f"parameter 'beta_min' must be <= beta_max ({high!r}), got {beta_min!r}")
    return low, high


class DDPM(_OUDiffusion):
    """DDPM reverse process: ``discretization = "ancestral"`` (:func:`ddpm_ancestral`, Ho et al. 2020) or
    ``"exponential"`` (:func:`ou_exponential_integrator`, Chen et al. ICLR 2023).

    All parameters are accepted and validated for both; each discretization uses its own:
    ancestral uses ``n_steps`` (levels of the linear schedule, rescaled as :func:`linear_betas` says),
    ``beta_min``, ``beta_max`` and its horizon is ``T = t_K`` (5.06 at 1000 levels; the ``T`` param is
    unused); exponential uses ``T``, ``n_steps``, ``t_min`` (early stopping: the output is the state at
    ``t_min``, an approximation of ``p_{t_min}``) and ``grid`` ("geometric", steps proportional to t, or
    "uniform").

    Parameters
    ----------
    discretization : {"ancestral", "exponential"}, default "ancestral"
        Ho et al.'s Algorithm 2, or the exponential integrator of Chen et al.
    n_steps : int, default 1000
        Levels (ancestral) or grid steps (exponential): the number of score queries.
    beta_min, beta_max : float, default 1e-4, 0.02
        Ends of the linear beta schedule (ancestral).
    T : float, default 10.0
        Horizon in OU time (exponential).
    t_min : float, default 1e-3
        Early-stopping time of the returned samples (exponential).
    grid : {"geometric", "uniform"}, default "geometric"
        Time grid of the exponential integrator.
    """

    def __init__(self, discretization: str = "ancestral", n_steps: int = 1000, beta_min: float = 1e-4,
                 beta_max: float = 0.02, T: float = 10.0, t_min: float = 1e-3, grid: str = "geometric") -> None:
        self.discretization = choice("discretization", discretization, DISCRETIZATIONS)
        self.n_steps = positive_int("n_steps", n_steps)
        self.beta_min, self.beta_max = _check_betas(beta_min, beta_max)
        self.grid = choice("grid", grid, GRID_KINDS)
        self.t_min = positive_float("t_min", t_min)
        horizon = positive_float("T", T)
        if not self.t_min < horizon:
            raise ValueError(f"parameter 't_min' must be < T ({horizon!r}), got {t_min!r}")
        if self.discretization == "ancestral":
            self.alpha_bars = linear_beta_alpha_bars(self.n_steps, self.beta_min, self.beta_max)
            self.T = float(ou_time(self.alpha_bars[-1]))
        else:
            self.times = time_grid(horizon, self.t_min, self.n_steps, self.grid)
            self.T = horizon

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


class DDIM(_OUDiffusion):
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
        self.n_steps = positive_int("n_steps", n_steps)
        self.eta = nonnegative_float("eta", eta)
        if self.eta > 1.0:  # sigma^2 <= 1 - alpha_bar_prev holds for eta <= 1 only
            raise ValueError(f"parameter 'eta' must be in [0, 1], got {eta!r}")
        self.beta_min, self.beta_max = _check_betas(beta_min, beta_max)
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


class AnnealedLangevin(_OUDiffusion):
    """Annealed Langevin dynamics (:func:`annealed_langevin`, Song & Ermon 2019) on OU noise levels.

    Levels: the geometric grid :func:`~.schedules.time_grid` ``(T, t_min, n_levels - 1, "geometric")``
    (Song & Ermon's geometric noise sequence: for small t, ``sigma_t^2 ~ 2t``). Steps ``a_i`` from
    :func:`annealed_step_sizes`: ``eps`` is the ULA step at the last level, and ``a_i L_i <= eps / sigma_L^2``
    at every level for every target. The output is the state after the last level (it approximates
    ``p_{t_min}``; no final denoising step). ``score_times()`` lists each level once,
    ``(t_i, t_i - t_{i+1})`` with ``t_{L+1} = 0`` (so the h_i sum to T: the last level stands for
    ``[0, t_L]``), though the score is queried ``steps_per_level`` times there; the callback counts every
    Langevin step (``n_levels * steps_per_level``), with ``t`` the level of the state.

    Default ``eps = 2e-3``: with ``t_min = 1e-3``, ``eps / sigma_L^2 = 1.001``, so every step has
    ``a_i L_i <~ 1``, the largest ULA step that does not overshoot on a quadratic (stability needs
    ``< 2``, enforced). Smaller steps are *less* accurate here: the Langevin time per level,
    ``M a_i ~ 2 M eps t_i / sigma_L^2`` for small ``t_i``, then falls behind the drift of ``p_t``'s mean.
    Exact law with the exact score on ``N(3 * 1, I_50)``, defaults otherwise: KL 0.0063 (eps = 2e-3),
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
    eps : float, default 2e-3
        ULA step at the last level; a_i = eps sigma_i^2 / sigma_L^2.
    """

    def __init__(self, T: float = 5.0, t_min: float = 1e-3, n_levels: int = 100, steps_per_level: int = 10,
                 eps: float = 2e-3) -> None:
        self.T = positive_float("T", T)
        self.t_min = positive_float("t_min", t_min)
        if not self.t_min < self.T:
            raise ValueError(f"parameter 't_min' must be < T ({self.T!r}), got {t_min!r}")
        self.n_levels = positive_int("n_levels", n_levels)
        if self.n_levels < 2:
            raise ValueError(f"parameter 'n_levels' must be >= 2 (levels from T down to t_min), got {n_levels!r}")
        self.steps_per_level = positive_int("steps_per_level", steps_per_level)
        self.eps = positive_float("eps", eps)
        self.times = time_grid(self.T, self.t_min, self.n_levels - 1, "geometric")
        self.step_sizes = annealed_step_sizes(self.times.tolist(), self.eps)
        bound = self.eps / -math.expm1(-2.0 * self.t_min)  # sup over levels and targets of a_i L_i
        if bound >= 2.0:
            raise ValueError(f"parameter 'eps' = {eps!r} allows a_i L_i up to eps / sigma_L^2 = {bound:.4g} "
                             "(sigma_L^2 = 1 - e^{-2 t_min}); it must be < 2, beyond which ULA can diverge")

    def score_times(self) -> list[tuple[float, float]]:
        t = [float(v) for v in self.times] + [0.0]
        return [(t[i], t[i] - t[i + 1]) for i in range(len(t) - 1)]

    def sample(self, score: ScoreEstimate, x0: Tensor, *, generator: torch.Generator,
               callback: Optional[StepCallback] = None) -> Tensor:
        return annealed_langevin(score, x0, times=self.times.tolist(), step_sizes=self.step_sizes,
                                 steps_per_level=self.steps_per_level, generator=generator, callback=callback)


@hookimpl
def register_samplers(register):
    register("ddpm", DDPM, description="DDPM reverse process: ancestral (Ho et al. 2020) or exponential integrator")
    register("ddim", DDIM, description="DDIM (Song, Meng, Ermon 2021) on the 1000-level linear schedule")
    register("annealed_langevin", AnnealedLangevin,
             description="annealed Langevin dynamics (Song & Ermon 2019) on geometric OU noise levels")
