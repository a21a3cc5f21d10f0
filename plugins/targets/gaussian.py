"""Target distributions with exact samples, densities and scores of their OU marginals.

Forward process (docs/architecture.md, Time and seeds): ``x_t = e^{-t} x_0 + sqrt(1 - e^{-2t}) z``.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import torch
from torch import Tensor

from bench_core import hookimpl, tensor_size, vector


class GaussianTarget:
    """``N(m, diag(s^2))``; its OU marginal ``p_t`` is ``N(e^{-t} m, e^{-2t} s^2 + 1 - e^{-2t})``.

    Parameters
    ----------
    dim : int
        Dimension d.
    mean : float or list of float
        A scalar ``a`` means ``a * ones(d)``.
    std : float or list of float
        Per-coordinate standard deviation (scalar: isotropic).
    """

    def __init__(self, dim: int, mean: Any = 0.0, std: Any = 1.0) -> None:
        self.dim = tensor_size("dim", dim, per_unit=2, what="the mean and std vectors")
        self.mean = vector("mean", mean, self.dim)
        self.std = vector("std", std, self.dim, positive=True)
        self._score_cache: tuple[Any, Any] = (None, None)

    @property
    def cov(self) -> Tensor:
        """The covariance ``diag(std^2)`` ([d, d] float64), made when asked for: a d x d matrix would make
        building a high-dimensional target cost d^2 memory."""
        return torch.diag(self.std**2)

    def __repr__(self) -> str:
        return f"GaussianTarget(dim={self.dim}, |mean|={self.mean.norm():.4g})"

    def marginal(self, t: float = 0.0) -> tuple[Tensor, Tensor]:
        """Mean and per-coordinate variance of ``p_t`` (float64)."""
        decay = math.exp(-t)
        return decay * self.mean, decay**2 * self.std**2 + (1.0 - decay**2)

    def mixture_components(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(weights [1], means [1, d], variances [1, d])`` (float64): the target as a one-component
        mixture of diagonal Gaussians, the form the CLD marginals are computed from."""
        return torch.ones(1, dtype=torch.float64), self.mean[None].clone(), (self.std**2)[None].clone()

    def chen_constants(self) -> dict[str, float]:
        """The target-dependent quantities of the DDPM bound of Chen et al. (2023, Thm. 2).

        ``L``: Lipschitz constant of every ``grad log p_t``; p_t has per-coordinate variance
        ``v_t = e^{-2t} s^2 + 1 - e^{-2t}``, between ``s^2`` and 1, so ``L = max_i max(1, 1/s_i^2)``.
        ``m2 = sqrt(E||x||^2) = sqrt(||m||^2 + sum s_i^2)``.
        ``kl = KL(N(m, diag s^2) || N(0, I)) = 0.5 sum (s_i^2 + m_i^2 - 1 - log s_i^2)``.
        """
        var = self.std**2
        return {"L": float(torch.clamp(1 / var, min=1.0).max()),
                "m2": math.sqrt(float((self.mean**2).sum() + var.sum())),
                "kl": 0.5 * float((var + self.mean**2 - 1 - var.log()).sum())}

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        z = torch.randn(n, self.dim, generator=generator, device=generator.device,
                        dtype=torch.get_default_dtype())
        return z * self.std.to(z) + self.mean.to(z)

    def log_prob(self, x: Tensor, t: float = 0.0) -> Tensor:
        mean, var = self.marginal(t)
        mean, var = mean.to(x), var.to(x)
        return -0.5 * (((x - mean) ** 2 / var).sum(-1) + var.log().sum() + self.dim * math.log(2 * math.pi))

    def score(self, x: Tensor, t: float = 0.0) -> Tensor:
        mean, var = self._score_constants(float(t), x.dtype, x.device)
        out = mean - x  # the one [n, d] result: no second temporary
        return out if var is None else out.div_(var)

    def _score_constants(self, t: float, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Optional[Tensor]]:
        """``p_t``'s mean and variance in ``dtype`` on ``device``; the variance is None when it is exactly 1
        (std = 1, or any std once t is large): no division by 1. Kept for the last ``(t, dtype, device)``:
        samplers query one t for every block of a step, and converting costs more than a small block's
        arithmetic."""
        key = (t, dtype, device)
        if self._score_cache[0] != key:
            mean, var = self.marginal(t)
            # tested on the CPU copy in the target dtype: no device synchronisation
            unit = bool((var.to(dtype) == 1).all())
            self._score_cache = (key, (mean.to(dtype=dtype, device=device),
                                       None if unit else var.to(dtype=dtype, device=device)))
        return self._score_cache[1]


@hookimpl
def register_targets(register):
    register("gaussian", GaussianTarget, description="N(m, diag(s^2)) with exact OU marginals")
