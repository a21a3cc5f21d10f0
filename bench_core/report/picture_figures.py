"""Data sets as pictures in ``report.html``: generated images beside their nearest training image, the
data's own images, and samples of a 2-D data set over its points.

Drawn from the cells' views (:mod:`bench_core.cell.sample_views`) with the same off-screen figures as
:mod:`bench_core.report.figures`. Image rows are in the target's preprocessed coordinates; one grey scale
spans all the images of a figure (the 1st to 99th percentile of their values), so that brightness
compares across panels, and dark is high, as digits are drawn.
"""
from __future__ import annotations

import numpy as np

from bench_core.report.figures import LANGEVIN_COLOURS, _figure, _png
from bench_core.report.sample_figures import REFERENCE_COLOUR

TRAIN_COLOUR = "#222222"  # the training rows: what a memorizing sampler copies


def _scale(*stacks: np.ndarray) -> tuple[float, float]:
    values = np.concatenate([s.ravel() for s in stacks if s.size])
    values = values[np.isfinite(values)]
    if not values.size:
        return 0.0, 1.0
    low, high = np.percentile(values, [1, 99])
    return float(low), float(high if high > low else low + 1.0)


def _show(ax, row: np.ndarray, shape: tuple[int, int], scale: tuple[float, float]) -> None:
    ax.imshow(row.reshape(shape), cmap="gray_r", vmin=scale[0], vmax=scale[1], interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def nearest_grid_figure(view: dict[str, np.ndarray], title: str) -> str:
    """Pairs of images: each generated sample, then its nearest distinct training row, with their distance.

    Returns
    -------
    The PNG image, base64-encoded.
    """
    shape = tuple(int(s) for s in view["image_shape"])
    images, nearest, dist = view["images"], view["nearest"], view["nearest_dist"]
    pairs, per_row = len(images), 4
    rows = -(-pairs // per_row)
    scale = _scale(images, nearest)
    with _figure(8.4, 1.25 * rows + 0.5) as fig:
        axes = fig.subplots(rows, 2 * per_row, squeeze=False)
        for i, ax in enumerate(axes.ravel()):
            pair, side = divmod(i, 2)
            if pair >= pairs:
                ax.set_axis_off()
                continue
            _show(ax, (images if side == 0 else nearest)[pair], shape, scale)
            ax.set_title("sample" if side == 0 else f"nearest train\nd = {dist[pair]:.2f}", fontsize=6.5)
        fig.suptitle(title, fontsize=8.5)
        fig.tight_layout()
        return _png(fig)


def data_grid_figure(view: dict[str, np.ndarray], title: str) -> str:
    """Two rows of the data: training rows (what the score was fitted to) and held-out rows.

    Returns
    -------
    The PNG image, base64-encoded.
    """
    shape = tuple(int(s) for s in view["image_shape"])
    sets = [("training", view["train_images"]), ("held-out", view["heldout_images"])]
    columns = max(len(rows) for _, rows in sets)
    scale = _scale(*(rows for _, rows in sets))
    with _figure(8.4, 2.4) as fig:
        axes = fig.subplots(2, columns, squeeze=False)
        for r, (name, rows) in enumerate(sets):
            for c, ax in enumerate(axes[r]):
                if c < len(rows):
                    _show(ax, rows[c], shape, scale)
                else:
                    ax.set_axis_off()
            axes[r][0].set_ylabel(name, fontsize=7)
            axes[r][0].yaxis.set_visible(True)
        fig.suptitle(title, fontsize=8.5)
        fig.tight_layout()
        return _png(fig)


def scatter_figure(view: dict[str, np.ndarray], title: str) -> str:
    """The samples of a 2-D data set over its held-out points (grey) and its training rows (black).

    Returns
    -------
    The PNG image, base64-encoded.
    """
    with _figure(4.6, 4.0) as fig:
        ax = fig.subplots()
        ax.scatter(view["xy_ref"][:, 0], view["xy_ref"][:, 1], s=6, color=REFERENCE_COLOUR, alpha=0.5,
                   linewidths=0, label="data (held out)")
        if view["xy_train"].size:
            ax.scatter(view["xy_train"][:, 0], view["xy_train"][:, 1], s=9, color=TRAIN_COLOUR, marker="x",
                       linewidths=0.8, label="training rows")
        ax.scatter(view["xy"][:, 0], view["xy"][:, 1], s=6, color=LANGEVIN_COLOURS[0], alpha=0.7, linewidths=0,
                   label="samples")
        ax.set_xlabel("x1")
        ax.set_ylabel("x2")
        ax.set_aspect("equal", adjustable="datalim")
        ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.14), ncol=3, frameon=False, fontsize=7)
        ax.set_title(title, fontsize=8.5)
        fig.tight_layout()
        return _png(fig)
