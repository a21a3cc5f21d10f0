"""The README's "Layout" section matches the tree, and every built-in plugin sits in its kind's subpackage."""
from __future__ import annotations

import re
from pathlib import Path

from bench_core.components.hookspecs import KINDS
from bench_core.components.discovery import BUILTIN_MODULES

ROOT = Path(__file__).resolve().parents[1]


def _layout_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## Layout\n")
    end = text.find("\n## ", start + 1)
    return text[start:] if end == -1 else text[start:end]


def _modules(folder: str) -> set[str]:
    return {p.relative_to(ROOT).as_posix() for p in (ROOT / folder).rglob("*.py") if p.name != "__init__.py"}


def test_readme_layout_lists_every_module_and_nothing_else():
    listed = set(re.findall(r"\b((?:plugins|bench_core)/[\w/]+\.py)\b", _layout_section()))
    tree = _modules("plugins") | _modules("bench_core")
    assert sorted(tree - listed) == [], "modules missing from README's Layout"
    assert sorted(listed - tree) == [], "README's Layout lists modules that do not exist"


def test_every_plugin_module_sits_in_its_kinds_subpackage():
    for path in _modules("plugins"):
        parts = path.split("/")
        assert len(parts) >= 3 and parts[1] in KINDS, f"{path} is not inside plugins/<kind>/"


def test_builtin_modules_are_the_registering_modules_of_the_tree():
    # A module that registers components must be loaded, and a loaded one must exist.
    registering = {p[:-3].replace("plugins/", "bench_plugins/", 1).replace("/", ".")
                   for p in _modules("plugins") if "@hookimpl" in (ROOT / p).read_text()}
    assert registering == set(BUILTIN_MODULES)
