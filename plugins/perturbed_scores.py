"""Cone trap (Cao, Chen, Sridharan, Wu 2026, Theorem 11) and the benign ``noisy`` control.

The well traps (Theorems 1 and 7) are in :mod:`well_traps`; time-t forms and schedules in
:mod:`trap_schedule`. Every estimate keeps the dtype and device of ``x``; parameters are stored
in float64 and cast with ``.to(x)`` on use.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from bench_core import hookimpl
from bench_core.protocols import Target, TrainingData

from ._params import nonnegative_float, nonnegative_int, open_interval_float, positive_float, positive_int, vector
from .tail_probabilities import log_cone_mass
from .trap_schedule import TimeIndexed
from .well_traps import isotropic_components

_N_MC = 20_000  # Monte Carlo draws that normalize the noisy field


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
        Error budget of the admissible schedule (default 1e-3).
    n_mc : int
        Monte Carlo points for the cutoff when no closed-form bound applies (default 4096).
    """

    def __init__(self, target: Target, data: Optional[TrainingData] = None, half_angle: float = 0.3,
                 axis: Optional[list[float]] = None, drift: float = 1.0, schedule: str = "admissible",
                 budget: float = 1e-3, n_mc: int = 4096) -> None:
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


class NoisyScore(TimeIndexed):
    """Benign control: ``s_hat(x, t) = score(x, t) + eps F(x)`` with a smooth random Fourier field F.

    ``F(x) = kappa sqrt(2/m) sum_j a_j cos(<w_j, x> + b_j)``, ``w_j ~ N(0, I / bandwidth^2)``,
    ``b_j ~ U[0, 2 pi)``, ``a_j ~ N(0, I_d)`` drawn from ``Generator().manual_seed(seed)``; ``kappa``
    makes ``E_pi ||F||^2 = 1`` on 20000 target draws (generator seed ``seed + 1``), so the
    L2(pi) error is ``eps`` up to ~1% Monte Carlo error. Unlike the traps of Cao, Chen,
    Sridharan, Wu (2026) it is perturbed at every t by default (``schedule = "naive"``): bounded
    and Lipschitz, it traps nothing, and its error ``E_{p_t}||eps F||^2`` stays of order ``eps^2`` at
    every t, so it satisfies the assumption of Chen et al. (2023) with ``eps_score ~ eps``.

    Parameters
    ----------
    target : Target
    data : TrainingData or None
        Unused.
    eps : float
        L2(pi) size of the perturbation, >= 0 (default 0.1).
    n_features : int
        ``m``, the number of random Fourier features of F (default 64).
    bandwidth : float
        The length scale of F (default 1).
    seed : int
        Seed of the random features (default 0).
    schedule : {"naive", "admissible"}
        Default "naive" (perturbed at every t); "admissible" keeps the perturbation only below
        the Monte Carlo cutoff of :mod:`trap_schedule` for ``budget``.
    budget : float
        Error budget of the admissible schedule (default 1e-3).
    """

    def __init__(self, target: Target, data: Optional[TrainingData] = None, eps: float = 0.1,
                 n_features: int = 64, bandwidth: float = 1.0, seed: int = 0, schedule: str = "naive",
                 budget: float = 1e-3) -> None:
        self.target = target
        self.init_schedule(schedule, budget)
        self.dim = d = target.dim
        self.eps = nonnegative_float("eps", eps)
        m = positive_int("n_features", n_features)
        width = positive_float("bandwidth", bandwidth)
        seed = nonnegative_int("seed", seed)
        gen = torch.Generator().manual_seed(seed)
        self.freqs = torch.randn(m, d, generator=gen, dtype=torch.float64) / width
        self.phases = 2 * math.pi * torch.rand(m, generator=gen, dtype=torch.float64)
        self.amplitudes = torch.randn(m, d, generator=gen, dtype=torch.float64)
        self.scale = 1.0
        ref = target.sample(_N_MC, torch.Generator().manual_seed(seed + 1)).to(torch.float64).cpu()
        self.scale = 1.0 / math.sqrt(float((self.field(ref) ** 2).sum(-1).mean()))

    def field(self, x: Tensor) -> Tensor:
        """``F(x)`` ([n, d], dtype/device of x), normalized to ``E_pi ||F||^2 = 1``."""
        m = len(self.phases)
        waves = torch.cos(x @ self.freqs.to(x).T + self.phases.to(x))
        return (self.scale * math.sqrt(2 / m)) * (waves @ self.amplitudes.to(x))

    def perturbed(self, x: Tensor, t: float) -> Tensor:
        return self.target.score(x, t) + self.eps * self.field(x)

    def lipschitz_bound(self) -> float:
        """Lipschitz constant of ``eps F``: ``eps kappa sqrt(2/m) sum_j ||a_j|| ||w_j||`` (since
        ``grad cos(<w, x> + b) = -sin(.) w``)."""
        m = len(self.phases)
        total = float((self.amplitudes.norm(dim=-1) * self.freqs.norm(dim=-1)).sum())
        return self.eps * self.scale * math.sqrt(2 / m) * total

    def region_log_mass(self, target: Target) -> Optional[float]:
        return None

    def error_log_bound(self, target: Target) -> Optional[float]:
        """``log eps^2`` (the normalization makes the L2(pi) error eps up to MC error)."""
        return -math.inf if self.eps == 0 else 2 * math.log(self.eps)

    def diagnostics(self) -> dict[str, float]:
        return self.schedule_diagnostics()


@hookimpl
def register_scores(register):
    register("cone_trap", ConeTrap, description="Theorem 11: constant drift u inside a thin cone, exact outside")
    register("noisy", NoisyScore, description="exact score + eps * smooth random Fourier field (benign control)")
