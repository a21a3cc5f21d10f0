"""The contrast table: samplers against score families, TV next to the score errors that govern them.

For each target, rows are samplers (with their start for Langevin samplers) and columns are score
families (a score with its params). Each entry shows the certified TV lower bound (mean ± 95%
t-interval over seeds), ``eps_0^2`` (``score_error.sq``: what Langevin sees), ``eps_bar^2``
(``score_error.bar_sq``: what the diffusion bound uses) and, for perturbed families, the fragility
``Δ = TV(family) - TV(exact)`` measured on the same witness set; the last column is the largest Δ
of the row. The TV of a family is read from the first metric present among
``tv_witness(witness='<score>').lower``, ``tv_witness.lower``, ``tv_modes.lower``,
``tv_classifier.lower``.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import pandas as pd

from bench_core.findings.labels import component_label, full_label
from bench_core.plan.cells import metric_plugin
from bench_core.results.run_results import RunResults

EXACT = "exact"
_GENERIC_TV = ("tv_witness.lower", "tv_modes.lower", "tv_classifier.lower")
_TAGS = {"tv_witness": "wit", "tv_modes": "modes", "tv_classifier": "clf"}


def tv_metric_for(score: str, available: set[str]) -> Optional[str]:
    """The TV metric of a score family: its own witness set first, then generic bounds.

    Parameters
    ----------
    score : the family's score name (e.g. ``"ball_trap"``).
    available : the metric names measured on the target.

    Returns
    -------
    The metric name, or None when no TV lower bound was measured.
    """
    own = sorted(m for m in available if m.startswith("tv_witness(") and f"witness='{score}'" in m
                 and m.endswith(".lower"))
    return own[0] if own else next((m for m in _GENERIC_TV if m in available), None)




def bound_tag(metric: Optional[str]) -> str:
    """``TV[wit]`` (witness set), ``TV[modes]`` (mode assignment) or ``TV[clf]`` (classifier)."""
    base = metric_plugin(metric or "")
    return f"TV[{_TAGS[base]}]" if base in _TAGS else "TV"


def _num(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:.2g}" if value != 0 and (abs(value) < 1e-2 or abs(value) >= 1e4) else f"{value:.3g}"


def eps0_text(stats: dict[str, tuple[float, float]]) -> str:
    """ε₀² of a cell from its ``{metric: (mean, ci95)}``: the Monte Carlo value, or ``≤1eK`` (the closed-form
    bound) where Monte Carlo gives 0."""
    sq = stats.get("score_error.sq", (math.nan, math.nan))[0]
    log10, is_bound = (stats.get("score_error.log10", (math.nan,))[0],
                       stats.get("score_error.log10_is_bound", (0.0,))[0])
    if sq == 0 and is_bound == 1.0 and math.isfinite(log10):
        return f"≤1e{math.floor(log10) + 1}"
    return _num(sq)


def contrast_tables(run: RunResults) -> list[tuple[str, pd.DataFrame]]:
    """One table per target with at least two score families (see the module docstring)."""
    summary = run.summary
    if summary.empty:
        return []
    tables = []
    for (target, tparams), block in summary.groupby(["target", "target_params"], sort=False):
        stats: dict[tuple, dict[str, tuple[float, float]]] = {}
        for r in block.itertuples(index=False):
            row = ((r.sampler, r.sampler_params), (r.initializer, r.initializer_params))
            stats.setdefault((row, (r.score, r.score_params)), {})[r.metric] = (r.mean, r.ci95)
        families = list(dict.fromkeys(family for _, family in stats))
        if len(families) < 2:
            continue
        available = set(block["metric"])
        exact = next((f for f in families if f[0] == EXACT), None)
        rows = list(dict.fromkeys(row for row, _ in stats))
        records = []
        for row in rows:
            record = {"sampler": full_label(row)}
            worst: Optional[tuple[float, str]] = None
            for family in families:
                cell = stats.get((row, family))
                column = component_label(*family)
                if cell is None:
                    record[column] = ""
                    continue
                metric = tv_metric_for(family[0], available)
                tv, ci = cell.get(metric, (math.nan, math.nan)) if metric else (math.nan, math.nan)
                text = f"{bound_tag(metric)} {_num(tv)}" + ("" if math.isnan(ci) else f" ± {_num(ci)}")
                base = stats.get((row, exact), {}).get(metric) if exact and metric else None
                if family != exact and base is not None and not math.isnan(tv):
                    delta = tv - base[0]
                    text += f" · Δ {delta:+.3g}"
                    if worst is None or delta > worst[0]:
                        worst = (delta, column)
                text += f" · ε₀² {eps0_text(cell)} · ε̄² {_num(cell.get('score_error.bar_sq', (math.nan,))[0])}"
                record[column] = text
            record["fragility (max Δ)"] = "n/a" if worst is None else f"{worst[0]:+.3g} ({worst[1]})"
            records.append(record)
        tables.append((component_label(target, tparams), pd.DataFrame(records)))
    return tables


def contrast_markdown(run: RunResults,
                      render: Callable[[pd.DataFrame], str] = lambda t: t.to_markdown(index=False)) -> str:
    """``contrast.md``: every contrast table with a legend ("" when no target has two families);
    ``render`` draws each table (``bench show`` passes one that fits the terminal)."""
    tables = contrast_tables(run)
    if not tables:
        return ""
    lines = [f"# {run.info.get('suite', 'bench')} contrast", "",
             "Rows: samplers; columns: score families. Each entry: the certified TV lower bound (mean ± 95% "
             "t-interval over seeds) from the family's witness set (TV[wit]: tv_witness with witness = the "
             "family), else the mode assignment (TV[modes]) or a held-out classifier (TV[clf]); Δ = TV(family) − TV(exact) on the same witness set (fragility); "
             "ε₀² = E_π‖ŝ₀ − ∇log π‖² (the norm Langevin needs small); ε̄² = the time-averaged "
             "E_{p_t}‖ŝ_t − ∇log p_t‖² over the sampler's grid (the norm the diffusion bound needs small; "
             "equal to ε₀² for Langevin). ≤1eK: the Monte Carlo error is 0 and the closed-form bound is shown.", ""]
    for title, table in tables:
        lines += [f"## {title}", "", render(table), ""]
    return "\n".join(lines)
