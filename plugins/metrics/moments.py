"""Metrics comparing produced samples with the target."""
from __future__ import annotations

import torch
from torch import Tensor

from bench_core import MetricContext, SkipMetric, hookimpl

from .float64_blocks import mean64, scatter64


def gaussian_fit_kl(samples: Tensor, mean: Tensor, cov: Tensor) -> float:
    """KL( N(mu_hat, Sigma_hat) || N(mean, cov) ), in float64.

    ``Sigma_hat`` is the unbiased (1/(n-1)) sample covariance. When the samples are exactly
    N(mean, cov), E[KL] = d(d+3)/(4n) + O(d^3/n^2): this finite-sample bias is part of
    every reported value.
    """
    n, d = samples.shape
    if n <= d:
        raise SkipMetric(f"gaussian_kl needs more particles than dimensions (n={n}, d={d})")
    mean = mean.to(device=samples.device, dtype=torch.float64)
    cov = cov.to(device=samples.device, dtype=torch.float64)
    mu_hat = mean64(samples)
    sigma_hat = scatter64(samples, mu_hat) / (n - 1)
    chol = torch.linalg.cholesky(cov)
    solved = torch.cholesky_solve(sigma_hat, chol)
    diff = (mean - mu_hat).unsqueeze(1)
    quad = (diff * torch.cholesky_solve(diff, chol)).sum()
    logdet_cov = 2.0 * torch.log(torch.diagonal(chol)).sum()
    sign, logdet_hat = torch.linalg.slogdet(sigma_hat)
    if sign <= 0:
        return float("inf")  # degenerate fit (collapsed particles): infinitely far from the target
    kl = 0.5 * (torch.trace(solved) + quad - d + logdet_cov - logdet_hat)
    return float(kl)


class GaussianKL:
    """KL of the full-covariance Gaussian fit of the samples to a Gaussian target."""

    #: needs the target's mean and covariance: on a data set, `bench check` names this instead
    closed_form_only = "frechet (Gaussian fits of the samples and of held-out data)"

    higher_is_better = False
    keys = ()  # returned by __call__ (checked by bench check)

    def __call__(self, samples: Tensor, ctx: MetricContext) -> float:
        cov = getattr(ctx.target, "cov", None)
        mean = getattr(ctx.target, "mean", None)
        if cov is None or mean is None:
            raise SkipMetric(f"gaussian_kl applies to Gaussian targets only ({type(ctx.target).__name__} "
                             "has no 'mean' and 'cov')")
        return gaussian_fit_kl(samples, mean, cov)


class MeanError:
    """Euclidean norm of (sample mean - target mean); the target mean is estimated from the
    reference sample when the target does not expose ``mean``."""

    higher_is_better = False
    keys = ()  # returned by __call__ (checked by bench check)

    def __call__(self, samples: Tensor, ctx: MetricContext) -> float:
        mean = getattr(ctx.target, "mean", None)
        mean = mean64(ctx.reference) if mean is None else mean.to(device=samples.device, dtype=torch.float64)
        return float((mean64(samples) - mean).norm())


@hookimpl
def register_metrics(register):
    register("mean_error", MeanError, description="||sample mean - target mean||")
    register("gaussian_kl", GaussianKL,
             description="KL of the Gaussian fit of the samples to a Gaussian target (float64)")
