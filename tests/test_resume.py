"""SIGKILL in the middle of a run, then the same command: nothing lost, nothing duplicated."""
from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import time

import pandas as pd
import pytest

from helpers import cli_command

SUITE = """
[suite]
name = "resume"
seeds = [0, 1, 2, 3]
n_samples = 3000
device = "cpu"
checkpoints = [0, 500]

[[targets]]
name = "gaussian"
params = { dim = 20 }
grid = { mean = [0.0, 1.0] }

[[samplers]]
name = "ula"
params = { n_steps = 1500 }
grid = { step_size = [0.005, 0.01] }

[[metrics]]
name = "gaussian_kl"

[[metrics]]
name = "mean_error"
"""


def command(suite, out):
    return cli_command("run", suite, "--out", out)


def finished_cells(db) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM cells").fetchone()[0]
    except sqlite3.OperationalError:  # tables not created yet
        return 0


def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path):
    suite = tmp_path / "resume.toml"
    suite.write_text(SUITE)
    n_cells = 16
    reference = subprocess.run(command(suite, tmp_path / "clean"), capture_output=True, text=True, timeout=600)
    assert reference.returncode == 0, reference.stderr

    out = tmp_path / "killed"
    proc = subprocess.Popen(command(suite, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while finished_cells(out / "results.sqlite") < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = finished_cells(out / "results.sqlite")
    assert 3 <= killed_at < n_cells, f"the kill landed after {killed_at} cells; the test needs a mid-run kill"

    resumed = subprocess.run(command(suite, out), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"ran {n_cells - killed_at}, {killed_at} already finished" in resumed.stdout

    for name in ("results.csv", "trajectory.csv"):
        clean = pd.read_csv(tmp_path / "clean" / name).drop(columns=["wall_s"])
        after = pd.read_csv(out / name).drop(columns=["wall_s"])  # wall time is the one legitimate difference
        assert not after.duplicated().any()
        pd.testing.assert_frame_equal(clean, after)
    assert len(pd.read_csv(out / "results.csv")) == n_cells * 4  # 2 metrics + nfe.calls + nfe.evals


RANDOM_KILLS = SUITE.replace("seeds = [0, 1, 2, 3]", "seeds = [0, 1, 2]").replace("n_samples = 3000", "n_samples = 2000")


@pytest.mark.parametrize("executor", ["local", "process"])
def test_random_sigkills_never_lose_or_double_a_cell(tmp_path, executor):
    """Ten SIGKILLs per executor at random moments (start-up, mid-cell, mid-commit, export): after each,
    the store passes SQLite's integrity check; a final run completes, and its exports equal an
    uninterrupted run's with every cell exactly once."""
    suite = tmp_path / "kills.toml"
    suite.write_text(RANDOM_KILLS)
    extra = ["--executor", "process", "--workers", "2"] if executor == "process" else []
    clean = subprocess.run(command(suite, tmp_path / "clean") + extra, capture_output=True, text=True, timeout=600)
    assert clean.returncode == 0, clean.stderr
    out = tmp_path / "killed"
    rng = random.Random(11 if executor == "local" else 12)
    for _ in range(10):
        proc = subprocess.Popen(command(suite, out) + extra, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        time.sleep(rng.uniform(0.5, 6.0))
        os.kill(proc.pid, signal.SIGKILL)  # the driver only: process workers must notice and exit
        proc.wait()
        if (out / "results.sqlite").exists():
            with sqlite3.connect(out / "results.sqlite", timeout=30) as conn:
                assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    final = subprocess.run(command(suite, out) + extra, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr
    for name in ("results.csv", "trajectory.csv"):
        a = pd.read_csv(tmp_path / "clean" / name).drop(columns=["wall_s"])
        b = pd.read_csv(out / name).drop(columns=["wall_s"])
        assert not b.duplicated().any()
        pd.testing.assert_frame_equal(a, b)
    with sqlite3.connect(out / "results.sqlite") as conn:
        keys = [k for (k,) in conn.execute("SELECT key FROM cells")]
    assert len(keys) == len(set(keys)) == 12
