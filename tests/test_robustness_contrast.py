"""A reduced headline suite end to end: the same t = 0 estimate traps ULA but not diffusion, and
contrast.md shows TV next to eps_0 and eps_bar with the fragility column."""
from __future__ import annotations

from bench_core.results.run_results import load_results
from bench_core.pipeline import run_suite
from helpers import BALL_TRAP_METRICS

SUITE = """
[suite]
name = "contrast"
seeds = [0]
n_samples = 600
device = "cpu"

[[targets]]
name = "gaussian"
params = { dim = 50, mean = 3.0 }

[[scores]]
name = "exact"

[[scores]]
name = "ball_trap"
grid = { schedule = ["admissible", "naive"] }

[[samplers]]
name = "ula"
params = { step_size = 0.0025, n_steps = 400 }

[[samplers]]
name = "ddpm"
params = { discretization = "exponential", n_steps = 200 }

[[samplers]]
name = "cld"
params = { n_steps = 200 }
""" + BALL_TRAP_METRICS + """
[[exclude]]
select = { sampler = "ula", "score.schedule" = "naive" }

[[claims]]
select = { sampler = "ula", score = "ball_trap" }
metric = "tv_witness.lower"
op = ">="
value = 0.9

[[claims]]
select = { sampler = ["ddpm", "cld"], "score.schedule" = "admissible" }
metric = "tv_witness.lower"
op = "<="
value = 0.1

[[claims]]
select = { sampler = "ddpm", "score.schedule" = "naive" }
metric = "tv_witness.lower"
op = ">="
value = 0.9

[[claims]]
select = { "score.schedule" = "admissible", sampler = ["ddpm", "cld"] }
metric = "score_error.bar_sq"
op = "<="
value = 1e-3

[[claims]]
select = { "score.schedule" = "naive" }
metric = "score_error.bar_sq"
op = ">="
value = 0.1
"""


def test_reduced_headline_contrast(write_suite, tmp_path):
    summary = run_suite(write_suite(SUITE), out=tmp_path / "out")
    assert summary.statuses.get("done") == summary.n_cells == 8, summary.statuses
    run = load_results(tmp_path / "out")
    assert all(c["holds"] for c in run.info["claims"]), run.info["claims"]
    text = (tmp_path / "out" / "contrast.md").read_text()
    header = next(line for line in text.splitlines() if line.startswith("| sampler"))
    for column in ("exact", "ball_trap(schedule=admissible)", "ball_trap(schedule=naive)", "fragility (max Δ)"):
        assert column in header
    ula = next(line for line in text.splitlines() if line.startswith("| ula"))
    # ULA from N(0, I): trapped with the admissible estimate (the t = 0 form), TV[wit] ~ 1; with the
    # exact score 400 steps leave ~12% of the chains still in the ball, so the fragility is ~ +0.88
    assert "TV[wit] 0.99" in ula
    assert float(ula.split("|")[-2].split()[0]) > 0.8
    ddpm = next(line for line in text.splitlines() if line.startswith("| ddpm"))
    cells = [c.strip() for c in ddpm.split("|")[1:-1]]
    assert cells[2].startswith("TV[wit] 0 ") and "ε₀² ≤1e-" in cells[2]  # admissible: not trapped
