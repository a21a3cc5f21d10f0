"""GaussianTarget: parameters, OU-marginal density and score, exact samples.

The target is N(m, diag(s^2)); its forward Ornstein-Uhlenbeck marginal is
p_t = N(e^{-t} m, diag(e^{-2t} s^2 + 1 - e^{-2t})) (docs/architecture.md, Time and seeds).
"""
from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import MultivariateNormal

from bench_plugins.targets.gaussian import GaussianTarget

TIMES = [0.0, 0.05, 0.5, 2.0, 30.0]  # includes t = 0 (the data) and a large t (p_t ~ N(0, I))
MEAN = [1.0, -2.0, 0.5]
STD = [0.5, 1.0, 3.0]



def marginal_mvn(mean: list[float], std: list[float], t: float) -> MultivariateNormal:
    """The OU marginal written independently of the target's own code."""
    m = torch.tensor(mean, dtype=torch.float64)
    s2 = torch.tensor(std, dtype=torch.float64) ** 2
    var = math.exp(-2 * t) * s2 + 1 - math.exp(-2 * t)
    return MultivariateNormal(math.exp(-t) * m, covariance_matrix=torch.diag(var))


# ---------------------------------------------------------------- parameters

def test_scalar_mean_and_std_broadcast_to_every_coordinate():
    target = GaussianTarget(4, mean=2.5, std=1.5)
    assert target.dim == 4
    assert torch.equal(target.mean, torch.full((4,), 2.5, dtype=torch.float64))
    assert torch.equal(target.std, torch.full((4,), 1.5, dtype=torch.float64))
    assert torch.equal(target.cov, torch.diag(torch.full((4,), 2.25, dtype=torch.float64)))


def test_scalar_and_list_parameters_define_the_same_distribution():
    scalar = GaussianTarget(3, mean=2.0, std=0.5)
    listed = GaussianTarget(3, mean=[2.0, 2.0, 2.0], std=[0.5, 0.5, 0.5])
    x = torch.randn(7, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert torch.equal(scalar.log_prob(x, 0.3), listed.log_prob(x, 0.3))
    assert torch.equal(scalar.score(x, 0.3), listed.score(x, 0.3))


def test_list_parameters_are_kept_per_coordinate():
    target = GaussianTarget(3, mean=MEAN, std=STD)
    assert target.mean.tolist() == MEAN
    assert target.std.tolist() == STD
    assert torch.equal(torch.diagonal(target.cov), torch.tensor(STD, dtype=torch.float64) ** 2)


def test_defaults_are_standard_normal():
    target = GaussianTarget(2)
    assert target.mean.tolist() == [0.0, 0.0] and target.std.tolist() == [1.0, 1.0]


@pytest.mark.parametrize("kwargs, name", [
    (dict(dim=0), "dim"),
    (dict(dim=-3), "dim"),
    (dict(dim=True), "dim"),
    (dict(dim=2.0), "dim"),
    (dict(dim=3, mean=[1.0, 2.0]), "mean"),          # wrong length
    (dict(dim=3, mean=True), "mean"),
    (dict(dim=3, mean=[1.0, True, 2.0]), "mean"),
    (dict(dim=3, mean="1"), "mean"),
    (dict(dim=3, mean=float("nan")), "mean"),
    (dict(dim=3, std=[1.0, 1.0]), "std"),            # wrong length
    (dict(dim=3, std=-1.0), "std"),                  # negative
    (dict(dim=3, std=[1.0, -0.5, 1.0]), "std"),
    (dict(dim=3, std=0.0), "std"),
    (dict(dim=3, std=False), "std"),
    (dict(dim=3, std=float("inf")), "std"),
])
def test_invalid_parameters_raise_value_error_naming_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=f"'{name}'"):
        GaussianTarget(**kwargs)


# ---------------------------------------------------------------- density and score

@pytest.mark.parametrize("t", TIMES)
def test_log_prob_matches_multivariate_normal_of_the_ou_marginal(t):
    target = GaussianTarget(3, mean=MEAN, std=STD)
    x = 3.0 * torch.randn(50, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    expected = marginal_mvn(MEAN, STD, t).log_prob(x)
    torch.testing.assert_close(target.log_prob(x, t), expected, rtol=1e-12, atol=1e-12)


def test_log_prob_default_time_is_zero():
    target = GaussianTarget(3, mean=MEAN, std=STD)
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert torch.equal(target.log_prob(x), target.log_prob(x, 0.0))
    assert torch.equal(target.score(x), target.score(x, 0.0))


def test_large_time_marginal_is_standard_normal():
    target = GaussianTarget(3, mean=MEAN, std=STD)
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    standard = MultivariateNormal(torch.zeros(3, dtype=torch.float64), torch.eye(3, dtype=torch.float64))
    # |p_30 - N(0, I)| parameters differ by e^{-30} ~ 1e-13: the log densities agree to ~1e-12.
    torch.testing.assert_close(target.log_prob(x, 30.0), standard.log_prob(x), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(target.score(x, 30.0), -x, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("t", TIMES)
def test_score_is_the_gradient_of_log_prob(t):
    target = GaussianTarget(3, mean=MEAN, std=STD)
    x = 2.0 * torch.randn(20, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(target.log_prob(x, t).sum(), x)
    torch.testing.assert_close(target.score(x.detach(), t), grad, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- exact samples

def test_forward_ou_monte_carlo_matches_the_marginal(float64):
    """x_t = e^{-t} x_0 + sqrt(1 - e^{-2t}) z with x_0 exact samples has law p_t.

    For each coordinate j and time t, with v = Var_{p_t}(x_j) and n draws:
    the sample mean has standard error sqrt(v / n); the unbiased sample variance of a
    Gaussian has standard error v sqrt(2 / (n - 1)). We require both within 5 standard
    errors (two-sided Gaussian tail 5.7e-7 per comparison; 2 * 3 * 5 = 30 comparisons give
    a family-wise false-alarm probability <= 1.7e-5 by the union bound). Seeds are fixed.
    """
    n = 100_000
    target = GaussianTarget(3, mean=MEAN, std=STD)
    x0 = target.sample(n, torch.Generator().manual_seed(10))
    z = torch.randn(n, 3, generator=torch.Generator().manual_seed(11))
    mvn_means, mvn_vars = [], []
    for t in TIMES:
        xt = math.exp(-t) * x0 + math.sqrt(1 - math.exp(-2 * t)) * z
        ref = marginal_mvn(MEAN, STD, t)
        mean, var = ref.mean, torch.diagonal(ref.covariance_matrix)
        se_mean = (var / n).sqrt()
        se_var = var * math.sqrt(2 / (n - 1))
        mean_z = ((xt.mean(0) - mean) / se_mean).abs().max()
        var_z = ((xt.var(0) - var) / se_var).abs().max()
        assert mean_z < 5, f"t={t}: sample mean off by {mean_z:.2f} standard errors"
        assert var_z < 5, f"t={t}: sample variance off by {var_z:.2f} standard errors"
        mvn_means.append(mean)
        mvn_vars.append(var)
    # and the target's own marginal() agrees with the independent formula
    for t, mean, var in zip(TIMES, mvn_means, mvn_vars):
        m, v = target.marginal(t)
        torch.testing.assert_close(m, mean, rtol=1e-14, atol=1e-14)
        torch.testing.assert_close(v, var, rtol=1e-14, atol=1e-14)


def test_samples_have_independent_coordinates(float64):
    """Off-diagonal sample covariance: E = 0, sd = s_i s_j / sqrt(n); within 5 standard errors."""
    n = 50_000
    target = GaussianTarget(3, mean=MEAN, std=STD)
    x = target.sample(n, torch.Generator().manual_seed(12))
    cov = torch.cov(x.T)
    s = torch.tensor(STD)
    se = torch.outer(s, s) / math.sqrt(n)
    off = ~torch.eye(3, dtype=torch.bool)
    assert (cov[off].abs() / se[off]).max() < 5


def test_same_seed_gives_identical_samples(float64):
    target = GaussianTarget(3, mean=MEAN, std=STD)
    a = target.sample(100, torch.Generator().manual_seed(3))
    b = target.sample(100, torch.Generator().manual_seed(3))
    c = target.sample(100, torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


# ---------------------------------------------------------------- dtype and device

def test_sample_dtype_follows_the_default_dtype(float64):
    target = GaussianTarget(2, mean=1.0)
    assert target.sample(4, torch.Generator().manual_seed(0)).dtype == torch.float64
    torch.set_default_dtype(torch.float32)  # the fixture restores the previous default
    x = target.sample(4, torch.Generator().manual_seed(0))
    assert x.dtype == torch.float32 and x.shape == (4, 2) and x.device == torch.device("cpu")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("t", [0.0, 0.7])
def test_outputs_keep_the_dtype_of_the_input(dtype, t):
    target = GaussianTarget(3, mean=MEAN, std=STD)
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(0)).to(dtype)
    lp, sc = target.log_prob(x, t), target.score(x, t)
    assert lp.dtype == dtype and lp.shape == (6,)
    assert sc.dtype == dtype and sc.shape == (6, 3)
    # float64 is exact; float32 agrees up to float32 rounding (eps 1.2e-7, a few operations)
    tol = 1e-5 if dtype == torch.float32 else 0.0
    torch.testing.assert_close(lp.double(), target.log_prob(x.double(), t), rtol=tol, atol=tol)
    torch.testing.assert_close(sc.double(), target.score(x.double(), t), rtol=tol, atol=tol)


def test_outputs_follow_the_device_of_the_input():
    """The meta device stands for "not the CPU": outputs must be computed where x lives."""
    target = GaussianTarget(3, mean=MEAN, std=STD)
    devices = [torch.device("meta")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        x = torch.zeros(4, 3, device=device)
        assert target.log_prob(x, 0.5).device.type == device.type
        assert target.score(x, 0.5).device.type == device.type


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_samples_live_on_the_generator_device():
    target = GaussianTarget(3, mean=MEAN, std=STD)
    x = target.sample(10, torch.Generator(device="cuda").manual_seed(0))
    assert x.device.type == "cuda"
