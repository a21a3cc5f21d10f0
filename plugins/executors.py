"""Executors: where cells run. All give identical numbers (cells run single-threaded)."""
from __future__ import annotations

import multiprocessing
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Callable, Iterable, Iterator

from bench_core import hookimpl
from bench_core.errors import ComponentError


class LocalExecutor:
    """Runs cells one after another in this process (progress within cells is shown)."""

    def __init__(self, workers: int = 1) -> None:
        self.workers = 1

    def map(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        for task in tasks:
            try:
                yield task, fn(task)
            except Exception as exc:  # noqa: BLE001 - reported as a failed cell by the caller
                yield task, exc


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


class RayExecutor:
    """Runs cells as Ray tasks (``pip install 'bench[ray]'``); a local Ray is started if none runs."""

    def __init__(self, workers: int = 2) -> None:
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ComponentError("executor 'ray' needs Ray: pip install 'bench[ray]' (or use --executor process)") \
                from None
        self.workers = workers

    def map(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        import ray

        if not ray.is_initialized():
            ray.init(num_cpus=self.workers, include_dashboard=False, log_to_driver=False)
        remote = ray.remote(num_cpus=1)(fn)
        pending = {remote.remote(task): task for task in tasks}
        while pending:
            finished, _ = ray.wait(list(pending), num_returns=1)
            for ref in finished:
                task = pending.pop(ref)
                try:
                    yield task, ray.get(ref)
                except Exception as exc:  # noqa: BLE001
                    yield task, exc


@hookimpl
def register_executors(register):
    register("local", LocalExecutor, description="cells one after another in this process")
    register("process", ProcessExecutor, description="cells in parallel worker processes")
    register("ray", RayExecutor, description="cells as Ray tasks (extra: ray)")
