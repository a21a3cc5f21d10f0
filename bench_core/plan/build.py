"""Building a plan: every component validated against the registry and built once, the grid checked.

Problems are :class:`SuiteError` s at the suite's file and line, raised before any cell runs.
"""
from __future__ import annotations

import json
from typing import Any, Optional

import torch

from bench_core.base.errors import BenchError, PluginError, SuiteError, did_you_mean
from bench_core.base.torch_defaults import default_dtype
from bench_core.components.protocols import sample_only
from bench_core.components.registry import SINGULAR, Registry
from bench_core.plan.cells import HARNESS_METRICS, Plan, metric_display_names, metric_prefix
from bench_core.plan.resources import bounded_build, check_resources, check_written_sizes
from bench_core.suite.parsed import ComponentSpec, Suite
from bench_core.suite.paths import suite_directory
from bench_core.suite.schema import COMPONENT_TABLES


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
    with suite_directory(suite.path):  # a path param (a data file, weights) is read relative to the suite
        for kind in ("targets", "initializers", "samplers", "metrics"):
            for spec in suite.components[kind]:
                built[kind][spec] = _instantiate(suite, registry, spec)
        check_resources(suite, built["targets"], built["samplers"])
        with default_dtype(getattr(torch, suite.dtype)):
            for target_spec, target in built["targets"].items():
                try:
                    data = make_training_data(target, target_spec, suite.seeds[0], suite.n_train, suite.duplicate,
                                              "cpu")
                except SuiteError as exc:
                    raise SuiteError(f"{suite.where('data', None, 'n_train')}: {exc}") from None
                for spec in suite.components["scores"]:
                    if not (sample_only(target) and _closed_form_only(registry, spec)):  # refused below, per cell
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
    plan = Plan(suite, registry, device, built)
    _check_closed_forms(plan, built["targets"])
    return plan


def _closed_form_only(registry: Registry, spec: ComponentSpec) -> Optional[str]:
    """What to use instead of a component that needs its target's closed form (None: it does not)."""
    return getattr(registry.get(spec.kind, spec.name).factory, "closed_form_only", None)


def _check_closed_forms(plan: Plan, targets: dict[ComponentSpec, Any]) -> None:
    """No cell may pair a target that is only samples with a score or metric that needs its closed form
    (after exclusions: an excluded pair is not refused)."""
    suite, registry = plan.suite, plan.registry
    for cell in plan.cells:
        if not sample_only(targets[cell.target]):
            continue
        for spec in (cell.score, *plan.metric_specs):
            instead = _closed_form_only(registry, spec)
            if instead:
                raise SuiteError(f"{suite.where(spec.kind, spec.index, 'name')}: [[{spec.kind}]] #{spec.index + 1} "
                                 f"{SINGULAR[spec.kind]} '{spec.name}' needs the closed form of its target, and "
                                 f"target {cell.target.label()} has only samples (no score or density): use "
                                 f"{instead}" + (", or exclude the pair with [[exclude]]" if spec.kind == "scores"
                                                 else ", or remove it"))
