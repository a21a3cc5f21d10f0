"""Reporters: files written from a run's results."""
from __future__ import annotations

from pathlib import Path

from bench_core import hookimpl
from bench_core.contrast import contrast_markdown
from bench_core.leaderboard import leaderboard_markdown
from bench_core.results import RunResults


class MarkdownLeaderboard:
    """``leaderboard.md``: per target, configurations ranked by the suite's ranking metric."""

    def __call__(self, run: RunResults, out_dir: Path) -> list[Path]:
        path = Path(out_dir) / "leaderboard.md"
        path.write_text(leaderboard_markdown(run))
        return [path]


class MarkdownContrast:
    """``contrast.md``: samplers × score families, TV next to eps_0 and eps_bar, and fragility
    (written when some target has at least two score families)."""

    def __call__(self, run: RunResults, out_dir: Path) -> list[Path]:
        text = contrast_markdown(run)
        if not text:
            return []
        path = Path(out_dir) / "contrast.md"
        path.write_text(text)
        return [path]


class HTMLReport:
    """``report.html``: one self-contained page (claims, contrast heatmaps and scatter plots,
    leaderboards, trajectories, cells not done); see :mod:`bench_core.html_report`."""

    def __call__(self, run: RunResults, out_dir: Path) -> list[Path]:
        from bench_core.html_report import write_html  # matplotlib/seaborn load only when a report is written

        return [write_html(run, Path(out_dir) / "report.html")]


@hookimpl
def register_reporters(register):
    register("leaderboard", MarkdownLeaderboard, description="leaderboard.md (mean ± 95% CI over seeds)")
    register("contrast", MarkdownContrast,
             description="contrast.md: samplers x score families, TV lower bound, eps_0, eps_bar, fragility")
    register("html", HTMLReport,
             description="report.html: claims, contrast heatmaps and TV-vs-error plots, leaderboards, trajectories")
