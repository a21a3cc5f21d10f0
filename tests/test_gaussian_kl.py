"""gaussian_fit_kl / GaussianKL: exact value, exact expectation (finite-sample bias), edge cases.

gaussian_fit_kl(samples, m, S) = KL( N(mu_hat, Sigma_hat) || N(m, S) ) with mu_hat the sample
mean and Sigma_hat the unbiased (1/(n-1)) sample covariance.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from bench_core.base.errors import SkipMetric
from bench_core.components.protocols import MetricContext, TrainingData
from bench_plugins.metrics.moments import GaussianKL, gaussian_fit_kl
from bench_plugins.samplers.langevin import ULA
from bench_plugins.scores.exact import ExactScore
from bench_plugins.targets.gaussian import GaussianTarget

F64 = torch.float64


def random_spd(d: int, seed: int) -> torch.Tensor:
    """A random, non-diagonal, well-conditioned covariance."""
    a = torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=F64)
    return a @ a.T / d + 0.5 * torch.eye(d, dtype=F64)


def closed_form_kl(m1: torch.Tensor, s1: torch.Tensor, m2: torch.Tensor, s2: torch.Tensor) -> float:
    """KL(N(m1,S1) || N(m2,S2))
    = 1/2 [tr(S2^-1 S1) + (m2-m1)^T S2^-1 (m2-m1) - d + log det S2 - log det S1]."""
    d = m1.shape[0]
    diff = m2 - m1
    trace = torch.trace(torch.linalg.solve(s2, s1))
    quad = diff @ torch.linalg.solve(s2, diff)
    logdet = torch.linalg.slogdet(s2).logabsdet - torch.linalg.slogdet(s1).logabsdet
    return float(0.5 * (trace + quad - d + logdet))


def samples_with_moments(mean: torch.Tensor, cov: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """n rows whose sample mean is exactly ``mean`` and unbiased covariance exactly ``cov``.

    Center a random matrix, whiten it by the Cholesky factor of its own unbiased covariance
    (so its covariance is I), then color it with chol(cov) and shift it by ``mean``.
    """
    z = torch.randn(n, mean.shape[0], generator=torch.Generator().manual_seed(seed), dtype=F64)
    z = z - z.mean(0)
    white = torch.linalg.solve_triangular(torch.linalg.cholesky(z.T @ z / (n - 1)), z.T, upper=False).T
    return mean + white @ torch.linalg.cholesky(cov).T


def expected_fit_kl(m_true: torch.Tensor, s_true: torch.Tensor, m: torch.Tensor, s: torch.Tensor,
                    n: int) -> float:
    """E[gaussian_fit_kl] when the n samples are i.i.d. N(m_true, S_true) (S' = S_true).

    mu_hat ~ N(m', S'/n) and (n-1) Sigma_hat ~ Wishart_d(S', n-1), independent. Term by term:
      E tr(S^-1 Sigma_hat)      = tr(S^-1 S')                          (unbiased covariance)
      E (m-mu_hat)^T S^-1 (.)   = (m-m')^T S^-1 (m-m') + tr(S^-1 S')/n
      E log det Sigma_hat       = log det S' + d log(2/(n-1)) + sum_{i=1}^d digamma((n-i)/2)
                                  (E log det W_d(V, nu) = log det V + d log 2
                                   + sum_{i=1}^d digamma((nu-i+1)/2), nu = n-1)
    so E[KL_hat] = KL(N(m',S') || N(m,S)) + tr(S^-1 S')/(2n)
                   - 1/2 (sum_{i=1}^d digamma((n-i)/2) + d log(2/(n-1))).
    """
    d = m.shape[0]
    i = torch.arange(1, d + 1, dtype=F64)
    digammas = torch.special.digamma((n - i) / 2).sum()
    trace = torch.trace(torch.linalg.solve(s, s_true))
    return (closed_form_kl(m_true, s_true, m, s) + float(trace) / (2 * n)
            - 0.5 * float(digammas + d * math.log(2 / (n - 1))))


# ---------------------------------------------------------------- exact value

@pytest.mark.parametrize("d, n", [(2, 10), (5, 40), (10, 200)])
def test_equals_closed_form_kl_when_sample_moments_are_exact(d, n):
    m_fit, s_fit = torch.linspace(-1, 2, d, dtype=F64), random_spd(d, seed=d)
    m_ref, s_ref = torch.full((d,), 0.3, dtype=F64), random_spd(d, seed=100 + d)
    x = samples_with_moments(m_fit, s_fit, n, seed=d)
    torch.testing.assert_close(x.mean(0), m_fit, rtol=0, atol=1e-12)  # the construction is exact
    torch.testing.assert_close(torch.cov(x.T), s_fit, rtol=0, atol=1e-12)
    expected = closed_form_kl(m_fit, s_fit, m_ref, s_ref)
    assert expected > 0.1
    assert gaussian_fit_kl(x, m_ref, s_ref) == pytest.approx(expected, rel=1e-10)
    # a third, independent implementation
    mvn = torch.distributions.MultivariateNormal
    torch_kl = torch.distributions.kl_divergence(mvn(m_fit, s_fit), mvn(m_ref, s_ref))
    assert gaussian_fit_kl(x, m_ref, s_ref) == pytest.approx(float(torch_kl), rel=1e-10)


def test_zero_when_sample_moments_equal_the_target():
    d, n = 4, 50
    m, s = torch.ones(d, dtype=F64), random_spd(d, seed=7)
    assert abs(gaussian_fit_kl(samples_with_moments(m, s, n, seed=1), m, s)) < 1e-12


# ---------------------------------------------------------------- exact expectation

R, N, D = 200, 400, 10


def replicate_fit_kl(m_true, s_true, m, s, seed):
    gen = torch.Generator().manual_seed(seed)
    chol = torch.linalg.cholesky(s_true)
    values = []
    for _ in range(R):
        x = m_true + torch.randn(N, D, generator=gen, dtype=F64) @ chol.T
        values.append(gaussian_fit_kl(x, m, s))
    return torch.tensor(values, dtype=F64)


@pytest.mark.parametrize("case", ["target", "shifted_scaled"])
def test_average_over_replicates_matches_the_exact_expectation(case):
    """The mean of R = 200 replicates is within 5 standard errors (empirical sd / sqrt(R)) of
    the exact E[KL_hat]. (The replicates are i.i.d., so by the CLT the replicate mean is
    ~ Normal with that standard error; 5 se is a 5.7e-7 two-sided false-alarm level.)"""
    m, s = torch.linspace(-1, 1, D, dtype=F64), random_spd(D, seed=1)
    if case == "target":
        m_true, s_true = m, s
    else:
        m_true, s_true = m + 0.2, 1.3 * s + 0.1 * torch.eye(D, dtype=F64)
    values = replicate_fit_kl(m_true, s_true, m, s, seed=42)
    exact = expected_fit_kl(m_true, s_true, m, s, N)
    se = values.std().item() / math.sqrt(R)
    assert abs(values.mean().item() - exact) < 5 * se, (
        f"replicate mean {values.mean().item():.5f} vs exact {exact:.5f} (se {se:.2e})")
    if case == "shifted_scaled":
        # the bias is not negligible here: the fit's mean differs from the population KL
        assert expected_fit_kl(m_true, s_true, m, s, N) - closed_form_kl(m_true, s_true, m, s) > 0.05


def test_bias_for_samples_from_the_target_is_close_to_d_d_plus_3_over_4n():
    """E[KL_hat] = d(d+3)/(4n) + O(d^3/n^2) for samples of the target (asymptotics of digamma)."""
    m, s = torch.zeros(D, dtype=F64), random_spd(D, seed=3)
    exact = expected_fit_kl(m, s, m, s, N)
    approx = D * (D + 3) / (4 * N)
    assert abs(exact - approx) < 0.05 * approx
    # Table 1 of the paper: d = 50, n = 5000 gives the quoted +0.13..0.14 bias
    m50 = torch.zeros(50, dtype=F64)
    eye = torch.eye(50, dtype=F64)
    assert expected_fit_kl(m50, eye, m50, eye, 5000) == pytest.approx(0.1325, rel=0.05)


# ---------------------------------------------------------------- the metric and edge cases

def make_ctx(target) -> MetricContext:
    gen = torch.Generator().manual_seed(0)
    dim = target.dim
    train = torch.randn(20, dim, generator=gen, dtype=F64)
    data = TrainingData(train, train, 1)
    return MetricContext(target=target, reference=torch.randn(20, dim, generator=gen, dtype=F64),
                         score=ExactScore(target, data), data=data, sampler=ULA(), generator=gen)


def test_metric_matches_the_function_on_a_gaussian_target():
    target = GaussianTarget(3, mean=[1.0, 2.0, 3.0], std=[1.0, 0.5, 2.0])
    x = torch.randn(500, 3, generator=torch.Generator().manual_seed(0), dtype=F64) * 1.2 + 1.5
    metric = GaussianKL()
    assert metric.higher_is_better is False
    assert metric(x, make_ctx(target)) == gaussian_fit_kl(x, target.mean, target.cov)


def test_metric_skips_targets_without_mean_and_cov():
    target = SimpleNamespace(dim=2, sample=None, log_prob=None, score=lambda x, t=0.0: -x)
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(0))
    with pytest.raises(SkipMetric, match="gaussian_kl"):
        GaussianKL()(x, make_ctx(target))


def test_too_few_particles_skip():
    with pytest.raises(SkipMetric, match="more particles than dimensions"):
        gaussian_fit_kl(torch.randn(3, 3), torch.zeros(3), torch.eye(3))


def test_collapsed_samples_give_infinity():
    d = 3
    m, s = torch.zeros(d, dtype=F64), torch.eye(d, dtype=F64)
    identical = torch.ones(100, d, dtype=F64)
    assert gaussian_fit_kl(identical, m, s) == math.inf
    line = torch.randn(100, 1, generator=torch.Generator().manual_seed(0), dtype=F64).repeat(1, d)
    assert gaussian_fit_kl(line, m, s) == math.inf  # all particles on a line: singular fit


def test_float32_samples_give_the_float64_value():
    """The function fits in float64; float32 samples differ only by their rounding (~6e-8 rel)."""
    target = GaussianTarget(5, mean=1.0, std=2.0)
    for shift in (0.0, 0.5):
        x64 = (target.sample(2000, torch.Generator().manual_seed(3)).to(F64) * 0.9 + shift)
        v64 = gaussian_fit_kl(x64, target.mean, target.cov)
        v32 = gaussian_fit_kl(x64.to(torch.float32), target.mean, target.cov)
        assert v32 == pytest.approx(v64, rel=1e-4)
        v32_metric = GaussianKL()(x64.to(torch.float32), make_ctx(target))
        assert v32_metric == pytest.approx(v64, rel=1e-4)
