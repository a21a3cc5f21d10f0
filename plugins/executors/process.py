"""The ``process`` executor: cells in spawned worker processes (identical numbers: cells run single-threaded)."""
from __future__ import annotations

import multiprocessing
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Callable, Iterable, Iterator

from bench_core import hookimpl


class ProcessExecutor:
    """Runs cells in ``workers`` spawned processes; each worker loads plugins once.

    Parameters
    ----------
    workers : int, default 2
        Worker processes (``bench run --workers``).
    """

    def __init__(self, workers: int = 2) -> None:
        if workers < 1:
            raise ValueError(f"--workers must be >= 1, got {workers}")
        self.workers = workers

    def map(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        tasks = list(tasks)
        context = multiprocessing.get_context("spawn")  # fork after torch init is unsafe
        with ProcessPoolExecutor(max_workers=self.workers, mp_context=context) as pool:
            pending = {pool.submit(fn, task): task for task in tasks}
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    task = pending.pop(future)
                    try:
                        yield task, future.result()
                    except Exception as exc:  # noqa: BLE001 - a crashed worker fails its cell only
                        yield task, exc


@hookimpl
def register_executors(register):
    register("process", ProcessExecutor, description="cells in parallel worker processes")
