"""Reporters: files written from a run's results."""
from __future__ import annotations

from pathlib import Path

from bench_core import hookimpl
from bench_core.leaderboard import leaderboard_markdown
from bench_core.results import RunResults


class MarkdownLeaderboard:
    """``leaderboard.md``: per target, configurations ranked by the suite's ranking metric."""

    def __call__(self, run: RunResults, out_dir: Path) -> list[Path]:
        path = Path(out_dir) / "leaderboard.md"
        path.write_text(leaderboard_markdown(run))
        return [path]


@hookimpl
def register_reporters(register):
    register("leaderboard", MarkdownLeaderboard, description="leaderboard.md (mean ± 95% CI over seeds)")
