"""Whole plugins: every component a plugin registers built with default params and checked, and the
small problems (a Gaussian with its exact score, a tiny suite) a plugin's own tests start from.

>>> from bench_core.kit import check_plugin
>>> check_plugin(my_plugin_module)                    # doctest: +SKIP
[('samplers', 'my_sampler', 'ok')]
"""
from __future__ import annotations

import inspect
import json
from typing import Any, Optional

from bench_core.base.errors import SkipMetric
from bench_core.components.hookspecs import PROJECT
from bench_core.components.protocols import TrainingData
from bench_core.components.registry import SINGULAR
from bench_core.kit.assertions import seeded
from bench_core.kit.checks import check_initializer, check_metric, check_score, check_target
from bench_core.kit.sampler_check import DEFAULT_BIAS, check_sampler

__all__ = ["check_plugin", "plugin_registry", "gaussian_problem", "tiny_suite"]


def plugin_registry(module: Any) -> Any:
    """The registry of the built-in components and those ``module`` registers, whether or not it is
    installed (other installed plugins are left out): pass it to ``run_suite(..., registry=...)``."""
    from bench_core.components.discovery import build_registry

    return build_registry(extra=[module], entry_points=False)


def check_plugin(module: Any, *, sampler_bias: float = DEFAULT_BIAS) -> list[tuple[str, str, str]]:
    """Build every component a plugin registers, with default params, and check it.

    Parameters
    ----------
    module : module or object
        The plugin: an object with ``@hookimpl register_*`` functions.
    sampler_bias : float, default 0.02
        ``bias`` passed to :func:`check_sampler` for its samplers: their stated error at default params.

    Returns
    -------
    list of (kind, name, status)
        status is ``"ok"`` or ``"skipped: <why>"``: the factory needs params without defaults,
        the metric raised ``SkipMetric`` on a Gaussian target, or the kind (executors,
        reporters) has no check.

    Raises
    ------
    PluginError
        From ``build_registry(extra=[module], entry_points=False)`` for a broken plugin.
    AssertionError
        When the plugin registers nothing (naming functions that lack ``@hookimpl``), or a component
        fails its check (or its factory raises with default params).
    """
    registry = plugin_registry(module)
    plugin = getattr(module, "__name__", type(module).__name__)
    target, _, data = gaussian_problem()
    checks = {"targets": check_target, "scores": lambda obj: check_score(obj, target),
              "initializers": lambda obj: check_initializer(obj, target, data),
              "samplers": lambda obj: check_sampler(obj, bias=sampler_bias), "metrics": check_metric}
    components = registry.plugins[plugin].components
    if not components:
        # the usual cause: register_* functions without @hookimpl, which pluggy never calls
        unmarked = sorted(name for name in dir(module) if name.startswith("register_")
                          and callable(getattr(module, name)) and not hasattr(getattr(module, name), f"{PROJECT}_impl"))
        cause = (f"its {', '.join(unmarked)} lack @hookimpl (from bench_core import hookimpl)" if unmarked else
                 "it defines no @hookimpl register_<kind>(register) function, or they never call register(...)")
        raise AssertionError(f"plugin {plugin}: registers no component; {cause}")
    results: list[tuple[str, str, str]] = []
    for comp in components:
        args = (target, data) if comp.kind == "scores" else ()
        try:
            params = list(inspect.signature(comp.factory).parameters.values())[len(args):]
        except (TypeError, ValueError):  # no introspectable signature: just call it
            params = []
        needed = [p.name for p in params
                  if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        status = "ok"
        if comp.kind not in checks:
            status = f"skipped: no conformance check for {comp.kind}"
        elif needed:
            status = f"skipped: factory needs params {', '.join(needed)}"
        else:
            try:
                checks[comp.kind](comp.factory(*args))
            except SkipMetric as exc:
                status = f"skipped: does not apply to a Gaussian target ({exc})"
            except (AssertionError, ValueError, TypeError) as exc:
                why = str(exc) if isinstance(exc, AssertionError) else f"{type(exc).__name__}: {exc}"
                raise AssertionError(f"plugin '{plugin}', {SINGULAR[comp.kind]} '{comp.name}' built "
                                     f"with default params: {why}") from exc
        results.append((comp.kind, comp.name, status))
    return results


def gaussian_problem(dim: int = 2, mean: float = 1.0, n_train: int = 200, seed: int = 0) -> tuple[Any, Any, TrainingData]:
    """``(target, exact_score, data)``: N(mean * 1, I_dim), its exact score at every t, and ``n_train``
    exact draws as the training set (the problem the kit's score, initializer and metric checks run on;
    :func:`check_sampler` runs on :func:`sampler_targets`)."""
    from bench_plugins.scores.exact import ExactScore
    from bench_plugins.targets.gaussian import GaussianTarget

    target = GaussianTarget(dim, mean=mean, std=1.0)
    train = target.sample(n_train, seeded(seed))
    data = TrainingData(train, train, 1)
    return target, ExactScore(target, data), data


_TINY_ROLES = ("targets", "scores", "initializers", "samplers", "metrics")


def tiny_suite(kind: str, name: str, params: Optional[dict] = None) -> str:
    """TOML text of a small suite (2 seeds, 500 particles, d = 2) that uses component ``name`` of
    ``kind`` ("targets", "scores", "initializers", "samplers", "metrics") with ``params`` (numbers,
    strings, lists), and built-ins for the rest: gaussian N(1, I_2), the exact score, N(0, I) starts, ULA, mean_error."""
    if kind not in _TINY_ROLES:
        raise ValueError(f"kind must be one of {', '.join(_TINY_ROLES)}, got {kind!r}")
    defaults = {"targets": ("gaussian", {"dim": 2, "mean": 1.0}), "scores": ("exact", {}),
                "initializers": ("standard_normal", {}), "samplers": ("ula", {"step_size": 0.01, "n_steps": 300}),
                "metrics": ("mean_error" if kind != "targets" else "energy", {})}
    defaults[kind] = (name, params or {})
    parts = ['[suite]\nname = "tiny"\nseeds = [0, 1]\nn_samples = 500\ndevice = "cpu"\n']
    for table, (component, values) in defaults.items():
        inline = ", ".join(f"{k} = {json.dumps(v)}" for k, v in values.items())
        parts.append(f'[[{table}]]\nname = "{component}"\n' + (f"params = {{ {inline} }}\n" if inline else ""))
    return "\n".join(parts)
