"""`bench check` never allocates in proportion to a size it has not checked.

Each suite below asks for something this machine cannot hold (a target of dimension 1e9 or 3e8, a
network of width 1e9, a mixture of huge dimension, 1e12 particles, a plugin that allocates its param
unchecked). `bench check` runs in a subprocess whose address space is capped at 2 GiB (torch imports
in well under that): it must answer exit 2 with one line, quickly, and never be killed.
"""
from __future__ import annotations

import resource
import time

import pytest

from helpers import plugins_env, run_cli

CAP = 2 << 30

SUITE = """[suite]
name = "huge"
seeds = [0]
n_samples = {n_samples}
device = "cpu"

[data]
n_train = 20

[[targets]]
name = "{target}"
params = {{ dim = {dim} }}

[[scores]]
name = "{score}"
{score_params}

[[samplers]]
name = "ula"
params = {{ n_steps = 10 }}

[[metrics]]
name = "mean_error"
"""

CASES = {
    # (target, dim, n_samples, score, score params): what the one line must say
    "dim 1e9": (("gaussian", 10**9, 100, "exact", ""), "a cell of target gaussian"),
    "dim 3e8": (("gaussian", 3 * 10**8, 100, "exact", ""), "a cell of target gaussian"),
    "gmm dim": (("gmm", 10**9, 2, "exact", ""), "a cell of target gmm"),
    "n_samples 1e12": (("gaussian", 2, 10**12, "exact", ""), "n_samples"),
    "width 1e9": (("gaussian", 2, 100, "ddpm_mlp", "params = { width = 1000000000, epochs = 1 }"),
                  "parameter 'width' = 1000000000 sizes the network's weights"),
    "noisy features": (("gaussian", 2, 100, "noisy", "params = { n_features = 100000000000 }"),
                       "parameter 'n_features'"),
    "unchecked plugin": (("gaussian", 2, 100, "toy_greedy", "params = { table = 100000000000 }"),
                         "score 'toy_greedy' could not be built"),
}


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (CAP, CAP))


@pytest.mark.parametrize("case", list(CASES))
def test_check_refuses_sizes_the_machine_cannot_hold_without_allocating_them(tmp_path, case):
    (target, dim, n_samples, score, score_params), expected = CASES[case]
    path = tmp_path / "huge.toml"
    path.write_text(SUITE.format(target=target, dim=dim, n_samples=n_samples, score=score, score_params=score_params))
    start = time.monotonic()
    done = run_cli("check", path, env=plugins_env(BENCH_PLUGIN_MODULES="toy_plugins"), preexec_fn=_cap_memory,
                   timeout=300)
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode == 2, (done.returncode, lines[-5:])  # not -9 (killed), not a traceback (1)
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    assert expected in lines[0] and str(path) in lines[0], lines[0]
    assert time.monotonic() - start < 60  # refused before anything big is built (about 5 s: the imports)


def test_the_build_budget_is_lifted_after_building():
    """The cap on a component's build is the soft limit only while it is built."""
    import torch

    from bench_core.plan.resources import bounded_build, build_budget

    before = resource.getrlimit(resource.RLIMIT_AS)
    with bounded_build():
        during = resource.getrlimit(resource.RLIMIT_AS)
        with pytest.raises((MemoryError, RuntimeError)):  # a reservation the machine would grant lazily
            torch.empty(build_budget() + (1 << 30), dtype=torch.uint8)
    assert resource.getrlimit(resource.RLIMIT_AS) == before
    assert during[0] != resource.RLIM_INFINITY and during[1] == before[1]
