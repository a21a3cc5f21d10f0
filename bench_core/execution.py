"""Cell tasks: what executors ship to workers, and the worker-side entry point.

A task names the suite file, the device and the cell key; a worker rebuilds (once) the
same plan from the suite file and runs the cell. Because every random number is derived
from the cell's spec, the numbers do not depend on which worker runs which cell.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from .kept_samples import KeptSamples
from .plan import Plan, build_plan
from .plugin_manager import get_registry
from .runner import CellResult, CellRunner
from .suite import parse_suite


@dataclass(frozen=True)
class CellTask:
    """A picklable reference to one cell of a suite."""

    suite_path: str
    device: str
    key: str
    label: str = ""
    kept: Optional[KeptSamples] = None  # samples of an earlier run: compute the missing metrics only


_RUNNERS: dict[tuple[str, str], tuple[CellRunner, dict]] = {}
# set when cells run in this process: a Progress whose start_cell / on_step this module drives
progress: Optional[Any] = None


def prime(plan: Plan) -> CellRunner:
    """Make ``plan`` the one used for its suite in this process (skips re-validation); returns its runner."""
    runner = CellRunner(plan)
    _RUNNERS[(str(plan.suite.path), plan.device)] = (runner, {c.key: c for c in plan.cells})
    return runner


def run_task(task: CellTask) -> CellResult:
    """Run one cell (in whatever process this is called)."""
    slot = (task.suite_path, task.device)
    if slot not in _RUNNERS:
        prime(build_plan(parse_suite(task.suite_path), get_registry(), device=task.device))
    runner, cells = _RUNNERS[slot]
    cell = cells.get(task.key)
    if cell is None:
        raise RuntimeError(f"cell {task.key[:16]} is not in suite '{task.suite_path}' as seen by this worker "
                           "(the suite file or the code changed during the run)")
    if progress is None:
        return runner.run(cell, kept=task.kept)
    progress.start_cell(cell.label(), None if task.kept else runner.plan.n_steps.get(cell.sampler))
    return runner.run(cell, progress.on_step, kept=task.kept)
