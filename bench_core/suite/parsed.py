"""A parsed suite as values: component specs, claims, exclusions, the suite, and frozen params.

Everything here is hashable and plain (specs are dict keys of the plan); parsing and validation
live in :mod:`bench_core.suite.schema`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from bench_core.suite.source_lines import Locator


@dataclass(frozen=True)
class ComponentSpec:
    """One expanded component: its registered name, its full params, where it was written."""

    kind: str
    name: str
    params: tuple[tuple[str, Any], ...]
    index: int = -1

    @property
    def kwargs(self) -> dict[str, Any]:
        return {k: thaw(v) for k, v in self.params}

    def key(self) -> dict[str, Any]:
        return {"name": self.name, "params": self.kwargs}

    def label(self) -> str:
        inner = ", ".join(f"{k}={thaw(v)!r}" for k, v in self.params)
        return f"{self.name}({inner})" if inner else self.name


class _FrozenDict(tuple):
    """A table param, frozen as sorted (key, value) pairs so specs stay hashable."""


def freeze(value: Any) -> Any:
    """A TOML or JSON value made hashable: lists become tuples, tables :class:`_FrozenDict` s."""
    if isinstance(value, list):
        return tuple(freeze(v) for v in value)
    if isinstance(value, dict):
        return _FrozenDict(frozen_items(value))
    return value


def frozen_items(table: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """A table's (key, :func:`freeze` d value) pairs in key order: how specs and selects hold params."""
    return tuple(sorted((k, freeze(v)) for k, v in table.items()))


def thaw(value: Any) -> Any:
    """The inverse of :func:`freeze`: tuples back to lists, frozen tables back to dicts."""
    if isinstance(value, _FrozenDict):
        return {k: thaw(v) for k, v in value}
    return [thaw(v) for v in value] if isinstance(value, tuple) else value


def select_options(wanted: Any) -> tuple:
    """The values a (frozen) select entry accepts: a list is any of its entries, a table is one value."""
    return wanted if isinstance(wanted, tuple) and not isinstance(wanted, _FrozenDict) else (wanted,)


@dataclass(frozen=True)
class Claim:
    """An executable expectation, checked after the run."""

    metric: str
    op: str
    value: float
    select: tuple[tuple[str, Any], ...] = ()
    stat: str = "mean"
    why: str = ""
    index: int = -1
    versus: tuple[tuple[str, Any], ...] = ()
    compare: str = "ratio"


@dataclass(frozen=True)
class Exclusion:
    """Cells of the grid that are not run: those matching ``select`` (same syntax as claims)."""

    select: tuple[tuple[str, Any], ...]
    why: str = ""
    index: int = -1


@dataclass
class Suite:
    """A validated suite: settings, expanded components and claims."""

    path: Path
    name: str
    description: str
    seeds: list[int]
    n_samples: int
    n_reference: int
    device: str
    dtype: str
    checkpoints: list[int]
    checkpoints_t: list[float]
    n_train: int
    duplicate: int
    rank_by: Optional[str]
    rank_at_equal_nfe: bool = False
    keep_samples: Optional[str] = None  # storage dtype of kept samples, None: not kept
    cell_timeout: Optional[float] = None  # seconds; None: no limit
    components: dict[str, list[ComponentSpec]] = field(default_factory=dict)
    claims: list[Claim] = field(default_factory=list)
    exclusions: list[Exclusion] = field(default_factory=list)
    leaderboard_metrics: Optional[list[str]] = None
    locator: Optional[Locator] = None
    text: str = ""  # the file's content, as parsed (what executors ship to workers)

    def where(self, table: str, index: Optional[int] = None, key: Optional[str] = None) -> str:
        """``file:line`` of a table (or a key in it), for messages."""
        return where_in(self.path, self.locator, table, index, key)


def where_in(path: Path, locator: Optional[Locator], table: str, index: Optional[int], key: Optional[str]) -> str:
    """``file:line`` of a table or of a key in it; the file alone when the line is unknown."""
    line = None
    if locator is not None:
        line = locator.key(table, key, index) if key else locator.table(table, index)
    return f"{path}:{line}" if line else str(path)
