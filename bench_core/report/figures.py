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
from typing import Iterator, Optional

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


def tv_heatmap(matrix: pd.DataFrame, title: str, notes: Optional[pd.DataFrame] = None) -> str:
    """Heatmap of TV lower bounds, rows samplers and columns score families, cells annotated.

    Parameters
    ----------
    matrix : TV lower bounds in [0, 1]; NaN where the combination was not run (left blank).
    title : the figure title.
    notes : the text of each cell (same shape; may hold several lines, e.g. TV ± interval and the
        score errors); default the TV value alone.

    Returns
    -------
    The PNG image, base64-encoded.
    """
    rows, cols = matrix.shape
    values = matrix.to_numpy(dtype=float)
    if notes is None:
        labels = np.vectorize(_short, otypes=[str])(values) if values.size else values
        width, height, size = 1.05, 0.36, 7
    else:
        labels = notes.to_numpy(dtype=object)
        lines = max((str(t).count("\n") + 1 for t in labels.ravel()), default=1)
        width, height, size = 1.6, 0.22 + 0.21 * lines, 7.5
    with _figure(2.8 + width * cols, 1.4 + height * rows) as fig:
        ax = fig.subplots()
        sns.heatmap(matrix.astype(float), ax=ax, vmin=0.0, vmax=1.0, cmap="rocket_r", mask=np.isnan(values),
                    annot=labels, fmt="", annot_kws={"fontsize": size}, linewidths=0.5, linecolor="white",
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


# Colour-blind-safe line colours (seaborn's "colorblind" palette, after Okabe & Ito): the Langevin
# family takes the warm hues and solid lines with circles, the diffusion family the cool hues and
# dashed lines with squares, so the two families stay apart in grey-scale and under any colour
# vision deficiency.
# (the palette's yellow and pink are left out: too light on white)
LANGEVIN_COLOURS = ("#d55e00", "#de8f05", "#cc78bc", "#ca9161")
DIFFUSION_COLOURS = ("#0173b2", "#029e73", "#56b4e9", "#949494")
# markers differ within a family too: diffusion lines often coincide at TV 0, and each must stay visible
LANGEVIN_MARKERS = ("o", "^", "v", "<")
DIFFUSION_MARKERS = ("s", "D", "P", "X")


def line_styles(lines: list[tuple[str, str]]) -> dict[str, dict]:
    """Matplotlib style per line from ``[(line, kind)]``: colour by family (cycled), marker, dashes."""
    styles: dict[str, dict] = {}
    counts = {"langevin": 0, "diffusion": 0}
    for line, kind in lines:
        if line in styles:
            continue
        langevin = kind == "langevin"
        palette, markers = (LANGEVIN_COLOURS, LANGEVIN_MARKERS) if langevin else (DIFFUSION_COLOURS, DIFFUSION_MARKERS)
        i = counts.get(kind, 0)
        counts[kind] = i + 1
        styles[line] = {"color": palette[i % len(palette)], "marker": markers[i % len(markers)],
                        "linestyle": "-" if langevin else "--"}
    return styles


def fragility_curve(points: pd.DataFrame, faded: Optional[pd.DataFrame] = None) -> str:
    """The headline: certified TV lower bound against log10 eps_0^2, one panel per trap family.

    Parameters
    ----------
    points : :func:`bench_core.findings.fragility.fragility_points` (not empty).
    faded : the points of an earlier run, drawn beneath in the same styles, faded and without legend
        entries (``bench report NEW --against BASE``).

    Returns
    -------
    The PNG image, base64-encoded. Lines are samplers (Langevin warm and solid, diffusion cool and
    dashed), error bars the 95% intervals over seeds; hollow markers are points whose x is the
    closed-form upper bound on eps_0^2 (Monte Carlo gave 0). The x axis runs from large error
    (left) to small (right), the direction "arbitrarily small error" points; one legend below all
    panels, so no data is covered.
    """
    layers = [(faded, 0.3), (points, 1.0)] if faded is not None and not faded.empty else [(points, 1.0)]
    every = pd.concat([layer for layer, _ in layers], ignore_index=True)
    panels = list(dict.fromkeys(every["panel"]))
    styles = line_styles(list(zip(every["line"], every["kind"])))
    with _figure(min(4.6 * len(panels), 13.0), 3.1) as fig:
        axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)[0]
        for ax, panel in zip(axes, panels):
            for layer, alpha in layers:
                _fragility_lines(ax, layer[layer["panel"] == panel], styles, alpha)
            tv_panel(ax, panel, r"$\log_{10}\,\varepsilon_0^2$ (score_error.log10, mean over seeds; hollow: bound)")
        return finish_tv_panels(fig, axes)


def tv_error_bars(rows: pd.DataFrame) -> np.ndarray:
    """``[below, above]`` error bars of TV bounds ``rows["tv"]`` ± ``rows["ci95"]``, clipped to [0, 1]
    (a TV bound lies there)."""
    return np.clip([np.minimum(rows["ci95"], rows["tv"]), np.minimum(rows["ci95"], 1.0 - rows["tv"])], 0.0, None)


def tv_panel(ax, title: str, xlabel: str) -> None:
    """A panel of TV lower bounds against a log10 error: large error left, the error shrinking to the right."""
    ax.invert_xaxis()
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)


def finish_tv_panels(fig: Figure, axes) -> str:
    """The shared y label, one legend below the panels, and the PNG (base64)."""
    axes[0].set_ylabel("certified TV lower bound\n(mean, 95% interval over seeds)", fontsize=8)
    legend_below(fig, axes, columns=3, fontsize=7.5)
    fig.tight_layout()
    return _png(fig)


def _fragility_lines(ax, block: pd.DataFrame, styles: dict[str, dict], alpha: float) -> None:
    """One panel's lines with their 95% bars; a faded layer (``alpha`` < 1) gets no legend entries."""
    for line, rows in block.groupby("line", sort=False):
        rows = rows.sort_values("log10_eps", ascending=False)
        style = styles[line]
        ax.errorbar(rows["log10_eps"], rows["tv"], yerr=tv_error_bars(rows), color=style["color"],
                    linestyle=style["linestyle"], linewidth=1.4, capsize=2.5, alpha=alpha,
                    label=line if alpha == 1.0 else "_nolegend_", zorder=3)
        for bound in (False, True):
            part = rows[rows["is_bound"] == bound]
            # later lines drawn smaller: coinciding points stay visible as nested markers
            size = 7.0 - 1.2 * list(styles).index(line) % 4
            ax.plot(part["log10_eps"], part["tv"], linestyle="none", marker=style["marker"], markersize=size,
                    color=style["color"], markerfacecolor="white" if bound else style["color"], alpha=alpha, zorder=4)


def legend_below(fig: Figure, axes, *, columns: int, fontsize: float) -> None:
    """One legend below all panels, one entry per line whichever panels it appears in: no data covered."""
    seen: dict = {}
    for ax in np.ravel(axes):
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    fig.legend(list(seen.values()), list(seen.keys()), loc="upper center", bbox_to_anchor=(0.5, 0.0),
               ncol=min(columns, len(seen)), frameon=False, fontsize=fontsize)
