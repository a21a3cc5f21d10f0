"""Figures of the searched perturbations: the searched fragility curve and what the search found.

:func:`searched_curve` draws :func:`bench_core.findings.searched_fragility.searched_points`;
:func:`perturbation_field` draws a cell's view of its score error in the plane of the target's
mean (:mod:`bench_core.cell.sample_views`, ``field_*``).
"""
from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd

from bench_core.report.figures import _figure, _png, finish_tv_panels, legend_below, line_styles, tv_error_bars, tv_panel

TRAP_MARKERS = ("X", "P", "D", "*", "h")


def searched_curve(points: pd.DataFrame) -> str:
    """Certified TV lower bound against log10 budget, one panel per target (PNG, base64).

    Searched lines: Langevin samplers warm and solid, diffusion samplers cool and dashed (as in the
    fragility curve); transfer lines thin and dotted in the colour of the sampler they run under;
    the Girsanov ceiling a black dash-dot line; constructed traps grey markers at their measured
    error; each sampler's TV with the exact score a faint level line in its colour. The x axis runs from large budgets (left) to small (right); bars are 95% intervals.
    """
    panels = list(dict.fromkeys(points["panel"]))
    lines = points[points["kind"].isin(["searched", "transfer"])]
    styles = line_styles(list(zip(lines["line"], lines["sampler_kind"])))
    traps = list(dict.fromkeys(points.loc[points["kind"] == "trap", "line"]))
    with _figure(min(4.4 * len(panels), 13.5), 3.3) as fig:
        axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)[0]
        for ax, panel in zip(axes, panels):
            block = points[points["panel"] == panel]
            for (line, kind), rows in block.groupby(["line", "kind"], sort=False):
                rows = rows.sort_values("log10_budget", ascending=False)
                spread = tv_error_bars(rows)
                if kind == "exact":  # no budget: a level across the panel, in the colour of its sampler's line
                    sampler = line.removeprefix("exact score under ")
                    colour = next((st["color"] for ln, st in styles.items() if ln.endswith(f"against {sampler}")), "0.5")
                    ax.axhline(float(rows["tv"].iloc[0]), color=colour, linewidth=0.9, alpha=0.55, label=line,
                               zorder=1)
                elif kind == "ceiling":
                    ax.plot(rows["log10_budget"], rows["tv"].clip(upper=1.0), color="black", linestyle="-.",
                            linewidth=1.2, label=line, zorder=2)
                elif kind == "trap":
                    ax.errorbar(rows["log10_budget"], rows["tv"], yerr=spread, linestyle="none", color="0.35",
                                marker=TRAP_MARKERS[traps.index(line) % len(TRAP_MARKERS)], markersize=7,
                                capsize=2, label=line, zorder=5)
                else:
                    style = styles[line]
                    transfer = kind == "transfer"
                    ax.errorbar(rows["log10_budget"], rows["tv"], yerr=spread, color=style["color"],
                                linestyle=":" if transfer else style["linestyle"], linewidth=1.0 if transfer else 1.6,
                                marker=style["marker"], markersize=4.5 if transfer else 6.5,
                                markerfacecolor="white" if transfer else style["color"], capsize=2.5, label=line,
                                zorder=3 if transfer else 4)
            tv_panel(ax, panel, r"$\log_{10}$ budget ($\varepsilon_0^2$ Langevin, $\bar\varepsilon^2$ diffusion)")
        return finish_tv_panels(fig, axes)


def perturbation_field(views: list[tuple[str, dict[str, np.ndarray]]]) -> str:
    """Per view: ``log10 ||error||`` as a heat map over the plane of the target's mean, the error's
    direction in that plane as arrows (unit length: the heat map gives the size), the cell's final
    samples (cyan) and the target's samples (black) on top (PNG, base64)."""
    # panels of free aspect: a slice spans the starts and the target, far apart in high dimension
    with _figure(min(4.6 * len(views), 13.8), 4.0) as fig:
        axes = fig.subplots(1, len(views), squeeze=False)[0]
        for ax, (title, view) in zip(axes, views):
            xy, uv, norm = view["field_xy"], view["field_uv"], view["field_norm"]
            n = int(round(np.sqrt(xy.shape[0])))
            a, b = xy[:, 0].reshape(n, n), xy[:, 1].reshape(n, n)
            level = np.log10(np.maximum(norm, 1e-30)).reshape(n, n)
            mesh = ax.pcolormesh(a, b, level, shading="nearest", cmap="magma", zorder=1)
            fig.colorbar(mesh, ax=ax, fraction=0.046, pad=0.03).set_label(r"$\log_{10}\|\hat s - s\|$ at t = 0",
                                                                            fontsize=7)
            length = np.maximum(np.hypot(uv[:, 0], uv[:, 1]), 1e-30)
            ax.quiver(xy[:, 0], xy[:, 1], uv[:, 0] / length, uv[:, 1] / length, color="white", alpha=0.75,
                      scale=n * 1.6, width=0.004, zorder=2)
            ax.scatter(view["plane_ref"][:, 0], view["plane_ref"][:, 1], s=3, color="black", alpha=0.5,
                       label="target", zorder=3)
            ax.scatter(view["plane"][:, 0], view["plane"][:, 1], s=3, color="#00d5ff", edgecolors="none", alpha=0.9,
                       label="samples", zorder=4)
            ax.set_title("\n".join(textwrap.wrap(title, 46)), fontsize=8)
            ax.set_xlabel("along the target's mean", fontsize=8)
            ax.set_ylabel("orthogonal axis", fontsize=8)
        legend_below(fig, axes, columns=2, fontsize=7.5)
        fig.tight_layout()
        return _png(fig)
