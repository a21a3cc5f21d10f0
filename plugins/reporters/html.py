"""The ``html`` reporter: one self-contained ``report.html`` per run."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bench_core import hookimpl

if TYPE_CHECKING:
    from bench_core import RunResults


class HTMLReport:
    """``report.html``: one self-contained page (claims, contrast heatmaps and scatter plots,
    leaderboards, trajectories, cells not done); see :func:`bench_core.write_html`."""

    def __call__(self, run: RunResults, out_dir: Path) -> list[Path]:
        from bench_core import write_html  # pandas and matplotlib/seaborn load only when a report is written

        return [write_html(run, Path(out_dir) / "report.html")]


@hookimpl
def register_reporters(register):
    register("html", HTMLReport,
             description="report.html: claims, contrast heatmaps and TV-vs-error plots, leaderboards, trajectories")
