"""A thousand tiny cells under the parallel executors: every cell stored exactly once."""
from __future__ import annotations

import sqlite3

import pandas as pd
import pytest

from bench_core.pipeline import run_suite

STEP_SIZES = ", ".join(f"{0.01 * (i + 1):.2f}" for i in range(20))
TINY = f"""
[suite]
name = "tiny1000"
seeds = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
n_samples = 16
device = "cpu"

[[targets]]
name = "gaussian"
params = {{ dim = 2 }}
grid = {{ mean = [0.0, 1.0, 2.0, 3.0, 4.0] }}

[[samplers]]
name = "ula"
params = {{ n_steps = 1 }}
grid = {{ step_size = [{STEP_SIZES}] }}

[[metrics]]
name = "mean_error"
"""


def _check_every_cell_once(out):
    with sqlite3.connect(out / "results.sqlite") as conn:
        keys = [k for (k,) in conn.execute("SELECT key FROM cells")]
        statuses = {s for (s,) in conn.execute("SELECT DISTINCT status FROM cells")}
        per_cell = conn.execute("SELECT COUNT(*) FROM metrics GROUP BY key").fetchall()
    assert len(keys) == len(set(keys)) == 1000 and statuses == {"done"}
    assert {n for (n,) in per_cell} == {3}  # mean_error, nfe.calls, nfe.evals: no row twice
    results = pd.read_csv(out / "results.csv")
    assert results["cell"].nunique() == 1000 and len(results) == 3000


@pytest.mark.parametrize("executor", ["process", "ray"])
def test_thousand_tiny_cells(tmp_path, executor, request):
    address = request.getfixturevalue("ray_address") if executor == "ray" else None
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    summary = run_suite(path, out=tmp_path / "out", executor=executor, workers=2, address=address)
    assert summary.n_run == 1000
    _check_every_cell_once(tmp_path / "out")


def test_ray_executor_without_ray_is_one_clean_line(tmp_path, monkeypatch, capsys):
    import sys

    from bench_core import cli

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    assert cli.main(["run", str(path), "--executor", "ray", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'bench[ray]'" in err[0], err
    assert not (tmp_path / "out" / "results.sqlite").exists()  # refused before anything ran


def test_address_needs_the_ray_executor(tmp_path, capsys):
    from bench_core import cli

    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    assert cli.main(["run", str(path), "--address", "127.0.0.1:6379", "--out", str(tmp_path / "out")]) == 2
    assert "--executor ray" in capsys.readouterr().err
