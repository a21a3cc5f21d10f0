"""Runs one cell: data, score, starts, sampler, metrics; never lets a cell crash the run.

A cell that raises is recorded ``failed`` with its reason; non-finite particles make it
``diverged``; a component raising :class:`SkipCell` makes it ``skipped``. Cells run with
one torch thread so that numbers do not depend on the executor or worker count.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import time
import traceback
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import torch
from torch import Tensor

from bench_core.cell.allocator import keep_freed_memory
from bench_core.cell.timeout import CellTimeout, cell_deadline
from bench_core.cell.nfe import CountingScore, sampler_diagnostics
from bench_core.cell.sample_views import sample_view, wants_view
from bench_core.plan.training_data import check_particles, make_reference, make_training_data
from bench_core.base.errors import Diverged, SkipCell, SkipMetric
from bench_core.cell.kept_samples import KeptSamples, SamplesToKeep, to_storage
from bench_core.plan.cells import PRIOR, Cell, Plan
from bench_core.components.protocols import MetricContext
from bench_core.base.seeding import make_generator
from bench_core.base.torch_defaults import default_dtype
from bench_core.suite.parsed import ComponentSpec
from bench_core.suite.paths import suite_directory
from bench_core.plan.time_checkpoints import TimeCheckpoints

StepProgress = Callable[[int], None]


@dataclass
class MetricRow:
    """One recorded value; ``step`` is None for the final samples."""

    metric: str
    value: float
    status: str = "done"
    reason: str = ""
    step: Optional[int] = None
    t: Optional[float] = None
    metric_key: str = ""  # the metric's key in the plan ("" for rows the harness records: nfe, sampler.*)
    metric_base: str = ""  # the metric's display name when recorded (the part before ".<key>")


@dataclass
class CellResult:
    """Everything a finished cell produced; written to the store in one transaction."""

    key: str
    status: str
    wall_s: float
    reason: str = ""
    rows: list[MetricRow] = field(default_factory=list)
    keep: Optional[SamplesToKeep] = None  # the states to keep, when the suite keeps samples
    traceback: str = ""  # of a failed cell: written to errors.log in the output folder
    view: Optional[dict] = None  # of a cell a claim names: radial and 2-D summaries (sample_views)


def source_location(filename: str) -> str:
    """``filename`` as an import path: relative to the ``sys.path`` entry it lies under, e.g.
    ``my_pkg/samplers.py`` (not a bare ``samplers.py`` that does not say whose), else absolute."""
    path = Path(filename).resolve()
    best: Optional[Path] = None
    for entry in sys.path:
        try:
            rel = path.relative_to(Path(entry or ".").resolve())
        except (ValueError, OSError):
            continue
        if best is None or len(rel.parts) < len(best.parts):
            best = rel
    return (best or path).as_posix()


def failure_reason(exc: BaseException, phase: str) -> str:
    """One line: where it happened, what, and the plugin file and line that raised it."""
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" (at {source_location(frame.filename)}:{frame.lineno})" if frame else ""
    what = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, SystemExit):
        what = f"exit status {exc.code!r}; a plugin must raise an exception, not call sys.exit"
    return f"in {phase}: {type(exc).__name__}: {what}{where}"


def all_finite(x: Tensor) -> bool:
    """Whether every particle is finite, in one read of ``x`` and no allocation of its size.

    The sum of the entries is finite exactly when every entry is (a NaN or an infinity propagates,
    and opposite infinities give NaN), except that finite entries can overflow the sum: in float32
    that needs entries of about 3e38 / (n d), i.e. particles already ~1e31 from the origin for
    n d = 5e6, which are diverged by any measure. ``torch.isfinite(x).all()`` costs an n x d bool
    tensor and two passes, as much as a ULA step's arithmetic; this check runs at every step.
    """
    return math.isfinite(float(x.sum()))


@contextlib.contextmanager
def numeric_context(dtype: torch.dtype) -> Iterator[None]:
    """Default dtype for the cell, one intra-op thread (bitwise-reproducible reductions)."""
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with default_dtype(dtype):
            yield
    finally:
        torch.set_num_threads(previous_threads)


class CellRunner:
    """Runs the cells of one plan, caching what cells of the same seed share."""

    def __init__(self, plan: Plan) -> None:
        keep_freed_memory()  # per-step temporaries reuse their pages (see bench_core.cell.allocator)
        self.plan = plan
        self.suite = plan.suite
        self.registry = plan.registry
        self.dtype = getattr(torch, self.suite.dtype)

    @lru_cache(maxsize=16)
    def target(self, spec: ComponentSpec) -> Any:
        return self.registry.create("targets", spec.name, **spec.kwargs)

    @lru_cache(maxsize=16)
    def data(self, spec: ComponentSpec, seed: int) -> Any:
        return make_training_data(self.target(spec), spec, seed, self.suite.n_train, self.suite.duplicate,
                                  self.plan.device)

    @lru_cache(maxsize=4)  # cells of one (target, seed) run together; 4 bounds what big n holds
    def reference(self, spec: ComponentSpec, seed: int) -> Tensor:
        return make_reference(self.target(spec), spec, seed, self.suite.n_reference, self.plan.device)

    @lru_cache(maxsize=8)
    def score(self, target: ComponentSpec, spec: ComponentSpec, seed: int) -> Any:
        return self.registry.create("scores", spec.name, self.target(target), self.data(target, seed),
                                    **spec.kwargs)

    def run(self, cell: Cell, progress: Optional[StepProgress] = None,
            kept: Optional[KeptSamples] = None) -> CellResult:
        """Run a cell and return its result; exceptions become statuses, never propagate.

        With ``kept`` (the samples of an earlier run with the same sample key) no sampler runs: the
        earlier rows of metrics still in the suite are copied and only the missing metrics are computed.
        """
        start = time.perf_counter()
        rows: list[MetricRow] = []
        keep: list[SamplesToKeep] = []
        trace = ""
        self._phase, self._step, self._view = "the harness", 0, None
        with numeric_context(self.dtype), suite_directory(self.suite.path):
            try:
                with cell_deadline(self.suite.cell_timeout, lambda: self._step) as self._deadline:
                    self._run(cell, rows, progress, kept, keep)
                status, reason = "done", ""
            except CellTimeout as exc:
                status, reason = "failed", f"in {self._phase}: {exc}"
            except Diverged as exc:
                status, reason = "diverged", str(exc)
            except SkipCell as exc:
                status, reason = "skipped", str(exc) or "skipped by a component"
            except (KeyboardInterrupt, GeneratorExit):
                raise  # the user stops the run: not a result of the cell
            except BaseException as exc:  # noqa: BLE001 - a broken cell (even sys.exit in a plugin) is a result
                status, reason = "failed", failure_reason(exc, self._phase)
                trace = "".join(traceback.format_exception(exc))
        if status != "done":
            rows = [r for r in rows if r.step is not None]  # keep the trajectory measured so far
        wall = time.perf_counter() - start + (kept.sample_s if kept is not None else 0.0)
        return CellResult(cell.key, status, wall, reason, rows, keep[0] if keep and status == "done" else None,
                          trace, self._view if status == "done" else None)

    def _build(self, cell: Cell) -> tuple[Any, Any, Any, list, Tensor, torch.Generator, MetricContext]:
        """The cell's components, in a fixed order (each seeded from the cell): ``(target, score, sampler,
        metrics, x0, sampler generator, metric context)``; ``_phase`` names the one being built."""
        seed, n, device = cell.seed, self.suite.n_samples, self.plan.device
        self._phase = f"target '{cell.target.name}'"
        target = self.target(cell.target)
        self._phase = "the training data"
        data = self.data(cell.target, seed)
        self._phase = f"score '{cell.score.name}'"
        score = self.score(cell.target, cell.score, seed)
        prepare = getattr(score, "prepare", None)
        if callable(prepare):  # loads (or trains) what it needs now, so its failures name the score
            prepare()
        self._phase = f"sampler '{cell.sampler.name}'"
        sampler = self.registry.create("samplers", cell.sampler.name, **cell.sampler.kwargs)
        init_spec = cell.initializer
        self._phase = f"initializer '{init_spec.name}'"
        initializer = (self.registry.create("initializers", "standard_normal") if init_spec == PRIOR else
                       self.registry.create("initializers", init_spec.name, **init_spec.kwargs))
        init_gen = make_generator(seed, "init", cell.target.key(), init_spec.key(), device=device)
        x0 = check_particles(initializer(n, target=target, data=data, generator=init_gen), n, target.dim,
                             f"initializer '{init_spec.name}'", self.dtype, device)
        self._phase = "the metrics"
        metrics = [(m, self.registry.create("metrics", m.name, **m.kwargs)) for m in self.plan.metric_specs]
        sampler_gen = make_generator(seed, "sampler", cell.target.key(), cell.score.key(), init_spec.key(),
                                     cell.sampler.key(), device=device)
        ctx = MetricContext(target=target, reference=lambda: self.reference(cell.target, seed), score=score,
                            data=data, sampler=sampler, generator=sampler_gen, x0=x0)
        return target, score, sampler, metrics, x0, sampler_gen, ctx

    def _run(self, cell: Cell, rows: list[MetricRow], progress: Optional[StepProgress],
             kept: Optional[KeptSamples], keep: list[SamplesToKeep]) -> None:
        target, score, sampler, metrics, x0, sampler_gen, ctx = self._build(cell)
        n, device = self.suite.n_samples, self.plan.device
        if kept is not None:
            rows.extend(self._reuse(cell, metrics, kept, ctx))
            return
        checkpoints = set(self.suite.checkpoints)
        kept_states: list[tuple[int, float, Tensor]] = []
        sampling_start = time.perf_counter()

        counted = CountingScore(score, n)  # the sampler's evaluations are counted; the metrics' are not

        def measure(x: Tensor, step: Optional[int], t: Optional[float], cost: Optional[dict] = None) -> None:
            if self.suite.keep_samples and step is not None:
                kept_states.append((step, float(t), to_storage(x, self.suite.keep_samples)))
            rows.extend(self._metrics(cell, metrics, x, ctx, step, t))
            rows.extend(MetricRow(name, value, step=step, t=t) for name, value in (cost or counted.rows()).items())

        start = float(getattr(sampler, "T", 0.0)) if sampler.family == "diffusion" else 0.0
        in_time = TimeCheckpoints(self.suite.checkpoints_t, start, x0)
        measured = set()
        if in_time.at_start() or 0 in checkpoints:
            measure(x0, 0, start)
            measured.add(0)
        cost_before = counted.rows()  # the cost at the previous step (a time checkpoint may land there)

        def callback(step: int, t: float, x: Tensor) -> None:
            nonlocal cost_before
            self._step = step
            self._deadline.check()
            if not all_finite(x):
                raise Diverged(f"non-finite particles at step {step} (t={t:g})")
            due = in_time.advance(step, t, x) if in_time.pending else []
            if step in checkpoints:
                due.append((step, float(t), x))
            for at_step, at_t, state in due:
                if at_step not in measured:
                    measured.add(at_step)
                    measure(state, at_step, at_t, None if at_step == step else cost_before)
            cost_before = counted.rows()
            if progress is not None:
                progress(step)

        self._phase = f"sampler '{cell.sampler.name}'"
        samples = sampler.sample(counted, x0, generator=sampler_gen, callback=callback)
        samples = check_particles(samples, n, target.dim, f"sampler '{cell.sampler.name}'", self.dtype, device)
        if not all_finite(samples):
            raise Diverged("non-finite particles in the final samples")
        if self.suite.keep_samples:
            keep.append(SamplesToKeep(to_storage(samples, self.suite.keep_samples), sorted(kept_states),
                                      time.perf_counter() - sampling_start))
        measure(samples, None, None)
        if wants_view(self.plan, cell, target):
            self._phase = "the sample view"
            self._view = sample_view(samples, ctx.reference, target, ctx.data, cell.seed, ctx.score)
        diagnostics, problem = sampler_diagnostics(sampler)
        rows.extend(MetricRow(name, value) for name, value in diagnostics.items())
        if problem is not None:
            rows.append(MetricRow("sampler.diagnostics", math.nan, "failed", problem))

    def _metrics(self, cell: Cell, metrics: list, x: Tensor, ctx: MetricContext, step: Optional[int],
                 t: Optional[float]) -> list[MetricRow]:
        out = []
        for spec, metric in metrics:
            base = self.plan.metric_names[spec]
            ctx.generator = make_generator(cell.seed, "metric", cell.target.key(), cell.score.key(),
                                           cell.initializer.key(), cell.sampler.key(), spec.key(),
                                           -1 if step is None else step, device=self.plan.device)
            tag = {"metric_key": self.plan.metric_keys[spec], "metric_base": base}
            try:
                value = metric(x, ctx)
            except SkipMetric as exc:
                out.append(MetricRow(base, math.nan, "skipped", str(exc), step, t, **tag))
                continue
            except Exception as exc:  # noqa: BLE001 - one broken metric must not lose the others
                out.append(MetricRow(base, math.nan, "failed", f"{type(exc).__name__}: {exc}", step, t, **tag))
                continue
            items = value.items() if isinstance(value, dict) else [(None, value)]
            for key, v in items:
                name = base if key is None else f"{base}.{key}"
                out.append(MetricRow(name, float(v), "done", "", step, t, **tag))
        return out

    def _reuse(self, cell: Cell, metrics: list, kept: KeptSamples, ctx: MetricContext) -> list[MetricRow]:
        """Rows of a cell whose samples were kept: per state, in the order a fresh run records them, the
        earlier rows of each metric still in the suite (renamed if its display name changed), the metrics
        that are new (or failed before) computed from the kept particles, then the harness rows."""
        device, dtype = self.plan.device, self.dtype
        earlier: dict[tuple[str, Optional[int]], list[MetricRow]] = {}
        for row in kept.rows:
            earlier.setdefault((row.metric_key, row.step), []).append(row)
        out: list[MetricRow] = []
        for step, t, array in [*kept.states, (None, None, kept.final)]:
            x = None
            for spec, metric in metrics:
                key, base = self.plan.metric_keys[spec], self.plan.metric_names[spec]
                had = earlier.get((key, step), [])
                if had and all(r.status != "failed" for r in had):
                    out.extend(dataclasses.replace(r, metric=base + r.metric[len(r.metric_base):], metric_base=base)
                               for r in had)
                    continue
                if x is None:
                    x = torch.from_numpy(array).to(device=device, dtype=dtype)
                out.extend(self._metrics(cell, [(spec, metric)], x, ctx, step, t))
            out.extend(earlier.get(("", step), []))
        return out
