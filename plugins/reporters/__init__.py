"""Reporters: files written from a run's results (markdown leaderboard and contrast, ``report.html``)."""
