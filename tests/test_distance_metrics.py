"""sinkhorn, energy, radius, nearest_train (plugins/metrics/distances.py): exact identities,
closed-form expectations within sampling error, edge cases.

Tolerances are "5 standard errors" (two-sided false-alarm probability 5.7e-7 under a normal
approximation) with the standard error derived in each test.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import gammaln
from scipy.stats import chi, norm

from bench_core.base.errors import SkipMetric
from bench_core.components.protocols import MetricContext, TrainingData
from bench_plugins.metrics import distances as distance_metrics
from bench_plugins.metrics.distances import (Energy, NearestTrain, Radius, Sinkhorn, energy_distance,
                                            nearest_distance, sinkhorn_divergence)
from bench_plugins.targets.gaussian import GaussianTarget

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")


def make_ctx(target, reference, seed, distinct=None):
    distinct = reference[:10] if distinct is None else distinct
    return MetricContext(target=target, reference=reference, score=None,
                         data=TrainingData(distinct.repeat(2, 1), distinct, 2), sampler=None,
                         generator=torch.Generator().manual_seed(seed), x0=None)


def e1(d, a):
    v = torch.zeros(d)
    v[0] = a
    return v


# ---------------------------------------------------------------- sinkhorn

def test_sinkhorn_of_a_translated_cloud_is_half_the_squared_shift():
    """For p = 2 the cost is |x - y|^2 / 2. With y_j = x_j + c the cost of the pair (x_i, y_j) is
    |x_i - x_j|^2 / 2 - c.(x_i - x_j) + |c|^2 / 2; the middle term is separable, so every coupling
    with uniform marginals gives it the same value (0): OT_eps(X, X + c) = OT_eps(X, X) + |c|^2/2,
    OT_eps(X + c, X + c) = OT_eps(X, X), hence S_eps(X, X + c) = |c|^2 / 2 exactly."""
    x = torch.randn(300, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    c = torch.tensor([2.0, -1.0, 0.5], dtype=F64)
    assert sinkhorn_divergence(x, x + c) == pytest.approx(float(c.pow(2).sum()) / 2, rel=1e-6)
    assert abs(sinkhorn_divergence(x, x)) < 1e-8
    # p = 1: the cost |x - y| of a translation is at most |c| per pair
    assert 0 < sinkhorn_divergence(x, x + c, p=1) <= float(c.norm()) + 1e-6


def test_sinkhorn_metric_shift_gives_half_the_squared_shift():
    """Produced N(2 e_1, I) vs pi = N(0, I), d = 2, n = 500 (the PAPER protocol). With sample means
    xbar, ybar the same separability gives S(X, Y) = |xbar - ybar|^2 / 2 + S(centered clouds);
    xbar - ybar = c + D, D ~ N(0, (2/n) I): |c + D|^2 / 2 = 2 + c.D + |D|^2/2 with
    sd(c.D) = |c| sqrt(2/n) = 0.126 and E|D|^2/2 = d/n = 0.004. The centered term is a null-like
    value (~ null, positive). So |value - 2| <= 5 * 0.126 + 0.004 + null-sized slack."""
    d, n = 2, 500
    target = GaussianTarget(d)
    gen = torch.Generator().manual_seed(1)
    x = target.sample(n, gen) + e1(d, 2.0)
    ref = target.sample(5000, gen)
    metric = Sinkhorn()
    assert (metric.p, metric.blur, metric.n_mc) == (2, 0.01, 500) and metric.higher_is_better is False
    out = metric(x, make_ctx(target, ref, 0))
    print(f"sinkhorn shift: {out}")
    assert 0.0 < out["null"] < 0.2 and math.isfinite(out["null"])
    assert abs(out["value"] - 2.0) < 5 * 2 * math.sqrt(2 / n) + d / n + 2 * out["null"]


def test_sinkhorn_metric_identical_distributions_value_is_like_null():
    """Produced samples exact (from pi): value = S(X, Y_a) and null = S(Y_a, Y_b) are identically
    distributed (X, Y_a, Y_b independent n-samples of pi), so P(value > null) = 1/2: over R = 8
    repetitions the count is Bin(8, 1/2); we accept 1..7 (false alarm 2/256 < 1%). Both stay
    at the finite-sample floor (~0.05 for n = 200, d = 2), far below the 2.0 of the shift test:
    we check < 0.25. The reference has fewer than 2n rows, so it is topped up with target draws."""
    d, n, reps = 2, 200, 8
    target = GaussianTarget(d)
    metric = Sinkhorn(n_mc=n)
    gen = torch.Generator().manual_seed(2)
    above, values, nulls = 0, [], []
    for rep in range(reps):
        x, ref = target.sample(400, gen), target.sample(250, gen)
        out = metric(x, make_ctx(target, ref, rep))
        above += out["value"] > out["null"]
        values.append(out["value"])
        nulls.append(out["null"])
    print(f"sinkhorn identical: mean value {np.mean(values):.4f}, mean null {np.mean(nulls):.4f}, "
          f"value > null in {above}/{reps}")
    assert 1 <= above <= reps - 1
    assert max(values) < 0.25 and 0 < min(nulls) and max(nulls) < 0.25


def test_sinkhorn_is_deterministic_and_handles_few_samples():
    target = GaussianTarget(2)
    gen = torch.Generator().manual_seed(3)
    x, ref = target.sample(60, gen), target.sample(100, gen)
    a = Sinkhorn(n_mc=500)(x, make_ctx(target, ref, 4))
    assert a == Sinkhorn(n_mc=500)(x, make_ctx(target, ref, 4))  # m = min(n_mc, 60) = 60, 120 ref rows
    with pytest.raises(SkipMetric):
        Sinkhorn()(torch.full((10, 2), float("nan")), make_ctx(target, ref, 4))


# ---------------------------------------------------------------- energy

def test_energy_matches_the_v_statistic_formula():
    """geomloss "energy" = mean|x - y| - mean|x - x'|/2 - mean|y - y'|/2 (V-statistics), checked
    against torch.cdist (direct differences); geomloss's sqrt(max(d^2, 1e-8)) adds 1e-4 per
    diagonal term, i.e. 1e-4 / n in total, and its matmul-based distances round at ~1e-7."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(300, 4, generator=gen, dtype=F64)
    y = torch.randn(200, 4, generator=gen, dtype=F64) * 1.3 + 0.4
    cd = lambda a, b: torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")  # noqa: E731
    direct = float(cd(x, y).mean() - cd(x, x).mean() / 2 - cd(y, y).mean() / 2)
    assert energy_distance(x, y) == pytest.approx(direct, abs=1e-5)


def test_energy_metric_expectation_in_one_dimension():
    """d = 1, X ~ N(delta, 1), Y ~ N(0, 1), n points each:
    E value = E|X - Y| - (1 - 1/n) E|X - X'| with X - Y ~ N(delta, 2), X - X' ~ N(0, 2):
    E|N(m, s^2)| = s sqrt(2/pi) exp(-m^2 / 2s^2) + m (1 - 2 Phi(-m/s)), E|X - X'| = 2/sqrt(pi).
    R = 20 repetitions: the mean is within 5 empirical standard errors (+ the 1e-4/n clamp)."""
    n, delta, reps = 500, 0.7, 20
    target = GaussianTarget(1)
    s = math.sqrt(2)
    exy = s * math.sqrt(2 / math.pi) * math.exp(-delta**2 / (2 * s**2)) + delta * (1 - 2 * norm.cdf(-delta / s))
    expected = exy - (1 - 1 / n) * 2 / math.sqrt(math.pi)
    gen = torch.Generator().manual_seed(5)
    metric = Energy(n_mc=n)
    values, nulls = [], []
    for rep in range(reps):
        x, ref = target.sample(n, gen) + delta, target.sample(2 * n, gen)
        out = metric(x, make_ctx(target, ref, rep))
        values.append(out["value"])
        nulls.append(out["null"])
    se = np.std(values, ddof=1) / math.sqrt(reps)
    print(f"energy d=1: mean value {np.mean(values):.5f}, expected {expected:.5f}, se {se:.5f}, "
          f"mean null {np.mean(nulls):.5f}")
    assert abs(np.mean(values) - expected) < 5 * se + 1e-4
    # null (both sets from N(0, 1)): E = E|Y - Y'| - (1 - 1/n) E|Y - Y'| = 2 / (n sqrt(pi)),
    # the V-statistic floor
    null_expected = 2 / (n * math.sqrt(math.pi))
    assert all(0 < v < 1 for v in nulls)
    assert abs(np.mean(nulls) - null_expected) < 5 * np.std(nulls, ddof=1) / math.sqrt(reps) + 1e-4
    assert Energy.higher_is_better is False and metric.n_mc == n


# ---------------------------------------------------------------- radius

def test_radius_of_standard_normal_matches_the_chi_distribution():
    """||x|| for N(0, I_d) is chi_d: mean sqrt(2) Gamma((d+1)/2) / Gamma(d/2) ~ sqrt(d - 1/2),
    variance d - mean^2; the q-quantile's standard error is sqrt(q(1 - q)/n) / f(x_q) with f the
    chi_d density. Each statistic within 5 standard errors; rel_gap within 5 sd of
    (mean - ref_mean)/ref_mean, sd = sqrt(2 var / n) / mean."""
    d, n = 10, 5000
    target = GaussianTarget(d)
    gen = torch.Generator().manual_seed(0)
    x, ref = target.sample(n, gen), target.sample(n, gen)
    out = Radius()(x, make_ctx(target, ref, 0))
    mean = math.sqrt(2) * math.exp(gammaln((d + 1) / 2) - gammaln(d / 2))
    assert abs(mean - math.sqrt(d - 0.5)) < 0.01
    se_mean = math.sqrt((d - mean**2) / n)
    assert abs(out["mean"] - mean) < 5 * se_mean and abs(out["ref_mean"] - mean) < 5 * se_mean
    for key, q in (("q05", 0.05), ("q50", 0.5), ("q95", 0.95)):
        xq = chi.ppf(q, d)
        se_q = math.sqrt(q * (1 - q) / n) / chi.pdf(xq, d)
        assert abs(out[key] - xq) < 5 * se_q, key
    xq = chi.ppf(0.5, d)
    assert abs(out["ref_q50"] - xq) < 5 * math.sqrt(0.25 / n) / chi.pdf(xq, d)
    assert out["rel_gap"] < 5 * math.sqrt(2) * se_mean / mean
    assert out["rel_gap"] == pytest.approx(abs(out["mean"] - out["ref_mean"]) / out["ref_mean"])
    # trapped particles (the ball trap): a large relative gap
    far = Radius()(x, make_ctx(target, ref + 3.0, 0))
    assert far["rel_gap"] > 0.5


# ---------------------------------------------------------------- nearest_train

def test_nearest_distance_is_exact_and_chunked(monkeypatch):
    gen = torch.Generator().manual_seed(0)
    x, pts = torch.randn(500, 7, generator=gen, dtype=F64), torch.randn(300, 7, generator=gen, dtype=F64)
    brute = torch.cdist(x, pts, compute_mode="donot_use_mm_for_euclid_dist").min(1).values
    monkeypatch.setattr(distance_metrics, "_NN_BLOCK_ELEMENTS", 300 * 37)  # blocks of 37 rows
    torch.testing.assert_close(nearest_distance(x, pts), brute, rtol=0, atol=1e-12)
    assert (nearest_distance(pts[::3] * 1.0, pts) == 0).all()  # on a training point: exactly 0


def test_nearest_train_memorized_samples_give_zero():
    d = 20
    target = GaussianTarget(d)
    gen = torch.Generator().manual_seed(1)
    distinct, ref = target.sample(1000, gen), target.sample(2000, gen)
    samples = distinct[torch.randint(0, 1000, (2000,), generator=gen)]
    out = NearestTrain()(samples, make_ctx(target, ref, 0, distinct=distinct))
    assert out["ratio"] == 0.0 and out["median"] == 0.0 and out["ref_median"] > 1.0
    assert NearestTrain.higher_is_better is True


def test_nearest_train_fresh_samples_give_ratio_near_one():
    """Fresh samples and the reference are i.i.d. draws given the training set, so their NN
    distances have the same law and the same median. The sample median's standard error is
    0.5 Q'(1/2) / sqrt(n), with the quantile-function slope Q'(1/2) estimated from the pooled
    distances, (Q(0.55) - Q(0.45)) / 0.1; ratio - 1 ~ (med - ref_med) / med has sd
    sqrt(2) se / med. We require |ratio - 1| < 5 sd."""
    d, n = 5, 4000
    target = GaussianTarget(d)
    gen = torch.Generator().manual_seed(2)
    distinct, x, ref = target.sample(1000, gen), target.sample(n, gen), target.sample(n, gen)
    out = NearestTrain()(x, make_ctx(target, ref, 0, distinct=distinct))
    pooled = torch.cat([nearest_distance(x, distinct), nearest_distance(ref, distinct)])
    q45, q55 = torch.quantile(pooled, torch.tensor([0.45, 0.55], dtype=F64)).tolist()
    se = 0.5 * (q55 - q45) / 0.1 / math.sqrt(n)
    sd_ratio = math.sqrt(2) * se / out["ref_median"]
    print(f"nearest_train fresh: {out}, sd(ratio) {sd_ratio:.4f}")
    assert abs(out["ratio"] - 1.0) < 5 * sd_ratio
    assert sd_ratio < 0.05  # the check is informative


def test_nearest_train_skips_without_training_points():
    target = GaussianTarget(2)
    ref = target.sample(20, torch.Generator().manual_seed(0))
    with pytest.raises(SkipMetric, match="nearest_train"):
        NearestTrain()(ref, make_ctx(target, ref, 0, distinct=ref[:0]))


# ---------------------------------------------------------------- params and registration

@pytest.mark.parametrize("factory, kwargs, name", [
    (Sinkhorn, {"p": 3}, "'p'"), (Sinkhorn, {"blur": 0}, "blur"), (Sinkhorn, {"n_mc": 0}, "'n_mc'"),
    (Sinkhorn, {"scaling": 1.0}, "scaling"), (Energy, {"n_mc": -5}, "'n_mc'")])
def test_bad_params_raise_value_error_naming_them(factory, kwargs, name):
    with pytest.raises(ValueError, match=name):
        factory(**kwargs)


def test_distance_metrics_register_through_the_plugin_hook():
    from bench_core.components.discovery import BUILTIN_MODULES, build_registry

    extra = [] if distance_metrics.__name__ in BUILTIN_MODULES else [distance_metrics]
    registry = build_registry(extra=extra, entry_points=False)
    for name, cls in (("sinkhorn", Sinkhorn), ("energy", Energy), ("radius", Radius),
                      ("nearest_train", NearestTrain)):
        assert registry.get("metrics", name).factory is cls
