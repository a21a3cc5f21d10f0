"""Benchmarks (pytest-benchmark), run on demand, never in the default test run:

    python -m pytest tests/benchmarks -o addopts=""

Each benchmark adds rows to one table, printed at the end and written to
``reports/benchmarks/benchmarks.md`` (with the date, the machine and torch's version). Rates are
coordinate-steps per second (particles x dimensions x steps / seconds, best of the rounds);
``ratio`` compares a rate with this machine's limit for a stochastic step measured in the same
run: drawing as many standard normals into a preallocated buffer with torch, one thread (each
coordinate-step of a stochastic sampler needs one normal).
"""
from __future__ import annotations

import datetime
import os
import platform
import time
from pathlib import Path

import torch

D = 50
ROWS: list[dict] = []
OUT = Path(os.environ.get("BENCH_BENCHMARK_OUT", "reports/benchmarks"))


def best_seconds(fn, rounds: int = 5) -> float:
    """The fastest of ``rounds`` timed calls of ``fn`` (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


_LIMITS: dict[int, float] = {}


def normal_limit(n: int, d: int = D) -> float:
    """Standard normals per second drawn by torch into a preallocated [n, d] float32 buffer."""
    if n not in _LIMITS:
        torch.set_num_threads(1)
        buffer = torch.empty(n, d)
        generator = torch.Generator().manual_seed(0)
        reps = max(1, 2_000_000 // n)

        def draw() -> None:
            for _ in range(reps):
                buffer.normal_(generator=generator)

        _LIMITS[n] = n * d * reps / best_seconds(draw)
        record("limit: torch normal_ into a buffer", n, _LIMITS[n], "coord-steps/s", 1.0)
    return _LIMITS[n]


def record(what: str, n: int, value: float, unit: str, ratio: float | None = None, note: str = "") -> None:
    ROWS.append({"what": what, "n": n, "value": value, "unit": unit, "ratio": ratio, "note": note})


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.3e}"


def table() -> str:
    lines = ["| what | n | value | unit | ratio to limit | note |", "|---|---|---|---|---|---|"]
    for row in ROWS:
        ratio = "" if row["ratio"] is None else f"{row['ratio']:.2f}"
        lines.append(f"| {row['what']} | {row['n']:g} | {_fmt(row['value'])} | {row['unit']} | {ratio} | {row['note']} |")
    return "\n".join(lines)


def write_table() -> str:
    """The table with its header line, also written to ``OUT/benchmarks.md``."""
    header = (f"bench benchmarks, {datetime.date.today().isoformat()}, {platform.machine()}, "
              f"{os.cpu_count()} CPUs, torch {torch.__version__}, one torch thread, d = {D}, float32")
    text = f"{header}\n\n{table()}\n"
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "benchmarks.md").write_text(text)
    return text
