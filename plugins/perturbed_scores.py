"""Perturbed score estimates: tiny L2(pi) error, yet traps for Langevin dynamics.

The constructions of Cao, Chen, Sridharan, Wu (2026) (PAPER.md): ``ball_trap`` (Theorem 1),
``memorized`` (Theorem 7), ``cone_trap`` (Theorem 11), plus ``noisy``, a smooth benign
perturbation of L2(pi) size ``eps`` used as a control.

Time: the paper's estimates are statements about ``t = 0`` (what Langevin queries). The three
traps are perturbed at ``t = 0`` only: for ``t != 0`` they return the target's exact score
``target.score(x, t)`` (time-indexed trap forms are later work). ``noisy`` is perturbed at
every ``t``: a bounded smooth field is harmless to both sampler families.

Every estimate keeps the dtype and device of ``x``; parameters are stored in float64 and cast
with ``.to(x)`` on use.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
import torch
from scipy.special import betainc, betaln, gammainc, gammaln, logsumexp
from scipy.stats import ncx2, poisson
from torch import Tensor

from bench_core import hookimpl
from bench_core.protocols import Target, TrainingData

from ._params import nonnegative_float, nonnegative_int, open_interval_float, positive_float, positive_int, vector
from .smooth_step import smooth_step
from .targets import GaussianTarget

_TINY = 1e-280  # below this a scipy probability may be denormal or 0: switch to log-space series
_N_MC = 20_000  # Monte Carlo draws that normalize the noisy field


def _log1p_series(log_ratios: np.ndarray, last_ratio: np.ndarray) -> np.ndarray:
    """``log(1 + sum_n prod_{i<=n} rho_i + tail)`` for a series whose later ratios are ``<= last_ratio < 1``.

    ``log_ratios[..., i] = log rho_i``; the geometric tail bound makes the result an upper bound
    of the infinite sum (and essentially exact once the terms are small).
    """
    log_terms = np.cumsum(log_ratios, axis=-1)
    with np.errstate(divide="ignore"):
        tail = log_terms[..., -1] + np.log(last_ratio) - np.log1p(-last_ratio)
    parts = [np.zeros_like(tail)[..., None], log_terms, tail[..., None]]
    return logsumexp(np.concatenate(parts, axis=-1), axis=-1)


def _log_gammainc_lower(k: np.ndarray, y: float, n_terms: int = 64) -> np.ndarray:
    """``log P(k, y)``, the regularized lower incomplete gamma, finite far below float underflow.

    Series (DLMF 8.7.1): ``P(k, y) = y^k e^{-y} / Gamma(k+1) * sum_n y^n / ((k+1)...(k+n))``;
    used only where ``P < 1e-280``, which forces ``y < k`` so the ratios ``y/(k+n) < 1``.
    """
    k = np.asarray(k, dtype=np.float64)
    direct = gammainc(k, y)
    if y <= 0:
        return np.full_like(k, -np.inf)
    n = np.arange(1, n_terms + 1)
    ratios = np.minimum(y / (k[..., None] + n), 1.0 - 1e-12)
    series = k * math.log(y) - y - gammaln(k + 1) + _log1p_series(np.log(ratios), ratios[..., -1])
    with np.errstate(divide="ignore"):
        return np.where(direct > _TINY, np.log(direct), series)


def log_ncx2_cdf(x: float, df: float, nc: float) -> float:
    """``log P(Q <= x)`` for ``Q ~`` noncentral chi-square(df, nc); finite where scipy's underflows.

    Uses ``scipy.stats.ncx2``'s value when it is representable; otherwise the Poisson mixture
    ``sum_j Pois(j; nc/2) P(df/2 + j, x/2)`` in log space, with the terms beyond ``J`` bounded by
    ``Pois(> J) P(df/2 + J + 1, x/2)`` (P decreases in its first argument): an upper bound.
    """
    if x <= 0:
        return -math.inf
    if nc <= 0:
        return float(_log_gammainc_lower(np.array(df / 2), x / 2))
    direct = float(ncx2.logcdf(x, df, nc))
    if direct > math.log(_TINY):
        return direct
    lam = nc / 2
    top = int(lam + 30 * math.sqrt(lam) + 100)
    j = np.arange(top + 1)
    log_pois = j * math.log(lam) - lam - gammaln(j + 1)
    head = log_pois + _log_gammainc_lower(df / 2 + j, x / 2)
    tail = poisson.logsf(top, lam) + _log_gammainc_lower(np.array(df / 2 + top + 1), x / 2)
    return float(logsumexp(np.append(head, tail)))


def log_cone_mass(d: int, theta: float) -> float:
    """``log P(angle(z, u) <= theta)`` for ``z ~ N(0, s^2 I_d)``: ``0.5 I_{sin^2 theta}((d-1)/2, 1/2)``.

    In d = 2 this is ``theta / pi``; in d = 1 the cone is a half-line (mass 1/2). Where betainc
    underflows, DLMF 8.17.8 is used in log space:
    ``I_x(a, b) = x^a (1-x)^b / (a B(a, b)) F(a + b, 1; a + 1; x)`` (series ratios ``< x``).
    """
    if d == 1:
        return math.log(0.5)
    a, b, x = (d - 1) / 2, 0.5, math.sin(theta) ** 2
    direct = float(betainc(a, b, x))
    if direct > _TINY:
        return math.log(0.5 * direct)
    n = np.arange(2048)
    ratios = (a + b + n) / (a + 1 + n) * x
    log_f = _log1p_series(np.log(ratios), np.array(x))
    return float(math.log(0.5) + a * math.log(x) + b * math.log1p(-x) - math.log(a) - betaln(a, b) + log_f)


def _isotropic_gaussian(target: Any) -> Optional[tuple[Tensor, float]]:
    """``(mean float64 [d], s)`` when ``target`` is ``N(mean, s^2 I)``, else None."""
    if not isinstance(target, GaussianTarget):
        return None
    std = target.std.detach().double().cpu()
    if not bool((std == std[0]).all()):
        return None
    return target.mean.detach().double().cpu(), float(std[0])


class BallTrap:
    """Ball trap of Cao, Chen, Sridharan, Wu (2026), Theorem 1.

    ``s_hat(x) = phi(||x - c|| / R) (-(x - c)) + (1 - phi(||x - c|| / R)) score(x, 0)``: the score
    of ``N(c, I)`` in the ball ``||x - c|| <= R``, the target's score outside ``2R``. For
    ``N(mu, I)`` and ``c = 0`` it is the paper's ``-x + (1 - phi(||x|| / R)) mu``.

    Parameters
    ----------
    target : Target
    data : TrainingData or None
        Unused.
    radius : float
        ``R = radius * sqrt(d)`` (default 1).
    center : float or list of float
        ``c``; a scalar ``a`` means ``a * ones(d)`` (default 0).

    Notes
    -----
    Perturbed at ``t = 0`` only; ``__call__(x, t != 0)`` is ``target.score(x, t)``.
    """

    def __init__(self, target: Target, data: Optional[TrainingData] = None, radius: float = 1.0,
                 center: Any = 0.0) -> None:
        self.target = target
        self.dim = target.dim
        self.radius = positive_float("radius", radius) * math.sqrt(self.dim)
        self.center = vector("center", center, self.dim)

    def __call__(self, x: Tensor, t: float) -> Tensor:
        if t != 0:
            return self.target.score(x, t)
        y = x - self.center.to(x)
        w = smooth_step(y.norm(dim=-1, keepdim=True) / self.radius)
        return w * (-y) + (1 - w) * self.target.score(x, 0.0)

    def region(self, x: Tensor) -> Tensor:
        """Witness set ``||x - c|| <= 2R`` (bool [n]), the only place the estimate is wrong."""
        return (x - self.center.to(x)).norm(dim=-1) <= 2 * self.radius

    def _ball_log_mass(self, target: Any) -> Optional[float]:
        iso = _isotropic_gaussian(target)
        if iso is None:
            return None
        mean, s = iso
        nc = float(((mean - self.center) ** 2).sum()) / s**2
        return log_ncx2_cdf(4 * self.radius**2 / s**2, self.dim, nc)

    def region_log_mass(self, target: Target) -> Optional[float]:
        """``log pi(||x - c|| <= 2R)`` for ``pi = N(mu, s^2 I)``: ``||x - c||^2 / s^2`` is
        noncentral chi-square(d, ||mu - c||^2 / s^2). None for other targets."""
        return self._ball_log_mass(target)

    def error_log_bound(self, target: Target) -> Optional[float]:
        """Log of an upper bound on ``E_pi ||s_hat(x, 0) - score(x, 0)||^2`` for ``pi = N(mu, s^2 I)``.

        The error ``phi (-(x - c) + (x - mu) / s^2)`` vanishes outside the ball ``||x - c|| <= 2R``;
        inside, with ``y = x - c``, it is ``phi ((1/s^2 - 1) y + (c - mu) / s^2)`` whose norm is at
        most ``|1/s^2 - 1| 2R + ||c - mu|| / s^2`` (triangle inequality, ``0 <= phi <= 1``). So the
        error is at most that squared times ``pi(ball)``. None for other targets.
        """
        log_mass = self._ball_log_mass(target)
        if log_mass is None:
            return None
        mean, s = _isotropic_gaussian(target)
        sup = abs(1 / s**2 - 1) * 2 * self.radius + float((self.center - mean).norm()) / s**2
        return -math.inf if sup == 0 else 2 * math.log(sup) + log_mass

    def diagnostics(self) -> dict[str, float]:
        return {}


class MemorizedScore:
    """Memorized score of Cao, Chen, Sridharan, Wu (2026), Theorem 7: a stiff well per training point.

    With ``x_i`` the training point nearest to ``x`` and ``r = radius * sqrt(d)``:
    ``s_hat(x) = phi(||x - x_i|| / r) (-lam (x - x_i)) + (1 - phi(||x - x_i|| / r)) score(x, 0)``.
    The paper's outside field is ``-x``, the score of its target ``N(0, I)``; using the target's
    own score generalizes it to any target.

    Parameters
    ----------
    target : Target
    data : TrainingData
        ``data.distinct`` are the well centers (a float64 copy is kept).
    lam : float
        Stiffness (default 32; ULA is stable for ``h lam < 2``).
    radius : float
        ``r = radius * sqrt(d)`` (default 0.25, the paper's ``sqrt(d) / 4``).

    Notes
    -----
    Perturbed at ``t = 0`` only. ``general_position`` records the paper's condition
    ``sqrt(d)/2 <= ||x_i|| <= 2 sqrt(d)``, ``||x_i - x_j|| >= sqrt(d)``; the wells are disjoint
    when ``4 r <= min_{i != j} ||x_i - x_j||`` (``wells_disjoint``).
    """

    def __init__(self, target: Target, data: Optional[TrainingData], lam: float = 32.0,
                 radius: float = 0.25) -> None:
        self.target = target
        self.dim = d = target.dim
        self.lam = positive_float("lam", lam)
        self.radius = positive_float("radius", radius) * math.sqrt(d)
        points = getattr(data, "distinct", None)
        if not isinstance(points, Tensor) or points.ndim != 2 or points.shape[1] != d or len(points) == 0:
            raise ValueError(f"parameter 'data' must hold the training points (data.distinct: a non-empty "
                             f"[n, {d}] tensor) for the 'memorized' score, got {type(data).__name__}")
        self.centers = points.detach().to(torch.float64).clone()
        self._cache: dict[tuple[torch.dtype, torch.device], tuple[Tensor, Tensor]] = {}
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

    def _centers_like(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Centers and their squared norms in the dtype/device of ``x`` (cached: Langevin calls often)."""
        key = (x.dtype, x.device)
        if key not in self._cache:
            c = self.centers.to(x)
            self._cache[key] = (c, (c * c).sum(-1))
        return self._cache[key]

    def offset(self, x: Tensor) -> Tensor:
        """``x - x_i`` for the nearest training point ``x_i`` ([n, d]), found by one matmul."""
        c, c2 = self._centers_like(x)
        d2 = ((x * x).sum(-1, keepdim=True) + c2 - 2 * x @ c.T).clamp_min(0)
        return x - c[d2.argmin(dim=-1)]

    def __call__(self, x: Tensor, t: float) -> Tensor:
        if t != 0:
            return self.target.score(x, t)
        y = self.offset(x)
        w = smooth_step(y.norm(dim=-1, keepdim=True) / self.radius)
        return w * (-self.lam * y) + (1 - w) * self.target.score(x, 0.0)

    def region(self, x: Tensor) -> Tensor:
        """Witness set: union of the open balls ``||x - x_i|| < 2r`` (bool [n])."""
        return self.offset(x).norm(dim=-1) < 2 * self.radius

    def region_log_mass(self, target: Target) -> Optional[float]:
        return None

    def error_log_bound(self, target: Target) -> Optional[float]:
        return None

    def diagnostics(self) -> dict[str, float]:
        return {"general_position": float(self.general_position), "n_wells": float(len(self.centers)),
                "min_separation_over_sqrt_d": self.min_separation / math.sqrt(self.dim),
                "wells_disjoint": float(self.wells_disjoint)}


class ConeTrap:
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

    Notes
    -----
    Perturbed at ``t = 0`` only.
    """

    def __init__(self, target: Target, data: Optional[TrainingData] = None, half_angle: float = 0.3,
                 axis: Optional[list[float]] = None, drift: float = 1.0) -> None:
        self.target = target
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

    def __call__(self, x: Tensor, t: float) -> Tensor:
        if t != 0:
            return self.target.score(x, t)
        inside = self.region(x)[:, None]
        return torch.where(inside, self.drift * self.axis.to(x), self.target.score(x, 0.0))

    def region_log_mass(self, target: Target) -> Optional[float]:
        """``log pi(K)`` for ``pi = N(0, s^2 I)`` (the direction is uniform on the sphere); else None."""
        iso = _isotropic_gaussian(target)
        if iso is None or bool((iso[0] != 0).any()):
            return None
        return log_cone_mass(self.dim, self.half_angle)

    def error_log_bound(self, target: Target) -> Optional[float]:
        return None

    def diagnostics(self) -> dict[str, float]:
        return {}


class NoisyScore:
    """Benign control: ``s_hat(x, t) = score(x, t) + eps F(x)`` with a smooth random Fourier field F.

    ``F(x) = kappa sqrt(2/m) sum_j a_j cos(<w_j, x> + b_j)``, ``w_j ~ N(0, I / bandwidth^2)``,
    ``b_j ~ U[0, 2 pi)``, ``a_j ~ N(0, I_d)`` drawn from ``Generator().manual_seed(seed)``; ``kappa``
    makes ``E_pi ||F||^2 = 1`` on 20000 target draws (generator seed ``seed + 1``), so the
    L2(pi) error is ``eps`` up to ~1% Monte Carlo error. Unlike the traps of Cao, Chen,
    Sridharan, Wu (2026) it is perturbed at every t: bounded and Lipschitz, it traps nothing.

    Parameters
    ----------
    target : Target
    data : TrainingData or None
        Unused.
    eps : float
        L2(pi) size of the perturbation, >= 0 (default 0.1).
    n_features, bandwidth, seed
        ``m`` (default 64), the length scale of F (default 1) and the seed (default 0).
    """

    def __init__(self, target: Target, data: Optional[TrainingData] = None, eps: float = 0.1,
                 n_features: int = 64, bandwidth: float = 1.0, seed: int = 0) -> None:
        self.target = target
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

    def __call__(self, x: Tensor, t: float) -> Tensor:
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
        return {}


@hookimpl
def register_scores(register):
    register("ball_trap", BallTrap, description="Theorem 1: score of N(c, I) in a ball, exact outside 2R")
    register("memorized", MemorizedScore, description="Theorem 7: stiff wells around the training points")
    register("cone_trap", ConeTrap, description="Theorem 11: constant drift u inside a thin cone, exact outside")
    register("noisy", NoisyScore, description="exact score + eps * smooth random Fourier field (benign control)")
