"""From a parsed suite to the list of cells: components resolved, params checked, grid expanded.

A cell is (target, score, initializer, sampler, seed). Diffusion-family samplers ignore
the initializer axis: they run once per (target, score, seed) with initializer "prior".
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import inspect
import itertools
import json
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable, Optional

import torch

from bench_core.base.errors import BenchError, PluginError, SuiteError, did_you_mean
from bench_core.components.registry import SINGULAR, Registry
from bench_core.plan.resources import bounded_build, check_resources, check_written_sizes
from bench_core.base.seeding import canonical_json
from bench_core.base.torch_defaults import default_dtype
from bench_core.suite.schema import COMPONENT_TABLES, ComponentSpec, Suite, select_options
from bench_core.suite.paths import suite_directory

PRIOR = ComponentSpec("initializers", "prior", ())
AXES = ("target", "score", "initializer", "sampler")
#: the harness modules whose code changes a cell's numbers (part of every cell key, with the factories' code)
NUMERIC_CORE = ("bench_core.cell.runner", "bench_core.base.seeding", "bench_core.base.torch_defaults",
                "bench_core.plan.training_data", "bench_core.plan.cells", "bench_core.cell.nfe",
                "bench_core.plan.time_checkpoints")
#: metric prefixes the harness records for every cell (bench_core/cell/nfe.py), with their direction
HARNESS_METRICS = {"nfe": False, "sampler": False}


@dataclass(frozen=True)
class Cell:
    """One unit of work, identified by the hash of everything that determines its numbers."""

    target: ComponentSpec
    score: ComponentSpec
    initializer: ComponentSpec
    sampler: ComponentSpec
    seed: int
    key: str
    order: int
    sample_key: str = ""  # hash of what determines the samples (not the metrics): kept samples are found by it

    @property
    def id(self) -> str:
        return self.key[:16]

    def spec(self, axis: str) -> ComponentSpec:
        return getattr(self, axis)

    def label(self) -> str:
        return " / ".join(self.spec(a).label() for a in AXES) + f" / seed {self.seed}"


@lru_cache(maxsize=None)
def _file_hash(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _package_modules(module_name: str, seen: set[str]) -> None:
    """``module_name`` and, transitively, the modules of its own top-level package whose names
    (functions, classes, modules) it imports: a factory's numbers depend on their code too."""
    if module_name in seen or module_name not in sys.modules:
        return
    seen.add(module_name)
    top = module_name.split(".", 1)[0]
    for value in list(vars(sys.modules[module_name]).values()):
        name = value.__name__ if isinstance(value, ModuleType) else getattr(value, "__module__", None)
        if isinstance(name, str) and name.split(".", 1)[0] == top:
            _package_modules(name, seen)


def code_version(factories: Iterable[Any]) -> str:
    """Hash of the source files that define the given factories (with the modules of their own
    package they import) and of the numeric core."""
    return _code_version(tuple(factories))


@lru_cache(maxsize=4096)
def _source_of(module_name: str) -> str:
    """The source file of a module, found without importing it (the runner sits in a later stage)."""
    spec = importlib.util.find_spec(module_name)
    return (spec.origin if spec is not None else None) or module_name


def _code_version(factories: tuple) -> str:
    # cached per combination of factories: a grid of many cells shares a handful of combinations,
    # and hashing source files per cell made `bench check` of 100 000 seeds take two minutes
    files = {_source_of(name) for name in NUMERIC_CORE}
    for factory in factories:
        modules: set[str] = set()
        _package_modules(getattr(factory, "__module__", "") or "", modules)
        for module in [factory, *(sys.modules[m] for m in modules)]:
            try:
                files.add(inspect.getsourcefile(module) or "")
            except TypeError:
                files.add(repr(module))
    # the contents alone, in sorted order: moving or renaming a file does not change a key, editing it does
    contents = sorted(_file_hash(f) if f and Path(f).exists() else hashlib.sha256(f.encode()).hexdigest()
                      for f in files)
    return hashlib.sha256("".join(contents).encode()).hexdigest()[:16]


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; ``cuda`` when absent is an error."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(device).type
    except (RuntimeError, ValueError, TypeError):
        raise SuiteError(f"device '{device}' is not a device; use cpu, cuda, cuda:N or auto") from None
    if kind not in ("cpu", "cuda"):
        raise SuiteError(f"device '{device}' is not supported; use cpu, cuda, cuda:N or auto") from None
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SuiteError(f"device '{device}' was asked for but CUDA is not available; use device = \"cpu\" "
                         "or \"auto\"")
    return device


def _instantiate(suite: Suite, registry: Registry, spec: ComponentSpec, *args: Any) -> Any:
    """Build a component; a param it rejects is a SuiteError at the spec's table and line."""
    where = suite.where(spec.kind, spec.index)
    try:
        registry.get(spec.kind, spec.name)
    except BenchError as exc:
        raise SuiteError(f"{suite.where(spec.kind, spec.index, 'name')}: [[{spec.kind}]] #{spec.index + 1}: "
                         f"{exc}") from None
    try:
        with bounded_build():  # a factory that allocates without checking its sizes fails here, not the machine
            return registry.create(spec.kind, spec.name, *args, **spec.kwargs)
    except PluginError:
        raise
    except (RuntimeError, MemoryError, OverflowError) as exc:  # torch refusing an allocation or a size
        raise SuiteError(f"{where}: [[{spec.kind}]] #{spec.index + 1} {SINGULAR[spec.kind]} '{spec.name}' could not "
                         f"be built with params {json.dumps(spec.kwargs)}: {_first_line(exc)}; is a size too "
                         "large?") from None
    except (ValueError, TypeError) as exc:
        key = next((k for k, _ in spec.params if f"'{k}'" in str(exc)), None)
        if key is not None:
            where = suite.where(spec.kind, spec.index, key)
        raise SuiteError(f"{where}: [[{spec.kind}]] #{spec.index + 1} {SINGULAR[spec.kind]} '{spec.name}' "
                         f"rejects its params {json.dumps(spec.kwargs)}: {exc}") from None


def _check_metric_key(where: str, name: str, metrics: dict[str, Any]) -> None:
    """``<metric>.<key>`` must be a key the metric declares it returns (``keys``; undeclared: any)."""
    prefix = metric_prefix(name)
    declared = getattr(metrics.get(prefix), "keys", None)
    key = name[len(prefix) + 1:] if name.startswith(prefix + ".") else ""
    if declared is None or not key or not isinstance(declared, (tuple, list)):
        return
    if not declared:
        raise SuiteError(f"{where}: '{name}': metric '{prefix}' records one number, with no keys; write '{prefix}'")
    if key not in declared:
        raise SuiteError(f"{where}: '{name}': metric '{prefix}' records the keys {', '.join(declared)}, not "
                         f"'{key}'{did_you_mean(key, declared)}")


def _try_initializer(suite: Suite, spec: ComponentSpec, initializer: Any, target: Any, target_spec: ComponentSpec,
                     data: Any) -> None:
    """Draw two starting points: what only the target and the training set reveal (a point of the wrong
    length, more distinct training points than n_train) is refused now, not in every cell."""
    from bench_core.plan.training_data import check_particles

    try:
        check_particles(initializer(2, target=target, data=data, generator=torch.Generator().manual_seed(0)),
                        2, target.dim, f"initializer '{spec.name}'", torch.get_default_dtype())
    except (ValueError, TypeError, RuntimeError, IndexError) as exc:
        raise SuiteError(f"{suite.where('initializers', spec.index)}: [[initializers]] #{spec.index + 1} "
                         f"'{spec.name}' cannot start target {target_spec.label()}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def select_matches(cell: Cell, select: Iterable[tuple[str, Any]]) -> bool:
    """Whether a cell matches ``{axis: name, "seed": s, "<axis>.<param>": value}``: the one matcher of
    exclusions, claims (on the cells of results rows) and ``--only``.

    The select holds frozen values (:func:`bench_core.suite.schema.freeze`, as the cell's params). A
    list means "any of these" (to select a list-valued param, nest it: ``[[1, 2]]``); a table is one value.
    """
    for key, wanted in select:
        options = select_options(wanted)
        if key == "step":
            continue  # a checkpoint, not a property of the cell (claims read it from trajectory.csv)
        if key == "seed":
            have = cell.seed
        elif key in AXES:
            have = cell.spec(key).name
        else:
            axis, param = key.split(".", 1)
            have = dict(cell.spec(axis).params).get(param, _MISSING)
        if have not in options:
            return False
    return True


_MISSING = object()


def check_select_keys(select: Iterable[tuple[str, Any]], where: str) -> None:
    """Select keys are an axis, ``seed`` or ``<axis>.<param>``."""
    for key, _ in select:
        axis = key.split(".", 1)[0]
        if key not in ("seed", "step") and axis not in AXES:
            raise SuiteError(f"{where}: select key '{key}'{did_you_mean(key, (*AXES, 'seed', 'step'))} must be "
                             f"one of {', '.join(AXES)}, seed, step (a checkpoint), or <axis>.<param> such as "
                             "target.mean")


def metric_prefix(name: str) -> str:
    """The metric part of a recorded name: ``tv_witness(witness='ball_trap')`` for
    ``tv_witness(witness='ball_trap').lower``, ``score_error`` for ``score_error.sq``."""
    if "(" in name and ")" in name:
        return name[: name.rindex(")") + 1]
    return name.split(".", 1)[0]


def metric_plugin(name: str) -> str:
    """The plugin a recorded metric name comes from: ``tv_witness`` for ``tv_witness(witness='x').lower``
    (directions, ``higher_is_better`` in run.json, are kept by plugin)."""
    return metric_prefix(name).split("(", 1)[0]


def metric_display_names(specs: list[ComponentSpec]) -> dict[ComponentSpec, str]:
    """A metric listed once is named by its plugin name; grid copies carry their params."""
    counts = {n: [m.name for m in specs].count(n) for n in {m.name for m in specs}}
    return {m: m.name if counts[m.name] == 1 else m.label() for m in specs}


#: a suite of more cells than this is refused unless the user confirms it (``--yes``)
MAX_CELLS = 100_000


def count_cells(suite: Suite) -> int:
    """Cells of the full grid before diffusion samplers drop the initializer axis (an upper bound)."""
    total = len(suite.seeds)
    for kind in ("targets", "scores", "initializers", "samplers"):
        total *= len(suite.components[kind])
    return total


def build_plan(suite: Suite, registry: Registry, *, device: Optional[str] = None,
               allow_large: bool = False) -> "Plan":
    """Validate every component against the registry and expand the grid into cells.

    A grid above :data:`MAX_CELLS` cells is refused before anything is built unless ``allow_large``.
    """
    upper = count_cells(suite)
    if upper > MAX_CELLS and not allow_large:
        raise SuiteError(f"{suite.path}: the grid has up to {upper:,} cells ({len(suite.seeds)} seeds x "
                         + " x ".join(f"{len(suite.components[k])} {k}" for k in
                                      ("targets", "scores", "initializers", "samplers"))
                         + f"), above {MAX_CELLS:,}; if you mean it, pass --yes")
    from bench_core.plan.training_data import make_training_data  # local: data imports torch-heavy helpers

    check_written_sizes(suite)  # before any component is built: nothing allocates for an unchecked size
    device = resolve_device(device or suite.device)
    built: dict[str, dict[ComponentSpec, Any]] = {kind: {} for kind in COMPONENT_TABLES}
    for kind in ("targets", "initializers", "samplers", "metrics"):
        for spec in suite.components[kind]:
            built[kind][spec] = _instantiate(suite, registry, spec)
    check_resources(suite, built["targets"], built["samplers"])
    with default_dtype(getattr(torch, suite.dtype)), suite_directory(suite.path):
        for target_spec, target in built["targets"].items():
            data = make_training_data(target, target_spec, suite.seeds[0], suite.n_train, suite.duplicate, "cpu")
            for spec in suite.components["scores"]:
                built["scores"][spec] = _instantiate(suite, registry, spec, target, data)
            for spec, initializer in built["initializers"].items():
                _try_initializer(suite, spec, initializer, target, target_spec, data)
    metric_names = set(metric_display_names(suite.components["metrics"]).values()) | set(HARNESS_METRICS)
    for claim in suite.claims:
        where = suite.where("claims", claim.index, "metric")
        if metric_prefix(claim.metric) not in metric_names:
            raise SuiteError(f"{where}: claim metric '{claim.metric}' is not computed by this suite "
                             f"(metrics: {', '.join(sorted(metric_names))})")
    if suite.rank_by and metric_prefix(suite.rank_by) not in metric_names:
        raise SuiteError(f"{suite.where('suite', None, 'rank_by')}: rank_by '{suite.rank_by}' is not a metric "
                         f"of this suite (metrics: {', '.join(sorted(metric_names))})")
    for entry in suite.leaderboard_metrics or ():
        if metric_prefix(entry) not in metric_names:
            raise SuiteError(f"{suite.where('suite', None, 'leaderboard_metrics')}: leaderboard_metrics names "
                             f"'{entry}', which is not a metric of this suite (metrics: {', '.join(sorted(metric_names))})")
    by_name = {name: built["metrics"][spec] for spec, name in metric_display_names(suite.components["metrics"]).items()}
    named = [(suite.where("claims", c.index, "metric"), c.metric) for c in suite.claims]
    named += [(suite.where("suite", None, "rank_by"), suite.rank_by)] if suite.rank_by else []
    named += [(suite.where("suite", None, "leaderboard_metrics"), m) for m in suite.leaderboard_metrics or ()]
    for where, name in named:
        _check_metric_key(where, name, by_name)
    return Plan(suite, registry, device, built)


class Plan:
    """The validated suite with its cells in a deterministic order."""

    def __init__(self, suite: Suite, registry: Registry, device: str, built: dict) -> None:
        self.suite, self.registry, self.device = suite, registry, device
        self.families = {spec: obj.family for spec, obj in built["samplers"].items()}
        self.n_steps = {spec: getattr(obj, "n_steps", None) for spec, obj in built["samplers"].items()}
        self.dims = {spec: int(getattr(obj, "dim", 0)) for spec, obj in built["targets"].items()}
        self.higher_is_better = {**HARNESS_METRICS,
                                 **{m.name: bool(obj.higher_is_better) for m, obj in built["metrics"].items()}}
        self.metric_specs = list(suite.components["metrics"])
        self.metric_names = metric_display_names(self.metric_specs)
        self.cells = self._expand()
        for exclusion in suite.exclusions:
            where = suite.where("exclude", exclusion.index, "select")
            check_select_keys(exclusion.select, where)
            if "step" in dict(exclusion.select):
                raise SuiteError(f"{where}: an exclusion selects cells, not checkpoints: remove 'step'")
            if not any(select_matches(c, exclusion.select) for c in self.cells):
                raise SuiteError(f"{where}: [[exclude]] #{exclusion.index + 1} matches no cell "
                                 f"({dict(exclusion.select)}); check the names and params")
        kept = [c for c in self.cells if not any(select_matches(c, e.select) for e in suite.exclusions)]
        self.cells = [dataclasses.replace(c, order=i) for i, c in enumerate(kept)]
        for claim in suite.claims:
            where = suite.where("claims", claim.index, "select")
            check_select_keys(claim.select, where)
            check_select_keys(claim.versus, suite.where("claims", claim.index, "versus"))
            steps = dict(claim.select).get("step")
            for step in select_options(steps) if steps is not None else ():
                if step not in suite.checkpoints:
                    raise SuiteError(f"{where}: claim selects step {step!r}, which is not in [suite] checkpoints "
                                     f"{suite.checkpoints}; add it there")
            if not any(select_matches(c, claim.select) for c in self.cells):
                raise SuiteError(f"{where}: claim selects no cell ({dict(claim.select)}); check the names and "
                                 "params against the suite's components")

    def settings(self) -> dict[str, Any]:
        """Suite-level settings that change a cell's samples (part of every sample key)."""
        s = self.suite
        return {"n_samples": s.n_samples, "dtype": s.dtype, "device": self.device, "n_train": s.n_train,
                "duplicate": s.duplicate, "checkpoints": s.checkpoints,
                **({"checkpoints_t": s.checkpoints_t} if s.checkpoints_t else {})}

    def _metric_keys(self) -> dict[ComponentSpec, str]:
        """Per metric: a hash of its spec, the reference size and its code (a kept row is reused by it)."""
        keys = {}
        for spec in self.metric_specs:
            factory = self.registry.get("metrics", spec.name).factory
            obj = {"metric": spec.key(), "n_reference": self.suite.n_reference, "code": code_version([factory])}
            keys[spec] = hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:32]
        return keys

    def _expand(self) -> list[Cell]:
        comps = self.suite.components
        settings = self.settings()
        self.metric_keys = self._metric_keys()
        metrics_part = [self.metric_keys[m] for m in self.metric_specs]
        cells: list[Cell] = []
        seen = set()
        for seed, target, score, sampler, init in itertools.product(
                self.suite.seeds, comps["targets"], comps["scores"], comps["samplers"], comps["initializers"]):
            if self.families[sampler] == "diffusion":
                init = PRIOR
            ident = (seed, target, score, init, sampler)
            if ident in seen:
                continue
            seen.add(ident)
            factories = [self.registry.get(kind, spec.name).factory for kind, spec in
                         (("targets", target), ("scores", score), ("samplers", sampler))]
            if init is not PRIOR:
                factories.append(self.registry.get("initializers", init.name).factory)
            sample_obj = {"target": target.key(), "score": score.key(), "initializer": init.key(),
                          "sampler": sampler.key(), "seed": seed, "settings": settings,
                          "code": code_version(factories)}
            sample_key = hashlib.sha256(canonical_json(sample_obj).encode()).hexdigest()
            key = hashlib.sha256(canonical_json({"samples": sample_key, "metrics": metrics_part}).encode()).hexdigest()
            cells.append(Cell(target, score, init, sampler, seed, key, len(cells), sample_key))
        return cells
