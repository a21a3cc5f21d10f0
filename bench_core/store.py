"""The results store: SQLite in WAL mode, one transaction per finished cell.

A cell row and its metric rows are committed together, so a crash (even SIGKILL) leaves
either the whole cell or nothing: re-running skips finished cells and duplicates nothing.
"""
from __future__ import annotations

import json
import math
import sqlite3
import time
from pathlib import Path
from typing import Iterable, Optional

import pandas as pd

from .errors import ResultsError
from .plan import AXES, Cell
from .runner import CellResult, MetricRow
from .seeding import canonical_json

SCHEMA = """
CREATE TABLE IF NOT EXISTS cells (
    key TEXT PRIMARY KEY, cell TEXT, target TEXT, score TEXT, initializer TEXT, sampler TEXT,
    seed INTEGER, target_params TEXT, score_params TEXT, initializer_params TEXT, sampler_params TEXT,
    status TEXT, reason TEXT, wall_s REAL, finished_at REAL, sample_key TEXT DEFAULT ''
);
CREATE TABLE IF NOT EXISTS metrics (
    key TEXT, step INTEGER, t REAL, metric TEXT, value REAL, status TEXT, reason TEXT,
    metric_key TEXT DEFAULT '', metric_base TEXT DEFAULT ''
);
CREATE INDEX IF NOT EXISTS metrics_key ON metrics(key);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT);
"""
#: 1: the first release; 2: sample_key, metric_key and metric_base columns (added to older stores)
SCHEMA_VERSION = 2
# columns added after the first release: older stores get them (empty) when opened
_ADDED_COLUMNS = {"cells": ("sample_key",), "metrics": ("metric_key", "metric_base")}
_CELL_COLUMNS = ("key", "cell", "target", "score", "initializer", "sampler", "seed", "target_params", "score_params",
                 "initializer_params", "sampler_params", "status", "reason", "wall_s", "finished_at", "sample_key")
_METRIC_COLUMNS = ("key", "step", "t", "metric", "value", "status", "reason", "metric_key", "metric_base")
# statuses that are final: a re-run skips them (failed cells are retried)
FINAL = ("done", "skipped", "diverged")


class Store:
    """A results.sqlite file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, timeout=30.0)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(SCHEMA)
        self._check_schema()
        for table, columns in _ADDED_COLUMNS.items():
            have = {row[1] for row in self.conn.execute(f"PRAGMA table_info({table})")}
            for column in columns:
                if column not in have:
                    self.conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} TEXT DEFAULT ''")

    def _check_schema(self) -> None:
        """Refuse a store written by a newer bench (unknown layout); stamp older or new ones as ours."""
        row = self.conn.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
        found = json.loads(row[0]) if row else 1
        if found > SCHEMA_VERSION:
            self.conn.close()
            raise ResultsError(f"{self.path} was written by a newer bench (store schema {found}; this bench "
                               f"reads up to {SCHEMA_VERSION}); upgrade bench, or pass another --out")
        with self.conn:
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (json.dumps(SCHEMA_VERSION),))

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def finished_keys(self) -> set[str]:
        """Keys of cells whose outcome is final: a cell with a failed metric is run again (a metric that
        raised, e.g. out of memory, may succeed next time; the others are recomputed identically)."""
        marks = ",".join("?" * len(FINAL))
        final = {k for (k,) in self.conn.execute(f"SELECT key FROM cells WHERE status IN ({marks})", FINAL)}
        failed = {k for (k,) in self.conn.execute("SELECT DISTINCT key FROM metrics WHERE status = 'failed'")}
        return final - failed

    def write(self, cell: Cell, result: CellResult) -> None:
        """Record a cell and its metrics atomically (replacing an earlier attempt)."""
        params = [canonical_json(cell.spec(a).kwargs) for a in AXES]
        names = [cell.spec(a).name for a in AXES]
        with self.conn:
            self.conn.execute("DELETE FROM metrics WHERE key = ?", (cell.key,))
            self.conn.execute(
                f"INSERT OR REPLACE INTO cells ({', '.join(_CELL_COLUMNS)}) VALUES ({','.join('?' * 16)})",
                (cell.key, cell.id, *names, cell.seed, *params, result.status, result.reason,
                 result.wall_s, time.time(), cell.sample_key))
            self.conn.executemany(
                f"INSERT INTO metrics ({', '.join(_METRIC_COLUMNS)}) VALUES ({','.join('?' * 9)})",
                [(cell.key, r.step, r.t, r.metric, r.value, r.status, r.reason, r.metric_key, r.metric_base)
                 for r in result.rows])

    def rows_of_sample(self, sample_key: str) -> Optional[list[MetricRow]]:
        """The rows of the latest ``done`` cell with this sample key (None if there is none)."""
        row = self.conn.execute("SELECT key FROM cells WHERE sample_key = ? AND status = 'done' "
                                "ORDER BY finished_at DESC LIMIT 1", (sample_key,)).fetchone()
        if row is None or not sample_key:
            return None
        query = ("SELECT metric, value, status, reason, step, t, metric_key, metric_base FROM metrics "
                 "WHERE key = ? ORDER BY rowid")
        # SQLite stores NaN as NULL: give the rows back as the runner made them
        return [MetricRow(metric, math.nan if value is None else value, status, reason or "", step, t, key, base)
                for metric, value, status, reason, step, t, key, base in self.conn.execute(query, (row[0],))]

    def set_meta(self, name: str, value: object) -> None:
        with self.conn:
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, json.dumps(value)))

    def get_meta(self, name: str, default: object = None) -> object:
        row = self.conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return default if row is None else json.loads(row[0])

    def frames(self, keys: Optional[Iterable[str]] = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(cells, metrics) tables, restricted to ``keys`` when given."""
        cells = pd.read_sql_query("SELECT * FROM cells", self.conn)
        metrics = pd.read_sql_query("SELECT rowid AS _row, * FROM metrics", self.conn)
        if keys is not None:
            keys = list(keys)
            cells = cells[cells["key"].isin(keys)]
            metrics = metrics[metrics["key"].isin(keys)]
        return cells, metrics
