"""The README's plugin example runs as written and passes the conformance kit."""
from __future__ import annotations

import re
import types
from pathlib import Path

from bench_core.plugin_manager import build_registry
from bench_core.testing import check_sampler

README = (Path(__file__).parents[1] / "README.md").read_text()


def code_blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_readme_starts_with_the_two_commands():
    first, second = code_blocks("bash")[:2]
    assert "pip install torch==2.13.0" in first and "bench run suites/" in first
    assert 'pip install -e ".[test]"' in second and "python -m pytest" in second
    assert README.index("```bash") < 20


def test_plugin_example_registers_and_conforms():
    source = next(b for b in code_blocks("python") if "class TemperedULA" in b)
    module = types.ModuleType("my_bench_sampler")
    exec(compile(source, "README.md", "exec"), module.__dict__)
    registry = build_registry(extra=[module], entry_points=False)
    sampler = registry.create("samplers", "tempered_ula", step_size=0.01, n_steps=500)
    check_sampler(sampler)
