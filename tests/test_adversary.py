"""The adversary score: its gradient form, its budget, its training (bit-identical, cached), its refusals,
and the Girsanov ceiling of DDPM's exponential integrator."""
from __future__ import annotations

import math

import pytest
import torch

from bench_core import get_registry, load_results
from bench_core.pipeline import run_suite
from helpers import plugins_env, run_cli

from bench_plugins.metrics.girsanov import GirsanovCeiling, step_kl_weights
from bench_plugins.scores.adversary.attack import build_attack, differentiability_problem
from bench_plugins.scores.adversary.budget import forward_noised, norm_nodes
from bench_plugins.scores.adversary.perturbation import PerturbationMLP
from bench_plugins.scores.adversary.training import FINAL_NODES, energy_distance

ULA = {"attack": "ula", "attack_params": {"step_size": 0.01, "n_steps": 100}}
DDPM = {"discretization": "exponential", "n_steps": 100}
SMALL = {"iterations": 4, "n_particles": 64, "n_norm_batch": 128, "width": 16}


def make(score: str = "adversary", target: dict | None = None, **params):
    registry = get_registry()
    tgt = registry.create("targets", "gaussian", **(target or {"dim": 2, "mean": 2.0}))
    return tgt, registry.create("scores", score, tgt, None, **params)


@pytest.mark.parametrize("form", ["gradient", "field"])
def test_the_gradient_form_is_the_gradient_of_its_potential(form):
    torch.manual_seed(0)
    net = PerturbationMLP(3, 8, 3, form).to(torch.float64)
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    if form == "field":
        assert net(x, 0.3).shape == (5, 3)
        with pytest.raises(ValueError, match="no potential"):
            net.potential(x, 0.3)
        return
    (auto,) = torch.autograd.grad(net.potential(x, 0.3).sum(), x)
    torch.testing.assert_close(net(x, 0.3), auto, rtol=1e-12, atol=1e-14)


def test_energy_distance_is_zero_in_expectation_and_positive_between_shifted_laws():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(400, 2, generator=g, dtype=torch.float64), torch.randn(400, 2, generator=g, dtype=torch.float64)
    # same law: the unbiased estimate has mean 0 and sd ~ 1/n at n = 400; far from the shifted value
    assert abs(float(energy_distance(x, y))) < 0.02
    shifted = float(energy_distance(x, y + torch.tensor([3.0, 0.0], dtype=torch.float64)))
    assert shifted > 1.5  # 2 E|N(3, 2)| - 2 E|N(0, 2)| = 2 * 3.15 - 2 * 1.60 = 3.1 in d = 1 along the shift


@pytest.mark.parametrize("attack,norm", [(ULA, "zero"), ({"attack": "ddpm", "attack_params": DDPM}, "bar")])
def test_the_budget_is_met_on_fresh_samples(attack, norm):
    budget = 0.05
    target, score = make(**attack, **SMALL, budget=budget, norm=norm)
    score.prepare()
    nodes = norm_nodes(score.job.attacked.grid(), norm, FINAL_NODES)
    g = torch.Generator().manual_seed(2026)
    m = 20_000
    x0 = target.sample(m, g).to(torch.float64)
    z = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    per_point = torch.zeros(m, dtype=torch.float64)
    for t, w in nodes:  # the same nodes, fresh (x_0, z): per-point sums are i.i.d., so the SE is sd / sqrt(m)
        x = forward_noised(x0, z, t)
        per_point += w * (score(x, t) - target.score(x, t)).pow(2).sum(-1)
    fresh = float(per_point.mean())
    # the scale was fixed on n_norm = 8192 other points: the fresh estimate and that one each carry
    # Monte Carlo error sd / sqrt(n); 4 combined standard errors (two-sided 6e-5 false alarm)
    sd = float(per_point.std())
    se = sd * math.sqrt(1 / m + 1 / score.params["n_norm"])
    assert abs(fresh - budget) <= 4 * se, (fresh, budget, se)
    assert se < 0.2 * budget  # the check is informative: the errors are resolved to 20%


def test_training_is_bit_identical_for_the_same_key(tmp_path, monkeypatch):
    folders = []
    for name in ("a", "b"):
        monkeypatch.setenv("BENCH_CACHE", str(tmp_path / name))
        _, score = make(**ULA, **SMALL, budget=0.1)
        score.job.run()
        folders.append(score.job.folder)
    assert folders[0].name == folders[1].name and folders[0].parent.name == folders[1].parent.name  # same key
    for file in ("weights.pt", "objective.csv", "model.json"):
        assert (folders[0] / file).read_bytes() == (folders[1] / file).read_bytes(), file


def test_a_cached_adversary_is_loaded_and_not_retrained(write_suite, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    path = write_suite("""
        [suite]
        name = "cached_adversary"
        seeds = [0]
        n_samples = 200

        [[targets]]
        name = "gaussian"
        params = { dim = 2, mean = 2.0 }

        [[scores]]
        name = "adversary"
        params = { attack = "ula", attack_params = { step_size = 0.01, n_steps = 100 }, iterations = 3, width = 16, n_particles = 64 }

        [[initializers]]
        name = "standard_normal"

        [[samplers]]
        name = "ula"
        params = { step_size = 0.01, n_steps = 100 }

        [[metrics]]
        name = "score_error"
    """)
    run_suite(path, out=tmp_path / "one")
    weights = next((tmp_path / "cache" / "adversary").glob("*/trained/weights.pt"))
    stamp = weights.stat().st_mtime_ns
    done = run_cli("run", path, "--out", tmp_path / "two", env=plugins_env(BENCH_CACHE=str(tmp_path / "cache")))
    assert done.returncode == 0, done.stderr
    assert "training adversary" not in done.stderr and "cached, loaded from" in done.stderr, done.stderr
    assert weights.stat().st_mtime_ns == stamp


def test_a_sampler_that_cannot_be_differentiated_is_refused_at_check(write_suite):
    path = write_suite("""
        [suite]
        name = "numpy_attack"
        seeds = [0]

        [[targets]]
        name = "gaussian"
        params = { dim = 2 }

        [[scores]]
        name = "adversary"
        params = { attack = "toy_numpy_ula" }

        [[initializers]]
        name = "standard_normal"

        [[samplers]]
        name = "ula"

        [[metrics]]
        name = "score_error"
    """)
    done = run_cli("check", path, env=plugins_env(BENCH_PLUGIN_MODULES="toy_plugins"))
    assert done.returncode == 2
    line = done.stderr.strip()
    assert len(line.splitlines()) == 1, line
    assert "toy_numpy_ula" in line and "cannot be attacked" in line and "does not depend on the score" in line
    assert str(path) in line


@pytest.mark.parametrize("params,message", [
    ({"attack": "ddpm", "attack_params": DDPM, "norm": "zero"}, "use norm = 'bar'"),
    ({"attack": "ddpm", "attack_params": DDPM, "schedule": "naive"}, "has its own time form"),
    ({"attack": "ddpm", "attack_params": DDPM, "start_params": {"scale": 2.0}}, r"starts from N\(0, I\)"),
    ({"attack": "no_such_sampler"}, "parameter 'attack'"),
    ({"attack": "ula", "attack_params": {"stepsize": 0.1}}, "unknown parameter 'stepsize'"),
    ({"form": "curl"}, "parameter 'form'"),
    ({"n_particles": 1}, "n_particles"),
])
def test_bad_params_are_refused_with_the_reason(params, message):
    with pytest.raises(ValueError, match=message):
        make(**params)


def test_the_girsanov_weights_are_the_exact_per_step_kl():
    # one Gaussian step of the exponential integrator: means differ by 2 (e^h - 1) delta, variance
    # e^{2h} - 1, so KL = 4 (e^h - 1)^2 / (2 (e^{2h} - 1)) per unit ||delta||^2 = 2 tanh(h / 2)
    for h in (1e-3, 0.1, 2.0):
        assert step_kl_weights([(1.0, h)])[0] == pytest.approx(4 * math.expm1(h) ** 2 / (2 * math.expm1(2 * h)),
                                                               rel=1e-12)


class ConstantShift:
    """The exact score plus a constant vector c at every t: ``||delta||^2 = ||c||^2`` along any path."""

    rowwise = True

    def __init__(self, target, c):
        self.target, self.c = target, c

    def __call__(self, x, t):
        return self.target.score(x, t) + self.c.to(x)


def test_the_ceiling_of_a_constant_shift_is_the_weighted_time_sum(float64):
    registry = get_registry()
    target = registry.create("targets", "gaussian", dim=3, mean=1.0)
    sampler = registry.create("samplers", "ddpm", **DDPM)
    c = torch.tensor([0.1, -0.2, 0.05], dtype=torch.float64)
    ctx = _context(target, ConstantShift(target, c), sampler)
    out = GirsanovCeiling(n_mc=50)(torch.zeros(1, 3, dtype=torch.float64), ctx)
    expected = sum(2 * math.tanh(h / 2) for _, h in sampler.score_times()) * float(c.pow(2).sum())
    assert out["kl"] == pytest.approx(expected, rel=1e-12) and out["kl_se"] == pytest.approx(0.0, abs=1e-15)
    assert out["tv"] == pytest.approx(math.sqrt(expected / 2), rel=1e-12)


def _context(target, score, sampler, seed: int = 0):
    from bench_core import MetricContext

    g = torch.Generator().manual_seed(seed)
    return MetricContext(target=target, reference=target.sample(4000, g), score=score, data=None, sampler=sampler,
                         generator=g)


def _gaussian_ddpm_output_tv_upper(sampler, mean: float, dim: int) -> float:
    """TV upper bound between the exact-score exponential integrator's output and N(mean 1, I) (std 1).

    With ``p_t = N(e^{-t} mean, I)`` the score is ``-(y - e^{-t} mean)`` and each step is linear:
    ``y <- (2 - e^h) y + 2 (e^h - 1) e^{-t} mean + sqrt(e^{2h} - 1) z``, so the output is
    ``N(m 1, v I)`` with (m, v) from the recursion; TV <= sqrt(KL / 2) between the two Gaussians.
    """
    m, v = 0.0, 1.0
    for t, h in sampler.score_times():
        a = 2 - math.exp(h)
        m = a * m + 2 * math.expm1(h) * math.exp(-t) * mean
        v = a * a * v + math.expm1(2 * h)
    kl = 0.5 * dim * (v - 1 - math.log(v) + (m - mean) ** 2)
    return math.sqrt(kl / 2)


def test_measured_tv_never_exceeds_the_girsanov_ceiling(one_thread):
    """TV(out, pi) <= TV(out, exact-score out) + TV(exact-score out, pi) <= ceiling + closed-form term.
    The measured TV is tv_classifier's 95% lower confidence bound, so only its own Monte Carlo error is
    left (5% false alarm at most per budget, fixed seeds); the ceiling side uses kl + 3 SE."""
    registry = get_registry()
    sampler = registry.create("samplers", "ddpm", **DDPM)
    tv_classifier = registry.create("metrics", "tv_classifier")
    for budget in (0.05, 0.5):
        target, score = make(attack="ddpm", attack_params=DDPM, budget=budget, **{**SMALL, "iterations": 8})
        g = torch.Generator().manual_seed(7)
        with torch.inference_mode():
            out = sampler.sample(score, torch.randn(4000, 2, generator=g), generator=g)
        ctx = _context(target, score, sampler, seed=11)
        measured = tv_classifier(out, ctx)["lower"]
        ceiling = GirsanovCeiling(n_mc=2000)(out, ctx)
        own = _gaussian_ddpm_output_tv_upper(sampler, 2.0, 2)
        assert own < 0.05  # 100 geometric steps from T = 10 to 1e-3: a small discretization error
        assert measured <= ceiling["tv_upper"] + own, (budget, measured, ceiling)
        assert ceiling["kl"] <= 10.0 * budget * 1.2  # KL <= T eps_bar^2 (T ~ 10), up to Monte Carlo error


def test_a_langevin_adversary_has_an_admissible_time_form_under_diffusion():
    target, score = make(**ULA, **SMALL, budget=0.05)
    assert score.active(0.0)
    cutoff = score.cutoff
    assert 0 < cutoff < math.inf
    # at t = 0 the error is the budget on the very points that fixed the scale; the cutoff is the first
    # time it exceeds it, and from there on the estimate is the exact score
    assert score.error_at(0.0) == pytest.approx(0.05, rel=1e-9)
    assert score.error_at(cutoff) > 0.05
    x = target.sample(10, torch.Generator().manual_seed(0))
    torch.testing.assert_close(score(x, cutoff * 2), target.score(x, cutoff * 2))
    _, naive = make(**ULA, **SMALL, budget=0.05, schedule="naive")
    assert naive.cutoff == math.inf and naive.diagnostics()["admissible"] == 0.0



@pytest.mark.parametrize("name,params", [
    ("ula", {"n_steps": 20}), ("annealed_langevin", {}), ("ddpm", {"n_steps": 50}), ("ddpm", DDPM),
    ("ddim", {"n_steps": 20}), ("diffusers", {"scheduler": "DPMSolverMultistepScheduler", "n_steps": 10}),
    ("diffusers", {"scheduler": "EulerAncestralDiscreteScheduler", "n_steps": 10}),
    ("diffusers", {"scheduler": "HeunDiscreteScheduler", "n_steps": 5}),
])
def test_built_in_samplers_can_be_attacked(name, params):
    pytest.importorskip("diffusers") if name == "diffusers" else None
    target = get_registry().create("targets", "gaussian", dim=2, mean=1.0)
    attacked = build_attack(name, params, "standard_normal", {}, target, None)
    assert differentiability_problem(attacked) is None


def test_a_sampler_that_needs_another_score_form_is_refused_with_its_reason():
    target = get_registry().create("targets", "gaussian", dim=2, mean=1.0)
    with pytest.raises(ValueError, match=r"sampler .cld. cannot be attacked: running it .*velocity_score"):
        build_attack("cld", {}, "standard_normal", {}, target, None)


def test_a_diverging_search_fails_its_cells_and_the_run_goes_on(write_suite, tmp_path, monkeypatch):
    """A non-finite objective stops that adversary's training; its cells are recorded failed with the
    reason, the other cells of the run finish."""
    from bench_plugins.scores.adversary import training

    monkeypatch.setattr(training.AdversaryTrainingJob, "_divergence",
                        lambda self, x, y: (x.sum() * float("nan")))
    path = write_suite("""
        [suite]
        name = "diverging_search"
        seeds = [0, 1]
        n_samples = 200

        [[targets]]
        name = "gaussian"
        params = { dim = 2, mean = 2.0 }

        [[scores]]
        name = "exact"

        [[scores]]
        name = "adversary"
        params = { attack = "ula", attack_params = { step_size = 0.01, n_steps = 50 }, iterations = 3, width = 16 }

        [[initializers]]
        name = "standard_normal"

        [[samplers]]
        name = "ula"
        params = { step_size = 0.01, n_steps = 50 }

        [[metrics]]
        name = "energy"
    """)
    summary = run_suite(path, out=tmp_path / "out")
    results = load_results(tmp_path / "out").results
    failed = results[results["score"] == "adversary"]
    assert set(failed["status"]) == {"failed"} and failed["cell"].nunique() == 2
    assert failed["reason"].str.contains("diverged at iteration 1: objective nan").all()
    assert set(results.loc[results["score"] == "exact", "status"]) == {"done"}
    assert summary.exit_code == 1
