"""Time-indexed forms of the perturbed score estimates: the ``admissible`` and ``naive`` schedules.

Cao, Chen, Sridharan, Wu (2026) build their estimates at ``t = 0``, the only time Langevin
queries. Diffusion samplers query ``grad log p_t`` along the whole forward OU path, and the
guarantee of Chen et al. (2023) needs ``E_{p_t}||s_hat_t - s_t||^2`` small at every queried t.
A fair contrast (the paper's last section) gives every estimate a time-t form:

- ``naive``: the same construction at every t (for the ball trap
  ``s_hat_t = -x + (1 - phi(||x|| / R)) e^{-t} mu``); its time-averaged error is large, and it
  marks the boundary of the theory;
- ``admissible`` (default): the naive form only for ``t < cutoff`` and the exact score beyond,
  where ``cutoff`` is the first time at which ``err(t) = E_{p_t}||s_hat_t - s_t||^2`` of the
  naive form exceeds ``budget``. At ``t = 0`` both schedules are the estimate Langevin gets.

``err(t)`` is an upper bound in closed form when the estimate provides one (``error_bound``; the
cutoff is then conservative: the admissible form provably keeps its error below the budget at
every ``t < cutoff``), else a Monte Carlo estimate on forward-noised target samples with a fixed
internal seed (deterministic; it resolves errors down to about ``sup||s_hat - s||^2 / n_mc``).
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, Callable, Optional

import torch
from torch import Tensor

from bench_core import nonnegative_float, nonnegative_int, refuse_unused, tensor_size

from .exact import ExactScore

SCHEDULES = ("admissible", "naive")
#: defaults of the params only the admissible schedule reads (None in the factories' signatures: not written)
DEFAULT_BUDGET, DEFAULT_N_MC = 1e-3, 4096
#: OU times scanned for the first crossing (log-uniform), then refined by bisection.
SCAN_GRID = torch.logspace(-5, math.log10(30.0), 60, dtype=torch.float64).tolist()
_BISECTIONS = 50


def schedule_param(value: Any) -> str:
    """Validate the ``schedule`` parameter."""
    if value not in SCHEDULES:
        raise ValueError(f"parameter 'schedule' must be one of {', '.join(repr(s) for s in SCHEDULES)}, "
                         f"got {value!r}")
    return value


def first_crossing(error_at: Callable[[float], float], budget: float, grid: Optional[list[float]] = None) -> float:
    """Smallest ``t > 0`` with ``error_at(t) > budget``: the first crossing on ``grid`` refined by
    bisection (to float64 resolution in ``t``); ``inf`` when no grid time exceeds the budget.

    The returned ``t`` satisfies ``error_at(t) > budget`` (when finite) and the bisection keeps
    ``error_at(lo) <= budget`` at its lower end.
    """
    grid = SCAN_GRID if grid is None else grid
    lo = 0.0
    for t in grid:
        if error_at(t) > budget:
            hi = t
            break
        lo = t
    else:
        return math.inf
    for _ in range(_BISECTIONS):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if error_at(mid) > budget:
            hi = mid
        else:
            lo = mid
    return hi


class TimeIndexed(ABC):
    """Mixin for a perturbed estimate with a time-t form gated by a schedule.

    Subclasses set ``self.target`` and implement ``perturbed(x, t)`` (the naive time-t form) and
    may implement ``error_bound(t)`` (an upper bound on ``E_{p_t}||perturbed_t - s_t||^2``, or
    None). ``__call__`` applies the schedule; ``velocity_score`` is the CLD form: the target's
    exact CLD velocity score plus the same deviation ``s_hat_t(x) - s_t(x)`` (the error then
    enters the velocity equation as a force on x, and its L2 size is the one reported).

    The params only the admissible schedule reads (``schedule_params``: ``budget``, and ``n_mc``
    where the factory takes it) default to None in the factory, and the naive schedule refuses them.
    """

    #: built on the target's closed-form score: on a data set, `bench check` names these instead
    closed_form_only = "a learned score: empirical, ddpm_mlp or network"

    target: Any
    rowwise = True  # the exact score plus a deviation that is a function of each point alone
    #: the factory's params that only the admissible schedule reads
    schedule_params: tuple[str, ...] = ("budget",)

    def init_schedule(self, schedule: str = "admissible", budget: Optional[float] = None,
                      n_mc: Optional[int] = None, mc_seed: int = 0) -> None:
        self.schedule = schedule_param(schedule)
        given = {"budget": budget, "n_mc": n_mc}
        refuse_unused("schedule", self.schedule, {k: given[k] for k in self.schedule_params},
                      self.schedule_params if self.schedule == "admissible" else ())
        self.budget = nonnegative_float("budget", DEFAULT_BUDGET if budget is None else budget)
        self.n_mc = tensor_size("n_mc", DEFAULT_N_MC if n_mc is None else n_mc, what="the Monte Carlo draws")
        self.mc_seed = nonnegative_int("mc_seed", mc_seed)
        self._cutoff: Optional[float] = None
        self._mc_points: Optional[tuple[Tensor, Tensor]] = None

    @abstractmethod
    def perturbed(self, x: Tensor, t: float) -> Tensor:
        """The naive time-t form of the estimate ([n, d], dtype/device of x)."""

    def error_bound(self, t: float) -> Optional[float]:
        """An upper bound on ``E_{p_t}||perturbed_t - s_t||^2`` in closed form, or None (Monte Carlo)."""
        return None

    @property
    def cutoff(self) -> float:
        """Time below which the perturbation is present (``inf`` for ``naive``); computed once."""
        if self.schedule == "naive":
            return math.inf
        if self._cutoff is None:
            self._cutoff = first_crossing(self.error_at, self.budget)
        return self._cutoff

    def active(self, t: float) -> bool:
        """Whether the estimate at time ``t`` differs from the exact score by construction."""
        return t == 0 or self.schedule == "naive" or t < self.cutoff

    def __call__(self, x: Tensor, t: float) -> Tensor:
        return self.perturbed(x, t) if self.active(t) else self.target.score(x, t)

    def deviation(self, x: Tensor, t: float) -> Tensor:
        """``s_hat_t(x) - grad log p_t(x)``; exactly 0 where the schedule switches it off."""
        if not self.active(t):
            return torch.zeros_like(x)
        return self.perturbed(x, t) - self.target.score(x, t)

    def velocity_score(self, x: Tensor, v: Tensor, t: float) -> Tensor:
        """CLD form: exact ``grad_v log p_t(x, v)`` plus ``deviation(x, t)``."""
        return ExactScore(self.target, None).velocity_score(x, v, t) + self.deviation(x, t)

    def error_at(self, t: float) -> float:
        """``err(t)`` of the naive form: the closed-form bound when available, else Monte Carlo."""
        bound = self.error_bound(t)
        return self.mc_error(t) if bound is None else bound

    def mc_error(self, t: float) -> float:
        """Monte Carlo ``E_{p_t}||perturbed_t - s_t||^2`` on ``n_mc`` forward-noised target samples
        ``x_t = e^{-t} x_0 + sqrt(1 - e^{-2t}) z`` (the same ``x_0, z`` for every t: common random
        numbers make ``err`` a smooth function of t for the bisection)."""
        if self._mc_points is None:
            gen = torch.Generator().manual_seed(self.mc_seed)
            x0 = self.target.sample(self.n_mc, gen).to(torch.float64).cpu()
            z = torch.randn(x0.shape, generator=gen, dtype=torch.float64)
            self._mc_points = (x0, z)
        x0, z = self._mc_points
        x = math.exp(-t) * x0 + math.sqrt(-math.expm1(-2 * t)) * z
        return float((self.perturbed(x, t) - self.target.score(x, t)).pow(2).sum(-1).mean())

    def schedule_diagnostics(self) -> dict[str, float]:
        """``cutoff`` (inf: perturbed at every t) and ``admissible`` (1.0 for that schedule)."""
        return {"cutoff": self.cutoff, "admissible": float(self.schedule == "admissible")}
