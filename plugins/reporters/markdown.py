"""Markdown reporters: ``leaderboard.md`` and ``contrast.md`` written from a run's results."""
from __future__ import annotations

from pathlib import Path

from bench_core import hookimpl
from bench_core.base.atomic_files import write_text_atomic
from bench_core.findings.contrast import contrast_markdown
from bench_core.findings.leaderboard import leaderboard_markdown
from bench_core.results.run_results import RunResults


class MarkdownLeaderboard:
    """``leaderboard.md``: per target, configurations ranked by the suite's ranking metric."""

    def __call__(self, run: RunResults, out_dir: Path) -> list[Path]:
        path = Path(out_dir) / "leaderboard.md"
        write_text_atomic(path, leaderboard_markdown(run))
        return [path]


class MarkdownContrast:
    """``contrast.md``: samplers × score families, TV next to eps_0 and eps_bar, and fragility
    (written when some target has at least two score families)."""

    def __call__(self, run: RunResults, out_dir: Path) -> list[Path]:
        text = contrast_markdown(run)
        if not text:
            return []
        path = Path(out_dir) / "contrast.md"
        write_text_atomic(path, text)
        return [path]


@hookimpl
def register_reporters(register):
    register("leaderboard", MarkdownLeaderboard, description="leaderboard.md (mean ± 95% CI over seeds)")
    register("contrast", MarkdownContrast,
             description="contrast.md: samplers x score families, TV lower bound, eps_0, eps_bar, fragility")
