"""The figures of the per-suite views of ``report.html`` (:mod:`bench_core.report.suite_views`), as base64 PNG.

Drawn exactly like :mod:`bench_core.report.figures`, whose helpers they reuse: a plain
``matplotlib.figure.Figure`` on its own Agg canvas inside seaborn's style context managers
(nothing goes through pyplot, ``rcParams`` are restored on exit), legends outside the axes so they
never cover data. Colours come from seaborn's ``"colorblind"`` palette (the Okabe-Ito hues, safe
under the common colour-vision deficiencies); every line also gets its own marker, so lines stay
apart in grey-scale print.

Every function takes tidy frames whose ``mean`` and ``ci`` columns the caller computed (the mean over
seeds and the half-width of its 95% interval), so the numbers drawn are those of the view's tables.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import pandas as pd
import seaborn as sns

from bench_core.report.figures import _figure, _legend_outside, _png

PALETTE = "colorblind"  # seaborn's colour-blind-safe palette: every figure of the views uses it
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
# a bar or metric axis turns logarithmic when its positive values span more than this factor
LOG_SPAN = 100.0
HATCHES = ("", "////", "....", "xxxx", "\\\\\\\\", "oo")  # bars: a hatch per start, for grey-scale print
REF_STYLES = ("--", ":", "-.")  # reference lines of the bar panels, told apart in the shared legend


def styles(names: Sequence[str]) -> dict[str, dict]:
    """A colour (``"colorblind"`` palette, cycled) and a marker per name, in order of first appearance."""
    names = list(dict.fromkeys(names))
    colours = sns.color_palette(PALETTE, n_colors=max(len(names), 1))
    return {n: {"color": colours[i % len(colours)], "marker": MARKERS[i % len(MARKERS)]} for i, n in enumerate(names)}


def _plain(text: str) -> str:
    """Data text as literal matplotlib text: a ``$`` in a label would start mathtext (and may fail to parse)."""
    return str(text).replace("$", r"\$")


def _wants_log(values: pd.Series) -> bool:
    positive = values[np.isfinite(values) & (values > 0)]
    return len(positive) > 1 and bool((values > 0).all()) and positive.max() / positive.min() > LOG_SPAN


def band_lines(panels: list[tuple[str, pd.DataFrame]], *, x_label: str, y_label: str, legend_title: str,
               title: str, log_x: bool = False, y_limits: Optional[tuple[float, float]] = None,
               x_ticks: Optional[Sequence[float]] = None, share_y: bool = True) -> str:
    """One subplot per panel, one line per ``line`` with its 95% interval as a band.

    Parameters
    ----------
    panels : ``[(panel title, frame)]``; frame columns ``x``, ``mean``, ``ci`` (the band is mean ± ci; NaN:
        no band at that point, e.g. a single seed) and ``line``.
    x_label, y_label : axis labels, with units.
    legend_title : the legend's title (placed right of the last panel).
    title : the figure title.
    log_x : logarithmic x axis (non-positive x must have been dropped by the caller).
    y_limits : fixed y range (e.g. a TV bound in [0, 1]); bands are clipped to it.
    x_ticks : tick positions (e.g. the dimensions of the grid).
    share_y : one y axis for all panels (titled by the panel names, labelled ``y_label``); False: each
        panel has its own y axis, labelled with the panel's name (panels of different metrics).

    Returns
    -------
    The PNG image, base64-encoded.
    """
    style = styles([name for _, frame in panels for name in frame["line"]])
    n = len(panels)
    with _figure(min(3.6 * n, 11.0) + 2.6, 3.2) as fig:
        axes = np.atleast_1d(fig.subplots(1, n, sharey=share_y, squeeze=False)[0])
        fig.subplots_adjust(wspace=0.12 if share_y else 0.32)
        for ax, (panel, frame) in zip(axes, panels):
            for line, block in frame.groupby("line", sort=False):
                block = block.sort_values("x")
                st = style[line]
                ax.plot(block["x"], block["mean"], label=_plain(line), linewidth=1.6, markersize=4.5, **st)
                mean, ci = block["mean"].to_numpy(float), block["ci"].to_numpy(float)
                lo, hi = mean - ci, mean + ci
                if y_limits is not None:
                    lo, hi = np.clip(lo, *y_limits), np.clip(hi, *y_limits)
                if np.isfinite(lo).any():
                    ax.fill_between(block["x"], lo, hi, color=st["color"], alpha=0.18, linewidth=0)
            if log_x:
                ax.set_xscale("log")
            if x_ticks is not None:
                ax.set_xticks(list(x_ticks))
                ax.set_xticklabels([f"{v:g}" for v in x_ticks])
            if y_limits is not None:
                ax.set_ylim(y_limits[0] - 0.03, y_limits[1] + 0.03)
            ax.set_xlabel(x_label)
            if share_y:
                ax.set_title(_plain(panel), fontsize=8)
            else:
                ax.set_ylabel(_plain(panel), fontsize=8)
        if share_y:
            axes[0].set_ylabel(y_label)
        fig.suptitle(_plain(title), fontsize=9, y=1.03 if share_y and any(p for p, _ in panels) else 0.98)
        axes[-1].legend()
        _legend_outside(axes[-1], legend_title)
        return _png(fig)


def grouped_bars(panels: list[tuple[str, pd.DataFrame, Optional[tuple[float, str]]]], *, group_label: str,
                 legend_title: str, title: str) -> str:
    """Horizontal grouped bars: one subplot per metric, one group per configuration, one bar per start.

    Parameters
    ----------
    panels : ``[(x label with units, frame, reference)]``; frame columns ``group`` (y category),
        ``hue`` (bar within the group), ``mean`` and ``ci`` (95% half-width, NaN: no error bar);
        ``reference`` is ``(value, label)`` drawn as a dashed vertical line, or None.
    group_label : the y axis label (shared).
    legend_title : the legend's title.
    title : the figure title.

    Returns
    -------
    The PNG image, base64-encoded. A metric whose positive means span more than two decades gets a
    logarithmic axis (named in its label).
    """
    groups = list(dict.fromkeys(g for _, frame, _ in panels for g in frame["group"]))
    hues = list(dict.fromkeys(h for _, frame, _ in panels for h in frame["hue"]))
    style = styles(hues)
    width = 0.8 / max(len(hues), 1)
    # each group centres the bars it has (a diffusion sampler has one start, "prior")
    present = {g: {h for _, frame, _ in panels for h in frame["hue"][frame["group"] == g]} for g in groups}
    slot = {}
    for i, group in enumerate(groups):
        have = [h for h in hues if h in present[group]]
        slot.update({(group, h): i + (j - (len(have) - 1) / 2) * width for j, h in enumerate(have)})
    with _figure(2.6 + 3.0 * len(panels), 1.2 + 0.22 * len(groups) * max(len(hues), 1) ** 0.5) as fig:
        axes = np.atleast_1d(fig.subplots(1, len(panels), sharey=True, squeeze=False)[0])
        for k, (ax, (label, frame, reference)) in enumerate(zip(axes, panels)):
            for hue in hues:
                block = frame[frame["hue"] == hue]
                pos = [slot[(g, hue)] for g in block["group"]]
                ci = block["ci"].to_numpy(float)
                ax.barh(pos, block["mean"], height=width, color=style[hue]["color"], label=_plain(hue),
                        edgecolor="white", hatch=HATCHES[hues.index(hue) % len(HATCHES)], linewidth=0,
                        xerr=np.where(np.isfinite(ci), ci, 0.0), error_kw={"elinewidth": 0.8, "capsize": 1.5})
            log = _wants_log(frame["mean"])
            if log:
                ax.set_xscale("log")
            if reference is not None and math.isfinite(reference[0]):
                ax.axvline(reference[0], color="black", linestyle=REF_STYLES[k % len(REF_STYLES)], linewidth=1,
                           label=reference[1])
            ax.set_xlabel(label + (" (log scale)" if log else ""))
            ax.set_yticks(range(len(groups)))
            ax.set_yticklabels([_plain(g) for g in groups], fontsize=7)
            ax.set_ylim(len(groups) - 0.5, -0.5)  # first configuration on top
        axes[0].set_ylabel(group_label)
        fig.suptitle(_plain(title), fontsize=9)
        # one legend for all panels (each panel's reference line has its own name)
        seen = {}
        for ax in axes:
            for h, n in zip(*ax.get_legend_handles_labels()):
                seen.setdefault(n, h)
        axes[-1].legend(list(seen.values()), list(seen.keys()))
        _legend_outside(axes[-1], legend_title)
        return _png(fig)


def loss_curves(frame: pd.DataFrame, *, title: str, marks: Sequence[int] = ()) -> str:
    """Training loss against the epoch, one thin line per network and a rolling mean on top.

    Parameters
    ----------
    frame : columns ``epoch`` (1, 2, ...), ``loss`` and ``network`` (the line's legend entry; several
        networks of one recipe, e.g. one per seed, share a label, hence a colour).
    title : the figure title.
    marks : epochs marked by dotted vertical lines (the snapshots that cells read).

    Returns
    -------
    The PNG image, base64-encoded (log-scale loss axis).
    """
    style = styles(frame["network"])
    with _figure(7.6, 3.2) as fig:
        ax = fig.subplots()
        for (label, _run), block in frame.groupby(["network", "run"], sort=False):
            block = block.sort_values("epoch")
            window = max(1, len(block) // 50)
            smooth = block["loss"].rolling(window, min_periods=1, center=True).mean()
            ax.plot(block["epoch"], block["loss"], color=style[label]["color"], alpha=0.2, linewidth=0.6)
            ax.plot(block["epoch"], smooth, color=style[label]["color"], linewidth=1.4, label=_plain(label))
        for epoch in marks:
            ax.axvline(epoch, color="0.5", linestyle=":", linewidth=0.9)
        ax.set_yscale("log")
        ax.set_xlabel("training epoch (full-batch Adam steps)")
        ax.set_ylabel("DDPM loss: mean squared noise error (log scale)")
        ax.set_title(_plain(title), fontsize=9)
        seen = {}
        for h, n in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(n, h)  # one entry per recipe, whatever the number of seeds
        ax.legend(list(seen.values()), list(seen.keys()))
        _legend_outside(ax, "network (thin: per epoch; thick: rolling mean; dotted: snapshots)")
        return _png(fig)
