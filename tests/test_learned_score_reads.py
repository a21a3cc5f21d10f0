"""``empirical`` and ``network``: closed forms, conventions and errors."""
from __future__ import annotations

import math

import pytest
import torch

from bench_core.base.errors import SuiteError
from bench_core.components.protocols import TrainingData
from bench_core.pipeline import plan_suite, run_suite
from bench_plugins.samplers.schedules import level_times
from bench_plugins.scores.learned.empirical import EmpiricalScore, empirical_score
from bench_plugins.scores.learned.network import LEVEL_10_TIME, ModelScore
from bench_plugins.targets.gaussian import GaussianTarget
from gaussian_eps_net import GaussianEps

F64 = torch.float64


def noised_empirical_log_density(x: torch.Tensor, points: torch.Tensor, t: float) -> torch.Tensor:
    """log (1/N) sum_i N(x; e^{-t} p_i, (1 - e^{-2t}) I), written independently of the score code."""
    var = 1.0 - math.exp(-2.0 * t)
    sq = ((x[:, None, :] - math.exp(-t) * points[None]) ** 2).sum(-1)
    d = x.shape[1]
    return torch.logsumexp(-sq / (2 * var), dim=1) - math.log(points.shape[0]) - 0.5 * d * math.log(2 * math.pi * var)


@pytest.mark.parametrize("t", [0.01, 0.1, 0.5, 2.0])
def test_empirical_score_is_the_gradient_of_the_noised_empirical_log_density(t):
    gen = torch.Generator().manual_seed(1)
    points = torch.randn(40, 3, generator=gen, dtype=F64)
    x = 1.2 * torch.randn(16, 3, generator=gen, dtype=F64)
    h = 1e-5
    # central differences: truncation O(h^2 f''') with f''' ~ 1/var^{3/2} <= 400 at t = 0.01, i.e. ~1e-8;
    # rounding ~ 1e-16 |f| / h ~ 1e-10: a 1e-6 tolerance (relative to |score| ~ 1..100) is far above both
    fd = torch.stack([(noised_empirical_log_density(x + h * e, points, t)
                       - noised_empirical_log_density(x - h * e, points, t)) / (2 * h)
                      for e in torch.eye(3, dtype=F64)], dim=1)
    score = empirical_score(x, points, t)
    torch.testing.assert_close(score, fd, rtol=1e-6, atol=1e-6)
    # blocks of 7 particle-point pairs (many online-softmax rescalings) give the same numbers
    torch.testing.assert_close(empirical_score(x, points, t, block_elements=7), score, rtol=1e-12, atol=1e-12)


def test_empirical_reads_level_10_at_t0_and_collapses_onto_training_points():
    gen = torch.Generator().manual_seed(2)
    distinct = torch.randn(30, 20, generator=gen, dtype=F64)
    data = TrainingData(train=distinct.repeat_interleave(3, 0), distinct=distinct, duplicate=3)
    score = EmpiricalScore(GaussianTarget(20), data)
    assert score.t0 == pytest.approx(level_times()[9]) and 1 / math.sqrt(1 - math.exp(-2 * score.t0)) == \
        pytest.approx(22.97306, rel=1e-6)
    x = distinct[:5] + 0.01 * torch.randn(5, 20, generator=gen, dtype=F64)
    # training points are ~sqrt(2 * 20) = 6.3 apart: the softmax is one-hot, the pull is to the own point
    expected = (math.exp(-score.t0) * distinct[:5] - x) / (1 - math.exp(-2 * score.t0))
    torch.testing.assert_close(score(x, 0.0), expected, rtol=1e-9, atol=1e-9)
    # t0 replaces readout's level: written together, readout would be ignored, so it is refused
    assert EmpiricalScore(GaussianTarget(20), data, t0=0.01).t0 == 0.01
    assert EmpiricalScore(GaussianTarget(20), data, readout=5).t0 == level_times()[4]
    with pytest.raises(ValueError, match="^parameter 'readout' is not used when t0 is given"):
        EmpiricalScore(GaussianTarget(20), data, readout=10, t0=0.01)


@pytest.mark.parametrize("output,time", [("eps", "t"), ("eps", "sigma"), ("score", "t"), ("eps", "level")])
def test_model_score_conventions_give_the_exact_score(output, time):
    target = GaussianTarget(4, mean=1.5)
    score = ModelScore(GaussianEps(4, 1.5, output, time).double(), output=output, time=time, t0=LEVEL_10_TIME)
    x = torch.randn(50, 4, generator=torch.Generator().manual_seed(3), dtype=F64)
    times = level_times()
    for t in (times[0], times[9], times[99], 0.5, times[-1]):
        if time == "level" and t not in times:
            continue
        torch.testing.assert_close(score(x, t), target.score(x, t), rtol=1e-10, atol=1e-10)
    # t = 0 reads at t0 (level 10 for eps networks)
    torch.testing.assert_close(score(x, 0.0), target.score(x, LEVEL_10_TIME), rtol=1e-10, atol=1e-10)


NETWORK_SUITE = """
[suite]
name = "net"
seeds = [0]
n_samples = 100
device = "cpu"

[[targets]]
name = "gaussian"
params = {{ dim = 3 }}

[[scores]]
name = "network"
params = {{ {params} }}

[[samplers]]
name = "ula"
params = {{ n_steps = 10 }}

[[metrics]]
name = "mean_error"
"""


@pytest.mark.parametrize("params,message", [
    ('model = "no_such_module_xyz:Net", output = "eps", time = "t"', "parameter 'model': cannot import module"),
    ('model = "gaussian_eps_net:Nope", output = "eps", time = "t"', "has no attribute 'Nope'"),
    ('model = "gaussian_eps_net", output = "eps", time = "t"', "must be \"package.module:attr\""),
    ('model = "gaussian_eps_net:GaussianEps", output = "noise", time = "t", kwargs = { dim = 3 }',
     "parameter 'output' must be one of"),
    ('model = "gaussian_eps_net:GaussianEps", output = "eps", kwargs = { dim = 3 }',
     "missing 1 required keyword-only argument: 'time'"),
    ('model = "gaussian_eps_net:GaussianEps", output = "eps", time = "t", kwargs = { dims = 3 }',
     "parameter 'kwargs'"),
    ('model = "gaussian_eps_net:GaussianEps", output = "eps", time = "t", kwargs = { dim = 3 }, '
     'weights = "missing.pt"', "parameter 'weights': file .*missing.pt' not found"),
    ('model = "gaussian_eps_net:GaussianEps", output = "eps", time = "t", kwargs = { dim = 3 }, '
     'weights = "other.pt"', "parameter 'weights': .*other.pt' does not match the module"),
])
def test_network_errors_are_refused_before_anything_runs(write_suite, tmp_path, params, message):
    torch.save({"not_a_param": torch.zeros(2)}, tmp_path / "other.pt")
    path = write_suite(NETWORK_SUITE.format(params=params))
    with pytest.raises(SuiteError, match=message) as info:
        plan_suite(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_network_weights_relative_to_the_suite_file_and_wrong_output_shape(write_suite, tmp_path):
    model = GaussianEps(3)
    with torch.no_grad():
        model.scale.fill_(2.0)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    path = write_suite(NETWORK_SUITE.format(
        params='model = "gaussian_eps_net:GaussianEps", output = "score", time = "t", kwargs = { dim = 3 }, '
               'weights = "w.pt"'))
    plan = plan_suite(path)
    assert plan.cells
    path = write_suite(NETWORK_SUITE.format(params='model = "gaussian_eps_net:WrongShape", output = "score", '
                                                   'time = "t", kwargs = { dim = 3 }'))
    summary = run_suite(path, out=tmp_path / "out")
    assert summary.statuses == {"done": 0, "failed": 1}
    import pandas as pd

    reason = pd.read_csv(tmp_path / "out" / "results.csv")["reason"].iloc[0]
    assert "returned [100, 4] for input [100, 3]" in reason


def test_network_gives_the_exact_scores_results(write_suite, tmp_path, monkeypatch):
    """ULA and DDPM with the network computing the exact eps of N(1, I_3) match the ``exact`` score.

    Statistics: 2n KL(Gaussian fit) is asymptotically chi^2 with k = d(d+3)/2 = 9 degrees of freedom, so
    KL has sd sqrt(k/2)/n = 5.3e-4 at n = 4000; the difference of two independent cells has sd 7.5e-4,
    and its mean differs only by the level-10 read-out of ULA (a mean shift (1 - e^{-t_10}) = 9.5e-4 per
    coordinate: KL change ~ 1.4e-6). 5 sd = 3.8e-3 per seed.
    """
    path = write_suite("""
        [suite]
        name = "net_vs_exact"
        seeds = [0, 1]
        n_samples = 4000
        device = "cpu"

        [[targets]]
        name = "gaussian"
        params = { dim = 3, mean = 1.0 }

        [[scores]]
        name = "exact"

        [[scores]]
        name = "network"
        params = { model = "gaussian_eps_net:make_gaussian_eps", kwargs = { dim = 3, mean = 1.0 }, output = "eps", time = "t" }

        [[samplers]]
        name = "ula"
        params = { step_size = 0.01, n_steps = 500 }

        [[samplers]]
        name = "ddpm"
        params = { n_steps = 200 }

        [[metrics]]
        name = "gaussian_kl"
    """)
    # model names a function: the user opts in outside the suite (what --allow-model-factories sets)
    monkeypatch.setenv("BENCH_ALLOW_MODEL_FACTORIES", "1")
    summary = run_suite(path, out=tmp_path / "out")
    assert summary.statuses == {"done": 8}
    import pandas as pd

    df = pd.read_csv(tmp_path / "out" / "results.csv")
    kl = df[df.metric == "gaussian_kl"].pivot_table(index=["sampler", "seed"], columns="score", values="value")
    assert (kl["network"] - kl["exact"]).abs().max() <= 3.8e-3, kl
    assert kl.max().max() < 0.02  # both sample N(1, I): bias d(d+3)/(4n) = 0.0011 plus O(h) terms


def test_network_runs_in_the_suites_dtype(float64):
    from bench_plugins.scores.learned.network import make_network_score

    data = TrainingData(train=torch.zeros(4, 3), distinct=torch.zeros(4, 3))
    score = make_network_score(GaussianTarget(3), data, model="gaussian_eps_net:GaussianEps", kwargs={"dim": 3},
                               output="score", time="t")
    assert score.dtype == F64 and score.model.scale.dtype == F64
    x = torch.randn(5, 3, dtype=F64)
    assert score(x, 0.3).dtype == F64
