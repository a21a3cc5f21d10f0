"""ULA with the exact score on an isotropic Gaussian target: closed-form law after K steps.

Target N(m, s^2 I) with m = a * 1; exact score s(x) = (m - x) / s^2. One ULA step,
x_{k+1} = x_k + h s(x_k) + sqrt(2h) xi_k, is the linear recursion

    x_{k+1} - m = c (x_k - m) + sqrt(2h) xi_k,        c = 1 - h / s^2,

so each coordinate stays Gaussian and independent of the others, with

    mean:      mu_K = m + c^K (mu_0 - m)
    variance:  v_{k+1} = c^2 v_k + 2h   =>   v_K = c^{2K} v_0 + 2h (1 - c^{2K}) / (1 - c^2).

The stationary variance (K -> infinity, |c| < 1) is 2h / (1 - c^2) = s^2 / (1 - h / (2 s^2)),
slightly above s^2: the discretization bias of ULA.
"""
from __future__ import annotations

import math

import pytest
import torch

from bench_plugins.samplers.langevin import ULA, ula
from bench_plugins.scores.exact import ExactScore
from bench_plugins.targets.gaussian import GaussianTarget



def ula_law(mu0: float, v0: float, m: float, s: float, h: float, k: int) -> tuple[float, float]:
    """Per-coordinate mean and variance of ULA after k steps (formulas in the module docstring)."""
    c = 1.0 - h / s**2
    mean = m + c**k * (mu0 - m)
    var = c ** (2 * k) * v0 + 2 * h * (1 - c ** (2 * k)) / (1 - c**2)
    return mean, var


def gaussian_kl_isotropic(mu: float, v: float, m: float, s: float, d: int) -> float:
    """KL( N(mu 1, v I_d) || N(m 1, s^2 I_d) ) = d/2 (v/s^2 - 1 - log(v/s^2)) + d (mu-m)^2 / (2 s^2)."""
    r = v / s**2
    return 0.5 * d * (r - 1 - math.log(r)) + 0.5 * d * (mu - m) ** 2 / s**2


def test_closed_form_agrees_with_the_recursion_and_its_fixed_point():
    m, s, h, k = 2.0, 1.5, 0.01, 300
    mu, v = 0.0, 1.0
    c = 1 - h / s**2
    for _ in range(k):
        mu, v = m + c * (mu - m), c**2 * v + 2 * h
    mean, var = ula_law(0.0, 1.0, m, s, h, k)
    assert mean == pytest.approx(mu, rel=1e-13) and var == pytest.approx(v, rel=1e-13)
    _, v_inf = ula_law(0.0, 1.0, m, s, h, 100_000)
    assert v_inf == pytest.approx(s**2 / (1 - h / (2 * s**2)), rel=1e-12)


def test_ula_with_exact_score_matches_its_closed_form_law(float64):
    """Monte Carlo check of the law after K steps, d = 5, n = 20000 chains.

    Mean: each coordinate's sample mean is N(mu_K, v_K / n), sigma = sqrt(v_K / n). We bound the
    max over the d coordinates of |mean_j - mu_K| / sigma by 5. Bonferroni: the coordinates are
    independent, and P(max_j |Z_j| > 5) <= d * P(|Z| > 5) = 5 * 5.7e-7 = 2.9e-6, so the max
    threshold keeps the family-wise false-alarm rate of a single 5-sigma test times d.

    Variance: the pooled variance is the average over d coordinates of the unbiased sample
    variances; each has standard deviation v_K sqrt(2 / (n - 1)) (Gaussian), and the d are
    independent, so se = v_K sqrt(2 / ((n - 1) d)) ~ v_K sqrt(2 / (n d)). Bound: 5 se.
    """
    d, n, a, s, h, k = 5, 20_000, 2.0, 1.5, 0.01, 300
    target = GaussianTarget(d, mean=a, std=s)
    score = ExactScore(target, None)
    x0 = torch.randn(n, d, generator=torch.Generator().manual_seed(0))
    x = ULA(step_size=h, n_steps=k).sample(score, x0, generator=torch.Generator().manual_seed(1))

    # x0 ~ N(0, I): mu_0 = 0, v_0 = 1 (the population law, so the randomness of x0 is counted too)
    mean_k, var_k = ula_law(0.0, 1.0, a, s, h, k)
    assert abs(mean_k - a) > 0.5  # the law after K steps is still far from the target: a real test

    sigma = math.sqrt(var_k / n)
    worst = ((x.mean(0) - mean_k).abs() / sigma).max().item()
    assert worst < 5, f"a coordinate's sample mean is {worst:.2f} sigma from {mean_k:.4f}"

    pooled = x.var(0).mean().item()
    se = var_k * math.sqrt(2 / (n * d))
    assert abs(pooled - var_k) < 5 * se, f"pooled variance {pooled:.5f} vs {var_k:.5f} (se {se:.2e})"


def test_table1_true_score_kl_coefficient_from_the_closed_form():
    """Paper Table 1 setting: d = 50, h = 0.0025, K = 1000, s = 1, start N(0, I), m = a * 1.

    The KL of the law of ULA to the target is d/2 c^{2K} a^2 + d/2 (v_K - 1 - log v_K): exactly
    quadratic in a, with a^2 coefficient 25 (1 - h)^2000 = 0.1674 and a tiny constant.
    """
    d, h, k, s = 50, 0.0025, 1000, 1.0
    assert (1 - h) ** k == pytest.approx(0.0818, abs=5e-5)

    def kl(a: float) -> float:
        mean, var = ula_law(0.0, 1.0, a, s, h, k)
        return gaussian_kl_isotropic(mean, var, a, s, d)

    const = kl(0.0)
    coef = kl(1.0) - const
    assert round(coef, 4) == 0.1674
    assert 0 < const < 1e-4  # variance mismatch: v_K = 1.00124, d/2 (v - 1 - log v) = 1.9e-5
    for a in range(1, 8):
        assert kl(float(a)) == pytest.approx(const + coef * a**2, rel=1e-12)
    # with n = 5000 particles the Gaussian-fit KL adds its finite-sample bias d(d+3)/(4n) = 0.1325
    assert d * (d + 3) / (4 * 5000) == pytest.approx(0.1325)


def test_callback_sees_every_step_with_time_k_h():
    h, k = 0.05, 40
    target = GaussianTarget(2, mean=1.0)
    x0 = torch.randn(8, 2, generator=torch.Generator().manual_seed(0))
    calls = []

    def callback(step, t, x):
        calls.append((step, t, x.clone()))

    sampler = ULA(step_size=h, n_steps=k)
    out = sampler.sample(ExactScore(target, None), x0, generator=torch.Generator().manual_seed(1),
                         callback=callback)
    assert [c[0] for c in calls] == list(range(1, k + 1))
    assert all(type(step) is int and isinstance(t, float) for step, t, _ in calls)
    for step, t, x in calls:
        assert t == pytest.approx(step * h, rel=1e-12, abs=0)
        assert x.shape == x0.shape
    assert torch.equal(calls[-1][2], out)
    assert not torch.equal(calls[0][2], calls[1][2])  # the state moves between steps


def test_callback_state_is_the_state_after_each_step():
    """Replaying the steps with the same noise stream reproduces what the callback saw."""
    h, k = 0.1, 5
    target = GaussianTarget(3, mean=-1.0, std=2.0)
    score = ExactScore(target, None)
    x0 = torch.randn(4, 3, generator=torch.Generator().manual_seed(2))
    seen = []
    ula(score, x0, step_size=h, n_steps=k, generator=torch.Generator().manual_seed(3),
        callback=lambda step, t, x: seen.append(x.clone()))
    gen, x = torch.Generator().manual_seed(3), x0.clone()
    for j in range(k):
        noise = torch.empty_like(x).normal_(generator=gen)
        x = x + h * target.score(x, 0.0) + math.sqrt(2 * h) * noise
        torch.testing.assert_close(seen[j], x, rtol=1e-6, atol=1e-6)


def test_input_is_not_modified_and_same_seed_is_bitwise_identical():
    target = GaussianTarget(3, mean=2.0, std=0.5)
    score = ExactScore(target, None)
    sampler = ULA(step_size=0.01, n_steps=50)
    x0 = torch.randn(100, 3, generator=torch.Generator().manual_seed(0))
    x0_copy = x0.clone()
    a = sampler.sample(score, x0, generator=torch.Generator().manual_seed(5))
    assert torch.equal(x0, x0_copy)
    b = sampler.sample(score, x0, generator=torch.Generator().manual_seed(5))
    c = sampler.sample(score, x0, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.dtype == x0.dtype and a.shape == x0.shape


@pytest.mark.parametrize("kwargs, name", [
    (dict(step_size=0.0), "step_size"), (dict(step_size=-1.0), "step_size"),
    (dict(step_size=True), "step_size"), (dict(n_steps=0), "n_steps"), (dict(n_steps=2.5), "n_steps"),
])
def test_invalid_parameters_name_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=f"'{name}'"):
        ULA(**kwargs)
