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
- Executors: ``WORKER_MODULES``, what a worker process imports to run cells, and the fork server
  workers are forked from with them loaded (``acquire_fork_server``, ``release_fork_server``).
- Reporters: ``write_text_atomic``, and the reports themselves: ``leaderboard_markdown``,
  ``contrast_markdown``, ``write_html``.
- Scripts: ``run_suite`` (what ``bench run`` does), ``load_results`` and ``RunResults`` (a results
  folder read back), ``compare_runs`` and ``Comparison`` (two runs paired by seed: what ``bench compare``
  prints).

Every name is imported on first use (``from bench_core import hookimpl`` imports pluggy, not torch), so
that ``bench run`` can start the worker processes' fork server before it imports torch, and importing a
plugin does not import pandas, matplotlib or the harness.

Conformance checks for a plugin's tests live in :mod:`bench_core.kit`. The stages of the harness
(``base``, ``components``, ``suite``, ``plan``, ``cell``, ``store``, ``run``, ``results``,
``findings``, ``report``, ``kit``, then ``pipeline`` and ``cli``) are internal; see
``docs/architecture.md``.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: public name -> the module that defines it (imported on first use)
_SOURCES = {
    # plugins
    "hookimpl": "bench_core.components.hookspecs",
    **dict.fromkeys(("Target", "ScoreEstimate", "Initializer", "Sampler", "Metric", "MetricContext", "TrainingData",
                     "StepCallback"), "bench_core.components.protocols"),
    **dict.fromkeys(("BenchError", "SuiteError", "PluginError", "ComponentError", "ResultsError", "DiskFullError",
                     "SkipCell", "SkipMetric", "Diverged", "did_you_mean"), "bench_core.base.errors"),
    **dict.fromkeys(("positive_int", "positive_float", "nonnegative_int", "nonnegative_float", "open_interval_float",
                     "choice", "vector", "tensor_size", "refuse_unused"), "bench_core.components.params"),
    # the tv_witness metric builds its witness score from the registry
    "get_registry": "bench_core.components.discovery",
    # the network score reads its weights file relative to the suite file
    "resolve_suite_path": "bench_core.suite.paths",
    # seeds of a network's training (ddpm_mlp) and the canonical text hashed into its cache key
    **dict.fromkeys(("derive_seed", "canonical_json"), "bench_core.base.seeding"),
    # the cache of trained networks: ddpm_mlp keys and stores its weights, the ray executor ships them to workers
    **dict.fromkeys(("CacheEntry", "cache_root", "source_digest", "tensor_digest", "pack_entry", "install_entry"),
                    "bench_core.base.artifact_cache"),
    # ddpm_mlp trains in the cell's dtype on one thread, as the cell that uses the network runs
    "numeric_context": "bench_core.cell.runner",
    # executors: what workers import, and the fork server they are forked from
    **dict.fromkeys(("WORKER_MODULES", "acquire_fork_server", "release_fork_server"), "bench_core.run.fork_server"),
    # reporters: files written whole or not at all; the leaderboard, contrast and html reports
    "write_text_atomic": "bench_core.base.atomic_files",
    "leaderboard_markdown": "bench_core.findings.leaderboard",
    "contrast_markdown": "bench_core.findings.contrast",
    "write_html": "bench_core.report.html_report",
    # scripts
    "run_suite": "bench_core.pipeline",
    **dict.fromkeys(("load_results", "RunResults"), "bench_core.results.run_results"),
    **dict.fromkeys(("compare_runs", "Comparison"), "bench_core.findings.compare_runs"),
}

__all__ = list(_SOURCES)

if TYPE_CHECKING:  # what type checkers and editors see
    from bench_core.base.artifact_cache import (CacheEntry, cache_root, install_entry, pack_entry, source_digest,
                                                tensor_digest)
    from bench_core.base.atomic_files import write_text_atomic
    from bench_core.base.errors import (BenchError, ComponentError, Diverged, DiskFullError, PluginError,
                                        ResultsError, SkipCell, SkipMetric, SuiteError, did_you_mean)
    from bench_core.base.seeding import canonical_json, derive_seed
    from bench_core.cell.runner import numeric_context
    from bench_core.components.discovery import get_registry
    from bench_core.components.hookspecs import hookimpl
    from bench_core.components.params import (choice, nonnegative_float, nonnegative_int, open_interval_float,
                                              positive_float, positive_int, refuse_unused, tensor_size, vector)
    from bench_core.components.protocols import (Initializer, Metric, MetricContext, Sampler, ScoreEstimate,
                                                 StepCallback, Target, TrainingData)
    from bench_core.findings.compare_runs import Comparison, compare_runs
    from bench_core.findings.contrast import contrast_markdown
    from bench_core.findings.leaderboard import leaderboard_markdown
    from bench_core.pipeline import run_suite
    from bench_core.report.html_report import write_html
    from bench_core.results.run_results import RunResults, load_results
    from bench_core.run.fork_server import WORKER_MODULES, acquire_fork_server, release_fork_server
    from bench_core.suite.paths import resolve_suite_path


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use."""
    if name not in _SOURCES:
        raise AttributeError(f"module 'bench_core' has no attribute '{name}'")
    value = getattr(importlib.import_module(_SOURCES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
