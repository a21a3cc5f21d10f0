"""Helpers the tests share: ``bench`` in a child process, and suite fragments that several suites use.

Importable from any test module as ``helpers`` (pytest puts ``tests/`` on ``sys.path``).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

TESTS = Path(__file__).resolve().parent
#: the test-only plugins (toy components, reference formulas): importable in a child through PYTHONPATH
TEST_PLUGINS = TESTS / "plugins"


def plugins_env(**extra: str) -> dict[str, str]:
    """This process's environment with ``tests/plugins`` first on PYTHONPATH, then ``extra``."""
    path = os.pathsep.join([str(TEST_PLUGINS), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, **extra}


def cli_command(*args: Any) -> list[str]:
    """``python -m bench_core.cli ARGS``: the ``bench`` command as a child process runs it."""
    return [sys.executable, "-m", "bench_core.cli", *(str(a) for a in args)]


def run_cli(*args: Any, env: Optional[dict[str, str]] = None, timeout: Optional[float] = None,
            **popen: Any) -> subprocess.CompletedProcess:
    """Run ``bench ARGS`` in a child process and wait for it: text stdout and stderr captured; ``env``
    defaults to :func:`plugins_env`; other keywords go to :func:`subprocess.run` (``cwd``, ...)."""
    return subprocess.run(cli_command(*args), capture_output=True, text=True,
                          env=plugins_env() if env is None else env, timeout=timeout, **popen)


# ---------------------------------------------------------------- suite fragments

#: the exact score next to the ball trap of Theorem 1 (on a target whose mean lies outside the ball)
EXACT_AND_BALL_TRAP = """
[[scores]]
name = "exact"

[[scores]]
name = "ball_trap"
"""

#: the certified TV lower bound on the ball's witness set, and the score errors eps_0^2 and eps_bar^2
BALL_TRAP_METRICS = """
[[metrics]]
name = "tv_witness"
params = { witness = "ball_trap" }

[[metrics]]
name = "score_error"
"""
