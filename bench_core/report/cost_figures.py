"""The quality-cost curve of ``report.html``: a metric against the score evaluations, per score family.

Drawn from :func:`bench_core.findings.quality_cost.quality_cost_points` with the same off-screen figures
and line styles as :mod:`bench_core.report.figures`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns

from bench_core.report.figures import _figure, _png, legend_below, line_styles

PANEL_WIDTH, PANEL_HEIGHT = 3.2, 2.7


def quality_cost_curve(points: pd.DataFrame) -> str:
    """One row of panels per target, one panel per score family: the panel's metric against ``nfe.calls``
    (log x; log y for KL and distances, linear for a TV bound in [0, 1]), one line per sampler (diffusion
    dashed, Langevin solid), the mean over seeds; one legend below all panels.

    Returns
    -------
    The PNG image, base64-encoded.
    """
    targets = list(dict.fromkeys(points["target"]))
    panels = list(dict.fromkeys(points["panel"]))
    styles = line_styles(list(zip(points["line"], points["family"])))
    if len(styles) > 8:  # more lines than the family palettes tell apart: one qualitative colour each
        colours = sns.color_palette("tab20", len(styles))
        for style, colour in zip(styles.values(), colours):
            style["color"] = colour
    width = min(PANEL_WIDTH * len(panels), 16.0)
    with _figure(width, PANEL_HEIGHT * len(targets) + 1.2) as fig:
        axes = fig.subplots(len(targets), len(panels), squeeze=False)
        for r, target in enumerate(targets):
            for c, panel in enumerate(panels):
                ax = axes[r][c]
                block = points[(points["target"] == target) & (points["panel"] == panel)]
                if block.empty:
                    ax.set_axis_off()
                    continue
                for line, rows in block.groupby("line", sort=False):
                    style = styles[line]
                    ax.plot(rows["nfe"], rows["value"], color=style["color"], linestyle=style["linestyle"],
                            marker=style["marker"], markersize=4, linewidth=1.2, label=line)
                ax.set_xscale("log")
                positive = block["value"][block["value"] > 0]
                if bool(block["log_y"].iloc[0]) and len(positive) and positive.max() / positive.min() > 20:
                    ax.set_yscale("log")
                else:
                    ax.set_ylim(-0.05, max(1.05, float(np.nanmax(block["value"])) * 1.05) if not bool(
                        block["log_y"].iloc[0]) else None)
                ax.set_title(f"{panel}\n{target}", fontsize=7.5)
                ax.set_xlabel("score evaluations per particle (nfe.calls)", fontsize=7)
                ax.set_ylabel(str(block["metric"].iloc[0]), fontsize=7)
                ax.tick_params(labelsize=6.5)
        legend_below(fig, axes, columns=5, fontsize=7)
        fig.tight_layout()
        return _png(fig)
