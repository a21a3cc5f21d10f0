"""Well traps of Cao, Chen, Sridharan, Wu (2026): the ball trap (Theorem 1) and the memorized
score (Theorem 7), as time-indexed estimates (see :mod:`trap_schedule`).

Both are *wells*: around centers ``c_i`` the estimate is the score of ``N(c_i, nu_0 I)``, blended
into the target's score by the smooth step phi over ``rho <= ||x - c_i|| <= 2 rho``:

    s_hat_0(x) = phi(||y|| / rho) (-y / nu_0) + (1 - phi(||y|| / rho)) grad log pi(x),  y = x - c_i

with ``c_i`` the center nearest to ``x``. The ball trap is one well (``c``, ``nu_0 = 1``,
``rho = R``); the memorized score has one well per training point (``nu_0 = 1 / lam``,
``rho = r``). The time-t form pushes the same construction through the forward OU process:
centers ``e^{-t} c_i``, variance ``nu_t = e^{-2t} nu_0 + 1 - e^{-2t}`` (the OU marginal of
``N(c_i, nu_0 I)``) and radius ``rho_t = rho sqrt(nu_t / nu_0)`` (the well keeps its size in units
of its own width). For the ball trap on ``N(mu, I)`` this is PAPER's
``s_hat_t = -x + (1 - phi(||x|| / R)) e^{-t} mu``.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
import torch
from scipy.special import logsumexp
from torch import Tensor

from bench_core import Target, TrainingData, hookimpl, positive_float, vector

from bench_plugins.scores.time_forms import TimeIndexed

from .smooth_step import smooth_step
from .tail_probabilities import log_ncx2_cdf_many


def isotropic_components(target: Any) -> Optional[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(weights [K], means [K, d], variances [K])`` (numpy float64) when ``target`` is a mixture of
    isotropic Gaussians (``mixture_components()`` with equal variances per component), else None."""
    components = getattr(target, "mixture_components", None)
    if not callable(components):
        return None
    weights, means, variances = (c.detach().double().cpu().numpy() for c in components())
    if not np.all(variances == variances[:, :1]):
        return None
    return weights, means, variances[:, 0]


class Wells(TimeIndexed):
    """Smooth Gaussian wells around ``centers`` (see the module docstring)."""

    strict_region = False  # region: ||x - c_i|| <= 2 rho (True: < 2 rho)

    def __init__(self, target: Target, centers: Tensor, precision: float, radius: float, schedule: str,
                 budget: Optional[float]) -> None:
        self.target = target
        self.dim = target.dim
        self.centers = centers.detach().to(torch.float64).cpu().clone()
        self.precision = precision  # 1 / nu_0, kept exact: at t = 0 the field is -precision * y
        self.radius = radius
        self._cache: dict[tuple[torch.dtype, torch.device, float], tuple[Tensor, Tensor]] = {}
        self.init_schedule(schedule, budget)

    def geometry(self, t: float) -> tuple[float, float, float]:
        """``(e^{-t}, stiffness 1 / nu_t, rho_t)`` of the wells at time t."""
        if t == 0:
            return 1.0, self.precision, self.radius
        decay2 = math.exp(-2 * t)
        nu = decay2 / self.precision - math.expm1(-2 * t)
        return math.exp(-t), 1.0 / nu, self.radius * math.sqrt(nu * self.precision)

    def _centers_like(self, x: Tensor, decay: float) -> tuple[Tensor, Tensor]:
        key = (x.dtype, x.device, decay)
        if key not in self._cache:
            if len(self._cache) > 8:  # a diffusion sampler visits many t: keep only a few
                self._cache.clear()
            c = (decay * self.centers).to(x)
            self._cache[key] = (c, (c * c).sum(-1))
        return self._cache[key]

    def offset(self, x: Tensor, t: float = 0.0) -> Tensor:
        """``x - e^{-t} c_i`` for the nearest center ([n, d]); one matmul finds it."""
        c, c2 = self._centers_like(x, self.geometry(t)[0])
        if len(c) == 1:
            return x - c
        d2 = ((x * x).sum(-1, keepdim=True) + c2 - 2 * x @ c.T).clamp_min(0)
        return x - c[d2.argmin(dim=-1)]

    def perturbed(self, x: Tensor, t: float) -> Tensor:
        _, stiffness, rho = self.geometry(t)
        y = self.offset(x, t)
        w = smooth_step(y.norm(dim=-1, keepdim=True) / rho)
        return w * (-stiffness * y) + (1 - w) * self.target.score(x, t)

    def region(self, x: Tensor) -> Tensor:
        """Witness set at t = 0: the wells ``||x - c_i|| <= 2 rho`` (bool [n])."""
        dist = self.offset(x).norm(dim=-1)
        return dist < 2 * self.radius if self.strict_region else dist <= 2 * self.radius

    def _log_well_masses(self, iso: tuple, t: float) -> tuple[np.ndarray, np.ndarray]:
        """``log P_j(||x - e^{-t} c_i|| <= 2 rho_t)`` for ``x ~`` component j of ``p_t`` ([m, K]), and
        the distances ``e^{-t} ||c_i - m_j||``: ``||x - e^{-t} c_i||^2 / v_j`` is noncentral
        chi-square(d, ``e^{-2t} ||c_i - m_j||^2 / v_j``) with ``v_j = e^{-2t} s_j^2 + 1 - e^{-2t}``."""
        _, means, var = iso
        decay, _, rho = self.geometry(t)
        v = decay**2 * var - math.expm1(-2 * t)
        dist = decay * np.sqrt(((self.centers.numpy()[:, None, :] - means[None]) ** 2).sum(-1))
        return log_ncx2_cdf_many((4 * rho**2 / v)[None, :], self.dim, dist**2 / v[None, :]), dist

    def log_error_bound(self, target: Target, t: float = 0.0) -> Optional[float]:
        """Log of an upper bound on ``E_{p_t}||s_hat_t - s_t||^2`` (naive form) for isotropic mixtures.

        The deviation ``phi (-y / nu_t - s_t(x))`` vanishes outside the wells; inside well i, with
        ``s_t = sum_j post_j (e^{-t} m_j - x) / v_j`` a convex combination, its norm is at most
        ``max_j |1/v_j - 1/nu_t| 2 rho_t + e^{-t} ||c_i - m_j|| / v_j`` (triangle inequality, ``0 <= phi
        <= 1``, ``||y|| <= 2 rho_t``). So the error is at most that maximum squared times
        ``sum_i p_t(well_i)`` (union bound). None for other targets.
        """
        iso = isotropic_components(target)
        if iso is None:
            return None
        weights, _, var = iso
        decay, stiffness, rho = self.geometry(t)
        v = decay**2 * var - math.expm1(-2 * t)
        log_p, dist = self._log_well_masses(iso, t)
        sup = float((np.abs(1 / v - stiffness) * 2 * rho + dist / v).max())
        with np.errstate(divide="ignore"):
            log_mass = float(logsumexp(log_p + np.log(weights)[None, :]))
        return -math.inf if sup == 0 or log_mass == -math.inf else log_mass + 2 * math.log(sup)

    def error_log_bound(self, target: Target) -> Optional[float]:
        """Log of an upper bound on the t = 0 error ``E_pi||s_hat - grad log pi||^2`` (see
        :meth:`log_error_bound`)."""
        return self.log_error_bound(target, 0.0)

    def error_bound(self, t: float) -> Optional[float]:
        log_bound = self.log_error_bound(self.target, t)
        return None if log_bound is None else math.exp(log_bound)

    def diagnostics(self) -> dict[str, float]:
        return self.schedule_diagnostics()


class BallTrap(Wells):
    """Ball trap of Cao, Chen, Sridharan, Wu (2026), Theorem 1.

    ``s_hat_0(x) = phi(||x - c|| / R) (-(x - c)) + (1 - phi(||x - c|| / R)) grad log pi(x)``: the
    score of ``N(c, I)`` in the ball ``||x - c|| <= R``, the target's score outside ``2R``; for
    ``N(mu, I)`` and ``c = 0`` the paper's ``-x + (1 - phi(||x|| / R)) mu``. Time-t forms: module
    docstring and :mod:`trap_schedule`.

    Parameters
    ----------
    target : Target
    data : TrainingData or None
        Unused.
    radius : float
        ``R = radius * sqrt(d)`` (default 1).
    center : float or list of float
        ``c``; a scalar ``a`` means ``a * ones(d)`` (default 0).
    schedule : {"admissible", "naive"}
        Time-t forms for diffusion samplers (:mod:`trap_schedule`); at t = 0 both are the trap.
    budget : float
        Error budget of the admissible schedule (admissible only; default 1e-3).
    """

    def __init__(self, target: Target, data: Optional[TrainingData] = None, radius: float = 1.0,
                 center: Any = 0.0, schedule: str = "admissible", budget: Optional[float] = None) -> None:
        dim = target.dim
        radius = positive_float("radius", radius) * math.sqrt(dim)
        super().__init__(target, vector("center", center, dim)[None], 1.0, radius, schedule, budget)

    @property
    def center(self) -> Tensor:
        return self.centers[0]

    def region_log_mass(self, target: Target) -> Optional[float]:
        """``log pi(||x - c|| <= 2R)`` for isotropic Gaussian mixtures (noncentral chi-square per
        component); None for other targets."""
        iso = isotropic_components(target)
        if iso is None:
            return None
        with np.errstate(divide="ignore"):
            return float(logsumexp(self._log_well_masses(iso, 0.0)[0][0] + np.log(iso[0])))


class MemorizedScore(Wells):
    """Memorized score of Cao, Chen, Sridharan, Wu (2026), Theorem 7: a stiff well per training point.

    ``s_hat_0(x) = phi(||x - x_i|| / r) (-lam (x - x_i)) + (1 - phi(||x - x_i|| / r)) grad log pi(x)``,
    ``x_i`` the training point nearest to x, ``r = radius * sqrt(d)``. The paper's outside field is
    ``-x``, the score of its target ``N(0, I)``; the target's own score generalizes it. The naive
    time-t form (module docstring) is what a memorizing diffusion model learns: the score of the
    noised training points ``N(e^{-t} x_i, nu_t I)`` near each of them.

    Parameters
    ----------
    target : Target
    data : TrainingData
        ``data.distinct`` are the well centers.
    lam : float
        Stiffness ``1 / nu_0`` (default 32; ULA is stable for ``h lam < 2``).
    radius : float
        ``r = radius * sqrt(d)`` (default 0.25, the paper's ``sqrt(d) / 4``).
    schedule : {"admissible", "naive"}
        Time-t forms for diffusion samplers, as for :class:`BallTrap`.
    budget : float
        Error budget of the admissible schedule (admissible only; default 1e-3).

    Notes
    -----
    ``general_position`` records the paper's condition ``sqrt(d)/2 <= ||x_i|| <= 2 sqrt(d)``,
    ``||x_i - x_j|| >= sqrt(d)``; the wells are disjoint when ``4 r <= min_{i != j} ||x_i - x_j||``.
    """

    strict_region = True

    def __init__(self, target: Target, data: Optional[TrainingData], lam: float = 32.0, radius: float = 0.25,
                 schedule: str = "admissible", budget: Optional[float] = None) -> None:
        d = target.dim
        self.lam = positive_float("lam", lam)
        radius = positive_float("radius", radius) * math.sqrt(d)
        points = getattr(data, "distinct", None)
        if not isinstance(points, Tensor) or points.ndim != 2 or points.shape[1] != d or len(points) == 0:
            raise ValueError(f"parameter 'data' must hold the training points (data.distinct: a non-empty "
                             f"[n, {d}] tensor) for the 'memorized' score, got {type(data).__name__}")
        super().__init__(target, points, self.lam, radius, schedule, budget)
        norms = self.centers.norm(dim=-1)
        self.min_separation = self._min_separation(self.centers)
        root = math.sqrt(d)
        self.general_position = bool((norms >= root / 2).all() and (norms <= 2 * root).all()
                                     and self.min_separation >= root)
        self.wells_disjoint = bool(4 * self.radius <= self.min_separation)

    @staticmethod
    def _min_separation(c: Tensor, block: int = 1024) -> float:
        """``min_{i != j} ||c_i - c_j||`` (inf for one point), in row blocks to bound memory."""
        best = math.inf
        for start in range(0, len(c), block):  # blocks of rows: O(block * n) memory at construction
            dist = torch.cdist(c[start:start + block], c)
            rows = torch.arange(dist.shape[0], device=c.device)
            dist[rows, rows + start] = math.inf
            best = min(best, float(dist.min()))
        return best

    def region_log_mass(self, target: Target) -> Optional[float]:
        return None  # a union of balls: only the union bound is in closed form

    def diagnostics(self) -> dict[str, float]:
        return {"general_position": float(self.general_position), "n_wells": float(len(self.centers)),
                "min_separation_over_sqrt_d": self.min_separation / math.sqrt(self.dim),
                "wells_disjoint": float(self.wells_disjoint), **self.schedule_diagnostics()}


@hookimpl
def register_scores(register):
    register("ball_trap", BallTrap, description="Theorem 1: score of N(c, I) in a ball, exact outside 2R")
    register("memorized", MemorizedScore, description="Theorem 7: stiff wells around the training points")
