"""The first screen of ``report.html``: the fragility curve, the sentence stating the contrast, the claims.

The curve and the sentence come from :mod:`bench_core.findings.fragility`; the claims summary says how many
hold, shows the failures expanded and collapses the passes under one line.
"""
from __future__ import annotations

from typing import Any

from bench_core.report import cost_figures, figures
from bench_core.findings.fragility import fragility_points, fragility_summary
from bench_core.findings.quality_cost import quality_cost_points
from bench_core.report.html_parts import escape as _e, figure as _figure, table as _table
from bench_core.report.html_searched import searched_headline
from bench_core.results.run_results import RunResults


def _claim_rows(claims: list[dict[str, Any]]) -> str:
    rows = []
    for c in claims:
        verdict, why, line = "PASS" if c.get("holds") else "FAIL", c.get("why") or "", c.get("line", "")
        # the line repeats the verdict in front and the why at the end: both have their own column
        line = line.removeprefix(f"{verdict} ").removesuffix(f"  [{why}]" if why else "")
        rows.append(f'<tr class="{verdict.lower()}"><td class="verdict">{verdict}</td>'
                    f"<td><code>{_e(line)}</code></td><td>{_e(why)}</td></tr>")
    return (f'<div class="scroll"><table><tr><th>result</th><th>claim</th><th>why</th></tr>'
            f"{''.join(rows)}</table></div>")


def _claims(info: dict[str, Any]) -> str:
    """n of m hold; the failures first, expanded; the passes collapsed under one line."""
    claims = info.get("claims") or []
    if not claims:
        return '<p class="note">This suite states no claims.</p>'
    failing = [c for c in claims if not c.get("holds")]
    passing = [c for c in claims if c.get("holds")]
    verdict = "fail" if failing else "pass"
    parts = [f'<p class="claims-count {verdict}"><b>{len(passing)} of {len(claims)} claims hold.</b></p>']
    if failing:
        parts.append(_claim_rows(failing))
    if passing:
        parts.append(f"<details><summary>{len(passing)} claim{'s' if len(passing) > 1 else ''} {'hold' if len(passing) > 1 else 'holds'} "
                     f"(show)</summary>{_claim_rows(passing)}</details>")
    return "".join(parts)


def _quality_cost(run: RunResults) -> str:
    """The quality-cost curve as the headline figure ("" when the suite does not measure one)."""
    points = quality_cost_points(run)
    if points.empty:
        return ""
    caption = ("Quality against cost: each panel's metric (Gaussian-fit KL, a distance, or the certified TV lower "
               "bound of a trap) against the score evaluations per particle, one line per sampler at its step counts "
               "(diffusion samplers dashed, Langevin solid), one panel per score family and target; means over seeds.")
    return _figure(cost_figures.quality_cost_curve(points), caption,
                   alt="quality against the number of score evaluations", headline=True)


def headline_section(run: RunResults) -> str:
    """The first screen: the quality-cost curve of a suite that ranks at equal cost, else the searched
    fragility curve of a run with searched scores, else the fragility curve and the sentence stating the
    contrast; then the claims summary."""
    first = _quality_cost(run) or searched_headline(run)
    if first:
        return first + _claims(run.info)
    points = fragility_points(run)
    parts = []
    if not points.empty:
        caption = ("Certified TV lower bound against log10 ε₀² (the t = 0 score error Langevin sees), one panel "
                   "per trap family; Langevin samplers warm and solid, diffusion samplers cool and dashed; bars: 95% "
                   "intervals over seeds; hollow markers: closed-form upper bound on ε₀² (Monte Carlo gave 0).")
        parts.append(_figure(figures.fragility_curve(points), caption,
                             alt="fragility curve: TV against the score error", headline=True))
        parts += [f'<p class="lead">{_e(sentence)}</p>' for sentence in fragility_summary(points)]
        labels = points[["line", "full_line"]].drop_duplicates()
        labels = labels[labels["line"] != labels["full_line"]]
        if not labels.empty:  # the legend's short labels, spelled out
            parts.append("<details><summary>full labels of the lines</summary>"
                         f"{_table(labels.rename(columns={'line': 'short label', 'full_line': 'full label'}))}</details>")
    parts.append(_claims(run.info))
    return "".join(parts)
