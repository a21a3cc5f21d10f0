"""The registry of components, filled by plugins through ``register(name, factory, ...)``."""
from __future__ import annotations

import inspect
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable

from bench_core.base.errors import ComponentError, PluginError, did_you_mean
from bench_core.components.hookspecs import KINDS
from bench_core.components.protocols import conformance_problem

SINGULAR = {
    "targets": "target", "scores": "score", "initializers": "initializer", "samplers": "sampler",
    "metrics": "metric", "executors": "executor", "reporters": "reporter",
}


# annotation -> accepts(value): checked before a factory runs, so `bench check` catches `n_steps = 100.0`
_SCALAR_CHECKS: dict[type, Callable[[Any], bool]] = {
    int: lambda v: isinstance(v, int) and not isinstance(v, bool),
    float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    bool: lambda v: isinstance(v, bool),
    str: lambda v: isinstance(v, str),
}


_UNIONS = (typing.Union, getattr(types, "UnionType", typing.Union))  # Optional[X] and X | None


def _scalar_annotation(annotation: Any) -> Any:
    """``X`` for ``Optional[X]`` (a param whose default None means "not written"), else the annotation."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in _UNIONS and len(args) == 2 and type(None) in args:
        return next(a for a in args if a is not type(None))
    return annotation


def renamed_params(factory: Callable[..., Any]) -> dict[str, str]:
    """A factory's ``renamed`` attribute, ``{old param name: new name}`` ({} when it has none).

    A plugin that renames a param keeps the old name here, on the class or the function, so that a
    suite still written with it is answered with the new name instead of "unknown parameter".
    """
    renamed = getattr(factory, "renamed", None)
    if not isinstance(renamed, dict):
        return {}
    return {old: new for old, new in renamed.items() if isinstance(old, str) and isinstance(new, str)}


def _type_hints(factory: Callable[..., Any]) -> dict[str, Any]:
    """The resolved annotations of a factory (a class: of its ``__init__``); {} when they cannot be read."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        return typing.get_type_hints(target)
    except Exception:  # noqa: BLE001 - unresolvable annotations are simply not checked
        return {}


@dataclass(frozen=True)
class Component:
    """One registered component: what it is called, how to build it, who provided it."""

    kind: str
    name: str
    factory: Callable[..., Any]
    description: str
    plugin: str


@dataclass
class PluginInfo:
    """A loaded plugin: its name, version and where it came from."""

    name: str
    version: str
    source: str
    components: list[Component] = field(default_factory=list)


class Registry:
    """Components by kind and name, and the plugins that provided them."""

    def __init__(self) -> None:
        self._components: dict[str, dict[str, Component]] = {kind: {} for kind in KINDS}
        self.plugins: dict[str, PluginInfo] = {}
        #: plugins left out because they are broken: name -> the reason (shown by every command)
        self.broken: dict[str, str] = {}

    def mark_broken(self, plugin: str, reason: str) -> None:
        """Leave ``plugin`` out: drop the components it registered so far and record why."""
        for components in self._components.values():
            for name in [n for n, c in components.items() if c.plugin == plugin]:
                del components[name]
        self.plugins.pop(plugin, None)
        self.broken[plugin] = reason

    def add(self, kind: str, name: str, factory: Callable[..., Any], *, description: str = "",
            plugin: str) -> None:
        """Add a component; a name already taken is a :class:`PluginError` naming both plugins."""
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin '{plugin}' registered a {SINGULAR[kind]} with name {name!r}; "
                              "names must be non-empty strings")
        if not callable(factory):
            raise PluginError(f"plugin '{plugin}' registered {SINGULAR[kind]} '{name}' with a factory "
                              f"of type {type(factory).__name__}, which is not callable; pass the "
                              "function or class that builds it")
        taken = self._components[kind].get(name)
        if taken is not None:
            raise PluginError(f"plugin '{plugin}' registers {SINGULAR[kind]} '{name}', already registered "
                              f"by plugin '{taken.plugin}'; rename one of them (names are never "
                              "silently replaced)")
        component = Component(kind, name, factory, description, plugin)
        self._components[kind][name] = component
        if plugin in self.plugins:
            self.plugins[plugin].components.append(component)

    def names(self, kind: str) -> list[str]:
        """Registered names of one kind, sorted."""
        return sorted(self._components[kind])

    def components(self, kind: str) -> list[Component]:
        """Registered components of one kind, sorted by name."""
        return [self._components[kind][n] for n in self.names(kind)]

    def get(self, kind: str, name: str) -> Component:
        """Look up a component; an unknown name raises with a did-you-mean."""
        if kind not in self._components:
            raise ComponentError(f"unknown component kind '{kind}'{did_you_mean(kind, KINDS)}; "
                                 f"kinds are {', '.join(KINDS)}")
        try:
            return self._components[kind][name]
        except KeyError:
            known = self.names(kind)
            unavailable = "".join(f"; it may come from {reason}" for reason in self.broken.values())
            raise ComponentError(
                f"unknown {SINGULAR[kind]} '{name}'{did_you_mean(name, known)}; "
                f"known: {', '.join(known) or 'none'} (see `bench list {kind}`){unavailable}") from None

    def check_params(self, kind: str, name: str, params: dict[str, Any], n_positional: int = 0) -> None:
        """Raise ValueError naming any parameter the factory's signature does not accept; an old name the
        factory declares in ``renamed`` gets the new one."""
        factory = self.get(kind, name).factory
        renamed = renamed_params(factory)
        for key in params:
            if key in renamed:
                raise ValueError(f"parameter '{key}' of {SINGULAR[kind]} '{name}' is now '{renamed[key]}'; "
                                 "rename it in the suite")
        try:
            sig = inspect.signature(factory)
        except (TypeError, ValueError):
            return
        parameters = list(sig.parameters.values())
        if any(p.kind is p.VAR_KEYWORD for p in parameters):
            return
        accepted = [p.name for p in parameters[n_positional:]
                    if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        for key in params:
            if key not in accepted:
                raise ValueError(f"unknown parameter '{key}'{did_you_mean(key, accepted)} for "
                                 f"{SINGULAR[kind]} '{name}'; accepted: {', '.join(accepted) or 'none'}")
        hints = _type_hints(factory)
        for key, value in params.items():
            wanted = _scalar_annotation(hints.get(key))
            if wanted in _SCALAR_CHECKS and not _SCALAR_CHECKS[wanted](value):
                raise ValueError(f"parameter '{key}' of {SINGULAR[kind]} '{name}' must be {wanted.__name__} "
                                 f"(its annotation), got {value!r}")

    def create(self, kind: str, name: str, *args: Any, **params: Any) -> Any:
        """Build a component and check it is one; the factory's ValueError passes through."""
        component = self.get(kind, name)
        self.check_params(kind, name, params, n_positional=len(args))
        obj = component.factory(*args, **params)
        problem = conformance_problem(kind, obj)
        if problem is not None:
            raise PluginError(
                f"plugin '{component.plugin}': the factory of {SINGULAR[kind]} '{name}' returned "
                f"{type(obj).__name__}, but {problem}; make the factory return an object following "
                f"the {SINGULAR[kind].capitalize()} protocol (bench_core.components.protocols)")
        return obj
