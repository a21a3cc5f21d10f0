"""For plugin authors: conformance checks, the pytest plugin, the scaffold.

Imports base and components (and builds on the built-in plugins). In a plugin's tests::

    from bench_core.kit import check_plugin, check_sampler
"""
from bench_core.kit.checks import check_initializer, check_metric, check_score, check_target
from bench_core.kit.plugin_check import check_plugin, gaussian_problem, plugin_registry, tiny_suite
from bench_core.kit.sampler_check import check_sampler, sampler_margins, sampler_targets

__all__ = ["check_target", "check_score", "check_initializer", "check_sampler", "check_metric", "check_plugin",
           "plugin_registry", "sampler_margins", "sampler_targets", "gaussian_problem", "tiny_suite"]
