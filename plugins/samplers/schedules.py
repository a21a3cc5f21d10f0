"""Noise schedules and time grids shared by the diffusion samplers.

Time convention (docs/architecture.md, Time and seeds): forward Ornstein-Uhlenbeck time ``t >= 0`` with
``x_t = e^{-t} x_0 + sqrt(1 - e^{-2t}) z``, so ``alpha_bar = e^{-2t}``. A discrete DDPM
schedule ``beta_1..beta_K`` maps to ``t_k = -0.5 log(alpha_bar_k)`` with
``alpha_bar_k = prod_{i<=k} (1 - beta_i)``.

Everything here is float64 (schedules are constants; samplers cast with ``.to(x)`` on use).
"""
from __future__ import annotations

import bisect
import math
from typing import Union

import torch
from torch import Tensor

from bench_core import nonnegative_float, positive_float, tensor_size

Scalar = Union[float, Tensor]

#: the number of levels Ho et al. (2020) defined ``beta_min = 1e-4 .. beta_max = 0.02`` for
REFERENCE_LEVELS = 1000

GRID_KINDS = ("uniform", "geometric")


def linear_betas(n_steps: int, beta_min: float = 1e-4, beta_max: float = 0.02) -> Tensor:
    """The linear beta schedule of Ho, Jain, Abbeel (2020), rescaled to ``n_steps`` levels.

    Ho et al. space ``beta`` linearly from ``beta_min = 1e-4`` to ``beta_max = 0.02`` over 1000
    levels. For ``n_steps != 1000`` both endpoints are multiplied by ``1000 / n_steps``: the sum
    of the betas (to first order ``2 t_K``, twice the OU horizon) then stays about 10.05, so a
    coarse chain covers about the same noise range as the 1000-level one (``t_K`` = 5.06 at 1000
    levels, 5.40 at 100, 7.6 at 25: ``-log(1 - beta) > beta`` bites as the betas grow). ``n_steps``
    must keep the rescaled ``beta_max`` below 1 (``n_steps >= 21`` for the defaults).

    Returns
    -------
    Tensor [n_steps] float64, ``beta_1 .. beta_K``.
    """
    n_steps = tensor_size("n_steps", n_steps, what="the time grid")
    beta_min = positive_float("beta_min", beta_min)
    beta_max = positive_float("beta_max", beta_max)
    if beta_min > beta_max:
        raise ValueError(f"parameter 'beta_min' must be <= beta_max ({beta_max!r}), got {beta_min!r}")
    scale = REFERENCE_LEVELS / n_steps
    if beta_max * scale >= 1.0:
        # beta = 1 would make alpha_bar 0 (an infinite horizon and a division by zero)
        raise ValueError(f"parameter 'n_steps' = {n_steps} is too small for beta_max = {beta_max!r}: the "
                         f"rescaled beta_max * {REFERENCE_LEVELS} / n_steps = {beta_max * scale:.4g} must be < 1")
    return torch.linspace(beta_min * scale, beta_max * scale, n_steps, dtype=torch.float64)


def linear_beta_alpha_bars(n_steps: int, beta_min: float = 1e-4, beta_max: float = 0.02) -> Tensor:
    """``alpha_bar_k = prod_{i<=k} (1 - beta_i)`` for the (rescaled) linear schedule of :func:`linear_betas`.

    Returns
    -------
    Tensor [n_steps] float64, decreasing: ``alpha_bar_1 > ... > alpha_bar_K``.
    """
    return torch.cumprod(1.0 - linear_betas(n_steps, beta_min, beta_max), dim=0)


def ou_time(alpha_bar: Scalar) -> Scalar:
    """The OU time of a noise level: ``t = -0.5 log(alpha_bar)`` (float in, float out; Tensor in, Tensor out)."""
    # "+ 0.0" turns the -0.0 of alpha_bar = 1 into 0.0
    if isinstance(alpha_bar, Tensor):
        return -0.5 * torch.log(alpha_bar) + 0.0
    return -0.5 * math.log(alpha_bar) + 0.0


def ou_alpha_bar(t: Scalar) -> Scalar:
    """The inverse of :func:`ou_time`: ``alpha_bar = e^{-2t}``."""
    if isinstance(t, Tensor):
        return torch.exp(-2.0 * t)
    return math.exp(-2.0 * t)


def ou_coefficients(t: float) -> tuple[float, float]:
    """``(a_t, sigma_t) = (e^{-t}, sqrt(1 - e^{-2t}))``: ``x_t = a_t x_0 + sigma_t z`` under the OU process."""
    return math.exp(-t), math.sqrt(-math.expm1(-2.0 * t))


def time_span(T: object, t_min: object, *, zero_t_min: bool = False) -> tuple[float, float]:
    """``(T, t_min)`` as floats with ``0 < t_min < T`` (``0 <= t_min`` when ``zero_t_min``).

    The one check of a sampler's time span, from the horizon ``T`` down to ``t_min``; a ValueError
    names the parameter at fault.
    """
    T = positive_float("T", T)
    t_min = nonnegative_float("t_min", t_min) if zero_t_min else positive_float("t_min", t_min)
    if not t_min < T:
        raise ValueError(f"parameter 't_min' must be < T ({T!r}), got {t_min!r}")
    return T, t_min


def time_grid(T: float, t_min: float, n_steps: int, kind: str = "uniform") -> Tensor:
    """A decreasing grid ``T = t_0 > t_1 > ... > t_{n_steps} = t_min`` of OU times.

    ``kind = "uniform"``: equal steps ``(T - t_min) / n_steps`` (``t_min = 0`` allowed).
    ``kind = "geometric"``: log-uniform, ``t_k = T (t_min / T)^{k / n_steps}``: steps proportional
    to ``t``, shrinking near ``t_min``. This is the early-stopping grid Chen, Chewi, Li, Li, Salim,
    Zhang (ICLR 2023, Sampling is as easy as learning the score, section 3 / Cor. 3) recommend:
    with ``h_k ~ c t_k`` the discretization error stays bounded as ``t_min -> 0`` while the number
    of steps grows only like ``log(T / t_min)``.

    Returns
    -------
    Tensor [n_steps + 1] float64, with the endpoints exactly ``T`` and ``t_min``.
    """
    n_steps = tensor_size("n_steps", n_steps, what="the time grid")
    if kind not in GRID_KINDS:
        raise ValueError(f"parameter 'grid' must be one of {', '.join(GRID_KINDS)}, got {kind!r}")
    T, t_min = time_span(T, t_min, zero_t_min=kind == "uniform")  # log-uniform needs t_min > 0
    if kind == "uniform":
        grid = torch.linspace(T, t_min, n_steps + 1, dtype=torch.float64)
    else:
        grid = torch.exp(torch.linspace(math.log(T), math.log(t_min), n_steps + 1, dtype=torch.float64))
    grid[0], grid[-1] = T, t_min  # exact endpoints (exp(log T) may round)
    return grid


def evenly_spaced_levels(n_steps: int, n_levels: int = REFERENCE_LEVELS) -> list[int]:
    """``n_steps`` distinct levels of a ``n_levels``-level chain, evenly spaced from ``n_levels`` down to 1.

    Level ``i`` (``i = 0 .. n_steps - 1``) is ``round(n_levels - i (n_levels - 1) / (n_steps - 1))``
    (round half to even), so the first is always ``n_levels`` and the last always 1; ``n_steps = 1``
    gives ``[n_levels]``. The spacing is >= 1, so the rounded levels are distinct.
    """
    n_steps = tensor_size("n_steps", n_steps, what="the time grid")
    if n_steps > n_levels:
        raise ValueError(f"parameter 'n_steps' must be <= {n_levels} (the levels of the schedule), got {n_steps}")
    if n_steps == 1:
        return [n_levels]
    return [int(v) for v in torch.round(torch.linspace(n_levels, 1, n_steps, dtype=torch.float64))]


def level_times(n_levels: int = REFERENCE_LEVELS, beta_min: float = 1e-4, beta_max: float = 0.02) -> list[float]:
    """OU times ``t_k = -0.5 log(alpha_bar_k)`` of the levels ``k = 1..n_levels`` of the linear schedule
    (increasing); at 1000 levels ``t_10 = 0.000948`` (``1 / sqrt(1 - alpha_bar_10) = 22.97``), ``t_100 = 0.0543``,
    ``t_1000 = 5.06``."""
    return [float(v) for v in ou_time(linear_beta_alpha_bars(n_levels, beta_min, beta_max))]


def nearest_level(t: float, times: list[float]) -> int:
    """The level ``k`` (1-based) whose time ``times[k - 1]`` is nearest to ``t`` (ties: the lower level)."""
    index = bisect.bisect_left(times, t)
    if index == 0:
        return 1
    if index == len(times):
        return len(times)
    return index if t - times[index - 1] <= times[index] - t else index + 1
