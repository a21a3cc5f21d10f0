"""Shared fixtures: a suite writer and a registry with the test-only plugins."""
from __future__ import annotations

import os

import sys
import textwrap
from pathlib import Path

import pytest
import torch

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS / "plugins"))

from helpers import EXACT_AND_BALL_TRAP, plugins_env  # noqa: E402 (tests/ is on sys.path)

BASE_SUITE = """
[suite]
name = "t"
seeds = [0, 1]
n_samples = 200
device = "cpu"

[data]
n_train = 50

[[targets]]
name = "gaussian"
params = { dim = 3, mean = 1.0 }

[[samplers]]
name = "ula"
params = { step_size = 0.05, n_steps = 20 }

[[metrics]]
name = "mean_error"
"""


# A small fragility sweep: the ball trap on N(3 * 1, I) at three dimensions, so eps_0^2 falls with d
# (one panel, three points), against the exact score, under ULA and DDIM; 24 cells, a few seconds.
FRAGILITY_SUITE = """
[suite]
name = "sweep"
seeds = [0, 1]
n_samples = 300

[[targets]]
name = "gaussian"
params = { mean = 3.0 }
grid = { dim = [4, 8, 16] }
""" + EXACT_AND_BALL_TRAP + """
[[samplers]]
name = "ula"
params = { step_size = 0.0025, n_steps = 200 }

[[samplers]]
name = "ddim"
params = { n_steps = 30 }

[[metrics]]
name = "score_error"

[[metrics]]
name = "tv_witness"
params = { witness = "ball_trap" }
"""


@pytest.fixture(scope="session")
def fragility_run(tmp_path_factory):
    """The results folder of :data:`FRAGILITY_SUITE`, run once per session (read it, do not write to it)."""
    from bench_core.pipeline import run_suite

    folder = tmp_path_factory.mktemp("fragility")
    (folder / "sweep.toml").write_text(FRAGILITY_SUITE)
    run_suite(folder / "sweep.toml", out=folder / "out")
    return folder / "out"


@pytest.fixture(autouse=True, scope="session")
def network_cache(tmp_path_factory):
    """Trained networks go to a cache of the test session, never the user's ~/.cache/bench."""
    import os

    root = tmp_path_factory.mktemp("network-cache")
    previous = os.environ.get("BENCH_CACHE")
    os.environ["BENCH_CACHE"] = str(root)
    yield root
    if previous is None:
        os.environ.pop("BENCH_CACHE", None)
    else:
        os.environ["BENCH_CACHE"] = previous


@pytest.fixture
def write_suite(tmp_path):
    """Write a suite file (dedented) and return its path."""

    def write(text: str = BASE_SUITE, name: str = "suite.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def toy_registry():
    """Built-ins plus tests/plugins/toy_plugins.py (broken and toy components)."""
    import toy_plugins

    from bench_core.components.discovery import build_registry

    return build_registry(extra=[toy_plugins], entry_points=False)


@pytest.fixture
def float64():
    """Targets pick their sample dtype from torch's default dtype: use float64, then restore."""
    from bench_core.base.torch_defaults import default_dtype

    with default_dtype(torch.float64):
        yield


@pytest.fixture
def toy_plugins_in_workers(monkeypatch):
    """Worker processes (process executor, a local Ray) inherit this environment: they load the toy
    plugins of tests/plugins, as the registry of this process does (``toy_registry``)."""
    monkeypatch.setenv("BENCH_PLUGIN_MODULES", "toy_plugins")
    monkeypatch.setenv("PYTHONPATH", plugins_env()["PYTHONPATH"])


@pytest.fixture
def one_thread():
    """Run on one intra-op thread (as cells do): on a small shared machine torch's 2-thread
    OpenMP loops (geomloss's logsumexp, small MLPs) can slow down 10-100x when the other core is busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def ray_address():
    """The Ray cluster tests run on: ``BENCH_RAY_ADDRESS`` (CI starts a head on 127.0.0.1), else None
    (the executor starts a local Ray). Skips where Ray is not installed."""
    pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[ray]'")
    return os.environ.get("BENCH_RAY_ADDRESS") or None


# ---------------------------------------------------------------- benchmarks (tests/benchmarks)

def pytest_collection_modifyitems(config, items):
    """With ``--benchmark-skip`` (the default addopts) the benchmarks do not run, not even the ones
    that time themselves; ``python -m pytest tests/benchmarks -o addopts=""`` runs them."""
    if config.getoption("benchmark_skip", False):
        skip = pytest.mark.skip(reason='benchmarks run with: python -m pytest tests/benchmarks -o addopts=""')
        for item in items:
            if "benchmarks" in item.path.parts:
                item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    import sys

    helpers = sys.modules.get("bench_helpers")
    if helpers is not None and helpers.ROWS:
        text = helpers.write_table()
        terminalreporter.write_sep("=", "bench benchmarks")
        terminalreporter.write_line(text)
        terminalreporter.write_line(f"written to {helpers.OUT / 'benchmarks.md'}")
