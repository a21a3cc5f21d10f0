"""bench: a pluggable benchmark suite for score-based samplers.

The public API: what a plugin author and a script user need, and nothing else.

- Plugins: ``hookimpl``; the protocols ``Target``, ``ScoreEstimate``, ``Initializer``, ``Sampler``,
  ``Metric`` with ``MetricContext``, ``TrainingData`` and ``StepCallback``; the errors a component
  raises or a user catches; the parameter helpers that name the parameter in their errors.
- Scripts: ``run_suite`` (what ``bench run`` does), ``load_results`` and ``RunResults`` (a results
  folder read back). These are imported on first use, so that importing a plugin does not import
  pandas or the harness.

Conformance checks for a plugin's tests live in :mod:`bench_core.kit`. The stages of the harness
(``base``, ``components``, ``suite``, ``plan``, ``cell``, ``store``, ``run``, ``results``,
``findings``, ``report``, ``kit``, then ``pipeline`` and ``cli``) are internal; see
``docs/architecture.md``.
"""
from __future__ import annotations

from typing import Any

from bench_core.base.errors import (BenchError, ComponentError, Diverged, DiskFullError, PluginError, ResultsError,
                                    SkipCell, SkipMetric, SuiteError, did_you_mean)
from bench_core.components.hookspecs import hookimpl
from bench_core.components.params import (choice, nonnegative_float, nonnegative_int, open_interval_float,
                                          positive_float, positive_int, tensor_size, vector)
from bench_core.components.protocols import (Initializer, Metric, MetricContext, Sampler, ScoreEstimate,
                                             StepCallback, Target, TrainingData)

_LAZY = {"run_suite": "bench_core.pipeline", "load_results": "bench_core.results.run_results",
         "RunResults": "bench_core.results.run_results"}

__all__ = ["hookimpl",
           "Target", "ScoreEstimate", "Initializer", "Sampler", "Metric", "MetricContext", "TrainingData",
           "StepCallback",
           "BenchError", "SuiteError", "PluginError", "ComponentError", "ResultsError", "DiskFullError",
           "SkipCell", "SkipMetric", "Diverged", "did_you_mean",
           "positive_int", "positive_float", "nonnegative_int", "nonnegative_float", "open_interval_float",
           "choice", "vector", "tensor_size",
           *_LAZY]


def __getattr__(name: str) -> Any:
    """``run_suite``, ``load_results`` and ``RunResults`` on first use (they import pandas)."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bench_core' has no attribute '{name}'")
