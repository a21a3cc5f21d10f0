"""The results store: SQLite in WAL mode, one transaction per finished cell.

A cell row and its metric rows are committed together, so a crash (even SIGKILL) leaves
either the whole cell or nothing: re-running skips finished cells and duplicates nothing.

A full disk fails one transaction, which SQLite rolls back: the store keeps every finished cell
and the run resumes once space is freed (:class:`~bench_core.base.errors.DiskFullError`). A damaged
file (truncated, overwritten, not a database) is refused when opened, before anything is written
to it, with a one-line :class:`~bench_core.base.errors.ResultsError`; the file is left as it is.
"""
from __future__ import annotations

import contextlib
import json
import math
import sqlite3
import time
from pathlib import Path
from typing import Iterable, Iterator, Optional

import pandas as pd

from bench_core.base.errors import BenchError, ResultsError, disk_full
from bench_core.plan.cells import AXES, Cell
from bench_core.cell.runner import CellResult, MetricRow
from bench_core.base.seeding import canonical_json

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


# SQLite's primary result codes (``sqlite3.SQLITE_*`` exist from Python 3.11 only)
_SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_NOTADB = 10, 11, 13, 26
# a sibling export that only a store with finished cells produces: beside it, an empty store was truncated
_EXPORT = "results.csv"


def _sqlite_cause(exc: BaseException) -> Optional[sqlite3.Error]:
    """The ``sqlite3`` error behind ``exc`` (pandas wraps the ones its queries raise), or None."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, sqlite3.Error):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _kind(error: sqlite3.Error) -> Optional[str]:
    """``"notadb"``, ``"corrupt"``, ``"full"``, ``"ioerr"`` or None, from the result code where Python
    gives it (3.11+) and else from SQLite's fixed message texts."""
    code = getattr(error, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(error).lower()
    if primary == _SQLITE_NOTADB or "file is not a database" in text:
        return "notadb"
    if primary == _SQLITE_CORRUPT or "malformed" in text:
        return "corrupt"
    if primary == _SQLITE_FULL or "database or disk is full" in text:
        return "full"
    if primary == _SQLITE_IOERR or "disk i/o error" in text:
        return "ioerr"
    return None


def damaged(path: Path, what: str) -> ResultsError:
    """The one-line error for a store file that SQLite cannot read."""
    return ResultsError(f"{path.name} in {path.parent} is damaged ({what}): move it away (or use a new --out) "
                        "and rerun; the CSV exports from its last good run are untouched")


class Store:
    """A results.sqlite file.

    Raises
    ------
    ResultsError
        When the file is damaged (checked on opening: SQLite's ``quick_check``, one read of the file).
    DiskFullError
        When a write finds the disk full (the failed transaction is rolled back; finished cells stay).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # a zero-length file is how SQLite starts a new database, so only an export beside it (written
        # after cells were stored) tells a truncated store from one whose first run died at once
        if self.path.is_file() and self.path.stat().st_size == 0 and (self.path.parent / _EXPORT).exists():
            raise damaged(self.path, f"empty, though {_EXPORT} beside it holds results")
        existing = self.path.is_file() and self.path.stat().st_size > 0
        self.conn = sqlite3.connect(self.path, timeout=30.0)
        try:
            with self._translated():
                if existing:
                    # before any write: a write into a damaged file (even the schema stamp below) would
                    # spread the damage when SQLite checkpoints it into the file
                    problems = [row[0] for row in self.conn.execute("PRAGMA quick_check(1)")]
                    if problems != ["ok"]:
                        raise damaged(self.path, "malformed")
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute("PRAGMA synchronous=NORMAL")
                self.conn.executescript(SCHEMA)
                self._check_schema()
                for table, columns in _ADDED_COLUMNS.items():
                    have = {row[1] for row in self.conn.execute(f"PRAGMA table_info({table})")}
                    for column in columns:
                        if column not in have:
                            self.conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} TEXT DEFAULT ''")
        except BaseException:
            self.conn.close()
            raise

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        """Turn SQLite's damaged-file and full-disk errors into one-line :class:`BenchError` s."""
        try:
            yield
        except BenchError:
            raise
        except Exception as exc:
            cause = _sqlite_cause(exc)
            kind = _kind(cause) if cause is not None else None
            if kind is None:
                raise
            if kind == "notadb":
                raise damaged(self.path, "not a SQLite database") from exc
            if kind == "corrupt":
                raise damaged(self.path, "malformed") from exc
            if kind == "full":
                raise disk_full(self.path, str(cause)) from exc
            # an I/O error writing the journal is how some file systems report a full disk
            raise ResultsError(f"cannot use {self.path}: {cause}; if its disk is full, free space on that disk and "
                               "run the same command again: finished cells are kept") from exc

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
        with self._translated():
            final = {k for (k,) in self.conn.execute(f"SELECT key FROM cells WHERE status IN ({marks})", FINAL)}
            failed = {k for (k,) in self.conn.execute("SELECT DISTINCT key FROM metrics WHERE status = 'failed'")}
        return final - failed

    def write(self, cell: Cell, result: CellResult) -> None:
        """Record a cell and its metrics atomically (replacing an earlier attempt)."""
        params = [canonical_json(cell.spec(a).kwargs) for a in AXES]
        names = [cell.spec(a).name for a in AXES]
        with self._translated(), self.conn:
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
        with self._translated():
            return self._rows_of_sample(sample_key)

    def _rows_of_sample(self, sample_key: str) -> Optional[list[MetricRow]]:
        row = self.conn.execute("SELECT key FROM cells WHERE sample_key = ? AND status = 'done' "
                                "ORDER BY finished_at DESC LIMIT 1", (sample_key,)).fetchone()
        if row is None or not sample_key:
            return None
        query = ("SELECT metric, value, status, reason, step, t, metric_key, metric_base FROM metrics "
                 "WHERE key = ? ORDER BY rowid")
        # SQLite stores NaN as NULL: give the rows back as the runner made them
        return [MetricRow(metric, math.nan if value is None else value, status, reason or "", step, t, key, base)
                for metric, value, status, reason, step, t, key, base in self.conn.execute(query, (row[0],))]

    def frames(self, keys: Optional[Iterable[str]] = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(cells, metrics) tables, restricted to ``keys`` when given."""
        with self._translated():
            cells = pd.read_sql_query("SELECT * FROM cells", self.conn)
            metrics = pd.read_sql_query("SELECT rowid AS _row, * FROM metrics", self.conn)
        if keys is not None:
            keys = list(keys)
            cells = cells[cells["key"].isin(keys)]
            metrics = metrics[metrics["key"].isin(keys)]
        return cells, metrics
