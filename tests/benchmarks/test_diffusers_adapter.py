"""What the ``diffusers`` sampler costs over driving the very same scheduler by hand.

The by-hand loop is what a diffusers user writes: ``set_timesteps``, then for each timestep
``scale_model_input``, the epsilon of the score, ``step``. The bench cell adds the score-evaluation
counter, the per-step divergence check and callback, and the OU/VE mapping. Both run the exact score of
N(1, I_50) on the same particles; the ratio is the by-hand time over the cell's sampling time (1: free).
"""
from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from bench_core.pipeline import run_suite
from bench_plugins.targets.gaussian import GaussianTarget

from bench_helpers import D, best_seconds, record

diffusers = pytest.importorskip("diffusers")

SUITE = """
[suite]
name = "adapter"
seeds = [0]
n_samples = {n}
device = "cpu"

[[targets]]
name = "gaussian"
params = {{ dim = {d}, mean = 1.0 }}

[[samplers]]
name = "diffusers"
params = {{ scheduler = "{scheduler}", n_steps = {steps} }}

[[metrics]]
name = "mean_error"
"""

pytestmark = pytest.mark.usefixtures("one_thread")


def _by_hand(scheduler_name: str, n: int, steps: int) -> float:
    """Seconds for the plain diffusers loop (best of 5) on the very scheduler the cell steps (bench's float64
    schedule tables, the same query times), with the exact score as its epsilon model, in float32 like the cell."""
    import copy

    from bench_core.components.discovery import get_registry

    target = GaussianTarget(D, mean=1.0)
    sampler = get_registry().create("samplers", "diffusers", scheduler=scheduler_name, n_steps=steps)
    x0 = torch.randn(n, D, generator=torch.Generator().manual_seed(0))

    def run() -> None:
        scheduler = copy.deepcopy(sampler._prepared)
        x = x0 * scheduler.init_noise_sigma
        for i, timestep in enumerate(scheduler.timesteps):
            model_in = scheduler.scale_model_input(x, timestep)
            t = sampler.times[i]
            eps = target.score(model_in, t) * -math.sqrt(-math.expm1(-2.0 * t))
            x = scheduler.step(eps, timestep, x).prev_sample

    return best_seconds(run, rounds=5)


@pytest.mark.parametrize("scheduler", ["DPMSolverMultistepScheduler", "EulerDiscreteScheduler"])
def test_adapter_costs_almost_nothing(tmp_path, scheduler):
    n, steps = 20_000, 50
    path = tmp_path / "adapter.toml"
    path.write_text(SUITE.format(n=n, d=D, scheduler=scheduler, steps=steps))
    run_suite(path, out=tmp_path / "out")  # warm: imports, plan
    walls = []
    for _ in range(5):  # best of 5, as by hand
        run_suite(path, out=tmp_path / "out", rerun=True)
        walls.append(float(pd.read_csv(tmp_path / "out" / "results.csv")["wall_s"].iloc[0]))
    by_hand = _by_hand(scheduler, n, steps)
    record(f"diffusers {scheduler} through a bench cell / by hand", n, by_hand / min(walls), "x of by-hand speed",
           None, f"{steps} steps, d = {D}: cell {min(walls):.3f} s (sampling and one mean_error), by hand {by_hand:.3f} s")
