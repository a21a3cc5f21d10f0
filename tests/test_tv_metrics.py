"""score_error, tv_witness, tv_classifier (plugins/metrics/tv.py): exact values, coverage of the
certified TV lower bounds over repetitions, determinism, speed.

Statistical thresholds. A certified bound ``lower`` with one-sided level ``alpha`` exceeds the
true TV with probability ``r <= alpha`` in each repetition; over R independent repetitions the
number of exceedances is Bin(R, r). We allow at most ``binom.ppf(1 - 1e-4, R, r)`` of them,
so a correct implementation fails with probability < 1e-4 (and with fixed seeds, never).
Where the exceedance rate ``r`` can be computed exactly (closed-form pi(A): the count is
Bin(n, P(A))) we use that exact rate, which is what makes the check sharp.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import beta as beta_dist
from scipy.stats import binom, ncx2, norm

from bench_core.base.errors import SkipMetric
from bench_core.components.protocols import MetricContext, TrainingData
from bench_plugins.metrics import score_error
from bench_plugins.metrics import tv as tv_metrics
from bench_plugins.metrics.score_error import LOG10_FLOOR, ScoreError
from bench_plugins.targets.gaussian import GaussianTarget
from bench_plugins.metrics.tv import (TVClassifier, TVWitness,
                                      clopper_pearson_lower, clopper_pearson_upper)

F64 = torch.float64
FAIL_PROB = 1e-4  # design false-alarm probability of every repetition-count check


pytestmark = pytest.mark.usefixtures("one_thread")


def max_exceedances(reps: int, rate: float) -> int:
    """Largest number of exceedances accepted out of ``reps`` when each has probability <= rate."""
    return int(binom.ppf(1.0 - FAIL_PROB, reps, rate))


# ---------------------------------------------------------------- test score estimates

class ShiftedScore:
    """s_hat(x, t) = grad log p_t(x) + c (a constant vector): error ||c||^2 everywhere."""

    def __init__(self, target, c):
        self.target, self.c = target, c

    def __call__(self, x, t):
        return self.target.score(x, t) + self.c.to(x)


class ScaledScore:
    """For N(0, I): s_hat(x) = -(1 - k) x, error ||k x||^2, E_pi = k^2 d."""

    def __init__(self, k):
        self.k = k

    def __call__(self, x, t):
        return -(1.0 - self.k) * x


class BallTrap:
    """Theorem 1's estimate for pi = N(mu, I): -x on ||x|| <= R, the true score -(x - mu) beyond
    2R, a linear blend in between (a hard-ish stand-in for the smooth step phi). Error
    ||phi mu||^2 <= ||mu||^2 on the ball ||x|| <= 2R (the witness region), 0 outside.

    region_log_mass = log pi(||x|| <= 2R) = log ncx2.cdf(4 R^2; d, ||mu||^2) (noncentral chi^2);
    error_log_bound = log ||mu||^2 + region_log_mass (>= log E_pi error).
    """

    def __init__(self, target, radius):
        self.target, self.radius = target, radius
        self.mu = target.mean

    def phi(self, x):
        r = x.norm(dim=-1, keepdim=True) / self.radius
        return (2.0 - r).clamp(0.0, 1.0)

    def __call__(self, x, t):
        return -x + (1.0 - self.phi(x)) * self.mu.to(x)

    def region(self, x):
        return x.norm(dim=-1) <= 2 * self.radius

    def region_log_mass(self, target):
        return float(ncx2.logcdf(4 * self.radius**2, target.dim, float(self.mu.pow(2).sum())))

    def error_log_bound(self, target):
        return math.log(float(self.mu.pow(2).sum())) + self.region_log_mass(target)

    def diagnostics(self):
        return {"general_position": 1.0, "sq": -1.0}


class HalfSpace:
    """Exact score for N(0, I) with witness A = {x_1 > c}; pi(A) = Phi(-c) (closed form)."""

    def __init__(self, target, c, closed_form=True):
        self.target, self.c, self.closed_form = target, c, closed_form

    def __call__(self, x, t):
        return self.target.score(x, t)

    def region(self, x):
        return x[:, 0] > self.c

    def region_log_mass(self, target):
        return float(norm.logsf(self.c)) if self.closed_form else None


def make_ctx(target, score, reference, seed, train=None):
    train = reference[:10] if train is None else train
    return MetricContext(target=target, reference=reference, score=score,
                         data=TrainingData(train, train, 1), sampler=None,
                         generator=torch.Generator().manual_seed(seed), x0=None)


# ---------------------------------------------------------------- Clopper-Pearson helpers

def test_clopper_pearson_bounds_match_their_definition():
    """L(k) solves P(Bin(n, L) >= k) = a; U(k) solves P(Bin(n, U) <= k) = a; edge cases 0 / 1."""
    n, a = 50, 0.025
    for k in (1, 7, 49):
        lo, up = clopper_pearson_lower(k, n, a), clopper_pearson_upper(k, n, a)
        assert binom.sf(k - 1, n, lo) == pytest.approx(a, rel=1e-8)
        assert binom.cdf(k, n, up) == pytest.approx(a, rel=1e-8)
        assert lo < k / n < up
    assert clopper_pearson_lower(0, n, a) == 0.0 and clopper_pearson_upper(n, n, a) == 1.0
    assert clopper_pearson_lower(n, n, a) == pytest.approx(a ** (1 / n))


# ---------------------------------------------------------------- score_error

def test_score_error_constant_offset_is_exact():
    """s_hat = s + c: every per-point error is ||c||^2, so sq = ||c||^2 and se = 0 (to rounding);
    rel = ||c||^2 / mean ||s(x)||^2 over the same reference."""
    target = GaussianTarget(4, mean=[1.0, -2.0, 0.5, 3.0], std=[1.0, 2.0, 0.5, 1.5])
    c = torch.tensor([0.3, -1.0, 2.0, 0.0], dtype=F64)
    ref = target.sample(3000, torch.Generator().manual_seed(1))
    out = ScoreError()(ref[:5], make_ctx(target, ShiftedScore(target, c), ref, 0))
    c2 = float(c.pow(2).sum())
    assert out["sq"] == pytest.approx(c2, rel=1e-12)
    assert out["se"] < 1e-12
    assert out["log10"] == pytest.approx(math.log10(c2), rel=1e-12)
    assert out["log10_is_bound"] == 0.0
    norm2 = float(target.score(ref.to(F64)).pow(2).sum(-1).mean())
    assert out["rel"] == pytest.approx(c2 / norm2, rel=1e-10)
    assert ScoreError.higher_is_better is False


def test_score_error_n_mc_draws_fresh_samples_and_matches_expectation():
    """s_hat = -(1-k)x for N(0, I_d): per-point error k^2 ||x||^2, mean k^2 d, sd k^2 sqrt(2d).
    With n_mc = 20000 fresh draws the estimate is within 5 standard errors of k^2 d, and the
    reported se equals k^2 sqrt(2d / n) to 5% (relative error of a sample sd of chi^2_d values:
    sqrt((kurtosis - 1) / 4n) = sqrt(4 / 80000) = 0.7%, so 5% is 7 sigma). rel is k^2 exactly
    (same points). The (NaN, unused) reference is ignored: only ctx.generator draws are used."""
    d, k, n = 6, 0.5, 20_000
    target = GaussianTarget(d)
    ref = torch.full((3, d), float("nan"))
    metric = ScoreError(n_mc=n)
    out = metric(ref, make_ctx(target, ScaledScore(k), ref, 3))
    expected, se = k**2 * d, k**2 * math.sqrt(2 * d / n)
    assert abs(out["sq"] - expected) < 5 * se
    assert out["se"] == pytest.approx(se, rel=0.05)
    assert out["rel"] == pytest.approx(k**2, rel=1e-12)  # ||s_hat - s||^2 = k^2 ||s||^2 pointwise
    again = metric(ref, make_ctx(target, ScaledScore(k), ref, 3))
    assert again == out  # only ctx.generator is used


def test_score_error_underflow_uses_the_bound_then_the_floor():
    """Ball trap at d = 50, a = 3: the error is 0 on every target sample (pi puts
    ncx2.cdf(200; 50, 450) ~ 1e-17 on the ball of radius 2R = 2 sqrt(d)); log10 is then the
    closed-form bound, flagged; without a bound it is the float64 floor, never -inf.
    Diagnostics are passed through (a clash with a metric key is renamed score_<key>)."""
    d = 50
    target = GaussianTarget(d, mean=3.0)
    trap = BallTrap(target, math.sqrt(d))
    ref = target.sample(2000, torch.Generator().manual_seed(5))
    out = ScoreError()(ref, make_ctx(target, trap, ref, 0))
    assert out["sq"] == 0.0 and out["se"] == 0.0 and out["rel"] == 0.0
    assert out["log10_is_bound"] == 1.0
    assert out["log10"] == pytest.approx(trap.error_log_bound(target) / math.log(10))
    assert -16 < out["log10"] < -13  # log10(450 * 1.1e-17) = -14.3
    assert out["general_position"] == 1.0 and out["score_sq"] == -1.0

    class NoBound:
        def __call__(self, x, t):
            return trap(x, t)

    out = ScoreError()(ref, make_ctx(target, NoBound(), ref, 0))
    assert out["log10_is_bound"] == 0.0
    assert out["log10"] == LOG10_FLOOR == pytest.approx(-323.306, abs=1e-3)
    assert math.isfinite(out["log10"])


def test_score_error_float32_only_estimate_falls_back_to_the_input_dtype():
    """An estimate that rejects float64 is evaluated, with the exact score, in float32."""
    target = GaussianTarget(3)
    c = torch.tensor([1.0, 0.0, 0.0])

    class Float32Only:
        def __call__(self, x, t):
            if x.dtype != torch.float32:
                raise RuntimeError("expected scalar type Float")
            return target.score(x, t) + c

    ref = target.sample(100, torch.Generator().manual_seed(0)).to(torch.float32)
    out = ScoreError()(ref, make_ctx(target, Float32Only(), ref, 0))
    assert out["sq"] == pytest.approx(1.0, rel=1e-5)


@pytest.mark.parametrize("factory, kwargs, name", [
    (ScoreError, {"n_mc": -1}, "n_mc"), (ScoreError, {"n_mc": 1.5}, "n_mc"),
    (ScoreError, {"n_mc_bar": 0}, "n_mc_bar"),
    (TVWitness, {"confidence": 1.0}, "confidence"), (TVWitness, {"n_mc": 0}, "n_mc"),
    (TVWitness, {"witness_params": {"radius": 1.0}}, "witness_params"),  # unused without a witness
    (TVWitness, {"witness": "ball_trap", "witness_params": {"radiuss": 1.0}}, "witness_params.*did you mean"),
    (TVClassifier, {"width": 0}, "width"), (TVClassifier, {"epochs": -3}, "epochs"),
    (TVClassifier, {"lr": 0.0}, "lr"), (TVClassifier, {"n_mc": 1}, "n_mc"),
    (TVClassifier, {"confidence": 0}, "confidence")])
def test_bad_params_raise_value_error_naming_them(factory, kwargs, name):
    with pytest.raises(ValueError, match=name):
        factory(**kwargs)


# ---------------------------------------------------------------- tv_witness

def test_tv_witness_skips_scores_without_a_region():
    target = GaussianTarget(2)
    ref = target.sample(50, torch.Generator().manual_seed(0))
    with pytest.raises(SkipMetric, match="ShiftedScore"):
        TVWitness()(ref, make_ctx(target, ShiftedScore(target, torch.zeros(2)), ref, 0))


def test_tv_witness_ball_trap_certifies_tv_near_one():
    """Particles trapped near 0 (N(0, I)) vs pi = N(3*1, I), d = 50: all n samples are in the ball
    and pi(ball) ~ 1e-17, so lower = L_{alpha/2}(n, n) - q = (alpha/2)^(1/n) - q."""
    d, n = 50, 2000
    target = GaussianTarget(d, mean=3.0)
    trap = BallTrap(target, math.sqrt(d))
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=gen)
    out = TVWitness()(x, make_ctx(target, trap, target.sample(10, gen), 1))
    assert out["p_samples"] == 1.0 and 0.0 < out["p_target"] < 1e-15
    assert out["lower"] == pytest.approx(0.025 ** (1 / n), rel=1e-12)
    assert out["estimate"] == pytest.approx(1.0)


def exact_exceedance_rate(n: int, p_a: float, q: float, tv: float, alpha: float) -> float:
    """P(lower > tv) for the closed-form branch when the count is K ~ Bin(n, p_a), summed exactly
    over k = 0..n (the same Clopper-Pearson formulas, vectorized)."""
    k = np.arange(n + 1)
    lo = np.where(k == 0, 0.0, beta_dist.ppf(alpha / 2, np.maximum(k, 1), n - k + 1))
    up = np.where(k == n, 1.0, beta_dist.ppf(1 - alpha / 2, k + 1, np.maximum(n - k, 1)))
    lower = np.maximum.reduce([lo - q, q - up, np.zeros(n + 1)])
    return float(binom.pmf(k, n, p_a)[lower > tv + 1e-15].sum())


R_TV, N_TV, D_TV, DELTA = 200, 2000, 2, 0.5


@pytest.mark.parametrize("closed_form", [True, False], ids=["closed_form_q", "estimated_q"])
def test_tv_witness_coverage_and_power_on_a_shift(closed_form):
    """Samples N(delta e_1, I) vs pi = N(0, I), A = {x_1 > delta/2}: P(A) = Phi(delta/2),
    pi(A) = Phi(-delta/2), and A is the optimal set, so TV = |P(A) - pi(A)| = 2 Phi(delta/2) - 1
    (0.197 for delta = 0.5).

    Coverage: lower > TV happens with probability r <= alpha = 0.05 per repetition (for the
    closed form, r is computed exactly from Bin(n, P(A)); it is ~alpha/2 since only one of
    the two directions can fire); over R = 200 repetitions the exceedance count must be
    <= binom.ppf(1 - 1e-4, R, r).
    Power: lower ~ p_hat - q - z * sd, sd = sqrt(P(A)(1 - P(A)) / n) ~ 0.011 (plus the same
    for q_hat with n_mc = 20000: 0.0036), z <= 2.5, so the mean lower bound is within
    ~0.04 of TV; we require > TV - 0.1."""
    target = GaussianTarget(D_TV)
    score = HalfSpace(target, DELTA / 2, closed_form=closed_form)
    metric = TVWitness(confidence=0.95, n_mc=20_000)
    tv = 2 * norm.cdf(DELTA / 2) - 1
    gen = torch.Generator().manual_seed(123)
    shift = torch.zeros(D_TV)
    shift[0] = DELTA
    lowers, estimates = [], []
    for rep in range(R_TV):
        x = torch.randn(N_TV, D_TV, generator=gen) + shift
        out = metric(x, make_ctx(target, score, x[:1], 1000 + rep))
        lowers.append(out["lower"])
        estimates.append(out["estimate"])
    lowers = np.array(lowers)
    rate = (exact_exceedance_rate(N_TV, norm.cdf(DELTA / 2), norm.sf(DELTA / 2), tv, 0.05)
            if closed_form else 0.05)
    exceed = int((lowers > tv).sum())
    print(f"tv_witness shift ({'closed' if closed_form else 'estimated'}): coverage "
          f"{1 - exceed / R_TV:.3f}, mean lower {lowers.mean():.4f}, TV {tv:.4f}, exact miss rate {rate:.4f}")
    assert exceed <= max_exceedances(R_TV, rate)
    assert lowers.mean() > tv - 0.1
    # the point estimate is unbiased: mean within 5 se of TV
    assert abs(np.mean(estimates) - tv) < 5 * np.std(estimates) / math.sqrt(R_TV)


@pytest.mark.parametrize("closed_form", [True, False], ids=["closed_form_q", "estimated_q"])
def test_tv_witness_is_zero_for_exact_samples(closed_form):
    """Samples from pi itself (TV = 0): lower > 0 is an exceedance, probability <= alpha = 0.05
    (closed form: computed exactly with P(A) = pi(A)). Count over R = 200 repetitions bounded
    as above; the measured fraction of zeros is printed (>= 95% expected on average)."""
    target = GaussianTarget(D_TV)
    score = HalfSpace(target, DELTA / 2, closed_form=closed_form)
    metric = TVWitness(confidence=0.95, n_mc=20_000)
    gen = torch.Generator().manual_seed(321)
    lowers = []
    for rep in range(R_TV):
        x = torch.randn(N_TV, D_TV, generator=gen)
        lowers.append(metric(x, make_ctx(target, score, x[:1], 5000 + rep))["lower"])
    lowers = np.array(lowers)
    q = norm.sf(DELTA / 2)
    rate = exact_exceedance_rate(N_TV, q, q, 0.0, 0.05) if closed_form else 0.05
    nonzero = int((lowers > 0).sum())
    print(f"tv_witness null ({'closed' if closed_form else 'estimated'}): zeros {1 - nonzero / R_TV:.3f}, "
          f"exact nonzero rate {rate:.4f}")
    assert (lowers >= 0).all()
    assert nonzero <= max_exceedances(R_TV, rate)


# ---------------------------------------------------------------- tv_classifier

def test_tv_classifier_same_distribution_gives_zero():
    """Exact samples (TV = 0): for any trained f, E acc = 1/2, so lower > 0 needs the
    Clopper-Pearson bound to fail: probability <= 0.05 per seed. Over 20 seeds the number of
    nonzero bounds is <= binom.ppf(1 - 1e-4, 20, 0.05) = 6 (measured: 2)."""
    target = GaussianTarget(5)
    metric = TVClassifier(width=32, epochs=100)
    nonzero, accs = 0, []
    for seed in range(20):
        gen = torch.Generator().manual_seed(10_000 + seed)
        x, ref = target.sample(800, gen), target.sample(800, gen)
        out = metric(x, make_ctx(target, None, ref, seed))
        nonzero += out["lower"] > 0
        accs.append(out["acc"])
    print(f"tv_classifier null: {20 - nonzero}/20 zeros, mean acc {np.mean(accs):.4f}")
    assert nonzero <= max_exceedances(20, 0.05)
    # mean held-out accuracy: 20 x 800 held-out points, sd 0.5/sqrt(16000) = 0.004
    assert abs(np.mean(accs) - 0.5) < 5 * 0.5 / math.sqrt(20 * 800)


def test_tv_classifier_separated_gaussians_and_determinism():
    """N(3 e_1, I) vs N(0, I), d = 5: TV = 2 Phi(1.5) - 1 = 0.866, Bayes accuracy Phi(1.5) = 0.933.
    With 2000 points per class, N = 2000 held-out points: the MLP gets close to Bayes, so
    lower ~ 2 (0.93 - 1.645 * 0.0056) - 1 ~ 0.84 > 0.7. Upper side: lower > TV + 0.1 needs the
    held-out accuracy to beat its mean by > 0.05 (acc(f) <= (1 + TV)/2 and LCB <= acc),
    probability <= exp(-2 N 0.05^2) = e^-10 (Hoeffding)."""
    target = GaussianTarget(5)
    gen = torch.Generator().manual_seed(7)
    shift = torch.zeros(5)
    shift[0] = 3.0
    x, ref = target.sample(2000, gen) + shift, target.sample(2000, gen)
    tv = 2 * norm.cdf(1.5) - 1
    metric = TVClassifier()
    out = metric(x, make_ctx(target, None, ref, 11))
    print(f"tv_classifier separated: acc {out['acc']:.4f}, lower {out['lower']:.4f}, TV {tv:.4f}")
    assert 0.7 <= out["lower"] <= tv + 0.1
    assert out["lower"] == pytest.approx(2 * clopper_pearson_lower(round(out["acc"] * 2000), 2000, 0.05) - 1)
    assert metric(x, make_ctx(target, None, ref, 11)) == out  # same ctx.generator seed: identical
    state = torch.random.get_rng_state()
    metric(x, make_ctx(target, None, ref, 12))
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is never used


def test_benchmark_tv_classifier_5000_vs_5000_in_d50(benchmark):
    """Benchmark (run on demand: ``pytest --benchmark-only``): tv_classifier on 5000 vs 5000 in d = 50."""
    target = GaussianTarget(50)
    gen = torch.Generator().manual_seed(0)
    x, ref = target.sample(5000, gen) + 0.1, target.sample(5000, gen)
    out = benchmark.pedantic(lambda: TVClassifier()(x, make_ctx(target, None, ref, 0)), rounds=3)
    assert 0.0 <= out["lower"] <= 1.0


def test_tv_metrics_register_through_the_plugin_hook():
    from bench_core.components.discovery import BUILTIN_MODULES, build_registry

    extra = [m for m in (tv_metrics, score_error) if m.__name__ not in BUILTIN_MODULES]
    registry = build_registry(extra=extra, entry_points=False)
    names = registry.names("metrics")
    for name, cls in (("score_error", ScoreError), ("tv_witness", TVWitness), ("tv_classifier", TVClassifier)):
        assert name in names
        assert registry.get("metrics", name).factory is cls
    assert TVWitness.higher_is_better and TVClassifier.higher_is_better


def test_witness_param_uses_another_estimates_region():
    """The exact score has no region; with witness = ball_trap the metric uses the trap's ball."""
    from bench_core.components.protocols import MetricContext, TrainingData
    from bench_plugins.scores.traps.wells import BallTrap
    from bench_plugins.scores.exact import ExactScore
    from bench_plugins.targets.gaussian import GaussianTarget
    from bench_plugins.metrics.tv import TVWitness

    target = GaussianTarget(50, mean=3.0)
    gen = torch.Generator().manual_seed(0)
    inside = torch.randn(2000, 50, generator=gen)  # N(0, I): inside the ball 2 sqrt(50) w.p. ~1
    ctx = MetricContext(target=target, reference=target.sample(100, gen), score=ExactScore(target, None),
                        data=TrainingData(inside[:10], inside[:10], 1), sampler=None,
                        generator=torch.Generator().manual_seed(1))
    with pytest.raises(SkipMetric, match="witness"):
        TVWitness()(inside, ctx)
    out = TVWitness(witness="ball_trap", witness_params={"radius": 1.0})(inside, ctx)
    own = TVWitness()(inside, MetricContext(**{**ctx.__dict__, "score": BallTrap(target, None, radius=1.0)}))
    assert out == own
    assert out["lower"] > 0.99  # pi(ball) ~ 1e-17 (closed form), all 2000 samples inside
    with pytest.raises(ValueError, match="parameter 'witness': unknown score 'ball_trapp'.*did you mean 'ball_trap'"):
        TVWitness(witness="ball_trapp")
