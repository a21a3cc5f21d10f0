"""results.parquet: written beside results.csv, typed, read back by load_results as the CSV's frame."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from bench_core.cli import main
from bench_core.pipeline import run_suite
from bench_core.results import run_results
from bench_core.results.run_results import RESULT_COLUMNS, load_results

pytest.importorskip("pyarrow")

SUITE = """
[suite]
name = "typed"
seeds = [0, 1]
n_samples = 200
device = "cpu"

[[targets]]
name = "gaussian"
params = { dim = 3 }
grid = { mean = [0.0, 1.5] }

[[samplers]]
name = "ula"
params = { n_steps = 20 }
grid = { step_size = [0.05, 0.1] }

[[samplers]]
name = "ddim"
params = { n_steps = 10 }

[[metrics]]
name = "mean_error"
"""


@pytest.fixture(scope="module")
def typed_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("typed")
    (folder / "typed.toml").write_text(SUITE)
    run_suite(folder / "typed.toml", out=folder / "out")
    return folder / "out"


def test_the_parquet_round_trip_equals_the_csv(typed_run, tmp_path):
    from_parquet = load_results(typed_run).results
    csv_only = tmp_path / "csv"
    csv_only.mkdir()
    (csv_only / "results.csv").write_bytes((typed_run / "results.csv").read_bytes())
    from_csv = load_results(csv_only).results
    # 12 cells x (mean_error, nfe.calls, nfe.evals)
    assert list(from_parquet.columns) == RESULT_COLUMNS and len(from_parquet) == 36
    # the CSV keeps 10 significant digits, the parquet every bit
    pd.testing.assert_frame_equal(from_parquet, from_csv, check_exact=False, rtol=1e-9)


def test_params_are_typed_columns_and_status_a_category(typed_run):
    table = pd.read_parquet(typed_run / "results.parquet")
    assert str(table["status"].dtype) == "category" and table["value"].dtype == "float64"
    assert table["seed"].dtype == "int64" and str(table["target.dim"].dtype) == "Int64"
    assert table["target.mean"].dtype == "float64" and table["sampler.step_size"].dtype == "float64"
    ddim = table[table["sampler"] == "ddim"]
    # a param of another sampler is null in ddim's rows; ddim's own n_steps shares ula's column
    assert ddim["sampler.step_size"].isna().all() and set(ddim["sampler.n_steps"]) == {10}
    query = table[table["metric"] == "mean_error"].groupby("sampler.step_size")["value"].mean()
    assert list(query.index) == [0.05, 0.1]


def test_a_folder_holding_only_the_parquet_loads(typed_run, tmp_path):
    (tmp_path / "results.parquet").write_bytes((typed_run / "results.parquet").read_bytes())
    (tmp_path / "run.json").write_text((typed_run / "run.json").read_text())
    run = load_results(tmp_path)
    assert len(run.results) == 36 and run.info["suite"] == "typed"


def test_without_pyarrow_a_run_writes_the_csv_and_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "typed.toml").write_text(SUITE.replace("[0.0, 1.5]", "[0.0]"))
    out = tmp_path / "out"
    run_suite(tmp_path / "typed.toml", out=out)
    assert (out / "results.parquet").exists()
    capsys.readouterr()
    monkeypatch.setattr(run_results, "parquet_available", lambda: False)
    summary = run_suite(tmp_path / "typed.toml", out=out, rerun=True)  # the earlier table must not outlive it
    assert summary.exit_code == 0 and (out / "results.csv").exists() and not (out / "results.parquet").exists()
    lines = [line for line in capsys.readouterr().err.splitlines() if "results.parquet" in line]
    assert len(lines) == 1 and "pip install 'bench[parquet]'" in lines[0]


@pytest.mark.parametrize("damage", [b"", b"PAR1 not really", b"\x00" * 64])
def test_a_damaged_parquet_is_one_line_and_exit_2(typed_run, tmp_path, capsys, damage):
    (tmp_path / "results.parquet").write_bytes(damage)
    (tmp_path / "run.json").write_text(json.dumps({"suite": "typed"}))
    assert main(["show", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "results.parquet" in err[0] and "damaged" in err[0], err
