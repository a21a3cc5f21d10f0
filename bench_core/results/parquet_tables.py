"""``results.parquet``: the rows of ``results.csv`` as a typed table that pandas, DuckDB or Arrow read.

The same rows and columns as ``results.csv`` (the component params stay in their canonical-JSON
columns, so the table round-trips to the CSV's frame), typed: ``seed`` int64, ``value`` and ``wall_s``
float64 (full precision, where the CSV keeps 10 significant digits), ``status`` a category. Then one
column per component param, named as a select names it (``sampler.step_size``, ``target.dim``): numbers
as int64 or float64, text as string, booleans as bool, null where a row's component has no such param;
a param whose values are lists or tables, or mix kinds, is its canonical JSON text. The README's
"results.parquet" lists the columns.

pyarrow is optional (``pip install 'bench[parquet]'``): without it a run writes ``results.csv`` as
before and says in one line that ``results.parquet`` was not written.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pandas as pd

from bench_core.base.atomic_files import write_atomic
from bench_core.base.errors import ResultsError
from bench_core.plan.cells import AXES

PARQUET_NAME = "results.parquet"
#: key-value metadata of the file: the layout's version, raised when a column changes meaning
SCHEMA_KEY, SCHEMA_VERSION = b"bench.results_schema", b"1"
INSTALL = "pip install 'bench[parquet]'"
_TEXT = ("cell", *AXES, *(f"{axis}_params" for axis in AXES), "metric", "reason")


def parquet_available() -> bool:
    """Whether pyarrow, which reads and writes parquet, is installed."""
    return importlib.util.find_spec("pyarrow") is not None


def _param_column(values: list[Any]) -> pd.Series:
    """One param's values (None where a row's component lacks it) as a typed column."""
    present = [v for v in values if v is not None]
    kinds = {type(v) for v in present}
    if kinds == {bool}:
        return pd.Series(values, dtype="boolean")
    if kinds == {int}:
        return pd.Series(values, dtype="Int64")
    if kinds and kinds <= {int, float}:
        return pd.Series([float("nan") if v is None else float(v) for v in values], dtype="float64")
    if kinds == {str}:
        return pd.Series(values, dtype="string")
    # lists, tables, or a param that is a number in one component and text in another: its JSON text
    return pd.Series([None if v is None else json.dumps(v, sort_keys=True, separators=(",", ":")) for v in values],
                     dtype="string")


def param_columns(results: pd.DataFrame) -> dict[str, pd.Series]:
    """``{"<axis>.<param>": typed column}`` for every param of every component in ``results``."""
    columns: dict[str, pd.Series] = {}
    for axis in AXES:
        parsed = {text: json.loads(text) if text else {} for text in results[f"{axis}_params"].unique()}
        keys = sorted({k for params in parsed.values() for k in params})
        rows = [parsed[text] for text in results[f"{axis}_params"]]
        for key in keys:
            column = _param_column([params.get(key) for params in rows])
            columns[f"{axis}.{key}"] = column.set_axis(results.index)
    return columns


def typed_table(results: pd.DataFrame) -> pd.DataFrame:
    """The tidy results (:func:`bench_core.results.run_results.tidy_tables`) as ``results.parquet``
    holds them: typed, one column per param appended."""
    frame = results.astype({**dict.fromkeys([c for c in _TEXT if c in results], "string"), "seed": "int64",
                            "value": "float64", "wall_s": "float64", "status": "category"})
    return pd.concat([frame, pd.DataFrame(param_columns(results), index=results.index)], axis=1)


def write_parquet(path: Path, results: pd.DataFrame) -> Path:
    """Write ``results.parquet`` atomically (pyarrow must be installed: see :func:`parquet_available`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(typed_table(results), preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), SCHEMA_KEY: SCHEMA_VERSION})
    return write_atomic(path, lambda tmp: pq.write_table(table, tmp))


def read_parquet(path: Path, columns: list[str]) -> pd.DataFrame:
    """The ``columns`` of ``results.csv`` from a ``results.parquet``, with the dtypes the CSV is read with.

    Raises
    ------
    ResultsError
        pyarrow is missing, or the file is not a results table bench wrote (damaged, truncated, another
        file, a column missing).
    """
    if not parquet_available():
        raise ResultsError(f"'{path}' needs pyarrow to be read: {INSTALL}")
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow's errors (ArrowInvalid, OSError) all mean "not a readable parquet"
        raise ResultsError(f"'{path}' is damaged or not a parquet file ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''}); run `bench run SUITE --out "
                           f"{path.parent}` again to rewrite it (finished cells are kept)") from None
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise ResultsError(f"'{path}' lacks the column(s) {', '.join(missing)}: it was not written by `bench run`")
    frame = table.select(columns).to_pandas()
    text = [c for c in _TEXT if c in frame]
    frame[text] = frame[text].fillna("")  # the CSV reads an empty text as "", not as missing
    return frame.astype({**dict.fromkeys(text + ["status"], "str"), "seed": "int64", "value": "float64",
                         "wall_s": "float64"})
