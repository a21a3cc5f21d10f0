"""The report's first screen and what explains it: the fragility curve and its sentence, short
labels, styled leaderboards, provenance, and the same headline in `bench show`."""
from __future__ import annotations

import base64
import json
import math
import re

import pandas as pd
import pytest
import torch

from bench_core.cli import main
from bench_core.findings.fragility import fragility_points, panel_sentence
from bench_core.report.html_report import _styled_leaderboard
from bench_core.findings.labels import short_labels, short_names
from bench_core.findings.leaderboard import leaderboard_tables
from bench_core.results.run_results import RESULT_COLUMNS, RunResults, load_results

def test_fragility_points_are_the_seed_means_of_the_cells(fragility_run):
    run = load_results(fragility_run)
    points = fragility_points(run)
    assert set(points["panel"]) == {"ball_trap on gaussian"}  # exact is the reference, not a panel
    assert len(points) == 6 and points.groupby("line")["config"].nunique().tolist() == [3, 3]
    kinds = dict(zip(points["line"], points["kind"]))  # short labels: nothing else tells the lines apart
    assert kinds == {"ula from standard_normal": "langevin", "ddim": "diffusion"}
    assert set(points["full_line"]) == {"ula(n_steps=200, step_size=0.0025) from standard_normal", "ddim(n_steps=30)"}
    done = run.results[(run.results["score"] == "ball_trap") & (run.results["status"] == "done")]
    for r in points.itertuples():
        cells = done[(done["target_params"] == r.config) & (done["sampler"] == r.full_line.split("(")[0])]
        by_metric = cells.groupby("metric")["value"]
        assert r.log10_eps == pytest.approx(by_metric.mean()["score_error.log10"], rel=1e-12)
        assert r.tv == pytest.approx(by_metric.mean()["tv_witness.lower"], rel=1e-12)
        assert r.is_bound == (by_metric.mean()["score_error.log10_is_bound"] > 0.5)
        assert r.n == 2 and r.metric == "tv_witness.lower"
    # the same t = 0 estimate for both samplers: their x values coincide target by target
    assert points.groupby("config")["log10_eps"].nunique().eq(1).all()


def test_a_run_without_a_sweep_has_no_points(fragility_run):
    run = load_results(fragility_run)
    one_target = run.results[run.results["target_params"] == run.results["target_params"].iloc[0]]
    assert fragility_points(RunResults(one_target, run.trajectory, run.info)).empty


def _points(tvs: dict[str, list[float]], kinds: dict[str, str]) -> pd.DataFrame:
    xs = [-2.0, -12.0, -30.0]
    rows = [{"panel": "ball_trap on gaussian", "line": line, "kind": kinds[line], "log10_eps": x, "tv": tv}
            for line, values in tvs.items() for x, tv in zip(xs, values)]
    return pd.DataFrame(rows)


def test_the_sentence_states_the_contrast_at_the_small_error_end():
    points = _points({"ula from standard_normal": [0.9, 0.986, 0.995], "ddpm": [0.0, 0.004, 0.0]},
                     {"ula from standard_normal": "langevin", "ddpm": "diffusion"})
    # points at eps_0^2 <= 1e-10 only: the 0.9 at 1e-2 is not part of the statement; "TV >= 0.98" rounds
    # 0.986 down (a floor is still true), the diffusion bound 0.004 up (a ceiling is still true)
    assert panel_sentence(points) == (
        "ball_trap on gaussian: where ε₀² ≤ 1e-12, ula from standard_normal (TV ≥ 0.98) is certified far from the "
        "target while the certified lower bound of ddpm (0.01) stays near 0 (no detectable departure).")


def test_the_sentence_falls_back_to_the_smallest_error_measured():
    points = _points({"ula": [0.2, 0.6, 0.7]}, {"ula": "langevin"})
    points["log10_eps"] = [-1.0, -2.0, -3.4]
    assert panel_sentence(points) == ("ball_trap on gaussian: where ε₀² ≤ 1e-3, ula (TV ≥ 0.70) is certified far "
                                      "from the target.")


def test_the_report_opens_with_the_fragility_curve(fragility_run):
    page = (fragility_run / "report.html").read_text()
    head = page.index('<section id="headline">')
    figure = page.index('<figure id="headline-figure"', head)
    assert figure < page.index('<p class="lead">ball_trap on gaussian: where ε₀² ≤') < page.index('<h2 id="contrast">')
    png = base64.b64decode(page[page.index("base64,", figure) + 7:page.index('"', page.index("base64,", figure))])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert "<td>ula from standard_normal</td>" in page and "<td>ula(n_steps=200, step_size=0.0025) from standard_normal</td>" in page
    # the contrast heatmap cells carry the score errors next to TV
    assert "ε₀² and ε̄² per cell" in page and "<details><summary>the same numbers as a table" in page


def test_bench_show_prints_the_headline_first(fragility_run, capsys):
    assert main(["show", str(fragility_run), "--width", "100"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# sweep: headline\n\n- ball_trap on gaussian: where ε₀² ≤")
    assert out.index("headline") < out.index("# sweep leaderboard")


def test_provenance_is_recorded_and_shown(fragility_run):
    info = json.loads((fragility_run / "run.json").read_text())
    prov = info["provenance"]
    assert prov["versions"]["torch"] == torch.__version__ and "bench" in prov["versions"]
    assert prov["executor"] == "local" and prov["workers"] == 1 and prov["elapsed_s"] > 0
    assert prov["python"].count(".") == 2 and prov["command"]
    assert info["sampler_families"] == {"ula": "langevin", "ddim": "diffusion"}
    page = (fragility_run / "report.html").read_text()
    details = page[page.index('<h2 id="provenance">'):]
    assert f"torch {torch.__version__}" in details and "Wall time per sampler" in details
    assert details.index("ula(n_steps=200, step_size=0.0025)") > 0 and "ddim(n_steps=30)" in details


def test_short_labels_keep_only_what_tells_rows_apart():
    j = lambda **k: json.dumps(k)  # noqa: E731
    rows = [(("ula", j(step_size=0.0025, n_steps=1000)), ("standard_normal", "")),
            (("ula", j(step_size=0.0025, n_steps=1000)), ("train", j(distinct=30))),
            (("ddpm", j(discretization="ancestral", n_steps=1000)), ("prior", "")),
            (("ddpm", j(discretization="exponential", n_steps=1000)), ("prior", "")),
            (("ddim", ""), ("prior", ""))]
    assert short_labels(rows) == ["ula from standard_normal", "ula from train", "ddpm(ancestral)",
                                  "ddpm(exponential)", "ddim"]
    families = [("noisy", j(eps=0.25, bandwidth=7.0)), ("noisy", j(eps=1.0, bandwidth=7.0)), ("exact", "")]
    assert short_names(families) == ["noisy(eps=0.25)", "noisy(eps=1.0)", "exact"]


def _tiny_run(statuses: list[str]) -> RunResults:
    """Two configurations (ula at two step sizes) x two seeds; the second config's seeds as given."""
    rows = []
    for step, seeds in ((0.01, ["done", "done"]), (0.1, statuses)):
        for seed, status in enumerate(seeds):
            base = {"cell": f"c{step}{seed}", "target": "gaussian", "score": "exact", "initializer": "standard_normal",
                    "sampler": "ula", "seed": seed, "target_params": '{"dim": 2}', "score_params": "",
                    "initializer_params": "", "sampler_params": json.dumps({"step_size": step}), "wall_s": 0.1,
                    "reason": ""}
            if status == "done":
                rows += [{**base, "status": "done", "metric": "m", "value": step * 10 + seed},
                         {**base, "status": "done", "metric": "acc", "value": 1 - step}]
            else:
                rows.append({**base, "status": status, "metric": "error", "value": math.nan, "reason": "nan"})
    info = {"higher_is_better": {"m": False, "acc": True}, "rank_by": "m"}
    return RunResults(pd.DataFrame(rows, columns=RESULT_COLUMNS), pd.DataFrame(), info)


def test_leaderboards_mark_rows_with_seeds_not_done_and_highlight_the_best():
    run = _tiny_run(["done", "diverged"])
    (title, table), = leaderboard_tables(run, keep_means=True)
    assert list(table["not done"]) == ["", "1 diverged"]
    assert list(table["_m"]) == pytest.approx([0.6, 1.0])  # means of 0.1, 1.1 and of 1.0: step 0.01 ranks first
    html = _styled_leaderboard(table, run.info["higher_is_better"], "t")

    def styled(colour: str) -> set[str]:
        """The cells (row, column) a CSS rule with this background colour applies to."""
        rules = re.findall(r"([^{}]+)\{\s*background-color: " + colour, html)
        return {cell for rule in rules for cell in re.findall(r"#T_t_(row\d+_col\d+)", rule)}

    shown = [c for c in table.columns if not c.startswith("_")]
    col = {name: f"col{shown.index(name)}" for name in ("m", "acc", "not done")}
    # one best cell per metric column, both in the first row (lowest m, highest acc); the diverged mark
    assert styled("#d7f0df") == {f"row0_{col['m']}", f"row0_{col['acc']}"}
    assert styled("#fde2e2") == {f"row1_{col['not done']}"}
    assert "_m" not in html and "1 diverged" in html
    assert "not done" not in leaderboard_tables(_tiny_run(["done", "done"]))[0][1]


def test_a_sampler_measured_on_one_configuration_is_not_a_line(fragility_run):
    run = load_results(fragility_run)
    r = run.results
    first = r["target_params"].iloc[0]
    keep = r[(r["sampler"] != "ddim") | (r["target_params"] == first)]
    points = fragility_points(RunResults(keep.reset_index(drop=True), run.trajectory, run.info))
    assert set(points["line"]) == {"ula from standard_normal"} and len(points) == 3
