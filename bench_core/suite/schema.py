"""Suite files (TOML): parsing and validation before anything runs (docs/architecture.md, Stages).

Every problem is a :class:`SuiteError` whose message starts with ``file:line:`` and names
the table and the fix.
"""
from __future__ import annotations

import datetime
import itertools
import math
import tomllib
from pathlib import Path
from typing import Any, Callable, Optional

from bench_core.base.errors import SuiteError, did_you_mean
from bench_core.components.registry import SINGULAR
from bench_core.suite.parsed import Claim, ComponentSpec, Exclusion, Suite, frozen_items, where_in
from bench_core.suite.source_lines import Locator

COMPONENT_TABLES = ("targets", "scores", "initializers", "samplers", "metrics")
TOP_LEVEL = ("suite", "data", *COMPONENT_TABLES, "exclude", "claims")
DEFAULT_COMPONENTS = {"scores": "exact", "initializers": "standard_normal"}
STATS = ("mean", "min", "max", "median")
OPS = (">=", "<=", ">", "<", "==")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    """A finite int or float (not a bool): NaN and infinities are never a meaningful setting."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _shown(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters: a message stays one readable line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 5] + " ...]" if text[0] == "[" else text[: limit - 3] + "..."


def _is_folder_name(v: str) -> bool:
    """The suite's name becomes reports/<name>/: no separators, no control or bidi characters, no '..'."""
    return (0 < len(v) <= 100 and v not in (".", "..") and v.strip() == v
            and all(c.isalnum() or c in "-_." for c in v) and v.isascii())


MAX_GRID_POINTS = 100_000  # one component's grid; the whole suite's cells are limited in plan.py
MAX_DEPTH = 12  # tables and arrays nested deeper than this are refused (suites need 4)


def _read(path: Path, text: Optional[str]) -> str:
    """The suite's text, refusing files that are not UTF-8 text."""
    if text is not None:
        return text
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SuiteError(f"suite file '{path}' not found; pass the path of a .toml suite "
                         "(e.g. suites/smoke.toml)") from None
    except IsADirectoryError:
        raise SuiteError(f"'{path}' is a folder; pass the path of a .toml suite file") from None
    except OSError as exc:
        raise SuiteError(f"cannot read suite file '{path}': {exc.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SuiteError(f"{path}:{line}: not a UTF-8 TOML file (byte 0x{data[exc.start]:02x} at offset "
                         f"{exc.start}); save it as UTF-8 text") from None


def _check_values(path: Path, node: Any, where: str = "", depth: int = 0) -> None:
    """Refuse what no setting can be: dates and times, and nesting deeper than MAX_DEPTH."""
    stack = [(node, where, depth)]
    while stack:  # iterative: a hostile file must not exhaust the interpreter's stack
        value, key, level = stack.pop()
        if level > MAX_DEPTH:
            raise SuiteError(f"{path}: '{key}' is nested more than {MAX_DEPTH} levels deep; no suite setting is")
        if isinstance(value, (datetime.date, datetime.time)):  # datetime is a date
            raise SuiteError(f"{path}: '{key}' = {value.isoformat()} is a TOML date/time, which no setting "
                             "accepts; write a number, or quote it as a string")
        if isinstance(value, dict):
            stack.extend((v, f"{key}.{k}" if key else str(k), level + 1) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, f"{key}[{i}]", level + 1) for i, v in enumerate(value))


#: ``n_reference`` defaults to ``n_samples`` up to this many (metrics compare against a reference
#: whose Monte Carlo error is already far below theirs; above it the reference only costs memory)
DEFAULT_REFERENCE_CAP = 100_000
# key -> (check, what it must be, default)
SUITE_KEYS: dict[str, tuple[Callable[[Any], bool], str, Any]] = {
    "name": (lambda v: isinstance(v, str) and _is_folder_name(v),
             "a folder name: 1 to 100 letters, digits and - _ . (not \".\" or \"..\")", None),
    "description": (lambda v: isinstance(v, str), "a string", ""),
    "seeds": (lambda v: isinstance(v, list) and len(v) > 0 and all(_is_int(s) and s >= 0 for s in v)
              and len(set(v)) == len(v), "a non-empty list of distinct integers >= 0", [0]),
    "n_samples": (lambda v: _is_int(v) and v >= 2, "an integer >= 2", 1000),
    "n_reference": (lambda v: _is_int(v) and v >= 2, "an integer >= 2", None),
    "device": (lambda v: isinstance(v, str) and (v in ("cpu", "cuda", "auto") or v.startswith("cuda:")),
               "one of \"cpu\", \"cuda\", \"cuda:N\", \"auto\"", "auto"),
    "dtype": (lambda v: v in ("float32", "float64"), "\"float32\" or \"float64\"", "float32"),
    "checkpoints": (lambda v: isinstance(v, list) and all(_is_int(s) and s >= 0 for s in v),
                    "a list of integers >= 0 (steps)", []),
    "checkpoints_t": (lambda v: isinstance(v, list) and all(_is_number(s) and s >= 0 and s == s and s != float("inf")
                                                             for s in v),
                      "a list of finite numbers >= 0 (times: Langevin time k*h, a diffusion's OU time t)", []),
    "rank_by": (lambda v: isinstance(v, str) and v != "", "a metric name", None),
    "rank_at_equal_nfe": (lambda v: isinstance(v, bool), "true or false (rank samplers only against those with "
                          "the same number of score evaluations)", False),
    "cell_timeout": (lambda v: _is_number(v) and v > 0, "a number of seconds > 0 (a cell running longer is "
                     "ended and recorded failed)", None),
    "keep_samples": (lambda v: isinstance(v, bool) or v in ("float32", "float16"),
                     "true, false, \"float32\" or \"float16\" (keep each cell's final samples so that adding a "
                     "metric does not resample; true keeps them in the suite's dtype)", False),
    "leaderboard_metrics": (lambda v: isinstance(v, list) and len(v) > 0 and all(isinstance(m, str) and m for m in v),
                            "a non-empty list of metric names or prefixes (e.g. [\"tv_witness.lower\", "
                            "\"score_error\"])", None),
}
DATA_KEYS: dict[str, tuple[Callable[[Any], bool], str, Any]] = {
    "n_train": (lambda v: _is_int(v) and v >= 1, "an integer >= 1", 1000),
    "duplicate": (lambda v: _is_int(v) and v >= 1, "an integer >= 1", 1),
}
CLAIM_KEYS = ("select", "metric", "stat", "op", "value", "why", "versus", "compare")
COMPARES = ("ratio", "difference")
EXCLUDE_KEYS = ("select", "why")


def _top_where(path: Path, loc: Locator, name: str) -> str:
    """``file:line`` of a top-level name however it is written: ``[name]``, ``[[name]]`` or ``name = ...``."""
    line = loc.table(name) or loc.table(name, 0) or loc.key(name, name)
    return f"{path}:{line}" if line else str(path)


def _section(path: Path, loc: Locator, raw: dict, table: str) -> dict:
    """The ``[table]`` section (empty when absent); a value or an array in its place is refused."""
    section = raw.get(table, {})
    if not isinstance(section, dict):
        raise SuiteError(f"{_top_where(path, loc, table)}: '{table}' must be a [{table}] table of settings, got "
                         f"{_shown(section)}; write [{table}] on its own line with the settings below it")
    return section


def _settings(path: Path, loc: Locator, raw: dict, table: str, schema: dict) -> dict[str, Any]:
    section = _section(path, loc, raw, table)
    out = {}
    for key, value in section.items():
        if key not in schema:
            raise SuiteError(f"{where_in(path, loc, table, None, key)}: unknown key '{key}' in [{table}]"
                             f"{did_you_mean(key, schema)}; allowed: {', '.join(schema)}")
        check, what, _ = schema[key]
        if not check(value):
            raise SuiteError(f"{where_in(path, loc, table, None, key)}: [{table}] {key} must be {what}, "
                             f"got {_shown(value)}")
        out[key] = value
    for key, (_, _, default) in schema.items():
        out.setdefault(key, default)
    return out


def _expand(path: Path, loc: Locator, kind: str, index: int, entry: Any) -> list[ComponentSpec]:
    where = where_in(path, loc, kind, index, None)
    label = f"[[{kind}]] #{index + 1}"
    if not isinstance(entry, dict):
        raise SuiteError(f"{where}: {label} must be a table with keys name, params, grid")
    for key in entry:
        if key not in ("name", "params", "grid"):
            raise SuiteError(f"{where_in(path, loc, kind, index, key)}: unknown key '{key}' in {label}"
                             f"{did_you_mean(key, ('name', 'params', 'grid'))}; allowed: name, params, grid")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise SuiteError(f"{where}: {label} needs name = \"<registered {SINGULAR[kind]}>\"")
    params, grid = entry.get("params", {}), entry.get("grid", {})
    for key, value in (("params", params), ("grid", grid)):
        if not isinstance(value, dict):
            raise SuiteError(f"{where_in(path, loc, kind, index, key)}: {label} '{name}': {key} must be a "
                             f"table such as {key} = {{ x = 1 }}, got {_shown(value)}")
    for axis, values in grid.items():
        if not isinstance(values, list):
            raise SuiteError(f"{where_in(path, loc, kind, index, axis)}: {label} '{name}': grid axis '{axis}' "
                             f"must be a list of values, got {_shown(values)}")
        if not values:
            raise SuiteError(f"{where_in(path, loc, kind, index, axis)}: {label} '{name}': grid axis '{axis}' "
                             "is empty; give it at least one value or remove it")
        if axis in params:
            raise SuiteError(f"{where_in(path, loc, kind, index, axis)}: {label} '{name}': '{axis}' is both "
                             "in params and in grid; keep one")
    axes = list(grid)
    points = math.prod(len(grid[a]) for a in axes)
    if points > MAX_GRID_POINTS:
        raise SuiteError(f"{where}: {label} '{name}': the grid has {points:,} points ("
                         + " x ".join(f"{len(grid[a])} {a}" for a in axes) + f"), above {MAX_GRID_POINTS:,} for one "
                         "component; split it over several suites")
    specs = []
    for point in itertools.product(*(grid[a] for a in axes)):
        merged = {**params, **dict(zip(axes, point))}
        specs.append(ComponentSpec(kind, name, frozen_items(merged), index))
    return specs


def _table_entry(path: Path, loc: Locator, table: str, index: int, entry: Any, allowed: tuple[str, ...],
                 shape: str = "") -> tuple[str, str]:
    """Check that a ``[[table]]`` entry is a table with only ``allowed`` keys; return (where, label)."""
    where = where_in(path, loc, table, index, None)
    label = f"[[{table}]] #{index + 1}"
    if not isinstance(entry, dict):
        raise SuiteError(f"{where}: {label} must be a table{shape}")
    for key in entry:
        if key not in allowed:
            raise SuiteError(f"{where_in(path, loc, table, index, key)}: unknown key '{key}' in {label}"
                             f"{did_you_mean(key, allowed)}; allowed: {', '.join(allowed)}")
    return where, label


def _claim(path: Path, loc: Locator, index: int, entry: Any) -> Claim:
    where, label = _table_entry(path, loc, "claims", index, entry, CLAIM_KEYS)
    for key in ("metric", "op", "value"):
        if key not in entry:
            raise SuiteError(f"{where}: {label} needs '{key}'")
    checks = [("metric", lambda v: isinstance(v, str) and v != "", "a metric name such as \"tv_witness.lower\""),
              ("op", lambda v: v in OPS, f"one of {', '.join(OPS)}"),
              ("value", _is_number, "a number"),
              ("stat", lambda v: v in STATS, f"one of {', '.join(STATS)}"),
              ("select", lambda v: isinstance(v, dict), "a table such as { sampler = \"ula\" }"),
              ("why", lambda v: isinstance(v, str), "a string"),
              ("versus", lambda v: isinstance(v, dict) and len(v) > 0 and "seed" not in v and "step" not in v,
               "a non-empty table of the axes that differ in the configuration compared with, such as "
               "{ initializer = \"fresh\" }"),
              ("compare", lambda v: v in COMPARES, f"one of {', '.join(COMPARES)}")]
    for key, check, what in checks:
        if key in entry and not check(entry[key]):
            raise SuiteError(f"{where_in(path, loc, 'claims', index, key)}: {label} {key} must be {what}, "
                             f"got {_shown(entry[key])}")
    if "compare" in entry and "versus" not in entry:
        raise SuiteError(f"{where_in(path, loc, 'claims', index, 'compare')}: {label} compare needs versus = {{ ... }}, "
                         "the configuration to compare with")
    select = frozen_items(entry.get("select", {}))
    versus = frozen_items(entry.get("versus", {}))
    return Claim(entry["metric"], entry["op"], float(entry["value"]), select,
                 entry.get("stat", "mean"), entry.get("why", ""), index, versus, entry.get("compare", "ratio"))


def _exclusion(path: Path, loc: Locator, index: int, entry: Any) -> Exclusion:
    where, label = _table_entry(path, loc, "exclude", index, entry, EXCLUDE_KEYS,
                                " with select = { ... } and why = \"...\"")
    select = entry.get("select")
    if not isinstance(select, dict) or not select:
        raise SuiteError(f"{where}: {label} needs a non-empty select table such as "
                         "select = { sampler = \"ula\", \"score.schedule\" = \"naive\" }")
    if not isinstance(entry.get("why", ""), str):
        raise SuiteError(f"{where_in(path, loc, 'exclude', index, 'why')}: {label} why must be a string")
    return Exclusion(frozen_items(select), entry.get("why", ""), index)


def parse_suite(path: str | Path, text: Optional[str] = None) -> Suite:
    """Read and check the structure of a suite file (components are not resolved here).

    ``text``, when given, is the suite's content (a worker on another machine gets the text, not the
    file); ``path`` then only names it in messages and anchors relative paths in params.
    """
    path = Path(path)
    text = _read(path, text)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SuiteError(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:
        raise SuiteError(f"{path}: invalid TOML: nested more than {MAX_DEPTH} levels deep") from None
    _check_values(path, raw)
    loc = Locator(text)
    for key in raw:
        if key not in TOP_LEVEL:
            raise SuiteError(f"{where_in(path, loc, key, None, None) if loc.table(key) else path}: unknown "
                             f"table '{key}'{did_you_mean(key, TOP_LEVEL)}; allowed: {', '.join(TOP_LEVEL)}")
    if "name" not in _section(path, loc, raw, "suite"):
        raise SuiteError(f"{path}: missing [suite] name = \"...\" (it names the output folder)")
    settings = _settings(path, loc, raw, "suite", SUITE_KEYS)
    data = _settings(path, loc, raw, "data", DATA_KEYS)
    components: dict[str, list[ComponentSpec]] = {}
    for kind in COMPONENT_TABLES:
        entries = raw.get(kind)
        if entries is None:
            if kind in DEFAULT_COMPONENTS:
                components[kind] = [ComponentSpec(kind, DEFAULT_COMPONENTS[kind], ())]
                continue
            raise SuiteError(f"{path}: no [[{kind}]] table; add at least one, e.g. "
                             f"[[{kind}]] name = \"...\" (see `bench list {kind}`)")
        if not isinstance(entries, list) or not entries:
            raise SuiteError(f"{_top_where(path, loc, kind)}: '{kind}' must be written as one or more "
                             f"[[{kind}]] tables, got {_shown(entries)}")
        specs: list[ComponentSpec] = []
        for index, entry in enumerate(entries):
            specs += _expand(path, loc, kind, index, entry)
        components[kind] = list(dict.fromkeys(specs))
    claims_raw = raw.get("claims", [])
    if not isinstance(claims_raw, list):
        raise SuiteError(f"{_top_where(path, loc, 'claims')}: 'claims' must be written as [[claims]] tables, "
                         f"got {_shown(claims_raw)}")
    claims = [_claim(path, loc, i, entry) for i, entry in enumerate(claims_raw)]
    exclude_raw = raw.get("exclude", [])
    if not isinstance(exclude_raw, list):
        raise SuiteError(f"{_top_where(path, loc, 'exclude')}: 'exclude' must be written as [[exclude]] tables, "
                         f"got {_shown(exclude_raw)}")
    exclusions = [_exclusion(path, loc, i, entry) for i, entry in enumerate(exclude_raw)]
    return Suite(path=path, name=settings["name"], description=settings["description"],
                 seeds=list(settings["seeds"]), n_samples=settings["n_samples"],
                 n_reference=settings["n_reference"] or min(settings["n_samples"], DEFAULT_REFERENCE_CAP),
                 device=settings["device"], dtype=settings["dtype"],
                 checkpoints=sorted(set(settings["checkpoints"])),
                 checkpoints_t=sorted(set(float(t) for t in settings["checkpoints_t"])), n_train=data["n_train"],
                 duplicate=data["duplicate"], rank_by=settings["rank_by"],
                 rank_at_equal_nfe=settings["rank_at_equal_nfe"], components=components,
                 cell_timeout=settings["cell_timeout"],
                 keep_samples=(settings["dtype"] if settings["keep_samples"] is True
                               else settings["keep_samples"] or None),
                 claims=claims, exclusions=exclusions, leaderboard_metrics=settings["leaderboard_metrics"],
                 locator=loc, text=text)
