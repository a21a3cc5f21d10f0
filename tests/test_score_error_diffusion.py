"""score_error for diffusion cells: eps_bar^2 over the sampler's grid, CLD forms, Chen et al. terms."""
from __future__ import annotations

import math

import pytest
import torch

from bench_core.components.protocols import MetricContext, TrainingData
from bench_plugins.metrics.score_error import ScoreError, time_blocks
from bench_plugins.samplers.cld import CLD
from bench_plugins.samplers.ddpm import DDPM
from bench_plugins.samplers.langevin import ULA
from bench_plugins.scores.exact import ExactScore
from bench_plugins.scores.noisy import NoisyScore
from bench_plugins.scores.traps.wells import BallTrap
from bench_plugins.targets.gaussian import GaussianTarget

F64 = torch.float64
pytestmark = pytest.mark.usefixtures("one_thread", "float64")


def ctx_for(target, score, sampler, n_ref: int = 1000, seed: int = 0) -> MetricContext:
    gen = torch.Generator().manual_seed(seed)
    ref = target.sample(n_ref, gen)
    data = TrainingData(ref[:10], ref[:10], 1)
    return MetricContext(target, ref, score, data, sampler, torch.Generator().manual_seed(seed + 1))


def test_time_blocks_keep_the_total_weight():
    grid = [(1.0 - k / 1000, 1e-3) for k in range(1000)]
    blocks = time_blocks(grid, 200)
    assert len(blocks) == 200 and sum(w for _, w in blocks) == pytest.approx(1.0, rel=1e-12)
    assert blocks[0][0] == 1.0 and time_blocks(grid[:50], 200) == grid[:50]


def test_langevin_cells_report_bar_sq_equal_to_sq():
    target = GaussianTarget(5, mean=1.0)
    out = ScoreError()(torch.zeros(3, 5, dtype=F64), ctx_for(target, NoisyScore(target, None, eps=0.3), ULA()))
    assert out["bar_sq"] == out["sq"] and "chen_bound" not in out


@pytest.mark.parametrize("sampler", [DDPM(discretization="exponential", n_steps=100), CLD(n_steps=100)],
                         ids=["ddpm", "cld"])
def test_noisy_bar_sq_on_the_stationary_target(sampler):
    """On pi = N(0, I) every forward marginal (OU, and CLD with v_0 ~ N(0, I)) is pi itself, so
    E_{p_t}||eps F||^2 = eps^2 E_pi||F||^2 for every t, and eps_bar^2 must equal eps^2 up to Monte Carlo:
    ``NoisyScore`` normalizes E_pi||F||^2 = 1 on 20000 draws, and each node averages n = 1000 points.
    Whatever the correlation between nodes, the average of the node means has standard deviation
    <= sd(||F||^2) / sqrt(1000); 5 of those plus 5 normalization standard errors bound the error."""
    d, eps = 10, 0.4
    target = GaussianTarget(d)
    score = NoisyScore(target, None, eps=eps)
    out = ScoreError()(torch.zeros(3, d, dtype=F64), ctx_for(target, score, sampler))
    big = target.sample(200_000, torch.Generator().manual_seed(9))
    f2 = score.field(big).pow(2).sum(-1)
    sd = float(f2.std())
    tolerance = eps**2 * (5 * sd / math.sqrt(1000) + 5 * sd / math.sqrt(20_000))
    assert abs(out["bar_sq"] - eps**2) <= tolerance, (out["bar_sq"], tolerance)
    assert abs(out["sq"] - eps**2) <= tolerance


def test_admissible_ball_trap_stays_within_budget_and_naive_does_not():
    d, a = 50, 3.0
    target = GaussianTarget(d, mean=a)
    ddpm = DDPM()
    admissible = ScoreError()(torch.zeros(3, d), ctx_for(target, BallTrap(target, None), ddpm))
    naive = ScoreError()(torch.zeros(3, d), ctx_for(target, BallTrap(target, None, schedule="naive"), ddpm))
    assert admissible["sq"] == naive["sq"] == 0.0  # the same t = 0 estimate, exponentially small error
    assert admissible["bar_sq"] <= 1e-3  # provably: the bound is <= budget below the cutoff
    assert naive["bar_sq"] > 1.0  # the naive form is far from p_t's score at intermediate t
    assert admissible["cutoff"] == pytest.approx(0.2177, abs=1e-3) and naive["cutoff"] == math.inf


def test_chen_bound_terms_by_hand():
    d, a = 20, 2.0
    target = GaussianTarget(d, mean=a)
    sampler = DDPM(discretization="exponential", n_steps=200, T=8.0, grid="uniform")
    out = ScoreError()(torch.zeros(3, d), ctx_for(target, ExactScore(target, None), sampler))
    assert out["bar_sq"] == 0.0
    kl = 0.5 * d * a**2  # KL(N(a 1, I) || N(0, I))
    L, m2 = 1.0, math.sqrt(d * a**2 + d)
    h = (8.0 - 1e-3) / 200
    want = math.sqrt(kl) * math.exp(-8.0) + (L * math.sqrt(d * h) + L * m2 * h) * math.sqrt(8.0)
    assert out["chen_bound"] == pytest.approx(want, rel=1e-12)
    assert target.chen_constants() == pytest.approx({"L": 1.0, "m2": m2, "kl": kl})
    narrow = GaussianTarget(3, mean=[1.0, 0.0, 0.0], std=[0.5, 1.0, 2.0]).chen_constants()
    assert narrow["L"] == 4.0
    assert narrow["kl"] == pytest.approx(0.5 * (0.25 + 1 + 4 + 1 - 3 - math.log(0.25 * 4)))


def test_cld_form_of_a_perturbed_estimate_is_exact_plus_deviation():
    target = GaussianTarget(4, mean=[0.5, -1.0, 0.0, 2.0], std=[1.0, 0.5, 2.0, 1.0])
    trap = BallTrap(target, None, radius=1.0, center=0.5, schedule="naive")
    gen = torch.Generator().manual_seed(3)
    x, v = torch.randn(50, 4, generator=gen), torch.randn(50, 4, generator=gen)
    exact = ExactScore(target, None)
    for t in (0.0, 0.3, 2.0):
        want = exact.velocity_score(x, v, t) + (trap(x, t) - target.score(x, t))
        assert torch.allclose(trap.velocity_score(x, v, t), want, atol=1e-12)
