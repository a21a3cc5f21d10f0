"""Critically damped Langevin diffusion (plugins/samplers/cld.py): closed forms, exact marginals, sampler.

Per coordinate the forward process is ``z' = A z + sqrt(D) B'`` with ``A = [[0, 1], [-1, -2]]``,
``D = diag(0, 4)``; its transition from a fixed ``z`` is ``N(e^{tA} z, I - e^{tA} e^{tA}^T)``
(stationary covariance I; ``S_t = I + e^{tA}(S_0 - I)e^{tA}^T`` with ``S_0 = 0``). The references
below are computed independently of the module: ``torch.linalg.matrix_exp``, ``scipy`` quadrature
and Gaussian densities, autograd, Monte Carlo.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad_vec
from scipy.linalg import expm
from scipy.stats import multivariate_normal

from bench_core.base.errors import SkipCell
from bench_plugins.samplers.cld import (CLD, cld_marginal, cld_step_integrals, cld_transition, cld_x_coefficients,
                               mixture_phase_log_prob, mixture_velocity_score, register_samplers)
from bench_plugins.metrics.moments import gaussian_fit_kl
from bench_plugins.samplers.schedules import time_grid
from bench_plugins.scores.exact import ExactScore
from bench_plugins.targets.gaussian import GaussianTarget

F64 = torch.float64
A = torch.tensor([[0.0, 1.0], [-1.0, -2.0]], dtype=F64)
D = torch.diag(torch.tensor([0.0, 4.0], dtype=F64))
# a 2-component mixture in d = 2 with unequal weights, means and per-coordinate variances
MIX = (torch.tensor([0.3, 0.7], dtype=F64), torch.tensor([[-2.0, 1.0], [1.5, -0.5]], dtype=F64),
       torch.tensor([[0.25, 1.0], [2.0, 0.5]], dtype=F64))
GAUSS = GaussianTarget(dim=2, mean=[1.0, -2.0], std=[0.5, 2.0])


def _expm(t: float) -> torch.Tensor:
    """``e^{tA}`` by scipy (accurate to ~1e-16 here; torch's matrix_exp is off by up to ~5e-13)."""
    return torch.from_numpy(expm(t * A.numpy()))


def _quadrature(h: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``int_0^h e^{-uA} du`` and ``int_0^h e^{-uA} D e^{-uA}^T du`` by 40-point Gauss-Legendre on scipy's
    expm: the integrands are entire functions of u, so the rule is exact to rounding for h <= 4."""
    nodes, weights = np.polynomial.legendre.leggauss(40)
    u, w = 0.5 * h * (nodes + 1), 0.5 * h * weights
    mats = np.stack([expm(-ui * A.numpy()) for ui in u])
    b = np.einsum("i,ijk->jk", w, mats)
    q = np.einsum("i,ijk,kl,iml->jm", w, mats, D.numpy(), mats)
    return torch.from_numpy(b), torch.from_numpy(q)


class _Mixture:
    """A test-only target exposing the mixture form a GMM target returns."""

    def __init__(self, components):
        self.components = components

    def mixture_components(self):
        return self.components


def _phase_moments(components, t):
    """Mean [4] and covariance [4, 4] of (x_1, x_2, v_1, v_2) under the CLD marginal, by matrix algebra
    (``mean_j = e^{tA} (m, 0)``, ``S_j = I + e^{tA} diag(s^2 - 1, 0) e^{tA}^T``) and the mixture's law of
    total covariance: ``Cov = sum_j w_j (S_j + mu_j mu_j^T) - mu mu^T``."""
    w, m, s2 = components
    e = _expm(t)
    k, d = m.shape
    mus, covs = torch.zeros(k, 2 * d, dtype=F64), torch.zeros(k, 2 * d, 2 * d, dtype=F64)
    for j in range(k):
        for i in range(d):
            idx = [i, d + i]
            mus[j, idx] = e @ torch.tensor([m[j, i], 0.0], dtype=F64)
            covs[j][np.ix_(idx, idx)] = torch.eye(2, dtype=F64) + e @ torch.diag(torch.tensor([s2[j, i] - 1, 0.0], dtype=F64)) @ e.T
    mean = (w[:, None] * mus).sum(0)
    second = (w[:, None, None] * (covs + mus[:, :, None] * mus[:, None, :])).sum(0)
    return mean, second - mean[:, None] * mean[None, :]


def _sample_data(components, n, gen):
    w, m, s2 = components
    j = torch.multinomial(w, n, replacement=True, generator=gen)
    return m[j] + s2[j].sqrt() * torch.randn(n, m.shape[1], generator=gen, dtype=F64)


def _assert_moments(z, mean, cov, label):
    """5-sigma checks of the sample mean and covariance of z [n, p] (max over entries).

    Mean: se_i = sqrt(Cov_ii / n) (exact Cov). Covariance: the sample covariance entry is an average
    of n i.i.d. products (z_i - mu_i)(z_j - mu_j) up to O(1/n), so se_ij = sd(product) / sqrt(n), the sd
    estimated from the sample (4th moments; a plug-in accurate to O(n^{-1/2}) relative). Each entry is
    then ~N(0, 1) in units of se: P(|Z| > 5) = 5.7e-7, and with 14 entries per call and 12 calls the
    family-wise false-alarm probability is < 1e-4 (Bonferroni); the seeds are fixed anyway.
    """
    n = z.shape[0]
    zm = z.mean(0)
    worst_mean = ((zm - mean).abs() / (cov.diagonal() / n).sqrt()).max().item()
    c = z - zm
    products = c[:, :, None] * c[:, None, :]
    cov_hat = products.sum(0) / (n - 1)
    se = products.std(0) / math.sqrt(n)
    worst_cov = ((cov_hat - cov).abs() / se).max().item()
    assert worst_mean < 5, f"{label}: a mean is {worst_mean:.2f} se off"
    assert worst_cov < 5, f"{label}: a covariance entry is {worst_cov:.2f} se off"


# ---------------------------------------------------------------- closed forms

@pytest.mark.parametrize("t", [0.0, 1e-3, 0.3, 1.0, 2.5, 7.0])
def test_transition_and_x_coefficients_match_matrix_exponential(t):
    # torch's Pade-based matrix_exp is accurate to ~5e-13 on this matrix (measured at t = 0.01),
    # scipy's expm to ~1e-16
    torch.testing.assert_close(cld_transition(t), torch.linalg.matrix_exp(t * A), rtol=1e-11, atol=1e-12)
    e = _expm(t)
    torch.testing.assert_close(cld_transition(t), e, rtol=1e-13, atol=1e-15)
    a_t, sigma_t = cld_x_coefficients(t)
    # x_t = e00 x_0 + e01 v_0 + noise of variance (I - e e^T)_00, with v_0 ~ N(0, 1) integrated out
    assert a_t == pytest.approx(e[0, 0].item(), rel=1e-12)
    assert sigma_t**2 == pytest.approx((e[0, 1] ** 2 + (torch.eye(2, dtype=F64) - e @ e.T)[0, 0]).item(),
                                       rel=1e-9, abs=1e-15)
    assert sigma_t**2 == pytest.approx(1 - math.exp(-2 * t) * (1 + t) ** 2, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("t", [0.0, 0.01, 0.5, 2.0, 6.0])
def test_marginal_matches_the_matrix_formula(t):
    marg = cld_marginal(MIX, t)
    e = _expm(t)
    w, m, s2 = MIX
    for j in range(2):
        for i in range(2):
            s = torch.eye(2, dtype=F64) + e @ torch.diag(torch.tensor([s2[j, i] - 1, 0.0], dtype=F64)) @ e.T
            mu = e @ torch.tensor([m[j, i], 0.0], dtype=F64)
            got = torch.tensor([marg.xx[j, i], marg.xv[j, i], marg.vv[j, i]])
            torch.testing.assert_close(got, torch.stack([s[0, 0], s[0, 1], s[1, 1]]), rtol=1e-12, atol=1e-14)
            torch.testing.assert_close(torch.stack([marg.mean_x[j, i], marg.mean_v[j, i]]), mu, rtol=1e-12, atol=1e-14)
            assert marg.det[j, i].item() == pytest.approx(torch.linalg.det(s).item(), rel=1e-11)
    assert all(f.shape == (2, 2) and f.dtype == F64 for f in marg)


@pytest.mark.parametrize("h", [1e-5, 0.01, 0.3, 0.49, 0.51, 0.99, 1.01, 2.0, 4.0])
def test_step_integrals_match_quadrature(h):
    """B_h = int_0^h e^{-uA} du and Q_h = int_0^h e^{-uA} D e^{-uA}^T du; the module switches from a
    power series to the closed form at rate * h = 1 (h = 0.5 for Q, 1 for B): both sides are tested."""
    b_ref, q_ref = _quadrature(h)
    b_adaptive, _ = quad_vec(lambda u: expm(-u * A.numpy()), 0.0, h, epsabs=0, epsrel=1e-12)
    torch.testing.assert_close(b_ref, torch.from_numpy(b_adaptive), rtol=1e-11, atol=0)  # the rule itself
    b, q = cld_step_integrals(h)
    torch.testing.assert_close(b, b_ref, rtol=1e-10, atol=0)
    torch.testing.assert_close(q, q_ref, rtol=1e-10, atol=0)
    assert torch.linalg.eigvalsh(q).min() > 0  # a valid noise covariance (Cholesky in the sampler)


# ---------------------------------------------------------------- marginals vs the forward process

@pytest.mark.parametrize("name, components", [("mixture", MIX), ("gaussian", GAUSS.mixture_components())])
def test_exact_marginals_match_the_simulated_forward_process(name, components):
    """Data x_0, v_0 ~ N(0, I), pushed through the exact Gaussian transition to t = 0.1, 0.5, 2."""
    n, gen = 40_000, torch.Generator().manual_seed(11)
    x0 = _sample_data(components, n, gen)
    z0 = torch.stack([x0, torch.randn(x0.shape, generator=gen, dtype=F64)], dim=-1)  # [n, d, 2]
    for t in (0.1, 0.5, 2.0):
        e = _expm(t)
        chol = torch.linalg.cholesky(torch.eye(2, dtype=F64) - e @ e.T)
        zt = z0 @ e.T + torch.randn(z0.shape, generator=gen, dtype=F64) @ chol.T
        mean, cov = _phase_moments(components, t)
        _assert_moments(torch.cat([zt[..., 0], zt[..., 1]], dim=1), mean, cov, f"{name}, t={t}")


def test_exact_transition_and_marginal_match_euler_maruyama(one_thread):
    """A fine Euler-Maruyama run (dt = 1e-3 to t = 0.5), n = 20000, from the Gaussian data and from
    two fixed points (x, v). EM's own law follows the recursion m <- (I + dt A) m,
    S <- (I + dt A) S (I + dt A)^T + dt D; iterated here it is off the exact law by at most 1.7e-3
    (covariances) and 5e-4 (means), 6x below the smallest 5-se tolerance (5 sqrt(0.25 / n) = 0.018)."""
    n, t, n_steps = 20_000, 0.5, 500
    dt, gen = t / n_steps, torch.Generator().manual_seed(5)
    fixed = torch.tensor([[1.5, -2.0], [-1.0, 0.5]], dtype=F64)  # rows: (x, v) of coordinates 3 and 4
    x = torch.cat([GAUSS.mean + GAUSS.std * torch.randn(n, 2, generator=gen, dtype=F64), fixed[:, 0].expand(n, 2)], 1)
    v = torch.cat([torch.randn(n, 2, generator=gen, dtype=F64), fixed[:, 1].expand(n, 2)], 1)
    noise = torch.empty_like(x)
    for _ in range(n_steps):
        noise.normal_(generator=gen)
        x, v = x + v * dt, v - (x + 2 * v) * dt + math.sqrt(4 * dt) * noise
    mean, cov = _phase_moments(GAUSS.mixture_components(), t)
    _assert_moments(torch.cat([x[:, :2], v[:, :2]], dim=1), mean, cov, "EM from data")
    e = _expm(t)
    trans_cov = torch.eye(2, dtype=F64) - e @ e.T
    for i in range(2):
        _assert_moments(torch.stack([x[:, 2 + i], v[:, 2 + i]], dim=1), e @ fixed[i], trans_cov, f"EM from {fixed[i]}")


# ---------------------------------------------------------------- densities and scores

@pytest.mark.parametrize("name, components", [("mixture", MIX), ("gaussian", GAUSS.mixture_components())])
@pytest.mark.parametrize("t", [0.0, 0.3, 3.0])
def test_velocity_score_is_the_v_gradient_of_the_log_density(name, components, t):
    gen = torch.Generator().manual_seed(3)
    x = 2 * torch.randn(64, 2, generator=gen, dtype=F64)
    v = 2 * torch.randn(64, 2, generator=gen, dtype=F64).requires_grad_()
    (grad,) = torch.autograd.grad(mixture_phase_log_prob(components, x, v, t).sum(), v)
    score = mixture_velocity_score(components, x, v.detach(), t)
    torch.testing.assert_close(score, grad, rtol=1e-10, atol=1e-12)
    if t == 0.0:  # v_0 ~ N(0, I) independent of x_0
        torch.testing.assert_close(score, -v.detach(), rtol=1e-12, atol=1e-14)
    assert score.dtype == F64 and score.shape == (64, 2)


def test_float32_input_keeps_its_dtype():
    gen = torch.Generator().manual_seed(4)
    x, v = torch.randn(16, 2, generator=gen), torch.randn(16, 2, generator=gen)
    for components in (MIX, GAUSS.mixture_components()):
        score = mixture_velocity_score(components, x, v, 0.7)
        assert score.dtype == torch.float32
        torch.testing.assert_close(score.double(), mixture_velocity_score(components, x.double(), v.double(), 0.7),
                                   rtol=1e-5, atol=1e-5)
        assert mixture_phase_log_prob(components, x, v, 0.7).dtype == torch.float32


@pytest.mark.parametrize("t", [0.0, 0.4, 2.0])
def test_phase_log_prob_is_a_normalized_mixture_density_in_one_dimension(t):
    comps = (torch.tensor([0.4, 0.6], dtype=F64), torch.tensor([[-1.5], [2.0]], dtype=F64),
             torch.tensor([[0.3], [1.7]], dtype=F64))
    e = _expm(t).numpy()
    grid = np.linspace(-9, 9, 721)
    gx, gv = np.meshgrid(grid, grid, indexing="ij")
    pts = np.stack([gx.ravel(), gv.ravel()], axis=1)
    ref = sum(w * multivariate_normal(e @ [m, 0.0], np.eye(2) + e @ np.diag([s2 - 1, 0.0]) @ e.T).pdf(pts)
              for w, m, s2 in zip(comps[0].tolist(), comps[1][:, 0].tolist(), comps[2][:, 0].tolist()))
    logp = mixture_phase_log_prob(comps, torch.from_numpy(pts[:, :1]), torch.from_numpy(pts[:, 1:]), t)
    np.testing.assert_allclose(logp.numpy(), np.log(ref), rtol=1e-11, atol=1e-11)
    mass = np.trapezoid(np.trapezoid(np.exp(logp.numpy()).reshape(gx.shape), grid, axis=1), grid)
    assert mass == pytest.approx(1.0, abs=1e-6)  # tails beyond |.| = 9 are < 1e-8


# ---------------------------------------------------------------- the sampler

class _RecordingScore:
    """A nonlinear stand-in with a CLD form, recording the query times."""

    def __init__(self):
        self.times = []

    def velocity_score(self, x, v, t):
        self.times.append(t)
        return torch.tanh(x) - 0.5 * v + t


def test_two_reverse_steps_match_a_hand_computed_exponential_integrator():
    """Documented noise order: v, then per step xi_1 (x noise), xi_2 (v noise), each like x."""
    x0 = torch.randn(5, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    score, seen = _RecordingScore(), []
    sampler = CLD(T=0.8, n_steps=2, t_min=0.2, grid="uniform")
    out = sampler.sample(score, x0, generator=torch.Generator().manual_seed(9),
                         callback=lambda k, t, x: seen.append((k, t, x.clone())))
    gen = torch.Generator().manual_seed(9)
    x, v = x0.clone(), torch.empty_like(x0).normal_(generator=gen)
    for t, h in ((0.8, 0.3), (0.5, 0.3)):
        e = _expm(-h)
        b, q = _quadrature(h)
        chol = torch.linalg.cholesky(q)
        s = torch.tanh(x) - 0.5 * v + t
        xi = torch.stack([torch.empty_like(x).normal_(generator=gen), torch.empty_like(x).normal_(generator=gen)], -1)
        z = torch.stack([x, v], -1) @ e.T + torch.stack([torch.zeros_like(s), 4 * s], -1) @ b.T + xi @ chol.T
        x, v = z[..., 0], z[..., 1]
    torch.testing.assert_close(out, x, rtol=1e-10, atol=1e-12)
    assert score.times == pytest.approx([0.8, 0.5], abs=1e-15)  # the score is frozen at the start of a step
    assert [(k, t) for k, t, _ in seen] == [(1, pytest.approx(0.5)), (2, pytest.approx(0.2))]
    assert torch.equal(seen[-1][2], out)


def test_input_is_not_modified_and_same_seed_is_bitwise_identical():
    score = ExactScore(GAUSS, None)
    sampler = CLD(n_steps=20)
    x0 = torch.randn(50, 2, generator=torch.Generator().manual_seed(0))
    x0_copy = x0.clone()
    a = sampler.sample(score, x0, generator=torch.Generator().manual_seed(5))
    b = sampler.sample(score, x0, generator=torch.Generator().manual_seed(5))
    c = sampler.sample(score, x0, generator=torch.Generator().manual_seed(6))
    assert torch.equal(x0, x0_copy) and torch.equal(a, b) and not torch.equal(a, c)
    assert a.dtype == x0.dtype and a.shape == x0.shape and torch.isfinite(a).all()


@pytest.mark.parametrize("grid", ["uniform", "geometric"])
def test_time_grid_and_interface(grid):
    sampler = CLD(T=10.0, n_steps=50, t_min=1e-3, grid=grid)
    times = sampler.score_times()
    ts, hs = np.array([t for t, _ in times]), np.array([h for _, h in times])
    assert len(times) == 50 and ts[0] == 10.0 and (hs > 0).all()
    assert hs.sum() == pytest.approx(10.0 - 1e-3, rel=1e-13)
    assert ts[-1] - hs[-1] == pytest.approx(1e-3, rel=1e-10)
    ratios = (ts[1:] - hs[1:]) / (ts[:-1] - hs[:-1])
    if grid == "uniform":
        np.testing.assert_allclose(hs, (10.0 - 1e-3) / 50, rtol=1e-10)
    else:  # log-uniform: constant ratio (1e-4)^(1/50) between successive times
        np.testing.assert_allclose(np.diff(np.log(np.append(ts, 1e-3))), math.log(1e-4) / 50, rtol=1e-10)
        assert ratios.std() < 1e-12
    assert sampler.family == "diffusion" and sampler.process == "cld"
    assert sampler.forward_coefficients(0.7) == cld_x_coefficients(0.7)


@pytest.mark.parametrize("kwargs, name", [
    (dict(T=0.0), "T"), (dict(T=-1.0), "T"), (dict(n_steps=0), "n_steps"), (dict(n_steps=1.5), "n_steps"),
    (dict(t_min=0.0), "t_min"), (dict(t_min=10.0), "t_min"), (dict(grid="cosine"), "grid"),
])
def test_invalid_parameters_name_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=f"'{name}'"):
        CLD(**kwargs)


def test_registered_as_cld():
    seen = []
    register_samplers(lambda name, factory, description="": seen.append((name, factory, description)))
    assert seen[0][:2] == ("cld", CLD) and "Dockhorn" in seen[0][2]


@pytest.mark.parametrize("dim, mean", [(20, 3.0), (50, 0.0)])
def test_exact_score_sampling_reaches_the_finite_sample_kl(one_thread, dim, mean):
    """Default CLD (T = 10, 1000 geometric steps, t_min = 1e-3), float32, n = 5000.

    With exact samples, 2n KL_fit ~ chi^2 with p = d(d+3)/2 degrees of freedom: mean d(d+3)/(4n)
    (0.023 for d = 20, 0.1325 for d = 50) and sd sqrt(d(d+3))/(2n) (0.0021, 0.0051). A 0.05 margin is
    10 sd at d = 50: it tolerates no discretization error above ~0.03. Measured: 0.0248 and 0.1398.
    The output is at t_min, whose x-law differs from the target by O(t_min^2) = 1e-6 in variance.
    """
    n = 5000
    target = GaussianTarget(dim, mean=mean)
    x0 = torch.randn(n, dim, generator=torch.Generator().manual_seed(0))
    out = CLD().sample(ExactScore(target, None), x0, generator=torch.Generator().manual_seed(1))
    assert out.dtype == torch.float32 and out.shape == (n, dim)
    kl, bias = gaussian_fit_kl(out, target.mean, target.cov), dim * (dim + 3) / (4 * n)
    assert abs(kl - bias) < 0.05, f"KL {kl:.4f} vs finite-sample bias {bias:.4f}"


def test_exact_score_sampling_recovers_mixture_weights(one_thread):
    """Modes at -3(1, 1) and 3(1, 1), weights (0.25, 0.75), n = 4000.

    The probability p that an exact sample is nearest the first mode differs from w_1 by at most the
    misassignment probability: the half distance 3 sqrt(2) = 4.24 exceeds 4.2 sds (<= 1) of the
    projection on the axis, so |p - w_1| <= 2 Phi(-4.24) = 2.2e-5. The empirical fraction has
    sd sqrt(w (1 - w) / n) = 0.0068; tolerance 5 sd + 2.2e-5. Within each mode the sample mean is
    checked at 5 se (se = s_i / sqrt(n_j)).
    """
    comps = (torch.tensor([0.25, 0.75], dtype=F64), torch.tensor([[-3.0, -3.0], [3.0, 3.0]], dtype=F64),
             torch.tensor([[0.5, 1.0], [1.0, 0.5]], dtype=F64))
    n = 4000
    x0 = torch.randn(n, 2, generator=torch.Generator().manual_seed(2))
    out = CLD().sample(ExactScore(_Mixture(comps), None), x0, generator=torch.Generator().manual_seed(3))
    nearest = torch.cdist(out.double(), comps[1]).argmin(1)
    frac = (nearest == 0).double().mean().item()
    w = 0.25
    assert abs(frac - w) < 5 * math.sqrt(w * (1 - w) / n) + 2.2e-5, f"fraction near mode 1: {frac:.4f}"
    for j in range(2):
        pts = out.double()[nearest == j]
        z = (pts.mean(0) - comps[1][j]) / (comps[2][j] / len(pts)).sqrt()
        assert z.abs().max() < 5, f"mode {j}: mean {pts.mean(0).tolist()}"


# ---------------------------------------------------------------- scores without a CLD form

def test_score_without_velocity_score_skips_the_cell():
    class PlainScore:
        def __call__(self, x, t):
            return -x

    with pytest.raises(SkipCell, match=r"cld needs a score estimate with a CLD form.*PlainScore has none"):
        CLD(n_steps=3).sample(PlainScore(), torch.zeros(4, 2), generator=torch.Generator().manual_seed(0))


def test_exact_score_on_a_target_without_mixture_form_skips_naming_the_target():
    class NoMixtureTarget:
        dim = 2

        def score(self, x, t=0.0):
            return -x

    score = ExactScore(NoMixtureTarget(), None)
    with pytest.raises(SkipCell, match="NoMixtureTarget"):
        score.velocity_score(torch.zeros(3, 2), torch.zeros(3, 2), 0.5)
    with pytest.raises(SkipCell, match="mixture_components"):
        CLD(n_steps=3).sample(score, torch.zeros(3, 2), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(ExactScore(GAUSS, None).velocity_score(torch.zeros(3, 2), torch.ones(3, 2), 0.0),
                               -torch.ones(3, 2))


# ---------------------------------------------------------------- order of convergence (exact output law)

def _gaussian_components(m: float, s: float):
    """The one-component mixture form of ``N(m, s^2)`` in d = 1."""
    return (torch.ones(1, dtype=F64), torch.tensor([[m]], dtype=F64), torch.tensor([[s * s]], dtype=F64))


def _phase_law(components, t):
    """Exact CLD marginal of (x, v) at time t for a 1-d Gaussian: mean [2] and covariance [2, 2]."""
    marg = cld_marginal(components, t)
    mean = torch.stack([marg.mean_x[0, 0], marg.mean_v[0, 0]])
    cov = torch.stack([torch.stack([marg.xx[0, 0], marg.xv[0, 0]]), torch.stack([marg.xv[0, 0], marg.vv[0, 0]])])
    return mean, cov


def _cld_output_law(times, components):
    """Exact law of (x, v) after :class:`CLD` on the grid ``times`` with the exact score of a 1-d Gaussian.

    Start ``N(0, I)`` (x0 ~ N(0, 1) from the caller, v ~ N(0, 1) drawn by the sampler). The velocity score
    of ``p_t = N(mu_t, C_t)`` is affine, ``s_v = r.z + c`` with ``r = -(C_t^{-1})_v``, ``c = (C_t^{-1} mu_t)_v``
    (C_t inverted by torch, not by the module's closed form), so a step
    ``z <- e^{-hA} z + 4 B_h e_2 s_v + xi``, ``xi ~ N(0, Q_h)``, is ``z <- M z + g c + xi`` with
    ``g = 4 B_h e_2``, ``M = e^{-hA} + g r^T``: mean ``M m + g c``, covariance ``M S M^T + Q_h``.
    """
    mean, cov = torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64)
    for t, t_next in zip(times[:-1], times[1:]):
        mu, c_t = _phase_law(components, t)
        prec_v = torch.linalg.inv(c_t)[1]
        b, q = cld_step_integrals(t - t_next)
        g = 4.0 * b[:, 1]
        m_step = cld_transition(-(t - t_next)) - torch.outer(g, prec_v)
        mean = m_step @ mean + g * (prec_v @ mu)
        cov = m_step @ cov @ m_step.T + q
    return mean, cov


def _w2_gauss(mean_a, cov_a, mean_b, cov_b):
    """W2 between Gaussians on R^2: ``|dm|^2 + tr(S_a + S_b - 2 (S_b^{1/2} S_a S_b^{1/2})^{1/2})``, with the
    2x2 PSD square root ``sqrt(M) = (M + sqrt(det M) I) / sqrt(tr M + 2 sqrt(det M))``."""
    def sqrtm(mat):
        root_det = torch.linalg.det(mat).clamp_min(0).sqrt()
        return (mat + root_det * torch.eye(2, dtype=F64)) / (mat.trace() + 2 * root_det).sqrt()

    root_b = sqrtm(cov_b)
    cross = sqrtm(root_b @ cov_a @ root_b)
    return math.sqrt(max(((mean_a - mean_b) ** 2).sum().item() + (cov_a + cov_b - 2 * cross).trace().item(), 0.0))


def _observed_order(steps, errors):
    """Least-squares slope of log(error) against log(1 / step count)."""
    return -float(np.polyfit(np.log(steps), np.log(errors), 1)[0])


def _pair_orders(errors):
    """Local orders log2(e_k / e_{k+1}) between successive step counts (each pair doubles it)."""
    return [math.log2(a / b) for a, b in zip(errors, errors[1:])]


def test_exact_output_law_and_order_of_convergence(one_thread, capsys):
    """W2 of the sampler's exact output law (:func:`_cld_output_law`) to the continuous-time limit at t_min.

    Monte Carlo first (the propagation is checked against ``CLD.sample``, not against itself): geometric grid,
    100 steps, target N(3, 0.5^2), n = 200000 particles, d = 1. The output is exactly Gaussian (affine steps
    with Gaussian noise from a Gaussian start), so the sample mean has se sqrt(v / n) = 1.1e-3 and the sample
    variance se v sqrt(2 / (n - 1)) = 8.4e-4 (v = 0.265); both must be within 5 se of the propagated law. The
    propagated variance is 0.015 = 18 se above the exact 0.25: the check sees the discretization error.

    Reference: p_{t_min} exactly (``cld_marginal``); the reverse SDE from N(0, I)^2 at T = 10 reaches it up to
    the start error (mean_x of p_T is 3 * 11 e^{-10} = 1.5e-3), which the exact reverse flow contracts like
    T e^{-T}: the floor measured with 12800 uniform steps is 1.4e-6, 70x below the smallest error here.
    The mean recursion is exact on the exponential integrator (``e^{-hA} mu_t = mu_{t-h}`` and s_v(mu_t) = 0),
    so all the error is in the covariance.

    Measured (s = 1 / s = 0.5), T = 10, t_min = 1e-3, W2 at n = 50 .. 800 (fitted order; local order 400 -> 800):
    x-marginal, uniform: 0.0324 .. 1.30e-4 / 0.0283 .. 1.10e-4, order 1.991 / 2.003 (local 1.997 / 1.996);
    x-marginal, geometric (fit on n = 100 .. 800): 0.0359 .. 3.10e-3 / 0.0150 .. 1.50e-3, order 1.177 / 1.106
    (local 1.095 / 1.05); (x, v), uniform: 0.296 .. 0.0128 / 0.323 .. 0.0128, order 1.127 / 1.155 (local
    1.03 / 1.04); (x, v), geometric (n = 100 .. 800): 0.0468 .. 4.3e-3 / 0.0343 .. 3.37e-3, order 1.147 / 1.116
    (local 1.07 / 1.05). The first-order fits bend up from an O(h^2) correction at the coarse end: the local
    orders fall monotonically towards 1 (e.g. 1.30, 1.14, 1.06, 1.03), which is what is asserted.
    * Uniform: the x-marginal is second order while (x, v) is first order. In the stationary regime (s = 1 makes
      C_t = I at every t) the frozen-score chain has an invariant covariance I + (1.66 h^2, 0.33 h^2; ., 2 h) to
      leading order (0.0165, 0.0038, 0.253 at h = 0.1): an O(h) bias in v only, and x (dx = v dt) sees O(h^2).
      With a constant h the chain tracks this biased quasi-equilibrium, so at t_min the x-error is O(h^2)
      (0.0165 / 2 = 0.0082 in sd at h = 0.1, as measured).
    * Geometric: h_k = (1 - (t_min / T)^{1 / n}) t_k varies along the path; the O(h) v-bias then changes with t
      and leaks into x at first order, so the x-marginal is first order (the usual rate of the exponential
      integrator). (Checked outside this test: a uniform grid whose h drops from 9 / n to 5 / n at t = 1 is
      first order in x too; one whose h halves at t = 5, forgotten by t_min, stays second order.) Its fit bends
      up more because at n = 100 the first steps (0.88, 0.80, 0.73, ..) exceed the stability bound h* = 0.537
      of the step map (spectral radius of e^{-hA} - 4 B_h e_2 e_2^T at the stationary score > 1 for h > h*:
      the velocity score, the only damping of the reverse drift -A, is explicit). At n = 50 the first steps
      are 1.68, 1.40, 1.16, .. and the output blows up (x-marginal W2 = 49 / 5.2): excluded from the fit and
      asserted to be > 1.
    """
    n, target = 200_000, GaussianTarget(dim=1, mean=3.0, std=0.5)
    comps = target.mixture_components()
    sampler = CLD(T=10.0, n_steps=100, t_min=1e-3, grid="geometric")
    x0 = torch.randn(n, 1, generator=torch.Generator().manual_seed(21), dtype=F64)
    out = sampler.sample(ExactScore(target, None), x0, generator=torch.Generator().manual_seed(22))
    mean, cov = _cld_output_law(time_grid(10.0, 1e-3, 100, "geometric").tolist(), comps)
    mu, var = mean[0].item(), cov[0, 0].item()
    z_mean = (out.mean().item() - mu) / math.sqrt(var / n)
    z_var = (out.var().item() - var) / (var * math.sqrt(2 / (n - 1)))
    z_exact = (out.var().item() - cld_marginal(comps, 1e-3).xx.item()) / (var * math.sqrt(2 / (n - 1)))
    with capsys.disabled():
        print(f"\nCLD Monte Carlo (n = {n}, 100 geometric steps, N(3, 0.5^2)) vs exact output law: "
              f"mean {z_mean:+.2f} se, variance {z_var:+.2f} se (p_t_min's variance is {z_exact:+.1f} se away)")
    assert abs(z_mean) < 5 and abs(z_var) < 5, f"Monte Carlo vs exact law: mean {z_mean:.2f}, variance {z_var:.2f} se"
    assert z_exact > 10, f"the discretization error is not visible: variance {z_exact:.2f} se from p_t_min"

    ns = [50, 100, 200, 400, 800]
    rows = []
    for s in (1.0, 0.5):
        comps = _gaussian_components(3.0, s)
        ref_mean, ref_cov = _phase_law(comps, 1e-3)
        for grid in ("uniform", "geometric"):
            laws = [_cld_output_law(time_grid(10.0, 1e-3, k, grid).tolist(), comps) for k in ns]
            ref_sd = math.sqrt(ref_cov[0, 0].item())
            x_w2 = [math.hypot(m[0].item() - ref_mean[0].item(), math.sqrt(c[0, 0].item()) - ref_sd) for m, c in laws]
            phase_w2 = [_w2_gauss(m, c, ref_mean, ref_cov) for m, c in laws]
            first = 0 if grid == "uniform" else 1  # 50 geometric steps are unstable (docstring)
            rows.append((f"N(3, {s}^2) {grid}", x_w2, phase_w2, first))
    with capsys.disabled():
        print("CLD, W2 to p_{t_min}, T = 10, t_min = 1e-3, n_steps", ns, "(order fitted; local orders)")
        for label, x_w2, phase_w2, first in rows:
            for kind, errors in (("x     ", x_w2), ("(x, v)", phase_w2)):
                local = ", ".join(f"{o:.3f}" for o in _pair_orders(errors[first:]))
                print(f"  {label:21s} {kind} order {_observed_order(ns[first:], errors[first:]):.3f} ({local})   "
                      f"[{', '.join(f'{e:.3g}' for e in errors)}]")
    for label, x_w2, phase_w2, first in rows:
        if first:
            assert x_w2[0] > 1.0, f"{label}: 50 geometric steps (first step 1.68 > h* = 0.537) should blow up"
        first_order = [("(x, v)", phase_w2[first:])]
        if "uniform" in label:
            assert 1.9 <= _observed_order(ns, x_w2) <= 2.1, f"{label}: x-marginal order {_observed_order(ns, x_w2):.3f}"
            assert all(1.9 <= o <= 2.1 for o in _pair_orders(x_w2)), f"{label}: x-marginal {_pair_orders(x_w2)}"
        else:
            first_order.append(("x", x_w2[first:]))
        for kind, errors in first_order:
            local = _pair_orders(errors)
            # first order: local orders falling monotonically to ~1 as the O(h^2) correction fades
            assert all(a > b for a, b in zip(local, local[1:])), f"{label} {kind}: local orders {local}"
            assert 0.95 <= local[-1] <= 1.15, f"{label} {kind}: local order at 400 -> 800 steps {local[-1]:.3f}"
