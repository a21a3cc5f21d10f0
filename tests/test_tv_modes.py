"""tv_modes (plugins/metrics/modes.py): coverage of the certified bound on exact samples, power on
mode collapse and on wrong mode weights, skipping non-mixture targets.

The bound (TVModes docstring): with p~_j = (1/n) sum_i post_j(x_i) and w the mixture weights,
  lower = max(0, TV(p~, w) - margin),  margin = 0.5 sqrt((K-1)/n) + sqrt(log(1/alpha) / (2n)),
and TV(P, pi) >= TV(KP, w) >= lower with probability >= 1 - alpha. Repetition counts are
bounded as in tests/test_tv_metrics.py: with exceedance probability <= r per repetition, the
count over R independent repetitions is <= binom.ppf(1 - 1e-4, R, r) except with probability
< 1e-4 (fixed seeds: never).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad
from scipy.stats import binom, norm

from bench_core.base.errors import SkipMetric
from bench_core.components.protocols import MetricContext, TrainingData
from bench_plugins.metrics import modes as mode_metrics
from bench_plugins.metrics.modes import TVModes
from bench_plugins.targets.gaussian import GaussianTarget
from bench_plugins.targets.gmm import GMMTarget

F64 = torch.float64
FAIL_PROB = 1e-4
W = np.array([0.5, 0.3, 0.2])  # default GMMTarget weights
OVERLAP = dict(dim=2, weights=[0.5, 0.3, 0.2], means=[[-1.0, 0.0], [0.5, 0.5], [1.0, -1.0]],
               std=[1.0, 0.7, 1.2])

pytestmark = pytest.mark.usefixtures("one_thread")


def make_ctx(target, samples, seed=0):
    """Only ctx.target is read by tv_modes; the other fields are placeholders."""
    train = samples[:1]
    return MetricContext(target=target, reference=samples[:1], score=None,
                         data=TrainingData(train, train, 1), sampler=None,
                         generator=torch.Generator().manual_seed(seed), x0=None)


def margin(n, k=3, confidence=0.95):
    return 0.5 * math.sqrt((k - 1) / n) + math.sqrt(math.log(1 / (1 - confidence)) / (2 * n))


def kernel_image_of_component(j):
    """(KP)_k = E_{x ~ N(m_j, I)} post_k(x) for the default target, by 1-D quadrature: with equal
    isotropic stds the posterior depends only on y = <x, 1>/sqrt(d) ~ N(mu_j, 1), mu = (-a, 0, a)."""
    a = 3 * math.sqrt(10)
    mu = np.array([-a, 0.0, a])

    def post(y):
        logits = np.log(W) - 0.5 * (y - mu) ** 2
        e = np.exp(logits - logits.max())
        return e / e.sum()

    return np.array([quad(lambda y: norm.pdf(y, mu[j]) * post(y)[k], mu[j] - 12, mu[j] + 12,
                          points=[-a / 2, a / 2], limit=200, epsabs=1e-13)[0] for k in range(3)])


# ---------------------------------------------------------------- coverage: exact samples

@pytest.mark.parametrize("params", [{}, OVERLAP], ids=["default_separated", "overlapping"])
def test_exact_samples_give_zero_lower_bound(float64, params):
    """P = pi: TV(KP, w) = 0, so lower > 0 is an exceedance, probability <= alpha = 0.05 (the
    margin is conservative, so the measured rate is far smaller). Over R = 200 repetitions of
    n = 200 samples the count must be <= binom.ppf(1 - 1e-4, 200, 0.05) = 23 (>= 88.5% zeros;
    >= 95% expected on average).
    tv itself: E TV(p~, w) <= 0.5 sqrt((K-1)/n) = 0.05, and the average of the R values is a
    function of the nR samples with bounded differences 1/(nR), so (McDiarmid) it exceeds its
    mean by more than sqrt(log(1e4) / (2 n R)) = 0.011 with probability < 1e-4."""
    target = GMMTarget(**params)
    metric = TVModes()
    reps, n = 200, 200
    gen = torch.Generator().manual_seed(2024)
    lowers, tvs = [], []
    for rep in range(reps):
        x = target.sample(n, gen)
        out = metric(x, make_ctx(target, x, rep))
        lowers.append(out["lower"])
        tvs.append(out["tv"])
    lowers, tvs = np.array(lowers), np.array(tvs)
    nonzero = int((lowers > 0).sum())
    print(f"tv_modes null ({'overlap' if params else 'default'}): zeros {1 - nonzero / reps:.3f}, "
          f"mean tv {tvs.mean():.4f}, max tv {tvs.max():.4f}, margin {margin(n):.4f}")
    assert (lowers >= 0).all()
    assert nonzero <= int(binom.ppf(1 - FAIL_PROB, reps, 0.05))
    assert tvs.mean() <= 0.5 * math.sqrt(2 / n) + math.sqrt(math.log(1 / FAIL_PROB) / (2 * n * reps))


# ---------------------------------------------------------------- power: mode collapse

@pytest.mark.parametrize("j", [0, 1, 2])
def test_mode_collapse_lower_bound_is_close_to_the_true_tv(float64, j):
    """All samples from component j of the default target (a sampler stuck in one mode).
    True TV(P, pi) <= 1 - w_j (pi >= w_j N_j, so (N_j - pi)_+ <= (1 - w_j) N_j), and the kernel
    image KP computed by quadrature puts 1 - O(1e-6) on mode j, so TV(KP, w) = 1 - w_j to 1e-5:
    the bound is valid when lower <= 1 - w_j and sharp when it is within the margin (+ noise) of
    it. Noise of tv: |TV(p~, w) - TV(KP, w)| <= 0.5 sum_k |p~_k - (KP)_k|, each term with
    sd <= sqrt((KP)_k (1 - (KP)_k) / n) (post in [0, 1]); 5 of those bound it."""
    n = 2000
    target = GMMTarget()
    gen = torch.Generator().manual_seed(100 + j)
    x = target.means[j] + target.stds[j] * torch.randn(n, 10, generator=gen, dtype=F64)
    kp = kernel_image_of_component(j)
    kernel_tv = 0.5 * np.abs(kp - W).sum()
    assert kernel_tv == pytest.approx(1 - W[j], abs=1e-5)
    noise = 0.5 * 5 * np.sqrt(kp * (1 - kp) / n).sum()

    out = TVModes()(x, make_ctx(target, x))
    print(f"tv_modes collapse on mode {j}: tv {out['tv']:.6f}, lower {out['lower']:.4f}, "
          f"true kernel TV {kernel_tv:.6f}, margin {margin(n):.4f}")
    assert abs(out["tv"] - kernel_tv) <= noise
    assert out["lower"] == pytest.approx(out["tv"] - margin(n), rel=1e-12)
    assert out["lower"] <= 1 - W[j]
    assert out["lower"] >= kernel_tv - margin(n) - noise
    # P(any of the 2000 draws is misassigned) <= 2000 * 2.2e-6 = 0.4%: the hard histogram is e_j
    assert out["hard_tv"] == pytest.approx(1 - W[j], rel=1e-12)
    assert out[f"mode_{j}"] == pytest.approx(1.0, abs=1e-5)


def test_wrong_mode_weights_are_detected():
    """Samples from the same components with weights (0.2, 0.3, 0.5): TV(KP, w) = 0.3 (to 1e-5,
    as above). |E tv - TV(KP, w)| <= E TV(p~, KP) <= 0.5 sqrt(2/n), and (McDiarmid, differences
    1/n) tv deviates from its mean by more than sqrt(log(2e4) / (2n)) with probability < 1e-4."""
    n = 5000
    wrong = GMMTarget(weights=[0.2, 0.3, 0.5])
    x = wrong.sample(n, torch.Generator().manual_seed(5))
    out = TVModes()(x, make_ctx(GMMTarget(), x))
    slack = 0.5 * math.sqrt(2 / n) + math.sqrt(math.log(2 / FAIL_PROB) / (2 * n))
    print(f"tv_modes wrong weights: tv {out['tv']:.4f}, lower {out['lower']:.4f}, hard {out['hard_tv']:.4f}")
    assert abs(out["tv"] - 0.3) <= slack
    assert 0.3 - margin(n) - slack <= out["lower"] <= 0.3 + 1e-5
    assert out["hard_tv"] == pytest.approx(out["tv"], abs=1e-4)  # modes are essentially hard


# ---------------------------------------------------------------- keys, precision, chunking

def test_keys_are_consistent_and_float32_input_gives_float64_numbers(monkeypatch):
    target = GMMTarget(**OVERLAP)
    x = target.sample(3000, torch.Generator().manual_seed(6)).to(F64) * 1.5  # too wide: TV > 0
    metric = TVModes(confidence=0.99)
    out = metric(x, make_ctx(target, x))
    assert set(out) == {"tv", "lower", "hard_tv", "mode_0", "mode_1", "mode_2"}
    assert all(isinstance(v, float) for v in out.values())
    modes = np.array([out[f"mode_{j}"] for j in range(3)])
    assert modes.sum() == pytest.approx(1.0, abs=1e-12)
    assert out["tv"] == pytest.approx(0.5 * np.abs(modes - W).sum(), rel=1e-12)
    assert out["lower"] == pytest.approx(max(0.0, out["tv"] - margin(3000, confidence=0.99)), abs=1e-15)
    post = target.component_posterior(x)
    hard = torch.bincount(post.argmax(-1), minlength=3).double().numpy() / 3000
    assert out["hard_tv"] == pytest.approx(0.5 * np.abs(hard - W).sum(), rel=1e-12)
    # float32 samples: the posterior is computed in float64 of the same points
    out32 = metric(x.float(), make_ctx(target, x))
    assert out32 == pytest.approx(metric(x.float().double(), make_ctx(target, x)), rel=1e-12)
    # chunked evaluation (bounded memory) gives the same numbers
    monkeypatch.setattr(mode_metrics, "_CHUNK", 700)
    assert metric(x, make_ctx(target, x)) == pytest.approx(out, rel=1e-12)


# ---------------------------------------------------------------- applicability and params

def test_non_mixture_target_is_skipped():
    target = GaussianTarget(3)
    x = target.sample(10, torch.Generator().manual_seed(0))
    with pytest.raises(SkipMetric, match="GaussianTarget") as info:
        TVModes()(x, make_ctx(target, x))
    assert "mixture" in str(info.value) and "tv_modes" in str(info.value)


def test_non_finite_samples_are_skipped():
    target = GMMTarget()
    x = torch.zeros(5, 10)
    x[2, 3] = float("nan")
    with pytest.raises(SkipMetric, match="non-finite"):
        TVModes()(x, make_ctx(target, x))


@pytest.mark.parametrize("confidence", [0.0, 1.0, 1.5, -0.1, True, "0.9"])
def test_bad_confidence_raises_value_error_naming_it(confidence):
    with pytest.raises(ValueError, match="confidence"):
        TVModes(confidence=confidence)


def test_tv_modes_registers_through_the_plugin_hook():
    from bench_core.components.discovery import BUILTIN_MODULES, build_registry

    extra = [] if mode_metrics.__name__ in BUILTIN_MODULES else [mode_metrics]
    registry = build_registry(extra=extra, entry_points=False)
    assert "tv_modes" in registry.names("metrics")
    assert registry.get("metrics", "tv_modes").factory is TVModes
    assert TVModes.higher_is_better is True


@pytest.mark.parametrize("name, params", [
    ("ddpm", {}), ("ddpm", {"discretization": "exponential"}), ("ddim", {}), ("cld", {}), ("annealed_langevin", {}),
])
def test_diffusion_samplers_with_exact_scores_find_every_mode(name, params, one_thread):
    """Issue acceptance: on the default gmm, exact scores give tv_modes.lower <= 0.05 for every diffusion
    sampler at its default settings. With n = 2000 the margin is 0.5 sqrt(2/n) + sqrt(log 20 / (2n)) = 0.043.
    The point estimate tv must also be <= 0.06: for a sampler with the exact mode weights E[tv] <= 0.5 sqrt(2/n)
    = 0.016 and McDiarmid puts the deviation above sqrt(log 1000 / (2n)) = 0.042 at probability <= 1e-3."""
    from bench_core.components.discovery import get_registry
    from bench_plugins.scores.exact import ExactScore

    registry = get_registry()
    target = registry.create("targets", "gmm")
    gen = torch.Generator().manual_seed(5)
    x0 = torch.randn(2000, target.dim, generator=gen)
    samples = registry.create("samplers", name, **params).sample(ExactScore(target, None), x0, generator=gen)
    out = TVModes()(samples, MetricContext(target, x0, None, None, None, gen))
    assert out["lower"] <= 0.05, out
    assert out["tv"] <= 0.06, out
