"""The ``local`` executor: cells one after another in this process."""
from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

from bench_core import hookimpl


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


@hookimpl
def register_executors(register):
    register("local", LocalExecutor, description="cells one after another in this process")
