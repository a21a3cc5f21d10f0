"""The ``process`` executor: cells in spawned worker processes (identical numbers: cells run single-threaded).

At most ``workers`` cells are in flight at once, so that a Ctrl-C throws away no queued work and a
dead worker has few suspects. When a worker process dies (killed, out of memory, ``os._exit`` in a
plugin), Python's pool breaks and every cell in flight is lost with it: the pool is replaced, and
each of those cells runs again alone, where a death is its own. A cell is retried once after its
worker died running it alone, and recorded ``failed`` if it dies alone again; the others complete. Workers watch the driver and exit within a second
of its death, so none outlives a killed run.
"""
from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Iterable, Iterator

from bench_core import hookimpl


def _exit_with_parent(parent: int) -> None:
    """Worker initializer: a daemon thread ends this worker once the driver is gone."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="bench-parent-watch").start()


class WorkerDied(RuntimeError):
    """The worker process running a cell died twice (the second time running it alone)."""


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

    def _pool(self, size: int) -> ProcessPoolExecutor:
        context = multiprocessing.get_context("spawn")  # fork after torch init is unsafe
        return ProcessPoolExecutor(max_workers=size, mp_context=context, initializer=_exit_with_parent,
                                   initargs=(os.getpid(),))

    def map(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        queue = deque(tasks)
        suspects: deque = deque()  # in flight when a worker died: each runs again, alone
        deaths: dict[int, int] = {}  # deaths of a task's worker while it ran alone
        pool = self._pool(self.workers)
        pending: dict = {}
        try:
            while queue or suspects or pending:
                solo = bool(suspects)
                while len(pending) < (1 if solo else self.workers) and (suspects if solo else queue):
                    task = (suspects if solo else queue).popleft()
                    pending[pool.submit(fn, task)] = (task, solo)
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                broken = []
                for future in finished:
                    task, alone = pending.pop(future)
                    try:
                        yield task, future.result()
                    except BrokenProcessPool:
                        broken.append((task, alone))
                    except Exception as exc:  # noqa: BLE001 - the cell's own failure: a result
                        yield task, exc
                if broken or any(f.done() and isinstance(f.exception(), BrokenProcessPool) for f in pending):
                    broken += [pending[f] for f in pending]
                    pending.clear()
                    pool.shutdown(wait=False, cancel_futures=True)
                    pool = self._pool(self.workers)
                    for task, alone in broken:
                        deaths[id(task)] = deaths.get(id(task), 0) + alone  # only a death alone is its own
                        if deaths[id(task)] >= 2:
                            yield task, WorkerDied("its worker process died twice while running it alone "
                                                   "(killed, out of memory, or os._exit in a plugin)")
                        else:
                            suspects.append(task)
        finally:
            _stop(pool)


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel what is queued and end the workers now (Ctrl-C, or the run is over)."""
    processes = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5)
        if process.is_alive():
            process.kill()


@hookimpl
def register_executors(register):
    register("process", ProcessExecutor, description="cells in parallel worker processes")
