"""bench_core is laid out by stage: no import runs from a lower stage to a higher one, none forms a
cycle, and the built-in plugins import only the public API (``bench_core``'s own names)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "bench_core"
#: the stages in the order a run goes through them; a module may import its own stage and earlier ones
STAGES = ("base", "components", "suite", "plan", "cell", "store", "run", "results", "findings", "report", "kit",
          "pipeline", "cli")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, *, top_level_only: bool = False) -> set[str]:
    """The bench_core modules ``path`` imports (``from bench_core.x import y`` counts as bench_core.x)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "bench_core" or name.startswith("bench_core.")}


def _stage(module: str) -> int:
    return STAGES.index(module.split(".")[1])


def _core_modules() -> dict[str, Path]:
    return {_module_name(p): p for p in CORE.rglob("*.py")}


def test_the_folder_listing_shows_the_stages():
    packages = {p.name for p in CORE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert packages == set(STAGES) - {"pipeline", "cli"}
    for name in packages:  # each says what it holds and what it may import
        doc = ast.get_docstring(ast.parse((CORE / name / "__init__.py").read_text()))
        assert doc and "Import" in doc, name
    loose = {p.stem for p in CORE.glob("*.py")} - {"__init__"}
    assert loose == {"pipeline", "cli"}


def test_no_import_runs_from_a_lower_stage_to_a_higher_one():
    wrong = []
    for name, path in _core_modules().items():
        if name == "bench_core":
            continue  # the public API re-exports from the stages (the pipeline lazily)
        for target in _imports(path):
            if target == "bench_core":
                wrong.append(f"{name} imports the public API bench_core (import from the stage instead)")
            elif _stage(target) > _stage(name):
                wrong.append(f"{name} ({STAGES[_stage(name)]}) imports {target} ({STAGES[_stage(target)]})")
    assert wrong == []


def test_no_import_cycle():
    modules = _core_modules()
    graph = {name: {t for t in _imports(path, top_level_only=True) if t in modules and t != name}
             for name, path in modules.items() if name != "bench_core"}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            assert state.get(nxt) != 1, "import cycle: " + " -> ".join(trail + [node, nxt])
            if nxt not in state:
                visit(nxt, trail + [node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


def test_built_in_plugins_import_only_the_public_api():
    wrong = []
    for path in (ROOT / "plugins").rglob("*.py"):
        for target in _imports(path):
            if target != "bench_core":
                wrong.append(f"{path.relative_to(ROOT)} imports {target}")
    assert wrong == []


def test_modules_and_functions_stay_small():
    """One concept per module: no bench_core or plugin module over 350 lines, no function over 80."""
    too_long = []
    for path in [*CORE.rglob("*.py"), *(ROOT / "plugins").rglob("*.py")]:
        text = path.read_text()
        if text.count("\n") > 350:
            too_long.append(f"{path.relative_to(ROOT)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 80:
                too_long.append(f"{path.relative_to(ROOT)}: {node.name} has {node.end_lineno - node.lineno + 1} lines")
    assert not too_long, "; ".join(too_long)


def test_every_public_name_resolves_and_the_cli_starts_without_torch():
    """bench_core's names are imported on first use: each resolves, and `import bench_core.cli` loads
    neither torch nor the plugins (`bench run --executor process` starts the workers' fork server first)."""
    import subprocess
    import sys

    code = ("import sys, bench_core, bench_core.cli\n"
            "assert 'torch' not in sys.modules and not any(m.startswith('bench_plugins') for m in sys.modules)\n"
            "missing = [n for n in bench_core.__all__ if getattr(bench_core, n, None) is None]\n"
            "assert not missing, missing\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
