"""The fragility curve: certified TV against the t = 0 score error, one line per sampler.

The paper's point is that an estimate whose L2(pi) error ``eps_0^2`` is *arbitrarily* small can
keep Langevin far from the target while diffusion samplers, given the same t = 0 estimate, are
fine. A suite shows it by running one trap family on several targets (growing dimension, or any
other target parameter) so that ``eps_0^2`` spans many orders of magnitude. This module turns
such a run into curve points and one sentence stating the contrast; the figure is drawn by
:func:`bench_core.report.figures.fragility_curve`.

A **panel** is one (target name, perturbed score family): its points are that family's cells on
every target configuration of that name, at least two of them. The x value of a point is the mean
over seeds of ``score_error.log10`` (a geometric mean of eps_0^2: the Monte Carlo ``log10 eps_0^2``, or the log10 of the
family's closed-form upper bound where Monte Carlo gives exactly 0: then the point is marked as a
bound); the y value is the family's certified TV lower bound (:func:`~bench_core.findings.contrast.tv_metric_for`)
as mean ± 95% interval over seeds. A **line** is a sampler with its params, and its start for
Langevin-family samplers.
"""
from __future__ import annotations

import json
import math
from typing import Any, Optional

import pandas as pd

from bench_core.findings.contrast import EXACT, tv_metric_for
from bench_core.findings.labels import component_label, full_label, short_labels
from bench_core.results.run_results import RunResults

LOG10_EPS = "score_error.log10"
IS_BOUND = "score_error.log10_is_bound"
POINT_COLUMNS = ["panel", "target", "family", "line", "kind", "config", "log10_eps", "is_bound", "tv", "ci95", "n",
                 "metric", "full_line"]
SEARCHED_PARAMS = ("attack", "budget")
# the sentence describes the far end of the curve: points at or below this log10 eps_0^2 when any
SMALL_LOG10_EPS = -10.0


def sampler_kind(sampler: str, initializer: str, families: dict[str, str]) -> str:
    """``"langevin"`` or ``"diffusion"``: from run.json's ``sampler_families`` when recorded, else from
    the start (diffusion samplers run from the ``prior``, never from an initializer)."""
    return families.get(sampler) or ("diffusion" if initializer == "prior" else "langevin")


def searched_params(score_params: str) -> Optional[dict[str, Any]]:
    """The params of a searched score (they name ``attack`` and ``budget``: the ``adversary``), else None.
    Such a score has its own curve, against its budget (:mod:`bench_core.findings.searched_fragility`)."""
    params = json.loads(score_params) if score_params else {}
    return params if isinstance(params, dict) and all(k in params for k in SEARCHED_PARAMS) else None


def fragility_points(run: RunResults) -> pd.DataFrame:
    """The curve points of every panel with at least two distinct target configurations.

    Returns
    -------
    Columns :data:`POINT_COLUMNS`, one row per (panel, line, target configuration); ``line`` is the
    short label (:func:`bench_core.findings.labels.short_labels` over every line), ``full_line`` the full one.
    Empty when the run has no sweep (no sampler measured on two configurations of a target with
    both ``score_error.log10`` and a TV lower bound for a family).
    """
    summary = run.summary
    if summary.empty or LOG10_EPS not in set(summary["metric"]):
        return pd.DataFrame(columns=POINT_COLUMNS)
    families = run.info.get("sampler_families") or {}
    config = ["target", "target_params", "score", "score_params", "initializer", "initializer_params",
              "sampler", "sampler_params"]
    records: list[dict[str, Any]] = []
    for target, block in summary[summary["score"] != EXACT].groupby("target", sort=False):
        available = set(block["metric"])
        for (score, sparams), rows in block.groupby(["score", "score_params"], sort=False):
            if searched_params(sparams) is not None:
                continue
            metric = tv_metric_for(score, available)
            if metric is None:
                continue
            by_metric = {m: r.set_index(config) for m, r in rows.groupby("metric")}
            if metric not in by_metric or LOG10_EPS not in by_metric:
                continue
            tv, eps = by_metric[metric], by_metric[LOG10_EPS]
            bound = by_metric.get(IS_BOUND)
            family = component_label(score, sparams)
            for key, row in tv.iterrows():
                if key not in eps.index:
                    continue
                _, tparams, _, _, init, iparams, sampler, pparams = key
                line = ((sampler, pparams), (init, iparams))
                records.append({
                    "panel": f"{family} on {target}", "target": component_label(target, tparams), "family": family,
                    "line": line, "kind": sampler_kind(sampler, init, families), "config": tparams,
                    "log10_eps": float(eps.loc[key, "mean"]),
                    "is_bound": bool(bound is not None and key in bound.index and bound.loc[key, "mean"] > 0.5),
                    "tv": float(row["mean"]), "ci95": float(row["ci95"]) if pd.notna(row["ci95"]) else 0.0,
                    "n": int(row["n"]), "metric": metric})
    points = pd.DataFrame(records, columns=POINT_COLUMNS)
    if points.empty:
        return points
    # a curve needs two points: a sampler run on one configuration only is not part of the sweep
    sizes = points.groupby(["panel", "line"])["config"].transform("nunique")
    points = points[sizes >= 2]
    if points.empty:
        return points
    rows = list(dict.fromkeys(points["line"]))
    short = dict(zip(rows, short_labels(rows)))  # one rule for the figure, its legend and the sentence
    points = points.assign(full_line=points["line"].map(full_label), line=points["line"].map(short))
    return points.sort_values(["panel", "kind", "line", "log10_eps"], ascending=[True, False, True, False],
                              kind="stable").reset_index(drop=True)


def _power(log10: float) -> str:
    """``1e-14`` for a log10 value, rounded up to the next integer power (a safe 'at most')."""
    return f"1e{math.ceil(log10 - 1e-9)}"


def _names(lines: list[str]) -> str:
    return lines[0] if len(lines) == 1 else ", ".join(lines[:-1]) + f" and {lines[-1]}"


def panel_sentence(points: pd.DataFrame) -> Optional[str]:
    """One sentence for one panel's points: at the small-error end, which lines keep a large TV
    and which stay near 0 (None when the panel has no points)."""
    if points.empty:
        return None
    small = points[points["log10_eps"] <= SMALL_LOG10_EPS]
    if small.empty:  # no point reaches 1e-10: describe the smallest error measured
        small = points[points["log10_eps"] <= points["log10_eps"].min() + 1e-9]
    edge = small["log10_eps"].max()
    trapped, other = [], []
    for (kind, line), rows in small.groupby(["kind", "line"], sort=False):
        lowest, highest = rows["tv"].min(), rows["tv"].max()
        # rounded down: "TV >= 0.98" must hold for the 0.986 it summarizes
        if lowest >= 0.5:
            trapped.append((kind, f"{line} (TV ≥ {math.floor(lowest * 100) / 100:.2f})"))
        else:
            other.append((kind, f"{line} ({math.ceil(highest * 100) / 100:.2f})"))
    trapped.sort(key=lambda p: p[0] != "langevin")
    other.sort(key=lambda p: p[0] != "diffusion")
    head = f"{points['panel'].iloc[0]}: where ε₀² ≤ {_power(edge)}"
    parts = []
    if trapped:
        parts.append(f"{_names([t for _, t in trapped])} {'is' if len(trapped) == 1 else 'are'} certified far from "
                     "the target")
    if other:
        # a lower bound near 0 bounds nothing from above: it says no departure was detected
        parts.append(f"the certified lower bound of {_names([o for _, o in other])} stays near 0 (no detectable "
                     "departure)")
    return f"{head}, {' while '.join(parts)}."


def fragility_summary(points: pd.DataFrame) -> list[str]:
    """:func:`panel_sentence` for every panel, in panel order."""
    return [s for _, block in points.groupby("panel", sort=False) if (s := panel_sentence(block))]


def headline_markdown(run: RunResults) -> str:
    """What ``bench show`` prints first: the fragility sentences and the claims count, failures listed."""
    lines = [f"# {run.info.get('suite', 'bench')}: headline", ""]
    lines += [f"- {sentence}" for sentence in fragility_summary(fragility_points(run))]
    claims = run.info.get("claims") or []
    if claims:
        failing = [c for c in claims if not c.get("holds")]
        lines += ["", f"{len(claims) - len(failing)} of {len(claims)} claims hold."]
        lines += [f"- {c.get('line', '')}" for c in failing]
    return "\n".join(lines) + "\n"
