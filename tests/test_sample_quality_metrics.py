"""frechet and precision_recall (plugins/metrics/sample_quality.py): closed forms, expectations within
sampling error, the subset rules, edge cases and the conformance kit.

Tolerances are "5 standard errors" (two-sided false-alarm probability 5.7e-7 under a normal
approximation) with the standard error derived in each test.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from bench_core import MetricContext, SkipMetric, TrainingData
from bench_core.components.discovery import get_registry
from bench_core.kit import check_metric
from bench_plugins.metrics.sample_quality import (Frechet, PrecisionRecall, _psd_sqrt, frechet_distance,
                                                  frechet_gaussians, kth_neighbour_radii, manifold_precision_recall)
from bench_plugins.samplers.langevin import ULA
from bench_plugins.targets.gaussian import GaussianTarget

F64 = torch.float64

pytestmark = pytest.mark.usefixtures("one_thread")

# two non-commuting covariances in d = 3 (S = L L^T) and a mean shift
L1 = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.8, 0.0], [-0.3, 0.2, 0.6]], dtype=F64)
L2 = torch.tensor([[1.3, 0.0, 0.0], [-0.4, 0.7, 0.0], [0.2, 0.5, 0.9]], dtype=F64)
S1, S2 = L1 @ L1.T, L2 @ L2.T
MU1, MU2 = torch.zeros(3, dtype=F64), torch.tensor([0.5, -0.3, 0.2], dtype=F64)


def make_ctx(reference: torch.Tensor, seed: int) -> MetricContext:
    target = GaussianTarget(reference.shape[1])
    data = TrainingData(reference[:10], reference[:10], 1)
    return MetricContext(target, reference, None, data, ULA(), torch.Generator().manual_seed(seed))


def gaussian(n: int, mu: torch.Tensor, chol: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return torch.randn(n, mu.shape[0], generator=gen, dtype=F64) @ chol.T + mu


# ---------------------------------------------------------------- frechet

def test_frechet_gaussians_matches_closed_forms():
    """Commuting (diagonal) covariances: d^2 = |mu1 - mu2|^2 + sum (s1_i - s2_i)^2. Non-commuting: the FID
    reference formula tr(S1 + S2) - 2 tr sqrtm(S1 S2) (scipy's complex sqrtm), to rounding. Symmetric,
    0 for equal laws, and a shift c adds exactly |c|^2."""
    s1, s2 = torch.tensor([1.0, 4.0, 0.25], dtype=F64), torch.tensor([2.0, 1.0, 1.0], dtype=F64)
    diag = frechet_gaussians(MU1, torch.diag(s1**2), MU2, torch.diag(s2**2))
    assert diag == pytest.approx(float((MU1 - MU2).pow(2).sum() + (s1 - s2).pow(2).sum()), rel=1e-12)
    scipy_value = float((MU1 - MU2).pow(2).sum() + torch.trace(S1 + S2)
                        - 2 * np.trace(scipy.linalg.sqrtm(S1.numpy() @ S2.numpy())).real)
    value = frechet_gaussians(MU1, S1, MU2, S2)
    print(f"frechet closed form: {value:.12f} (scipy sqrtm {scipy_value:.12f})")
    assert value == pytest.approx(scipy_value, rel=1e-10) and value == pytest.approx(1.442797290916, rel=1e-9)
    assert frechet_gaussians(MU2, S2, MU1, S1) == pytest.approx(value, rel=1e-12)
    assert frechet_gaussians(MU1, S1, MU1, S1) < 1e-12
    c = torch.tensor([1.0, -2.0, 0.5], dtype=F64)
    assert frechet_gaussians(MU1, S1, MU1 + c, S1) == pytest.approx(float(c.pow(2).sum()), abs=1e-12)
    # a singular covariance (fewer points than dimensions) is PSD: still finite and >= 0
    assert frechet_gaussians(MU1, torch.diag(torch.tensor([1.0, 0.0, 0.0], dtype=F64)), MU1, S1) > 0


def test_frechet_distance_of_samples_is_symmetric():
    gen = torch.Generator().manual_seed(0)
    x, y = gaussian(500, MU1, L1, gen), gaussian(300, MU2, L2, gen)
    assert frechet_distance(x, y) == pytest.approx(frechet_distance(y, x), rel=1e-12)
    assert frechet_distance(x, x) < 1e-12


def test_frechet_metric_matches_the_closed_form_within_sampling_error():
    """Samples of N(mu1, S1), reference of N(mu2, S2), m = 2000 each. Delta method: the mean term
    |Delta + D|^2 with D ~ N(0, (S1 + S2)/m) has sd 2 sqrt(Delta'(S1 + S2)Delta / m) and bias tr(S1 + S2)/m;
    the covariance term B(S1, S2) has gradients I - T (in S1) and I - T^{-1} (in S2), T the optimal map
    N(0, S1) -> N(0, S2), and Var tr(A S_hat) = 2 tr(A S A S)/(m - 1): sd_cov^2 = sum of those. Its
    second-order bias is O(d(d+1) lambda_max / m) (cf. the null test). Tolerance: 5 sd + twice both biases.
    (Over 200 repetitions: mean error 0.0049, sd 0.059 vs the 0.060 derived.)"""
    m, d = 2000, 3
    gen = torch.Generator().manual_seed(1)
    x, ref = gaussian(m, MU1, L1, gen), gaussian(2 * m, MU2, L2, gen)
    out = Frechet()(x, make_ctx(ref, 0))
    closed = frechet_gaussians(MU1, S1, MU2, S2)
    root = _psd_sqrt(S1)
    inv_root = torch.linalg.inv(root)
    t_map = inv_root @ _psd_sqrt(root @ S2 @ root) @ inv_root
    g1, g2, delta = torch.eye(d, dtype=F64) - t_map, torch.eye(d, dtype=F64) - torch.linalg.inv(t_map), MU1 - MU2
    var = (4 * float(delta @ (S1 + S2) @ delta) / m + 2 * float(torch.trace(g1 @ S1 @ g1 @ S1)) / (m - 1)
           + 2 * float(torch.trace(g2 @ S2 @ g2 @ S2)) / (m - 1))
    lam = max(float(torch.linalg.eigvalsh(S1).max()), float(torch.linalg.eigvalsh(S2).max()))
    bias = float(torch.trace(S1 + S2)) / m + d * (d + 1) * lam / m
    print(f"frechet vs closed form {closed:.4f}: {out}, sd {math.sqrt(var):.4f}, bias bound {bias:.4f}")
    assert abs(out["value"] - closed) < 5 * math.sqrt(var) + 2 * bias
    assert 0 < out["null"] < 0.05  # N(mu2, S2) vs itself: ~ (2 tr S2 + d(d+1) lam / 2) / m ~ 0.02


def test_frechet_value_is_like_null_for_exact_draws():
    """Exact samples of N(0, I_3), m = 2000: value and null are identically distributed, so over R = 8
    repetitions #(value > null) ~ Bin(8, 1/2); we accept 1..7 (false alarm 2/256 < 1%). Their mean:
    E|xbar - ybar|^2 = 2d/m, and with E = S_a - S_b, B ~ tr(E^2)/4 = (1/m)(sum_i chi2_ii + sum_{i<j} chi2_ij)
    (Var E_ii = 4/m, Var E_ij = 2/m): E B = d(d+1)/(2m). Total 0.006, sd sqrt(6 (2/m)^2 + 12/m^2) = 0.0030;
    the mean of the 16 values is within 5 sd / sqrt(16)."""
    d, m, reps = 3, 2000, 8
    expected = 2 * d / m + d * (d + 1) / (2 * m)
    sd = math.sqrt(6 * (2 / m) ** 2 + 12 / m**2)
    gen = torch.Generator().manual_seed(2)
    above, values = 0, []
    for rep in range(reps):
        x, ref = torch.randn(m, d, generator=gen, dtype=F64), torch.randn(2 * m, d, generator=gen, dtype=F64)
        out = Frechet()(x, make_ctx(ref, rep))
        above += out["value"] > out["null"]
        values += [out["value"], out["null"]]
    print(f"frechet exact draws: mean {np.mean(values):.5f} (expected {expected:.5f}, sd of the mean "
          f"{sd / 4:.5f}), value > null in {above}/{reps}")
    assert 1 <= above <= reps - 1
    assert abs(np.mean(values) - expected) < 5 * sd / math.sqrt(2 * reps)


def test_frechet_uses_equal_subsets_when_the_reference_is_small():
    """m = min(n_mc, #samples, #reference // 2): 1000 samples, 300 reference rows -> m = 150 for both value
    and null; the subsets are the generator's permutations (samples first, then reference)."""
    gen = torch.Generator().manual_seed(3)
    x, ref = torch.randn(1000, 2, generator=gen, dtype=F64) + 0.5, torch.randn(300, 2, generator=gen, dtype=F64)
    out = Frechet()(x, make_ctx(ref, 7))
    g = torch.Generator().manual_seed(7)
    px, pr = torch.randperm(1000, generator=g), torch.randperm(300, generator=g)
    assert out["value"] == frechet_distance(x[px[:150]], ref[pr[:150]])
    assert out["null"] == frechet_distance(ref[pr[:150]], ref[pr[150:300]])
    assert out == Frechet()(x, make_ctx(ref, 7))  # deterministic given the generator
    assert Frechet(n_mc=100)(x, make_ctx(ref, 7))["value"] != out["value"]


def test_frechet_skips_and_refuses():
    ref = torch.randn(50, 2, generator=torch.Generator().manual_seed(4))
    with pytest.raises(SkipMetric, match="non-finite"):
        Frechet()(torch.full((10, 2), float("nan")), make_ctx(ref, 0))
    with pytest.raises(SkipMetric, match="at least 2"):
        Frechet()(torch.zeros(1, 2), make_ctx(ref, 0))
    with pytest.raises(SkipMetric, match="reference"):
        Frechet()(torch.zeros(10, 2), make_ctx(ref[:3], 0))
    with pytest.raises(ValueError, match="n_mc"):
        Frechet(n_mc=0)


# ---------------------------------------------------------------- precision / recall

def brute_force(fake: np.ndarray, real: np.ndarray, k: int) -> tuple[float, float]:
    """The definition, with numpy and full distance matrices."""
    def radii(a):
        dist = np.linalg.norm(a[:, None] - a[None], axis=-1)
        return np.sort(dist, axis=1)[:, k]  # column 0 is the point itself

    cross = np.linalg.norm(fake[:, None] - real[None], axis=-1)
    precision = (cross <= radii(real)[None, :]).any(axis=1).mean()
    recall = (cross.T <= radii(fake)[None, :]).any(axis=1).mean()
    return float(precision), float(recall)


def test_precision_recall_blocks_match_the_definition():
    """Blocks of 7 distances (several rows per block, blocks split mid-set) give the brute-force result."""
    gen = torch.Generator().manual_seed(5)
    fake = torch.randn(120, 3, generator=gen, dtype=F64) * 1.5 + 0.3
    real = torch.randn(90, 3, generator=gen, dtype=F64)
    for k in (1, 3, 5):
        expected = brute_force(fake.numpy(), real.numpy(), k)
        assert manifold_precision_recall(fake, real, k, block_elements=7 * 90) == pytest.approx(expected, abs=1e-12)
        assert manifold_precision_recall(fake, real, k) == pytest.approx(expected, abs=1e-12)
    radii = kth_neighbour_radii(real, 3, block_elements=1)
    assert torch.allclose(radii, torch.cdist(real, real).sort(dim=1).values[:, 3])
    # identical sets: every point lies in its own ball
    assert manifold_precision_recall(real, real, 3) == (1.0, 1.0)


def test_precision_recall_are_high_for_two_samples_of_one_law():
    """Two independent samples of N(0, I_d), n = 2000, k = 3: a fresh point escapes every k-NN ball only in
    the tails, so both are high; over 10 repetitions the means were 0.982 / 0.979 (d = 2) and 0.976 / 0.971
    (d = 3), sd ~0.004 (binomial: sqrt(0.02 * 0.98 / 2000) = 0.003). We require > 0.95 (>= 5 sd below)."""
    for d in (2, 3):
        gen = torch.Generator().manual_seed(10 + d)
        x, ref = torch.randn(2000, d, generator=gen), torch.randn(2000, d, generator=gen)
        out = PrecisionRecall()(x, make_ctx(ref, d))
        print(f"precision_recall same law, d = {d}: {out}")
        assert out["precision"] > 0.95 and out["recall"] > 0.95


def test_precision_recall_when_the_samples_cover_one_of_two_modes():
    """Reference: equal mixture of N(-10 e1, I) and N(+10 e1, I) (d = 2); samples: the +10 mode only.
    Precision: every sample is a point of that mode, covered like a same-law sample (~0.98 > 0.95).
    Recall: a reference point of the missing mode is ~20 away from every sample (no sample ball reaches
    it: radii << 10), so recall <= f, the fraction of reference points in the covered mode (Bin(2000, 1/2)/2000:
    0.5 +- 0.011); the covered ones are caught with the same-law probability ~0.98: recall / f > 0.95."""
    gen = torch.Generator().manual_seed(20)
    sign = torch.where(torch.rand(2000, generator=gen) < 0.5, -1.0, 1.0).to(F64)
    ref = torch.randn(2000, 2, generator=gen, dtype=F64)
    ref[:, 0] += 10 * sign
    x = torch.randn(2000, 2, generator=gen, dtype=F64)
    x[:, 0] += 10
    out = PrecisionRecall()(x, make_ctx(ref, 0))
    f = float((sign > 0).double().mean())
    print(f"precision_recall one of two modes: {out}, covered fraction of the reference {f:.4f}")
    assert float(kth_neighbour_radii(x, 3).max()) < 5.0  # no ball reaches the other mode
    assert out["precision"] > 0.95
    assert 0.95 * f < out["recall"] <= f and abs(out["recall"] - 0.5) < 0.07


def test_precision_recall_of_disjoint_sets_is_zero_and_subsets_are_deterministic():
    gen = torch.Generator().manual_seed(21)
    ref = torch.randn(500, 2, generator=gen)
    assert PrecisionRecall()(ref + 100.0, make_ctx(ref, 0)) == {"precision": 0.0, "recall": 0.0}
    x = torch.randn(3000, 2, generator=gen)
    metric = PrecisionRecall(k=5, n_mc=400)
    assert (metric.k, metric.n_mc, metric.higher_is_better) == (5, 400, True)
    assert metric(x, make_ctx(ref, 1)) == metric(x, make_ctx(ref, 1))
    g = torch.Generator().manual_seed(1)  # n_mc = 400: 400 of the samples, then 400 of the reference
    fake, real = x[torch.randperm(3000, generator=g)[:400]], ref[torch.randperm(500, generator=g)[:400]]
    p, r = manifold_precision_recall(fake, real, 5)
    assert metric(x, make_ctx(ref, 1)) == {"precision": p, "recall": r}


def test_precision_recall_skips_and_refuses():
    ref = torch.randn(50, 2, generator=torch.Generator().manual_seed(22))
    with pytest.raises(SkipMetric, match="non-finite"):
        PrecisionRecall()(torch.full((10, 2), float("inf")), make_ctx(ref, 0))
    with pytest.raises(SkipMetric, match="at least 4"):
        PrecisionRecall()(torch.zeros(3, 2), make_ctx(ref, 0))
    with pytest.raises(SkipMetric, match="reference"):
        PrecisionRecall()(torch.zeros(10, 2), make_ctx(ref[:3], 0))
    for bad in ({"k": 0}, {"n_mc": -1}, {"k": 2.5}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            PrecisionRecall(**bad)


# ---------------------------------------------------------------- registry and conformance kit

def test_metrics_through_the_registry_pass_the_conformance_kit():
    reg = get_registry()  # built in: registered like any plugin
    frechet = reg.create("metrics", "frechet")
    pr = reg.create("metrics", "precision_recall", k=3, n_mc=300)
    assert isinstance(frechet, Frechet) and frechet.n_mc == 2000 and frechet.keys == ("value", "null")
    assert pr.keys == ("precision", "recall") and pr.higher_is_better is True and frechet.higher_is_better is False
    check_metric(frechet)
    check_metric(pr)
    check_metric(reg.create("metrics", "frechet", n_mc=50), dim=5, n=200, seed=3)
