"""Deliberately broken (and a few good) toy components for tests of bench_core.kit.checks.

Each broken component has exactly one defect, named in its docstring.
"""
from __future__ import annotations

import math
import types

import torch

from bench_core import hookimpl
from bench_core.base.errors import SkipMetric
from bench_plugins.samplers.langevin import ULA
from bench_plugins.targets.gaussian import GaussianTarget


class _ToySampler:
    family = "langevin"
    step_size, n_steps = 0.01, 300

    def _run(self, score, x, generator, callback, noise_fn):
        scale = math.sqrt(2 * self.step_size)
        for k in range(1, self.n_steps + 1):
            x = x + self.step_size * score(x, 0.0) + scale * noise_fn(x, generator)
            if callback is not None:
                callback(k, k * self.step_size, x)
        return x


class InPlaceSampler(_ToySampler):
    """Defect: moves the caller's x0 in place."""

    def sample(self, score, x0, *, generator, callback=None):
        x, scale = x0, math.sqrt(2 * self.step_size)  # no clone: x0 itself moves
        for k in range(1, self.n_steps + 1):
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
            x.add_(score(x, 0.0), alpha=self.step_size).add_(noise, alpha=scale)
            if callback is not None:
                callback(k, k * self.step_size, x)
        return x


class WrongShapeSampler(_ToySampler):
    """Defect: drops the last particle."""

    def sample(self, score, x0, *, generator, callback=None):
        out = ULA(self.step_size, self.n_steps).sample(score, x0, generator=generator, callback=callback)
        return out[:-1]


class GlobalRNGSampler(_ToySampler):
    """Defect: draws its noise from the global RNG, ignoring ``generator``."""

    def sample(self, score, x0, *, generator, callback=None):
        return self._run(score, x0, generator, callback, lambda x, g: torch.randn_like(x))


class SilentSampler(_ToySampler):
    """Defect: never calls ``callback``."""

    def sample(self, score, x0, *, generator, callback=None):
        return ULA(self.step_size, self.n_steps).sample(score, x0, generator=generator)


class TensorTimeSampler(_ToySampler):
    """Defect: passes ``t`` to the callback as a tensor."""

    def sample(self, score, x0, *, generator, callback=None):
        wrapped = None if callback is None else (lambda k, t, x: callback(k, torch.tensor(t), x))
        return ULA(self.step_size, self.n_steps).sample(score, x0, generator=generator, callback=wrapped)


class LazySampler(_ToySampler):
    """Defect: reports steps but never moves the particles (lands at the start, N(0, I))."""

    def sample(self, score, x0, *, generator, callback=None):
        x = x0.clone()
        for k in range(1, self.n_steps + 1):
            if callback is not None:
                callback(k, k * self.step_size, x)
        return x


class HotSampler(_ToySampler):
    """Defect: noise scale sqrt(4h) instead of sqrt(2h): lands on N(1, 2 I), std 1.41."""

    def sample(self, score, x0, *, generator, callback=None):
        return self._run(score, x0, generator, callback,
                         lambda x, g: math.sqrt(2) * torch.randn(x.shape, generator=g, dtype=x.dtype))


class BadFamilySampler(_ToySampler):
    """Defect: family is not 'langevin' or 'diffusion'."""

    family = "mcmc"

    def sample(self, score, x0, *, generator, callback=None):
        return x0.clone()


class NoCallbackArgSampler(_ToySampler):
    """Defect: sample() has no ``callback`` parameter."""

    def sample(self, score, x0, *, generator):
        return ULA(self.step_size, self.n_steps).sample(score, x0, generator=generator)


class Float64Score:
    """Defect: returns float64 for float32 input."""

    def __init__(self, target, data=None):
        self.target = target

    def __call__(self, x, t):
        return self.target.score(x.to(torch.float64), t)


class BadRegionScore:
    """Defect: region() returns a float mask instead of a bool tensor."""

    def __init__(self, target, data=None):
        self.target = target

    def __call__(self, x, t):
        return self.target.score(x, t)

    def region(self, x):
        return (x.norm(dim=-1) < 1).to(x.dtype)


class InPlaceScore:
    """Defect: overwrites its input x."""

    def __init__(self, target, data=None):
        self.target = target

    def __call__(self, x, t):
        return x.mul_(-1)


class BatchCoupledScore:
    """Defect: declares ``rowwise`` but centres on the batch mean, so each row depends on all rows."""

    rowwise = True

    def __init__(self, target, data=None):
        self.target = target

    def __call__(self, x, t):
        return x.mean(dim=0, keepdim=True) - x


class WrongScoreTarget(GaussianTarget):
    """Defect: score is twice the gradient of log_prob."""

    def score(self, x, t=0.0):
        return 2 * super().score(x, t)


class Float32Target(GaussianTarget):
    """Defect: samples are always float32, whatever the default dtype."""

    def sample(self, n, generator):
        return super().sample(n, generator).to(torch.float32)


class GlobalRNGInitializer:
    """Defect: ignores the generator."""

    def __call__(self, n, *, target, data, generator):
        return torch.randn(n, target.dim)


class TensorMetric:
    """Defect: returns a tensor, not a float."""

    higher_is_better = False

    def __call__(self, samples, ctx):
        return samples.mean()


class NoisyMetric:
    """Defect: uses the global RNG (not ctx.generator), so it is not reproducible."""

    higher_is_better = True

    def __call__(self, samples, ctx):
        return {"noisy": float(torch.rand(()))}


class StringHigherMetric:
    """Defect: higher_is_better is a string."""

    higher_is_better = "no"

    def __call__(self, samples, ctx):
        return 0.0


def make_sampler_needing_params(step_size, n_steps=10):
    return ULA(step_size, n_steps)


class GaussianOnlyNotMetric:
    """Not a defect: a metric that does not apply to Gaussian targets (raises SkipMetric)."""

    higher_is_better = False

    def __call__(self, samples, ctx):
        raise SkipMetric("toy: applies to mixtures only")


def make_plugin(name: str, **components: dict) -> types.ModuleType:
    """A module-like plugin: ``make_plugin("p", samplers={"a": factory}, metrics={...})`` gets one
    ``@hookimpl register_<kind>`` function per kind given."""
    module = types.ModuleType(name)
    for kind, factories in components.items():
        def register_kind(register, factories=factories):
            for key, factory in factories.items():
                register(key, factory, description="toy")

        setattr(module, f"register_{kind}", hookimpl(register_kind))
    return module
