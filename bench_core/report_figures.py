"""The figures of ``report.html``, rendered off-screen to base64 PNG strings.

Figures are plain ``matplotlib.figure.Figure`` objects drawn by the Agg canvas, never pyplot
figures: nothing is registered with pyplot's figure manager and the process-wide backend is left
alone (no ``matplotlib.use``), so building a report from a notebook or a GUI session changes
nothing there and cannot leak open figures. Each function releases its figure before returning.
Seaborn styles are applied through its context managers, which restore ``rcParams`` on exit.
"""
from __future__ import annotations

import base64
import io
import math
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 90
# A trajectory's x axis turns logarithmic when its positive steps span more than this factor.
LOG_SPAN = 100.0


@contextmanager
def _figure(width: float, height: float) -> Iterator[Figure]:
    """A styled figure on its own Agg canvas (the style must be active while it is drawn)."""
    with sns.axes_style("whitegrid"), sns.plotting_context("paper", font_scale=0.95):
        fig = Figure(figsize=(width, height), dpi=DPI)
        FigureCanvasAgg(fig)
        try:
            yield fig
        finally:
            fig.clear()


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _legend_outside(ax, title: str) -> None:
    if ax.get_legend() is not None:
        sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, title=title, fontsize=7,
                        title_fontsize=8)


def _short(value: float) -> str:
    """A heatmap annotation: three significant digits, never rounding a 0.998 bound up to 1."""
    return "" if math.isnan(value) else "0" if value == 0 else f"{value:.3g}"


def tv_heatmap(matrix: pd.DataFrame, title: str) -> str:
    """Heatmap of TV lower bounds, rows samplers and columns score families, cells annotated.

    Parameters
    ----------
    matrix : TV lower bounds in [0, 1]; NaN where the combination was not run (left blank).
    title : the figure title.

    Returns
    -------
    The PNG image, base64-encoded.
    """
    rows, cols = matrix.shape
    values = matrix.to_numpy(dtype=float)
    labels = np.vectorize(_short, otypes=[str])(values) if values.size else values
    with _figure(2.6 + 1.05 * cols, 1.3 + 0.36 * rows) as fig:
        ax = fig.subplots()
        sns.heatmap(matrix.astype(float), ax=ax, vmin=0.0, vmax=1.0, cmap="rocket_r", mask=np.isnan(values),
                    annot=labels, fmt="", annot_kws={"fontsize": 7}, linewidths=0.5, linecolor="white",
                    cbar_kws={"label": "TV lower bound", "shrink": 0.8})
        ax.grid(False)  # the style's grid would show through the blank (not run) cells
        ax.set_xlabel("score family (TV bound used)")
        ax.set_ylabel("sampler")
        ax.set_title(title, fontsize=9)
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
        ax.tick_params(axis="y", labelrotation=0, labelsize=7)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
        return _png(fig)


def tv_scatter(points: pd.DataFrame, title: str) -> str:
    """TV lower bound against the diffusion-relevant score error, one point per configuration.

    Parameters
    ----------
    points : columns ``sampler`` (hue), ``family`` (marker style), ``eps_bar`` (mean
        ``score_error.bar_sq``, >= 0) and ``tv`` (mean TV lower bound), no NaN.
    title : the figure title.

    Returns
    -------
    The PNG image, base64-encoded. A zero error has no place on a log axis: it is drawn at a
    floor one decade below the smallest positive error, marked by a dotted line and named in
    the axis label.
    """
    positive = points["eps_bar"][points["eps_bar"] > 0]
    floor = 10.0 ** (math.floor(math.log10(positive.min())) - 1) if len(positive) else 1e-6
    frame = points.assign(x=points["eps_bar"].where(points["eps_bar"] > 0, floor))
    with _figure(7.2, 3.6) as fig:
        ax = fig.subplots()
        sns.scatterplot(data=frame, x="x", y="tv", hue="sampler", style="family", ax=ax, s=46, alpha=0.85)
        ax.set_xscale("log")
        if (points["eps_bar"] == 0).any():
            ax.axvline(floor, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel(rf"$\bar\varepsilon^2$ = score_error.bar_sq (log scale; 0 drawn at {floor:.0e}, dotted)")
        ax.set_ylabel("TV lower bound")
        ax.set_ylim(-0.04, 1.04)
        ax.set_title(title, fontsize=9)
        _legend_outside(ax, "")
        return _png(fig)


def trajectory_plot(frame: pd.DataFrame, metric: str, title: str, x: str = "step") -> str:
    """A metric against the sampler step (or time ``t``), one line per configuration, the seed range
    as a band.

    Parameters
    ----------
    frame : columns ``x`` (``step`` or ``t``), ``value`` and ``config``; one row per (configuration,
        seed, checkpoint).
    metric : the metric's name (y label).
    title : the figure title.
    x : ``"step"``, or ``"t"`` for suites with time checkpoints (samplers with different step sizes
        line up in time).

    Returns
    -------
    The PNG image, base64-encoded. An x range spanning more than two decades gets a symmetric-log
    x axis, linear below the first positive value so that 0 stays visible.
    """
    positive = frame[x][frame[x] > 0]
    with _figure(7.2, 3.2) as fig:
        ax = fig.subplots()
        # errorbar ("pi", 100): the band runs from the smallest to the largest seed (no bootstrap)
        sns.lineplot(data=frame, x=x, y="value", hue="config", errorbar=("pi", 100), marker="o",
                     markersize=4, ax=ax)
        if len(positive) and positive.max() / positive.min() > LOG_SPAN:
            ax.set_xscale("symlog", linthresh=float(positive.min()))
            ax.set_xlim(left=float(frame[x].min()))  # the margin would reach into negative values
        ax.set_xlabel("step" if x == "step" else "time t")
        ax.set_ylabel(metric)
        ax.set_title(title, fontsize=9)
        _legend_outside(ax, "score / initializer / sampler (band: min-max over seeds)")
        return _png(fig)
