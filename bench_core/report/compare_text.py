"""``bench compare`` as text: Markdown (``--markdown FILE``) and, with :func:`.terminal_tables.fit_table`
as the table renderer, the terminal. The HTML section (:mod:`.html_compare`) shows the same tables."""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import pandas as pd

from bench_core.findings.compare_runs import RATIO_METRICS, VERDICTS, Comparison
from bench_core.findings.labels import component_label, config_label, short_labels, short_names
from bench_core.results.run_results import RunResults

_ROW_AXES = ("score", "initializer", "sampler")
CHANGE = "NEW − BASE [95%]"
#: what the tables' numbers are, said once above them (Markdown and HTML)
EXPLAINED = ("Paired by seed: per configuration and metric, NEW − BASE on each seed both runs finished, its mean and "
             "95% paired-t interval; `unchanged` when the interval contains 0 (or the values are identical), else "
             "`better` or `worse` by the metric's direction. One seed gives no interval: a difference is `changed`. "
             "`nfe.*` and `wall_s` are NEW / BASE (×, geometric mean over seeds); wall time gets no verdict (—). "
             "`not comparable`: a seed failed, diverged or was skipped, or the metric is missing, in one run.")


def _number(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.4g}"


def change_text(row: Mapping[str, Any]) -> str:
    """``+0.0213 [0.0187, 0.0239]`` (a difference) or ``×1.02 [0.98, 1.06]`` (a ratio), with the interval
    when there is one."""
    ratio = row["metric"] in RATIO_METRICS
    value = row["ratio"] if ratio else row["diff"]
    if value is None or math.isnan(value):
        return ""
    text = f"×{value:.3g}" if ratio else "0" if value == 0 else f"{value:+.3g}"
    low, high = row["low"], row["high"]
    if not math.isnan(low) and not (low == high == (1.0 if ratio else 0.0)):
        text += f" [{low:.3g}, {high:.3g}]"
    return text


def comparison_table(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of one target as a table to read: score, sampler (with its start), metric, seeds, BASE,
    NEW, the change with its interval, the verdict, and a note when some row has one. Components are
    labelled by the params that tell them apart (:mod:`bench_core.findings.labels`)."""
    records = rows.to_dict("records")
    lines = [((r["sampler"], r["sampler_params"]), (r["initializer"], r["initializer_params"])) for r in records]
    scores = [(r["score"], r["score_params"]) for r in records]
    table = pd.DataFrame({"score": short_names(scores) if scores else [], "sampler": short_labels(lines),
                          "metric": list(rows["metric"]), "seeds": list(rows["seeds"]),
                          "BASE": [_number(r["base"]) for r in records], "NEW": [_number(r["new"]) for r in records],
                          CHANGE: [change_text(r) for r in records], "verdict": list(rows["verdict"]),
                          "note": list(rows["note"].fillna(""))})
    return table if table["note"].astype(bool).any() else table.drop(columns="note")


def verdict_counts(rows: pd.DataFrame) -> pd.DataFrame:
    """Per metric, how many configurations got each verdict (the verdicts that occur, worst first)."""
    counts = pd.crosstab(rows["metric"], rows["verdict"])
    counts = counts[[v for v in VERDICTS if v in counts.columns]]
    order = list(dict.fromkeys(rows["metric"]))
    return counts.reindex(order).reset_index().rename_axis(columns=None)


def _run_line(role: str, run: RunResults) -> str:
    info = run.info
    return f"{role}: `{run.folder}` (suite {info.get('suite', '?')}, written {info.get('written_at', '?')})"


def regression_lines(rows: pd.DataFrame) -> list[str]:
    """One line per row that ``--fail-on`` fails on: the metric, the configuration, the change."""
    return [f"FAIL {r['metric']} {'got worse' if r['verdict'] == 'worse' else 'lost'}: {config_label(r)} / seeds "
            f"{r['seeds']}: {change_text(r) or r['note']}" for r in rows.to_dict("records")]


def compare_markdown(comparison: Comparison,
                     render: Callable[[pd.DataFrame], str] = lambda t: t.to_markdown(index=False)) -> str:
    """The whole comparison as Markdown (what ``--markdown FILE`` holds); ``render`` draws each table
    (``bench compare`` passes one that fits the terminal)."""
    rows, base, new = comparison.rows, comparison.base, comparison.new
    lines = [f"# {new.info.get('suite', 'bench')} compared with {base.info.get('suite', 'bench')}", "",
             _run_line("BASE", base), "", _run_line("NEW", new), "", "## What differs besides the numbers", ""]
    lines += [f"- {line}" for line in comparison.differences.lines()] + [""]
    tally = rows["verdict"].value_counts()
    summary = ", ".join(f"{tally[v]} {v}" for v in VERDICTS if v in tally)
    n_configs = len(rows.drop_duplicates([c for c in rows.columns if c.endswith("params") or c in
                                          ("target", *_ROW_AXES)]))
    lines += ["## Verdicts", "", f"{len(rows)} comparisons over {n_configs} configurations in both runs: {summary or 'none'}.",
              "", render(verdict_counts(rows)) if not rows.empty else "(no metric in common)", "", EXPLAINED, ""]
    for (target, params), block in rows.groupby(["target", "target_params"], sort=False):
        lines += [f"## {component_label(target, params)}", "", render(comparison_table(block)), ""]
    for role, only in (("BASE", comparison.only_base), ("NEW", comparison.only_new)):
        if not only.empty:
            lines += [f"## Only in {role} ({len(only)} configurations)", "", render(only_table(only)), ""]
    return "\n".join(lines)


def only_table(only: pd.DataFrame) -> pd.DataFrame:
    """The configurations of one run only (``Comparison.only_base`` / ``only_new``), labelled, with their seeds."""
    return pd.DataFrame({axis: [component_label(n, p) for n, p in zip(only[axis], only[f"{axis}_params"])]
                         for axis in ("target", *_ROW_AXES)}).assign(seeds=list(only["seeds"]))
