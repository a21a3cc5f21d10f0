"""Discovers plugins (built-ins, entry points of group ``bench``) and fills a Registry.

Built-in modules are registered exactly like third-party ones: each is a module of
``@hookimpl register_*`` functions. ``BENCH_PLUGINS=a,b`` restricts which entry points
load (empty: none); built-ins always load.
"""
from __future__ import annotations

import importlib
import os
from importlib import metadata
from types import ModuleType
from typing import Any, Iterable, Optional

import pluggy

from bench_core.components import hookspecs
from bench_core.base.errors import PluginError, did_you_mean
from bench_core.components.hookspecs import KINDS, PROJECT
from bench_core.components.builtin_modules import BUILTIN_MODULES
from bench_core.components.registry import PluginInfo, Registry

ENTRY_POINT_GROUP = "bench"
_IMPL_ATTR = f"{PROJECT}_impl"


def _version() -> str:
    try:
        return metadata.version("bench")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def _allowed_entry_points() -> Optional[set[str]]:
    raw = os.environ.get("BENCH_PLUGINS")
    if raw is None:
        return None
    return {name.strip() for name in raw.split(",") if name.strip()}


def _check_hook_names(name: str, plugin: Any) -> None:
    """A function marked @hookimpl whose name is not a hook is a typo: refuse it."""
    for attr in dir(plugin):
        value = getattr(plugin, attr, None)
        if callable(value) and hasattr(value, _IMPL_ATTR) and attr not in KINDS.values():
            raise PluginError(
                f"plugin '{name}' implements unknown hook '{attr}'"
                f"{did_you_mean(attr, KINDS.values())}; hooks are {', '.join(KINDS.values())}")


MODULES_ENV = "BENCH_PLUGIN_MODULES"


def _module_plugins(broken: dict[str, str]) -> list[tuple[str, Any, str, str]]:
    """Modules named in ``BENCH_PLUGIN_MODULES`` (comma-separated import paths): a plugin used before it
    is packaged, loaded like an entry point (and by every worker, which inherits the variable)."""
    loaded = []
    for name in filter(None, (n.strip() for n in os.environ.get(MODULES_ENV, "").split(","))):
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - one bad module must not take the others down
            broken[name] = (f"plugin module '{name}' ({MODULES_ENV}) failed to import: {type(exc).__name__}: "
                            f"{exc}; check the name and sys.path (PYTHONPATH)")
            continue
        loaded.append((name, module, getattr(module, "__version__", "?"), f"entry point of {MODULES_ENV}"))
    return loaded


def _entry_point_plugins(broken: dict[str, str]) -> list[tuple[str, Any, str, str]]:
    """Load entry points of group ``bench``: (name, module, version, source) each. One that fails to
    import is recorded in ``broken`` (name -> reason) instead: it must not take the other plugins down."""
    allowed = _allowed_entry_points()
    eps = list(metadata.entry_points(group=ENTRY_POINT_GROUP))
    if allowed is not None:
        unknown = allowed - {ep.name for ep in eps}
        if unknown:
            names = sorted(ep.name for ep in eps)
            bad = sorted(unknown)[0]
            raise PluginError(
                f"BENCH_PLUGINS names '{bad}'{did_you_mean(bad, names)}, which is not an installed "
                f"plugin; installed: {', '.join(names) or 'none'}")
    loaded = []
    for ep in sorted(eps, key=lambda e: e.name):
        if allowed is not None and ep.name not in allowed:
            continue
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else "?"
        version = dist.version if dist is not None else "?"
        try:
            module = ep.load()
        except Exception as exc:  # noqa: BLE001 - any import-time failure makes this one plugin unavailable
            broken[ep.name] = (f"plugin '{ep.name}' (entry point '{ep.value}' of distribution '{dist_name}') failed "
                               f"to load: {type(exc).__name__}: {exc}; fix or uninstall it, or leave it out with "
                               "BENCH_PLUGINS")
            continue
        loaded.append((ep.name, module, version, f"entry point of {dist_name}"))
    return loaded


def build_registry(extra: Iterable[ModuleType | Any] = (), *, entry_points: bool = True) -> Registry:
    """Build a fresh Registry from built-ins, entry points and ``extra`` plugin objects.

    A broken entry-point plugin (it fails to import, implements a misspelled hook, takes a name
    already registered, or its hook raises) is left out whole and recorded in ``registry.broken``
    with the reason; built-ins and plugins registered in code (``extra``) raise instead.
    """
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    registry = Registry()
    version = _version()
    plugins: list[tuple[str, Any, str, str]] = [
        (mod, importlib.import_module(mod), version, "built-in") for mod in BUILTIN_MODULES]
    if entry_points:
        plugins += _entry_point_plugins(registry.broken) + _module_plugins(registry.broken)
    for obj in extra:
        name = getattr(obj, "__name__", type(obj).__name__)
        plugins.append((name, obj, getattr(obj, "__version__", "?"), "registered in code"))
    degradable = {name for name, _, _, source in plugins if source.startswith("entry point")}
    for name, obj, plugin_version, source in plugins:
        if name in registry.plugins:
            raise PluginError(f"plugin name '{name}' is used twice; rename the entry point")
        try:
            _check_hook_names(name, obj)
        except PluginError as exc:
            if name not in degradable:
                raise
            registry.broken[name] = str(exc)
            continue
        pm.register(obj, name=name)
        registry.plugins[name] = PluginInfo(name, plugin_version, source)
    for kind, hook_name in KINDS.items():
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            if impl.plugin_name in registry.broken:
                continue
            try:
                _call_register_hook(registry, kind, impl)
            except PluginError as exc:
                if impl.plugin_name not in degradable:
                    raise
                registry.mark_broken(impl.plugin_name, str(exc))
    return registry


def _call_register_hook(registry: Registry, kind: str, impl: Any) -> None:
    plugin = impl.plugin_name

    def register(name: str, factory: Any, *, description: str = "") -> None:
        registry.add(kind, name, factory, description=description, plugin=plugin)

    try:
        impl.function(register=register)
    except PluginError:
        raise
    except TypeError as exc:
        raise PluginError(f"plugin '{plugin}': {KINDS[kind]} failed: {exc}; call "
                          "register(name, factory, description='...')") from exc
    except Exception as exc:
        raise PluginError(f"plugin '{plugin}': {KINDS[kind]} raised {type(exc).__name__}: {exc}") from exc


_REGISTRY: Optional[Registry] = None


def get_registry() -> Registry:
    """The process-wide registry (built on first use)."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = build_registry()
    return _REGISTRY
