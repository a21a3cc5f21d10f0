"""The sample views of ``report.html``: where a claimed cell's samples lie against the target.

Drawn from :mod:`bench_core.cell.sample_views` summaries (radial distances and a 2-D projection of the
samples and of as many reference draws) with the same off-screen figures as
:mod:`bench_core.report.figures`.
"""
from __future__ import annotations

import numpy as np

from bench_core.report.figures import LANGEVIN_COLOURS, _figure, _png

REFERENCE_COLOUR = "#949494"  # grey: the target; the samples take the first warm colour of the palette


def sample_view_figure(view: dict[str, np.ndarray], title: str) -> str:
    """Two panels: histograms of ``||x - c||`` (samples against reference) and the samples over the
    reference in the plane of the target's mean direction and an orthogonal axis.

    Returns
    -------
    The PNG image, base64-encoded.
    """
    sample, reference = view["radial"], view["radial_ref"]
    finite = np.concatenate([sample[np.isfinite(sample)], reference[np.isfinite(reference)]])
    bins = np.linspace(float(finite.min()), float(finite.max()), 41) if finite.size else 10
    with _figure(8.4, 2.9) as fig:
        radial, plane = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.25, 1.0]})
        radial.hist(reference, bins=bins, color=REFERENCE_COLOUR, alpha=0.55, label="reference (target)")
        radial.hist(sample, bins=bins, histtype="step", linewidth=1.6, color=LANGEVIN_COLOURS[0], label="samples")
        radial.set_xlabel(r"$\|x - c\|$ (c: the target's mean)")
        radial.set_ylabel(f"count (of {len(sample)})")
        radial.legend(loc="upper left", bbox_to_anchor=(0.0, -0.28), ncol=2, frameon=False, fontsize=7)
        plane.scatter(view["plane_ref"][:, 0], view["plane_ref"][:, 1], s=5, color=REFERENCE_COLOUR, alpha=0.5,
                      linewidths=0)
        plane.scatter(view["plane"][:, 0], view["plane"][:, 1], s=5, color=LANGEVIN_COLOURS[0], alpha=0.6,
                      linewidths=0)
        plane.set_xlabel("along the mean direction u")
        plane.set_ylabel("along v (orthogonal to u)")
        fig.suptitle(title, fontsize=8.5)
        fig.tight_layout()
        return _png(fig)
