"""bench: a pluggable benchmark suite for score-based samplers.

The public API: what a plugin author and a script user need, and nothing else.

- Plugins: ``hookimpl``; the protocols ``Target``, ``ScoreEstimate``, ``Initializer``, ``Sampler``,
  ``Metric`` with ``MetricContext``, ``TrainingData`` and ``StepCallback``; the errors a component
  raises or a user catches; the parameter helpers that name the parameter in their errors.
- Components that reach beyond their params: ``get_registry`` (build another registered component,
  as the ``tv_witness`` metric builds its witness score), ``resolve_suite_path`` (a path param read
  relative to the suite file), ``derive_seed`` and ``canonical_json`` (seeds and cache keys).
- Trained scores: the on-disk cache of trained networks, ``CacheEntry`` (one artifact: its
  snapshots, written atomically under a lock) with ``cache_root``, and ``source_digest`` and
  ``tensor_digest`` for its keys; ``pack_entry`` and ``install_entry`` carry an entry to workers
  that do not share the disk; ``numeric_context`` trains in a cell's dtype on one thread.
- Executors: ``WORKER_MODULES``, what a worker process imports to run cells.
- Reporters: ``write_text_atomic``, and the reports themselves: ``leaderboard_markdown``,
  ``contrast_markdown``, ``write_html``.
- Scripts: ``run_suite`` (what ``bench run`` does), ``load_results`` and ``RunResults`` (a results
  folder read back).

The names of the later stages (``numeric_context``, the reports, the scripts' names) are imported on
first use, so that importing a plugin does not import pandas, matplotlib or the harness.

Conformance checks for a plugin's tests live in :mod:`bench_core.kit`. The stages of the harness
(``base``, ``components``, ``suite``, ``plan``, ``cell``, ``store``, ``run``, ``results``,
``findings``, ``report``, ``kit``, then ``pipeline`` and ``cli``) are internal; see
``docs/architecture.md``.
"""
from __future__ import annotations

from typing import Any

# the cache of trained networks: ddpm_mlp keys and stores its weights, the ray executor ships them to workers
from bench_core.base.artifact_cache import (CacheEntry, cache_root, install_entry, pack_entry, source_digest,
                                            tensor_digest)
# the markdown reporters write their files whole or not at all
from bench_core.base.atomic_files import write_text_atomic
from bench_core.base.errors import (BenchError, ComponentError, Diverged, DiskFullError, PluginError, ResultsError,
                                    SkipCell, SkipMetric, SuiteError, did_you_mean)
# seeds of a network's training (ddpm_mlp) and the canonical text hashed into its cache key
from bench_core.base.seeding import canonical_json, derive_seed
# the tv_witness metric builds its witness score from the registry
from bench_core.components.discovery import BUILTIN_MODULES as _BUILTIN_MODULES, get_registry
from bench_core.components.hookspecs import hookimpl
from bench_core.components.params import (choice, nonnegative_float, nonnegative_int, open_interval_float,
                                          positive_float, positive_int, refuse_unused, tensor_size, vector)
from bench_core.components.protocols import (Initializer, Metric, MetricContext, Sampler, ScoreEstimate,
                                             StepCallback, Target, TrainingData)
# the network score reads its weights file relative to the suite file
from bench_core.suite.paths import resolve_suite_path

#: what a worker process imports to run cells and train networks: the harness's task functions and the
#: built-in plugins (the process executor's fork server imports them once, before forking workers)
WORKER_MODULES = ("bench_core.run.tasks", "bench_core.run.training", *_BUILTIN_MODULES)

_LAZY = {"run_suite": "bench_core.pipeline", "load_results": "bench_core.results.run_results",
         "RunResults": "bench_core.results.run_results",
         # ddpm_mlp trains in the cell's dtype on one thread, as the cell that uses the network runs
         "numeric_context": "bench_core.cell.runner",
         # the leaderboard, contrast and html reporters (pandas; write_html also imports matplotlib)
         "leaderboard_markdown": "bench_core.findings.leaderboard",
         "contrast_markdown": "bench_core.findings.contrast",
         "write_html": "bench_core.report.html_report"}

__all__ = ["hookimpl",
           "Target", "ScoreEstimate", "Initializer", "Sampler", "Metric", "MetricContext", "TrainingData",
           "StepCallback",
           "BenchError", "SuiteError", "PluginError", "ComponentError", "ResultsError", "DiskFullError",
           "SkipCell", "SkipMetric", "Diverged", "did_you_mean",
           "positive_int", "positive_float", "nonnegative_int", "nonnegative_float", "open_interval_float",
           "choice", "vector", "tensor_size", "refuse_unused",
           "get_registry", "resolve_suite_path", "derive_seed", "canonical_json",
           "CacheEntry", "cache_root", "source_digest", "tensor_digest", "pack_entry", "install_entry",
           "WORKER_MODULES", "write_text_atomic",
           *_LAZY]


def __getattr__(name: str) -> Any:
    """The names of ``_LAZY`` on first use (they import pandas, matplotlib or the harness)."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bench_core' has no attribute '{name}'")
