"""Markdown reporters: ``leaderboard.md`` and ``contrast.md`` written from a run's results."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bench_core import hookimpl, write_text_atomic

if TYPE_CHECKING:
    from bench_core import RunResults


class MarkdownLeaderboard:
    """``leaderboard.md``: per target, configurations ranked by the suite's ranking metric."""

    def __call__(self, run: RunResults, out_dir: Path) -> list[Path]:
        from bench_core import leaderboard_markdown  # pandas loads only when a report is written

        path = Path(out_dir) / "leaderboard.md"
        write_text_atomic(path, leaderboard_markdown(run))
        return [path]


class MarkdownContrast:
    """``contrast.md``: samplers × score families, TV next to eps_0 and eps_bar, and fragility
    (written when some target has at least two score families)."""

    def __call__(self, run: RunResults, out_dir: Path) -> list[Path]:
        from bench_core import contrast_markdown  # pandas loads only when a report is written

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
