"""report.html: written by `bench run` (the "html" reporter) and by `bench report DIR [-o FILE]`;
self-contained, escaped, with contrast heatmaps/scatters and trajectories when the data has them."""
from __future__ import annotations

import re

import matplotlib.pyplot as plt
import pytest

from bench_core.cli import main
from bench_core.report.html_contrast import contrast_points
from bench_core.report.html_report import render_html
from bench_core.results.run_results import load_results
from bench_core.pipeline import run_suite
from conftest import BASE_SUITE
from helpers import BALL_TRAP_METRICS, EXACT_AND_BALL_TRAP

IMG = '<img src="data:image/png;base64,'

# Two score families on one target (so there is a contrast table), a Langevin and a diffusion
# sampler, checkpoints (trajectory.csv), the ball's witness set and the score errors.
SUITE = """
[suite]
name = "html"
description = "tiny <b>& report check"
seeds = [0, 1]
n_samples = 300
device = "cpu"
checkpoints = [0, 10, 40]
rank_by = "tv_witness.lower"

[data]
n_train = 50

[[targets]]
name = "gaussian"
params = { dim = 10, mean = 3.0 }
""" + EXACT_AND_BALL_TRAP + """
[[samplers]]
name = "ula"
params = { step_size = 0.01, n_steps = 40 }

[[samplers]]
name = "ddpm"
params = { discretization = "exponential", n_steps = 40 }
""" + BALL_TRAP_METRICS + """
[[claims]]
select = { sampler = "ula", score = "ball_trap" }
metric = "tv_witness.lower"
op = ">="
value = 0.5
why = "Theorem 1: the trap holds ULA"

[[claims]]
select = { sampler = "ddpm", score = "ball_trap" }
metric = "tv_witness.lower"
op = ">="
value = 0.9
why = "deliberately false: the admissible trap does not hold DDPM"
"""


@pytest.fixture(scope="module")
def contrast_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("html")
    suite = folder / "suite.toml"
    suite.write_text(SUITE)
    summary = run_suite(suite, out=folder / "out")
    assert summary.statuses.get("done") == summary.n_cells == 8, summary.statuses
    return folder / "out"


def _section(text: str, anchor: str) -> str:
    if anchor == "headline":  # the first screen: a <section>, not an <h2> section
        start = text.index('<section id="headline">')
        return text[start:text.index("</section>", start)]
    start = text.index(f'<h2 id="{anchor}">')
    end = text.find("<h2 ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def test_bench_run_writes_the_report(contrast_run):
    text = (contrast_run / "report.html").read_text()
    assert text.startswith("<!DOCTYPE html>") and "<style>" in text and "<script" not in text
    for heading in ("Contrast", "Leaderboard", "Trajectories", "Cells not done", "Run details and provenance"):
        assert f">{heading}</h2>" in text
    # the headline (claims summary) comes before every section; one target: no fragility curve
    assert text.index('<section id="headline">') < text.index('<h2 id="contrast">')
    assert 'id="headline-figure"' not in text
    # contrast: one heatmap and one TV-vs-eps_bar scatter for the target; trajectories: the
    # ranking metric tv_witness.lower is the only *.lower metric recorded at the checkpoints
    assert _section(text, "contrast").count(IMG) == 2
    assert _section(text, "trajectories").count(IMG) == 1
    assert _section(text, "samples").count(IMG) == 2  # the two claims' cells, first seed
    assert text.count(IMG) == 5
    assert "tiny &lt;b&gt;&amp; report check" in text and "<b>&" not in text
    assert "Ranked by <code>tv_witness.lower</code> (higher is better)" in text
    assert "All 8 cells finished." in text
    assert plt.get_fignums() == []  # figures never go through pyplot: nothing left open


def test_claims_table_shows_verdicts_and_highlights_failures(contrast_run):
    claims = _section((contrast_run / "report.html").read_text(), "headline")
    assert "1 of 2 claims hold." in claims
    rows = re.findall(r'<tr class="(pass|fail)"><td class="verdict">(PASS|FAIL)</td><td><code>(.*?)</code>'
                      r"</td><td>(.*?)</td></tr>", claims)
    # failures first and expanded; the passes collapsed under one <details> line
    assert [(r[0], r[1]) for r in rows] == [("fail", "FAIL"), ("pass", "PASS")]
    assert claims.index("FAIL") < claims.index("<details><summary>1 claim holds (show)</summary>") < claims.index("PASS")
    assert rows[1][2].startswith("mean(tv_witness.lower) &gt;= 0.5 [sampler=ula, score=ball_trap] -&gt; worst ")
    assert rows[1][3] == "Theorem 1: the trap holds ULA"
    assert rows[0][3] == "deliberately false: the admissible trap does not hold DDPM"


def test_contrast_points_match_the_contrast_table(contrast_run):
    run = load_results(contrast_run)
    points = contrast_points(run).set_index(["sampler", "family"])
    assert set(points.index) == {("ula(n_steps=40, step_size=0.01) from standard_normal", "exact"),
                                 ("ula(n_steps=40, step_size=0.01) from standard_normal", "ball_trap"),
                                 ("ddpm(discretization=exponential, n_steps=40)", "exact"),
                                 ("ddpm(discretization=exponential, n_steps=40)", "ball_trap")}
    assert (points["tag"] == "TV[wit]").all()
    # the heatmap's numbers are the seed means of the witness bound that contrast.md shows
    done = run.results[run.results["metric"] == "tv_witness.lower"]
    ula_trap = done[(done["sampler"] == "ula") & (done["score"] == "ball_trap")]["value"].mean()
    assert points.loc[("ula(n_steps=40, step_size=0.01) from standard_normal", "ball_trap"), "tv"] == ula_trap
    assert points["eps_bar"].notna().all()


def test_bench_report_writes_the_named_file(contrast_run, tmp_path, capsys):
    target = tmp_path / "elsewhere.html"
    assert main(["report", str(contrast_run), "-o", str(target)]) == 0
    assert capsys.readouterr().out.strip() == str(target)
    text = target.read_text()
    assert text.count(IMG) == 5 and "1 of 2 claims hold." in text


def test_bench_report_on_a_missing_folder_is_one_clean_error(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert main(["report", str(missing)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bench: error: results folder")
    assert str(missing) in err[0] and "bench run SUITE --out" in err[0]


def test_bench_report_on_a_folder_without_results_is_one_clean_error(tmp_path, capsys):
    (tmp_path / "results.csv").write_text("not,a\nresults,file\n")
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bench: error: cannot read the results in")


def test_a_run_without_contrast_or_trajectory_still_renders(write_suite, tmp_path, toy_registry):
    # smoke-like: one score, mean_error only, no checkpoints; plus a sampler that fails every cell
    text = BASE_SUITE.replace('[[metrics]]', '[[samplers]]\nname = "toy_raising"\n\n[[metrics]]')
    run_suite(write_suite(text), out=tmp_path / "out", registry=toy_registry)
    page = (tmp_path / "out" / "report.html").read_text()
    assert "Contrast</h2>" not in page and "Trajectories</h2>" not in page and IMG not in page
    assert "This suite states no claims." in page and ">Leaderboard</h2>" in page
    not_done = _section(page, "not-done")
    assert not_done.count("<td>failed</td>") == 2  # the toy sampler's cell in each seed
    assert "RuntimeError: deliberate failure in toy sampler" in not_done
    assert render_html(load_results(tmp_path / "out")) == page


def test_time_checkpoints_plot_against_t(write_suite, tmp_path):
    from bench_core.pipeline import run_suite

    suite = write_suite("""
        [suite]
        name = "tplot"
        seeds = [0, 1]
        n_samples = 200
        device = "cpu"
        checkpoints_t = [0.0, 0.2, 0.4]

        [[targets]]
        name = "gaussian"
        params = { dim = 2, mean = 1.0 }

        [[samplers]]
        name = "ula"
        params = { n_steps = 50 }
        grid = { step_size = [0.01, 0.02] }

        [[metrics]]
        name = "mean_error"
    """)
    run_suite(suite, out=tmp_path / "out")
    html = (tmp_path / "out" / "report.html").read_text()
    assert "mean_error against the time" in html and "against the step" not in html


def test_the_cells_a_claim_names_keep_a_sample_view(contrast_run):
    """Seed 0 of each claimed cell (ula and ddpm with the ball trap) has its view; the ULA samples sit
    near 0, about ||mu|| = 3 sqrt(10) = 9.5 from the target's mean, where no reference draw lies."""
    run = load_results(contrast_run)
    cells = run.results.drop_duplicates("cell")
    claimed = cells[(cells["score"] == "ball_trap") & (cells["seed"] == 0)]
    assert set(run.views) == set(claimed["cell"]) and len(run.views) == 2
    ula = run.views[claimed[claimed["sampler"] == "ula"]["cell"].item()]
    assert {k: v.shape for k, v in ula.items()} == {"radial": (300,), "radial_ref": (300,), "plane": (300, 2),
                                                   "plane_ref": (300, 2), "field_xy": (441, 2), "field_uv": (441, 2),
                                                   "field_norm": (441,)}
    # the trap's error in the plane: large at the origin (inside the ball), exactly 0 at the target's mean
    # (||mu|| = 9.5, beyond twice the ball's radius sqrt(10))
    nearest = lambda a, b: int(((ula["field_xy"] - [a, b]) ** 2).sum(1).argmin())  # noqa: E731
    assert ula["field_norm"][nearest(0.0, 0.0)] > 1.0 and ula["field_norm"][nearest(9.49, 0.0)] == 0.0
    # reference: ||z|| for z ~ N(0, I_10) is about sqrt(10) = 3.2; the trapped ULA samples: about 9.5
    assert ula["radial_ref"].mean() == pytest.approx(3.1, abs=0.4) and ula["radial"].mean() > 6.0
    # the first axis is the mean direction: the reference sits at +||mu|| on it, the trapped samples near 0
    assert ula["plane_ref"][:, 0].mean() == pytest.approx(9.49, abs=0.3) and ula["plane"][:, 0].mean() < 4.0
