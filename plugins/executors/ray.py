"""The ``ray`` executor: cells as Ray tasks, on a local Ray or a cluster (optional extra ``bench[ray]``).

Each task carries everything a worker needs (the suite's text, the device, the cell key; see
:mod:`bench_core.run.tasks`), so the nodes of a cluster need the same Python packages as the
driver (bench and the plugins the suite uses) but neither the suite file nor the output folder.
Trained networks travel through Ray's object store: each cache entry a cell loads is packed once
by the driver and installed into a worker's own cache the first time that worker needs it, so it
crosses the network once per node and is unpacked once per worker, never once per cell. Training
sets are not shipped: a worker draws them from the seed (common random numbers), bit-identically.
The driver alone writes the store, as each result arrives. A task whose worker process dies is
retried once by Ray (``max_retries=1``); if it dies again the cell is recorded ``failed`` with
Ray's reason. Ctrl-C cancels the tasks still queued or running.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Iterable, Iterator, Optional

from bench_core import ComponentError, hookimpl, install_entry, pack_entry

#: environment variables a worker must see as the driver does (cache of trained networks, plugin filter,
#: the opt-in to model factories)
FORWARDED_ENV = ("BENCH_CACHE", "BENCH_PLUGINS", "BENCH_PLUGIN_MODULES", "BENCH_ALLOW_MODEL_FACTORIES",
                 "XDG_CACHE_HOME")
INSTALL = "pip install 'bench[ray]' (or pip install -e \".[ray]\" in a checkout)"


class RayExecutor:
    """Runs cells as Ray tasks: on the cluster at ``address``, or on a local Ray started for the run.

    Parameters
    ----------
    workers : int, default 2
        CPUs of the local Ray started when no ``address`` is given (one cell per CPU); ignored when
        joining a cluster, whose size decides.
    address : str, optional
        ``HOST:PORT`` of a running Ray head (``ray start --head``), or ``"auto"`` for the one this
        machine knows about (``bench run --address``).
    """

    ships_artifacts = True  # workers may sit on other machines: the driver sends trained networks

    def __init__(self, workers: int = 2, address: Optional[str] = None) -> None:
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ComponentError(f"executor 'ray' needs Ray: {INSTALL}, or use --executor process") from None
        if workers < 1:
            raise ValueError(f"--workers must be >= 1, got {workers}")
        self.workers, self.address = workers, address

    def _connect(self) -> bool:
        """Connect to (or start) Ray; True when this call did it (so :meth:`map` disconnects after)."""
        import ray

        if ray.is_initialized():
            return False
        env = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                   "runtime_env": {"env_vars": env} if env else None}
        try:
            if self.address:
                ray.init(address=self.address, **options)
            else:  # "local": a new Ray for this run, even if a cluster was started on this machine
                ray.init(address="local", num_cpus=self.workers, **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray"
            raise ComponentError(f"executor 'ray' could not start or join {where}: {str(exc).splitlines()[0]}; "
                                 "check `ray status` (start a head with `ray start --head`)") from None
        return True

    def map(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        import ray

        started = self._connect()
        # max_retries: a task whose worker process dies (OOM kill, lost node) runs once more;
        # an exception raised by the cell itself is a result, never retried
        remote = ray.remote(num_cpus=1, max_retries=1, retry_exceptions=False)(_run_on_worker)
        tasks = list(tasks)
        shared: dict[str, Any] = {}
        for task in tasks:
            for entry in getattr(task, "artifacts", ()):
                if entry not in shared:
                    shared[entry] = ray.put(pack_entry(entry))
        # the references go inside a list, so Ray does not fetch them for every task; a worker
        # fetches each only the first time it needs it
        pending = {remote.remote(fn, task, [(e, shared[e]) for e in getattr(task, "artifacts", ())]): task
                   for task in tasks}
        try:
            while pending:
                finished, _ = ray.wait(list(pending), num_returns=1)
                for ref in finished:
                    task = pending.pop(ref)
                    try:
                        yield task, ray.get(ref)
                    except Exception as exc:  # noqa: BLE001 - the cell is recorded failed with the reason
                        yield task, _unwrap(exc)
        finally:
            for ref in pending:  # interrupted: stop the rest rather than compute results nobody stores
                ray.cancel(ref, force=True)
            if started:
                ray.shutdown()


_INSTALLED: set[str] = set()  # cache entries this worker process has already installed


def _run_on_worker(fn: Callable[[Any], Any], task: Any, shared: list[tuple[str, Any]]) -> Any:
    """Worker side: install the trained networks the cell needs (once per worker), then run it."""
    import ray

    for entry, ref in shared:
        if entry not in _INSTALLED:
            install_entry(entry, ray.get(ref))
            _INSTALLED.add(entry)
    return fn(task)


def _unwrap(exc: BaseException) -> BaseException:
    """The cell's own exception rather than Ray's wrapper around it (one line in the store)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        return cause
    return RuntimeError(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)


@hookimpl
def register_executors(register):
    register("ray", RayExecutor, description="cells as Ray tasks, local or on a cluster (extra: ray)")
