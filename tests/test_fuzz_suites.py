"""Generated suite files, good and bad: `bench check` accepts them or refuses them in one line.

The suite is modelled as a Python dict (a valid base that uses every key the schema knows), edited,
written out as TOML by a small writer in this file (tomllib only reads) and checked with
`plan_suite`, which may only succeed or raise the project's :class:`BenchError` with a one-line
message, within 5 s of CPU time. Four generators:

- **Single edits, walked exhaustively (1996 suites).** Every place in the schema (each top-level
  table; every key of ``[suite]``, ``[data]``, each component table with its name, params and
  grid; ``[[exclude]]`` and ``[[claims]]`` with their ``select`` and ``versus`` keys; every element
  of every array) is replaced by each of 28 TOML values (strings, integers zero, negative, huge and
  beyond 64 bits, floats, NaN, infinities, booleans, arrays, empty and nested arrays, inline tables,
  arrays of tables, dates and times), removed, and repeated (a repeated key is a TOML error; a
  repeated ``[[...]]`` entry or array element is legal and must be handled); every table also gets
  an unknown key. Each file takes milliseconds, so the single-edit space is walked in full rather
  than sampled: every key meets every kind of value on every run, which random draws would not
  promise, and a failure names its edit without shrinking.
- **Every param of every built-in component (1411 suites):** 16 of those values, and removal, for
  each param of each target, score, initializer, sampler and metric, so each factory's checks are
  met (the base suite reaches only its own components' params).
- **Combined edits, with Hypothesis (600 examples).** Two or three edits in a row (a later edit
  may reach into what an earlier one put in place), values drawn from the same kinds, from
  Hypothesis's integers, floats, text, dates and nested arrays and tables, and from plausible
  names and small numbers that get past parsing; files written with nested tables inline or as
  ``[a.b]`` headers. That space cannot be enumerated; Hypothesis explores it reproducibly
  (derandomized, no example database) and shrinks a failure to the fewest, simplest edits.
- **Byte-level cases, seeded (198 suites).** What is not an edit of the schema: random byte flips,
  text that is not UTF-8, binary files, nesting thousands deep, grids of millions of cells,
  hostile suite names, dropped, repeated or swapped lines, metric names and devices that do not
  exist, initializer params that only the target can refute.

A sample of 62 files goes through the CLI's ``main`` (one line, exit status 0 or 2), and
``python -m bench_core.cli check`` refuses ``suite = true`` and ``suite = 1.5`` (a value in place
of the ``[suite]`` table, once a traceback) with exit status 2, one line and no traceback.
"""
from __future__ import annotations

import copy
import datetime
import math
import random
import re
import subprocess
import time
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench_core.cli import main as cli_main
from bench_core.base.errors import BenchError
from bench_core.components.discovery import get_registry
from bench_core.pipeline import plan_suite
from bench_core.suite.schema import CLAIM_KEYS, DATA_KEYS, EXCLUDE_KEYS, SUITE_KEYS, TOP_LEVEL
from helpers import cli_command

SECONDS = 5.0  # the CPU time `bench check` may spend on any generated file
# wall-clock: CI machines are shared, and another job's load must not fail this test; a check that
# waits instead of working still shows here
WALL_SECONDS = 4 * SECONDS

# A valid suite using every key of the schema, so that walking it reaches every key.
BASE: dict[str, Any] = {
    "suite": {"name": "fuzz", "description": "generated", "seeds": [0, 1], "n_samples": 64, "n_reference": 64,
              "device": "cpu", "dtype": "float32", "checkpoints": [5], "checkpoints_t": [0.02],
              "rank_by": "mean_error", "rank_at_equal_nfe": False, "cell_timeout": 60.0, "keep_samples": False,
              "leaderboard_metrics": ["mean_error"]},
    "data": {"n_train": 20, "duplicate": 2},
    "targets": [{"name": "gaussian", "params": {"dim": 3, "mean": 1.0}}],
    "scores": [{"name": "exact"}],
    "initializers": [{"name": "standard_normal"}],
    "samplers": [{"name": "ula", "params": {"n_steps": 10}, "grid": {"step_size": [0.01, 0.05]}}],
    "metrics": [{"name": "mean_error"}],
    "exclude": [{"select": {"seed": 1, "sampler.step_size": 0.05}, "why": "generated"}],
    "claims": [{"select": {"sampler": "ula", "step": 5}, "metric": "mean_error", "stat": "median", "op": "<=",
                "value": 10.0, "why": "generated", "versus": {"sampler.step_size": 0.05}, "compare": "ratio"}],
}

UTC = datetime.timezone.utc
#: one value of each kind TOML can write, with the sizes and edge values that break arithmetic
KINDS: dict[str, Any] = {
    "string": "x", "empty string": "", "integer": 3, "zero": 0, "negative integer": -1,
    "large integer": 10 ** 12, "2**62": 2 ** 62, "int64 max": 2 ** 63 - 1, "beyond int64": 10 ** 30,
    "float": 2.5, "tiny float": 5e-324, "huge float": 1e308, "nan": math.nan, "inf": math.inf, "-inf": -math.inf,
    "true": True, "false": False, "array": [1, "a"], "empty array": [], "array of strings": ["x", "y"],
    "nested array": [[1, 2], [3]], "inline table": {"a": 1}, "empty table": {}, "array of tables": [{"a": 1}],
    "date": datetime.date(1979, 5, 27), "offset datetime": datetime.datetime(1979, 5, 27, 7, 32, tzinfo=UTC),
    "local datetime": datetime.datetime(1979, 5, 27, 7, 32), "time": datetime.time(7, 32),
}
UNKNOWN_KEY = "unknown_key"


class Repeated:
    """A key written twice (TOML refuses a file that defines a key twice)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"Repeated({self.value!r})"


# -- a small TOML writer: inline values, [tables], [[arrays of tables]], dates and times -------------

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _string(text: str) -> str:
    # control characters as \uXXXX: TOML forbids them raw in basic strings
    body = "".join(f"\\{c}" if c in "\"\\" else f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F else c
                   for c in text)
    return f'"{body}"'


def _inline(value: Any) -> str:
    if isinstance(value, bool):  # before int: bool is an int
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (datetime.date, datetime.time)):  # datetime is a date
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    if isinstance(value, dict):
        pairs = []
        for k, v in value.items():
            pair = f"{_key(k)} = {_inline(v.value if isinstance(v, Repeated) else v)}"
            pairs += [pair] * (2 if isinstance(v, Repeated) else 1)
        return "{ " + ", ".join(pairs) + " }" if pairs else "{}"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and len(value) > 0 and all(isinstance(v, dict) for v in value)


def _body(lines: list[str], table: dict, prefix: list[str], headers: bool) -> None:
    """Write a table's keys; with ``headers``, its sub-tables follow as ``[prefix.key]`` sections."""
    later = []
    for k, v in table.items():
        if headers and isinstance(v, dict):
            later.append((k, v))
        elif isinstance(v, Repeated):
            lines += [f"{_key(k)} = {_inline(v.value)}"] * 2
        else:
            lines.append(f"{_key(k)} = {_inline(v)}")
    for k, v in later:
        lines.append("[" + ".".join(_key(p) for p in [*prefix, k]) + "]")
        _body(lines, v, [*prefix, k], headers)


def to_toml(doc: dict, headers: bool = False) -> str:
    """``doc`` as TOML text: plain keys first, then ``[table]`` and ``[[array]]`` sections."""
    lines: list[str] = []
    sections = []
    for k, v in doc.items():
        if isinstance(v, dict) or _is_table_array(v) or (isinstance(v, Repeated) and isinstance(v.value, dict)):
            sections.append((k, v))
        elif isinstance(v, Repeated):
            lines += [f"{_key(k)} = {_inline(v.value)}"] * 2
        else:
            lines.append(f"{_key(k)} = {_inline(v)}")
    for k, v in sections:
        for table in [v.value, v.value] if isinstance(v, Repeated) else [v] if isinstance(v, dict) else v:
            lines += ["", f"[[{_key(k)}]]" if isinstance(v, list) else f"[{_key(k)}]"]
            _body(lines, table, [k], headers)
    return "\n".join(lines) + "\n"


# -- edits of the dict -------------------------------------------------------------------------------

Where = tuple  # keys (str) and array indices (int) from the document's root


def places(node: Any, prefix: Where = ()) -> Iterator[Where]:
    """Every key of every table and every element of every array, depth first."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        yield (*prefix, k)
        yield from places(v, (*prefix, k))


def tables(node: Any, prefix: Where = ()) -> Iterator[Where]:
    """Every table (the document's root included), where an unknown key can be added."""
    if isinstance(node, dict):
        yield prefix
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        yield from tables(v, (*prefix, k))


def edit(doc: dict, op: str, where: Where, value: Any = None) -> dict:
    """A copy of ``doc`` with one edit at ``where``: replace, remove, repeat or add an unknown key."""
    doc = copy.deepcopy(doc)
    parent = doc
    for step in where[:-1] if op != "unknown" else where:
        parent = parent[step]
    if op == "unknown":
        parent[UNKNOWN_KEY] = 1
        return doc
    last = where[-1]
    if op == "replace":
        parent[last] = value
    elif op == "remove":
        del parent[last]
    elif isinstance(parent, list):  # a repeated array element or [[...]] entry: legal TOML
        parent.insert(last, copy.deepcopy(parent[last]))
    elif not isinstance(parent[last], Repeated):  # written twice already: a third time adds nothing
        parent[last] = Repeated(parent[last])
    return doc


def single_edits() -> Iterator[tuple[str, dict]]:
    """(class, document) for every single edit of BASE."""
    for where in places(BASE):
        for value in KINDS.values():
            yield "wrong type", edit(BASE, "replace", where, value)
        yield "removed", edit(BASE, "remove", where)
        yield "repeated", edit(BASE, "repeat", where)
    for where in tables(BASE):
        yield "unknown key", edit(BASE, "unknown", where)


def check_file(path: Path, text: str | bytes) -> str:
    """Write and check one suite; return "accepted" or "refused", fail on anything else."""
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    start, start_cpu = time.perf_counter(), time.process_time()
    try:
        plan_suite(path)
        outcome = "accepted"
    except BenchError as exc:
        message = str(exc)
        assert message and "\n" not in message, f"multi-line message {message[:300]!r}\n{text[:1500]!r}"
        outcome = "refused"
    except BaseException as exc:  # noqa: BLE001 - the failure this test exists to catch
        pytest.fail(f"{type(exc).__name__}: {str(exc)[:300]}\n--- suite ---\n{text[:1500]!r}")
    cpu, elapsed = time.process_time() - start_cpu, time.perf_counter() - start
    assert cpu < SECONDS and elapsed < WALL_SECONDS, f"took {cpu:.1f} s of CPU, {elapsed:.1f} s\n{text[:1500]!r}"
    return outcome


def _report(title: str, outcome: Counter) -> None:
    classes = sorted({k for k, _ in outcome})
    total = sum(outcome.values())
    accepted = sum(v for (_, r), v in outcome.items() if r == "accepted")
    print(f"\n{title}: {total} suites in {len(classes)} classes, {accepted} accepted, {total - accepted} refused; "
          + ", ".join(f"{k} {outcome[(k, 'accepted')]}/{outcome[(k, 'refused')]}" for k in classes))


@pytest.fixture(scope="module", autouse=True)
def _registry_and_one_thread() -> Iterator[None]:
    get_registry()  # plugin loading is not part of any one file's time
    # components built by the checks are tiny: torch's thread pool only adds waiting on a shared machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_the_base_suite_walks_the_whole_schema(tmp_path):
    """The walk reaches every key only if the base uses every key: a new key must join BASE."""
    assert set(BASE) == set(TOP_LEVEL)
    assert set(BASE["suite"]) == set(SUITE_KEYS)
    assert set(BASE["data"]) == set(DATA_KEYS)
    assert set(BASE["claims"][0]) == set(CLAIM_KEYS)
    assert set(BASE["exclude"][0]) == set(EXCLUDE_KEYS)
    assert all(set(BASE[k][0]) <= {"name", "params", "grid"} for k in ("targets", "samplers"))
    assert {"params", "grid"} <= set(BASE["samplers"][0])
    assert check_file(tmp_path / "base.toml", to_toml(BASE)) == "accepted"
    assert check_file(tmp_path / "base.toml", to_toml(BASE, headers=True)) == "accepted"


def _same(a: Any, b: Any) -> bool:
    """Equality in which NaN equals NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def test_every_single_edit_is_accepted_or_refused_cleanly(tmp_path, capsys):
    outcome: Counter = Counter()
    for i, (kind, doc) in enumerate(single_edits()):
        text = to_toml(doc, headers=i % 2 == 1)
        # tomllib reads back what the edit meant: a refusal is the suite's, not the writer's mistake
        assert kind == "repeated" or _same(tomllib.loads(text), doc), text
        outcome[(kind, check_file(tmp_path / f"edit{i % 8}.toml", text))] += 1
    assert sum(outcome.values()) >= 1900  # 66 places x 30 edits, and an unknown key in each of 16 tables
    with capsys.disabled():
        _report("single edits", outcome)


# Every built-in component with each of its params written out (``network`` needs a module of the
# user's and is left out), so that walking the params reaches every factory's checks.
COMPONENTS: dict[str, list[dict[str, Any]]] = {
    "targets": [{"name": "gaussian", "params": {"dim": 3, "mean": [1.0, 0.0, -1.0], "std": 1.0}},
                {"name": "gmm", "params": {"dim": 3, "weights": [0.5, 0.5], "means": [-3.0, [3.0, 3.0, 3.0]],
                                           "std": [1.0, 0.5]}}],
    "scores": [{"name": "ball_trap", "params": {"radius": 1.0, "center": 0.0, "schedule": "admissible",
                                                "budget": 0.001}},
               {"name": "cone_trap", "params": {"half_angle": 0.3, "axis": [1.0, 0.0, 0.0], "drift": 1.0,
                                                "schedule": "admissible", "budget": 0.001, "n_mc": 256}},
               {"name": "memorized", "params": {"lam": 32.0, "radius": 0.25, "schedule": "admissible",
                                                "budget": 0.001}},
               {"name": "noisy", "params": {"eps": 0.1, "n_features": 8, "bandwidth": 1.0, "seed": 0,
                                            "schedule": "admissible", "budget": 0.001}},
               {"name": "empirical", "params": {"readout": 10}},  # readout and t0 exclude each other
               {"name": "empirical", "params": {"t0": 0.01}},
               {"name": "ddpm_mlp", "params": {"width": 8, "depth": 1, "epochs": 10, "lr": 0.001, "batch": 0,
                                               "levels": 100, "readout": 10, "embed": 4, "train_seed": 0}}],
    "initializers": [{"name": "fresh", "params": {"distinct": 3}}, {"name": "point", "params": {"x": 0.5}},
                     {"name": "train", "params": {"distinct": 3}}],
    "samplers": [{"name": "ula", "params": {"step_size": 0.01, "n_steps": 10}},
                 {"name": "annealed_langevin", "params": {"T": 5.0, "t_min": 0.001, "n_levels": 5,
                                                          "steps_per_level": 2, "step_size": 0.002}},
                 {"name": "cld", "params": {"T": 10.0, "n_steps": 10, "t_min": 0.001, "grid": "geometric"}},
                 {"name": "ddim", "params": {"n_steps": 10, "eta": 0.0, "beta_min": 0.0001, "beta_max": 0.02}},
                 {"name": "ddpm", "params": {"discretization": "ancestral", "n_steps": 30, "beta_min": 0.0001,
                                             "beta_max": 0.02}},  # each discretization with the params it reads
                 {"name": "ddpm", "params": {"discretization": "exponential", "n_steps": 10, "T": 10.0,
                                             "t_min": 0.001, "grid": "uniform"}}],
    "metrics": [{"name": "energy", "params": {"n_mc": 64}},
                {"name": "score_error", "params": {"n_mc": 0, "n_mc_bar": 10, "bar_nodes": 5}},
                {"name": "sinkhorn", "params": {"p": 2, "blur": 0.01, "n_mc": 64, "scaling": 0.9}},
                {"name": "tv_classifier", "params": {"width": 8, "epochs": 2, "lr": 0.01, "n_mc": 64,
                                                     "confidence": 0.95}},
                {"name": "tv_modes", "params": {"confidence": 0.95}},
                {"name": "tv_witness", "params": {"confidence": 0.95, "n_mc": 100, "witness": "ball_trap",
                                                  "witness_params": {"radius": 1.0}}}],
}


def with_component(kind: str, entry: dict[str, Any]) -> dict:
    """BASE with ``entry`` as its only component of ``kind`` (claims and rankings follow a new metric)."""
    doc = copy.deepcopy(BASE)
    doc[kind] = [copy.deepcopy(entry)]
    if kind == "samplers":  # the base's exclusion and claim select the base sampler's grid
        doc["exclude"] = []
        doc["claims"] = [{"select": {"sampler": entry["name"]}, "metric": "mean_error", "op": "<=", "value": 10.0}]
    if kind == "metrics":
        doc["suite"].update(rank_by=entry["name"], leaderboard_metrics=[entry["name"]])
        doc["claims"][0]["metric"] = entry["name"]
    return doc


#: the values a factory's checks meet: one of each kind and the sizes that overflow (dates and times
#: are refused before any factory sees them, by the walk above at every key; arrays and tables of
#: other shapes add nothing a factory tells apart)
PARAM_KINDS = ("string", "empty string", "integer", "zero", "negative integer", "large integer", "int64 max",
               "beyond int64", "float", "tiny float", "nan", "inf", "true", "array", "empty array", "inline table")


def test_every_param_of_every_component_is_accepted_or_refused_cleanly(tmp_path, capsys):
    kinds = {k: KINDS[k] for k in PARAM_KINDS}
    outcome: Counter = Counter()
    for kind, entries in COMPONENTS.items():
        for entry in entries:
            doc = with_component(kind, entry)
            assert check_file(tmp_path / "component.toml", to_toml(doc)) == "accepted", entry["name"]
            for key in entry["params"]:
                for value in kinds.values():
                    suite = edit(doc, "replace", (kind, 0, "params", key), value)
                    outcome[(kind, check_file(tmp_path / "component.toml", to_toml(suite)))] += 1
                outcome[(kind, check_file(tmp_path / "component.toml",
                                          to_toml(edit(doc, "remove", (kind, 0, "params", key)))))] += 1
    assert sum(outcome.values()) >= 1400  # 83 params x 17 edits
    with capsys.disabled():
        _report("component params", outcome)


# -- combined edits (Hypothesis) ---------------------------------------------------------------------

# Values of every kind, and plausible ones (small numbers, names the suite's tables use) so that
# some edited suites get past parsing into the planner's later checks.
_scalars = st.one_of(
    st.sampled_from(list(KINDS.values())),
    st.integers(), st.integers(min_value=-3, max_value=70), st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-2, max_value=100), st.booleans(), st.text(max_size=20),
    st.sampled_from(["cpu", "cuda", "cuda:0", "auto", "float64", "float16", "ula", "gaussian", "gmm", "exact",
                     "standard_normal", "point", "train", "mean_error", "<=", "==", "median", "ratio", "difference",
                     "seed", "step", "sampler", "target", "initializer", "target.dim", "sampler.n_steps", "..",
                     "a/b", "\u202eevil"]),
    st.dates(), st.times(), st.datetimes(timezones=st.sampled_from([None, UTC])),
)
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.sampled_from(["a", "dim", "mean", "n_steps", "step_size", "distinct", "x", "seed", "step",
                                     "sampler", "target", "sampler.step_size"]), inner, max_size=3)), max_leaves=8)


@st.composite
def edited_documents(draw: st.DrawFn) -> tuple[dict, bool, list[tuple]]:
    """(document, nested tables as headers, the edits made: (op, where, value))."""
    doc, edits = copy.deepcopy(BASE), []
    for _ in range(draw(st.integers(min_value=2, max_value=3))):
        op = draw(st.sampled_from(["replace", "replace", "replace", "remove", "repeat", "unknown"]))
        candidates = list(tables(doc) if op == "unknown" else places(doc))
        if not candidates:  # everything removed already
            continue
        where = draw(st.sampled_from(candidates))  # drawn from the edited document: later edits reach new values
        value = draw(_values) if op == "replace" else None
        doc = edit(doc, op, where, value)
        edits.append((op, where, value))  # shown with a failure: the document alone hides what changed
    return doc, draw(st.booleans()), edits


COMBINED = 600  # Hypothesis examples


def test_combined_edits_are_accepted_or_refused_cleanly(tmp_path, capsys):
    outcome: Counter = Counter()

    # no Hypothesis deadline: check_file bounds each file's time, in CPU seconds that a loaded machine
    # does not inflate
    @settings(max_examples=COMBINED, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(edited_documents())
    def check(case: tuple[dict, bool, list[tuple]]) -> None:
        doc, headers, edits = case
        kind = "+".join(sorted(op for op, _, _ in edits))
        outcome[(kind, check_file(tmp_path / "combined.toml", to_toml(doc, headers=headers)))] += 1

    check()
    with capsys.disabled():  # counts include the examples Hypothesis replays while shrinking
        _report("combined edits (Hypothesis)", outcome)


# -- byte-level cases (seeded) -----------------------------------------------------------------------

BASE_TEXT = to_toml(BASE)
NAMES = ["..", ".", "a/b", "\u0000x", "n" * 300, "\u202eevil", "\u0007bell", "/etc", "con", "  ", "\t", "ça"]


def byte_cases(rng: random.Random) -> Iterator[tuple[str, bytes]]:
    """(class, file content) for what is not an edit of the schema."""
    base = BASE_TEXT.encode()
    for _ in range(60):  # random byte flips and truncations
        data = bytearray(base)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        yield "byte flips", bytes(data[: rng.randint(1, len(data))] if rng.random() < 0.2 else data)
    for _ in range(10):  # latin-1 text, binary files
        yield "not utf-8", BASE_TEXT.replace("generated", "généré à " + rng.choice("éèàüß")).encode("latin-1")
        yield "binary", bytes([0x7F, 0x45, 0x4C, 0x46]) + rng.randbytes(rng.randint(0, 400))
    for depth in (10, 50, 200, 1000, 3000):  # deep nesting: arrays, inline tables, dotted headers
        yield "nesting", BASE_TEXT.replace("mean = 1.0", "mean = " + "[" * depth + "1" + "]" * depth).encode()
        yield "nesting", BASE_TEXT.replace("mean = 1.0", "mean = " + "{ a = " * depth + "1" + " }" * depth).encode()
        yield "nesting", (BASE_TEXT + "\n[x" + ".y" * depth + "]\nz = 1\n").encode()
    for name in NAMES:  # hostile suite names
        yield "names", to_toml(edit(BASE, "replace", ("suite", "name"), name)).encode()
    for n_seeds in (10 ** 3, 10 ** 5):  # many seeds, many grid points, a product of millions
        yield "huge grids", to_toml(edit(BASE, "replace", ("suite", "seeds"), list(range(n_seeds)))).encode()
    for n_points in (10 ** 3, 2 * 10 ** 5):
        values = [round(0.001 + i * 1e-7, 7) for i in range(n_points)]
        yield "huge grids", to_toml(edit(BASE, "replace", ("samplers", 0, "grid", "step_size"), values)).encode()
    for side in (50, 1000, 3000):  # 2 500 sampler points, each built and checked; then millions, refused
        axis = list(range(1, side + 1))
        doc = edit(BASE, "remove", ("samplers", 0, "params"))
        yield "huge grids", to_toml(edit(doc, "replace", ("samplers", 0, "grid"),
                                         {"n_steps": axis, "step_size": axis})).encode()
    lines = BASE_TEXT.split("\n")
    for _ in range(60):  # lines dropped, repeated or swapped
        mutated = list(lines)
        for _ in range(rng.randint(1, 3)):
            i, j = rng.randrange(len(mutated)), rng.randrange(len(mutated))
            op = rng.choice(["drop", "dup", "swap"])
            if op == "drop":
                del mutated[i]
            elif op == "dup":
                mutated.insert(j, mutated[i])
            else:
                mutated[i], mutated[j] = mutated[j], mutated[i]
        yield "line edits", "\n".join(mutated).encode()
    for metric in ("nope", "mean_error.nope", "gaussian_kl", ""):  # names of metrics that do not exist
        yield "metric names", to_toml(edit(BASE, "replace", ("suite", "rank_by"), metric)).encode()
        yield "metric names", to_toml(edit(BASE, "replace", ("suite", "leaderboard_metrics"), [metric])).encode()
        yield "metric names", to_toml(edit(BASE, "replace", ("claims", 0, "metric"), metric)).encode()
    for device in ("banana", "cuda:99", "cpu", "auto"):
        yield "devices", to_toml(edit(BASE, "replace", ("suite", "device"), device)).encode()
    for params in ({"x": [1.0]}, {"x": [1.0, 2.0, 3.0, 4.0]}, {"x": [1.0, 2.0, 3.0]}, {"x": "a"}):
        entry = {"name": "point", "params": params}
        yield "params", to_toml(edit(BASE, "replace", ("initializers", 0), entry)).encode()
    for distinct in (5, 20, 21, 10 ** 9):  # components' params that only the target or the data refute
        yield "params", to_toml(edit(BASE, "replace", ("initializers", 0),
                                     {"name": "train", "params": {"distinct": distinct}})).encode()


def test_byte_level_cases_are_accepted_or_refused_cleanly(tmp_path, capsys):
    outcome: Counter = Counter()
    for i, (kind, data) in enumerate(byte_cases(random.Random(20261201))):
        outcome[(kind, check_file(tmp_path / f"case{i % 8}.toml", data))] += 1
    assert sum(outcome.values()) >= 190
    with capsys.disabled():
        _report("byte-level cases", outcome)


# -- through the command line ------------------------------------------------------------------------

def _without_suite_table(value: Any) -> str:
    """A scalar in place of the [suite] table, at the top of an otherwise valid file."""
    return to_toml(edit(BASE, "replace", ("suite",), value))


REGRESSIONS = {"suite = true": _without_suite_table(True), "suite = 1.5": _without_suite_table(1.5)}


def _cli_sample() -> list[tuple[str, bytes]]:
    rng = random.Random(7)
    edits = [(k, to_toml(d).encode()) for k, d in single_edits()]
    raw = list(byte_cases(random.Random(20261201)))
    raw = [c for c in raw if len(c[1]) < 100_000]  # huge grids are slow through any door; in-process above
    return [(k, t.encode()) for k, t in REGRESSIONS.items()] + rng.sample(edits, 40) + rng.sample(raw, 20)


def test_a_sample_through_the_cli_answers_in_one_line(tmp_path, capsys):
    """In-process ``main``: what the command prints and returns for each file."""
    for i, (kind, data) in enumerate(_cli_sample()):
        path = tmp_path / f"cli{i}.toml"
        path.write_bytes(data)
        capsys.readouterr()
        code = cli_main(["check", str(path)])
        out, err = capsys.readouterr()
        said = [ln for ln in (out + err).splitlines() if not ln.startswith("bench: warning:")]
        assert code in (0, 2), (kind, code, out, err)
        assert len(said) == 1, (kind, out, err)
        assert said[0].startswith("bench: error:") == (code == 2), (kind, out, err)


def test_a_scalar_in_place_of_the_suite_table_is_refused_by_the_command(tmp_path):
    """Separate processes, as a user runs it: exit status 2, one line, no traceback."""
    running = []
    for i, (kind, text) in enumerate(REGRESSIONS.items()):  # both at once: each spends seconds importing torch
        path = tmp_path / f"run{i}.toml"
        path.write_text(text, encoding="utf-8")
        running.append((kind, subprocess.Popen(cli_command("check", path),
                                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    for kind, process in running:
        out, err = process.communicate(timeout=120)
        said = [ln for ln in (out + err).splitlines() if not ln.startswith("bench: warning:")]
        assert "Traceback" not in err, (kind, err[-1500:])
        assert process.returncode == 2, (kind, out, err[-1500:])
        assert len(said) == 1 and said[0].startswith("bench: error:"), (kind, out, err)
