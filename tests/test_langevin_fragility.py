"""Reduced versions of table1 / theorem7 / theorem11, run end to end through the harness.

The full suites (suites/*.toml) are the reproduction; these keep the phenomenon at a size
that runs in seconds, and assert the same direction with margins far from the measured values.
"""
from __future__ import annotations


import pandas as pd

from bench_core.results.run_results import load_results
from bench_core.pipeline import run_suite


def run(write_suite, tmp_path, text):
    summary = run_suite(write_suite(text), out=tmp_path / "out")
    assert summary.statuses.get("done") == summary.n_cells, summary.statuses
    return load_results(tmp_path / "out")


def values(results: pd.DataFrame, metric: str, by: list[str]) -> pd.Series:
    rows = results[results["metric"] == metric]
    return rows.groupby(by)["value"].mean()


def test_theorem1_ball_trap(write_suite, tmp_path):
    # d = 50, a = 3: pi(ball of radius 2 sqrt(d)) = 1e-17, so TV >= ~1 once the chain stays in
    # the ball, while the L2(pi) error is 0 on every reference sample.
    run_ = run(write_suite, tmp_path, """
        [suite]
        name = "t1"
        seeds = [0]
        n_samples = 2000
        device = "cpu"
        [[targets]]
        name = "gaussian"
        params = { dim = 50, mean = 3.0 }
        [[scores]]
        name = "exact"
        [[scores]]
        name = "ball_trap"
        [[samplers]]
        name = "ula"
        params = { step_size = 0.0025, n_steps = 1000 }
        [[metrics]]
        name = "tv_witness"
        params = { witness = "ball_trap" }
        [[metrics]]
        name = "score_error"
        [[metrics]]
        name = "gaussian_kl"
        """)
    res = run_.results
    lower = values(res, "tv_witness.lower", ["score"])
    assert lower["ball_trap"] > 0.99 and lower["exact"] == 0.0
    assert values(res, "score_error.sq", ["score"])["ball_trap"] == 0.0
    assert values(res, "score_error.log10", ["score"])["ball_trap"] < -10  # the certified bound: 5e-15
    kl = values(res, "gaussian_kl", ["score"])
    # closed form: 0.1674 a^2 + d(d+3)/(4n) = 1.507 + 0.331; trapped: KL(N(0,I) || N(3,I)) = 225
    assert abs(kl["exact"] - 1.838) < 0.15 and kl["ball_trap"] > 200


def test_theorem7_memorized_train_vs_fresh(write_suite, tmp_path):
    run_ = run(write_suite, tmp_path, """
        [suite]
        name = "t7"
        seeds = [0]
        n_samples = 600
        device = "cpu"
        [data]
        n_train = 50
        [[targets]]
        name = "gaussian"
        params = { dim = 50 }
        [[scores]]
        name = "memorized"
        [[initializers]]
        name = "train"
        [[initializers]]
        name = "fresh"
        [[samplers]]
        name = "ula"
        params = { step_size = 0.0025, n_steps = 500 }
        [[metrics]]
        name = "tv_witness"
        [[metrics]]
        name = "nearest_train"
        """)
    res = run_.results
    lower = values(res, "tv_witness.lower", ["initializer"])
    assert lower["train"] > 0.9 and lower["fresh"] == 0.0
    ratio = values(res, "nearest_train.ratio", ["initializer"])
    assert ratio["train"] < 0.25 and ratio["fresh"] > 0.9


def test_theorem11_tv_grows_with_the_horizon(write_suite, tmp_path):
    run_ = run(write_suite, tmp_path, """
        [suite]
        name = "t11"
        seeds = [0]
        n_samples = 1000
        device = "cpu"
        checkpoints = [10, 1000, 10000]
        [[targets]]
        name = "gaussian"
        params = { dim = 2 }
        [[scores]]
        name = "cone_trap"
        params = { half_angle = 0.3 }
        [[samplers]]
        name = "ula"
        params = { step_size = 0.01, n_steps = 10000 }
        [[metrics]]
        name = "tv_witness"
        """)
    traj = run_.trajectory
    p = traj[traj["metric"] == "tv_witness.p_samples"].set_index("step")["value"]
    lower = traj[traj["metric"] == "tv_witness.lower"].set_index("step")["value"]
    target_mass = traj[traj["metric"] == "tv_witness.p_target"]["value"].iloc[0]
    assert abs(target_mass - 0.3 / 3.141592653589793) < 1e-9  # pi(cone) = theta / pi in d = 2
    assert p[10] < p[1000] < p[10000]  # the cone fills with the horizon (measured 0.10, 0.25, 0.51)
    assert lower[10] == 0.0 and lower[10000] > 0.25
