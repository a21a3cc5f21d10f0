"""The benign ``noisy`` control: the exact score plus a small smooth random field (no trap).

Every estimate keeps the dtype and device of ``x``; parameters are stored in float64 and cast with
``.to(x)`` on use.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from bench_core import Target, TrainingData, hookimpl, nonnegative_float, nonnegative_int, positive_float, tensor_size

from .time_forms import TimeIndexed

_N_MC = 20_000  # Monte Carlo draws that normalize the noisy field


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
        Error budget of the admissible schedule (admissible only; default 1e-3).
    """

    def __init__(self, target: Target, data: Optional[TrainingData] = None, eps: float = 0.1,
                 n_features: int = 64, bandwidth: float = 1.0, seed: int = 0, schedule: str = "naive",
                 budget: Optional[float] = None) -> None:
        self.target = target
        self.init_schedule(schedule, budget)
        self.dim = d = target.dim
        self.eps = nonnegative_float("eps", eps)
        m = tensor_size("n_features", n_features, per_unit=2 * d, what="the random features")
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
    register("noisy", NoisyScore, description="exact score + eps * smooth random Fourier field (benign control)")
