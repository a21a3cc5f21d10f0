"""Cell tasks: what executors ship to workers, and the worker-side entry point.

A task carries the suite's text (not only its path: a worker on another machine has no copy of
the suite file, and an edit to the file during a run must not change the plan), the device and
the cell key; a worker rebuilds the same plan (once per suite text) and runs the cell. Because
every random number is derived from the cell's spec, the numbers do not depend on which worker
runs which cell. Workers never see the output folder: the driver alone writes the store.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator, Optional

from bench_core.cell.kept_samples import KeptSamples
from bench_core.plan.build import build_plan
from bench_core.plan.cells import Plan
from bench_core.components.discovery import get_registry
from bench_core.cell.runner import CellResult, CellRunner
from bench_core.suite.schema import parse_suite


@dataclass(frozen=True)
class CellTask:
    """A picklable reference to one cell of a suite."""

    suite_path: str
    device: str
    key: str
    label: str = ""
    suite_text: str = ""  # the suite as planned by the driver; the path only anchors relative params
    kept: Optional[KeptSamples] = None  # samples of an earlier run: compute the missing metrics only
    artifacts: tuple[str, ...] = ()  # cache entries (trained networks) the cell loads, for remote workers


_RUNNERS: dict[tuple[str, str, str], tuple[CellRunner, dict]] = {}
# set when cells run in this process: a Progress whose start_cell / on_step this module drives
progress: Optional[Any] = None


@contextlib.contextmanager
def running(executor: Any) -> Iterator[Any]:
    """Start ``executor``'s workers now, if it can (``start()``), and end them when the block ends,
    however it ends (``close()``): workers that take long to start then start while the driver
    trains and loads, and one set of them serves every ``map`` of the run."""
    start = getattr(executor, "start", None)
    if callable(start):
        start()
    try:
        yield executor
    finally:
        close = getattr(executor, "close", None)
        if callable(close):
            close()


def prime(plan: Plan) -> CellRunner:
    """Make ``plan`` the one used for its suite in this process (skips re-validation); returns its runner."""
    runner = CellRunner(plan)
    _RUNNERS[(str(plan.suite.path), plan.device, plan.suite.text)] = (runner, {c.key: c for c in plan.cells})
    return runner


def run_task(task: CellTask) -> CellResult:
    """Run one cell (in whatever process this is called)."""
    slot = (task.suite_path, task.device, task.suite_text)
    if slot not in _RUNNERS:
        suite = parse_suite(task.suite_path, task.suite_text or None)
        prime(build_plan(suite, get_registry(), device=task.device, allow_large=True))  # the driver asked
    runner, cells = _RUNNERS[slot]
    cell = cells.get(task.key)
    if cell is None:
        raise RuntimeError(f"cell {task.key[:16]} is not in suite '{task.suite_path}' as planned on this worker: "
                           "its code differs from the driver's (install the same bench and plugins on every node)")
    if progress is None:
        return runner.run(cell, kept=task.kept)
    progress.start_cell(cell.label(), None if task.kept else runner.plan.n_steps.get(cell.sampler))
    return runner.run(cell, progress.on_step, kept=task.kept)
