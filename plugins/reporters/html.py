"""The ``html`` reporter: one self-contained ``report.html`` per run."""
from __future__ import annotations

from pathlib import Path

from bench_core import hookimpl
from bench_core.results.run_results import RunResults


class HTMLReport:
    """``report.html``: one self-contained page (claims, contrast heatmaps and scatter plots,
    leaderboards, trajectories, cells not done); see :mod:`bench_core.report.html_report`."""

    def __call__(self, run: RunResults, out_dir: Path) -> list[Path]:
        from bench_core.report.html_report import write_html  # matplotlib/seaborn load only when a report is written

        return [write_html(run, Path(out_dir) / "report.html")]


@hookimpl
def register_reporters(register):
    register("html", HTMLReport,
             description="report.html: claims, contrast heatmaps and TV-vs-error plots, leaderboards, trajectories")
