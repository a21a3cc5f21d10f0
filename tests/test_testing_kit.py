"""bench_core.testing: built-in components pass every check; each broken toy fails with a
message naming its defect."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from bench_core.errors import PluginError
from bench_core.protocols import TrainingData
from bench_core.testing import (check_initializer, check_metric, check_plugin, check_sampler,
                                check_score, check_target)
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
    check_sampler(ULA(step_size=0.01, n_steps=500))
    check_sampler(ULA(), dim=3, n=2000, seed=5)  # the defaults: (1 - h)^1000 = 0.08 of the gap is left


@pytest.mark.parametrize("metric", [MeanError(), GaussianKL()], ids=["mean_error", "gaussian_kl"])
def test_builtin_metrics_pass(metric):
    check_metric(metric)


def test_checks_restore_the_default_dtype():
    previous = torch.get_default_dtype()
    check_sampler(ULA(step_size=0.01, n_steps=100), n=500, tol=0.5)
    check_target(GaussianTarget(2), n=50)
    assert torch.get_default_dtype() == previous


# ---------------------------------------------------------------- broken toys fail, naming the defect

@pytest.mark.parametrize("sampler, match", [
    (toys.InPlaceSampler(), "modified x0 in place"),
    (toys.WrongShapeSampler(), r"has shape \[3999, 2\], expected \[4000, 2\]"),
    (toys.GlobalRNGSampler(), "not deterministic.*global RNG"),
    (toys.SilentSampler(), "never called callback"),
    (toys.TensorTimeSampler(), "callback got t .*Tensor.*not a float"),
    (toys.LazySampler(), r"exact score of N\(1, I_2\).*mean"),
    (toys.HotSampler(), r"exact score of N\(1, I_2\).*std 1\.4"),
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

    from bench_core.plugin_manager import get_registry
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
    with pytest.raises(AssertionError, match="does not follow the Target protocol: it lacks 'score'"):
        check_target(type("NoScore", (), {"dim": 2, "sample": None, "log_prob": None})())
    with pytest.raises(AssertionError, match="does not follow the ScoreEstimate protocol"):
        check_score(object(), target)


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
    ("ddpm", {}), ("ddpm", {"discretization": "exponential", "n_steps": 200}), ("ddim", {}),
    ("cld", {"n_steps": 200}), ("annealed_langevin", {"n_levels": 50, "steps_per_level": 5}),
])
def test_builtin_diffusion_samplers_pass(name, params):
    from bench_core.plugin_manager import get_registry

    check_sampler(get_registry().create("samplers", name, **params), n=2000)


def test_builtin_mixture_target_and_perturbed_scores_pass():
    from bench_core.plugin_manager import get_registry

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


def test_the_kit_tells_a_wrong_noise_baoab_from_a_correct_one():
    check_sampler(toys.BAOAB())  # BAOAB is unbiased in x for a Gaussian target at any step size
    with pytest.raises(AssertionError, match=r"sampler BAOAB: with the exact score of N\(1, I_2\) its samples "
                                             r"have std 1\.2\d* .*check the noise scale"):
        check_sampler(toys.BAOAB(wrong_noise=True))
