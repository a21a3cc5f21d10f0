"""The report's parts for searched perturbations (scores with ``attack`` and ``budget`` params).

The headline of such a run is the searched fragility curve with one sentence per target
(:mod:`bench_core.findings.searched_fragility`); the section "What the search found" draws the
searched error of the claimed cells in the plane of the target's mean and tabulates every point.
"""
from __future__ import annotations

import math

import pandas as pd

from bench_core.findings.fragility import searched_params
from bench_core.findings.labels import component_label
from bench_core.findings.searched_fragility import searched_points, searched_summary
from bench_core.report import searched_figures
from bench_core.report.html_parts import escape as _e, figure as _figure, table as _table
from bench_core.results.run_results import RunResults

MAX_FIELDS = 3


def searched_headline(run: RunResults) -> str:
    """The searched fragility curve and its sentences ("" when the run has no searched score)."""
    points = searched_points(run)
    if points.empty:
        return ""
    caption = ("Searched fragility: the certified TV lower bound (tv_classifier) the search reached against each "
               "L2 budget, one panel per target; solid: searched against a Langevin sampler (budget on ε₀²), "
               "dashed: against a diffusion sampler (budget on ε̄² over its grid), dotted: trained against one "
               "sampler and run under another; dash-dot: DDPM's Girsanov ceiling; grey markers: constructed traps "
               "at their measured error; faint level lines: each sampler with the exact score. Means over seeds, bars 95% intervals, measured on fresh starts and noise.")
    parts = [_figure(searched_figures.searched_curve(points), caption, alt="searched fragility: TV against the budget",
                     headline=True)]
    parts += [f'<p class="lead">{_e(sentence)}</p>' for sentence in searched_summary(points)]
    return "".join(parts)


def _field_views(run: RunResults) -> list[tuple[str, dict]]:
    """Up to :data:`MAX_FIELDS` views with a searched error field, one per target: run under the sampler it
    was searched against before transfer, against a Langevin sampler before a diffusion one, smallest budget first."""
    rows = run.results.drop_duplicates("cell").set_index("cell")
    families = run.info.get("sampler_families") or {}
    found = []
    for cell, view in run.views.items():
        if "field_xy" not in view or cell not in rows.index:
            continue
        row = rows.loc[cell]
        params = searched_params(row["score_params"])
        if params is None:
            continue
        transfer = params["attack"] != row["sampler"]
        diffusion = families.get(params["attack"]) == "diffusion"
        title = (f"{component_label(row['target'], row['target_params'])}: searched against {params['attack']}, "
                 f"budget {float(params['budget']):.3g}, under {row['sampler']} (seed {row['seed']})")
        found.append(((transfer, diffusion, float(params["budget"]), row["target"], row["target_params"]),
                      row["target_params"], title, view))
    found.sort(key=lambda item: item[0])
    chosen, targets = [], set()
    for _, target, title, view in found:  # one per target first
        if target not in targets:
            targets.add(target)
            chosen.append((title, view))
    return chosen[:MAX_FIELDS]


def searched_section(run: RunResults) -> str:
    """What the search found: the error field of the claimed searched cells and the table of the curve."""
    points = searched_points(run)
    if points.empty:
        return ""
    parts = []
    views = _field_views(run)
    if views:
        caption = ("The searched score error at t = 0 in the plane through the origin and the target's mean (a 2-D "
                   "slice of the d-dimensional field): colour log10 of its norm, arrows its direction in the plane, "
                   "cyan dots the cell's final samples, black dots the target's.")
        parts.append(_figure(searched_figures.perturbation_field(views), caption,
                             alt="the searched perturbation in a plane"))
    table = points.assign(budget=[10 ** x if math.isfinite(x) else math.nan for x in points["log10_budget"]])
    table = table[["panel", "line", "kind", "budget", "tv", "ci95", "n", "metric"]].rename(
        columns={"panel": "target", "budget": "budget (error in the sampler's norm)", "tv": "mean", "n": "seeds"})
    parts.append("<details><summary>the curve's points</summary>"
                 f"{_table(pd.DataFrame(table).round(4))}</details>")
    return "".join(parts)
