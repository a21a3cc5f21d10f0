"""The ``process`` executor: cells in worker processes (identical numbers: cells run single-threaded).

At most ``workers`` cells are in flight at once, so that a Ctrl-C throws away no queued work and a
dead worker has few suspects. When a worker process dies (killed, out of memory, ``os._exit`` in a
plugin), Python's pool breaks and every cell in flight is lost with it: the pool is replaced, and
each of those cells runs again alone, where a death is its own. A cell is retried once after its
worker died running it alone, and recorded ``failed`` if it dies alone again; the others complete.
Workers watch the driver and exit as soon as it is gone, so none outlives a killed run.

Start-up. Before its first cell a worker needs torch, bench and the plugins imported: about 3 s of
one core, which N spawned workers would each pay. Workers are forked instead from a fork server that
imports them once (``bench_core.acquire_fork_server``): ``bench run`` starts it before the driver
imports torch, and :meth:`ProcessExecutor.start` otherwise, so that it loads while the driver plans;
the same workers then train the networks and run the cells, and a worker that replaces a dead one
is forked in milliseconds. Each worker runs torch on one thread (the workers share the cores, and
every cell runs on one thread anyway) and takes the driver's environment as it is when the pool
starts, not as it was when the fork server started.
"""
from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Iterable, Iterator, Optional

import torch

from bench_core import acquire_fork_server, hookimpl, release_fork_server


def _start_worker(environ: dict[str, str]) -> None:
    """Worker initializer: the driver's environment, one torch thread, exit when the driver is gone."""
    os.environ.clear()  # forked from the fork server: its environment is the driver's at an earlier time
    os.environ.update(environ)
    torch.set_num_threads(1)
    driver = multiprocessing.parent_process()

    def watch() -> None:
        if driver is not None:
            driver.join()  # returns when the driver's end of the start-up pipe closes: it has died
        else:  # not started by multiprocessing: poll the parent
            parent = os.getppid()
            while os.getppid() == parent:
                time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="bench-driver-watch").start()


class WorkerDied(RuntimeError):
    """The worker process running a cell died twice (the second time running it alone)."""


class ProcessExecutor:
    """Runs cells in ``workers`` processes forked from a fork server that has loaded bench and torch.

    :meth:`start` (``bench run`` calls it as the run begins) launches the fork server, so that the
    workers are ready sooner, and keeps the workers from one :meth:`map` to the next (training, then
    the cells) until :meth:`close`. Without :meth:`start`, each :meth:`map` starts and ends its own.

    Parameters
    ----------
    workers : int, default 2
        Worker processes (``bench run --workers``).
    """

    def __init__(self, workers: int = 2) -> None:
        if workers < 1:
            raise ValueError(f"--workers must be >= 1, got {workers}")
        self.workers = workers
        self._pool: Optional[ProcessPoolExecutor] = None
        self._started = False
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        self._context = multiprocessing.get_context(method)  # never fork: fork after torch init is unsafe

    def start(self) -> None:
        """Launch the fork server now; the workers are forked when the first task is submitted."""
        if self._started:
            return
        if self._context.get_start_method() == "forkserver":
            acquire_fork_server()
        self._started = True

    def close(self) -> None:
        """End the workers and release the fork server (idempotent)."""
        self._discard_pool()
        if self._started:
            self._started = False
            if self._context.get_start_method() == "forkserver":
                release_fork_server()

    def __enter__(self) -> "ProcessExecutor":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _new_pool(self) -> ProcessPoolExecutor:
        self._discard_pool()
        self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=self._context,
                                         initializer=_start_worker, initargs=(dict(os.environ),))
        return self._pool

    def _discard_pool(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            _stop(pool)

    def map(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        """Yield ``(task, fn(task))`` as results arrive, or ``(task, exception)`` for a task that raised
        or whose worker died twice running it alone."""
        one_off = not self._started  # not started by the caller: this call starts and ends its workers
        self.start()
        queue = deque(tasks)
        suspects: deque = deque()  # in flight when a worker died: each runs again, alone
        deaths: dict[int, int] = {}  # deaths of a task's worker while it ran alone
        fresh = self._pool is None
        pool = self._pool or self._new_pool()
        pending: dict[Future, tuple[Any, bool]] = {}
        completed = False
        try:
            while queue or suspects or pending:
                solo = bool(suspects)
                while len(pending) < (1 if solo else self.workers) and (suspects if solo else queue):
                    source = suspects if solo else queue
                    task = source.popleft()
                    try:
                        future = pool.submit(fn, task)
                    except BrokenProcessPool:  # a worker died while it ran no cell (idle, or starting)
                        source.appendleft(task)
                        if pending:
                            break  # the cells in flight fail with it: handled below
                        if fresh:
                            raise  # a new pool that breaks before it runs anything cannot run cells
                        pool, fresh = self._new_pool(), True
                        continue
                    pending[future] = (task, solo)
                    fresh = False
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
                    pool, fresh = self._new_pool(), True
                    for task, alone in broken:
                        deaths[id(task)] = deaths.get(id(task), 0) + alone  # only a death alone is its own
                        if deaths[id(task)] >= 2:
                            yield task, WorkerDied("its worker process died twice while running it alone "
                                                   "(killed, out of memory, or os._exit in a plugin)")
                        else:
                            suspects.append(task)
            completed = True
        finally:
            if not completed:
                self._discard_pool()  # Ctrl-C, an error, or the caller stopped reading: end the cells in flight now
            if one_off:
                self.close()


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel what is queued and end the workers now (Ctrl-C, or the run is over)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
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
