"""Cells: what one unit of work is, which cells a select matches, the plan (cells in order, their keys).

A cell is (target, score, initializer, sampler, seed). Diffusion-family samplers ignore
the initializer axis: they run once per (target, score, seed) with initializer "prior".
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
from dataclasses import dataclass
from typing import Any, Iterable

from bench_core.base.errors import SuiteError, did_you_mean
from bench_core.base.seeding import canonical_json
from bench_core.components.registry import Registry
from bench_core.plan.code_version import code_version
from bench_core.suite.parsed import ComponentSpec, Suite, select_options

PRIOR = ComponentSpec("initializers", "prior", ())
AXES = ("target", "score", "initializer", "sampler")
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


def select_matches(cell: Cell, select: Iterable[tuple[str, Any]]) -> bool:
    """Whether a cell matches ``{axis: name, "seed": s, "<axis>.<param>": value}``: the one matcher of
    exclusions, claims (on the cells of results rows) and ``--only``.

    The select holds frozen values (:func:`bench_core.suite.parsed.freeze`, as the cell's params). A
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



class Plan:
    """The validated suite with its cells in a deterministic order."""

    def __init__(self, suite: Suite, registry: Registry, device: str, built: dict) -> None:
        self.suite, self.registry, self.device = suite, registry, device
        self.families = {spec: obj.family for spec, obj in built["samplers"].items()}
        self.n_steps = {spec: getattr(obj, "n_steps", None) for spec, obj in built["samplers"].items()}
        self.dims = {spec: int(getattr(obj, "dim", 0)) for spec, obj in built["targets"].items()}
        # a target read from a file: the file's hash (an edited file reruns its cells, a moved one does not)
        self.data_digests = {spec: getattr(obj, "data_digest", None) for spec, obj in built["targets"].items()}
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
            if self.data_digests.get(target):
                sample_obj["target_data"] = self.data_digests[target]
            sample_key = hashlib.sha256(canonical_json(sample_obj).encode()).hexdigest()
            key = hashlib.sha256(canonical_json({"samples": sample_key, "metrics": metrics_part}).encode()).hexdigest()
            cells.append(Cell(target, score, init, sampler, seed, key, len(cells), sample_key))
        return cells
