"""The quality-cost curve: a quality metric against the number of score evaluations, one line per sampler.

The question a practitioner brings to a sampler is what its samples are worth at a given cost, and
whether that survives a wrong score. A suite answers it by running each sampler at several step counts
(``nfe.calls``, the score evaluations per particle, is recorded for every cell) under several score
families. This module turns such a run into curve points; the figure is drawn by
:func:`bench_core.report.cost_figures.quality_cost_curve`.

A **panel** is one (target, score family with its params): an exact or noisy score is judged by
``gaussian_kl`` where it was measured (a Gaussian target), else by the first of ``energy.value``,
``sinkhorn.value``, ``frechet.value``; a trap (a family with a certified TV lower bound of its own) by
that bound (:func:`~bench_core.findings.contrast.tv_metric_for`). A **line** is a sampler with its params
except those that set its cost (``n_steps``, and ``step_size``, which a Langevin sampler scales with it
to keep its horizon): each point is one step count, x the mean ``nfe.calls``, y the mean metric over seeds.
A suite shows the curve when it ranks at equal cost (``rank_at_equal_nfe = true``) and some line has two
or more step counts.
"""
from __future__ import annotations

import json
from typing import Any

import pandas as pd

from bench_core.findings.contrast import EXACT, tv_metric_for
from bench_core.findings.labels import component_label
from bench_core.results.run_results import RunResults

NFE = "nfe.calls"
COST_PARAMS = ("n_steps", "step_size")  # what moves a point along its line
QUALITY = ("gaussian_kl", "energy.value", "sinkhorn.value", "frechet.value")
POINT_COLUMNS = ["target", "panel", "line", "family", "nfe", "value", "ci95", "metric", "log_y"]


def _line_label(sampler: str, params: str, initializer: str) -> str:
    kept = {k: v for k, v in json.loads(params or "{}").items() if k not in COST_PARAMS}
    label = kept.pop("scheduler", None) or component_label(sampler, json.dumps(kept) if kept else "")
    if sampler == "diffusers" and kept:
        label += "(" + ", ".join(f"{k}={v}" for k, v in kept.items()) + ")"
    return label if initializer in ("prior", "standard_normal") else f"{label} from {initializer}"


def _metric_for(score: str, block: pd.DataFrame) -> str | None:
    """A trap's certified TV lower bound (its own witness set, measured with a value), else a quality metric."""
    measured = set(block.loc[block["mean"].notna(), "metric"])
    if score != EXACT:
        own = tv_metric_for(score, measured)
        if own is not None and own.startswith("tv_witness"):
            return own
    return next((m for m in QUALITY if m in measured), None)


def quality_cost_points(run: RunResults) -> pd.DataFrame:
    """The curve points, or an empty frame when the suite does not rank at equal cost or no line has
    two step counts.

    Returns
    -------
    Columns :data:`POINT_COLUMNS`, one row per (panel, line, step count).
    """
    summary = run.summary
    if not run.info.get("rank_at_equal_nfe") or summary.empty or NFE not in set(summary["metric"]):
        return pd.DataFrame(columns=POINT_COLUMNS)
    families = run.info.get("sampler_families") or {}
    keys = ["target", "target_params", "score", "score_params", "initializer", "initializer_params", "sampler",
            "sampler_params"]
    records: list[dict[str, Any]] = []
    for (target, tparams, score, sparams), block in summary.groupby(keys[:4], sort=False):
        metric = _metric_for(score, block)
        if metric is None:
            continue
        values = block[block["metric"] == metric].set_index(keys[4:])
        nfe = block[block["metric"] == NFE].set_index(keys[4:])["mean"]
        for config, row in values.iterrows():
            if config not in nfe.index or not (row["mean"] == row["mean"]):
                continue
            init, _, sampler, params = config
            records.append({"target": component_label(target, tparams), "panel": component_label(score, sparams),
                            "line": _line_label(sampler, params, init), "family": families.get(sampler, "diffusion"),
                            "nfe": float(nfe.loc[config]), "value": float(row["mean"]), "ci95": float(row["ci95"]),
                            "metric": metric, "log_y": not metric.startswith("tv_")})
    points = pd.DataFrame(records, columns=POINT_COLUMNS)
    if points.empty or points.groupby(["target", "panel", "line"])["nfe"].nunique().max() < 2:
        return pd.DataFrame(columns=POINT_COLUMNS)
    return points.sort_values(["target", "panel", "line", "nfe"], kind="stable").reset_index(drop=True)
