"""Where a run's numbers came from: versions, the code's commit, the command, the machine.

Recorded in ``run.json`` under ``"provenance"`` when a run is exported and shown at the bottom of
``report.html``, so a report read months later says what produced it.
"""
from __future__ import annotations

import importlib.metadata
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

# the packages whose versions change bench's numbers or its report
PACKAGES = ("bench", "torch", "numpy", "pandas", "scipy", "geomloss", "matplotlib", "seaborn", "pluggy", "ray")
_SOURCE = Path(__file__).resolve().parent.parent


def package_versions() -> dict[str, str]:
    """``{package: version}`` for the installed ones among :data:`PACKAGES`."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def git_commit(folder: Path = _SOURCE) -> Optional[str]:
    """The commit bench's source folder is at, ``+dirty`` when it has uncommitted changes; None when the
    code is not a git checkout (an installed wheel) or git is missing."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "") if commit else None


def collect(*, executor: str, workers: int, elapsed_s: Optional[float] = None) -> dict[str, Any]:
    """The provenance record of a run (see the module docstring)."""
    return {"versions": package_versions(), "python": platform.python_version(),
            "platform": platform.platform(terse=True), "machine": platform.machine(),
            "git_commit": git_commit(), "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "executor": executor, "workers": workers, "elapsed_s": elapsed_s}
