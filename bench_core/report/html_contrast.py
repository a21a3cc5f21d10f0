"""The contrast section of ``report.html``: per target, one annotated heatmap of samplers × score
families whose cells show the certified TV (± interval) and beneath it ε₀² and ε̄², the errors that
explain it; a TV-against-ε̄² scatter; the full labels and the contrast table one click below.

The numbers are those of ``contrast.md`` (:func:`bench_core.findings.contrast.contrast_tables`); axis labels
are shortened consistently by :mod:`bench_core.findings.labels`.
"""
from __future__ import annotations

import math
from typing import Any

import pandas as pd

from bench_core.report import figures
from bench_core.findings.contrast import bound_tag, contrast_tables, eps0_text, tv_metric_for
from bench_core.report.html_parts import escape as _e, figure as _figure, table as _table
from bench_core.findings.labels import component_label, full_label, short_labels, short_names
from bench_core.results.run_results import RunResults


def contrast_points(run: RunResults) -> pd.DataFrame:
    """One row per (target, sampler row, score family) labelled as in ``contrast_tables``.

    Returns
    -------
    Columns ``target``, ``sampler``, ``family``, ``tag`` (which TV bound), ``tv`` and ``ci95`` (mean
    over seeds and 95% half-width of the metric ``tv_metric_for`` picks for the family), ``eps0``
    (ε₀² as the contrast tables write it, a closed-form bound ``≤1eK`` where Monte Carlo gives 0),
    ``eps_bar`` (mean ``score_error.bar_sq``), and ``row`` / ``family_key`` (the components, for
    :mod:`bench_core.findings.labels`); NaN where a metric was not measured.
    """
    summary = run.summary
    records = []
    for (target, tparams), block in summary.groupby(["target", "target_params"], sort=False):
        available = set(block["metric"])
        stats: dict[tuple, dict[str, tuple[float, float]]] = {}
        for r in block.itertuples(index=False):
            key = (r.score, r.score_params, r.initializer, r.initializer_params, r.sampler, r.sampler_params)
            stats.setdefault(key, {})[r.metric] = (r.mean, r.ci95)
        for (score, sparams, init, iparams, sampler, pparams), values in stats.items():
            metric = tv_metric_for(score, available)
            tv, ci = values.get(metric, (math.nan, math.nan)) if metric else (math.nan, math.nan)
            row = ((sampler, pparams), (init, iparams))
            records.append({"target": component_label(target, tparams), "sampler": full_label(row),
                            "family": component_label(score, sparams), "tag": bound_tag(metric), "tv": tv,
                            "ci95": ci, "eps0": eps0_text(values),
                            "eps_bar": values.get("score_error.bar_sq", (math.nan,))[0],
                            "row": row, "family_key": (score, sparams)})
    return pd.DataFrame(records, columns=["target", "sampler", "family", "tag", "tv", "ci95", "eps0", "eps_bar",
                                          "row", "family_key"])


def _cell_text(r: Any) -> str:
    """A heatmap cell: TV ± interval, then the two score errors that explain it."""
    if math.isnan(r.tv):
        return ""
    tv = f"{r.tv:.2f}" + ("" if math.isnan(r.ci95) else f"±{r.ci95:.2f}")
    bar = "n/a" if math.isnan(r.eps_bar) else f"{r.eps_bar:.0e}" if r.eps_bar else "0"
    return f"{tv}\nε₀² {r.eps0}\nε̄² {bar}"


def contrast_section(run: RunResults) -> str:
    tables = contrast_tables(run)
    if not tables:
        return ""
    points = contrast_points(run)
    parts = ['<p class="note">One heatmap per target: rows are samplers, columns score families. Each cell: the '
             "certified TV lower bound, mean ± 95% interval over seeds (colour), and beneath it the two score errors "
             "that explain it: ε₀² = E<sub>π</sub>‖ŝ₀ − ∇log π‖² (the norm Langevin needs small; ≤1eK: closed-form "
             "bound, Monte Carlo gave 0) and ε̄² = the time-averaged error over the sampler's grid (the norm the "
             "diffusion bound needs small). Blank: not run. Axis labels keep only the params that tell rows or "
             "columns apart; the full labels and the table with Δ = TV(family) − TV(exact) are below each map.</p>"]
    for title, table in tables:
        parts.append(f"<h3>{_e(title)}</h3>")
        block = points[points["target"] == title].drop_duplicates(["sampler", "family"])
        if block["tv"].isna().all():
            parts.append('<p class="note">No TV lower bound was measured for this target.</p>')
        else:
            rows = list(dict.fromkeys(block["row"]))
            families = list(dict.fromkeys(block["family_key"]))
            row_names, family_names = short_labels(rows), short_names(families)
            tags = block.groupby("family")["tag"].first()
            columns = [f"{short} · {tags.get(component_label(*key), 'TV')}" for short, key in zip(family_names, families)]
            index = dict(zip(rows, row_names))
            where = {(index[r.row], columns[families.index(r.family_key)]): r for r in block.itertuples(index=False)}
            values = pd.DataFrame(math.nan, index=row_names, columns=columns)
            notes = pd.DataFrame("", index=row_names, columns=columns)
            for (i, j), r in where.items():
                values.loc[i, j], notes.loc[i, j] = r.tv, _cell_text(r)
            parts.append(f'<figure class="contrast">'
                         f'<img src="data:image/png;base64,{figures.tv_heatmap(values, title, notes)}" '
                         f'alt="{_e(title)}: TV lower bound and score errors, samplers × score families">'
                         f"<figcaption>{_e(title)}: certified TV lower bound (± 95%), ε₀² and ε̄² per cell"
                         "</figcaption></figure>")
            legend = pd.DataFrame({"short label": row_names + family_names,
                                   "full label": [full_label(r) for r in rows]
                                   + [component_label(*f) for f in families]})
            legend = legend[legend["short label"] != legend["full label"]]
            scatter = block.dropna(subset=["tv", "eps_bar"])
            if not scatter.empty:
                parts.append(_figure(figures.tv_scatter(scatter.assign(sampler=scatter["row"].map(index)), title),
                                     f"{title}: TV lower bound against ε̄² (score_error.bar_sq)"))
            if not legend.empty:
                parts.append(f"<details><summary>full labels</summary>{_table(legend)}</details>")
        parts.append(f"<details><summary>the same numbers as a table, with Δ (fragility)</summary>{_table(table)}"
                     "</details>")
    return "".join(parts)
