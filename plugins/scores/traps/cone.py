"""Cone trap (Cao, Chen, Sridharan, Wu 2026, Theorem 11).

The well traps (Theorems 1 and 7) are in :mod:`.wells`; time-t forms and schedules in
:mod:`bench_plugins.scores.time_forms`. Every estimate keeps the dtype and device of ``x``; parameters are stored
in float64 and cast with ``.to(x)`` on use.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from bench_core import Target, TrainingData, hookimpl, open_interval_float, positive_float, vector

from bench_plugins.scores.time_forms import TimeIndexed

from .tail_probabilities import log_cone_mass
from .wells import isotropic_components



class ConeTrap(TimeIndexed):
    """Cone trap of Cao, Chen, Sridharan, Wu (2026), Theorem 11.

    ``s_hat(x) = drift * u`` inside ``K = {x : <x, u> >= ||x|| cos(theta)}`` and the target's score
    outside. Discontinuous on the boundary of K (as in the paper): no Lipschitz constant.

    Parameters
    ----------
    target : Target
    data : TrainingData or None
        Unused.
    half_angle : float
        ``theta`` in radians, in ``(0, pi/2)`` (default 0.3).
    axis : list of float or None
        Direction of ``u`` (normalized); None means ``e_1``.
    drift : float
        Size of the constant field inside K (default 1).

    schedule : {"admissible", "naive"}
        Time-t forms (:mod:`trap_schedule`): the naive form is the same field at every t; the
        admissible cutoff uses :meth:`error_bound` (centered isotropic Gaussians) or Monte Carlo.
    budget : float
        Error budget of the admissible schedule (admissible only; default 1e-3).
    n_mc : int
        Monte Carlo size: noised target draws estimating the cutoff's error (admissible; default 4096).
        Used only when no closed-form bound applies.
    """

    schedule_params = ("budget", "n_mc")

    def __init__(self, target: Target, data: Optional[TrainingData] = None, half_angle: float = 0.3,
                 axis: Optional[list[float]] = None, drift: float = 1.0, schedule: str = "admissible",
                 budget: Optional[float] = None, n_mc: Optional[int] = None) -> None:
        self.target = target
        self.init_schedule(schedule, budget, n_mc)
        self.dim = target.dim
        self.half_angle = open_interval_float("half_angle", half_angle, 0.0, math.pi / 2)
        self.drift = positive_float("drift", drift)
        if axis is None:
            u = torch.zeros(self.dim, dtype=torch.float64)
            u[0] = 1.0
        elif isinstance(axis, (list, tuple)):
            u = vector("axis", list(axis), self.dim)
        else:
            raise ValueError(f"parameter 'axis' must be a list of {self.dim} numbers or omitted, got {axis!r}")
        if float(u.norm()) == 0:
            raise ValueError("parameter 'axis' must not be the zero vector")
        self.axis = u / u.norm()

    def region(self, x: Tensor) -> Tensor:
        """``x in K`` (bool [n]); the apex ``x = 0`` belongs to K."""
        return x @ self.axis.to(x) >= x.norm(dim=-1) * math.cos(self.half_angle)

    def perturbed(self, x: Tensor, t: float) -> Tensor:
        inside = self.region(x)[:, None]
        return torch.where(inside, self.drift * self.axis.to(x), self.target.score(x, t))

    def region_log_mass(self, target: Target) -> Optional[float]:
        """``log pi(K)`` for ``pi = N(0, s^2 I)`` (the direction is uniform on the sphere); else None."""
        iso = isotropic_components(target)
        if iso is None or len(iso[0]) != 1 or bool((iso[1] != 0).any()):
            return None
        return log_cone_mass(self.dim, self.half_angle)

    def error_log_bound(self, target: Target) -> Optional[float]:
        return None

    def error_bound(self, t: float) -> Optional[float]:
        """Upper bound on ``E_{p_t}||s_hat_t - s_t||^2`` for ``pi = N(0, s^2 I)``, else None (Monte Carlo).

        ``p_t = N(0, v_t I)``: the direction of x is uniform and independent of ``||x||``, so
        ``p_t(K) = pi(K)`` for every t, and ``||drift u + x / v_t||^2 <= (drift + ||x|| / v_t)^2`` gives
        ``E[1_K ||.||^2] <= pi(K) (drift^2 + 2 drift E||x|| / v_t + E||x||^2 / v_t^2)
        <= pi(K) (drift + sqrt(d / v_t))^2`` (Jensen: ``E||x|| <= sqrt(d v_t)``).
        """
        log_mass = self.region_log_mass(self.target)
        if log_mass is None:
            return None
        var = float(isotropic_components(self.target)[2][0])
        v = math.exp(-2 * t) * var - math.expm1(-2 * t)
        return math.exp(log_mass) * (self.drift + math.sqrt(self.dim / v)) ** 2

    def diagnostics(self) -> dict[str, float]:
        return self.schedule_diagnostics()


@hookimpl
def register_scores(register):
    register("cone_trap", ConeTrap, description="Theorem 11: constant drift u inside a thin cone, exact outside")
