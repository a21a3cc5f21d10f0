"""bench_core.kit.checks: built-in components pass every check; each broken toy fails with a
message naming its defect."""
from __future__ import annotations

import importlib.util
import math
import re
import sys
from pathlib import Path

import pytest
import torch

from bench_core.base.errors import PluginError
from bench_core.components.protocols import TrainingData
from bench_core.kit import (check_initializer, check_metric, check_plugin, check_sampler,
                                check_score, check_target, sampler_margins, sampler_targets)
from bench_plugins.initializers.starts import StandardNormal
from bench_plugins.metrics.moments import GaussianKL, MeanError
from bench_plugins.samplers.langevin import ULA
from bench_plugins.scores.exact import ExactScore
from bench_plugins.targets.gaussian import GaussianTarget


def _load_toys():
    # tests/plugins is not a package (and `plugins` is the built-in package's folder name):
    # load the module from its file under a unique name.
    name = "bench_tests_toy_components"
    if name not in sys.modules:
        path = Path(__file__).parent / "plugins" / "toy_components.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


toys = _load_toys()


@pytest.fixture
def target():
    return GaussianTarget(3, 1.0, 2.0)


@pytest.fixture
def data(target):
    train = target.sample(100, torch.Generator().manual_seed(0))
    return TrainingData(train, train, 1)


# ---------------------------------------------------------------- built-ins pass

def test_builtin_target_passes(target):
    check_target(target)
    check_target(GaussianTarget(2, [0.0, -3.0], [0.1, 5.0]), n=100, seed=3)


def test_builtin_score_passes(target, data):
    check_score(ExactScore(target, data), target)


def test_builtin_initializer_passes(target, data):
    check_initializer(StandardNormal(), target, data)


def test_builtin_sampler_passes():
    check_sampler(ULA())
    check_sampler(ULA(step_size=0.01, n_steps=500))  # the README's and the scaffold's settings
    check_sampler(ULA(), dim=3, n=2000, seed=5)


@pytest.mark.parametrize("metric", [MeanError(), GaussianKL()], ids=["mean_error", "gaussian_kl"])
def test_builtin_metrics_pass(metric):
    check_metric(metric)


def test_checks_restore_the_default_dtype():
    previous = torch.get_default_dtype()
    # T = 1 leaves (|m| / s) (1 - h / s^2)^100 <= (1 / 0.7) e^{-2.06} = 0.18 target std of the mean gap
    check_sampler(ULA(step_size=0.01, n_steps=100), n=500, bias=0.2)
    check_target(GaussianTarget(2), n=50)
    assert torch.get_default_dtype() == previous


# ---------------------------------------------------------------- broken toys fail, naming the defect

@pytest.mark.parametrize("sampler, match", [
    (toys.InPlaceSampler(), "modified x0 in place"),
    (toys.WrongShapeSampler(), r"has shape \[3999, 4\], expected \[4000, 4\]"),
    (toys.GlobalRNGSampler(), "not deterministic.*global RNG"),
    (toys.SilentSampler(), "never called callback"),
    (toys.TensorTimeSampler(), "callback got t .*Tensor.*not a float"),
    # it lands on its N(0, I) start: coordinate 0 of the anisotropic target, N(1, 0.6^2), is 1.67 std off
    (toys.LazySampler(), r"exact score of N\(m, diag\(s\^2\)\).*\(target 3 of 3: anisotropic\) the mean "
                         r"of coordinate 0 is .*error -1\.6\d* target std.*check the drift sign"),
    # noise sqrt(4h): variance 2 s^2 / (1 - h / (2 s^2)), 2.03x the target's at s = 0.6
    (toys.HotSampler(), r"the variance of coordinate \d is 2\.\d+x the target's .*check the noise scale"),
    (toys.BadFamilySampler(), "family is 'mcmc'"),
    (toys.NoCallbackArgSampler(), r"cannot be called as sample\(score, x0, \*, generator, callback\)"),
], ids=lambda v: type(v).__name__ if not isinstance(v, str) else "")
def test_broken_samplers_fail(sampler, match):
    with pytest.raises(AssertionError, match=f"sampler {type(sampler).__name__}: .*{match}"):
        check_sampler(sampler)


def test_broken_scores_fail(target):
    with pytest.raises(AssertionError,
                       match=r"score Float64Score: .*dtype torch\.float64, expected torch\.float32"):
        check_score(toys.Float64Score(target), target)
    with pytest.raises(AssertionError, match=r"region\(x\).*dtype .*expected torch\.bool"):
        check_score(toys.BadRegionScore(target), target)
    with pytest.raises(AssertionError, match="modified its input x in place"):
        check_score(toys.InPlaceScore(target), target)
    with pytest.raises(AssertionError, match=r"score BatchCoupledScore: declares rowwise = True but .*differs"
                                             r".*remove rowwise"):
        check_score(toys.BatchCoupledScore(target), target)


def test_builtin_scores_declare_rowwise_truthfully(target, data):
    """Every built-in score declares ``rowwise`` (samplers then evaluate it block by block) and the kit
    confirms the declaration: rows scored in two parts equal one evaluation to rounding."""
    from torch import nn

    from bench_core.components.discovery import get_registry
    from bench_plugins.scores.learned.network import ModelScore

    registry = get_registry()
    gmm = registry.create("targets", "gmm", dim=3)
    gmm_data = TrainingData(*(2 * [gmm.sample(50, torch.Generator().manual_seed(0))]), 1)
    scores = [registry.create("scores", name, gmm, gmm_data)
              for name in ("exact", "ball_trap", "memorized", "cone_trap", "noisy", "empirical")]

    class PerPoint(nn.Module):  # an MLP on (x, tau): no coupling between rows
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(4, 64), nn.SiLU(), nn.Linear(64, 3))

        def forward(self, x, tau):
            return self.net(torch.cat([x, tau[:, None]], dim=1))

    torch.manual_seed(0)
    scores.append(ModelScore(PerPoint(), output="score", time="t", t0=0.01))
    for score in scores:
        assert score.rowwise is True, type(score).__name__
        check_score(score, gmm)


def test_wrong_score_target_fails():
    with pytest.raises(AssertionError,
                       match=r"target WrongScoreTarget: score\(x, t=0\.0\) is not the gradient of log_prob"):
        check_target(toys.WrongScoreTarget(2, 1.0, 1.0))


def test_float32_target_fails_under_float64_default():
    with pytest.raises(AssertionError, match=r"Float32Target: .*default dtype torch\.float64.*dtype "
                                             r"torch\.float32, expected torch\.float64"):
        check_target(toys.Float32Target(2))


def test_broken_initializer_fails(target, data):
    with pytest.raises(AssertionError, match="initializer GlobalRNGInitializer: is not deterministic"):
        check_initializer(toys.GlobalRNGInitializer(), target, data)


@pytest.mark.parametrize("metric, match", [
    (toys.TensorMetric(), r"returned tensor\(.*\) \(Tensor\), not a finite float"),
    (toys.NoisyMetric(), "is not deterministic"),
    (toys.StringHigherMetric(), "higher_is_better is 'no', not a bool"),
], ids=lambda v: type(v).__name__ if not isinstance(v, str) else "")
def test_broken_metrics_fail(metric, match):
    with pytest.raises(AssertionError, match=f"metric {type(metric).__name__}: {match}"):
        check_metric(metric)


def test_protocol_violations_fail(target):
    with pytest.raises(AssertionError, match="does not follow the Target protocol: it lacks 'sample'"):
        check_target(type("NoSample", (), {"dim": 2, "log_prob": None, "score": None})())
    with pytest.raises(AssertionError, match="does not follow the ScoreEstimate protocol"):
        check_score(object(), target)


def test_a_target_of_samples_only_passes_with_its_split():
    """score and log_prob are optional: a data set (no closed form) passes, its split(seed) checked."""
    from bench_core.components.discovery import get_registry

    check_target(get_registry().create("targets", "dataset", source="wine"))
    check_target(get_registry().create("targets", "dataset", source="moons"))


# ---------------------------------------------------------------- check_plugin

def test_check_plugin_reports_statuses():
    plugin = toys.make_plugin(
        "toy_good_plugin",
        targets={"toy_gaussian": lambda: GaussianTarget(2, mean=-1.0, std=0.5)},
        scores={"toy_exact": ExactScore, "toy_scaled": lambda target, data, factor: ExactScore(target, data)},
        initializers={"toy_normal": StandardNormal},
        samplers={"toy_ula": lambda: ULA(step_size=0.01, n_steps=400),
                  "toy_needs_params": toys.make_sampler_needing_params},
        metrics={"toy_mean_error": MeanError, "toy_mixture_only": toys.GaussianOnlyNotMetric})
    statuses = check_plugin(plugin)
    assert sorted(statuses) == [
        ("initializers", "toy_normal", "ok"),
        ("metrics", "toy_mean_error", "ok"),
        ("metrics", "toy_mixture_only",
         "skipped: does not apply to a Gaussian target (toy: applies to mixtures only)"),
        ("samplers", "toy_needs_params", "skipped: factory needs params step_size"),
        ("samplers", "toy_ula", "ok"),
        ("scores", "toy_exact", "ok"),
        ("scores", "toy_scaled", "skipped: factory needs params factor"),
        ("targets", "toy_gaussian", "ok"),
    ]


def test_check_plugin_fails_on_a_broken_component():
    plugin = toys.make_plugin("toy_bad_plugin", samplers={"toy_inplace": toys.InPlaceSampler})
    with pytest.raises(AssertionError,
                       match="plugin 'toy_bad_plugin', sampler 'toy_inplace' .*modified x0"):
        check_plugin(plugin)


def test_check_plugin_propagates_plugin_errors():
    # "ula" is already registered by the built-in samplers plugin
    plugin = toys.make_plugin("toy_dup_plugin", samplers={"ula": toys.SilentSampler})
    with pytest.raises(PluginError, match="already registered"):
        check_plugin(plugin)


def test_check_plugin_fails_on_a_wrong_target_and_a_rejected_default():
    plugin = toys.make_plugin("toy_bad_target", targets={"toy_wrong": lambda: toys.WrongScoreTarget(2)})
    with pytest.raises(AssertionError,
                       match="plugin 'toy_bad_target', target 'toy_wrong' .*not the gradient"):
        check_plugin(plugin)
    plugin = toys.make_plugin("toy_bad_default", samplers={"toy_ula0": lambda: ULA(step_size=0.0)})
    with pytest.raises(AssertionError, match="sampler 'toy_ula0' built with default params: ValueError: "
                                             "parameter 'step_size'"):
        check_plugin(plugin)


@pytest.mark.parametrize("name, params", [
    ("ddpm", {}), ("ddpm", {"discretization": "exponential"}), ("annealed_langevin", {}), ("cld", {}),
], ids=["ddpm", "ddpm_exponential", "annealed_langevin", "cld"])
def test_builtin_diffusion_samplers_pass_at_their_defaults(name, params):
    from bench_core.components.discovery import get_registry

    check_sampler(get_registry().create("samplers", name, **params))


def _affine_bias(sampler, dim=4):
    """The exact bias of a deterministic sampler that is affine in x0 for a Gaussian score.

    Per coordinate ``out = a x0 + b``, read off the runs from x0 = 0 and x0 = 1; from x0 ~ N(0, 1) the
    output is N(b, a^2), so its errors are ``(b - m) / s`` and ``a^2 / s^2 - 1``. Returns the largest
    absolute error over the kit's targets (what ``bias`` states).
    """
    from bench_plugins.scores.exact import ExactScore

    worst = 0.0
    for _, _, target in sampler_targets(dim):
        x0 = torch.stack([torch.zeros(dim), torch.ones(dim)]).double()
        # a deterministic sampler draws nothing: the generator only satisfies the signature
        out = sampler.sample(ExactScore(target, None), x0, generator=torch.Generator().manual_seed(0))
        b, a = out[0], out[1] - out[0]
        errors = torch.cat([(b - target.mean) / target.std, a**2 / target.std**2 - 1])
        worst = max(worst, float(errors.abs().max()))
    return worst


def test_ddim_passes_with_its_own_bias():
    """DDIM's 100 deterministic steps shrink the variance by more than the default allowance: the test
    states its exact bias, as its author would."""
    from bench_core.components.discovery import get_registry

    ddim = get_registry().create("samplers", "ddim")
    bias = _affine_bias(ddim)
    # closed form: the variance is 0.951x the target's on the narrowest coordinate (s = 0.6); the step
    # error is first order (200 steps: 0.025; 1000 steps: 0.005)
    assert bias == pytest.approx(0.0489, abs=5e-4)
    check_sampler(ddim, bias=bias)


def test_builtin_mixture_target_and_perturbed_scores_pass():
    from bench_core.components.discovery import get_registry

    registry = get_registry()
    gmm = registry.create("targets", "gmm", dim=3)
    check_target(gmm)
    data = TrainingData(*(2 * [gmm.sample(50, torch.Generator().manual_seed(0))]), 1)
    for name in ("ball_trap", "memorized", "cone_trap", "noisy"):
        check_score(registry.create("scores", name, gmm, data), gmm)


def test_check_plugin_fails_on_a_module_that_registers_nothing():
    import types

    def register_samplers(register):  # no @hookimpl: pluggy never calls it
        register("never", ULA)

    unmarked = types.SimpleNamespace(__name__="forgot_hookimpl", register_samplers=register_samplers)
    with pytest.raises(AssertionError, match=r"plugin forgot_hookimpl: registers no component; its "
                                             r"register_samplers lack @hookimpl"):
        check_plugin(unmarked)
    with pytest.raises(AssertionError, match="defines no @hookimpl register_<kind>"):
        check_plugin(types.SimpleNamespace(__name__="empty_plugin"))


# ---------------------------------------------------------------- the kit's margins catch wrong noise scales

class BAOAB:
    """Underdamped Langevin, BAOAB splitting (Leimkuhler & Matthews 2013), unit mass, friction ``gamma``.

    B: v += h/2 s(x); A: x += h/2 v; O: v = e^{-gamma h} v + c xi; A; B, with v_0 ~ N(0, I).
    ``c = sqrt(1 - e^{-2 gamma h})`` keeps N(0, I) invariant for v, and for a Gaussian target the
    x-marginal of the stationary law is then exact at any stable step. ``wrong_noise`` uses Euler-Maruyama's
    ``c = sqrt(2 gamma h)``: the O-step alone then holds v at variance 2 gamma h / (1 - e^{-2 gamma h})
    = 1.2133 at gamma h = 0.2, and since the chain is linear in its noise every stationary variance,
    x's included, is 1.2133x the correct one. The horizon n h = 40 at decay rate gamma / 2 leaves
    e^{-20} of the start.
    """

    family = "langevin"

    def __init__(self, step_size: float = 0.2, n_steps: int = 200, gamma: float = 1.0,
                 wrong_noise: bool = False) -> None:
        self.step_size, self.n_steps, self.gamma, self.wrong_noise = step_size, n_steps, gamma, wrong_noise

    def sample(self, score, x0, *, generator, callback=None):
        h, x = self.step_size, x0.clone()
        v = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        decay = math.exp(-self.gamma * h)
        kick = math.sqrt(2 * self.gamma * h) if self.wrong_noise else math.sqrt(1 - decay**2)
        for k in range(1, self.n_steps + 1):
            v.add_(score(x, 0.0), alpha=h / 2)
            x.add_(v, alpha=h / 2)
            v.mul_(decay).add_(torch.randn(x.shape, generator=generator, dtype=x.dtype), alpha=kick)
            x.add_(v, alpha=h / 2)
            v.add_(score(x, 0.0), alpha=h / 2)
            if callback is not None:
                callback(k, k * h, x)
        return x


class HotULA:
    """ULA with its noise ``noise_factor`` times too large: x += h s(x) + noise_factor sqrt(2h) xi.

    Stationary variance on N(m, s^2): noise_factor^2 s^2 / (1 - h / (2 s^2)), so relative error
    1.21 / (1 - h / (2 s^2)) - 1 = 0.213 .. 0.214 at noise_factor = 1.1, h = 0.0025, s = 0.6 .. 0.8.
    """

    family = "langevin"

    def __init__(self, step_size: float = 0.0025, n_steps: int = 1000, noise_factor: float = 1.1) -> None:
        self.step_size, self.n_steps, self.noise_factor = step_size, n_steps, noise_factor

    def sample(self, score, x0, *, generator, callback=None):
        h, x = self.step_size, x0.clone()
        scale = self.noise_factor * math.sqrt(2 * h)
        for k in range(1, self.n_steps + 1):
            x.add_(score(x, 0.0), alpha=h).add_(torch.randn(x.shape, generator=generator, dtype=x.dtype),
                                                 alpha=scale)
            if callback is not None:
                callback(k, k * h, x)
        return x


class ExactDraws:
    """Not a sampler one would use: reads N(m, diag(s^2)) off the score (s(x, 0) = (m - x) / s^2, so
    s(0, 0) = m / s^2 and s(0, 0) - s(1, 0) = 1 / s^2) and returns exact draws: no bias at all."""

    family = "langevin"

    def sample(self, score, x0, *, generator, callback=None):
        ends = torch.stack([torch.zeros_like(x0[0]), torch.ones_like(x0[0])])
        at = score(ends, 0.0)
        var = 1 / (at[0] - at[1])
        out = at[0] * var + var.sqrt() * torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
        if callback is not None:
            callback(1, 0.0, out)
        return out


def test_the_margins_at_the_defaults():
    """27 checks (3 targets x (4 means + 4 variances + 1 averaged variance)) at family-wise 1e-4:
    z = Phi^{-1}(1 - 1e-4 / 54) = 4.627; margins z / sqrt(4000), z sqrt(2 / 3999), z sqrt(2 / 3999) / 2."""
    margins = sampler_margins()
    assert margins["z"] == pytest.approx(4.6274, abs=1e-4)
    assert margins["mean"] == pytest.approx(4.6274 / math.sqrt(4000), rel=1e-4)  # 0.0732
    assert margins["variance"] == pytest.approx(4.6274 * math.sqrt(2 / 3999), rel=1e-4)  # 0.1035
    assert margins["pooled_variance"] == pytest.approx(margins["variance"] / 2, rel=1e-12)  # 0.0517


@pytest.mark.parametrize("seed", range(5))
def test_exact_draws_pass_with_no_bias(seed):
    """The margins are Monte Carlo margins: exact samples pass with bias = 0 (each seed fails with
    probability <= 1e-4)."""
    check_sampler(ExactDraws(), seed=seed, bias=0.0)


def test_a_correct_baoab_passes():
    check_sampler(BAOAB())


@pytest.mark.parametrize("sampler, expected", [(BAOAB(wrong_noise=True), 0.2133), (HotULA(), 0.2136)],
                         ids=["baoab_euler_noise", "ula_noise_x1.1"])
def test_a_21_percent_variance_error_fails(sampler, expected):
    with pytest.raises(AssertionError) as failure:
        check_sampler(sampler)
    message = str(failure.value)
    name = type(sampler).__name__
    assert re.match(rf"sampler {name}: with the exact score of .* \(target \d of 3: .*\) the variance of "
                    r"coordinate \d is 1\.\d+x the target's .* \(relative error \+0\.\d+, allowed \+-0\.123 = "
                    r"MC margin 0\.103 \+ bias 0\.02\) \[\d+ of 27 moment checks fail\]; check the noise scale",
                    message), message
    # the reported coordinate is the worst of 12, but each one lies within z = 4.63 standard errors of
    # its closed form: sd of the relative variance = (1 + error) sqrt(2 / (n - 1)) = 1.21 * 0.0224
    measured = float(re.search(r"relative error ([+-]\d\.\d+)", message).group(1))
    assert abs(measured - expected) <= sampler_margins()["z"] * 1.214 * math.sqrt(2 / 3999) + 1e-3


def test_ula_defaults_are_within_the_default_bias_in_closed_form():
    """ULA on N(m, s^2) from N(0, 1): x_K has mean m (1 - a^K) and variance V + (1 - V) a^{2K}, with
    a = 1 - h / s^2 and V = s^2 / (1 - h / (2 s^2)). At its defaults (h = 0.0025, K = 1000) the worst error
    is the mean gap its horizon leaves on the widest coordinate, (0.5 / 0.8) a^1000 = 0.0125 target std;
    the stationary variance error h / (2 s^2 - h) is at most 0.0035. At h = 0.01, K = 500: 0.0141."""
    def worst(h, steps):
        out = 0.0
        for _, _, target in sampler_targets():
            m, s2 = target.mean, target.std**2
            a = 1 - h / s2
            var = s2 / (1 - h / (2 * s2))
            var_k = var + (1 - var) * a ** (2 * steps)
            errors = torch.cat([(-m * a**steps) / s2.sqrt(), var_k / s2 - 1])
            out = max(out, float(errors.abs().max()))
        return out

    assert worst(0.0025, 1000) == pytest.approx(0.0125, abs=2e-4)
    assert worst(0.01, 500) == pytest.approx(0.0141, abs=2e-4)
    assert max(worst(0.0025, 1000), worst(0.01, 500)) < 0.02  # the kit's default bias


def test_bias_must_be_a_nonnegative_number():
    with pytest.raises(ValueError, match="parameter 'bias' must be a finite number >= 0"):
        check_sampler(ULA(), bias=-0.1)


def test_check_plugin_passes_the_stated_sampler_bias():
    """A sampler with a known bias above the default allowance conforms once its plugin states it."""
    from bench_plugins.samplers.ddim import DDIM

    plugin = toys.make_plugin("toy_ddim_plugin", samplers={"toy_ddim": DDIM})
    assert check_plugin(plugin, sampler_bias=0.049) == [("samplers", "toy_ddim", "ok")]
