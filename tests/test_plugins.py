"""Plugin discovery: built-ins, entry points of a real (dist-info) distribution, broken plugins."""
from __future__ import annotations

import os
import subprocess
import textwrap
import types
from pathlib import Path

import pytest

from bench_core import hookimpl
from bench_core.base.errors import PluginError
from bench_core.components.discovery import build_registry
from helpers import run_cli

REPO = Path(__file__).parents[1]

GOOD_PLUGIN = '''
"""A third-party sampler plugin: ULA with a damped step, registered through an entry point."""
import torch
from bench_core import hookimpl

__version__ = "1.2.3"


class HalfStepULA:
    family = "langevin"

    def __init__(self, step_size: float = 0.01, n_steps: int = 50):
        if step_size <= 0:
            raise ValueError(f"parameter 'step_size' must be > 0, got {step_size}")
        self.step_size, self.n_steps = step_size, n_steps

    def sample(self, score, x0, *, generator, callback=None):
        x = x0.clone()
        h = self.step_size
        for k in range(1, self.n_steps + 1):
            x.add_(score(x, 0.0), alpha=h).add_(torch.randn(x.shape, generator=generator, dtype=x.dtype),
                                                 alpha=(2 * h) ** 0.5)
            if callback:
                callback(k, k * h, x)
        return x


@hookimpl
def register_samplers(register):
    register("half_ula", HalfStepULA, description="ULA from an installed plugin")
'''

MISSPELLED_PLUGIN = '''
from bench_core import hookimpl

@hookimpl
def register_sampler(register):
    register("never", object)
'''


SUITE_USING_HALF_ULA = """
[suite]
name = "uses_plugin"
device = "cpu"

[[targets]]
name = "gaussian"
params = { dim = 2 }

[[samplers]]
name = "half_ula"

[[metrics]]
name = "mean_error"
"""


def install_dist(root: Path, dist: str, module: str, source: str, version: str = "1.2.3") -> None:
    """Place a module and its .dist-info (with a ``bench`` entry point) in ``root``."""
    (root / f"{module}.py").write_text(source)
    info = root / f"{dist}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[bench]\n{dist} = {module}\n")


def bench(args: list[str], root: Path, **env: str) -> subprocess.CompletedProcess:
    """``bench ARGS`` in ``root``, where the distributions installed by :func:`install_dist` are importable."""
    return run_cli(*args, env={**os.environ, "PYTHONPATH": str(root), **env}, cwd=root, timeout=300)


@pytest.fixture
def plugin_root(tmp_path):
    install_dist(tmp_path, "bench-toyplug", "bench_toyplug", GOOD_PLUGIN)
    return tmp_path


def test_installed_plugin_is_listed_and_runs_in_a_suite(plugin_root, write_suite):
    result = bench(["plugins"], plugin_root)
    assert result.returncode == 0, result.stderr
    line = next(l for l in result.stdout.splitlines() if l.startswith("bench-toyplug"))
    assert "1.2.3" in line and "sampler half_ula" in line and "entry point of bench-toyplug" in line
    assert "bench_plugins.samplers.langevin" in result.stdout  # built-ins are listed the same way
    suite = write_suite(textwrap.dedent("""
        [suite]
        name = "ep"
        seeds = [0]
        n_samples = 500
        device = "cpu"
        [[targets]]
        name = "gaussian"
        params = { dim = 2, mean = 1.0 }
        [[samplers]]
        name = "half_ula"
        params = { step_size = 0.05, n_steps = 200 }
        [[metrics]]
        name = "mean_error"
        [[claims]]
        metric = "mean_error"
        op = "<="
        value = 0.3
        """))
    out = plugin_root / "out"
    result = bench(["run", str(suite), "--out", str(out)], plugin_root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS" in result.stdout
    assert "half_ula" in (out / "results.csv").read_text()


def test_bench_plugins_env_restricts_entry_points(plugin_root):
    result = bench(["plugins"], plugin_root, BENCH_PLUGINS="")
    assert result.returncode == 0 and "bench-toyplug" not in result.stdout
    result = bench(["list", "samplers"], plugin_root, BENCH_PLUGINS="bench-toyplug")
    assert "half_ula" in result.stdout
    result = bench(["plugins"], plugin_root, BENCH_PLUGINS="bench-toyplu")
    assert result.returncode == 2
    assert result.stderr.strip() == ("bench: error: BENCH_PLUGINS names 'bench-toyplu' (did you mean "
                                     "'bench-toyplug'?), which is not an installed plugin; installed: bench-toyplug")


@pytest.mark.parametrize("source, needles", [
    (MISSPELLED_PLUGIN, ["plugin 'bench-broken'", "unknown hook 'register_sampler'",
                         "did you mean 'register_samplers'"]),
    ("import no_such_module_anywhere\n", ["plugin 'bench-broken'", "failed to load", "ModuleNotFoundError",
                                          "BENCH_PLUGINS"]),
    (GOOD_PLUGIN.replace('"half_ula"', '"ula"'), ["plugin 'bench-broken' registers sampler 'ula'",
                                                  "already registered by plugin 'bench_plugins.samplers.langevin'"]),
])
def test_broken_installed_plugin_degrades_with_one_clean_warning(tmp_path, source, needles, write_suite):
    """A broken plugin is left out whole: one warning line on every command, listed as broken by
    `bench plugins`, other commands work, and a suite that needs its component exits 2 naming it."""
    install_dist(tmp_path, "bench-broken", "bench_broken", source)
    result = bench(["plugins"], tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("bench: warning: ") and lines[0].endswith("(its components are unavailable)")
    for needle in needles:
        assert needle in lines[0]
    assert "bench-broken (BROKEN, left out): plugin 'bench-broken'" in result.stdout
    check = bench(["check", str(REPO / "suites" / "smoke.toml")], tmp_path)
    assert check.returncode == 0 and "OK" in check.stdout and len(check.stderr.strip().splitlines()) == 1
    listing = bench(["list", "samplers"], tmp_path)
    assert listing.returncode == 0 and "half_ula" not in listing.stdout and "ula " in listing.stdout
    suite = write_suite(SUITE_USING_HALF_ULA)
    run = bench(["check", str(suite)], tmp_path)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    error = run.stderr.strip().splitlines()[-1]
    assert "unknown sampler 'half_ula'" in error and "plugin 'bench-broken'" in error


def _plugin(**hooks) -> types.SimpleNamespace:
    ns = types.SimpleNamespace(__name__="inline", **hooks)
    return ns


def test_factory_returning_the_wrong_thing_is_named():
    @hookimpl
    def register_samplers(register):
        register("bad_sampler", lambda: object(), description="returns a plain object")

    registry = build_registry(extra=[_plugin(register_samplers=register_samplers)], entry_points=False)
    with pytest.raises(PluginError, match=r"plugin 'inline': the factory of sampler 'bad_sampler' returned "
                                          r"object, but it lacks 'family', 'sample'"):
        registry.create("samplers", "bad_sampler")


def test_wrong_family_and_non_callable_factory():
    class Weird:
        family = "mcmc"

        def sample(self, *a, **k):
            return None

    @hookimpl
    def register_samplers(register):
        register("weird", Weird)

    registry = build_registry(extra=[_plugin(register_samplers=register_samplers)], entry_points=False)
    with pytest.raises(PluginError, match="family is 'mcmc'"):
        registry.create("samplers", "weird")

    @hookimpl
    def register_targets(register):
        register("t", 42)

    with pytest.raises(PluginError, match="not callable"):
        build_registry(extra=[_plugin(register_targets=register_targets)], entry_points=False)


def test_an_old_param_name_gets_the_new_one():
    """A factory's ``renamed`` (on a class or a function, also one taking ``**params``) turns an old name
    into a one-line rename; a name it does not declare stays an unknown parameter with its did-you-mean."""
    class Stepper:
        family = "langevin"
        renamed = {"eps": "step_size"}

        def __init__(self, step_size: float = 0.1) -> None:
            self.step_size = step_size

        def sample(self, score, x0, *, generator, callback=None):
            return x0

    def loose(**params):
        return Stepper()

    loose.renamed = {"h": "step_size"}

    @hookimpl
    def register_samplers(register):
        register("stepper", Stepper)
        register("loose", loose)

    registry = build_registry(extra=[_plugin(register_samplers=register_samplers)], entry_points=False)
    with pytest.raises(ValueError) as info:
        registry.check_params("samplers", "stepper", {"eps": 0.2})
    assert str(info.value) == "parameter 'eps' of sampler 'stepper' is now 'step_size'; rename it in the suite"
    with pytest.raises(ValueError, match="parameter 'h' of sampler 'loose' is now 'step_size'"):
        registry.create("samplers", "loose", h=0.2)
    with pytest.raises(ValueError, match="unknown parameter 'step_siz' .*did you mean 'step_size'"):
        registry.check_params("samplers", "stepper", {"step_siz": 0.2})
    assert registry.create("samplers", "stepper", step_size=0.2).step_size == 0.2


@pytest.mark.parametrize("kind, name, old, new", [
    ("samplers", "annealed_langevin", "eps", "step_size"), ("metrics", "sinkhorn", "n", "n_mc"),
    ("metrics", "energy", "n", "n_mc"), ("metrics", "tv_witness", "n_mass", "n_mc"),
    ("metrics", "tv_classifier", "max_n", "n_mc"), ("metrics", "tv_classifier", "hidden", "width"),
    ("metrics", "score_error", "n_bar", "n_mc_bar")])
def test_the_built_ins_answer_their_old_param_names(kind, name, old, new):
    from bench_core.components.discovery import get_registry

    registry = get_registry()
    with pytest.raises(ValueError, match=f"^parameter '{old}' of .* '{name}' is now '{new}'; rename it in the suite$"):
        registry.check_params(kind, name, {old: 1})
    registry.check_params(kind, name, {new: 1})  # the new name is accepted


def test_builtins_registered_and_listed(capsys):
    from bench_core.cli import main

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("gaussian", "exact", "standard_normal", "ula", "mean_error", "gaussian_kl", "local", "process",
                 "leaderboard"):
        assert f"  {name} " in out
    assert main(["list", "sampler"]) == 2
    assert "did you mean 'samplers'" in capsys.readouterr().err


def test_components_describe_themselves(capsys):
    from bench_core.cli import main

    assert main(["describe", "ddpm_mlp"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ddpm_mlp (score, plugin bench_plugins.scores.learned.ddpm_mlp): ")
    assert "    levels (int) = 100: Train on levels 1..levels (the paper: the lowest 100)" in out
    assert "    epochs (int) = 150000: " in out
    assert main(["describe", "ula"]) == 0
    out = capsys.readouterr().out
    assert "family: langevin; receives the score estimate only" in out and "    step_size (float) = 0.0025" in out
    assert main(["list", "scores", "-v"]) == 0
    out = capsys.readouterr().out
    assert '      output ({"eps", "score"}) = (required): What the network predicts' in out  # under its line
    assert main(["describe", "ddpm_mpl"]) == 2
    assert "no component named 'ddpm_mpl' (did you mean 'ddpm_mlp'?)" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["sampler", "score", "target", "metric"])
def test_bench_new_writes_a_plugin_that_conforms_and_runs_its_example(kind, tmp_path, monkeypatch):
    """The scaffold's module passes the kit (what its own test runs) and its example suite runs.
    CI also pip-installs a scaffolded sampler into a fresh venv and runs its tests and suite."""
    import importlib
    import sys as _sys

    from bench_core.cli import main
    from bench_core.pipeline import run_suite
    from bench_core.kit import check_plugin

    name = f"my_{kind}_{os.getpid()}"
    assert main(["new", kind, name, "--dir", str(tmp_path / "dist")]) == 0
    dist = tmp_path / "dist"
    assert {p.name for p in dist.iterdir()} == {"pyproject.toml", f"{name}.py", "README.md", "tests", "suites"}
    assert f'{name} = "{name}"' in (dist / "pyproject.toml").read_text()
    monkeypatch.syspath_prepend(str(dist))
    module = importlib.import_module(name)
    statuses = check_plugin(module)
    assert [(k, n, s) for k, n, s in statuses] == [(f"{kind}s", name, "ok")]
    registry = build_registry(extra=[module], entry_points=False)
    summary = run_suite(dist / "suites" / "example.toml", out=tmp_path / "out", registry=registry)
    assert summary.exit_code == 0, summary.statuses
    test = subprocess.run([_sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(dist / "tests")],
                          capture_output=True, text=True, cwd=dist, env={**os.environ, "PYTHONPATH": str(dist)})
    assert test.returncode == 0, test.stdout + test.stderr
    assert main(["new", kind, name, "--dir", str(dist)]) == 2  # never overwrites


def test_bench_new_refuses_bad_names(capsys):
    from bench_core.cli import main

    assert main(["new", "sampler", "My-Sampler"]) == 2
    assert "must be a lowercase Python identifier" in capsys.readouterr().err
    assert main(["new", "executor", "x"]) == 2
