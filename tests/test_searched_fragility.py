"""The searched fragility curve and the report's parts for searched scores, from a small real run."""
from __future__ import annotations

import json
import math

import pytest

from bench_core import load_results
from bench_core.findings.searched_fragility import searched_points, searched_summary
from bench_core.pipeline import run_suite
from bench_core.report.html_report import render_html

SUITE = """
[suite]
name = "searched_small"
seeds = [0, 1]
n_samples = 300

[[targets]]
name = "gaussian"
params = { dim = 2, mean = 2.0 }

[[scores]]
name = "exact"

[[scores]]
name = "adversary"
params = { attack = "ula", attack_params = { step_size = 0.01, n_steps = 100 }, iterations = 4, width = 16, n_particles = 64 }
grid = { budget = [0.01, 0.3] }

[[scores]]
name = "adversary"
params = { attack = "ddpm", attack_params = { discretization = "exponential", n_steps = 100 }, iterations = 4, width = 16, n_particles = 64 }
grid = { budget = [0.01, 0.3] }

[[scores]]
name = "ball_trap"

[[initializers]]
name = "standard_normal"

[[samplers]]
name = "ula"
params = { step_size = 0.01, n_steps = 100 }

[[samplers]]
name = "ddpm"
params = { discretization = "exponential", n_steps = 100 }

[[metrics]]
name = "tv_classifier"
params = { epochs = 50 }

[[metrics]]
name = "score_error"

[[metrics]]
name = "girsanov_ceiling"
params = { n_mc = 300 }

[[claims]]
select = { score = "adversary", "score.attack" = "ula", sampler = "ula" }
metric = "tv_classifier.lower"
stat = "mean"
op = ">="
value = 0.0
"""


@pytest.fixture(scope="module")
def searched_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("searched")
    (folder / "suite.toml").write_text(SUITE)
    run_suite(folder / "suite.toml", out=folder / "out")
    return load_results(folder / "out")


def test_the_points_are_the_cells_means_by_line(searched_run):
    points = searched_points(searched_run)
    lines = set(points["line"])
    assert {"searched against ula", "searched against ddpm", "trained against ula, run under ddpm",
            "trained against ddpm, run under ula", "ceiling of ddpm", "exact score under ula",
            "exact score under ddpm"} <= lines
    assert {"trap"} == set(points.loc[points["line"].str.startswith("ball_trap"), "kind"])
    searched = points[points["kind"] == "searched"]
    assert sorted(set(searched["log10_budget"].round(12))) == [round(math.log10(0.01), 12), round(math.log10(0.3), 12)]
    # each point is the mean over the 2 seeds of the cells' tv_classifier.lower
    results = searched_run.results
    params = results["score_params"].map(lambda p: json.loads(p) if p else {})
    at = results[(results["metric"] == "tv_classifier.lower") & (results["sampler"] == "ula")
                 & params.map(lambda p: p.get("attack") == "ula" and p.get("budget") == 0.3)]
    point = searched[(searched["line"] == "searched against ula") & (searched["log10_budget"] == math.log10(0.3))]
    assert point["tv"].item() == pytest.approx(at["value"].mean(), abs=1e-12) and point["n"].item() == 2
    ceiling = points[points["kind"] == "ceiling"]
    assert len(ceiling) == 2 and ((ceiling["tv"] >= 0) & (ceiling["tv"] <= 1)).all()
    assert points.loc[points["kind"] == "exact", "log10_budget"].isna().all()


def test_the_sentence_names_the_smallest_budget_and_the_baselines(searched_run):
    (sentence,) = searched_summary(searched_points(searched_run))
    assert sentence.startswith("gaussian(dim=2, mean=2.0): at a budget of 0.01 the search certifies TV >= ")
    assert "the ceiling of ddpm is" in sentence and "with the exact score:" in sentence


def test_the_report_opens_with_the_searched_curve_and_draws_the_error(searched_run):
    page = render_html(searched_run)
    head = page[page.index('<section id="headline">'):page.index("</section>")]
    assert 'alt="searched fragility: TV against the budget"' in head
    assert '<h2 id="searched">What the search found</h2>' in page
    assert 'alt="the searched perturbation in a plane"' in page
    # the ULA-searched cells of the first seed (claimed) keep their error field in the plane
    fields = [v for v in searched_run.views.values() if "field_xy" in v]
    assert len(fields) == 2 and all(v["field_norm"].max() > 0 for v in fields)
    # the classic fragility curve leaves searched scores to their own curve
    assert "fragility curve: TV against the score error" not in page
