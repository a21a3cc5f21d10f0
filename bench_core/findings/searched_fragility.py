"""The searched fragility curve: certified TV against the budget of a searched score error, per attacked sampler.

A **searched** score is one whose params name the sampler it was trained against and its L2 budget
(``attack`` and ``budget``: the built-in ``adversary``). On each target (a panel), a **line** joins
the cells of one attacked sampler run under that same sampler, x = ``log10 budget`` (the squared
error in that sampler's norm: ``eps_0^2`` for Langevin, ``eps_bar^2`` for a diffusion sampler), y =
the certified TV lower bound (mean ± 95% interval over seeds). Cells run under another sampler than
the one they were trained against are **transfer** lines; each sampler's TV with the ``exact`` score
is its **exact** baseline (what its own discretization and mixing cost, with no score error). Constructed perturbations (any other score
but ``exact``) are **trap** points at their measured error in the sampler's norm
(``score_error.bar_sq``, which is ``eps_0^2`` for Langevin samplers). Where the cells measure
``girsanov_ceiling.tv`` (DDPM's exponential integrator), the **ceiling** is a line of its own: the
most TV any perturbation of that size can cost that sampler.
"""
from __future__ import annotations

import math
from typing import Any

import pandas as pd

from bench_core.base.seeding import canonical_json
from bench_core.findings.contrast import EXACT, tv_metric_for
from bench_core.findings.fragility import sampler_kind, searched_params
from bench_core.findings.labels import component_label
from bench_core.results.run_results import RunResults

CEILING = "girsanov_ceiling.tv"
BAR_SQ = "score_error.bar_sq"
POINT_COLUMNS = ["panel", "line", "kind", "sampler_kind", "log10_budget", "tv", "ci95", "n", "metric"]


def _stats(block: pd.DataFrame) -> dict[tuple, dict[str, tuple[float, float, int]]]:
    out: dict[tuple, dict[str, tuple[float, float, int]]] = {}
    for r in block.itertuples(index=False):
        key = (r.score, r.score_params, r.initializer, r.initializer_params, r.sampler, r.sampler_params)
        ci = float(r.ci95) if pd.notna(r.ci95) else 0.0
        out.setdefault(key, {})[r.metric] = (float(r.mean), ci, int(r.n))
    return out


def _record(panel: str, line: str, kind: str, skind: str, x: float, value: tuple[float, float, int],
            metric: str) -> dict[str, Any]:
    return {"panel": panel, "line": line, "kind": kind, "sampler_kind": skind, "log10_budget": x, "tv": value[0],
            "ci95": value[1], "n": value[2], "metric": metric}


def searched_points(run: RunResults) -> pd.DataFrame:
    """The curve's points (columns :data:`POINT_COLUMNS`): one row per (panel, line, budget) for the
    searched, transfer and ceiling lines, one per trap cell, one per exact baseline (``log10_budget`` NaN);
    empty when the run has no searched score."""
    summary = run.summary
    if summary.empty:
        return pd.DataFrame(columns=POINT_COLUMNS)
    families = run.info.get("sampler_families") or {}
    configs = summary.groupby("sampler")["sampler_params"].nunique()
    records: list[dict[str, Any]] = []
    for (target, tparams), block in summary.groupby(["target", "target_params"], sort=False):
        stats = _stats(block)
        if not any(searched_params(key[1]) for key in stats):
            continue
        available, panel = set(block["metric"]), component_label(target, tparams)
        for (score, sparams, init, iparams, sampler, pparams), values in stats.items():
            skind = sampler_kind(sampler, init, families)
            metric = tv_metric_for(score, available)
            if metric not in values:
                continue
            under = component_label(sampler, pparams)
            name = under if configs.get(sampler, 1) > 1 else sampler  # the name alone when it says which
            if score == EXACT:  # the baseline: what the sampler's own error costs, with no score error at all
                records.append(_record(panel, f"exact score under {name}", "exact", skind, math.nan, values[metric],
                                       metric))
                continue
            params = searched_params(sparams)
            if params is None:  # a constructed perturbation: a point at its error in the sampler's norm
                bar = values.get(BAR_SQ, (math.nan, 0.0, 0))[0]
                if bar > 0:
                    records.append(_record(panel, f"{component_label(score, sparams)} under {name}", "trap", skind,
                                           math.log10(bar), values[metric], metric))
                continue
            attacked = component_label(params["attack"], canonical_json(params.get("attack_params") or {}))
            same = attacked == under
            line = f"searched against {name}" if same else f"trained against {params['attack']}, run under {name}"
            x = math.log10(float(params["budget"]))
            records.append(_record(panel, line, "searched" if same else "transfer", skind, x, values[metric], metric))
            if same and CEILING in values:
                records.append(_record(panel, f"ceiling of {name}", "ceiling", skind, x, values[CEILING], CEILING))
    points = pd.DataFrame(records, columns=POINT_COLUMNS)
    return points.sort_values(["panel", "kind", "line", "log10_budget"], kind="stable").reset_index(drop=True)


def searched_summary(points: pd.DataFrame) -> list[str]:
    """One sentence per panel: what the search certified at its smallest budget, line by line."""
    sentences = []
    for panel, block in points.groupby("panel", sort=False):
        searched = block[block["kind"] == "searched"]
        if searched.empty:
            continue
        smallest = searched["log10_budget"].min()
        at = searched[searched["log10_budget"] == smallest]
        parts = [f"TV >= {r.tv:.2f} {r.line.removeprefix('searched ')}" for r in at.itertuples()]
        ceiling = block[(block["kind"] == "ceiling") & (block["log10_budget"] == smallest)]
        tail = "".join(f"; the {r.line} is {r.tv:.3f}" for r in ceiling.itertuples())
        exact = block[block["kind"] == "exact"]
        if not exact.empty:
            tail += " (with the exact score: " + ", ".join(f"{r.tv:.2f} under {r.line.removeprefix('exact score under ')}"
                                                          for r in exact.itertuples()) + ")"
        sentences.append(f"{panel}: at a budget of {10 ** smallest:.3g} the search certifies "
                         + ", ".join(parts) + tail + ".")
    return sentences
