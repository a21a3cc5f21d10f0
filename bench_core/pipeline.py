"""``bench run``: plan, skip finished cells, execute, store, export, check claims, report."""
from __future__ import annotations

import datetime
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from bench_core.run import tasks as execution
from bench_core.base.atomic_files import write_text_atomic
from bench_core.findings.claims import ClaimOutcome, evaluate_claims
from bench_core.base.errors import SuiteError, did_you_mean, writing
from bench_core.run.folder_lock import LOCK_NAME, run_lock
from bench_core.cell.kept_samples import SampleArchive, size_estimate
from bench_core.plan.build import build_plan
from bench_core.plan.cells import AXES, Cell, Plan, select_matches
from bench_core.plan.code_version import component_digests
from bench_core.components.discovery import get_registry
from bench_core.run.progress import Progress
from bench_core.run.provenance import collect as collect_provenance
from bench_core.components.registry import Registry
from bench_core.results.run_results import RunResults, status_counts, tidy_tables, write_tables
from bench_core.cell.sample_views import load_views, save_view
from bench_core.cell.runner import CellResult, CellRunner
from bench_core.store.sqlite_store import Store
from bench_core.suite.schema import parse_suite
from bench_core.suite.parsed import freeze
from bench_core.run.training import record_networks, train_networks


@dataclass
class RunSummary:
    """What a run did; ``exit_code``: 0 all done and every claim holds, 1 a cell or metric failed or diverged
    or a claim fails, 130 interrupted (docs/architecture.md, Result files)."""

    out_dir: Path
    n_cells: int
    n_run: int
    n_skipped_finished: int
    statuses: dict[str, int]
    claims: list[ClaimOutcome] = field(default_factory=list)
    interrupted: bool = False
    n_reused: int = 0  # cells whose kept samples were reused (no sampler ran)

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        bad = self.statuses.get("failed", 0) + self.statuses.get("diverged", 0) + self.statuses.get("metric_failed", 0)
        return 1 if bad or not all(c.holds for c in self.claims) else 0


def parse_only(expr: str) -> list[tuple[str, list[Any]]]:
    """``"sampler=ula|ddpm,target.mean=3"`` -> [(key, alternatives), ...]."""
    out = []
    for part in filter(None, (p.strip() for p in expr.split(","))):
        if "=" not in part:
            raise SuiteError(f"--only: '{part}' is not key=value; example: --only sampler=ula,seed=0")
        key, raw = (s.strip() for s in part.split("=", 1))
        axis = key.split(".", 1)[0]
        if key != "seed" and axis not in AXES:
            raise SuiteError(f"--only: unknown key '{key}'{did_you_mean(key, (*AXES, 'seed'))}; use an axis "
                             f"({', '.join(AXES)}), seed, or <axis>.<param>")
        values = []
        for alt in raw.split("|"):
            try:
                values.append(json.loads(alt))
            except json.JSONDecodeError:
                values.append(alt)
        out.append((key, values))
    return out


def only_select(only: str) -> list[tuple[str, tuple]]:
    """``--only`` as a select (:func:`select_matches`): each key's alternatives are one entry (any of them)."""
    return [(key, tuple(freeze(v) for v in alternatives)) for key, alternatives in parse_only(only)]


def filter_cells(cells: list[Cell], only: Optional[str]) -> list[Cell]:
    """The cells ``--only`` selects."""
    if not only:
        return cells
    select = only_select(only)
    return [c for c in cells if select_matches(c, select)]


def plan_suite(suite_path: str | Path, *, device: Optional[str] = None,
               registry: Optional[Registry] = None, allow_large: bool = False) -> Plan:
    """Parse and fully validate a suite (what ``bench check`` does)."""
    return build_plan(parse_suite(suite_path), registry or get_registry(), device=device, allow_large=allow_large)


def _info(plan: Plan, outcomes: list[ClaimOutcome], provenance: Optional[dict] = None,
          networks: Optional[list[dict]] = None) -> dict[str, Any]:
    """run.json (described in the README's results-files list); ``networks``: see
    :func:`bench_core.run.training.record_networks`."""
    s = plan.suite
    return {"sampler_families": {spec.name: family for spec, family in plan.families.items()},
            "provenance": provenance or {}, "suite": s.name, "description": s.description, "suite_path": str(s.path),
            "rank_by": s.rank_by or (plan.metric_specs[0].name if plan.metric_specs else None),
            "leaderboard_metrics": s.leaderboard_metrics, "rank_at_equal_nfe": s.rank_at_equal_nfe,
            "higher_is_better": plan.higher_is_better, "seeds": s.seeds, "n_samples": s.n_samples,
            "device": plan.device, "dtype": s.dtype, "checkpoints": s.checkpoints, "checkpoints_t": s.checkpoints_t,
            "written_at": datetime.datetime.now().isoformat(timespec="seconds"),
            "claims": [o.to_json() for o in outcomes], "networks": networks or [],
            # what `bench compare` reads to say why numbers moved: the settings in every sample key, and
            # the code of the harness and of each component (the two parts of a cell key's code version)
            "settings": {**plan.settings(), "n_reference": s.n_reference},
            "code": component_digests(s.components, plan.registry)}


def export(plan: Plan, store: Store, out_dir: Path, provenance: Optional[dict] = None,
           runner: Optional[CellRunner] = None) -> RunResults:
    """Write results.csv, trajectory.csv, run.json (with the trained networks the stored cells use,
    their loss curves copied under ``networks/``) and every reporter's files."""
    results, trajectory = tidy_tables(store, plan)
    outcomes = evaluate_claims(plan.suite.claims, results, trajectory)
    stored = set(results["cell"])
    networks = record_networks(runner or CellRunner(plan), [c for c in plan.cells if c.id in stored], out_dir)
    run = RunResults(results, trajectory, _info(plan, outcomes, provenance, networks),
                     load_views(out_dir, stored), folder=out_dir)
    write_tables(out_dir, results, trajectory)
    write_text_atomic(out_dir / "run.json", json.dumps(run.info, indent=2, default=str))
    for component in plan.registry.components("reporters"):
        reporter = plan.registry.create("reporters", component.name)
        reporter(run, out_dir)
    run.info["_outcomes"] = outcomes
    return run


def run_suite(suite_path: str | Path, *, out: Optional[str | Path] = None, executor: str = "local",
              workers: int = 1, rerun: bool = False, device: Optional[str] = None, only: Optional[str] = None,
              progress: Optional[Progress] = None, registry: Optional[Registry] = None,
              address: Optional[str] = None, allow_large: bool = False, force: bool = False) -> RunSummary:
    """Run a suite end to end and return its summary (files are written to ``out``)."""
    started = time.perf_counter()
    registry = registry or get_registry()
    if address and executor != "ray":
        raise SuiteError(f"--address joins a Ray cluster; it needs --executor ray (got --executor {executor})")
    pool = registry.create("executors", executor, workers=workers, **({"address": address} if address else {}))
    # workers that take long to start (a fork server importing torch) start now, while this process plans
    with execution.running(pool):
        plan = plan_suite(suite_path, device=device, registry=registry, allow_large=allow_large)
        out_dir = prepare_out_dir(Path(out) if out else Path("reports") / plan.suite.name, force=force)
        cells = filter_cells(plan.cells, only)
        if not cells:
            raise SuiteError(f"--only '{only}' selects none of the {len(plan.cells)} cells of {plan.suite.path}")
        return _run_cells(plan, pool, cells, out_dir, executor=executor, workers=workers, rerun=rerun,
                          progress=progress, started=started)


def _run_cells(plan: Plan, pool: Any, cells: list[Cell], out_dir: Path, *, executor: str, workers: int,
               rerun: bool, progress: Optional[Progress], started: float) -> RunSummary:
    """Train what the cells need, run the cells not yet finished, store each result, export."""
    with run_lock(out_dir), Store(out_dir / "results.sqlite") as store:
        finished = set() if rerun else store.finished_keys()
        todo = [c for c in cells if c.key not in finished]
        runner = execution.prime(plan)
        artifacts = train_networks(runner, todo, pool)
        if not getattr(pool, "ships_artifacts", False):
            artifacts = {}  # workers share this disk: they load trained networks from the cache
        progress = progress or Progress(len(todo))
        by_key = {c.key: c for c in todo}
        if executor == "local":  # cells run in this process: show steps within each cell
            execution.progress = progress
        archive = SampleArchive(out_dir)
        kept = {c.key: archive.load(c.sample_key, store.rows_of_sample)
                for c in todo if plan.suite.keep_samples}
        tasks = [execution.CellTask(str(plan.suite.path), plan.device, c.key, c.label(), plan.suite.text,
                                    kept.get(c.key), artifacts.get(c.key, ())) for c in todo]
        n_reused = sum(task.kept is not None for task in tasks)
        if plan.suite.keep_samples:
            announce_kept_samples(plan, [c for c, task in zip(todo, tasks) if task.kept is None], n_reused, archive)
        interrupted = False
        try:
            for task, result in pool.map(execution.run_task, tasks):
                cell = by_key[task.key]
                if not isinstance(result, CellResult):
                    result = CellResult(cell.key, "failed", 0.0, worker_failure(result))
                if result.traceback:
                    log_failure(out_dir, cell, result)
                if result.keep is not None:  # the file first: a stored cell always has its samples
                    archive.save(cell.sample_key, result.keep)
                    result.keep = None
                if result.view is not None:
                    save_view(out_dir, cell.id, result.view)  # named like the results.csv "cell" column
                    result.view = None
                store.write(cell, result)
                progress.finish_cell(cell.label(), result.status, result.wall_s, result.reason)
        except KeyboardInterrupt:
            interrupted = True  # finished cells are already committed; export what exists
        finally:
            execution.progress = None
            progress.close()
        run = export(plan, store, out_dir, collect_provenance(executor=executor, workers=workers,
                                                             elapsed_s=time.perf_counter() - started), runner)
    statuses = status_counts(run.results)
    metric_failed = int(((run.results["status"] == "failed") & (run.results["metric"] != "error")).sum())
    if metric_failed:
        statuses["metric_failed"] = metric_failed
    return RunSummary(out_dir, len(plan.cells), len(todo), len(cells) - len(todo), statuses,
                      run.info["_outcomes"], interrupted, n_reused)


def prepare_out_dir(out_dir: Path, *, force: bool = False) -> Path:
    """Create the output folder, refusing a file, an unusable path, or a non-empty folder that is not a
    bench results folder (unless ``force``): a typo in --out must not scatter files among a user's own."""
    where = f"--out {str(out_dir)[:120]!r}"
    try:
        if out_dir.is_file():
            raise SuiteError(f"{where} is a file; pass a folder")
        ours = (out_dir / "results.sqlite").exists() or (out_dir / LOCK_NAME).exists()
        if out_dir.is_dir() and not force and not ours and any(out_dir.iterdir()):
            raise SuiteError(f"{where} is a non-empty folder that holds no bench results; choose a new or empty "
                             "folder, or pass --force to write into it")
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".bench-write-test"
        probe.touch()
        probe.unlink()
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise SuiteError(f"{where} cannot be used as the output folder: {reason}; pass a writable folder") from None
    return out_dir


def worker_failure(exc: BaseException) -> str:
    """One line for a cell whose worker did not return a result (it died, or could not run it)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"the worker running it failed: {type(exc).__name__}: {text}"


def log_failure(out_dir: Path, cell: Cell, result: CellResult) -> None:
    """Append a failed cell's full traceback to ``<out>/errors.log`` (the store keeps one line)."""
    with writing(out_dir / "errors.log"), open(out_dir / "errors.log", "a", encoding="utf-8") as log:
        log.write(f"=== {datetime.datetime.now().isoformat(timespec='seconds')} cell {cell.id} {cell.label()}\n"
                  f"{result.reason}\n{result.traceback}\n")


def announce_kept_samples(plan: Plan, new: list[Cell], n_reused: int, archive: SampleArchive) -> None:
    """One line: where samples are kept, what the new ones will take, and how many are reused."""
    s = plan.suite
    states = len(s.checkpoints) + len(s.checkpoints_t)
    size = size_estimate([plan.dims[c.target] for c in new], s.n_samples, states, s.keep_samples)
    print(f"keeping samples ({s.keep_samples}) in {archive.folder}: about {size / 2**20:.1f} MiB for {len(new)} "
          f"new cell(s); {n_reused} cell(s) reuse kept samples (no sampler runs for them)", file=sys.stderr)
