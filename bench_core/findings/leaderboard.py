"""Leaderboards: mean, std and 95% interval over seeds, ranked within each target."""
from __future__ import annotations

import math
from typing import Any, Callable, Optional

import pandas as pd

from bench_core.findings.labels import component_label
from bench_core.plan.cells import metric_plugin
from bench_core.results.run_results import RunResults, status_counts

ROW_AXES = ["score", "score_params", "initializer", "initializer_params", "sampler", "sampler_params"]


def _fmt(mean: float, ci: float) -> str:
    if math.isnan(mean):
        return "n/a"
    text = f"{mean:.4g}"
    return text if math.isnan(ci) else f"{text} ± {ci:.2g}"


NFE = "nfe.calls"


def higher_is_better(metric: str, directions: dict[str, bool]) -> bool:
    """Whether larger values of ``metric`` are better, from run.json's ``higher_is_better`` (by plugin)."""
    return bool(directions.get(metric_plugin(metric), False))


def leaderboard_tables(run: RunResults, rank_by: Optional[str] = None,
                       keep_means: bool = False) -> list[tuple[str, pd.DataFrame]]:
    """One table per target: rows are (score, initializer, sampler), columns metrics, ranked.

    A column ``not done`` (e.g. "1 diverged") appears when some seed of a row did not finish; its
    values are means over the seeds that did. With ``keep_means`` each metric column ``m`` is
    followed by the numeric means in a column ``_m`` (for styling; the Markdown drops them).
    """
    summary = run.summary
    if summary.empty:
        return []
    directions: dict[str, bool] = run.info.get("higher_is_better", {})
    metrics = list(dict.fromkeys(summary["metric"]))
    rank_by = rank_by or run.info.get("rank_by") or metrics[0]
    chosen = run.info.get("leaderboard_metrics")
    if chosen:  # [suite] leaderboard_metrics: names or prefixes ("score_error" keeps score_error.*)
        if run.info.get("rank_at_equal_nfe"):
            chosen = [*chosen, NFE]  # the groups must be visible
        metrics = [m for m in metrics if any(m == c or m.startswith(c + ".") for c in chosen)]
        summary = summary[summary["metric"].isin(metrics) | (summary["metric"] == rank_by)]
    tables = []
    for (target, tparams), block in summary.groupby(["target", "target_params"], sort=False):
        rows: dict[tuple, dict[str, Any]] = {}
        for _, r in block.iterrows():
            key = tuple(r[c] for c in ROW_AXES)
            row = rows.setdefault(key, {"score": component_label(r["score"], r["score_params"]),
                                        "initializer": component_label(r["initializer"], r["initializer_params"]),
                                        "sampler": component_label(r["sampler"], r["sampler_params"]),
                                        "seeds": 0})
            row[r["metric"]] = _fmt(r["mean"], r["ci95"])
            row[f"_{r['metric']}"] = r["mean"]
            row["seeds"] = max(row["seeds"], int(r["n"]))
        errors = run.results[(run.results["metric"] == "error") & (run.results["target"] == target)
                             & (run.results["target_params"] == tparams)]
        for key, cells in errors.groupby(list(ROW_AXES), sort=False):
            if key in rows:
                rows[key]["not done"] = ", ".join(f"{n} {status}" for status, n in cells["status"].value_counts().items())
        table = pd.DataFrame(list(rows.values()))
        if "not done" in table:
            table["not done"] = table["not done"].fillna("")
        if f"_{rank_by}" in table:
            higher = higher_is_better(rank_by, directions)
            table = table.sort_values(f"_{rank_by}", ascending=not higher, na_position="last", kind="stable")
            if run.info.get("rank_at_equal_nfe") and f"_{NFE}" in table:
                # samplers compete only with samplers that spent the same number of score evaluations
                table = table.sort_values(f"_{NFE}", kind="stable")
                table.insert(0, "rank", table.groupby(f"_{NFE}", dropna=False).cumcount().to_numpy() + 1)
            else:
                table.insert(0, "rank", range(1, len(table) + 1))
        columns = [c for c in table.columns if not c.startswith("_")]
        columns = [c for c in columns if c not in metrics] + [m for m in metrics if m in columns]
        if keep_means:
            columns = [x for c in columns for x in ((c, f"_{c}") if f"_{c}" in table else (c,))]
        tables.append((component_label(target, tparams), table[columns].reset_index(drop=True)))
    return tables


def leaderboard_markdown(run: RunResults, rank_by: Optional[str] = None,
                         render: Callable[[pd.DataFrame], str] = lambda t: t.to_markdown(index=False)) -> str:
    """The whole leaderboard as Markdown (what ``leaderboard.md`` holds); ``render`` draws each table
    (``bench show`` passes one that fits the terminal)."""
    info = run.info
    lines = [f"# {info.get('suite', 'bench')} leaderboard", ""]
    if info.get("description"):
        lines += [info["description"], ""]
    counts = status_counts(run.results)
    summary = ", ".join(f"{n} {status}" for status, n in counts.items())
    lines += [f"Cells: {sum(counts.values())} ({summary}). Values are mean ± 95% t-interval over seeds.", ""]
    ranked = rank_by or info.get("rank_by")
    for title, table in leaderboard_tables(run, rank_by):
        lines += [f"## {title}", ""]
        metric = ranked or next((c for c in table.columns if c not in ("rank", "score", "initializer",
                                                                         "sampler", "seeds")), "")
        if "rank" in table:
            within = " within each number of score evaluations (`nfe.calls`)" if info.get("rank_at_equal_nfe") else ""
            lines += [f"Ranked by `{metric}`{within}.", ""]
        lines += [render(table), ""]
    claims = info.get("claims", [])
    if claims:
        lines += ["## Claims", ""] + [f"- {c['line']}" for c in claims] + [""]
    problems = run.results[run.results["metric"] == "error"]
    if not problems.empty:
        lines += ["## Cells not done", ""]
        for _, r in problems.iterrows():
            lines.append(f"- `{r['cell']}` {r['target']}/{r['score']}/{r['initializer']}/{r['sampler']} "
                         f"seed {r['seed']}: **{r['status']}**: {r['reason']}")
        lines.append("")
    return "\n".join(lines)
