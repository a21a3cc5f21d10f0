"""The quality-cost curve: a suite that ranks at equal cost opens its report with the metric against the
score evaluations, one line per sampler (its step counts merged), one panel per score family."""
from __future__ import annotations

import pytest

from bench_core import load_results
from bench_core.findings.quality_cost import quality_cost_points
from bench_core.pipeline import run_suite

SUITE = """
[suite]
name = "cost"
seeds = [0]
n_samples = 400
device = "cpu"
rank_at_equal_nfe = {rank}

[[targets]]
name = "gaussian"
params = {{ dim = 4, mean = 2.0 }}

[[scores]]
name = "exact"

[[scores]]
name = "ball_trap"

[[samplers]]
name = "ddim"
grid = {{ n_steps = [5, 20] }}

[[samplers]]
name = "ula"
params = {{ n_steps = 5, step_size = 0.5 }}

[[samplers]]
name = "ula"
params = {{ n_steps = 20, step_size = 0.125 }}

[[metrics]]
name = "gaussian_kl"

[[metrics]]
name = "tv_witness"
"""


@pytest.fixture(scope="module")
def cost_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cost")
    (folder / "cost.toml").write_text(SUITE.format(rank="true"))
    run_suite(folder / "cost.toml", out=folder / "out")
    return folder / "out"


def test_points_are_per_sampler_line_with_the_trap_judged_by_its_tv_bound(cost_run):
    points = quality_cost_points(load_results(cost_run))
    assert set(points["line"]) == {"ddim", "ula"}  # the step counts (and ULA's step size) make one line
    assert sorted(points[points["line"] == "ddim"]["nfe"].unique()) == [5.0, 20.0]
    by_panel = points.groupby("panel")["metric"].first()
    assert by_panel["exact"] == "gaussian_kl" and by_panel["ball_trap"] == "tv_witness.lower"
    trap = points[(points["panel"] == "ball_trap") & (points["line"] == "ula")]["value"]
    assert (trap > 0.5).all()  # ULA from N(0, I) stays in the ball at both costs


def test_the_report_opens_with_the_curve(cost_run):
    html = (cost_run / "report.html").read_text()
    figure = html.index('id="headline-figure"')
    assert 'alt="quality against the number of score evaluations"' in html[figure:figure + 200_000]


def test_without_ranking_at_equal_cost_there_is_no_curve(tmp_path):
    (tmp_path / "cost.toml").write_text(SUITE.format(rank="false"))
    run_suite(tmp_path / "cost.toml", out=tmp_path / "out")
    assert quality_cost_points(load_results(tmp_path / "out")).empty
