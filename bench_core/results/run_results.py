"""Tidy results: ``results.csv`` (and ``results.parquet``) / ``trajectory.csv`` (docs/architecture.md, Result
files) and their loading.

A done cell has one row per metric (a metric that did not apply has status ``skipped``);
a cell that is not done keeps one row with metric ``error`` and the reason.
"""
from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Optional

import pandas as pd

from bench_core.base.atomic_files import write_atomic
from bench_core.base.errors import ResultsError
from bench_core.plan.cells import Plan
from bench_core.results.parquet_tables import INSTALL, PARQUET_NAME, parquet_available, read_parquet, write_parquet
from bench_core.cell.sample_views import load_views
from bench_core.base.stats import ci95_halfwidth
from bench_core.store.sqlite_store import Store

ID_COLUMNS = ["cell", "target", "score", "initializer", "sampler", "seed", "target_params", "score_params",
              "initializer_params", "sampler_params"]
RESULT_COLUMNS = ID_COLUMNS + ["status", "metric", "value", "wall_s", "reason"]
TRAJECTORY_COLUMNS = ID_COLUMNS + ["status", "metric", "value", "wall_s", "reason", "step", "t"]
CONFIG_COLUMNS = [c for c in ID_COLUMNS if c not in ("cell", "seed")]
_TEXT_PARAMS = {c: str for c in ID_COLUMNS if c.endswith("params")}  # read as text: "{}" stays "{}"


@dataclass
class RunResults:
    """The tables of one results folder and what the run said about itself (run.json)."""

    results: pd.DataFrame
    trajectory: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)
    views: dict[str, dict] = field(default_factory=dict)  # cell key -> sample view (bench_core.cell.sample_views)
    folder: Optional[Path] = None  # the results folder the tables belong to (files the report reads beside them)

    @cached_property
    def summary(self) -> pd.DataFrame:
        """:func:`summarize` of ``results``, computed once for every table and reporter."""
        return summarize(self.results)


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (configuration, metric): n seeds, mean, std, ci95 half-width."""
    done = results[(results["status"] == "done") & (results["metric"] != "error")]
    if done.empty:
        return pd.DataFrame(columns=CONFIG_COLUMNS + ["metric", "n", "mean", "std", "ci95"])
    grouped = done.groupby(CONFIG_COLUMNS + ["metric"], sort=False)["value"]
    out = grouped.agg(n="count", mean="mean", std="std").reset_index()
    out["ci95"] = grouped.apply(lambda v: ci95_halfwidth(v.to_numpy())).to_numpy()
    return out


def status_counts(results: pd.DataFrame) -> dict[str, int]:
    """Cells per status: ``done`` first, then the statuses of the cells not done, most frequent first
    (a cell not done has one row, with metric ``error``)."""
    not_done = results[results["metric"] == "error"].drop_duplicates("cell")["status"].value_counts()
    return {"done": int(results["cell"].nunique() - not_done.sum()),
            **{str(status): int(n) for status, n in not_done.items()}}


def tidy_tables(store: Store, plan: Plan) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The plan's cells from the store, in plan order, as (results, trajectory)."""
    order = {c.key: c.order for c in plan.cells}
    cells, metrics = store.frames(order)
    cells = cells.assign(_order=cells["key"].map(order)).sort_values("_order")
    metrics = metrics.rename(columns={"status": "m_status", "reason": "m_reason"})
    merged = cells.merge(metrics, on="key", how="left")
    final = merged[merged["step"].isna()]
    done = final[final["status"] == "done"].copy()
    done["status"] = done["m_status"]
    done["reason"] = done["m_reason"].fillna("")
    errors = cells[cells["status"] != "done"].assign(metric="error", value=math.nan, _row=-1)
    results = pd.concat([done, errors], ignore_index=True).sort_values(["_order", "_row"], kind="stable")
    trajectory = merged[merged["step"].notna()].copy()
    trajectory["status"] = trajectory["m_status"]
    trajectory["reason"] = trajectory["m_reason"].fillna("")
    trajectory["step"] = trajectory["step"].astype(int)
    trajectory = trajectory.sort_values(["_order", "step", "_row"], kind="stable")
    return (results[RESULT_COLUMNS].reset_index(drop=True),
            trajectory[TRAJECTORY_COLUMNS].reset_index(drop=True))


def write_tables(out_dir: Path, results: pd.DataFrame, trajectory: pd.DataFrame) -> list[Path]:
    """Write results.csv (always), results.parquet (when pyarrow is installed; else one line says so) and
    trajectory.csv (when there are checkpoint rows)."""
    paths = [out_dir / "results.csv"]
    write_atomic(paths[0], lambda tmp: results.to_csv(tmp, index=False, float_format="%.10g"))
    parquet = out_dir / PARQUET_NAME
    if parquet_available():
        paths.append(write_parquet(parquet, results))
    else:
        parquet.unlink(missing_ok=True)  # a reader must never take an earlier run's table for this one's
        print(f"{PARQUET_NAME} not written (pyarrow is not installed; {INSTALL} to get it); results.csv holds "
              "the same rows", file=sys.stderr)
    if not trajectory.empty:
        paths.append(out_dir / "trajectory.csv")
        write_atomic(paths[-1], lambda tmp: trajectory.to_csv(tmp, index=False, float_format="%.10g"))
    return paths


def read_results_table(out_dir: Path) -> pd.DataFrame:
    """The results rows of a folder: from results.parquet when it is there and pyarrow is installed (full
    precision), else from results.csv.

    Raises
    ------
    ResultsError
        Neither file is there (or only the parquet, without pyarrow), or the parquet is damaged.
    """
    csv, parquet = out_dir / "results.csv", out_dir / PARQUET_NAME
    if parquet.exists() and (parquet_available() or not csv.exists()):
        return read_parquet(parquet, RESULT_COLUMNS)
    if not csv.exists():
        raise ResultsError(f"no results.csv in '{out_dir}'; run `bench run SUITE --out {out_dir}` first")
    results = pd.read_csv(csv, dtype={**_TEXT_PARAMS, "cell": str, "reason": str}, keep_default_na=False,
                          na_values={"value": ["", "nan", "NaN"], "wall_s": [""]})
    results["value"] = pd.to_numeric(results["value"], errors="coerce")
    return results


def load_results(out_dir: str | Path) -> RunResults:
    """Read a results folder written by ``bench run`` (its rows from results.parquet or results.csv:
    :func:`read_results_table`)."""
    out_dir = Path(out_dir)
    results = read_results_table(out_dir)
    traj_path = out_dir / "trajectory.csv"
    trajectory = (pd.read_csv(traj_path, dtype={**_TEXT_PARAMS, "cell": str, "reason": str}, keep_default_na=False,
                              na_values={"value": ["", "nan", "NaN"]}) if traj_path.exists()
                  else pd.DataFrame(columns=TRAJECTORY_COLUMNS))
    info_path = out_dir / "run.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    return RunResults(results, trajectory, info, load_views(out_dir, set(results["cell"].astype(str))), out_dir)


def open_results(folder: str | Path) -> RunResults:
    """:func:`load_results` for a command given a folder (``bench report``, ``bench compare``): whatever
    keeps the folder from being read is one :class:`ResultsError` naming it and how to (re)create it."""
    folder = Path(folder)
    rerun = f"run `bench run SUITE --out {folder}` to (re)create it"
    if not folder.is_dir():
        raise ResultsError(f"results folder '{folder}' does not exist or is not a folder; {rerun}")
    if not (folder / "results.csv").exists() and not (folder / PARQUET_NAME).exists():
        raise ResultsError(f"'{folder}' is not a bench results folder (no results.csv or {PARQUET_NAME}); pass the "
                           f"--out folder of a `bench run`, or {rerun}")
    try:
        run = load_results(folder)
    except (ValueError, KeyError, OSError) as exc:  # pandas parse errors and bad JSON are ValueErrors
        raise ResultsError(f"cannot read the results in '{folder}' ({type(exc).__name__}: {exc}); {rerun}") from exc
    missing = [c for c in RESULT_COLUMNS if c not in run.results.columns]
    if missing:
        raise ResultsError(f"'{folder / 'results.csv'}' lacks the column(s) {', '.join(missing)}: it was not "
                           f"written by `bench run`; {rerun}")
    return run
