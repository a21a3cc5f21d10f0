"""Sampler steps with exact scores, d = 50, float32, one thread: coordinate-steps per second.

The stochastic samplers draw one standard normal per coordinate-step (CLD two: position and
velocity noise), so the normal-draw rate of the same machine, measured in the same run, is their
ceiling. The same ULA written the obvious way in NumPy and in plain torch gives the baseline a
researcher would write.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bench_plugins.samplers.annealed_langevin import AnnealedLangevin
from bench_plugins.samplers.cld import CLD
from bench_plugins.samplers.ddim import DDIM
from bench_plugins.samplers.ddpm import DDPM
from bench_plugins.samplers.langevin import ULA
from bench_plugins.scores.exact import ExactScore
from bench_plugins.targets.gaussian import GaussianTarget

from bench_helpers import D, normal_limit, record

SIZES = [10_000, 100_000]
ROUNDS = 5  # best of 5, as for the normal-draw limit it is compared with (bench_helpers.best_seconds)

pytestmark = pytest.mark.usefixtures("one_thread")


def _steps(n: int) -> int:
    return 400 if n <= 10_000 else 40  # about half a second a round either way


SAMPLERS = {
    "ula": lambda k: ULA(step_size=0.01, n_steps=k),
    "ddpm ancestral": lambda k: DDPM(discretization="ancestral", n_steps=max(k, 25)),
    "ddpm exponential": lambda k: DDPM(discretization="exponential", n_steps=k),
    "ddim (eta = 0, deterministic)": lambda k: DDIM(n_steps=k),
    "cld": lambda k: CLD(n_steps=k),
    "annealed_langevin": lambda k: AnnealedLangevin(n_levels=max(1, k // 10), steps_per_level=10),
}


def _coordinate_steps(sampler, n: int) -> int:
    steps = getattr(sampler, "n_steps", None) or sampler.n_levels * sampler.steps_per_level
    return n * D * steps


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name", list(SAMPLERS))
def test_sampler_step_rate(benchmark, name, n):
    target = GaussianTarget(D, mean=1.0)
    score = ExactScore(target, None)
    sampler = SAMPLERS[name](_steps(n))
    x0 = torch.randn(n, D, generator=torch.Generator().manual_seed(1))
    generator = torch.Generator().manual_seed(2)
    benchmark.pedantic(lambda: sampler.sample(score, x0, generator=generator), rounds=ROUNDS, warmup_rounds=1)
    rate = _coordinate_steps(sampler, n) / benchmark.stats.stats.min
    ratio = rate / normal_limit(n)
    # CLD draws two normals per coordinate-step (position and velocity noise): its own limit is half
    note = f"{2 * ratio:.2f} of its two-normal limit" if name == "cld" else ""
    record(f"sampler {name}", n, rate, "coord-steps/s", ratio, note)


@pytest.mark.parametrize("n", SIZES)
def test_numpy_ula_baseline(benchmark, n):
    k, h = _steps(n), 0.01
    rng = np.random.default_rng(0)
    mean = np.ones(D, dtype=np.float32)
    x0 = rng.standard_normal((n, D), dtype=np.float32)

    def ula_numpy():
        x = x0.copy()
        for _ in range(k):
            x = x + h * (mean - x) + math.sqrt(2 * h) * rng.standard_normal((n, D), dtype=np.float32)
        return x

    benchmark.pedantic(ula_numpy, rounds=ROUNDS, warmup_rounds=1)
    rate = n * D * k / benchmark.stats.stats.min
    record("baseline: ULA in NumPy (obvious)", n, rate, "coord-steps/s", rate / normal_limit(n))


@pytest.mark.parametrize("n", SIZES)
def test_plain_torch_ula_baseline(benchmark, n):
    k, h = _steps(n), 0.01
    generator = torch.Generator().manual_seed(0)
    mean = torch.ones(D)
    x0 = torch.randn(n, D, generator=generator)

    def ula_torch():
        x = x0
        for _ in range(k):
            x = x + h * (mean - x) + math.sqrt(2 * h) * torch.randn(n, D, generator=generator)
        return x

    benchmark.pedantic(ula_torch, rounds=ROUNDS, warmup_rounds=1)
    rate = n * D * k / benchmark.stats.stats.min
    record("baseline: ULA in plain torch (obvious)", n, rate, "coord-steps/s", rate / normal_limit(n))
