"""dsm_loss (plugins/metrics/dsm_loss.py): the closed form for an exact Gaussian score, the gap of a memorizing
score, agreement with the DDPM training objective of a small trained ddpm_mlp, the level routes, skips and
the conformance kit.

Tolerances are "5 standard errors" (two-sided false-alarm probability 5.7e-7 under a normal
approximation) with the standard error derived in each test.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bench_core import MetricContext, SkipMetric, TrainingData
from bench_core.components.discovery import get_registry
from bench_core.kit import check_metric
from bench_plugins.metrics.dsm_loss import DSMLoss, chosen_times, trained_times
from bench_plugins.samplers.langevin import ULA
from bench_plugins.samplers.schedules import level_times, linear_beta_alpha_bars
from bench_plugins.scores.exact import ExactScore
from bench_plugins.scores.learned.ddpm_mlp import DDPMMLPScore
from bench_plugins.scores.learned.empirical import EmpiricalScore
from bench_plugins.targets.gaussian import GaussianTarget

pytestmark = pytest.mark.usefixtures("one_thread")

TIMES_100 = level_times()[:100]  # ddpm_mlp's default training levels 1..100


class WithTimes:
    """A score exposing ``training_times()``: the generic route of dsm_loss."""

    def __init__(self, score, times):
        self.score, self.times = score, times

    def __call__(self, x, t):
        return self.score(x, t)

    def training_times(self):
        return list(self.times)


def make_ctx(target, score, train, reference, seed, heldout=None):
    data = TrainingData(train, train, 1, heldout)
    return MetricContext(target, reference, score, data, ULA(), torch.Generator().manual_seed(seed))


def exact_gaussian_moments(times, sigma, d, n):
    """For N(mu, sigma^2 I) data and its exact score, per coordinate with u = (x0 - mu)/sigma, z ~ N(0, 1):
    s score(x_t) + z = c1 z - c2 u, c1 = 1 - s^2/v, c2 = s a sigma / v, v = a^2 sigma^2 + s^2, so the
    term is (c1 z - c2 u)^2 with mean c1^2 + c2^2 = 1 - s^2/v (= L_t, the irreducible DSM loss).
    Per row and coordinate, averaged over the L levels (fresh z_l per level, u shared):
    Var = (2 sum c1^4 + 4 sum c1^2 c2^2)/L^2 + 2 (sum c2^2 / L)^2 (the three parts are uncorrelated).
    The gap with the same z_l and an independent u': D = (1/L) sum [-2 c1 c2 z_l (u - u') + c2^2 (u^2 - u'^2)],
    Var = 8 sum c1^2 c2^2 / L^2 + 4 (sum c2^2 / L)^2. Rows and coordinates are independent: divide by n d.
    Returns (expected loss, sd of the loss, sd of the gap)."""
    a = np.exp(-np.asarray(times))
    s2 = -np.expm1(-2 * np.asarray(times))
    v = a**2 * sigma**2 + s2
    c1, c2 = 1 - s2 / v, np.sqrt(s2) * a * sigma / v
    n_l = len(times)
    var_loss = (2 * (c1**4).sum() + 4 * (c1**2 * c2**2).sum()) / n_l**2 + 2 * ((c2**2).sum() / n_l) ** 2
    var_gap = 8 * (c1**2 * c2**2).sum() / n_l**2 + 4 * ((c2**2).sum() / n_l) ** 2
    return float((1 - s2 / v).mean()), math.sqrt(var_loss / (n * d)), math.sqrt(var_gap / (n * d))


@pytest.mark.parametrize("levels", [100, 1000])
def test_exact_gaussian_score_gives_the_irreducible_loss_and_no_gap(levels):
    """Exact score of N(1, 0.5^2 I_4), 2000 training and 2000 held-out rows, the 20 levels chosen among
    1..levels: train and heldout are each within 5 sd of the closed form mean_t (1 - s_t^2 / v_t), and the
    gap (same law, same noise) within 5 sd of 0 (sds: exact_gaussian_moments)."""
    d, sigma, n = 4, 0.5, 2000
    target = GaussianTarget(d, mean=1.0, std=sigma)
    gen = torch.Generator().manual_seed(levels)
    train, reference = target.sample(n, gen), target.sample(n, gen)
    times = level_times()[:levels]
    out = DSMLoss()(train[:5], make_ctx(target, WithTimes(target.score, times), train, reference, 0))
    expected, sd, sd_gap = exact_gaussian_moments(chosen_times(times, 20), sigma, d, n)
    print(f"dsm exact score, levels 1..{levels}: {out}; closed form {expected:.5f}, sd {sd:.5f}, gap sd {sd_gap:.5f}")
    assert abs(out["train"] - expected) < 5 * sd and abs(out["heldout"] - expected) < 5 * sd
    assert abs(out["gap"]) < 5 * sd_gap and out["gap"] == out["heldout"] - out["train"]


def test_memorizing_score_has_a_large_positive_gap():
    """The empirical score of 200 training rows (the fully memorized limit) on N(1, 0.5^2 I_4), levels 1..100:
    at these small noise levels it denoises a training row to itself (train far below the irreducible
    loss, which no function can beat on fresh rows) and pulls held-out rows to the wrong training points
    (heldout far above it). Measured: train 0.46, heldout 22, irreducible 0.87."""
    d, sigma = 4, 0.5
    target = GaussianTarget(d, mean=1.0, std=sigma)
    gen = torch.Generator().manual_seed(3)
    train, reference = target.sample(200, gen), target.sample(2000, gen)
    data = TrainingData(train, train, 1)
    score = WithTimes(EmpiricalScore(target, data), TIMES_100)
    out = DSMLoss()(train, make_ctx(target, score, train, reference, 0))
    irreducible, sd, _ = exact_gaussian_moments(chosen_times(TIMES_100, 20), sigma, d, 200)
    print(f"dsm memorizing score: {out}; irreducible {irreducible:.4f}")
    assert out["train"] < irreducible - 5 * sd
    assert out["heldout"] > irreducible + 1.0 and out["gap"] > 1.0


def test_ddpm_mlp_train_loss_is_the_training_objective(tmp_path, monkeypatch):
    """A small ddpm_mlp (width 32, levels 1..200, 1500 full-batch epochs on 64 rows x 2) read through its
    ``levels`` attribute, every level evaluated (n_levels = 200): ``train`` is an unbiased estimate of the
    DDPM objective E_{k, eps} mean_coords (eps_theta(x_k, k) - eps)^2 over the training rows, computed here
    independently from the network with J = 100 draws per (row, level). Given the rows, dsm_loss's terms are
    independent across (row, level), so its se^2 = sum_{r,l} Var_rl / (R L)^2 (Var_rl estimated from the J
    draws) and the reference's is that over J. The final epoch's loss (128 rows, one (k, eps) draw each) is
    compared with sd = (sd of one term over k, eps and rows) / sqrt(128)."""
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path))
    target = GaussianTarget(3, mean=1.0, std=0.5)
    gen = torch.Generator().manual_seed(0)
    distinct = target.sample(64, gen)
    data = TrainingData(distinct.repeat(2, 1), distinct, 2)
    score = DDPMMLPScore(target, data, width=32, epochs=1500, levels=200)
    score.prepare()
    reference = target.sample(1000, gen)
    ctx = MetricContext(target, reference, score, data, ULA(), torch.Generator().manual_seed(1))
    out = DSMLoss(n_levels=200)(reference[:5], ctx)
    model, n_rows, n_levels, draws = score.model_score().model, 64, 200, 100
    alpha_bars = linear_beta_alpha_bars(1000)[:n_levels].float()
    terms = torch.empty(n_rows, n_levels, draws)
    with torch.no_grad():  # ddpm_training.DDPMTrainer._step's loss, without the step
        for level in range(n_levels):
            eps = torch.randn(draws, n_rows, 3, generator=gen)
            xk = alpha_bars[level].sqrt() * distinct + (1 - alpha_bars[level]).sqrt() * eps
            pred = model(xk.reshape(-1, 3), torch.full((draws * n_rows,), float(level + 1)))
            terms[:, level] = (pred.reshape(draws, n_rows, 3) - eps).pow(2).mean(-1).T
    objective = float(terms.mean())
    se = math.sqrt(float(terms.var(dim=-1).sum())) / (n_rows * n_levels)
    final = score.diagnostics()["train_loss"]
    sd_final = float(terms.std()) / math.sqrt(128)
    print(f"dsm ddpm_mlp: {out}; objective {objective:.4f} (se {se:.4f}), final epoch loss {final:.4f} "
          f"(sd {sd_final:.4f})")
    assert abs(out["train"] - objective) < 5 * se * math.sqrt(1 + 1 / draws)
    assert abs(out["train"] - final) < 5 * math.sqrt(sd_final**2 + se**2)
    # the default 20 levels, evenly spaced among the 200 (the same se formula over those levels)
    coarse = DSMLoss()(reference[:5], MetricContext(target, reference, score, data, ULA(),
                                                    torch.Generator().manual_seed(1)))
    picked = terms[:, [k - 1 for k in sorted(round(200 - i * 199 / 19) for i in range(20))]]
    se20 = math.sqrt(float(picked.var(dim=-1).sum())) / (n_rows * 20)
    print(f"dsm ddpm_mlp, 20 levels: {coarse}; their objective {float(picked.mean()):.4f} (se {se20:.4f})")
    assert abs(coarse["train"] - float(picked.mean())) < 5 * se20 * math.sqrt(1 + 1 / draws)


def test_levels_routes_and_chosen_times():
    class Levels:
        levels = 100

    assert trained_times(Levels()) == level_times()[:100]
    assert trained_times(WithTimes(None, [0.3, 0.1, 0.2, 0.1])) == [0.1, 0.2, 0.3]
    with pytest.raises(SkipMetric, match="ddpm_mlp"):
        trained_times(ExactScore(GaussianTarget(2), None))
    with pytest.raises(ValueError, match="training_times"):
        trained_times(WithTimes(None, [0.0, 0.1]))
    times = level_times()[:100]
    chosen = chosen_times(times, 20)
    assert len(chosen) == 20 and chosen[0] == times[0] and chosen[-1] == times[-1]
    assert chosen == [times[k - 1] for k in sorted(round(100 - i * 99 / 19) for i in range(20))]
    assert chosen_times(times[:7], 20) == times[:7]


def test_heldout_rows_are_used_when_the_data_set_has_them():
    """With ctx.data.heldout set, it replaces ctx.reference exactly (same draws in the same order). Held-out
    rows shifted by delta = 1 per coordinate: the exact score of the unshifted law adds -(s a delta / v) to
    each coordinate's residual, so the loss rises by mean_t (s a delta / v)^2 = 0.40 (levels 1..100, sigma
    0.5); the cross term with the residual, on 400 rows x 3 coordinates, has sd < 0.05: we accept 0.2..0.6."""
    target = GaussianTarget(3, mean=1.0, std=0.5)
    gen = torch.Generator().manual_seed(4)
    train, reference, heldout = target.sample(300, gen), target.sample(400, gen), target.sample(400, gen) + 1.0
    score = WithTimes(target.score, TIMES_100)
    with_heldout = DSMLoss()(train, make_ctx(target, score, train, reference, 5, heldout=heldout))
    as_reference = DSMLoss()(train, make_ctx(target, score, train, heldout, 5))
    plain = DSMLoss()(train, make_ctx(target, score, train, reference, 5))
    assert with_heldout == as_reference and with_heldout["train"] == plain["train"]
    t = np.asarray(chosen_times(TIMES_100, 20))
    a, s2 = np.exp(-t), -np.expm1(-2 * t)
    rise = float((s2 * a**2 / (a**2 * 0.25 + s2) ** 2).mean())
    print(f"dsm shifted held-out rows: {with_heldout}, plain {plain}, expected rise {rise:.4f}")
    assert 0.2 < with_heldout["heldout"] - plain["heldout"] < 0.6 and abs(rise - 0.4016) < 1e-3


def test_skips_and_bad_params():
    target = GaussianTarget(2)
    x = target.sample(50, torch.Generator().manual_seed(0))
    with pytest.raises(SkipMetric, match="learned scores"):
        DSMLoss()(x, make_ctx(target, ExactScore(target, None), x, x, 0))
    with pytest.raises(SkipMetric, match="training rows"):
        DSMLoss()(x, make_ctx(target, WithTimes(target.score, TIMES_100), x[:0], x, 0))
    for bad in ({"n_mc": 0}, {"n_levels": 1.5}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            DSMLoss(**bad)


class ExactWithTimes:
    """dsm_loss with the kit's context, whose exact score has no trained levels: given levels 1..100."""

    def __init__(self, metric):
        self.metric, self.higher_is_better, self.keys = metric, metric.higher_is_better, metric.keys

    def __call__(self, samples, ctx):
        ctx = MetricContext(ctx.target, ctx.reference, WithTimes(ctx.score, TIMES_100), ctx.data, ctx.sampler,
                            ctx.generator, ctx.x0)
        return self.metric(samples, ctx)


def test_dsm_loss_through_the_registry_and_the_conformance_kit():
    reg = get_registry()  # built in: registered like any plugin
    metric = reg.create("metrics", "dsm_loss")
    assert (metric.n_mc, metric.n_levels, metric.higher_is_better) == (2000, 20, False)
    assert metric.keys == ("train", "heldout", "gap")
    with pytest.raises(SkipMetric):  # the kit's exact score has no trained levels
        check_metric(metric)
    check_metric(ExactWithTimes(metric))
    check_metric(ExactWithTimes(reg.create("metrics", "dsm_loss", n_mc=100, n_levels=5)), dim=4, n=300)
