"""Rendering ``report.html`` for a 1000-cell results folder: what a user waits for after a sweep."""
from __future__ import annotations

import time

import pytest

from bench_core.report.html_report import render_html
from bench_core.results.run_results import load_results
from bench_core.pipeline import run_suite

from bench_helpers import record

# 5 targets x 5 score families x (3 ULA step sizes + DDIM) x 10 seeds = 1000 tiny cells, with what makes
# a report heavy: a contrast heatmap and scatter per target, a fragility panel over the 5 dimensions,
# leaderboards of 20 rows, score errors and TV bounds in every cell.
THOUSAND = """
[suite]
name = "report1000"
seeds = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
n_samples = 64
device = "cpu"

[[targets]]
name = "gaussian"
params = { mean = 3.0 }
grid = { dim = [2, 3, 4, 5, 6] }

[[scores]]
name = "exact"

[[scores]]
name = "ball_trap"

[[scores]]
name = "noisy"
grid = { eps = [0.25, 0.5, 1.0] }

[[initializers]]
name = "standard_normal"

[[samplers]]
name = "ula"
params = { n_steps = 2 }
grid = { step_size = [0.01, 0.02, 0.05] }

[[samplers]]
name = "ddim"
params = { n_steps = 2 }

[[metrics]]
name = "score_error"
params = { n_mc = 64 }

[[metrics]]
name = "tv_witness"
params = { witness = "ball_trap" }
"""


@pytest.mark.usefixtures("one_thread")
def test_report_of_a_thousand_cells(tmp_path):
    path = tmp_path / "report1000.toml"
    path.write_text(THOUSAND)
    summary = run_suite(path, out=tmp_path / "out")
    assert summary.n_cells == 1000
    start = time.perf_counter()
    run = load_results(tmp_path / "out")
    page = render_html(run)
    seconds = time.perf_counter() - start
    assert 'id="headline-figure"' in page
    record("report.html of a 1000-cell results folder (load + render)", 1000, seconds, "s", None, "limit 30 s")
    assert seconds <= 30
