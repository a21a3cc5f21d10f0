"""Training before the cells: every network a run needs is trained once, on the run's executor.

A score estimate that must be trained is built by a class with a ``training_job()`` method (other
factories are not called here), which returns a picklable job with
``key`` (the trained artifact, whatever snapshot), ``label``, ``snapshots``, ``missing()`` (the
snapshots not yet in the cache), ``merged(other)`` (the union of two jobs' snapshots) and ``run()``
(train what is missing, under the cache entry's lock). Before any cell runs, the driver collects the
jobs of every (target, score, seed) the cells use, merges jobs with the same key (a grid over
``epochs`` becomes one training run with snapshots), and sends the missing ones to the executor:
different networks train in parallel, and no two workers ever train the same network. Cells then
load the finished weights. The entry lock makes the same hold across concurrent runs.
"""
from __future__ import annotations

import csv
import io
import os
import re
import sys
from pathlib import Path
from typing import Any, Iterable, Optional, TextIO

from bench_core.base.atomic_files import write_text_atomic
from bench_core.base.errors import BenchError, DiskFullError
from bench_core.base.seeding import canonical_json
from bench_core.plan.cells import Cell
from bench_core.cell.runner import CellRunner, numeric_context
from bench_core.suite.paths import suite_directory


def collect_jobs(runner: CellRunner, cells: Iterable[Cell],
                 owners: Optional[dict[Any, str]] = None) -> list[Any]:
    """The merged training jobs of the score estimates that ``cells`` use (first-seen order); fills
    ``owners`` (when given) with ``(target, score, seed) -> job key``."""
    jobs: dict[str, Any] = {}
    seen = set()
    with numeric_context(runner.dtype), suite_directory(runner.suite.path):
        for cell in cells:
            ident = (cell.target, cell.score, cell.seed)
            if ident in seen:
                continue
            seen.add(ident)
            if not hasattr(runner.registry.get("scores", cell.score.name).factory, "training_job"):
                continue  # not trainable: building it here (cutoffs, weights) would only cost time
            make_job = getattr(runner.score(cell.target, cell.score, cell.seed), "training_job", None)
            job = make_job() if callable(make_job) else None
            if job is not None:
                jobs[job.key] = jobs[job.key].merged(job) if job.key in jobs else job
                if owners is not None:
                    owners[ident] = job.key
    return list(jobs.values())


def run_training_job(job: Any) -> None:
    """Worker entry point: train what the job still misses."""
    job.run()


def train_networks(runner: CellRunner, cells: Iterable[Cell], pool: Any,
                   stream: Optional[TextIO] = None) -> dict[str, tuple[str, ...]]:
    """Train (or find cached) every network ``cells`` need; returns ``{cell key: cache entries}``, the
    folders (relative to the cache root) each cell loads, for executors whose workers may not share
    this disk.

    A cached network is reported as loaded, with its folder; a failure is reported and left to the
    cells that need it (each is then recorded ``failed`` with the reason), except a full disk, which
    ends the run with :class:`~bench_core.base.errors.DiskFullError`. A cached snapshot that fails its
    checksum counts as missing, so it is trained again here (see :mod:`bench_core.base.artifact_cache`).
    """
    stream = stream or sys.stderr
    cells = list(cells)
    owners: dict[Any, str] = {}
    jobs = collect_jobs(runner, cells, owners)
    todo = []
    for job in jobs:
        if job.missing():
            todo.append(job)
        else:
            stream.write(f"network {job.label}: cached, loaded from {job.entry.path}\n")
    for job in todo:
        try:
            job.entry.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BenchError(f"cannot write the network cache at {job.entry.path.parent}: {exc.strerror}; point "
                             "bench run --cache DIR (or BENCH_CACHE) at a writable folder") from None
    failures: dict[str, str] = {}
    if todo:
        stream.write(f"training {len(todo)} network(s) before the cells\n")
        stream.flush()
        for job, result in pool.map(run_training_job, todo):
            if isinstance(result, DiskFullError):
                raise result  # every cell needing it would fail the same way: free space first
            if isinstance(result, BaseException):
                failures[job.label] = f"{type(result).__name__}: {result}"
                stream.write(f"training {job.label} FAILED: {failures[job.label]}\n")
            else:
                stream.write(f"trained {job.label} -> {job.entry.path}\n")
    stream.flush()
    folders = {job.key: f"{job.entry.kind}/{job.entry.key}" for job in jobs if job.label not in failures}
    return {cell.key: (folders[owners[ident]],) for cell in cells
            if (ident := (cell.target, cell.score, cell.seed)) in owners and owners[ident] in folders}


#: where a results folder keeps each network's training loss: ``<out>/networks/<key>/loss.csv``
NETWORKS_DIR = "networks"
LOSS_FILE = "loss.csv"


def record_networks(runner: CellRunner, cells: Iterable[Cell], out_dir: Path,
                    stream: Optional[TextIO] = None) -> list[dict[str, Any]]:
    """What run.json says about the trained networks ``cells`` use (``networks``), one dict each:

    ``key`` and ``label`` (the training job's), ``entry`` (the cache entry, an absolute path),
    ``snapshots`` (the snapshots this run asked of it, sorted: epochs for ``ddpm_mlp``), ``uses`` (the
    ``(target, target_params, score, score_params, seed)`` of the cells loading it, as results.csv
    writes them) and ``loss_curve``: the training loss copied into the results folder
    (``networks/<key>/loss.csv``, relative to it, up to the last snapshot), or None when no copy
    exists. A copy is refreshed from the cache when the cache has one and kept when the cache no
    longer does, so the report needs neither the cache nor the suite file. A network that cannot be
    described is left out, with a warning on ``stream``; only a full disk raises
    (:class:`~bench_core.base.errors.DiskFullError`).
    """
    stream = stream or sys.stderr
    owners: dict[Any, str] = {}
    try:
        jobs = {job.key: job for job in collect_jobs(runner, cells, owners)}
    except Exception as exc:  # noqa: BLE001 - the record is optional: the run's results stand without it
        stream.write(f"bench: warning: the trained networks are not recorded in run.json ({type(exc).__name__}: "
                     f"{exc})\n")
        return []
    uses: dict[str, list[dict[str, Any]]] = {}
    for (target, score, seed), key in owners.items():
        uses.setdefault(key, []).append({"target": target.name, "target_params": canonical_json(target.kwargs),
                                         "score": score.name, "score_params": canonical_json(score.kwargs),
                                         "seed": int(seed)})
    records = []
    for key, job in jobs.items():
        try:
            entry = job.entry
            snapshots = sorted(job.snapshots)
            records.append({"key": str(key), "label": str(job.label), "entry": os.path.abspath(entry.path),
                            "snapshots": snapshots, "loss_curve": _keep_loss_curve(entry, key, snapshots, out_dir),
                            "uses": uses.get(key, [])})
        except DiskFullError:
            raise  # one line naming the file, like every other export on a full disk
        except Exception as exc:  # noqa: BLE001 - as above, for one network
            stream.write(f"bench: warning: network {key} is not recorded in run.json ({type(exc).__name__}: {exc})\n")
    return records


def _keep_loss_curve(entry: Any, key: str, snapshots: list, out_dir: Path) -> Optional[str]:
    """Copy the loss curve of ``entry``'s last snapshot (it holds every epoch so far) into the results
    folder, cut at the last snapshot this run asked for; returns its path relative to ``out_dir``."""
    relative = f"{NETWORKS_DIR}/{re.sub(r'[^A-Za-z0-9_.-]', '_', str(key))}/{LOSS_FILE}"
    target = Path(out_dir) / relative
    sources = [Path(entry.path) / name / LOSS_FILE for name in reversed(entry.snapshots())]
    source = next((path for path in sources if path.is_file()), None)
    if source is None:
        return relative if target.is_file() else None  # an earlier run's copy outlives the cache
    rows = list(csv.reader(io.StringIO(source.read_text(encoding="utf-8"))))
    last = max(snapshots) if snapshots and all(isinstance(s, int) for s in snapshots) else None
    if rows and "epoch" in rows[0] and last is not None:  # the cache may hold a longer run of another suite
        at = rows[0].index("epoch")
        rows = rows[:1] + [r for r in rows[1:] if len(r) > at and r[at].isdigit() and int(r[at]) <= last]
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(target, text.getvalue())
    return relative
