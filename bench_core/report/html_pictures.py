"""The report's pictures of data-set targets: per target, its training and held-out images once, then
per configuration (first seed) the generated images beside their nearest training image; for a 2-D data
set, the samples over the data."""
from __future__ import annotations

from bench_core.findings.labels import component_label, config_label
from bench_core.report import picture_figures
from bench_core.report.html_parts import escape as _e, figure as _figure
from bench_core.results.run_results import RunResults

MAX_PICTURES = 30  # configurations drawn per target
PICTURE_KEYS = ("images", "xy")  # a view with one of these is drawn here, not with the claimed cells' views


def pictured(view: dict) -> bool:
    """Whether a cell's view holds pictures (an image or 2-D data set) rather than a trap's summaries."""
    return any(key in view for key in PICTURE_KEYS)


def pictures_section(run: RunResults) -> str:
    """The section's HTML ("" when no cell has pictures)."""
    cells = run.results.drop_duplicates("cell").set_index("cell")
    keys = [k for k in cells.index if k in run.views and pictured(run.views[k])]
    if not keys:
        return ""
    parts = ['<p class="note">First seed of each configuration. Images: each generated sample (one per start '
             "group) and, right of it, the training row nearest to it in the target's coordinates with their "
             "distance d: a sampler that copies its training data shows pairs that match with d near 0. "
             "Points: samples (colour) over held-out data (grey) and the training rows (black crosses).</p>"]
    for (target, tparams), block in cells.loc[keys].groupby(["target", "target_params"], sort=False):
        title = component_label(target, tparams)
        parts.append(f"<h3>{_e(title)}</h3>")
        first = run.views[block.index[0]]
        if "images" in first and "train_images" in first:
            parts.append(_figure(picture_figures.data_grid_figure(first, f"{title}: training and held-out rows "
                                                                         "(first seed)"),
                                 f"{title}: training and held-out images"))
        for key, row in list(block.iterrows())[:MAX_PICTURES]:
            view, label = run.views[key], config_label(row)
            if "images" in view and "nearest" in view:
                parts.append(_figure(picture_figures.nearest_grid_figure(view, label),
                                     f"{label}: generated images and their nearest training images"))
            elif "xy" in view:
                parts.append(_figure(picture_figures.scatter_figure(view, label), f"{label}: samples over the data"))
    return "".join(parts)
