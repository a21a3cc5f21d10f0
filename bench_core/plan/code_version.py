"""What a cell key hashes of the code: the source files of the numeric core and of the factories.

The contents alone, in sorted order: moving or renaming a file does not change a key, editing it
does (docs/architecture.md, Cell keys).
"""
from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable, Mapping

#: the harness modules whose code changes a cell's numbers (part of every cell key, with the factories' code)
NUMERIC_CORE = ("bench_core.cell.runner", "bench_core.base.seeding", "bench_core.base.torch_defaults",
                "bench_core.plan.training_data", "bench_core.plan.cells", "bench_core.cell.nfe",
                "bench_core.plan.time_checkpoints")


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
        files |= _factory_files(factory)
    return _digest(files)


def _factory_files(factory: Any) -> set[str]:
    """The source file of a factory and of the modules of its own package that it imports."""
    modules: set[str] = set()
    _package_modules(getattr(factory, "__module__", "") or "", modules)
    files = set()
    for module in [factory, *(sys.modules[m] for m in modules)]:
        try:
            files.add(inspect.getsourcefile(module) or "")
        except TypeError:
            files.add(repr(module))
    return files


def _digest(files: set[str]) -> str:
    # the contents alone, in sorted order: moving or renaming a file does not change a key, editing it does
    contents = sorted(_file_hash(f) if f and Path(f).exists() else hashlib.sha256(f.encode()).hexdigest()
                      for f in files)
    return hashlib.sha256("".join(contents).encode()).hexdigest()[:16]


def component_digests(components: Mapping[str, Iterable[Any]], registry: Any) -> dict[str, Any]:
    """What run.json records of the code (``"code"``): the digest of the numeric core (``harness``) and,
    per kind and component name, the digest of its factory's files, the two parts :func:`code_version`
    hashes together into a cell key. ``components``: kind -> specs (anything with a ``name``), as
    ``Suite.components``; a later run's digests, compared with these, say which components' code changed."""
    out: dict[str, Any] = {"harness": _digest({_source_of(name) for name in NUMERIC_CORE})}
    for kind, specs in components.items():
        names = dict.fromkeys(spec.name for spec in specs)
        out[kind] = {name: _digest(_factory_files(registry.get(kind, name).factory)) for name in names}
    return out
