"""Kept samples: adding a metric to a finished suite computes only that metric, from the kept particles."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench_core import cli
from bench_core.pipeline import run_suite
from bench_plugins.samplers.langevin import ULA

BASE = """
[suite]
name = "kept"
seeds = [0, 1]
n_samples = 400
device = "cpu"
checkpoints = [0, 20]
{keep}

[[targets]]
name = "gaussian"
params = {{ dim = 3, mean = 1.0 }}

[[samplers]]
name = "ula"
params = {{ n_steps = 40 }}
grid = {{ step_size = [0.02, 0.05] }}

[[metrics]]
name = "mean_error"
{extra}
"""
KL = '\n[[metrics]]\nname = "gaussian_kl"\n'


def write(tmp_path, name, keep='keep_samples = true', extra=""):
    path = tmp_path / f"{name}.toml"
    path.write_text(BASE.format(keep=keep, extra=extra))
    return path


def tables(out):
    return pd.read_csv(out / "results.csv"), pd.read_csv(out / "trajectory.csv")


def values(frame, metric):
    rows = frame[frame["metric"] == metric]
    return rows.sort_values(["seed", "sampler_params"] + (["step"] if "step" in rows else []))["value"].to_numpy()


def test_adding_a_metric_runs_no_sampler_and_keeps_the_old_values(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    first = run_suite(write(tmp_path, "a"), out=out)
    assert first.n_run == 4 and first.n_reused == 0
    assert len(list((out / "samples").glob("*.npz"))) == 4
    before, before_traj = tables(out)

    # the reference: the extended suite run from scratch elsewhere
    fresh_out = tmp_path / "fresh"
    run_suite(write(tmp_path, "b_fresh", extra=KL), out=fresh_out)
    fresh, fresh_traj = tables(fresh_out)

    def refuse(self, *args, **kwargs):
        raise AssertionError("a sampler ran")
    monkeypatch.setattr(ULA, "sample", refuse)
    capsys.readouterr()
    code = cli.main(["run", str(write(tmp_path, "b", extra=KL)), "--out", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed
    assert "ran 4 (4 reused kept samples: no sampler ran)" in printed.out
    assert "4 cell(s) reuse kept samples" in printed.err

    after, after_traj = tables(out)
    assert (after["status"] == "done").all()
    # the old metric: copied, bit-identical; the new one: what a fresh run computes
    np.testing.assert_array_equal(values(after, "mean_error"), values(before, "mean_error"))
    np.testing.assert_array_equal(values(after_traj, "mean_error"), values(before_traj, "mean_error"))
    np.testing.assert_array_equal(values(after, "gaussian_kl"), values(fresh, "gaussian_kl"))
    np.testing.assert_array_equal(values(after_traj, "gaussian_kl"), values(fresh_traj, "gaussian_kl"))
    # the harness rows (score evaluations) are carried over, in the order a fresh run writes rows
    np.testing.assert_array_equal(values(after, "nfe.calls"), [40.0] * 4)
    assert list(after["metric"]) == list(fresh["metric"])
    assert list(after_traj["metric"]) == list(fresh_traj["metric"])


def test_no_reuse_without_keep_samples_and_with_new_sampler_params(tmp_path):
    out = tmp_path / "out"
    run_suite(write(tmp_path, "a", keep=""), out=out)
    assert not (out / "samples").exists()
    again = run_suite(write(tmp_path, "b", keep="", extra=KL), out=out)
    assert again.n_run == 4 and again.n_reused == 0

    kept_out = tmp_path / "kept"
    run_suite(write(tmp_path, "c"), out=kept_out)
    changed = write(tmp_path, "d", extra=KL)
    changed.write_text(changed.read_text().replace("n_steps = 40", "n_steps = 41"))
    again = run_suite(changed, out=kept_out)
    assert again.n_run == 4 and again.n_reused == 0  # the samples themselves change: sample again


def test_float16_storage_feeds_new_metrics_rounded_and_copies_old_rows_exactly(tmp_path, monkeypatch):
    out = tmp_path / "out"
    run_suite(write(tmp_path, "a", keep='keep_samples = "float16"'), out=out)
    before, _ = tables(out)
    kept = np.load(next((out / "samples").glob("*.npz")))
    assert kept["final"].dtype == np.float16 and kept["final"].shape == (400, 3)
    assert sorted(k for k in kept.files if k.startswith("step_")) == ["step_0", "step_20"]

    monkeypatch.setattr(ULA, "sample", lambda *a, **k: (_ for _ in ()).throw(AssertionError("a sampler ran")))
    summary = run_suite(write(tmp_path, "b", keep='keep_samples = "float16"', extra=KL), out=out)
    assert summary.n_reused == 4 and summary.statuses == {"done": 4}
    after, _ = tables(out)
    np.testing.assert_array_equal(values(after, "mean_error"), values(before, "mean_error"))
    # float16 keeps 11 significant bits: the KL of the Gaussian fit moves by far less than its
    # Monte Carlo error (~ d(d+3)/(4n) = 0.011 here); it is computed, finite and >= 0
    kl = values(after, "gaussian_kl")
    assert np.isfinite(kl).all() and (kl >= 0).all()


def test_keep_samples_value_is_checked(tmp_path):
    from bench_core.base.errors import SuiteError
    from bench_core.suite.schema import parse_suite

    with pytest.raises(SuiteError, match="keep_samples.*float16"):
        parse_suite(write(tmp_path, "bad", keep='keep_samples = "int8"'))


def test_kept_samples_travel_to_process_workers(tmp_path):
    out = tmp_path / "out"
    run_suite(write(tmp_path, "a"), out=out, executor="process", workers=2)
    before, _ = tables(out)
    again = run_suite(write(tmp_path, "b", extra=KL), out=out, executor="process", workers=2)
    assert again.n_reused == 4 and again.statuses == {"done": 4}
    after, _ = tables(out)
    np.testing.assert_array_equal(values(after, "mean_error"), values(before, "mean_error"))
    fresh_out = tmp_path / "fresh"
    run_suite(write(tmp_path, "b_fresh", extra=KL), out=fresh_out)
    np.testing.assert_array_equal(values(after, "gaussian_kl"), values(tables(fresh_out)[0], "gaussian_kl"))
