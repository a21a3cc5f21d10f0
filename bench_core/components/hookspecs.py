"""Hook specifications: one ``register_<kind>`` hook per component kind.

Each hook receives ``register(name, factory, *, description="")``.
"""
from __future__ import annotations

from typing import Callable

import pluggy

PROJECT = "bench"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Register = Callable[..., None]


@hookspec
def register_targets(register: Register) -> None:
    """Register target distributions: ``factory(**params) -> Target``."""


@hookspec
def register_scores(register: Register) -> None:
    """Register score estimates: ``factory(target, data, **params) -> ScoreEstimate``."""


@hookspec
def register_initializers(register: Register) -> None:
    """Register initializers: ``factory(**params) -> Initializer``."""


@hookspec
def register_samplers(register: Register) -> None:
    """Register samplers: ``factory(**params) -> Sampler``."""


@hookspec
def register_metrics(register: Register) -> None:
    """Register metrics: ``factory(**params) -> Metric``."""


@hookspec
def register_executors(register: Register) -> None:
    """Register executors that run cells: ``factory(workers) -> Executor``."""


@hookspec
def register_reporters(register: Register) -> None:
    """Register reporters that write files from results: ``factory() -> Reporter``."""


# kind name (as in suites and `bench list`) -> hook name
KINDS: dict[str, str] = {
    "targets": "register_targets",
    "scores": "register_scores",
    "initializers": "register_initializers",
    "samplers": "register_samplers",
    "metrics": "register_metrics",
    "executors": "register_executors",
    "reporters": "register_reporters",
}
