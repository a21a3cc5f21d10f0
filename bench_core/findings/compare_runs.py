"""Two runs compared configuration by configuration, paired by seed: better, worse, unchanged.

Every cell shares its training data, starts, noise and reference samples with the same configuration in
any other run (common random numbers: docs/architecture.md, Time and seeds). So a BASE and a NEW run
are compared seed by seed: for each configuration (target, score, initializer and sampler with their
params) and metric, ``d_s = NEW_s - BASE_s`` for every seed ``s`` both finished, its mean and the 95%
paired Student-t interval ``mean ± t(0.975, n - 1) sd(d) / sqrt(n)``. Configurations are aligned by what
they are, never by cell key: a changed plugin changes the keys of all its cells.

Verdicts, by the metric's direction (run.json's ``higher_is_better``):

- ``unchanged``: every ``d_s`` is 0, or the interval contains 0;
- ``better`` / ``worse``: the interval excludes 0;
- ``changed``: the values differ and nothing says which way: one seed (no interval exists), an infinite
  value, or a metric whose direction no run and no installed plugin records;
- ``not comparable``: some seed failed, diverged or was skipped in one run, a metric is missing or NaN
  in one (NaN in both is ``unchanged``), or the two runs share no seed of the configuration.

Cost is a ratio: ``nfe.calls``, ``nfe.evals`` and the cell's wall time ``wall_s`` as NEW / BASE, the
geometric mean over seeds with the interval ``exp(mean ± half-width)`` of the log ratios. A count of score
evaluations is exact, so a changed count is ``worse`` (more evaluations) or ``better``; wall time depends
on the machine and its load, so it gets no verdict (``—``).
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from bench_core.base.errors import BenchError, ComponentError, ResultsError, did_you_mean
from bench_core.base.stats import ci95_halfwidth
from bench_core.findings.claims import rows_matching
from bench_core.plan.cells import HARNESS_METRICS, metric_plugin, metric_prefix
from bench_core.results.code_changes import RunDifferences, run_differences
from bench_core.results.run_results import CONFIG_COLUMNS, RunResults

WALL = "wall_s"
RATIO_METRICS = ("nfe.calls", "nfe.evals", WALL)
NO_VERDICT = "—"
VERDICTS = ("worse", "better", "changed", "not comparable", "unchanged", NO_VERDICT)
ROW_COLUMNS = [*CONFIG_COLUMNS, "metric", "seeds", "base", "new", "diff", "low", "high", "ratio", "verdict", "note",
               "lost"]
_SKIPS = {"skipped", "metric skipped"}
Config = tuple[str, ...]


@dataclass
class Comparison:
    """BASE and NEW compared: ``rows`` has one row per shared configuration and metric (:data:`ROW_COLUMNS`:
    the paired means ``base`` and ``new`` over ``seeds`` seeds, ``diff`` with its interval ``low``..``high``
    or the ``ratio`` with its interval, the ``verdict``, a ``note``, and ``lost``: NEW failed, diverged or
    lost the metric where BASE had it); ``only_base`` and ``only_new`` list the configurations of one run."""

    base: RunResults
    new: RunResults
    rows: pd.DataFrame
    only_base: pd.DataFrame
    only_new: pd.DataFrame
    differences: RunDifferences

    def regressions(self, metrics: Sequence[str]) -> pd.DataFrame:
        """The rows of ``metrics`` (names or prefixes) that got worse beyond their interval, or that NEW
        lost (failed, diverged, not recorded) where BASE had them: what ``--fail-on`` fails on."""
        rows = self.rows[self.rows["metric"].map(lambda m: metric_selected(m, metrics))]
        return rows[(rows["verdict"] == "worse") | rows["lost"]]


def metric_selected(name: str, chosen: Sequence[str]) -> bool:
    """Whether a recorded metric is one of ``chosen``: its name, a dotted prefix (``score_error`` for
    ``score_error.sq``), or its metric part or plugin (``tv_witness`` for ``tv_witness(witness='x').lower``)."""
    return any(name == c or name.startswith(c + ".") or c in (metric_prefix(name), metric_plugin(name))
               for c in chosen)


def check_metric_names(chosen: Sequence[str], recorded: Sequence[str], option: str) -> None:
    """Refuse a ``--metric`` or ``--fail-on`` name that selects no metric either run recorded."""
    for name in chosen:
        if not any(metric_selected(m, [name]) for m in recorded):
            raise BenchError(f"{option} '{name}' names no metric of either run{did_you_mean(name, recorded)}; they "
                             f"record: {', '.join(recorded)}")


def _config(frame: pd.DataFrame) -> list[Config]:
    return list(zip(*(frame[c] for c in CONFIG_COLUMNS)))


def _cell_states(results: pd.DataFrame) -> dict[Config, dict[int, str]]:
    """Per configuration, per seed: ``done`` or the status of the cell that is not (failed, diverged, ...)."""
    cells = results.drop_duplicates("cell")
    states = cells["status"].where(cells["metric"] == "error", "done")
    out: dict[Config, dict[int, str]] = {}
    for config, seed, state in zip(_config(cells), cells["seed"], states):
        out.setdefault(config, {})[int(seed)] = state
    return out


def _values(results: pd.DataFrame) -> dict[tuple[Config, str], dict[int, tuple[str, float]]]:
    """Per (configuration, metric), per seed: (the row's status, value); the cell's wall time as ``wall_s``."""
    rows = results[results["metric"] != "error"]
    wall = rows.drop_duplicates("cell").assign(metric=WALL, status="done")
    wall = wall.assign(value=wall[WALL])
    both = pd.concat([rows, wall], ignore_index=True)
    out: dict[tuple[Config, str], dict[int, tuple[str, float]]] = {}
    for config, metric, seed, status, value in zip(_config(both), both["metric"], both["seed"], both["status"],
                                                   both["value"]):
        out.setdefault((config, metric), {})[int(seed)] = (status, float(value))
    return out


def _why_not(cell_state: str, entry: Optional[tuple[str, float]]) -> Optional[str]:
    """Why a seed's value cannot be paired (None when it can)."""
    if cell_state != "done":
        return cell_state
    if entry is None:
        return "not recorded"
    status, value = entry
    return f"metric {status}" if status != "done" else "NaN" if math.isnan(value) else None


def _difference(b: np.ndarray, n: np.ndarray, higher: Optional[bool]) -> dict[str, Any]:
    """Paired difference NEW - BASE: mean, 95% paired-t interval, verdict (see the module docstring)."""
    d = n - b
    if np.array_equal(b, n):
        bounds = 0.0 if len(d) > 1 else math.nan
        return {"diff": 0.0, "low": bounds, "high": bounds, "verdict": "unchanged", "note": ""}
    mean = float(d.mean())
    if len(d) == 1:
        return {"diff": mean, "verdict": "changed", "note": "1 seed: no interval"}
    half = ci95_halfwidth(d)
    if math.isnan(half):
        return {"diff": mean, "verdict": "changed", "note": "an infinite value: no interval"}
    out = {"diff": mean, "low": mean - half, "high": mean + half}
    if mean - half <= 0.0 <= mean + half:
        return {**out, "verdict": "unchanged", "note": ""}
    if higher is None:
        return {**out, "verdict": "changed", "note": "no recorded direction"}
    return {**out, "verdict": "better" if (mean > 0) == higher else "worse", "note": ""}


def _ratio(b: np.ndarray, n: np.ndarray, metric: str) -> dict[str, Any]:
    """NEW / BASE: geometric mean over seeds and its interval; a verdict for exact counts only."""
    if np.array_equal(b, n):
        return {"ratio": 1.0, "low": 1.0, "high": 1.0, "verdict": "unchanged", "note": ""}
    if not ((b > 0) & (n > 0) & np.isfinite(b) & np.isfinite(n)).all():
        return {"verdict": "changed", "note": "a zero or infinite value: no ratio"}
    logs = np.log(n / b)
    mean, half = float(logs.mean()), ci95_halfwidth(logs)
    out = {"ratio": math.exp(mean), "low": math.exp(mean - half), "high": math.exp(mean + half)}
    if metric == WALL:
        return {**out, "verdict": NO_VERDICT, "note": ""}  # the machine and its load move it: no verdict
    verdict = "worse" if (logs > 0).all() else "better" if (logs < 0).all() else "changed"
    return {**out, "verdict": verdict, "note": ""}


def _compare_one(metric: str, cells: tuple[dict, dict], values: tuple[dict, dict],
                 higher: Optional[bool]) -> Optional[dict[str, Any]]:
    """One configuration and metric: pair the seeds, then :func:`_difference` or :func:`_ratio` (None when
    the metric was skipped in both runs: nothing to compare)."""
    common = sorted(set(cells[0]) & set(cells[1]))
    problems: tuple[Counter, Counter] = (Counter(), Counter())
    pairs = []
    both_nan = 0  # a metric that is NaN in both runs (e.g. a bound that does not apply) has not moved
    for seed in common:
        whys = [_why_not(cells[i][seed], values[i].get(seed)) for i in (0, 1)]
        if whys == ["NaN", "NaN"]:
            both_nan += 1
            continue
        for i, why in enumerate(whys):
            if why:
                problems[i][why] += 1
        if not any(whys):
            pairs.append((values[0][seed][1], values[1][seed][1]))
    if not pairs and problems[0] and problems[1] and set(problems[0]) | set(problems[1]) <= _SKIPS:
        return None
    if both_nan and not pairs and not (problems[0] or problems[1]):
        return {"metric": metric, "seeds": 0, "base": math.nan, "new": math.nan, "lost": False,
                "verdict": "unchanged", "note": "NaN in both runs"}
    notes = [f"{side}: " + ", ".join(f"{k} {why}" for why, k in counts.items())
             for side, counts in zip(("BASE", "NEW"), problems) if counts]
    for side, mine, theirs in (("BASE", cells[0], cells[1]), ("NEW", cells[1], cells[0])):
        if set(mine) - set(theirs):
            notes.append(f"seeds only in {side}: {', '.join(map(str, sorted(set(mine) - set(theirs))))}")
    b, n = (np.array([p[i] for p in pairs], dtype=float) for i in (0, 1))
    row = {"metric": metric, "seeds": len(pairs), "base": float(b.mean()) if len(b) else math.nan,
           "new": float(n.mean()) if len(n) else math.nan,
           "lost": bool(set(problems[1]) - _SKIPS) and not problems[0]}
    if problems[0] or problems[1] or not pairs:
        return {**row, "verdict": "not comparable", "note": "; ".join(notes) or "no seed in common"}
    stats = _ratio(b, n, metric) if metric in RATIO_METRICS else _difference(b, n, higher)
    nan_note = f"{both_nan} seed(s) NaN in both runs" if both_nan else ""
    return {**row, **stats, "note": "; ".join(filter(None, [stats.get("note", ""), nan_note, *notes]))}


def _directions(runs: Sequence[RunResults], names: Sequence[str]) -> dict[str, Optional[bool]]:
    """Per metric name: whether higher is better, from run.json (NEW's over BASE's), else from the
    installed plugin of that name (an older folder), else None."""
    recorded: dict[str, bool] = dict(HARNESS_METRICS)
    for run in runs:
        recorded.update(run.info.get("higher_is_better") or {})
    missing = {metric_plugin(m) for m in names if m != WALL and metric_plugin(m) not in recorded}
    if missing:
        from bench_core.components.discovery import get_registry  # imports the plugins: only for old folders

        registry = get_registry()
        for plugin in missing:
            try:
                direction = getattr(registry.get("metrics", plugin).factory, "higher_is_better", None)
            except ComponentError:
                continue
            if direction is not None:
                recorded[plugin] = bool(direction)
    return {m: recorded.get(metric_plugin(m)) for m in names}


def _configurations(configs: list[Config], cells: dict[Config, dict[int, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(configs, columns=CONFIG_COLUMNS)
    return frame.assign(seeds=[len(cells[c]) for c in configs])


def compare_runs(base: RunResults, new: RunResults, *, metrics: Optional[Sequence[str]] = None,
                 select: Optional[Sequence[tuple[str, Any]]] = None) -> Comparison:
    """Compare NEW against BASE (see the module docstring).

    Parameters
    ----------
    metrics : names or prefixes to compare (:func:`metric_selected`); default every metric, with ``wall_s``.
    select : a select (``[(key, frozen alternatives)]``, as ``--only`` parses) the cells of both runs must match.

    Raises
    ------
    ResultsError
        The runs share no configuration (the message gives both counts).
    BenchError
        A name of ``metrics`` selects no metric of either run.
    """
    tables = [run.results if not select else run.results[rows_matching(run.results, tuple(select))]
              for run in (base, new)]
    cells = [_cell_states(t) for t in tables]
    shared = [c for c in cells[1] if c in cells[0]]
    if not shared:
        where = " that --only selects" if select else ""
        raise ResultsError(
            f"nothing to compare: BASE '{base.folder}' (suite '{base.info.get('suite', '?')}', {len(cells[0])} "
            f"configurations{where}) and NEW '{new.folder}' (suite '{new.info.get('suite', '?')}', {len(cells[1])}) "
            "have no configuration in common")
    values = [_values(t) for t in tables]
    names = list(dict.fromkeys(m for v in (values[1], values[0]) for _, m in v))
    if metrics:
        check_metric_names(metrics, names, "--metric")
        names = [m for m in names if metric_selected(m, metrics)]
    directions = _directions((base, new), names)
    records = []
    for config in shared:
        for metric in names:
            if (config, metric) not in values[0] and (config, metric) not in values[1]:
                continue
            row = _compare_one(metric, (cells[0][config], cells[1][config]),
                               tuple(v.get((config, metric), {}) for v in values), directions[metric])
            if row is not None:
                records.append({**dict(zip(CONFIG_COLUMNS, config)), **row})
    rows = pd.DataFrame(records, columns=ROW_COLUMNS)
    rows["lost"] = rows["lost"].fillna(False).astype(bool)
    only = [[c for c in cells[i] if c not in cells[1 - i]] for i in (0, 1)]
    return Comparison(base, new, rows, _configurations(only[0], cells[0]), _configurations(only[1], cells[1]),
                      run_differences(base, new))
