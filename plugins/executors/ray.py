"""The ``ray`` executor: cells as Ray tasks (optional extra ``bench[ray]``)."""
from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

from bench_core import hookimpl
from bench_core.errors import ComponentError


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
    register("ray", RayExecutor, description="cells as Ray tasks (extra: ray)")
