"""What users get: a cell through ``bench run``, metric costs, the memory of a 1e6-particle cell,
the per-cell overhead of the harness and the speed-up of the process executor."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from bench_core.components.discovery import get_registry
from bench_core.components.protocols import MetricContext, TrainingData
from bench_core.pipeline import run_suite
from bench_plugins.samplers.langevin import ULA
from bench_plugins.scores.exact import ExactScore
from bench_plugins.targets.gaussian import GaussianTarget

from bench_helpers import D, best_seconds, normal_limit, record

ONE_CELL = """
[suite]
name = "one_cell"
seeds = [0]
n_samples = {n}
device = "cpu"

[[targets]]
name = "gaussian"
params = {{ dim = 50, mean = 1.0 }}

[[samplers]]
name = "{sampler}"
params = {{ n_steps = {steps} }}

[[metrics]]
name = "mean_error"
"""

pytestmark = pytest.mark.usefixtures("one_thread")


def test_ula_through_bench_run(tmp_path):
    """The cell's wall_s (initializer, sampler with the per-step divergence check, metric, NFE
    counting) against drawing the same number of normals; divergence is checked after every step."""
    n, steps = 100_000, 200
    path = tmp_path / "one.toml"
    path.write_text(ONE_CELL.format(n=n, sampler="ula", steps=steps))
    run_suite(path, out=tmp_path / "out")  # warm: imports, plan
    walls = []
    for _ in range(5):  # best of 5, as for the limit
        run_suite(path, out=tmp_path / "out", rerun=True)
        walls.append(float(pd.read_csv(tmp_path / "out" / "results.csv")["wall_s"].iloc[0]))
    rate = n * D * steps / min(walls)
    record("ula through bench run (cell wall_s)", n, rate, "coord-steps/s", rate / normal_limit(n),
           "divergence checked every step")


def _context(n_ref: int = 5000) -> MetricContext:
    generator = torch.Generator().manual_seed(0)
    target = GaussianTarget(D, mean=1.0)
    train = target.sample(1000, generator).float()
    data = TrainingData(train, train, 1)
    return MetricContext(target=target, reference=target.sample(n_ref, generator).float(),
                         score=ExactScore(target, data), data=data, sampler=ULA(), generator=generator)


@pytest.mark.parametrize("name", ["mean_error", "gaussian_kl", "score_error", "tv_classifier", "sinkhorn",
                                  "energy", "radius", "nearest_train"])
def test_metric_cost(name):
    n = 5000
    ctx = _context()
    samples = ctx.target.sample(n, torch.Generator().manual_seed(3)).float()
    metric = get_registry().create("metrics", name)
    seconds = best_seconds(lambda: metric(samples, ctx), rounds=3)
    record(f"metric {name}", n, seconds, "s per call")


@pytest.mark.parametrize("sampler, steps", [("ula", 20), ("ddpm", 50), ("ddim", 20)])
def test_peak_memory_of_a_million_particle_cell(tmp_path, sampler, steps):
    """Peak resident memory of a whole ``bench run`` process (imports, plan, cell, store, report)."""
    path = tmp_path / "big.toml"
    path.write_text(ONE_CELL.format(n=1_000_000, sampler=sampler, steps=steps))
    script = ("import resource, subprocess, sys; "
              "r = subprocess.run([sys.executable, '-m', 'bench_core.cli', 'run', sys.argv[1], '--out', sys.argv[2]]); "
              "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")
    done = subprocess.run([sys.executable, "-c", script, str(path), str(tmp_path / "out")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    peak_mib = int(done.stdout.strip().splitlines()[-1]) / 1024
    record(f"peak RSS, {sampler} cell, n = 1e6, d = 50", 1_000_000, peak_mib, "MiB", None,
           "limit 1536 MiB; particles alone 191 MiB")
    assert peak_mib <= 1536


def test_per_cell_overhead(tmp_path):
    """1000 cells of 16 particles in 2-d, one ULA step each: the run's wall time per cell is the
    harness's own cost (plan lookup, data, starts, NFE counting, store write, progress)."""
    from test_scale import TINY  # the 1000-cell suite of tests/test_scale.py

    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    start = time.perf_counter()
    summary = run_suite(path, out=tmp_path / "out")
    total = time.perf_counter() - start
    assert summary.n_run == 1000
    record("harness overhead per cell (local, 1000 tiny cells)", 1000, 1e3 * total / 1000, "ms per cell", None,
           "includes plan, export and report of the whole run")


SPEEDUP_SUITE = Path(__file__).parent / "process_speedup.toml"  # 24 cells, about 30 s under local


def _bench_run(suite: Path | str, out: Path, executor: str) -> float:
    """Seconds of one ``bench run`` process, as a user starts it (imports, plan, cells, export)."""
    extra = ["--executor", "process", "--workers", "2"] if executor == "process" else []
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bench_core.cli", "run", str(suite), "--out", str(out), *extra],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    assert done.returncode in (0, 1), done.stderr[-2000:]  # 1: a claim of the suite does not hold
    return seconds


def _process_speedup(suite: Path | str, tmp_path: Path, rounds: int) -> dict:
    """``bench run`` under ``local``, then under ``process --workers 2``, ``rounds`` times alternately;
    the best wall time of each. ``in_run`` times the part of the run between planning and the export
    (``elapsed_s`` in run.json's provenance): what an executor changes, without the imports and the
    report that every run pays once in the driver. Results must be equal."""
    subprocess.run([sys.executable, "-m", "bench_core.cli", "check", str(suite), "--yes"], capture_output=True)
    load = os.getloadavg()[0]  # a busy machine makes the ratio meaningless: it is recorded with it
    walls: dict[str, list[float]] = {"local": [], "process": []}
    in_run: dict[str, list[float]] = {"local": [], "process": []}
    for round_ in range(rounds):
        for executor in ("local", "process"):
            out = tmp_path / f"{executor}{round_}"
            walls[executor].append(_bench_run(suite, out, executor))
            in_run[executor].append(json.loads((out / "run.json").read_text())["provenance"]["elapsed_s"])
    frames = {e: pd.read_csv(tmp_path / f"{e}0" / "results.csv") for e in ("local", "process")}
    a, b = (frames[e].drop(columns=["wall_s"]) for e in ("local", "process"))
    pd.testing.assert_frame_equal(a, b)
    local, process = min(walls["local"]), min(walls["process"])
    # the cells' own time, summed: two cells running at once on two cores each take longer than one alone
    # (shared caches and memory bandwidth), which bounds the speed-up before any overhead of the harness
    cells = {e: float(f.groupby("cell")["wall_s"].first().sum()) for e, f in frames.items()}
    return {"speedup": local / process, "local_s": local, "process_s": process,
            "cells_local_s": cells["local"], "cells_process_s": cells["process"],
            "ceiling": 2 * cells["local"] / cells["process"],
            "in_run_speedup": min(in_run["local"]) / min(in_run["process"]),
            "in_run_local_s": min(in_run["local"]), "in_run_process_s": min(in_run["process"]),
            "n_cells": int(a["cell"].nunique()), "rounds": rounds, "cpus": os.cpu_count(),
            "load_before": round(load, 2), "load_after": round(os.getloadavg()[0], 2)}


def _record_speedup(what: str, info: dict) -> None:
    record(f"{what}: local / process --workers 2", info["n_cells"], info["speedup"], "x faster", None,
           f"bench run: local {info['local_s']:.1f} s, process {info['process_s']:.1f} s; between plan and "
           f"export {info['in_run_speedup']:.2f}x ({info['in_run_local_s']:.1f} s / {info['in_run_process_s']:.1f} s); "
           f"cells {info['cells_local_s']:.1f} s alone, {info['cells_process_s']:.1f} s two at a time (ceiling "
           f"{info['ceiling']:.2f}x); load {info['load_before']:.1f}")


def test_process_executor_speedup_on_a_short_suite(tmp_path, benchmark):
    """process_speedup.toml (24 cells, about 30 s under local): two workers against one process, where
    the driver's imports and export and the workers' start-up weigh most. Best of two alternating
    rounds; the speed-up is in extra_info["speedup"]."""
    info = benchmark.pedantic(lambda: _process_speedup(SPEEDUP_SUITE, tmp_path, rounds=2), rounds=1, iterations=1)
    benchmark.extra_info.update(info)
    _record_speedup("process_speedup.toml", info)


def test_process_executor_speedup_on_robustness(tmp_path, benchmark):
    """robustness.toml under `local` and under `process --workers 2` on this machine (about 20 minutes)."""
    info = benchmark.pedantic(lambda: _process_speedup("suites/robustness.toml", tmp_path, rounds=1),
                              rounds=1, iterations=1)
    benchmark.extra_info.update(info)
    _record_speedup("robustness.toml", info)
